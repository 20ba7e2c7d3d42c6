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
//! only, the outcome counted in the portal's [`PortalMetrics`] (for the
//! health topic) and logged at debug.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, warn};
use ulid::Ulid;

use super::window::{Finished, Member, Sensor, Windows};
use super::window_save;
use crate::config::{Config, LocationConfig, LocationKind, Protocol, ReaderConfig};
use crate::custody::{
    Alarm, Body, Confidence, Crossing, Custody, Direction, Draft, Outcomes, Pass, PassCounts,
    PassDirection, Save, Transition,
};
use crate::gpio::{Edge, GpioError, Input, Pins};
use crate::metrics::{Metrics, PortalMetrics};
use crate::presence::{Evidence, SideSeen, Sighting};

/// A side that comes first must have read the asset in this many inventory
/// rounds before the other side's first read: with one round the sides may
/// simply have taken turns in the antenna cycle while the asset stood
/// between them.
const MIN_LEAD: u64 = 2;

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
    fn count(self, stats: &mut Outcomes) {
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
fn order(outside: Instant, inside: Instant, margin: Duration) -> Option<Direction> {
    if outside + margin <= inside && outside < inside {
        Some(Direction::Inbound)
    } else if inside + margin <= outside && inside < outside {
        Some(Direction::Outbound)
    } else {
        None
    }
}

/// A sensor's edge, with the portal and sensor it came from.
type SensorEdge = (Arc<str>, Sensor, Edge);

/// A window sensor could not be claimed.
#[derive(Debug, thiserror::Error)]
#[error("locations {location}: {key}: {source}")]
pub struct SensorError {
    location: String,
    key: &'static str,
    source: GpioError,
}

struct Portal {
    params: Params,
    windows: Option<Windows>,
    /// The readers at the portal, for the `silent_reader` alarm.
    readers: Vec<Arc<str>>,
    /// Its outcome counts, which outlive this front.
    metrics: Arc<PortalMetrics>,
}

/// The portals of a gateway: their keys, read windows and sensors, and the
/// counts of outcomes.
pub struct Portals {
    portals: HashMap<Arc<str>, Portal>,
    /// Edges of every window sensor, forwarded by one task per sensor.
    sensors: mpsc::Receiver<SensorEdge>,
    /// The tasks that follow the sensors, each owning its pin's claim.
    forwarders: JoinSet<()>,
}

impl Portals {
    /// Claims the window sensors' pins (validated: `pins` is there when
    /// some location has a window). Each portal counts on in `metrics`
    /// from where the previous front left it; portals no longer
    /// configured are forgotten there.
    pub fn new(
        config: &Config,
        pins: Option<&Pins>,
        metrics: &Metrics,
    ) -> Result<Portals, SensorError> {
        let (edges, sensors) = mpsc::channel(SENSOR_QUEUE);
        let mut forwarders = JoinSet::new();
        let mut portals = HashMap::new();
        for location in &config.locations {
            let Some(params) = Params::new(location) else {
                continue;
            };
            let name: Arc<str> = location.name.as_str().into();
            let windows = location
                .window
                .clone()
                .map(|w| Windows::new(w, location.departure_timeout));
            let readers = config
                .readers
                .iter()
                .filter(|r| r.location == location.name)
                .map(|r| Arc::from(r.name.as_str()))
                .collect();
            let trigger = location.window.as_ref().and_then(|w| w.trigger.as_ref());
            let beams = location.beams.as_ref();
            let inputs = [
                (Sensor::Trigger, "window.trigger", trigger),
                (Sensor::Outer, "beams.outer", beams.map(|b| &b.outer)),
                (Sensor::Inner, "beams.inner", beams.map(|b| &b.inner)),
            ];
            for (sensor, key, input) in inputs {
                let (Some(input), Some(pins)) = (input, pins) else {
                    continue;
                };
                let input = pins.input(input).map_err(|source| SensorError {
                    location: location.name.clone(),
                    key,
                    source,
                })?;
                forwarders.spawn(forward(name.clone(), sensor, input, edges.clone()));
            }
            let portal = Portal {
                params,
                windows,
                readers,
                metrics: metrics.portal(&name),
            };
            portals.insert(name, portal);
        }
        let configured: Vec<Arc<str>> = portals.keys().cloned().collect();
        metrics.retain_portals(&configured);
        Ok(Portals {
            portals,
            sensors,
            forwarders,
        })
    }

    /// Releases the sensors' pins, once the sensor tasks are gone, so that
    /// the front a reload starts can claim them again.
    pub async fn free_sensors(mut self) {
        self.forwarders.abort_all();
        while self.forwarders.join_next().await.is_some() {}
    }

    /// For a UHF reader at a portal with read windows: `true` while it
    /// should read. `None`: it reads all the time.
    pub fn reading(&self, reader: &ReaderConfig) -> Option<watch::Receiver<bool>> {
        let portal = self.portals.get(reader.location.as_str())?;
        let windows = portal.windows.as_ref().filter(|_| switched(reader))?;
        Some(windows.reading())
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
        self.portals
            .get(&draft.location)
            .is_some_and(|p| p.params.cage && crossing.to_zone == p.params.outside_zone)
    }

    /// Passes `draft` on, followed by what it decides: at a portal without
    /// windows, a `departed` by its `moved`; with windows, a departure may
    /// finish a pass (its `moved` events, its summary, perhaps an alarm).
    pub fn handle(&mut self, sighting: Sighting, now: Instant, out: &mut Vec<Draft>) {
        let Sighting { draft, evidence } = sighting;
        let portal = self.portals.get_mut(&draft.location);
        let (Some(portal), Body::Custody(custody)) = (portal, &draft.body) else {
            out.push(draft);
            return;
        };
        let mut finished = Vec::new();
        let alone = match (&mut portal.windows, custody.transition) {
            (Some(windows), Transition::Arrived) => {
                windows.arrived(&custody.asset.id, now);
                None
            }
            (Some(windows), Transition::Departed) => {
                let had_evidence = evidence.is_some();
                let evidence = evidence.unwrap_or_default();
                windows
                    .departed(custody.clone(), evidence, &mut finished)
                    .filter(|_| had_evidence)
            }
            (None, _) => evidence.map(|evidence| Member {
                custody: custody.clone(),
                evidence,
            }),
            _ => None,
        };
        let location = draft.location.clone();
        out.push(draft);
        if let Some(member) = alone {
            let outcome = decide(&member.evidence, None, &portal.params);
            portal.metrics.count(|s| outcome.count(&mut s.outcomes));
            out.extend(moved(
                &location,
                &member.custody,
                outcome,
                &portal.params,
                None,
            ));
        }
        for pass in finished {
            finish(&location, portal, pass, out);
        }
    }

    /// Waits for a window sensor's edge or a window's deadline, and acts on
    /// it. Cancel-safe; never completes at a gateway without windows.
    pub async fn next_event(&mut self, out: &mut Vec<Draft>) {
        let deadline = self
            .portals
            .values()
            .filter_map(|p| p.windows.as_ref()?.deadline())
            .min();
        let mut finished = Vec::new();
        tokio::select! {
            Some((location, sensor, edge)) = self.sensors.recv() => {
                if let Some(windows) = self
                    .portals
                    .get_mut(&location)
                    .and_then(|p| p.windows.as_mut())
                {
                    debug!(%location, ?sensor, active = edge.active, "window sensor");
                    windows.sensor(sensor, edge, Instant::now(), &mut finished);
                }
                self.finish_all(&location, finished, out);
            }
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                let now = Instant::now();
                self.each_window(out, |windows, finished| windows.expire(now, finished));
            }
            else => std::future::pending().await,
        }
    }

    /// The saves of the portals whose passes changed since the last call,
    /// each replacing an earlier one of the same portal still in `saves`.
    pub fn saves(&mut self, saves: &mut Vec<Save>) {
        for (location, portal) in &mut self.portals {
            let Some(passes) = portal.windows.as_mut().and_then(Windows::take_saved) else {
                continue;
            };
            let save = window_save::save(location, passes);
            saves.retain(|s| s.key != save.key);
            saves.push(save);
        }
    }

    /// The daemon stops: open windows close and every pass is summed up
    /// with what it has.
    pub fn shut(&mut self, out: &mut Vec<Draft>) {
        let now = Instant::now();
        self.each_window(out, |windows, finished| windows.shut(now, finished));
    }

    fn each_window(
        &mut self,
        out: &mut Vec<Draft>,
        mut f: impl FnMut(&mut Windows, &mut Vec<Finished>),
    ) {
        let locations: Vec<Arc<str>> = self.portals.keys().cloned().collect();
        for location in locations {
            let mut finished = Vec::new();
            if let Some(windows) = self
                .portals
                .get_mut(&location)
                .and_then(|p| p.windows.as_mut())
            {
                f(windows, &mut finished);
            }
            self.finish_all(&location, finished, out);
        }
    }

    fn finish_all(&mut self, location: &Arc<str>, finished: Vec<Finished>, out: &mut Vec<Draft>) {
        let Some(portal) = self.portals.get(location) else {
            return;
        };
        for pass in finished {
            finish(location, portal, pass, out);
        }
    }
}

