//! Station context: who is signed in at a scan station, what they are doing
//! (the action) and into which container, stamped on every scan there.
//!
//! An auditor asks not only "was asset X here" but who handled it, at which
//! status change, in which gaylord. At a station that is a small state: a
//! badge signs the operator in (the same badge again, or `operator_timeout`
//! of inactivity, signs them out), a command barcode (`ACT:WIPED`) selects
//! the action and an SSCC or container label the container. Command and
//! container scans are consumed here; only asset scans go on as custody,
//! carrying the context. Every change is an event of its own
//! (`custodyd.context.v1`), so the central system can rebuild who held what
//! at any moment, and is saved so that a restart neither signs anyone out
//! early nor keeps them signed in past their timeout.
//!
//! Driven with any `Instant` like the presence engine, so timeouts are
//! tested under tokio's paused clock. The contexts are saved in a table of
//! the retained store (`data_dir/retained.redb`), by location name.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{keep_entries, load_entries, overlay};
use crate::config::{Config, CLEAR_ACTION};
use crate::custody::context::{OPERATOR_REQUIRED, UNKNOWN_ACTION, UNKNOWN_BADGE};
use crate::custody::{self, Alarm, Body, Change, Context, ContextChange, Draft, Save, Transition};
use crate::identity::Asset;
use crate::presence::Observation;
use crate::retained::{Retained, RetainedError, Table};

/// The retained-store table holding each station's [`Saved`] context.
const TABLE: &str = "context";
/// The stations' keys in the spool's saved state.
const SPOOL_PREFIX: &str = "station/";

/// What a station saves of its context, and restores at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    operator: Option<String>,
    /// The signed-in operator's badge (upper case), so that the same badge
    /// signs them out.
    badge: Option<String>,
    action: Option<String>,
    container: Option<String>,
    /// Last activity (a scan or a badge read), milliseconds since the Unix
    /// epoch: what the operator timeout counts from.
    active_at_ms: u64,
}

struct Station {
    operator_timeout: Duration,
    require_operator: bool,
    context: Context,
    badge: Option<Arc<str>>,
    active_at: SystemTime,
    /// When the signed-in operator times out, if nothing happens before.
    signs_out_at: Option<Instant>,
}

impl Station {
    /// A scan or badge read: the operator (if any) is active.
    fn touch(&mut self, now: Instant, wall: SystemTime) {
        self.active_at = wall;
        if self.context.operator.is_some() {
            self.signs_out_at = Some(now + self.operator_timeout);
        }
    }

    /// Takes up `saved`; returns the sign-out if the operator's timeout ran
    /// out in the meantime.
    fn restore(
        &mut self,
        name: &Arc<str>,
        saved: &Saved,
        now: Instant,
        wall: SystemTime,
    ) -> Option<Draft> {
        let arc = |s: &Option<String>| s.as_deref().map(Arc::from);
        self.context = Context {
            operator: arc(&saved.operator),
            action: arc(&saved.action),
            container: arc(&saved.container),
        };
        self.badge = arc(&saved.badge);
        self.active_at = UNIX_EPOCH + Duration::from_millis(saved.active_at_ms);
        self.context.operator.as_ref()?;
        // A clock that went backwards counts as no time passed.
        let idle = wall.duration_since(self.active_at).unwrap_or_default();
        match self.operator_timeout.checked_sub(idle) {
            Some(left) if !left.is_zero() => {
                self.signs_out_at = Some(now + left);
                None
            }
            _ => Some(self.time_out(name)),
        }
    }

    /// Signs the operator out for inactivity; the event is dated when the
    /// timeout ran out.
    fn time_out(&mut self, name: &Arc<str>) -> Draft {
        let operator = self.context.operator.take();
        self.badge = None;
        self.signs_out_at = None;
        info!(
            location = %name,
            operator = operator.as_deref().unwrap_or(""),
            "operator timed out"
        );
        let at = self.active_at + self.operator_timeout;
        context_event(name.clone(), at, Change::TimedOut, None, &self.context)
    }

