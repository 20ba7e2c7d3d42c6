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
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn payloads_parse_or_say_why_not() {
        let e = parse(
            br#"{"released":true,"reason":"wiped","expires_at":"2026-12-01T00:00:00Z","by":"x"}"#,
        )
        .unwrap();
        assert!(e.released);
        assert_eq!(e.reason.as_deref(), Some("wiped"));
        assert_eq!(e.expires_at, Some(at("2026-12-01T00:00:00Z")));
        assert_eq!(
            parse(br#"{"released":true,"expires_at":"2026-12-01T02:30:00.5+02:30"}"#)
                .unwrap()
                .expires_at,
            Some(at("2026-12-01T00:00:00.5Z"))
        );
        for bad in [
            &b"yes"[..],
            b"[]",
            b"{}",
            br#"{"released":"true"}"#,
            br#"{"released":true,"expires_at":"tomorrow"}"#,
            br#"{"released":true,"expires_at":"2026-12-01T00:00:00+25:00"}"#,
            br#"{"released":true,"reason":7}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn topics_name_canonical_asset_keys_only() {
        let p = "itad/reno-1/release/";
        assert_eq!(
            key_of(p, "itad/reno-1/release/AB%2F1%23%2B"),
            Ok("AB%2F1%23%2B")
        );
        assert_eq!(
            key_of(p, "itad/reno-1/release/urn:epc:id:giai:0614141.1"),
            Ok("urn:epc:id:giai:0614141.1")
        );
        for bad in [
            "itad/reno-1/release/",
            "itad/reno-1/release/a/b",
            "itad/reno-2/release/a",
            "itad/reno-1/release/AB%2f1",
            "itad/reno-1/release/AB%2",
            "itad/reno-1/release/a b",
        ] {
            assert!(key_of(p, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_is_judged_when_asked() {
        let stored = br#"{"released":true,"expires_at":"2026-12-01T00:00:00Z"}"#;
        let before = at("2026-11-30T23:59:59Z");
        assert!(matches!(
            standing(Some(stored), before),
            Standing::Released(_)
        ));
        let after = at("2026-12-01T00:00:00Z");
        assert!(matches!(
            standing(Some(stored), after),
            Standing::Expired(_)
        ));
        assert!(matches!(
            standing(Some(br#"{"released":false}"#), after),
            Standing::NotReleased(_)
        ));
        assert_eq!(standing(Some(b""), after), Standing::Revoked);
        assert_eq!(standing(None, after), Standing::Unknown);
    }

    /// Both panicked a task when rendered: the gate's denial quoting the
    /// first, the spool rendering the grant that carried the second.
    #[test]
    fn expiries_an_offset_pushes_out_of_1970_to_9999_are_refused() {
        for text in ["1970-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"] {
            let payload = format!(r#"{{"released":true,"expires_at":"{text}"}}"#);
            let error = parse(payload.as_bytes()).unwrap_err();
            assert!(error.contains("outside 1970"), "{error}");
        }
        for text in ["1970-01-01T01:00:00+01:00", "9999-12-31T22:59:59-01:00"] {
            assert!(parse_rfc3339(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn an_expiry_with_a_multibyte_character_where_the_offset_would_start_is_refused() {
        // Six bytes from the end falls inside the "é".
        let error = parse("{\"released\":true,\"expires_at\":\"xéxxxxx\"}".as_bytes()).unwrap_err();
        assert!(error.contains("not an RFC 3339 time"), "{error}");
    }

    proptest::proptest! {
        /// Whatever central (or anyone able to publish) sends: no panic, and
        /// what is accepted stands as it says.
        #[test]
        fn any_message_is_an_entry_or_refused(
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            key in "\\PC{0,40}",
        ) {
            crate::fuzzing::release_policy(&payload, &key);
        }

        #[test]
        fn any_expiry_text_parses_or_is_refused(text in "\\PC{0,40}") {
            let _ = crate::timestamp::parse_rfc3339(&text);
        }

        /// Times near both ends of what RFC 3339 can write, with any
        /// offset: each is refused, or its grant renders and reads back.
        #[test]
        fn any_expiry_near_the_ends_of_time_is_refused_or_rendered(
            year in proptest::sample::select(vec![1969u32, 1970, 1971, 2026, 9998, 9999]),
            month in 1u32..=12,
            day in 1u32..=28,
            hour in 0u32..24,
            minute in 0u32..60,
            offset in "Z|[+-](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9]",
        ) {
            let payload = format!(
                r#"{{"released":true,"expires_at":"{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:59.999{offset}"}}"#
            );
            crate::fuzzing::release_policy(payload.as_bytes(), "AB-1");
        }
    }
}
