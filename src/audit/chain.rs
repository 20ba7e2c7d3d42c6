//! The hash chain over spooled events: each event's `prev` is the SHA-256 of
//! the exact payload bytes of the event before it, so no event can be
//! altered, removed or inserted without breaking every later link.

use ring::digest::{digest, SHA256};

/// A SHA-256 digest: an event's hash, a chain's head.
pub type Digest = [u8; 32];

/// The hash of an event as published: its exact payload bytes.
pub fn hash(payload: &[u8]) -> Digest {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, payload).as_ref());
    out
}

/// Lowercase hex, as `prev` and a checkpoint's `head` carry it.
pub fn hex(d: &Digest) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    d.iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

/// Parses what [`hex`] writes, and only that (lowercase, 64 digits): the
/// contract fixes the spelling, so any other is a different value.
pub fn parse_hex(s: &str) -> Option<Digest> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_the_bytes_in_lowercase_hex() {
        // FIPS 180-2 test vector.
        assert_eq!(
            hex(&hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let h = hash(b"{}");
        assert_eq!(parse_hex(&hex(&h)), Some(h));
    }

    #[test]
    fn only_the_contract_spelling_parses() {
        let h = hex(&hash(b"x"));
        assert!(parse_hex(&h.to_uppercase()).is_none());
        assert!(parse_hex(&h[1..]).is_none());
        assert!(parse_hex(&format!("{h}0")).is_none());
        assert!(parse_hex(&h.replace(&h[..1], "g")).is_none());
        assert!(parse_hex("é").is_none());
    }
}