    fn saved(&self) -> Saved {
        let text = |s: &Option<Arc<str>>| s.as_deref().map(String::from);
        Saved {
            operator: text(&self.context.operator),
            badge: text(&self.badge),
            action: text(&self.context.action),
            container: text(&self.context.container),
            active_at_ms: self
                .active_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

/// What a scan at a station is.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// `ACT:` and a configured action (as configured).
    Action(Arc<str>),
    /// `ACT:CLEAR`.
    Clear,
    /// `ACT:` and something not configured (the part after the prefix).
    UnknownAction(String),
    Container,
    Asset,
}

/// The context of every station of the gateway; owned by the rules task.
pub struct Stations {
    stations: HashMap<Arc<str>, Station>,
    /// Per badge reader, the badge it read last and when: a card held to a
    /// 125 kHz reader is read ten times a second, and is one tap.
    last_badge: HashMap<Arc<str>, (Arc<str>, Instant)>,
    /// Badge (upper case) -> operator id; empty: operators are their badges.
    operators: HashMap<String, Arc<str>>,
    action_prefix: String,
    actions: Vec<Arc<str>>,
    container_prefixes: Vec<String>,
    /// Stations whose context changed since the last [`Stations::save`].
    dirty: BTreeSet<Arc<str>>,
    /// Where the contexts are saved; `None` on a gateway without stations,
    /// which then writes no file for them.
    table: Option<Table>,
}

impl Stations {
    /// The stations `config` (validated) describes, with empty contexts
    /// until [`Stations::load`], saved in `retained`.
    pub fn new(config: &Config, retained: &Retained) -> Result<Self, RetainedError> {
        let any = config.locations.iter().any(|l| l.is_station());
        let table = if any {
            Some(retained.table(TABLE)?)
        } else {
            None
        };
        let mut stations = Stations {
            stations: HashMap::new(),
            last_badge: HashMap::new(),
            operators: config
                .operators
                .iter()
                .map(|(badge, id)| (badge.to_uppercase(), Arc::from(id.as_str())))
                .collect(),
            action_prefix: config.station.action_prefix.clone(),
            actions: config
                .station
                .actions
                .iter()
                .map(|a| Arc::from(a.as_str()))
                .collect(),
            container_prefixes: config.station.container_prefixes.clone(),
            dirty: BTreeSet::new(),
            table,
        };
        for location in config.locations.iter().filter(|l| l.is_station()) {
            let station = Station {
                operator_timeout: location.operator_timeout(),
                require_operator: location.require_operator(),
                context: Context::default(),
                badge: None,
                active_at: UNIX_EPOCH,
                signs_out_at: None,
            };
            stations
                .stations
                .insert(location.name.as_str().into(), station);
        }
        Ok(stations)
    }

    /// Takes up the contexts saved before a restart (`spooled`: what the
    /// spool saved with the events, which wins). An operator
    /// whose timeout ran out while the daemon was down is signed out, with
    /// the event going to `out`.
    pub async fn load(&mut self, spooled: &custody::Saved, out: &mut Vec<Draft>) {
        let Some(table) = &self.table else {
            return;
        };
        let json = |payload: &[u8]| serde_json::from_slice(payload).map_err(|e| e.to_string());
        let saved = load_entries(table, "station context", json).await;
        let saved = overlay(saved, spooled, SPOOL_PREFIX, "station context", json);
        let saved = saved.into_iter().collect();
        self.restore(&saved, Instant::now(), SystemTime::now(), out);
    }

    /// Saves the contexts that changed since the last call, in one commit,
    /// and adds them to `saves` for the spool.
    pub async fn save(&mut self, saves: &mut Vec<Save>) {
        let Some(table) = self.table.clone() else {
            return;
        };
        let changed = self
            .take_dirty()
            .into_iter()
            .map(|(name, saved)| {
                let json = serde_json::to_vec(&saved).expect("strings and integers");
                (name, Some(json))
            })
            .collect();
        keep_entries(&table, changed, "station context", SPOOL_PREFIX, saves).await;
    }

    fn restore(
        &mut self,
        saved: &HashMap<String, Saved>,
        now: Instant,
        wall: SystemTime,
        out: &mut Vec<Draft>,
    ) {
        for (name, station) in &mut self.stations {
            let Some(saved) = saved.get(&**name) else {
                continue;
            };
            if let Some(timed_out) = station.restore(name, saved, now, wall) {
                self.dirty.insert(name.clone());
                out.push(timed_out);
            }
        }
    }

    /// A scan, arrival or alarm from presence: scans at a station are
    /// context commands, refused, or custody carrying the context; anything
    /// else passes through.
    pub fn on_draft(&mut self, mut draft: Draft, now: Instant, out: &mut Vec<Draft>) {
        let Some(station) = self.stations.get_mut(&draft.location) else {
            out.push(draft);
            return;
        };
        let Body::Custody(custody) = &mut draft.body else {
            out.push(draft);
            return;
        };
        if custody.transition != Transition::Scanned {
            out.push(draft);
            return;
        }
        let scan = classify(
            &custody.asset,
            &self.action_prefix,
            &self.actions,
            &self.container_prefixes,
        );
        let location = draft.location.clone();
        let wall = draft.observed_at;
        if station.require_operator && station.context.operator.is_none() {
            let what = if scan == Scan::Asset {
                "a scan"
            } else {
                "a station command"
            };
            let detail = format!(
                "Reader {} read {what} at {location} with nobody signed in; it was refused \
                 (require_operator).",
                custody.reader
            );
            let asset = (scan == Scan::Asset).then(|| custody.asset.clone());
            out.push(alarm(location, wall, OPERATOR_REQUIRED, asset, detail));
            return;
        }
        station.touch(now, wall);
        if station.context.operator.is_some() {
            // Activity postpones the timeout, which must hold across a restart.
            self.dirty.insert(location.clone());
        }
        let context = &mut station.context;
        let change = match scan {
            Scan::Asset => {
                custody.context = context.clone();
                out.push(draft);
                return;
            }
            Scan::Action(action) => (context.action.as_ref() != Some(&action)).then(|| {
                context.action = Some(action);
                Change::ActionSet
            }),
            Scan::Clear => (context.action.is_some() || context.container.is_some()).then(|| {
                context.action = None;
                context.container = None;
                Change::Cleared
            }),
            Scan::Container => {
                let id = &custody.asset.id;
                (context.container.as_ref() != Some(id)).then(|| {
                    context.container = Some(id.clone());
                    Change::ContainerSet
                })
            }
            Scan::UnknownAction(action) => {
                let known: Vec<&str> = self.actions.iter().map(|a| &**a).collect();
                let detail = format!(
                    "Reader {} read the action command {:?} at {location}, but {action:?} is \
                     not a configured action ({}); the context is unchanged.",
                    custody.reader,
                    &*custody.asset.id,
                    known.join(", ")
                );
                out.push(alarm(location, wall, UNKNOWN_ACTION, None, detail));
                return;
            }
        };
        if let Some(change) = change {
            self.dirty.insert(location.clone());
            let reader = custody.reader.clone();
            out.push(context_event(location, wall, change, Some(reader), context));
        }
    }

    /// A read of a badge reader (never an asset): signs an operator in or
    /// out of the reader's station.
    pub fn on_badge(&mut self, obs: Observation, now: Instant, out: &mut Vec<Draft>) {
        let reader = &obs.reader;
        let badge = match obs.asset {
            Ok(asset) => asset.id,
            Err(rejected) => {
                warn!(reader = %reader.name, "badge read ignored: {rejected}");
                return;
            }
        };
        let previous = self
            .last_badge
            .insert(reader.name.clone(), (badge.clone(), now));
        let same_tap = previous.is_some_and(|(last, at)| {
            last == badge && now.duration_since(at) < reader.rescan_window
        });
        if same_tap {
            return;
        }
        let Some(station) = self.stations.get_mut(&reader.location) else {
            return;
        };
        let location = reader.location.clone();
        let key: Arc<str> = badge.to_uppercase().into();
        let operator = if self.operators.is_empty() {
            badge.clone()
        } else if let Some(id) = self.operators.get(&*key) {
            id.clone()
        } else {
            let detail = format!(
                "Badge {badge:?} read by {} at {location} is not in [operators]; nobody was \
                 signed in or out.",
                reader.name
            );
            out.push(alarm(location, obs.wall, UNKNOWN_BADGE, None, detail));
            return;
        };
        let change = if station.badge.as_ref() == Some(&key) {
            station.context.operator = None;
            station.badge = None;
            station.signs_out_at = None;
            info!(location = %location, %operator, "operator signed out");
            Change::SignedOut
        } else {
            station.context.operator = Some(operator.clone());
            station.badge = Some(key);
            info!(location = %location, %operator, "operator signed in");
            Change::SignedIn
        };
        station.touch(now, obs.wall);
        self.dirty.insert(location.clone());
        out.push(context_event(
            location,
            obs.wall,
            change,
            Some(reader.name.clone()),
            &station.context,
        ));
    }

    /// When [`Stations::expire`] next has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.stations.values().filter_map(|s| s.signs_out_at).min()
    }

    /// Signs out every operator inactive for their station's timeout.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Draft>) {
        for (name, station) in &mut self.stations {
            if station.signs_out_at.is_some_and(|at| at <= now) {
                self.dirty.insert(name.clone());
                out.push(station.time_out(name));
            }
        }
    }

