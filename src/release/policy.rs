//! The release policy: what central says about each asset, as the gateway
//! keeps it, and what it means when an asset tries to leave.
//!
//! Central publishes `{root}/{site}/release/{asset key}` retained (QoS 1):
//! `{"released": true, "reason"?: "...", "expires_at"?: "RFC 3339"}`; other
//! fields are ignored. With `[trust]` keys it comes signed (see `trust`),
//! and what is stored is the signed inner object; revocation is then a
//! signed `{"released": false}`. Where unsigned messages are allowed, an
//! empty payload revokes the entry too. An entry past its `expires_at` is
//! not released.
//!
//! The local copy (table `release` of [`crate::retained`]) is keyed by
//! asset key and holds each accepted payload as received, or an empty value
//! for a revocation: a revoked asset is not released, which is not the same
//! as an asset never mentioned (that one goes by the gate's `unknown`).
//!
//! A malformed message (not a JSON object with a boolean `released`, a bad
//! `expires_at`, a topic whose last level is not a canonical asset key) is
//! logged and ignored: it changes nothing, in particular it does not erase
//! or revoke the entry it would have replaced. The publisher sees the
//! warning in the gateway's log; to revoke, publish `{"released": false}`.

use std::time::SystemTime;

use serde::Deserialize;

use crate::timestamp::parse_rfc3339;
use crate::topic::asset_key;

/// One asset's entry, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub released: bool,
    pub reason: Option<String>,
    pub expires_at: Option<SystemTime>,
}

#[derive(Deserialize)]
struct Wire {
    released: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

/// Parses a non-empty policy payload.
pub fn parse(payload: &[u8]) -> Result<Entry, String> {
    let wire: Wire = serde_json::from_slice(payload).map_err(|e| {
        format!("expected {{\"released\": true|false, \"reason\"?, \"expires_at\"?}}: {e}")
    })?;
    let expires_at = wire
        .expires_at
        .as_deref()
        .map(|t| parse_rfc3339(t).map_err(|e| format!("expires_at {e}")))
        .transpose()?;
    Ok(Entry {
        released: wire.released,
        reason: wire.reason,
        expires_at,
    })
}

/// The asset key a policy topic names, if it is one this gateway can look
/// up: one level below `prefix`, in the canonical encoding of
/// [`asset_key`] (so `%2F`, not `%2f`).
pub fn key_of<'t>(prefix: &str, topic: &'t str) -> Result<&'t str, String> {
    let key = topic
        .strip_prefix(prefix)
        .filter(|k| !k.is_empty() && !k.contains('/'))
        .ok_or_else(|| format!("expected {prefix}{{asset key}}"))?;
    let decoded = percent_decode(key).ok_or_else(|| format!("{key:?} is not percent-encoded"))?;
    let canonical = asset_key(&decoded);
    if canonical != key {
        return Err(format!(
            "{key:?} is not a canonical asset key (expected {canonical:?})"
        ));
    }
    Ok(key)
}

fn percent_decode(key: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(key.len());
    let mut rest = key.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Where an asset stands when it tries to leave.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    Released(Entry),
    /// `released: false`.
    NotReleased(Entry),
    Expired(Entry),
    /// Revoked by an empty payload (or stored in a form this version
    /// cannot read, which is treated alike: not released).
    Revoked,
    /// Never mentioned.
    Unknown,
}

/// The standing of an asset whose stored value is `stored`, at `now`.
pub fn standing(stored: Option<&[u8]>, now: SystemTime) -> Standing {
    match stored {
        None => Standing::Unknown,
        Some([]) => Standing::Revoked,
        Some(payload) => match parse(payload) {
            Ok(e) if !e.released => Standing::NotReleased(e),
            Ok(e) if e.expires_at.is_some_and(|t| t <= now) => Standing::Expired(e),
            Ok(e) => Standing::Released(e),
            // Stored only after parsing, so only a future format change
            // gets here: not released, as when unsure.
            Err(_) => Standing::Revoked,
        },
    }
}

#[cfg(test)]
mod tests;
