//! The `[trust]` table: which central keys may sign release policy entries,
//! pickup manifests and commands (see `trust`).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;

/// Ed25519 public keys are 32 bytes.
pub const PUBLIC_KEY_LEN: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Key id -> base64 of the 32-byte Ed25519 public key. Several at once,
    /// so central can roll a new key out before it retires the old one.
    #[serde(default)]
    pub central_keys: BTreeMap<String, String>,
    /// Accept unsigned control messages too. Only for set-ups where anyone
    /// who can publish to the broker may open the gates anyway; a cage gate
    /// without keys needs this set on purpose.
    #[serde(default)]
    pub allow_unsigned: bool,
}

/// The 32 public key bytes in `text` (base64), or why not.
pub fn parse_public_key(text: &str) -> Result<[u8; PUBLIC_KEY_LEN], String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("is not base64: {e}"))?;
    <[u8; PUBLIC_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "is {} bytes; an Ed25519 public key is {PUBLIC_KEY_LEN}",
            bytes.len()
        )
    })
}
