//! Signed notes in the format of the Go checksum database
//! (golang.org/x/mod/sumdb/note, C2SP signed-note), so that a central team
//! can check a checkpoint with an existing verifier in any language:
//!
//! ```text
//! <text, every line ending in a newline>
//!
//! — <key name> <base64(key hash (4 bytes) || Ed25519 signature (64 bytes))>
//! ```
//!
//! The key hash is the first 4 bytes of SHA-256(name || "\n" || 0x01 ||
//! public key); 0x01 names Ed25519. It lets a verifier holding many keys
//! find the right one without trying each.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::digest::{Context, SHA256};
use ring::signature::{UnparsedPublicKey, ED25519};

use super::key::{DeviceKey, PublicKey};

/// The signature-algorithm byte of Ed25519 in the note format.
const ALG_ED25519: u8 = 0x01;
/// What starts a signature line: an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a signed note: {0}")]
    Malformed(&'static str),
    #[error("no signature by key {name} ({key_hash}) in the note")]
    NotSigned { name: String, key_hash: String },
    #[error(
        "the signature by key {0} does not verify: the text was changed or signed by another key"
    )]
    BadSignature(String),
}

/// The first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key).
pub fn key_hash(name: &str, public: &PublicKey) -> [u8; 4] {
    let mut h = Context::new(&SHA256);
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(&[ALG_ED25519]);
    h.update(public);
    let mut out = [0; 4];
    out.copy_from_slice(&h.finish().as_ref()[..4]);
    out
}

/// The verifier key of the note format, `name+hash+base64(0x01 || key)`,
/// which Go's `note.NewVerifier` and its ports take as is.
pub fn verifier_key(name: &str, public: &PublicKey) -> String {
    let mut alg_key = vec![ALG_ED25519];
    alg_key.extend_from_slice(public);
    format!(
        "{name}+{:08x}+{}",
        u32::from_be_bytes(key_hash(name, public)),
        BASE64.encode(alg_key)
    )
}

/// Signs `text` (each line ending in a newline; no other control
/// characters) as key `name`: the text, a blank line, one signature line.
pub fn sign(text: &str, name: &str, key: &DeviceKey) -> String {
    debug_assert!(text.ends_with('\n') && valid_text(text) && valid_name(name));
    let mut sig = key_hash(name, &key.public()).to_vec();
    sig.extend_from_slice(&key.sign(text.as_bytes()));
    format!("{text}\n{SIG_PREFIX}{name} {}\n", BASE64.encode(sig))
}

/// The text of `note` once the signature of key `name` over it verifies
/// with `public`. Signatures of other keys are ignored, as the format
/// allows several signers.
pub fn open<'a>(note: &'a str, name: &str, public: &PublicKey) -> Result<&'a str, NoteError> {
    if !valid_text(note) {
        return Err(NoteError::Malformed(
            "control characters other than newline",
        ));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed("no signature line"));
    }
    let want = key_hash(name, public);
    let mut found = false;
    for line in sigs.lines() {
        let (signer, sig) = line
            .strip_prefix(SIG_PREFIX)
            .and_then(|l| l.split_once(' '))
            .ok_or(NoteError::Malformed(
                "a signature line is not \"\u{2014} name signature\"",
            ))?;
        let sig = BASE64
            .decode(sig)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if !valid_name(signer) || sig.len() < 5 {
            return Err(NoteError::Malformed("a signature line is malformed"));
        }
        if signer != name || sig[..4] != want {
            continue;
        }
        found = true;
        UnparsedPublicKey::new(&ED25519, public)
            .verify(text.as_bytes(), &sig[4..])
            .map_err(|_| NoteError::BadSignature(name.to_owned()))?;
    }
    match found {
        true => Ok(text),
        false => Err(NoteError::NotSigned {
            name: name.to_owned(),
            key_hash: format!("{:08x}", u32::from_be_bytes(want)),
        }),
    }
}

/// Non-empty, without Unicode spaces or `+` (the format's rule for names).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+')
}

fn valid_text(text: &str) -> bool {
    !text.contains(|c: char| c < ' ' && c != '\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "custodyd/s/g\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    #[test]
    fn a_signed_note_opens_with_its_key_only() {
        let key = DeviceKey::generate().unwrap();
        let note = sign(TEXT, "s/g", &key);
        assert!(note.starts_with(TEXT));
        assert!(note[TEXT.len()..].starts_with("\n\u{2014} s/g "));
        assert_eq!(open(&note, "s/g", &key.public()), Ok(TEXT));

        let other = DeviceKey::generate().unwrap();
        assert!(matches!(
            open(&note, "s/g", &other.public()),
            Err(NoteError::NotSigned { .. })
        ));
        assert!(matches!(
            open(&note, "s/h", &key.public()),
            Err(NoteError::NotSigned { .. })
        ));
        let altered = note.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(
            open(&altered, "s/g", &key.public()),
            Err(NoteError::BadSignature("s/g".into()))
        );
    }

    #[test]
    fn malformed_notes_are_errors_not_panics() {
        let key = DeviceKey::generate().unwrap();
        let note = sign(TEXT, "s/g", &key);
        for bad in [
            "",
            "\n\n",
            TEXT,
            &note.replace('\u{2014}', "-"),
            &note.replacen("\n\n", "\r\n\n", 1),
            &note[..note.len() - 1],
            &format!("{note}junk\n"),
            &note.replace(" s/g ", " s/g+x "),
        ] {
            assert!(open(bad, "s/g", &key.public()).is_err(), "accepted {bad:?}");
        }
    }
}
