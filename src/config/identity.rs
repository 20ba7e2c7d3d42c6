//! `[identity]`: what the gateway needs to know to name assets.

use serde::Deserialize;

use super::validate::Errors;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Known GS1 company prefixes (6 to 12 digits). A GS1 barcode needs its
    /// company prefix's length to map to the same EPC URI as the asset's
    /// RFID tag; with an unknown prefix it keeps its element string.
    #[serde(default)]
    pub company_prefixes: Vec<String>,
}

pub(super) fn check_identity(errors: &mut Errors, identity: &IdentityConfig) {
    for (i, prefix) in identity.company_prefixes.iter().enumerate() {
        if let Err(e) = crate::identity::gs1::CompanyPrefixes::new([prefix]) {
            errors.push(format!("identity.company_prefixes[{i}]"), e.to_string());
        }
    }
}
