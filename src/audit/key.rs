//! The device key: an Ed25519 key pair made at first start and kept in
//! `data_dir`, with which the gateway signs its checkpoints.
//!
//! The private half never leaves the file: it is not logged (`Debug` shows
//! the public half only), not published, not printed. A key file that exists
//! but cannot be read is an error, never a reason to make a new key: a new
//! key would silently cut the gateway's history off from everything signed
//! before.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use tracing::{info, warn};

/// The key file in `data_dir`: the PKCS#8 (RFC 8410) DER document, which
/// `openssl pkey -inform DER` reads too.
pub const KEY_FILE: &str = "device.key";

/// An Ed25519 public key, 32 bytes.
pub type PublicKey = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("device key {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("device key {0} is not an Ed25519 PKCS#8 key (damaged or replaced?); move it aside only if this gateway's signed history may start over")]
    Unreadable(PathBuf),
    #[error("no device key in {0} yet: the daemon makes it at its first start")]
    Missing(PathBuf),
    #[error("the system's random source failed")]
    Random,
}

pub struct DeviceKey(Ed25519KeyPair);

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey({})", self.public_base64())
    }
}

impl DeviceKey {
    /// A fresh key, held only in memory (tests and the demo's tools).
    pub fn generate() -> Result<DeviceKey, KeyError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
        Ok(DeviceKey(
            Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| KeyError::Random)?,
        ))
    }

    /// The key in `data_dir`, made there (mode 0600) if there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<DeviceKey, KeyError> {
        match Self::load(data_dir) {
            Err(KeyError::Missing(_)) => Self::create(data_dir),
            other => other,
        }
    }

    /// The key in `data_dir`; never makes one.
    pub fn load(data_dir: &Path) -> Result<DeviceKey, KeyError> {
        let path = data_dir.join(KEY_FILE);
        let io_error = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let der = match fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyError::Missing(data_dir.to_owned()))
            }
            other => other.map_err(io_error)?,
        };
        let mode = fs::metadata(&path).map_err(io_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            warn!(
                "device key {} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map(DeviceKey)
            .map_err(|_| KeyError::Unreadable(path))
    }

    /// Writes a new key durably: a temporary file (0600 from its creation),
    /// fsynced, renamed into place, the directory fsynced; a power cut
    /// leaves either no key or the whole key.
    pub fn create(data_dir: &Path) -> Result<DeviceKey, KeyError> {
        let path = data_dir.join(KEY_FILE);
        let tmp = data_dir.join(format!("{KEY_FILE}.tmp"));
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
        let write = || -> io::Result<()> {
            let _ = fs::remove_file(&tmp);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(pkcs8.as_ref())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(data_dir)?.sync_all()
        };
        write().map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let key = Self::load(data_dir)?;
        info!(
            path = %path.display(),
            public = %key.public_base64(),
            "made this gateway's device key"
        );
        Ok(key)
    }

    pub fn public(&self) -> PublicKey {
        let mut out = [0; 32];
        out.copy_from_slice(self.0.public_key().as_ref());
        out
    }

    /// The public key as the status message and `--key` carry it.
    pub fn public_base64(&self) -> String {
        BASE64.encode(self.public())
    }

    /// An Ed25519 signature (RFC 8032; deterministic).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0; 64];
        out.copy_from_slice(self.0.sign(message).as_ref());
        out
    }
}

/// A public key given as base64 of its 32 bytes (`--key`).
pub fn parse_public(base64: &str) -> Option<PublicKey> {
    BASE64.decode(base64.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_to_the_owner_and_the_same_on_every_start() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            DeviceKey::load(dir.path()),
            Err(KeyError::Missing(_))
        ));
        let key = DeviceKey::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = DeviceKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.public(), key.public());
        assert_eq!(parse_public(&key.public_base64()), Some(key.public()));
        assert!(!format!("{key:?}")
            .contains(&BASE64.encode(fs::read(dir.path().join(KEY_FILE)).unwrap())));
    }

    #[test]
    fn a_key_that_cannot_be_read_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::write(&path, b"not a key").unwrap();
        assert!(matches!(
            DeviceKey::load_or_create(dir.path()),
            Err(KeyError::Unreadable(_))
        ));
        assert_eq!(fs::read(&path).unwrap(), b"not a key", "left as it was");
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(
            DeviceKey::load_or_create(dir.path()),
            Err(KeyError::Io { .. })
        ));
    }
}
