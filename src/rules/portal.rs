//! Direction at portals (dock doors, cage gates): which zone an asset went
//! to, decided from the order in which the door's two sides saw it.
//!
//! Presence gathers, per asset, each side's first and last read, read count
//! and RSSI peak ([`Evidence`]) and hands them over with the `departed`.
//! The decision is made here, once the evidence is complete:
//!
//! - at a portal without read windows, at the departure: only when the asset
//!   has left the field is it known whether the second side ever saw it, and
//!   whether one side saw it for so long that it was parked, not passing;
//! - at a portal with read windows, when the pass ends: the window has
//!   closed (which stops the readers, so every asset read in it departs
//!   within `departure_timeout`) and the last of its assets has departed.
//!   Then the beams' order for the whole window is known, and every `moved`
//!   of the pass goes out together, with the pass's summary after them.
//!
//! Evidence that does not say a direction makes no `moved`: presence events
//! only, the outcome counted in [`PortalStats`] and logged at debug.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::debug;

use crate::config::{Config, LocationConfig};
use crate::custody::{Body, Confidence, Crossing, Custody, Direction, Draft, Transition};
use crate::presence::{Evidence, SideSeen};

/// A side that comes first must have read the asset in this many inventory
/// rounds before the other side's first read: with one round the sides may
/// simply have taken turns in the antenna cycle while the asset stood
/// between them.
const MIN_LEAD: u64 = 2;

/// What a portal's evidence came to, per asset, since start-up. For the
/// health report: many ambiguous outcomes mean the antennas see too much of
/// each other's side; many static ones, tags parked near the door.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortalStats {
    pub moved: u64,
    pub ambiguous: u64,
    pub static_tags: u64,
    pub no_evidence: u64,
}

/// The direction keys of one portal.
#[derive(Debug, Clone)]
pub struct Params {
    pub outside_zone: Arc<str>,
    pub inside_zone: Arc<str>,
    pub static_after: Duration,
    pub order_margin: Duration,
}

impl Params {
    /// `None` unless `location` is a portal (validated: it then has zones).
    pub fn new(location: &LocationConfig) -> Option<Params> {
        if !location.kind.is_portal() {
            return None;
        }
        Some(Params {
            outside_zone: location.outside_zone.as_deref()?.into(),
            inside_zone: location.inside_zone.as_deref()?.into(),
            static_after: location.static_after(),
            order_margin: location.order_margin(),
        })
    }

    /// (from, to) of `direction`.
    pub fn zones(&self, direction: Direction) -> (Arc<str>, Arc<str>) {
        let (outside, inside) = (self.outside_zone.clone(), self.inside_zone.clone());
        match direction {
            Direction::Inbound => (outside, inside),
            Direction::Outbound => (inside, outside),
        }
    }
}

/// What one asset's evidence says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Moved(Direction, Confidence),
    /// No direction can be told; why, for the log.
    Ambiguous(&'static str),
    /// Seen for `static_after` or longer by every side that saw it: parked
    /// near the door, not passing it.
    Static,
    /// No read counted as evidence: all below `rssi_floor`, or from readers
    /// or antennas without a side.
    NoEvidence,
}

impl Outcome {
    fn count(self, stats: &mut PortalStats) {
        let counter = match self {
            Outcome::Moved(..) => &mut stats.moved,
            Outcome::Ambiguous(_) => &mut stats.ambiguous,
            Outcome::Static => &mut stats.static_tags,
            Outcome::NoEvidence => &mut stats.no_evidence,
        };
        *counter += 1;
    }
}

