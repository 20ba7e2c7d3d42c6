//! Checkpoints: the chain's head (`seq` and the hash of that event), signed
//! with the device key as a note, published retained on
//! `{root}/{site}/{gateway}/checkpoint` (`custodyd.checkpoint.v1`).
//!
//! The chain alone shows that nothing inside it was changed; a checkpoint
//! makes the head undeniable, so that cutting events off the end, or
//! replacing the whole history with another consistent chain, shows too.

use std::borrow::Cow;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::chain::{self, Digest};
use super::key::{DeviceKey, PublicKey};
use super::note::{self, NoteError};

pub const CHECKPOINT_SCHEMA: &str = "custodyd.checkpoint.v1";

/// Borrowed where it can be: the note's newlines are escaped in JSON.
#[derive(Serialize, Deserialize)]
struct CheckpointJson<'a> {
    #[serde(borrow)]
    schema: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    head: Cow<'a, str>,
    #[serde(borrow)]
    note: Cow<'a, str>,
}

/// A checkpoint message as read from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub head: Digest,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a {CHECKPOINT_SCHEMA} message: {0}")]
    Unreadable(String),
    #[error("its note: {0}")]
    Note(#[from] NoteError),
    #[error("its signed note says something else than its seq and head: {0:?}")]
    Mismatch(String),
}

/// The signed text: origin, `seq`, base64 of the head, each line ending in
/// a newline (as C2SP tlog-checkpoint lays out a log's size and root).
pub fn note_text(site: &str, gateway: &str, seq: u64, head: &Digest) -> String {
    format!(
        "custodyd/{site}/{gateway}\n{seq}\n{}\n",
        BASE64.encode(head)
    )
}

/// The key name in the note's signature line.
pub fn key_name(site: &str, gateway: &str) -> String {
    format!("{site}/{gateway}")
}

/// Signs the checkpoint of `head` (the hash of event `seq`): the message
/// payload.
pub fn sign(key: &DeviceKey, site: &str, gateway: &str, seq: u64, head: &Digest) -> Vec<u8> {
    let note = note::sign(
        &note_text(site, gateway, seq, head),
        &key_name(site, gateway),
        key,
    );
    let json = CheckpointJson {
        schema: CHECKPOINT_SCHEMA.into(),
        seq,
        head: chain::hex(head).into(),
        note: note.into(),
    };
    serde_json::to_vec(&json).expect("a checkpoint has only strings and an integer")
}

impl Checkpoint {
    pub fn parse(payload: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let json: CheckpointJson = serde_json::from_slice(payload)
            .map_err(|e| CheckpointError::Unreadable(e.to_string()))?;
        if json.schema != CHECKPOINT_SCHEMA {
            return Err(CheckpointError::Unreadable(format!(
                "schema {:?}",
                json.schema
            )));
        }
        let head = chain::parse_hex(&json.head).ok_or_else(|| {
            CheckpointError::Unreadable("head is not 64 lowercase hex digits".into())
        })?;
        Ok(Checkpoint {
            seq: json.seq,
            head,
            note: json.note.into_owned(),
        })
    }

    /// Checks the signature of gateway `site`/`gateway`'s key `public`, and
    /// that what it signed is exactly this checkpoint's `seq` and `head`.
    pub fn verify(
        &self,
        site: &str,
        gateway: &str,
        public: &PublicKey,
    ) -> Result<(), CheckpointError> {
        let text = note::open(&self.note, &key_name(site, gateway), public)?;
        if text != note_text(site, gateway, self.seq, &self.head) {
            return Err(CheckpointError::Mismatch(text.to_owned()));
        }
        Ok(())
    }
}

/// When the uplink signs and publishes checkpoints: every `interval` once
/// the head has moved, and at once when the spool closes (shutdown). The
/// head it is given is the last committed event's, so a checkpoint never
/// covers an event that a crash could still take back.
pub struct Checkpoints {
    key: DeviceKey,
    site: String,
    gateway: String,
    interval: Duration,
    due: Instant,
    /// The `seq` of the last checkpoint signed (0: none since start).
    signed: u64,
    /// Signed, not yet handed to the broker.
    pending: Option<Vec<u8>>,
}

impl Checkpoints {
    pub fn new(key: DeviceKey, site: &str, gateway: &str, interval: Duration) -> Self {
        Checkpoints {
            key,
            site: site.to_owned(),
            gateway: gateway.to_owned(),
            interval,
            due: Instant::now() + interval,
            signed: 0,
            pending: None,
        }
    }

    pub fn device_key(&self) -> String {
        self.key.public_base64()
    }

    /// Signs a checkpoint of `head` (the last committed `seq` and its hash)
    /// if one is due. A newer one replaces one not yet published.
    pub fn update(&mut self, head: Option<(u64, Digest)>, closing: bool, now: Instant) {
        let Some((seq, hash)) = head else { return };
        if seq <= self.signed || (now < self.due && !closing) {
            return;
        }
        self.pending = Some(sign(&self.key, &self.site, &self.gateway, seq, &hash));
        self.signed = seq;
        self.due = now + self.interval;
    }

    /// The checkpoint to publish, if any; hand it back with [`Self::retry`]
    /// if the client could not take it.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        self.pending.take()
    }

    /// Publishing `payload` failed: it goes out next time, unless a newer
    /// one was signed meanwhile.
    pub fn retry(&mut self, payload: Vec<u8>) {
        self.pending.get_or_insert(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_as_signed() {
        let key = DeviceKey::generate().unwrap();
        let head = chain::hash(b"event 7");
        let payload = sign(&key, "s", "g", 7, &head);
        let cp = Checkpoint::parse(&payload).unwrap();
        assert_eq!((cp.seq, cp.head), (7, head));
        assert_eq!(cp.verify("s", "g", &key.public()), Ok(()));
        assert!(cp.verify("s", "other", &key.public()).is_err());
        let other = DeviceKey::generate().unwrap();
        assert!(matches!(
            cp.verify("s", "g", &other.public()),
            Err(CheckpointError::Note(NoteError::NotSigned { .. }))
        ));
        // The JSON says another seq than the signed note.
        let forged = Checkpoint {
            seq: 8,
            ..cp.clone()
        };
        assert!(matches!(
            forged.verify("s", "g", &key.public()),
            Err(CheckpointError::Mismatch(_))
        ));
    }

    #[test]
    fn signed_when_due_and_the_head_moved_and_at_once_when_closing() {
        let key = DeviceKey::generate().unwrap();
        let start = Instant::now();
        let mut cps = Checkpoints::new(key, "s", "g", Duration::from_secs(60));
        let head = |seq: u64| Some((seq, chain::hash(&seq.to_be_bytes())));
        cps.update(head(3), false, start);
        assert!(cps.take().is_none(), "not due yet");
        cps.update(None, false, start + Duration::from_secs(61));
        assert!(cps.take().is_none(), "nothing committed");
        cps.update(head(3), false, start + Duration::from_secs(61));
        let first = Checkpoint::parse(&cps.take().unwrap()).unwrap();
        assert_eq!(first.seq, 3);
        cps.update(head(3), false, start + Duration::from_secs(200));
        assert!(cps.take().is_none(), "no new event");
        cps.update(head(5), false, start + Duration::from_secs(100));
        assert!(cps.take().is_none(), "not due again yet");
        cps.update(head(5), true, start + Duration::from_secs(100));
        let last = cps.take().unwrap();
        assert_eq!(Checkpoint::parse(&last).unwrap().seq, 5);
        cps.retry(last.clone());
        assert_eq!(cps.take(), Some(last));
    }
}
