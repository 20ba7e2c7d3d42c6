//! The on-disk record: a postcard-encoded, versioned envelope.
//!
//! postcard is not self-describing, so schema evolution is ours to manage:
//! every record is a variant of [`StoredRecord`], and a later version adds a
//! variant rather than changing an existing one. Variants and fields are never
//! reordered, so a spool written by this version is read by the next.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredRecord {
    V1(RecordV1),
}

/// An event exactly as it will be published: what the spool holds is what
/// the broker gets, byte for byte, on every (re-)delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordV1 {
    pub topic: String,
    pub payload: Vec<u8>,
    /// When the record was committed (ms since the Unix epoch), for the
    /// "oldest event" age that technicians and health reports look at.
    pub committed_at_ms: u64,
}

impl StoredRecord {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("postcard encodes into a Vec without failing")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    pub fn v1(&self) -> &RecordV1 {
        match self {
            StoredRecord::V1(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire format is a promise to the next version: pin it.
    #[test]
    fn v1_encoding_is_stable() {
        let r = StoredRecord::V1(RecordV1 {
            topic: "a/b".into(),
            payload: b"{}".to_vec(),
            committed_at_ms: 300,
        });
        let bytes = r.encode();
        assert_eq!(bytes, [0, 3, b'a', b'/', b'b', 2, b'{', b'}', 0xAC, 0x02]);
        assert_eq!(StoredRecord::decode(&bytes).unwrap(), r);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(StoredRecord::decode(&[7, 1, 2]).is_err());
        assert!(StoredRecord::decode(&[]).is_err());
    }
}
