//! The presence state machine, free of I/O and clocks so it can be driven
//! with any `Instant` (tests use tokio's paused clock).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};
use tokio::time::Instant;
use tracing::{info, warn};

use super::saved::{self, Clocks, SavedEvidence, Snapshot};
use super::{Evidence, Observation, ReaderInfo, Sighting};
use crate::config::ReadMode;
use crate::custody::save::{ms, time};
use crate::custody::{
    rfc3339, saved_entries, Alarm, Body, Context, Custody, Draft, Saved, Transition,
};
use crate::identity::Asset;

/// An [`Observation`] whose asset resolved.
struct Read<'a> {
    reader: &'a ReaderInfo,
    asset: Asset,
    antenna: Option<u8>,
    rssi_dbm: Option<f32>,
    wall: SystemTime,
}

/// (location, asset id): one presence per asset per location.
type Key = (Arc<str>, Arc<str>);

struct Present {
    asset: Asset,
    reader: Arc<str>,
    reads: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
    last_at: Instant,
    departure_timeout: Duration,
    /// Bit n set: antenna n+1 saw the tag.
    antennas: u16,
    rssi_max: Option<f32>,
    /// At a portal: what each side saw. Boxed, so assets elsewhere pay a
    /// pointer for it.
    evidence: Option<Box<Evidence>>,
}

impl Present {
    fn inventory_entry(&self) -> Value {
        let c = self.custody(Transition::Arrived, self.reads);
        json!({
            "asset": { "id": &*c.asset.id, "raw": &*c.asset.raw, "source": c.asset.source.as_str() },
            "reader": &*c.reader,
            "reads": c.reads,
            "first_seen": rfc3339(c.first_seen),
            "last_seen": rfc3339(c.last_seen),
            "antennas": c.antennas,
        })
    }

    /// What the spool saves with the `arrived`: see [`saved`].
    fn snapshot(&self, location: &str, clocks: Clocks) -> Snapshot {
        Snapshot {
            location: location.to_owned(),
            id: self.asset.id.to_string(),
            raw: self.asset.raw.to_string(),
            rfid: self.asset.source == crate::decode::Source::Rfid,
            reader: self.reader.to_string(),
            reads: self.reads,
            first_seen_ms: ms(self.first_seen),
            last_seen_ms: ms(self.last_seen),
            antennas: self.antennas,
            rssi_max: self.rssi_max,
            evidence: self
                .evidence
                .as_deref()
                .map(|e| SavedEvidence::new(e, clocks)),
        }
    }

    fn custody(&self, transition: Transition, reads: u64) -> Custody {
        Custody {
            transition,
            asset: self.asset.clone(),
            reader: self.reader.clone(),
            reads,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            antennas: (0..16)
                .filter(|b| self.antennas & (1 << b) != 0)
                .map(|b| b as u8 + 1)
                .collect(),
            rssi_max: self.rssi_max,
            context: Context::default(),
            crossing: None,
        }
    }
}

/// Turns reads into transitions. State for departed assets and stale scans
/// is dropped, so memory follows what is in the field now, not what ever was.
#[derive(Default)]
pub struct Engine {
    present: HashMap<Key, Present>,
    /// Departure checks, earliest first. An entry may be stale (the asset was
    /// read again since); it is re-armed when it comes due. One entry per
    /// present asset, so the heap never outgrows `present`.
    deadlines: BinaryHeap<Reverse<(Instant, Key)>>,
    /// Last scan per (reader, asset), for the rescan window.
    scans: HashMap<(Arc<str>, Arc<str>), Instant>,
    /// Longest rescan window seen, bounding how long a scan entry matters.
    longest_rescan: Duration,
    next_scan_sweep: Option<Instant>,
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one read in; returns the event it makes, if any.
    pub fn observe(&mut self, obs: Observation, now: Instant) -> Option<Draft> {
        let Observation {
            reader,
            asset,
            antenna,
            rssi_dbm,
            wall,
        } = obs;
        let asset = match asset {
            Ok(asset) => asset,
            Err(rejected) => {
                let detail = format!(
                    "Reader {} read {:?}, which names no asset: {}.",
                    reader.name, rejected.raw, rejected.reason
                );
                let alarm = Alarm {
                    kind: "invalid_scan",
                    asset: None,
                    detail,
                };
                return Some(Draft::new(
                    reader.location.clone(),
                    wall,
                    Body::Alarm(alarm),
                ));
            }
        };
        let read = Read {
            reader: &reader,
            asset,
            antenna,
            rssi_dbm,
            wall,
        };
        match reader.mode {
            ReadMode::Presence => self.observe_presence(read, now),
            ReadMode::Scan | ReadMode::Release => self.observe_scan(read, now),
        }
    }

