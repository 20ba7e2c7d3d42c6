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
mod tests;
