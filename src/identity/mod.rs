//! Tag identity: what a raw read *is*, as one canonical asset id, so that the
//! RFID tag and the barcode label of one laptop dedup as one asset.
//!
//! - A UHF tag's EPC decodes (EPC Tag Data Standard) to a pure-identity URI
//!   such as `urn:epc:id:giai:0614141.12345400`, or keeps a raw
//!   `urn:epc:raw:...` id when it is not a GS1 encoding.
//! - A GS1 barcode maps to the same URI when its company prefix is known
//!   (`identity.company_prefixes`), else to its element string
//!   `(8004)0614141...`. GS1 data that is invalid (a bad check digit) is
//!   rejected: better no event than a custody event for the wrong asset.
//! - EM4100 card numbers and other text stay as read.

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

/// A read that names no asset it can be trusted to name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{raw:?} rejected: {reason}")]
pub struct Rejected {
    pub raw: Arc<str>,
    pub reason: String,
}

/// Resolves reads to assets; one per daemon, shared by the readers.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    company_prefixes: gs1::CompanyPrefixes,
}

impl Identity {
    pub fn new(company_prefixes: gs1::CompanyPrefixes) -> Self {
        Identity { company_prefixes }
    }

    pub fn resolve(&self, read: &RawRead) -> Result<Asset, Rejected> {
        let raw: Arc<str> = Arc::from(read.data.as_str());
        let id = match read.source {
            Source::Rfid => epc_bytes(&read.data).map(|epc| epc::decode_epc(&epc).into_string()),
            Source::Barcode => match gs1::parse(&read.data) {
                Ok(Some(elements)) => Some(
                    gs1::to_epc_uri(&elements, &self.company_prefixes)
                        .unwrap_or_else(|| gs1::element_string(&elements)),
                ),
                // Not GS1: the text without any AIM symbology prefix, which
                // says how it was encoded, not what it names.
                Ok(None) => Some(gs1::without_symbology_id(&read.data).to_owned()),
                Err(e) => {
                    return Err(Rejected {
                        raw,
                        reason: format!("invalid GS1 data: {e}"),
                    })
                }
            },
        };
        let id = id.map_or_else(|| raw.clone(), Arc::from);
        Ok(Asset {
            id,
            raw,
            source: read.source,
        })
    }
}

/// The EPC bytes of a tag read, if the hex is a whole number of 16-bit
/// words (an EPC bank always is). A 125 kHz EM4100 card number is 40 bits
/// (10 hex digits) and so never mistaken for one.
fn epc_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(4) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
