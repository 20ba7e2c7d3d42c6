//! Manifest reconciliation at dock doors: does what came off the truck
//! match what was picked up?
//!
//! The central system publishes each door's expected pickup, retained, on
//! `{root}/{site}/manifest/{door}`: `{"pickup_id": ..., "expected": [asset
//! ids], "closed": false}`. While a pickup is open, every pass summary of the
//! door (a read window closing) carries the reconciliation so far, over all
//! the pickup's passes (a truck is unloaded in several pallets): `expected`,
//! `received`, `missing`, `unexpected`. A pass that reads assets the
//! manifest does not list raises `manifest_mismatch` at once (that is wrong
//! whatever comes next); the pickup ends when the central system closes it
//! (`closed: true`), publishes the door's next pickup, or `manifest_timeout`
//! passes after its last pass, and if anything was missing or unexpected
//! by then, `manifest_mismatch` says so.
//!
//! Manifests and progress are kept in the retained store, so a restart or a
//! broker outage in the middle of an unloading loses nothing, and the
//! broker's re-delivery of a manifest after each reconnect changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

use super::{keep_entries, load_entries, overlay, store_entries};
use crate::bus::{Ack, Bus, Inbound};
use crate::config::Config;
use crate::custody::{Alarm, Body, Draft, Pass, Reconciliation, Save, Saved};
use crate::retained::{Retained, RetainedError, Table};
use crate::trust::{check_newer, Guard, Kind};

/// The latest manifest payload of each door, as published.
const TABLE: &str = "manifests";
/// Each door's [`Progress`].
const PROGRESS_TABLE: &str = "manifest_progress";
/// The doors' pickup progress in the spool's saved state.
const SPOOL_PREFIX: &str = "pickup/";
/// Manifest messages waiting: one per door, re-delivered after reconnects.
const INBOUND_QUEUE: usize = 64;
/// Asset ids named in an alarm's sentence, at most; the pass summary lists
/// them all.
const IDS_IN_DETAIL: usize = 10;

/// A manifest as the central system publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) pickup_id: String,
    /// Canonical asset ids, each once.
    pub(crate) expected: Vec<String>,
    #[serde(default)]
    closed: bool,
    /// When central signed it (signed manifests): an older one is refused.
    #[serde(default)]
    issued_at: Option<String>,
}

/// The manifest in `payload`, or why it is ignored.
pub(crate) fn parse(payload: &[u8]) -> Result<Manifest, String> {
    let mut manifest: Manifest = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    if manifest.pickup_id.trim().is_empty() {
        return Err("pickup_id is empty".into());
    }
    if manifest.expected.iter().any(String::is_empty) {
        return Err("an expected asset id is empty".into());
    }
    let mut listed = HashSet::new();
    manifest.expected.retain(|id| listed.insert(id.clone()));
    Ok(manifest)
}

/// How far a door's current pickup has come.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    pickup_id: String,
    /// Every asset the pickup's passes read, first read first.
    seen: Vec<String>,
    passes: u32,
    /// When its last pass closed, milliseconds since the Unix epoch.
    last_pass_ms: u64,
    /// Closed, replaced or timed out: later passes are not reconciled, and
    /// a re-delivered manifest does not reopen it.
    ended: bool,
}

impl Progress {
    fn new(manifest: &Manifest) -> Self {
        Progress {
            pickup_id: manifest.pickup_id.clone(),
            ended: manifest.closed,
            ..Progress::default()
        }
    }

    fn last_pass(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.last_pass_ms)
    }

    fn reconcile(&self, manifest: &Manifest) -> Reconciliation {
        let seen: HashSet<&str> = self.seen.iter().map(String::as_str).collect();
        let expected: HashSet<&str> = manifest.expected.iter().map(String::as_str).collect();
        let (received, missing) = manifest
            .expected
            .iter()
            .cloned()
            .partition(|id| seen.contains(id.as_str()));
        Reconciliation {
            pickup_id: self.pickup_id.clone(),
            expected: manifest.expected.clone(),
            received,
            missing,
            unexpected: self
                .seen
                .iter()
                .filter(|id| !expected.contains(id.as_str()))
                .cloned()
                .collect(),
            passes: self.passes,
        }
    }
}

/// What [`Manifests::next_event`] waited for.
pub enum Event {
    Message(Inbound),
    Timeout,
}

/// Why a pickup's reconciliation ended.
enum End {
    Closed,
    Replaced(String),
    TimedOut(Duration),
}

struct Door {
    manifest_timeout: Duration,
    /// The latest valid manifest published for the door.
    manifest: Option<Manifest>,
    progress: Option<Progress>,
    /// When the open pickup times out, if no pass comes before.
    ends_at: Option<Instant>,
}

