//! Tag identity: what a raw read *is*, as one canonical asset id, so that the
//! RFID tag and the barcode label of one laptop dedup as one asset.
//!
//! The spine keeps raw ids: hex for tags, the scanned text for barcodes. EPC
//! and GS1 decoding to pure-identity URIs extend [`resolve`].

use std::sync::Arc;

use crate::decode::{RawRead, Source};

pub mod epc;
pub mod gs1;

/// An asset as it appears in events (`asset.id`, `asset.raw`, `asset.source`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Asset {
    /// Canonical id; the dedup key.
    pub id: Arc<str>,
    /// The data as read.
    pub raw: Arc<str>,
    pub source: Source,
}

/// Resolves a raw read to its asset.
pub fn resolve(read: &RawRead) -> Asset {
    let raw: Arc<str> = Arc::from(read.data.as_str());
    Asset {
        id: raw.clone(),
        raw,
        source: read.source,
    }
}
