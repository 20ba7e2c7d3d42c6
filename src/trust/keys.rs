//! Ed25519 keys: central's public keys as configured, and the private key
//! file `custodyd keygen` writes and `custodyd sign` reads (central's side,
//! and the demo's).
//!
//! The key file is two TOML lines, `key_id = "..."` and `seed = "<base64 of the
//! 32-byte Ed25519 seed>"` (RFC 8032's private key), so any Ed25519
//! library can use the same key.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

pub use crate::config::{parse_public_key as parse_public, PUBLIC_KEY_LEN};
const SEED_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no random numbers from the system")]
    Random,
}

/// Whether `sig` is `key`'s signature over `message`.
pub fn verifies(key: &[u8; PUBLIC_KEY_LEN], message: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, key)
        .verify(message, sig)
        .is_ok()
}

/// A private key with the id central's gateways know it by.
pub struct SigningKey {
    pub key_id: String,
    pair: Ed25519KeyPair,
    seed: [u8; SEED_LEN],
}

impl SigningKey {
    /// A new key from the system's random numbers.
    pub fn generate(key_id: &str) -> Result<Self, KeyError> {
        let mut seed = [0u8; SEED_LEN];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| KeyError::Random)?;
        Self::from_seed(key_id, seed)
    }

    fn from_seed(key_id: &str, seed: [u8; SEED_LEN]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| KeyError::Invalid(format!("not an Ed25519 seed: {e}")))?;
        Ok(SigningKey {
            key_id: key_id.to_string(),
            pair,
            seed,
        })
    }

    /// Parses a key file's text.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let field = |name: &str| {
            text.lines()
                .filter_map(|line| line.split_once('='))
                .find(|(key, _)| key.trim() == name)
                .and_then(|(_, value)| value.trim().strip_prefix('"')?.strip_suffix('"'))
                .ok_or_else(|| {
                    KeyError::Invalid(format!(
                        "expected key_id = \"...\" and seed = \"...\"; no {name}"
                    ))
                })
        };
        let key_id = field("key_id")?;
        let seed = STANDARD
            .decode(field("seed")?.trim())
            .map_err(|e| KeyError::Invalid(format!("seed is not base64: {e}")))?;
        let seed = <[u8; SEED_LEN]>::try_from(seed.as_slice()).map_err(|_| {
            KeyError::Invalid(format!("seed is {} bytes, not {SEED_LEN}", seed.len()))
        })?;
        Self::from_seed(key_id, seed)
    }

    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| KeyError::Invalid(format!("{}: {e}", path.display())))
    }

    /// The key file's text. Secret: written with mode 0600.
    pub fn to_file_text(&self) -> String {
        format!(
            "# custodyd signing key: keep secret; gateways get only the public key.\n\
             key_id = {:?}\nseed = {:?}\n",
            self.key_id,
            STANDARD.encode(self.seed)
        )
    }

    /// Base64 of the public key, as `[trust] central_keys` takes it.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_round_trips_and_its_signatures_verify() {
        let key = SigningKey::generate("central-1").unwrap();
        let again = SigningKey::parse(&key.to_file_text()).unwrap();
        assert_eq!(again.key_id, "central-1");
        assert_eq!(again.public_base64(), key.public_base64());
        let public = parse_public(&key.public_base64()).unwrap();
        let sig = again.sign(b"hello");
        assert!(verifies(&public, b"hello", &sig));
        assert!(!verifies(&public, b"hellO", &sig));
        assert!(parse_public("AAAA").unwrap_err().contains("3 bytes"));
        assert!(SigningKey::parse("key_id = \"x\"\nseed = \"AAAA\"").is_err());
    }
}