    fn observe_presence(&mut self, obs: Read<'_>, now: Instant) -> Option<Draft> {
        let key = (obs.reader.location.clone(), obs.asset.id.clone());
        let antenna_bit = obs
            .antenna
            .filter(|a| (1..=16).contains(a))
            .map_or(0, |a| 1u16 << (a - 1));
        if let Some(p) = self.present.get_mut(&key) {
            p.reads += 1;
            p.last_seen = obs.wall;
            p.last_at = now;
            p.antennas |= antenna_bit;
            p.rssi_max = max_rssi(p.rssi_max, obs.rssi_dbm);
            fold_evidence(&mut p.evidence, &obs, now);
            return None;
        }
        let mut evidence = None;
        fold_evidence(&mut evidence, &obs, now);
        let p = Present {
            asset: obs.asset,
            reader: obs.reader.name.clone(),
            reads: 1,
            first_seen: obs.wall,
            last_seen: obs.wall,
            last_at: now,
            departure_timeout: obs.reader.departure_timeout,
            antennas: antenna_bit,
            rssi_max: obs.rssi_dbm,
            evidence,
        };
        let mut draft = Draft::new(
            key.0.clone(),
            obs.wall,
            Body::Custody(p.custody(Transition::Arrived, 1)),
        );
        let clocks = Clocks {
            now,
            wall: obs.wall,
        };
        draft.saves.push(p.snapshot(&key.0, clocks).save());
        self.deadlines
            .push(Reverse((now + p.departure_timeout, key.clone())));
        self.present.insert(key, p);
        Some(draft)
    }

    fn observe_scan(&mut self, obs: Read<'_>, now: Instant) -> Option<Draft> {
        // The label of an asset whose tag is in the field here: one asset,
        // one presence (identity made the ids equal), not a second event.
        let here = (obs.reader.location.clone(), obs.asset.id.clone());
        if let Some(p) = self.present.get_mut(&here) {
            p.reads += 1;
            p.last_seen = obs.wall;
            p.last_at = now;
            return None;
        }
        let window = obs.reader.rescan_window;
        self.longest_rescan = self.longest_rescan.max(window);
        let key = (obs.reader.name.clone(), obs.asset.id.clone());
        // A double-fire or a scan repeated inside the window refreshes it.
        if let Some(last) = self.scans.insert(key, now) {
            if now.duration_since(last) < window {
                return None;
            }
        }
        self.next_scan_sweep
            .get_or_insert(now + self.longest_rescan);
        let custody = Custody {
            transition: Transition::Scanned,
            asset: obs.asset,
            reader: obs.reader.name.clone(),
            reads: 1,
            first_seen: obs.wall,
            last_seen: obs.wall,
            antennas: Vec::new(),
            rssi_max: None,
            context: Context::default(),
            crossing: None,
        };
        Some(Draft::new(
            obs.reader.location.clone(),
            obs.wall,
            Body::Custody(custody),
        ))
    }