impl Door {
    /// The pickup passes are reconciled against now, if one is open.
    fn open(&mut self) -> Option<(&Manifest, &mut Progress)> {
        let progress = self.progress.as_mut().filter(|p| !p.ended)?;
        let manifest = self
            .manifest
            .as_ref()
            .filter(|m| m.pickup_id == progress.pickup_id)?;
        Some((manifest, progress))
    }

    /// Ends the open pickup, with a `manifest_mismatch` alarm if it did not
    /// match; nothing if none is open.
    fn end(&mut self, name: &Arc<str>, why: End, at: SystemTime) -> Option<Draft> {
        self.ends_at = None;
        let (manifest, progress) = self.open()?;
        progress.ended = true;
        let r = progress.reconcile(manifest);
        let how = match why {
            End::Closed => "was closed".to_string(),
            End::Replaced(next) => format!("was replaced by pickup {next:?}"),
            End::TimedOut(after) => format!(
                "timed out {} after its last pass",
                humantime::format_duration(after)
            ),
        };
        info!(
            door = %name,
            pickup = %r.pickup_id,
            received = r.received.len(),
            expected = r.expected.len(),
            unexpected = r.unexpected.len(),
            "pickup {how}"
        );
        if r.missing.is_empty() && r.unexpected.is_empty() {
            return None;
        }
        let detail = format!(
            "Pickup {:?} at {name} {how}: {} of {} expected assets received in {} {}; \
             missing: {}; unexpected: {}.",
            r.pickup_id,
            r.received.len(),
            r.expected.len(),
            r.passes,
            if r.passes == 1 { "pass" } else { "passes" },
            ids(&r.missing),
            ids(&r.unexpected),
        );
        Some(mismatch(name, at, detail))
    }
}

/// Subscribes to the pickup manifests when `config` has dock doors with
/// read windows; `None` otherwise. Made once, before the uplink starts, and
/// handed from one front to the next.
pub fn subscribe(config: &Config, bus: &mut Bus) -> Option<mpsc::Receiver<Inbound>> {
    config
        .locations
        .iter()
        .any(|l| l.takes_manifests())
        .then(|| {
            bus.subscribe(
                format!("{}+", config.naming().manifest_prefix()),
                INBOUND_QUEUE,
            )
        })
}

/// The doors of a gateway that take manifests, their pickups and their
/// subscription; owned by the rules task.
pub struct Manifests {
    doors: HashMap<Arc<str>, Door>,
    /// `{root}/{site}/manifest/`.
    prefix: String,
    /// `None` at a gateway without such doors.
    inbound: Option<mpsc::Receiver<Inbound>>,
    /// Checks manifest messages, and reports those refused.
    guard: Guard,
    /// (manifests, progress) tables; `None` likewise.
    tables: Option<(Table, Table)>,
    /// Manifest payloads to store (`None`: remove) since the last save.
    manifests_dirty: Vec<(Arc<str>, Option<Vec<u8>>)>,
    progress_dirty: BTreeSet<Arc<str>>,
    /// Messages handled since the last save, acknowledged once it stored
    /// what they changed.
    acks: Vec<Ack>,
}

impl Manifests {
    /// The doors of `config` that take manifests, fed by `inbound` (from
    /// [`subscribe`]), with their tables opened; neither without such doors.
    pub fn new(
        config: &Config,
        retained: &Retained,
        inbound: Option<mpsc::Receiver<Inbound>>,
        guard: Guard,
    ) -> Result<Self, RetainedError> {
        let doors: HashMap<Arc<str>, Door> = config
            .locations
            .iter()
            .filter(|l| l.takes_manifests())
            .map(|l| {
                let door = Door {
                    manifest_timeout: l.manifest_timeout(),
                    manifest: None,
                    progress: None,
                    ends_at: None,
                };
                (Arc::from(l.name.as_str()), door)
            })
            .collect();
        let prefix = config.naming().manifest_prefix();
        let tables = if doors.is_empty() {
            None
        } else {
            Some((retained.table(TABLE)?, retained.table(PROGRESS_TABLE)?))
        };
        Ok(Manifests {
            doors,
            prefix,
            inbound,
            guard,
            tables,
            manifests_dirty: Vec::new(),
            progress_dirty: BTreeSet::new(),
            acks: Vec::new(),
        })
    }

    /// Gives the subscription back, for the rules of the next front.
    pub fn into_subscription(self) -> Option<mpsc::Receiver<Inbound>> {
        self.inbound
    }

