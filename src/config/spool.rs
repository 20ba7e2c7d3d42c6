//! `[spool]`: group commit and the bound on undelivered events.

use std::time::Duration;

use serde::Deserialize;

use super::validate::Errors;
use super::{duration, ByteSize};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Group commit: how long the first event of a batch may wait for others
    /// before the batch is made durable with one fsync.
    #[serde(default = "default_flush_interval", with = "duration")]
    pub flush_interval: Duration,
    /// Group commit: the most events made durable by one fsync.
    #[serde(default = "default_flush_max_events")]
    pub flush_max_events: usize,
    /// The most undelivered events the spool holds (their encoded size).
    /// Past it new events are counted and dropped, never silently; at 80 %
    /// a `spool_high_water` alarm warns first.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
}

fn default_max_bytes() -> ByteSize {
    ByteSize::mib(256)
}

fn default_flush_interval() -> Duration {
    Duration::from_millis(5)
}
fn default_flush_max_events() -> usize {
    512
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            flush_interval: default_flush_interval(),
            flush_max_events: default_flush_max_events(),
            max_bytes: default_max_bytes(),
        }
    }
}

/// Room for a few hundred events: less would alarm and drop at once.
const SPOOL_MIN: ByteSize = ByteSize(64 << 10);

pub(super) fn check_spool(errors: &mut Errors, spool: &SpoolConfig) {
    if spool.flush_max_events == 0 {
        errors.push("spool.flush_max_events", "must be at least 1");
    }
    if spool.max_bytes < SPOOL_MIN {
        errors.push("spool.max_bytes", format!("must be at least {SPOOL_MIN}"));
    }
}
