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

use crate::config::{Config, LocationConfig, LocationKind};
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
    /// A cage gate: assets moved out go to its release control.
    pub cage: bool,
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
            cage: location.kind == LocationKind::CageGate,
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

    /// Whether `draft` is an asset moved out of a cage through its gate: a
    /// leave attempt for the gate's release control.
    pub fn leaves_cage(&self, draft: &Draft) -> bool {
        let Body::Custody(Custody {
            crossing: Some(crossing),
            ..
        }) = &draft.body
        else {
            return false;
        };
        self.params
            .get(&draft.location)
            .is_some_and(|p| p.cage && crossing.to_zone == p.outside_zone)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Side;
    use crate::presence::Sides;
    use tokio::time::Instant;

    fn params() -> Params {
        Params {
            cage: false,
            outside_zone: "yard".into(),
            inside_zone: "receiving".into(),
            static_after: Duration::from_secs(30),
            order_margin: Duration::from_millis(300),
        }
    }

    /// Evidence from reads `(ms after start, antenna, rssi)`: antenna 1 is
    /// outside, 2 inside; the floor is -80 dBm.
    fn evidence(reads: &[(u64, u8, f32)]) -> Evidence {
        let sides = Sides::portal(
            None,
            vec![(1, Side::Outside), (2, Side::Inside)],
            Some(-80.0),
        );
        let start = Instant::now();
        let mut e = Evidence::default();
        for &(ms, antenna, rssi) in reads {
            e.fold(
                &sides,
                Some(antenna),
                Some(rssi),
                start + Duration::from_millis(ms),
            );
        }
        e
    }

    /// A tag carried from antenna `from` to antenna `to`: three reads on
    /// each, 100 ms apart, the second side 500 ms after the first.
    fn pass(from: u8, to: u8) -> Evidence {
        evidence(&[
            (0, from, -60.0),
            (100, from, -55.0),
            (200, from, -60.0),
            (500, to, -60.0),
            (600, to, -50.0),
            (700, to, -65.0),
        ])
    }

    #[tokio::test(start_paused = true)]
    async fn the_side_that_sees_it_first_is_where_it_came_from() {
        assert_eq!(
            decide(&pass(1, 2), None, &params()),
            Outcome::Moved(Direction::Inbound, Confidence::Low)
        );
        assert_eq!(
            decide(&pass(2, 1), None, &params()),
            Outcome::Moved(Direction::Outbound, Confidence::Low)
        );
        let p = params();
        assert_eq!(p.zones(Direction::Inbound), ("yard".into(), "receiving".into()));
        assert_eq!(p.zones(Direction::Outbound), ("receiving".into(), "yard".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn sides_taking_turns_from_the_start_say_nothing() {
        // Both antennas see it from the first cycle: no order, by time or by lead.
        let e = evidence(&[
            (0, 1, -60.0),
            (40, 2, -60.0),
            (80, 1, -60.0),
            (120, 2, -60.0),
        ]);
        assert!(matches!(decide(&e, None, &params()), Outcome::Ambiguous(_)));
        // Slow turns (a loaded reader): far enough apart in time, but the
        // first side read it once only before the second did; the peaks
        // came close together.
        let e = evidence(&[
            (0, 1, -60.0),
            (400, 2, -60.0),
            (800, 1, -50.0),
            (900, 2, -50.0),
        ]);
        assert!(matches!(decide(&e, None, &params()), Outcome::Ambiguous(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn one_side_only_is_ambiguous_and_long_enough_is_parked() {
        let e = evidence(&[(0, 1, -60.0), (500, 1, -60.0)]);
        assert_eq!(
            decide(&e, None, &params()),
            Outcome::Ambiguous("seen by one side only")
        );
        let e = evidence(&[(0, 2, -60.0), (30_000, 2, -60.0)]);
        assert_eq!(decide(&e, None, &params()), Outcome::Static);
        // Even with beams: one side's reads do not place the asset in the pass.
        let e = evidence(&[(0, 1, -60.0), (500, 1, -60.0)]);
        assert!(matches!(
            decide(&e, Some(Direction::Inbound), &params()),
            Outcome::Ambiguous(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn parked_by_the_door_then_carried_through_is_a_pass_but_parked_in_it_is_not() {
        // Staged in the yard for a minute, then driven in.
        let mut reads: Vec<(u64, u8, f32)> = (0..60).map(|s| (s * 1000, 1, -70.0)).collect();
        reads.extend([(60_000, 1, -55.0), (60_500, 2, -55.0), (61_000, 2, -50.0), (61_500, 2, -60.0)]);
        assert_eq!(
            decide(&evidence(&reads), None, &params()),
            Outcome::Moved(Direction::Inbound, Confidence::Low)
        );
        // In the doorway for a minute, seen by both sides all along.
        let reads: Vec<(u64, u8, f32)> = (0..60)
            .flat_map(|s| [(s * 1000, 1, -70.0), (s * 1000 + 500, 2, -72.0)])
            .collect();
        assert_eq!(decide(&evidence(&reads), None, &params()), Outcome::Static);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_below_the_floor_are_no_evidence() {
        let e = evidence(&[(0, 1, -85.0), (100, 1, -85.0), (500, 2, -90.0)]);
        assert_eq!(decide(&e, None, &params()), Outcome::NoEvidence);
        assert_eq!(e.weak, 3);
        // A stray weak read on the far side does not spoil a pass either.
        let e = evidence(&[(0, 2, -88.0), (100, 1, -60.0), (200, 1, -60.0), (700, 2, -60.0)]);
        assert_eq!(
            decide(&e, None, &params()),
            Outcome::Moved(Direction::Inbound, Confidence::Low)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rssi_peaks_decide_when_the_first_reads_do_not_and_must_not_contradict_them() {
        // Both sides from the first cycle, but the outside was strongest
        // first: the tag came past the outside antenna to the inside one.
        let e = evidence(&[
            (0, 1, -70.0),
            (40, 2, -75.0),
            (200, 1, -50.0),
            (240, 2, -70.0),
            (900, 1, -72.0),
            (940, 2, -48.0),
        ]);
        assert_eq!(
            decide(&e, None, &params()),
            Outcome::Moved(Direction::Inbound, Confidence::Low)
        );
        // First reads say inbound, the peaks outbound.
        let e = evidence(&[
            (0, 1, -70.0),
            (100, 1, -70.0),
            (500, 2, -40.0),
            (600, 2, -70.0),
            (1200, 1, -45.0),
        ]);
        assert_eq!(
            decide(&e, None, &params()),
            Outcome::Ambiguous("first reads and RSSI peaks disagree")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn beams_raise_or_veto_the_antennas() {
        let p = params();
        assert_eq!(
            decide(&pass(1, 2), Some(Direction::Inbound), &p),
            Outcome::Moved(Direction::Inbound, Confidence::High)
        );
        assert_eq!(
            decide(&pass(1, 2), Some(Direction::Outbound), &p),
            Outcome::Ambiguous("the beams and the antennas disagree")
        );
        let at_once = evidence(&[(0, 1, -60.0), (40, 2, -60.0), (80, 1, -60.0)]);
        assert_eq!(
            decide(&at_once, Some(Direction::Outbound), &p),
            Outcome::Moved(Direction::Outbound, Confidence::Medium)
        );
    }

    fn departed(location: &str, evidence: Evidence) -> Draft {
        let t = std::time::SystemTime::now();
        let mut draft = Draft::new(
            location.into(),
            t,
            Body::Custody(Custody {
                transition: Transition::Departed,
                asset: crate::identity::Asset {
                    id: "urn:epc:id:giai:0614141.1".into(),
                    raw: "E2".into(),
                    source: crate::decode::Source::Rfid,
                },
                reader: "door1-uhf".into(),
                reads: 6,
                first_seen: t,
                last_seen: t,
                antennas: vec![1, 2],
                rssi_max: Some(-50.0),
                crossing: None,
            }),
        );
        draft.evidence = Some(Box::new(evidence));
        draft
    }

    fn portals() -> Portals {
        let mut params = HashMap::new();
        params.insert(Arc::from("dock-door-1"), super::tests::params());
        Portals {
            params,
            stats: watch::Sender::new(PortalStats::default()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_departure_is_passed_on_and_followed_by_its_moved() {
        let mut portals = portals();
        let stats = portals.stats();
        let mut out = Vec::new();
        portals.handle(departed("dock-door-1", pass(2, 1)), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[0].evidence.is_none(), "evidence never goes further");
        let Body::Custody(moved) = &out[1].body else {
            panic!("{:?}", out[1]);
        };
        assert_eq!(moved.transition, Transition::Moved);
        assert_eq!(moved.reads, 6);
        let crossing = moved.crossing.as_ref().unwrap();
        assert_eq!((&*crossing.from_zone, &*crossing.to_zone), ("receiving", "yard"));
        assert_eq!((crossing.confidence, crossing.pass_id), (Confidence::Low, None));

        out.clear();
        portals.handle(departed("dock-door-1", evidence(&[(0, 1, -60.0)])), &mut out);
        assert_eq!(out.len(), 1, "no moved: {out:?}");
        let expected = PortalStats {
            moved: 1,
            ambiguous: 1,
            ..PortalStats::default()
        };
        assert_eq!(*stats.borrow(), expected);
    }
}
