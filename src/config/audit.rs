//! `[audit]`: the custody log's checkpoints.

use std::time::Duration;

use serde::Deserialize;

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