/// Sensor edges waiting for the rules task: a few per pass.
const SENSOR_QUEUE: usize = 64;

/// The readers a window switches: those that read only when asked.
fn switched(reader: &ReaderConfig) -> bool {
    reader.protocol.is_some_and(Protocol::is_uhf)
}

/// Follows one window sensor for the rules task, until either is gone.
async fn forward(
    location: Arc<str>,
    sensor: Sensor,
    mut input: Input,
    to: mpsc::Sender<SensorEdge>,
) {
    while let Some(edge) = input.next().await {
        if to.send((location.clone(), sensor, edge)).await.is_err() {
            return;
        }
    }
}

/// A finished pass: each member's direction with the window's beams, the
/// `moved` events (one `pass_id`), the summary, and `silent_reader` when
/// the windows have been reading nothing.
fn finish(location: &Arc<str>, portal: &Portal, pass: Finished, out: &mut Vec<Draft>) {
    let params = &portal.params;
    let mut counts = PassCounts {
        assets: pass.assets.len() as u64,
        ..PassCounts::default()
    };
    let mut directions = HashSet::new();
    for member in &pass.members {
        counts.reads += member.custody.reads;
        let outcome = decide(&member.evidence, pass.beams, params);
        outcome.count(&mut counts.outcomes);
        if let Outcome::Moved(direction, _) = outcome {
            directions.insert(direction);
        }
        out.extend(moved(
            location,
            &member.custody,
            outcome,
            params,
            Some(pass.pass_id),
        ));
    }
    portal
        .metrics
        .count(|s| s.pass(counts.assets, &counts.outcomes));
    let direction = match (pass.beams, directions.len()) {
        (Some(beams), _) => Some(PassDirection::All(beams)),
        (None, 1) => directions.into_iter().next().map(PassDirection::All),
        (None, 0) => None,
        (None, _) => Some(PassDirection::Mixed),
    };
    let zones = match direction {
        Some(PassDirection::All(direction)) => Some(params.zones(direction)),
        _ => None,
    };
    debug!(%location, pass_id = %pass.pass_id, ?direction, ?counts, "pass finished");
    let summary = Pass {
        pass_id: pass.pass_id,
        direction,
        from_zone: zones.as_ref().map(|z| z.0.clone()),
        to_zone: zones.map(|z| z.1),
        opened_at: pass.opened_at,
        closed_at: pass.closed_at,
        closed_by: pass.closed_by,
        assets: pass.assets,
        counts,
        manifest: None,
    };
    out.push(Draft::new(
        location.clone(),
        pass.closed_at,
        Body::Pass(summary),
    ));
    if let Some(windows) = pass.silent {
        let readers = portal.readers.join(", ");
        warn!(%location, windows, "read windows without reads: silent reader");
        let detail = format!(
            "{windows} read windows in a row at {location} read nothing: its readers ({readers}) \
             or their antennas are probably dead."
        );
        let alarm = Alarm {
            kind: "silent_reader",
            asset: None,
            detail,
        };
        out.push(Draft::new(
            location.clone(),
            pass.closed_at,
            Body::Alarm(alarm),
        ));
    }
}

