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
mod tests {
    use super::*;

    fn read(data: &str, source: Source) -> RawRead {
        RawRead {
            data: data.into(),
            source,
            antenna: None,
            rssi_dbm: None,
        }
    }

    fn identity() -> Identity {
        Identity::new(gs1::CompanyPrefixes::new(["0614141"]).unwrap())
    }

    #[test]
    fn the_tag_and_the_label_of_one_asset_are_one_asset() {
        let tag = identity()
            .resolve(&read("3434257BF400000000BC6038", Source::Rfid))
            .unwrap();
        let label = identity()
            .resolve(&read("]d28004061414112345400", Source::Barcode))
            .unwrap();
        assert_eq!(&*tag.id, "urn:epc:id:giai:0614141.12345400");
        assert_eq!(tag.id, label.id);
        assert_eq!(&*label.raw, "]d28004061414112345400");
        let sgtin = identity()
            .resolve(&read("3074257BF7194E4000001A85", Source::Rfid))
            .unwrap();
        let human = identity()
            .resolve(&read("(01)80614141123458(21)6789", Source::Barcode))
            .unwrap();
        assert_eq!(sgtin.id, human.id);
    }

    #[test]
    fn unknown_prefixes_non_gs1_epcs_cards_and_text_keep_raw_ids() {
        let plain = Identity::default();
        assert_eq!(
            &*plain
                .resolve(&read("]d28004061414112345400", Source::Barcode))
                .unwrap()
                .id,
            "(8004)061414112345400"
        );
        assert_eq!(
            &*plain.resolve(&read("62E3086CED", Source::Rfid)).unwrap().id,
            "62E3086CED"
        );
        assert_eq!(
            &*plain.resolve(&read("AB/1#+", Source::Barcode)).unwrap().id,
            "AB/1#+"
        );
        let tid = plain.resolve(&read("E2801160600002", Source::Rfid));
        assert!(tid.is_ok());
        assert_eq!(
            &*plain
                .resolve(&read("E28011606000", Source::Rfid))
                .unwrap()
                .id,
            "urn:epc:raw:48.xE28011606000"
        );
    }

    /// A scanner with AIM symbology identifiers enabled prefixes every scan
    /// with how it was encoded (`]C0` Code 128, `]E0` EAN-13, `]d1` Data
    /// Matrix...): the asset is the same with the prefix or without it, and
    /// the prefix stays in `raw`. `]C1`/`]d2`/`]Q3`/`]e0` say GS1 data.
    #[test]
    fn an_aim_symbology_identifier_does_not_change_the_asset() {
        let plain = Identity::default();
        for (scan, id) in [
            ("]C0ASSET-0042", "ASSET-0042"),
            ("]E04006381333931", "4006381333931"),
            ("]d1HELLO", "HELLO"),
            ("]Q1https://example.com/x", "https://example.com/x"),
        ] {
            let with = plain.resolve(&read(scan, Source::Barcode)).unwrap();
            let without = plain.resolve(&read(id, Source::Barcode)).unwrap();
            assert_eq!(&*with.id, id, "{scan}");
            assert_eq!(with.id, without.id, "{scan}");
            assert_eq!(&*with.raw, scan);
        }
        for gs1 in [
            "]C18004061414112345400",
            "]Q38004061414112345400",
            "]e08004061414112345400",
        ] {
            let asset = identity().resolve(&read(gs1, Source::Barcode)).unwrap();
            assert_eq!(&*asset.id, "urn:epc:id:giai:0614141.12345400", "{gs1}");
        }
        // A tag's hex is never taken for a symbology identifier.
        let tag = plain.resolve(&read("]C0ASSET", Source::Rfid)).unwrap();
        assert_eq!(&*tag.id, "]C0ASSET");
    }

    #[test]
    fn gs1_data_with_a_bad_check_digit_is_rejected() {
        let err = identity()
            .resolve(&read("]C100106141412345678909", Source::Barcode))
            .unwrap_err();
        assert!(err.reason.contains("GS1"), "{err}");
    }
}
