//! The retained `custodyd.status.v1` document.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use crate::bus::ReaderState;
use crate::custody::rfc3339;

pub const STATUS_SCHEMA: &str = "custodyd.status.v1";

/// What the status topic says about this gateway. Owned by the uplink, which
/// republishes it on every connect and every reader state change.
#[derive(Debug, Clone)]
pub struct Status {
    started_at: SystemTime,
    /// For the uptime: the wall clock may jump (a Pi without RTC at boot).
    started: Instant,
    /// Up or down, and the failing antennas of an up reader.
    readers: BTreeMap<Arc<str>, (bool, Vec<u8>)>,
    /// Events the spool could not keep since start (full spool or disk).
    spool_dropped: u64,
    /// The public half of the device key (base64), with which central
    /// checks this gateway's checkpoints.
    device_key: String,
}

impl Status {
    /// Every reader starts `down` until its device is open.
    pub fn new(readers: impl IntoIterator<Item = Arc<str>>, device_key: String) -> Self {
        Status {
            started_at: SystemTime::now(),
            started: Instant::now(),
            readers: readers
                .into_iter()
                .map(|r| (r, (false, Vec::new())))
                .collect(),
            spool_dropped: 0,
            device_key,
        }
    }

    /// Returns whether anything changed. A reader that is not configured
    /// (any more: a reload removed it, and its last state arrived late) is
    /// ignored.
    pub fn set_reader(&mut self, state: ReaderState) -> bool {
        let health = (state.up, state.failing_antennas);
        match self.readers.get_mut(&state.reader) {
            Some(known) => std::mem::replace(known, health.clone()) != health,
            None => false,
        }
    }

    /// The configured readers changed (a reload): new ones start `down`,
    /// removed ones go. Returns whether anything changed.
    pub fn set_readers(&mut self, configured: &[Arc<str>]) -> bool {
        let before = self.readers.len();
        self.readers.retain(|name, _| configured.contains(name));
        let mut changed = self.readers.len() != before;
        for name in configured {
            if !self.readers.contains_key(name) {
                self.readers.insert(name.clone(), (false, Vec::new()));
                changed = true;
            }
        }
        changed
    }

    /// Returns whether anything changed.
    pub fn set_spool_dropped(&mut self, dropped: u64) -> bool {
        std::mem::replace(&mut self.spool_dropped, dropped) != dropped
    }

    pub fn to_json(&self, online: bool) -> Vec<u8> {
        self.to_value(online).to_string().into_bytes()
    }

    /// The answer to the `status` command: the online document plus the
    /// uptime in whole seconds.
    pub fn report(&self) -> Value {
        let mut status = self.to_value(true);
        status["uptime_s"] = json!(self.started.elapsed().as_secs());
        status
    }

    fn to_value(&self, online: bool) -> Value {
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
            "device_key": self.device_key,
        })
    }

    /// The Last Will: all the broker can say for a gateway that vanished.
    pub fn last_will() -> Vec<u8> {
        json!({ "schema": STATUS_SCHEMA, "state": "offline" })
            .to_string()
            .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(reader: &str, up: bool) -> ReaderState {
        ReaderState {
            reader: reader.into(),
            up,
            failing_antennas: vec![],
        }
    }

    fn readers(status: &Status) -> Value {
        status.report()["readers"].clone()
    }

    #[test]
    fn a_reload_adds_and_removes_readers_and_late_states_of_removed_ones_are_ignored() {
        let mut status = Status::new(["a".into(), "b".into()], "S2V5".into());
        assert!(status.set_reader(state("a", true)));
        assert!(!status.set_reader(state("a", true)), "no change");
        assert!(status.set_readers(&["a".into(), "c".into()]));
        assert_eq!(
            readers(&status),
            json!({"a": {"state": "up"}, "c": {"state": "down"}})
        );
        assert!(!status.set_reader(state("b", true)), "b is gone");
        assert!(status.set_reader(state("c", true)));
        assert!(!status.set_readers(&["a".into(), "c".into()]));
        let report = status.report();
        assert_eq!(report["state"], "online");
        assert_eq!(report["device_key"], "S2V5");
        assert!(report["uptime_s"].is_u64(), "{report}");
        assert_eq!(readers(&status)["c"]["state"], "up");
    }
}