    /// Takes up the manifests and progress stored before a restart. A
    /// pickup whose timeout ran out meanwhile ends now (its alarm to `out`,
    /// dated when it ran out).
    /// `spooled` is what the spool saved with the events; its progress
    /// wins over the store's.
    pub async fn load(&mut self, spooled: &Saved, out: &mut Vec<Draft>) {
        let Some((manifests, progress)) = self.tables.clone() else {
            return;
        };
        for (name, manifest) in load_entries(&manifests, "manifests", parse).await {
            if let Some(door) = self.doors.get_mut(name.as_str()) {
                door.manifest = Some(manifest);
            }
        }
        let (now, wall) = (Instant::now(), SystemTime::now());
        let json = |payload: &[u8]| serde_json::from_slice(payload).map_err(|e| e.to_string());
        let loaded = load_entries::<Progress>(&progress, "manifest progress", json).await;
        let loaded = overlay(loaded, spooled, SPOOL_PREFIX, "manifest progress", json);
        for (name, saved) in loaded {
            let Some((name, door)) = door_mut(&mut self.doors, &name) else {
                continue;
            };
            let timeout = door.manifest_timeout;
            let last_pass = saved.last_pass();
            let started = saved.passes > 0 && !saved.ended;
            door.progress = Some(saved);
            if !started {
                continue;
            }
            let idle = wall.duration_since(last_pass).unwrap_or_default();
            match timeout.checked_sub(idle) {
                Some(left) if !left.is_zero() => door.ends_at = Some(now + left),
                _ => {
                    self.progress_dirty.insert(name.clone());
                    out.extend(door.end(&name, End::TimedOut(timeout), last_pass + timeout));
                }
            }
        }
    }

    /// Waits for a manifest message or a pickup's timeout, for
    /// [`Manifests::handle`]. Cancel-safe; never completes at a gateway
    /// without manifest doors.
    pub async fn next_event(&mut self) -> Event {
        let deadline = self.doors.values().filter_map(|d| d.ends_at).min();
        let message = async {
            match self.inbound.as_mut() {
                Some(inbound) => inbound.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(message) = message => Event::Message(message),
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                Event::Timeout
            }
            else => std::future::pending().await,
        }
    }

    pub fn handle(&mut self, event: Event, out: &mut Vec<Draft>) {
        match event {
            Event::Message(message) => self.on_message(message, out),
            Event::Timeout => self.expire(Instant::now(), out),
        }
    }

    fn on_message(&mut self, mut message: Inbound, out: &mut Vec<Draft>) {
        self.acks.push(std::mem::take(&mut message.ack));
        let door = message.topic.strip_prefix(&self.prefix).unwrap_or("");
        let Some((name, door)) = door_mut(&mut self.doors, door) else {
            debug!(topic = %message.topic, "manifest for a door not at this gateway");
            return;
        };
        let wall = SystemTime::now();
        let Some(verified) = self
            .guard
            .check(&message.topic, &message.payload, Kind::State)
        else {
            return;
        };
        let held = door.manifest.as_ref().and_then(|m| m.issued_at.as_deref());
        let held = held.and_then(|t| crate::timestamp::parse_rfc3339(t).ok());
        if let Err(refusal) = check_newer(held, &verified) {
            self.guard.alarms.report(&message.topic, refusal);
            return;
        }
        if verified.inner.is_empty() {
            if door.manifest.take().is_some() {
                // Withdrawn: the central system no longer expects it, so
                // what was missing is no alarm.
                info!(door = %name, "pickup manifest withdrawn");
                if let Some(progress) = door.progress.as_mut().filter(|p| !p.ended) {
                    progress.ended = true;
                    door.ends_at = None;
                    self.progress_dirty.insert(name.clone());
                }
                self.manifests_dirty.push((name, None));
            }
            return;
        }
        let manifest = match parse(&verified.inner) {
            Ok(manifest) => manifest,
            Err(why) => {
                warn!(topic = %message.topic, "manifest ignored: {why}");
                return;
            }
        };
        if door.manifest.as_ref() == Some(&manifest) {
            return; // re-delivered after a reconnect
        }
        self.manifests_dirty
            .push((name.clone(), Some(verified.inner)));
        let current = door.progress.as_ref().map(|p| p.pickup_id.as_str());
        if current != Some(manifest.pickup_id.as_str()) {
            let next = manifest.pickup_id.clone();
            out.extend(door.end(&name, End::Replaced(next), wall));
            info!(door = %name, pickup = %manifest.pickup_id, expected = manifest.expected.len(), "pickup manifest");
            door.progress = Some(Progress::new(&manifest));
            door.manifest = Some(manifest);
        } else {
            let closed = manifest.closed;
            door.manifest = Some(manifest);
            if closed {
                out.extend(door.end(&name, End::Closed, wall));
            }
        }
        self.progress_dirty.insert(name);
    }