/// The direction `evidence` shows, given the beams' order (`None` without
/// beams, or when they gave none).
///
/// Both sides must have seen the asset. The antennas' order is that of the
/// sides' first reads (the leading side ahead by `order_margin` and
/// [`MIN_LEAD`] rounds) and of their RSSI peaks (ahead by `order_margin`);
/// when both say something they must agree. Then: beams and antennas agree
/// -> high; antennas without an order, beams with one -> medium; antennas
/// alone -> low; beams and antennas disagreeing -> ambiguous.
pub fn decide(evidence: &Evidence, beams: Option<Direction>, params: &Params) -> Outcome {
    let parked = |seen: &SideSeen| seen.last_at - seen.first_at >= params.static_after;
    let (outside, inside) = match (&evidence.outside, &evidence.inside) {
        (None, None) => return Outcome::NoEvidence,
        (Some(seen), None) | (None, Some(seen)) if parked(seen) => return Outcome::Static,
        (Some(_), None) | (None, Some(_)) => return Outcome::Ambiguous("seen by one side only"),
        (Some(outside), Some(inside)) => (outside, inside),
    };
    if parked(outside) && parked(inside) {
        return Outcome::Static;
    }
    let margin = params.order_margin;
    let first = order(outside.first_at, inside.first_at, margin).filter(|&direction| {
        let leader = match direction {
            Direction::Inbound => outside,
            Direction::Outbound => inside,
        };
        leader.lead >= MIN_LEAD
    });
    let peak = match (outside.peak, inside.peak) {
        (Some((_, outside)), Some((_, inside))) => order(outside, inside, margin),
        _ => None,
    };
    let antennas = match (first, peak) {
        (Some(a), Some(b)) if a != b => {
            return Outcome::Ambiguous("first reads and RSSI peaks disagree")
        }
        (a, b) => a.or(b),
    };
    match (antennas, beams) {
        (Some(a), Some(b)) if a == b => Outcome::Moved(a, Confidence::High),
        (Some(_), Some(_)) => Outcome::Ambiguous("the beams and the antennas disagree"),
        (Some(a), None) => Outcome::Moved(a, Confidence::Low),
        (None, Some(b)) => Outcome::Moved(b, Confidence::Medium),
        (None, None) => Outcome::Ambiguous("both sides saw it at once"),
    }
}

/// Inbound when the outside's instant is earlier by at least `margin`.
fn order(
    outside: tokio::time::Instant,
    inside: tokio::time::Instant,
    margin: Duration,
) -> Option<Direction> {
    if outside + margin <= inside && outside < inside {
        Some(Direction::Inbound)
    } else if inside + margin <= outside && inside < outside {
        Some(Direction::Outbound)
    } else {
        None
    }
}

/// The portals of a gateway: their keys, and the counts of outcomes.
pub struct Portals {
    params: HashMap<Arc<str>, Params>,
    stats: watch::Sender<PortalStats>,
}

impl Portals {
    pub fn new(config: &Config) -> Portals {
        let params = config
            .locations
            .iter()
            .filter_map(|l| Some((Arc::from(l.name.as_str()), Params::new(l)?)))
            .collect();
        Portals {
            params,
            stats: watch::Sender::new(PortalStats::default()),
        }
    }

    /// The outcome counts, kept current.
    pub fn stats(&self) -> watch::Receiver<PortalStats> {
        self.stats.subscribe()
    }

    /// Passes `draft` on; a portal's `departed` is followed by its `moved`
    /// when the evidence shows a direction.
    pub fn handle(&mut self, mut draft: Draft, out: &mut Vec<Draft>) {
        let evidence = draft.evidence.take();
        let params = self.params.get(&draft.location);
        let moved = match (&draft.body, evidence, params) {
            (Body::Custody(custody), Some(evidence), Some(params)) => {
                let outcome = decide(&evidence, None, params);
                self.stats.send_modify(|stats| outcome.count(stats));
                moved(&draft, custody, outcome, params)
            }
            _ => None,
        };
        out.push(draft);
        out.extend(moved);
    }
}

/// The `moved` event of `outcome`, or `None` (logged) when it is not one.
fn moved(departed: &Draft, custody: &Custody, outcome: Outcome, params: &Params) -> Option<Draft> {
    let Outcome::Moved(direction, confidence) = outcome else {
        debug!(location = %departed.location, asset = %custody.asset.id, ?outcome, "no moved");
        return None;
    };
    let (from_zone, to_zone) = params.zones(direction);
    let custody = Custody {
        transition: Transition::Moved,
        crossing: Some(Crossing {
            from_zone,
            to_zone,
            confidence,
            pass_id: None,
        }),
        ..custody.clone()
    };
    Some(Draft::new(
        departed.location.clone(),
        custody.last_seen,
        Body::Custody(custody),
    ))
}
