//! Sources: the readers at the door.
//!
//! Each reader is a task that owns its device: it opens it, frames its bytes
//! with the protocol's codec, resolves each read to an asset and hands it to
//! presence. A missing or vanished device is retried with capped exponential
//! backoff; the daemon never stops for one bad reader. State changes (up,
//! down) go to the uplink for the retained status topic.

use std::sync::Arc;

pub mod serial;
mod uhf;

/// A reader came up or went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderState {
    pub reader: Arc<str>,
    pub up: bool,
}
