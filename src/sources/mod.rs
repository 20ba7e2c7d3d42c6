//! Sources: the readers at the door.
//!
//! Each reader is a task that owns its device: it opens it, frames its bytes
//! with the protocol's codec, resolves each read to an asset and hands it to
//! presence. A missing or vanished device is retried with capped exponential
//! backoff; the daemon never stops for one bad reader. State changes (up,
//! down) go to the uplink for the retained status topic.

use std::sync::Arc;

pub mod monitor;
pub mod serial;
mod uhf;

/// A reader came up or went down, or its antennas' health changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderState {
    pub reader: Arc<str>,
    pub up: bool,
    /// 1-based antennas whose last inventory got an error reply (UHF
    /// readers); empty for the others and for a reader that is down.
    pub failing_antennas: Vec<u8>,
}