/// The `moved` event of `outcome`, or `None` (logged) when it is not one.
fn moved(
    location: &Arc<str>,
    custody: &Custody,
    outcome: Outcome,
    params: &Params,
    pass_id: Option<Ulid>,
) -> Option<Draft> {
    let Outcome::Moved(direction, confidence) = outcome else {
        debug!(%location, asset = %custody.asset.id, ?outcome, "no moved");
        return None;
    };
    let (from_zone, to_zone) = params.zones(direction);
    let custody = Custody {
        transition: Transition::Moved,
        crossing: Some(Crossing {
            from_zone,
            to_zone,
            confidence,
            pass_id,
        }),
        ..custody.clone()
    };
    Some(Draft::new(
        location.clone(),
        custody.last_seen,
        Body::Custody(custody),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Side, WindowConfig};
    use crate::metrics::PortalStats;
    use crate::presence::Sides;

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
        assert_eq!(
            p.zones(Direction::Inbound),
            ("yard".into(), "receiving".into())
        );
        assert_eq!(
            p.zones(Direction::Outbound),
            ("receiving".into(), "yard".into())
        );
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
        reads.extend([
            (60_000, 1, -55.0),
            (60_500, 2, -55.0),
            (61_000, 2, -50.0),
            (61_500, 2, -60.0),
        ]);
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
        let e = evidence(&[
            (0, 2, -88.0),
            (100, 1, -60.0),
            (200, 1, -60.0),
            (700, 2, -60.0),
        ]);
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

    /// A custody draft of asset `id` at dock-door-1, with `evidence`.
    fn draft(transition: Transition, id: &str, evidence: Option<Evidence>) -> Sighting {
        let t = std::time::SystemTime::now();
        let draft = Draft::new(
            "dock-door-1".into(),
            t,
            Body::Custody(Custody {
                transition,
                asset: crate::identity::Asset {
                    id: id.into(),
                    raw: id.into(),
                    source: crate::decode::Source::Rfid,
                },
                reader: "door1-uhf".into(),
                reads: 6,
                first_seen: t,
                last_seen: t,
                antennas: vec![1, 2],
                rssi_max: Some(-50.0),
                crossing: None,
                context: Default::default(),
            }),
        );
        Sighting {
            draft,
            evidence: evidence.map(Box::new),
        }
    }

    fn departed(evidence: Evidence) -> Sighting {
        draft(
            Transition::Departed,
            "urn:epc:id:giai:0614141.1",
            Some(evidence),
        )
    }

    /// Dock door 1, with read windows if `window`; and the sender of its
    /// sensors' edges.
    fn portals(window: Option<WindowConfig>) -> (Portals, mpsc::Sender<SensorEdge>) {
        let (edges, sensors) = mpsc::channel(8);
        let portal = Portal {
            params: params(),
            windows: window.map(|w| Windows::new(w, Duration::from_secs(2))),
            readers: vec!["door1-uhf".into()],
            metrics: Arc::default(),
        };
        let portals = Portals {
            portals: HashMap::from([(Arc::from("dock-door-1"), portal)]),
            sensors,
            forwarders: JoinSet::new(),
        };
        (portals, edges)
    }

    /// Dock door 1's counts.
    fn stats(portals: &Portals) -> PortalStats {
        portals.portals["dock-door-1"].metrics.get()
    }

    fn custody_of(draft: &Draft) -> &Custody {
        match &draft.body {
            Body::Custody(c) => c,
            other => panic!("not custody: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_departure_is_passed_on_and_followed_by_its_moved() {
        let (mut portals, _) = portals(None);
        let mut out = Vec::new();
        portals.handle(departed(pass(2, 1)), Instant::now(), &mut out);
        assert_eq!(out.len(), 2);
        let moved = custody_of(&out[1]);
        assert_eq!(moved.transition, Transition::Moved);
        assert_eq!(moved.reads, 6);
        let crossing = moved.crossing.as_ref().unwrap();
        assert_eq!(
            (&*crossing.from_zone, &*crossing.to_zone),
            ("receiving", "yard")
        );
        assert_eq!(
            (crossing.confidence, crossing.pass_id),
            (Confidence::Low, None)
        );
        assert!(
            !portals.leaves_cage(&out[1]),
            "a dock door has no release control"
        );

        out.clear();
        portals.handle(
            departed(evidence(&[(0, 1, -60.0)])),
            Instant::now(),
            &mut out,
        );
        assert_eq!(out.len(), 1, "no moved: {out:?}");
        // A reader without sides: presence only, nothing to count.
        portals.handle(
            draft(Transition::Departed, "x", None),
            Instant::now(),
            &mut out,
        );
        assert_eq!(out.len(), 2, "no moved: {out:?}");
        let mut expected = PortalStats::default();
        expected.outcomes.moved = 1;
        expected.outcomes.ambiguous = 1;
        assert_eq!(stats(&portals), expected);
    }

    /// A gateway with the dock doors `doors`, from its configuration file.
    fn gateway(doors: &[&str]) -> Config {
        let mut toml = "[gateway]\nsite = \"s\"\nname = \"g\"\n".to_string();
        for door in doors {
            toml += &format!(
                "[[locations]]\nname = \"{door}\"\nkind = \"dock_door\"\n\
                 outside_zone = \"yard\"\ninside_zone = \"receiving\"\n"
            );
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), toml).unwrap();
        crate::config::load(file.path()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test(start_paused = true)]
    async fn counts_run_on_across_a_reload_and_go_with_the_portal() {
        let metrics = Metrics::default();
        let config = gateway(&["dock-door-1", "dock-door-2"]);
        let mut portals = Portals::new(&config, None, &metrics).unwrap();
        let mut out = Vec::new();
        portals.handle(departed(pass(1, 2)), Instant::now(), &mut out);
        let counts = metrics.portals();
        let doors: Vec<&str> = counts.iter().map(|(name, _)| &**name).collect();
        assert_eq!(doors, ["dock-door-1", "dock-door-2"], "{counts:?}");
        assert_eq!(counts[1].1, PortalStats::default());

        // The reloaded front, without door 2.
        portals.free_sensors().await;
        let mut portals = Portals::new(&gateway(&["dock-door-1"]), None, &metrics).unwrap();
        portals.handle(departed(pass(2, 1)), Instant::now(), &mut out);
        let mut expected = PortalStats::default();
        expected.outcomes.moved = 2;
        assert_eq!(metrics.portals(), [("dock-door-1".into(), expected)]);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_a_cage_is_a_leave_attempt() {
        let (mut portals, _) = portals(None);
        portals.portals.get_mut("dock-door-1").unwrap().params.cage = true;
        let mut out = Vec::new();
        portals.handle(departed(pass(2, 1)), Instant::now(), &mut out);
        portals.handle(departed(pass(1, 2)), Instant::now(), &mut out);
        let leaving: Vec<bool> = out.iter().map(|d| portals.leaves_cage(d)).collect();
        assert_eq!(leaving, [false, true, false, false]);
    }

    fn window() -> WindowConfig {
        WindowConfig {
            trigger: None,
            quiet_after: Duration::from_secs(2),
            max_window: Duration::from_secs(30),
            silent_after: 2,
        }
    }

    fn edge(active: bool) -> Edge {
        Edge {
            active,
            at: Instant::now(),
            wall: std::time::SystemTime::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_through_the_beams_moves_its_assets_together_and_sums_up() {
        let (mut portals, edges) = portals(Some(window()));
        let mut out = Vec::new();
        let location: Arc<str> = "dock-door-1".into();
        let sensor = async |sensor, active, portals: &mut Portals, out: &mut Vec<Draft>| {
            edges
                .send((location.clone(), sensor, edge(active)))
                .await
                .unwrap();
            portals.next_event(out).await;
        };
        sensor(Sensor::Outer, true, &mut portals, &mut out).await;
        let reading = portals
            .reading(&reader_config())
            .expect("a UHF reader is switched");
        assert!(*reading.borrow());
        tokio::time::advance(Duration::from_millis(300)).await;
        sensor(Sensor::Inner, true, &mut portals, &mut out).await;
        for id in ["A", "B", "C"] {
            portals.handle(
                draft(Transition::Arrived, id, None),
                Instant::now(),
                &mut out,
            );
        }
        sensor(Sensor::Outer, false, &mut portals, &mut out).await;
        sensor(Sensor::Inner, false, &mut portals, &mut out).await;
        // A: the antennas agree with the beams; B: both sides at once; C:
        // one side only.
        let at_once = evidence(&[(0, 1, -60.0), (40, 2, -60.0)]);
        for (id, evidence) in [
            ("A", pass(1, 2)),
            ("B", at_once),
            ("C", evidence(&[(0, 2, -60.0)])),
        ] {
            portals.handle(
                draft(Transition::Departed, id, Some(evidence)),
                Instant::now(),
                &mut out,
            );
        }
        assert_eq!(
            out.len(),
            6,
            "presence only until the window closes: {out:?}"
        );
        out.clear();
        // quiet_after later the window closes; every member has departed.
        portals.next_event(&mut out).await;
        assert!(!*reading.borrow(), "readers idle");
        let moved: Vec<&Custody> = out[..2].iter().map(custody_of).collect();
        let pass_id = moved[0]
            .crossing
            .as_ref()
            .unwrap()
            .pass_id
            .expect("a pass_id");
        for (m, (id, confidence)) in moved
            .iter()
            .zip([("A", Confidence::High), ("B", Confidence::Medium)])
        {
            assert_eq!(&*m.asset.id, id);
            let crossing = m.crossing.as_ref().unwrap();
            assert_eq!(
                (crossing.confidence, crossing.pass_id),
                (confidence, Some(pass_id))
            );
            assert_eq!(&*crossing.to_zone, "receiving");
        }
        let Body::Pass(summary) = &out[2].body else {
            panic!("{:?}", out[2]);
        };
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(summary.pass_id, pass_id);
        assert_eq!(
            summary.direction,
            Some(PassDirection::All(Direction::Inbound))
        );
        assert_eq!(summary.from_zone.as_deref(), Some("yard"));
        assert_eq!(summary.closed_by, crate::custody::ClosedBy::Quiet);
        let ids: Vec<&str> = summary.assets.iter().map(|a| &**a).collect();
        assert_eq!(ids, ["A", "B", "C"]);
        let c = summary.counts;
        assert_eq!(
            (c.assets, c.reads, c.outcomes.moved, c.outcomes.ambiguous),
            (3, 18, 2, 1)
        );
        let s = stats(&portals);
        assert_eq!((s.passes, s.empty_passes), (1, 0));
        assert_eq!(s.outcomes, c.outcomes, "the pass's outcomes, counted once");
    }

    #[tokio::test(start_paused = true)]
    async fn windows_that_read_nothing_raise_silent_reader() {
        let (mut portals, edges) = portals(Some(window()));
        let location: Arc<str> = "dock-door-1".into();
        let mut out = Vec::new();
        for _ in 0..2 {
            edges
                .send((location.clone(), Sensor::Outer, edge(true)))
                .await
                .unwrap();
            portals.next_event(&mut out).await;
            edges
                .send((location.clone(), Sensor::Outer, edge(false)))
                .await
                .unwrap();
            portals.next_event(&mut out).await;
            portals.next_event(&mut out).await; // closes on quiet_after
        }
        let kinds: Vec<&str> = out
            .iter()
            .map(|d| match &d.body {
                Body::Pass(p) => {
                    assert_eq!((p.direction, p.counts.assets), (None, 0));
                    "pass"
                }
                Body::Alarm(a) => {
                    assert!(a.detail.contains("door1-uhf"), "{}", a.detail);
                    a.kind
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["pass", "pass", "silent_reader"]);
        assert_eq!(stats(&portals).empty_passes, 2);
        // At shutdown an open window is summed up too.
        edges
            .send((location.clone(), Sensor::Trigger, edge(true)))
            .await
            .unwrap();
        portals.next_event(&mut out).await;
        out.clear();
        portals.shut(&mut out);
        let Body::Pass(p) = &out[0].body else {
            panic!("{out:?}");
        };
        assert_eq!(p.closed_by, crate::custody::ClosedBy::Shutdown);
    }

    fn reader_config() -> ReaderConfig {
        let toml = r#"
name = "door1-uhf"
location = "dock-door-1"
path = "/dev/ttyUSB0"
protocol = "uhf-a0"
"#;
        ::config::Config::builder()
            .add_source(::config::File::from_str(toml, ::config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("a reader table")
    }
}