    fn expire(&mut self, now: Instant, out: &mut Vec<Draft>) {
        for (name, door) in &mut self.doors {
            if door.ends_at.is_some_and(|at| at <= now) {
                let timeout = door.manifest_timeout;
                let at = door
                    .progress
                    .as_ref()
                    .map_or_else(SystemTime::now, |p| p.last_pass() + timeout);
                self.progress_dirty.insert(name.clone());
                out.extend(door.end(name, End::TimedOut(timeout), at));
            }
        }
    }

    /// Reconciles the pass summaries among `out` against their doors' open
    /// pickups; an alarm for assets not on the manifest follows its pass.
    pub fn reconcile(&mut self, out: &mut Vec<Draft>, now: Instant) {
        let mut i = 0;
        while i < out.len() {
            if let Some(alarm) = self.on_pass(&mut out[i], now) {
                i += 1;
                out.insert(i, alarm);
            }
            i += 1;
        }
    }

    fn on_pass(&mut self, draft: &mut Draft, now: Instant) -> Option<Draft> {
        let Body::Pass(pass) = &mut draft.body else {
            return None;
        };
        let (name, door) = door_mut(&mut self.doors, &draft.location)?;
        let timeout = door.manifest_timeout;
        let (manifest, progress) = door.open()?;
        let unexpected = absorb(pass, manifest, progress, draft.observed_at);
        let r = progress.reconcile(manifest);
        debug!(door = %name, pickup = %r.pickup_id, received = r.received.len(), missing = r.missing.len(), "pass reconciled");
        pass.manifest = Some(r);
        door.ends_at = Some(now + timeout);
        self.progress_dirty.insert(name.clone());
        if unexpected.is_empty() {
            return None;
        }
        let pickup = &pass.manifest.as_ref().expect("set above").pickup_id;
        let detail = format!(
            "Pass {} at {name} read {} assets that pickup {pickup:?}'s manifest does not list: {}.",
            pass.pass_id,
            unexpected.len(),
            ids(&unexpected)
        );
        Some(mismatch(&name, draft.observed_at, detail))
    }

    /// Stores what changed since the last call; the progress also goes to
    /// `saves`, for the spool.
    pub async fn save(&mut self, saves: &mut Vec<Save>) {
        let Some((manifests, progress)) = &self.tables else {
            return;
        };
        let changed = std::mem::take(&mut self.manifests_dirty);
        let acks = std::mem::take(&mut self.acks);
        if store_entries(manifests, changed, "manifest").await {
            acks.into_iter().for_each(Ack::done);
        }
        let changed = std::mem::take(&mut self.progress_dirty)
            .into_iter()
            .map(|name| {
                let saved = self.doors.get(&name).and_then(|d| d.progress.as_ref());
                let json = saved.map(|p| serde_json::to_vec(p).expect("strings and integers"));
                (name, json)
            })
            .collect();
        keep_entries(progress, changed, "manifest progress", SPOOL_PREFIX, saves).await;
    }
}

/// Adds the assets of `pass` to the pickup's; returns those that are new
/// and not on the manifest.
fn absorb(
    pass: &Pass,
    manifest: &Manifest,
    progress: &mut Progress,
    closed_at: SystemTime,
) -> Vec<String> {
    let expected: HashSet<&str> = manifest.expected.iter().map(String::as_str).collect();
    let mut seen: HashSet<String> = progress.seen.iter().cloned().collect();
    let mut unexpected = Vec::new();
    for id in &pass.assets {
        if seen.insert(id.to_string()) {
            progress.seen.push(id.to_string());
            if !expected.contains(&**id) {
                unexpected.push(id.to_string());
            }
        }
    }
    progress.passes += 1;
    progress.last_pass_ms = closed_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    unexpected
}

/// Up to [`IDS_IN_DETAIL`] ids for a sentence.
fn ids(ids: &[String]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    let shown = ids[..ids.len().min(IDS_IN_DETAIL)].join(", ");
    match ids.len().saturating_sub(IDS_IN_DETAIL) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

fn mismatch(door: &Arc<str>, at: SystemTime, detail: String) -> Draft {
    let alarm = Alarm {
        kind: "manifest_mismatch",
        asset: None,
        detail,
    };
    Draft::new(door.clone(), at, Body::Alarm(alarm))
}

/// The door named `name`, with its key (for events and saving).
fn door_mut<'d>(
    doors: &'d mut HashMap<Arc<str>, Door>,
    name: &str,
) -> Option<(Arc<str>, &'d mut Door)> {
    let key = doors.get_key_value(name)?.0.clone();
    Some((key, doors.get_mut(name)?))
}

#[cfg(test)]
mod tests;
