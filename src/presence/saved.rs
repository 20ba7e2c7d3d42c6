//! An asset's presence as saved with its `arrived` (see
//! [`crate::custody::Save`]): after a `kill -9` or a power cut the daemon
//! starts with what was in the field, so an asset still there makes no
//! second `arrived`, and one that left while it was down gets its
//! `departed` once its departure timeout has passed since the start.
//!
//! The snapshot is the presence as the `arrived` saw it: reads after that
//! are not saved one by one (that would cost a commit per read), so a
//! `departed` after a crash counts the reads of its arrival and those
//! since the start. A clean stop saves nothing more either; the field is
//! the same after it.
//!
//! postcard is not self-describing: a later version adds a variant to
//! [`Stored`] rather than changing one.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Evidence, SideSeen};
use crate::custody::save::{ms, time};
use crate::custody::Save;
use crate::decode::Source;
use crate::identity::Asset;

/// The presence stage's keys in the saved state.
pub const PREFIX: &str = "presence/";

/// The key of an asset's presence at a location. The location's length
/// keeps keys apart whatever characters the names hold.
pub fn key(location: &str, asset: &str) -> String {
    format!("{PREFIX}{}/{location}/{asset}", location.len())
}

/// What presence needs to take an asset up again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub location: String,
    pub id: String,
    pub raw: String,
    pub rfid: bool,
    pub reader: String,
    pub reads: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    pub antennas: u16,
    pub rssi_max: Option<f32>,
    pub evidence: Option<SavedEvidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Stored {
    V1(Snapshot),
}

/// [`Evidence`] with its instants as wall-clock times: an `Instant` means
/// nothing to the next process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedEvidence {
    outside: Option<SavedSide>,
    inside: Option<SavedSide>,
    weak: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedSide {
    first_ms: u64,
    last_ms: u64,
    reads: u64,
    lead: u64,
    peak: Option<(f32, u64)>,
}

/// Maps instants to wall-clock times and back, from one moment known on
/// both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    pub now: Instant,
    pub wall: SystemTime,
}

impl Clocks {
    /// Both clocks, read now.
    pub fn now() -> Self {
        Clocks {
            now: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn to_ms(self, at: Instant) -> u64 {
        let wall = self.wall - self.now.saturating_duration_since(at);
        ms(wall)
    }

    /// An instant before the process started may not exist: it is then
    /// the earliest this one can say.
    fn to_instant(self, at_ms: u64) -> Instant {
        let ago = self.wall.duration_since(time(at_ms)).unwrap_or_default();
        self.now.checked_sub(ago).unwrap_or(self.now)
    }
}

impl SavedEvidence {
    pub fn new(evidence: &Evidence, clocks: Clocks) -> Self {
        let side = |seen: &Option<SideSeen>| {
            seen.map(|s| SavedSide {
                first_ms: clocks.to_ms(s.first_at),
                last_ms: clocks.to_ms(s.last_at),
                reads: s.reads,
                lead: s.lead,
                peak: s.peak.map(|(rssi, at)| (rssi, clocks.to_ms(at))),
            })
        };
        SavedEvidence {
            outside: side(&evidence.outside),
            inside: side(&evidence.inside),
            weak: evidence.weak,
        }
    }

    pub fn restore(&self, clocks: Clocks) -> Evidence {
        let side = |saved: &Option<SavedSide>| {
            saved.as_ref().map(|s| SideSeen {
                first_at: clocks.to_instant(s.first_ms),
                last_at: clocks.to_instant(s.last_ms),
                reads: s.reads,
                lead: s.lead,
                peak: s.peak.map(|(rssi, at)| (rssi, clocks.to_instant(at))),
            })
        };
        Evidence {
            outside: side(&self.outside),
            inside: side(&self.inside),
            weak: self.weak,
        }
    }
}

impl Snapshot {
    pub fn asset(&self) -> Asset {
        Asset {
            id: self.id.as_str().into(),
            raw: self.raw.as_str().into(),
            source: if self.rfid {
                Source::Rfid
            } else {
                Source::Barcode
            },
        }
    }

    pub fn save(&self) -> Save {
        Save {
            key: key(&self.location, &self.id),
            value: Some(postcard::to_stdvec(&Stored::V1(self.clone())).unwrap_or_default()),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot, postcard::Error> {
        let Stored::V1(snapshot) = postcard::from_bytes(bytes)?;
        Ok(snapshot)
    }
}

/// The save that forgets an asset's presence: it departed.
pub fn forget(location: &str, asset: &str) -> Save {
    Save {
        key: key(location, asset),
        value: None,
    }
}
