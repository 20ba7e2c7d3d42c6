//! The `[trust]` table: which central keys may sign release policy entries,
//! pickup manifests and commands (see `trust`).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;

use super::names::name_problem;
use super::validate::Errors;
use super::{Config, LocationKind};

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

/// Central's keys are well-formed, and a cage gate has them unless unsigned
/// control messages are allowed on purpose: otherwise anyone who can publish
/// to the broker opens the gate.
pub(super) fn check_trust(errors: &mut Errors, config: &Config) {
    let gate = config
        .locations
        .iter()
        .find(|l| l.kind == LocationKind::CageGate);
    let (keys, allow_unsigned) = config
        .trust
        .as_ref()
        .map_or((None, false), |t| (Some(&t.central_keys), t.allow_unsigned));
    for (id, key) in keys.into_iter().flatten() {
        let label = format!("trust.central_keys.{id}");
        if let Some(problem) = name_problem(id) {
            errors.push(label.clone(), format!("the key id {problem}"));
        }
        if let Err(problem) = super::parse_public_key(key) {
            errors.push(label, problem);
        }
    }
    if let Some(gate) = gate.filter(|_| keys.is_none_or(|k| k.is_empty()) && !allow_unsigned) {
        errors.push(
            "trust.central_keys",
            format!(
                "location {} is a cage_gate: configure central's public keys, or set \
                 trust.allow_unsigned = true on purpose (anyone who can publish to \
                 the broker could then release assets and unlock the gate)",
                gate.name
            ),
        );
    }
}