    /// The stations whose context changed since the last call, with what to
    /// save for each.
    fn take_dirty(&mut self) -> Vec<(Arc<str>, Saved)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|name| {
                let saved = self.stations.get(&name)?.saved();
                Some((name, saved))
            })
            .collect()
    }
}

/// Tells command barcodes and containers from assets. Prefixes match in
/// any case: scanners are often set to change it.
fn classify(
    asset: &Asset,
    action_prefix: &str,
    actions: &[Arc<str>],
    container_prefixes: &[String],
) -> Scan {
    let id = &*asset.id;
    if let Some(action) = strip_prefix_ignore_case(id, action_prefix) {
        if action.eq_ignore_ascii_case(CLEAR_ACTION) {
            return Scan::Clear;
        }
        return match actions.iter().find(|a| a.eq_ignore_ascii_case(action)) {
            Some(a) => Scan::Action(a.clone()),
            None => Scan::UnknownAction(action.to_string()),
        };
    }
    let sscc = id.starts_with("urn:epc:id:sscc:") || id.starts_with("(00)");
    if sscc
        || container_prefixes
            .iter()
            .any(|p| strip_prefix_ignore_case(id, p).is_some())
    {
        return Scan::Container;
    }
    Scan::Asset
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn alarm(
    location: Arc<str>,
    wall: SystemTime,
    kind: &'static str,
    asset: Option<Asset>,
    detail: String,
) -> Draft {
    Draft::new(
        location,
        wall,
        Body::Alarm(Alarm {
            kind,
            asset,
            detail,
        }),
    )
}

fn context_event(
    location: Arc<str>,
    wall: SystemTime,
    change: Change,
    reader: Option<Arc<str>>,
    context: &Context,
) -> Draft {
    let body = Body::Context(ContextChange {
        change,
        reader,
        context: context.clone(),
    });
    Draft::new(location, wall, body)
}

#[cfg(test)]
mod tests;