    /// Takes up the assets that were in the field when the daemon last
    /// stopped, as the spool saved them, each due to depart
    /// `departure_timeout(location)` after `clocks.now` unless read again.
    /// A snapshot that cannot be read is logged and left out (its asset
    /// arrives again when next read).
    pub fn restore(
        &mut self,
        saved: &Saved,
        departure_timeout: impl Fn(&str) -> Duration,
        clocks: Clocks,
    ) {
        let mut restored = 0;
        for (key, bytes) in saved_entries(saved, saved::PREFIX) {
            let snapshot = match Snapshot::decode(bytes) {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    warn!(key, "saved presence ignored: {e}");
                    continue;
                }
            };
            let timeout = departure_timeout(&snapshot.location);
            let key: Key = (
                snapshot.location.as_str().into(),
                snapshot.id.as_str().into(),
            );
            let p = Present {
                asset: snapshot.asset(),
                reader: snapshot.reader.as_str().into(),
                reads: snapshot.reads,
                first_seen: time(snapshot.first_seen_ms),
                last_seen: time(snapshot.last_seen_ms),
                last_at: clocks.now,
                departure_timeout: timeout,
                antennas: snapshot.antennas,
                rssi_max: snapshot.rssi_max,
                evidence: snapshot.evidence.map(|e| Box::new(e.restore(clocks))),
            };
            self.deadlines
                .push(Reverse((clocks.now + timeout, key.clone())));
            self.present.insert(key, p);
            restored += 1;
        }
        if restored > 0 {
            info!(
                assets = restored,
                "presence taken up from the spool: no second arrived for them"
            );
        }
    }

    /// When [`Engine::expire`] next has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let departure = self.deadlines.peek().map(|Reverse((at, _))| *at);
        match (departure, self.next_scan_sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Emits `departed` for every asset not read for its departure timeout,
    /// and forgets scans older than any rescan window.
    pub fn expire(&mut self, now: Instant, wall: SystemTime, out: &mut Vec<Sighting>) {
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, key)) = self.deadlines.pop().expect("peeked");
            let Some(p) = self.present.get(&key) else {
                continue;
            };
            let due = p.last_at + p.departure_timeout;
            if due > now {
                self.deadlines.push(Reverse((due, key)));
                continue;
            }
            let p = self.present.remove(&key).expect("looked up above");
            let forget = saved::forget(&key.0, &key.1);
            let mut draft = Draft::new(
                key.0,
                wall,
                Body::Custody(p.custody(Transition::Departed, p.reads)),
            );
            draft.saves.push(forget);
            out.push(Sighting {
                draft,
                evidence: p.evidence,
            });
        }
        if self.next_scan_sweep.is_some_and(|at| at <= now) {
            let keep = self.longest_rescan;
            self.scans
                .retain(|_, last| now.duration_since(*last) < keep);
            self.next_scan_sweep = (!self.scans.is_empty()).then(|| now + keep);
        }
    }

    /// The answer to the `inventory` command: what is present at each
    /// location now (every location in `locations`, and any other still
    /// holding assets, e.g. one a reload removed), or at `only`.
    pub fn inventory(&self, locations: &[Arc<str>], only: Option<&str>) -> Result<Value, String> {
        let mut by_location: BTreeMap<&str, Vec<&Present>> =
            locations.iter().map(|l| (&**l, Vec::new())).collect();
        for ((location, _), p) in &self.present {
            by_location.entry(location).or_default().push(p);
        }
        if let Some(only) = only {
            by_location.retain(|l, _| *l == only);
            if by_location.is_empty() {
                return Err(format!("unknown location {only:?}"));
            }
        }
        let mut total = 0;
        let listed: Map<String, Value> = by_location
            .into_iter()
            .map(|(location, mut present)| {
                present
                    .sort_by(|a, b| (a.first_seen, &a.asset.id).cmp(&(b.first_seen, &b.asset.id)));
                total += present.len();
                let assets = present.iter().map(|p| p.inventory_entry()).collect();
                (location.to_string(), Value::Array(assets))
            })
            .collect();
        Ok(json!({ "locations": listed, "assets": total }))
    }

    /// Sizes of the presence map, the deadline heap and the scan map, for
    /// tests that prove memory stays bounded.
    #[cfg(test)]
    pub fn footprint(&self) -> (usize, usize, usize) {
        (self.present.len(), self.deadlines.len(), self.scans.len())
    }
}

/// Folds a read of a reader with a portal side into `evidence`, which it
/// creates on the first such read.
fn fold_evidence(evidence: &mut Option<Box<Evidence>>, obs: &Read<'_>, now: Instant) {
    let sides = &obs.reader.sides;
    if sides.any() {
        evidence
            .get_or_insert_default()
            .fold(sides, obs.antenna, obs.rssi_dbm, now);
    }
}

fn max_rssi(a: Option<f32>, b: Option<f32>) -> Option<f32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
