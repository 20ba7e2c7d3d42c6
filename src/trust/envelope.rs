//! The signed envelope of CONTRACT.md ("Signed control messages"):
//! `{"signed": base64(inner JSON bytes), "key": key id, "sig": base64(Ed25519 signature)}`.
//!
//! The signature is over the exact inner bytes, so nothing is re-serialised
//! between central and the gateway: what was signed is what is parsed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::refusal::{Reason, Refusal};

/// Ed25519 signatures are 64 bytes.
pub const SIGNATURE_LEN: usize = 64;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    signed: String,
    key: String,
    sig: String,
}

/// An envelope taken apart, not verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub inner: Vec<u8>,
    pub key: String,
    pub sig: [u8; SIGNATURE_LEN],
}

/// Whether `payload` is meant as an envelope at all: a JSON object with a
/// `signed` member. Anything else is an unsigned message.
pub fn looks_signed(payload: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        signed: serde::de::IgnoredAny,
    }
    serde_json::from_slice::<Probe>(payload).is_ok()
}

/// Takes an envelope apart; a malformed one is a bad signature (it was meant
/// to be signed and is not validly so).
pub fn parse(payload: &[u8]) -> Result<Envelope, Refusal> {
    let bad = |what: String| Refusal::new(Reason::BadSignature, what);
    let wire: Wire = serde_json::from_slice(payload)
        .map_err(|e| bad(format!("not an envelope {{signed, key, sig}}: {e}")))?;
    let inner = STANDARD
        .decode(&wire.signed)
        .map_err(|e| bad(format!("`signed` is not base64: {e}")))?;
    let sig = STANDARD
        .decode(&wire.sig)
        .map_err(|e| bad(format!("`sig` is not base64: {e}")))?;
    let sig = <[u8; SIGNATURE_LEN]>::try_from(sig.as_slice())
        .map_err(|_| bad(format!("`sig` is {} bytes, not {SIGNATURE_LEN}", sig.len())))?;
    Ok(Envelope {
        inner,
        key: wire.key,
        sig,
    })
}

/// The envelope of `inner` signed as `sig` by key `key`, as published.
pub fn encode(inner: &[u8], key: &str, sig: &[u8]) -> String {
    let wire = Wire {
        signed: STANDARD.encode(inner),
        key: key.to_string(),
        sig: STANDARD.encode(sig),
    };
    // A struct of three strings always serialises.
    serde_json::to_string(&wire).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_malformed_ones_say_why() {
        let text = encode(br#"{"a":1}"#, "k1", &[7; 64]);
        assert!(looks_signed(text.as_bytes()));
        let e = parse(text.as_bytes()).unwrap();
        assert_eq!(e.inner, br#"{"a":1}"#);
        assert_eq!(e.key, "k1");
        assert_eq!(e.sig, [7; 64]);
        assert!(!looks_signed(br#"{"released":true}"#));
        assert!(!looks_signed(b""));
        for (bad, why) in [
            (r#"{"signed":"e30=","key":"k"}"#, "not an envelope"),
            (r#"{"signed":"%%%","key":"k","sig":"AA=="}"#, "not base64"),
            (r#"{"signed":"e30=","key":"k","sig":"AAAA"}"#, "3 bytes"),
            (
                r#"{"signed":"e30=","key":"k","sig":"","x":1}"#,
                "not an envelope",
            ),
        ] {
            let r = parse(bad.as_bytes()).unwrap_err();
            assert_eq!(r.reason, Reason::BadSignature);
            assert!(r.detail.contains(why), "{bad}: {}", r.detail);
        }
    }
}
