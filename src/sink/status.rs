//! The retained `custodyd.status.v1` document.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use crate::custody::rfc3339;
use crate::sources::ReaderState;

pub const STATUS_SCHEMA: &str = "custodyd.status.v1";

/// What the status topic says about this gateway. Owned by the uplink, which
/// republishes it on every connect and every reader state change.
#[derive(Debug, Clone)]
pub struct Status {
    started_at: SystemTime,
    /// Up or down, and the failing antennas of an up reader.
    readers: BTreeMap<Arc<str>, (bool, Vec<u8>)>,
    /// Events the spool could not keep since start (full spool or disk).
    spool_dropped: u64,
}

impl Status {
    /// Every reader starts `down` until its device is open.
    pub fn new(readers: impl IntoIterator<Item = Arc<str>>) -> Self {
        Status {
            started_at: SystemTime::now(),
            readers: readers
                .into_iter()
                .map(|r| (r, (false, Vec::new())))
                .collect(),
            spool_dropped: 0,
        }
    }

    /// Returns whether anything changed.
    pub fn set_reader(&mut self, state: ReaderState) -> bool {
        let health = (state.up, state.failing_antennas);
        self.readers.insert(state.reader, health.clone()) != Some(health)
    }

    /// Returns whether anything changed.
    pub fn set_spool_dropped(&mut self, dropped: u64) -> bool {
        std::mem::replace(&mut self.spool_dropped, dropped) != dropped
    }

    pub fn to_json(&self, online: bool) -> Vec<u8> {
        let readers: serde_json::Map<String, serde_json::Value> = self
            .readers
            .iter()
            .map(|(name, (up, failing))| {
                let mut reader = json!({ "state": if *up { "up" } else { "down" } });
                if !failing.is_empty() {
                    reader["failing_antennas"] = json!(failing);
                }
                (name.to_string(), reader)
            })
            .collect();
        json!({
            "schema": STATUS_SCHEMA,
            "state": if online { "online" } else { "offline" },
            "version": env!("CARGO_PKG_VERSION"),
            "started_at": rfc3339(self.started_at),
            "readers": readers,
            "spool": { "dropped": self.spool_dropped },
        })
        .to_string()
        .into_bytes()
    }

    /// The Last Will: all the broker can say for a gateway that vanished.
    pub fn last_will() -> Vec<u8> {
        json!({ "schema": STATUS_SCHEMA, "state": "offline" })
            .to_string()
            .into_bytes()
    }
}
