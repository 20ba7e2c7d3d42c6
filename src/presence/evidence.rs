//! What the sides of a portal saw of one asset: when each side first and
//! last read it, how often, and when its reads were strongest.
//!
//! Presence owns the per-asset field state, so it gathers this while the
//! asset is in the field and hands it over with the `departed` draft; the
//! rules stage, which knows what the location is, decides from it which way
//! the asset went (`rules::portal`). It never goes on the wire.

use tokio::time::Instant;

use crate::config::{Config, ReaderConfig, Side};

/// How a reader's reads count as evidence at its location.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sides {
    /// `side`: every read of the reader is evidence for this side.
    reader: Option<Side>,
    /// `sides`: the side of each 1-based antenna; antennas not listed (and
    /// reads without an antenna) are no evidence.
    antennas: Vec<(u8, Side)>,
    /// Reads weaker than this (dBm) are no evidence; reads that carry no
    /// RSSI always count.
    rssi_floor: Option<f32>,
}

impl Sides {
    /// `config` is validated.
    pub fn new(config: &Config, reader: &ReaderConfig) -> Sides {
        let location = config.locations.iter().find(|l| l.name == reader.location);
        Sides {
            reader: reader.side,
            antennas: reader.antenna_sides(),
            rssi_floor: location.and_then(|l| l.rssi_floor),
        }
    }

    /// Sides of a reader at a portal, for tests.
    #[cfg(test)]
    pub(crate) fn portal(
        reader: Option<Side>,
        antennas: Vec<(u8, Side)>,
        rssi_floor: Option<f32>,
    ) -> Sides {
        Sides {
            reader,
            antennas,
            rssi_floor,
        }
    }

    /// Whether any read of the reader can be evidence (validated: only
    /// readers at portals have sides).
    pub fn any(&self) -> bool {
        self.reader.is_some() || !self.antennas.is_empty()
    }

    /// The side a read is evidence for, if any.
    fn side_of(&self, antenna: Option<u8>) -> Option<Side> {
        self.reader.or_else(|| {
            let antenna = antenna?;
            self.antennas
                .iter()
                .find(|(a, _)| *a == antenna)
                .map(|(_, side)| *side)
        })
    }

    fn too_weak(&self, rssi_dbm: Option<f32>) -> bool {
        matches!((rssi_dbm, self.rssi_floor), (Some(rssi), Some(floor)) if rssi < floor)
    }
}

/// One side's reads of one asset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SideSeen {
    pub first_at: Instant,
    pub last_at: Instant,
    pub reads: u64,
    /// Reads of this side before the other side's first read: a side that
    /// merely comes first in an antenna cycle leads by one.
    pub lead: u64,
    /// The strongest read (dBm) and when it came first; `None` when the
    /// reader reports no RSSI.
    pub peak: Option<(f32, Instant)>,
}

impl SideSeen {
    fn new(rssi_dbm: Option<f32>, now: Instant) -> Self {
        SideSeen {
            first_at: now,
            last_at: now,
            reads: 0,
            lead: 0,
            peak: rssi_dbm.map(|r| (r, now)),
        }
    }
}

/// Everything the sides of a portal saw of one asset while it was present,
/// from the first read of a reader with a side on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub outside: Option<SideSeen>,
    pub inside: Option<SideSeen>,
    /// Reads below the location's `rssi_floor`.
    pub weak: u64,
}

impl Evidence {
    /// Folds in one read by a reader with `sides`.
    pub fn fold(
        &mut self,
        sides: &Sides,
        antenna: Option<u8>,
        rssi_dbm: Option<f32>,
        now: Instant,
    ) {
        let Some(side) = sides.side_of(antenna) else {
            return;
        };
        if sides.too_weak(rssi_dbm) {
            self.weak += 1;
            return;
        }
        let (this, other) = match side {
            Side::Outside => (&mut self.outside, &self.inside),
            Side::Inside => (&mut self.inside, &self.outside),
        };
        let seen = this.get_or_insert_with(|| SideSeen::new(rssi_dbm, now));
        seen.reads += 1;
        seen.last_at = now;
        if other.is_none() {
            seen.lead += 1;
        }
        if let Some(rssi) = rssi_dbm {
            if seen.peak.is_none_or(|(peak, _)| rssi > peak) {
                seen.peak = Some((rssi, now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn reads_fold_per_side_with_lead_and_peak() {
        let sides = Sides::portal(
            None,
            vec![(1, Side::Outside), (2, Side::Inside)],
            Some(-80.0),
        );
        let t0 = Instant::now();
        let mut e = Evidence::default();
        e.fold(&sides, Some(1), Some(-70.0), t0);
        let t1 = t0 + Duration::from_millis(100);
        e.fold(&sides, Some(1), Some(-60.0), t1);
        e.fold(&sides, Some(3), Some(-50.0), t1); // no side
        e.fold(&sides, Some(2), Some(-90.0), t1); // too weak
        let t2 = t0 + Duration::from_millis(200);
        e.fold(&sides, Some(2), Some(-65.0), t2);
        e.fold(&sides, Some(1), Some(-75.0), t2);
        let out = e.outside.unwrap();
        assert_eq!(
            (out.reads, out.lead, out.first_at, out.last_at),
            (3, 2, t0, t2)
        );
        assert_eq!(out.peak, Some((-60.0, t1)));
        let inside = e.inside.unwrap();
        assert_eq!((inside.reads, inside.lead, inside.first_at), (1, 0, t2));
        assert_eq!(e.weak, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_side_covers_reads_without_antenna_or_rssi() {
        let sides = Sides::portal(Some(Side::Inside), Vec::new(), Some(-80.0));
        let mut e = Evidence::default();
        e.fold(&sides, None, None, Instant::now());
        assert_eq!(e.inside.unwrap().reads, 1);
        assert_eq!(e.inside.unwrap().peak, None);
        assert!(e.outside.is_none());
    }
}
