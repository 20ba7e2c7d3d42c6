//! `[audit]`: the custody log's checkpoints.

use std::time::Duration;

use humantime::format_duration;
use serde::Deserialize;

use super::validate::Errors;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// How often a signed checkpoint of the custody log's head is published,
    /// when new events were committed since the last one.
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde")]
    pub checkpoint_interval: Duration,
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(60)
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_interval: default_checkpoint_interval(),
        }
    }
}

/// A checkpoint is one signature and one retained message; more often is
/// noise, and a day bounds how long the head can go unsigned.
const CHECKPOINT_INTERVAL: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));

pub(super) fn check_audit(errors: &mut Errors, audit: &AuditConfig) {
    let (min, max) = CHECKPOINT_INTERVAL;
    if !(min..=max).contains(&audit.checkpoint_interval) {
        errors.push(
            "audit.checkpoint_interval",
            format!(
                "is {}; must be from {} to {}",
                format_duration(audit.checkpoint_interval),
                format_duration(min),
                format_duration(max)
            ),
        );
    }
}
