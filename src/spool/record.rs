//! The on-disk record: a postcard-encoded, versioned envelope.
//!
//! postcard is not self-describing, so schema evolution is ours to manage:
//! every record is a variant of [`StoredRecord`], and a later version adds a
//! variant rather than changing an existing one. Variants and fields are never
//! reordered, so a spool written by this version is read by the next.
//!
//! A record may be followed by the state its commit saved (a [`Trailer`]):
//! riding in the record, the state is written with the event in the one
//! table an append touches, and folded into the spool's state table later
//! (see [`super::store`]). A version that knows only the record still reads
//! it: postcard ignores what follows a value.

use serde::{Deserialize, Serialize};

use crate::custody::Save;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredRecord {
    V1(RecordV1),
}

/// An event exactly as it will be published: what the spool holds is what
/// the broker gets, byte for byte, on every (re-)delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordV1 {
    pub topic: String,
    #[serde(with = "as_bytes")]
    pub payload: Vec<u8>,
    /// When the record was committed (ms since the Unix epoch), for the
    /// "oldest event" age that technicians and health reports look at.
    pub committed_at_ms: u64,
}

/// postcard writes a byte string as it writes a sequence of bytes (a
/// length, then the bytes), but serde hands a `Vec<u8>` over byte by byte:
/// as bytes, a payload is one copy each way, in the same encoding.
mod as_bytes {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("bytes")
        }

        // postcard, the one format records are written in, hands a byte
        // string over as a slice.
        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }
    }
}

/// The saves committed with a record, in order.
#[derive(Debug, Deserialize)]
enum Trailer {
    V1(Vec<(String, Option<Vec<u8>>)>),
}

/// [`Trailer`] as written, borrowing the saves: postcard encodes a string
/// and a byte slice as it does their owned forms (the round trip is
/// tested).
#[derive(Serialize)]
enum TrailerOut<'a> {
    V1(SavesOut<'a>),
}

/// The saves as [`Trailer`]'s list, written straight from the slice.
struct SavesOut<'a>(&'a [Save]);

impl Serialize for SavesOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|save| (save.key.as_str(), save.value.as_deref())),
        )
    }
}

impl StoredRecord {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("postcard encodes into a Vec without failing")
    }

    /// The record alone; a [`Trailer`] after it is ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// The record and the saves that follow it (none if nothing follows).
    pub fn decode_with_saves(bytes: &[u8]) -> Result<(Self, Vec<Save>), postcard::Error> {
        let (record, rest) = postcard::take_from_bytes(bytes)?;
        if rest.is_empty() {
            return Ok((record, Vec::new()));
        }
        let Trailer::V1(saves) = postcard::from_bytes(rest)?;
        let saves = saves
            .into_iter()
            .map(|(key, value)| Save { key, value })
            .collect();
        Ok((record, saves))
    }

    pub fn v1(&self) -> &RecordV1 {
        match self {
            StoredRecord::V1(r) => r,
        }
    }
}

/// `saves` encoded to follow a record (empty for none).
pub fn trailer(saves: &[Save]) -> Vec<u8> {
    if saves.is_empty() {
        return Vec::new();
    }
    postcard::to_stdvec(&TrailerOut::V1(SavesOut(saves)))
        .expect("postcard encodes into a Vec without failing")
}

/// The length of [`trailer`]`(saves)`, counted without writing it.
pub fn trailer_len(saves: &[Save]) -> u64 {
    if saves.is_empty() {
        return 0;
    }
    let size = postcard::serialize_with_flavor(
        &TrailerOut::V1(SavesOut(saves)),
        postcard::ser_flavors::Size::default(),
    );
    size.expect("postcard counts without failing") as u64
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

    /// The saves ride after the record, which an older reader still reads.
    #[test]
    fn saves_follow_the_record_and_leave_it_readable() {
        let r = StoredRecord::V1(RecordV1 {
            topic: "a/b".into(),
            payload: b"{}".to_vec(),
            committed_at_ms: 300,
        });
        let saves = [
            Save {
                key: "presence/x".into(),
                value: Some(vec![1, 200, 255]),
            },
            Save {
                key: "window/y".into(),
                value: None,
            },
        ];
        let mut bytes = r.encode();
        bytes.extend(trailer(&saves));
        assert_eq!(StoredRecord::decode(&bytes).unwrap(), r);
        assert_eq!(
            StoredRecord::decode_with_saves(&bytes).unwrap(),
            (r.clone(), saves.to_vec())
        );
        assert_eq!(
            StoredRecord::decode_with_saves(&r.encode()).unwrap(),
            (r, Vec::new())
        );
        assert!(trailer(&[]).is_empty());
        assert_eq!(trailer_len(&saves), trailer(&saves).len() as u64);
    }

    proptest::proptest! {
        /// Whatever the card gives back decodes or is refused, and what
        /// decodes is what encodes back.
        #[test]
        fn any_bytes_decode_or_are_refused(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
        ) {
            crate::fuzzing::spool_record(&bytes);
        }

        /// Any record with any saves after it reads back as written.
        #[test]
        fn records_with_saves_read_back(
            topic in "\\PC{0,40}",
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            ms in proptest::num::u64::ANY,
            saves in proptest::collection::vec(
                ("\\PC{0,20}", proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..32))),
                0..6,
            ),
        ) {
            let record = StoredRecord::V1(RecordV1 { topic, payload, committed_at_ms: ms });
            let saves: Vec<Save> = saves.into_iter().map(|(key, value)| Save { key, value }).collect();
            let mut bytes = record.encode();
            bytes.extend(trailer(&saves));
            crate::fuzzing::spool_record(&bytes);
            proptest::prop_assert_eq!(StoredRecord::decode_with_saves(&bytes).unwrap(), (record, saves));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(StoredRecord::decode(&[7, 1, 2]).is_err());
        assert!(StoredRecord::decode(&[]).is_err());
    }
}
