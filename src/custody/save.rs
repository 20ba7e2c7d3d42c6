//! State that rides with events into the spool's commit.
//!
//! Some of what the front knows only makes sense together with the events
//! it produced: an asset is present because its `arrived` was committed, a
//! read window is open because its members' `arrived` were. Kept apart
//! (another file, another fsync), a `kill -9` or a power cut between the
//! event and the state rewrites history: a second `arrived`, a `departed`
//! that never comes. So the stage that decides an event attaches the state
//! change to its [`Draft`](super::Draft), and the spool applies it in the
//! same write transaction as the event. The spool stores the bytes and
//! hands them back at start; what they mean belongs to the stage that made
//! them, which owns its keys (a prefix per stage).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One entry of the saved state: `value` replaces the entry at `key`, or
/// `None` removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Save {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// The saved state as the spool held it at start: `(key, value)` pairs in
/// key order.
pub type Saved = Vec<(String, Vec<u8>)>;

/// The entries of `saved` under `prefix` (each stage's keys start with its
/// own), with the prefix cut off.
pub fn entries<'a>(saved: &'a Saved, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    saved
        .iter()
        .filter_map(move |(key, value)| Some((key.strip_prefix(prefix)?, value.as_slice())))
}

/// A wall-clock time as saved: ms since the Unix epoch.
pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// The time [`ms`] saved.
pub fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
