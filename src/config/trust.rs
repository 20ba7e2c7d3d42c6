//! The `[trust]` table: which central keys may sign release policy entries,
//! pickup manifests and commands (see `trust`).

use std::collections::BTreeMap;

use serde::Deserialize;

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
