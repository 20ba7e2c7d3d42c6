//! Release control at cage gates: data-bearing assets stay inside the cage
//! until the central system has released them, and the gate decides on its
//! own when the network is down.
//!
//! One task owns the release policy (its durable copy, see [`policy`]) and
//! the outputs of every gate of this gateway. It learns of:
//!
//! - leave attempts ([`LeaveAttempt`]) from the custody rules task: a scan
//!   by a reader in `mode = "release"` at the gate, or (from the portal
//!   rules) an asset seen `moved` from inside to outside. The attempt's
//!   custody event comes along and is published by this task with the
//!   decision: granted, it carries a `release` object naming the policy
//!   entry; denied, it goes out as it was, followed by an alarm saying why;
//! - policy messages on `{root}/{site}/release/#`, checked by `trust`
//!   (signed, not older than the entry held) and stored as they arrive;
//!   each is acknowledged to the broker once committed (or refused), so a
//!   revocation delivered just before a crash comes again;
//! - door-sensor edges: the door opening while the gate is locked is a
//!   `gate_forced` alarm;
//! - `unlock` commands: an operator's override, audited as a
//!   `gate_override` alarm (it is something a person should look at, and
//!   it is not about one asset);
//! - station refusals (`custody::context::REFUSALS`): at a gate that is a
//!   station, red and the buzzer as for a denial, and the alarm published.
//!
//! Decisions: released and not expired: unlock pulse and green light, once
//! the custody event recording it is committed (else the gate stays locked:
//! no asset leaves without its record). An entry with `expires_at` while the
//! clock is unsynchronised is refused unless `gate.unsynced_expiry = "allow"`.
//! Revoked, `released: false` or expired: the lock stays shut, red light and
//! buzzer, `release_denied`. Not in the policy at all: `release_unknown_asset`
//! and the gate's `unknown` (deny unless configured to allow).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, error, info, warn};

use crate::bus::{Bus, Inbound};
use crate::command::{Commands, Request};
use crate::config::{Config, ReadMode, UnknownAsset, UnsyncedExpiry};
use crate::custody::{context, rfc3339, Alarm, Basis, Body, Draft, Receipt, Release, Transition};
use crate::gpio::{Edge, GpioError, Input, Pins};
use crate::panics::off_thread;
use crate::retained::{Retained, RetainedError, Table, Update};
use crate::topic::asset_key;
use crate::trust::{self, check_newer, Guard, Kind, Verified};

mod gate;
pub mod policy;
pub(crate) mod unlock;

use gate::Gate;
use policy::Standing;

/// The table of the policy's local copy in `retained.redb`.
const TABLE: &str = "release";
/// Policy messages waiting: the broker re-delivers every retained entry of
/// the site after each reconnect, all at once.
const POLICY_QUEUE: usize = 4096;
/// Policy messages stored with one commit.
const POLICY_BATCH: usize = 512;
const ATTEMPTS_QUEUE: usize = 64;
/// How long a gate waits for the record of an unlock to be committed
/// before it gives up and stays locked: far more than a group commit takes,
/// even on a slow card.
const COMMIT_WAIT: Duration = Duration::from_secs(10);
/// How often an alarm the spool had no room for is offered again.
const RECORD_RETRY: Duration = Duration::from_secs(1);

/// Test seam: whole seconds the policy store waits before each commit, so a
/// test can kill the daemon between a policy message's delivery and its
/// commit. The daemon logs a warning when it is set; not for production.
pub const TEST_STALL_ENV: &str = "CUSTODYD_TEST_POLICY_STALL";

/// Test seam: how many release policy commits fail, as on a failing disk,
/// before they work again, so a test can follow a failed commit's message
/// until it is stored. The daemon logs a warning when it is set; not for
/// production.
pub const TEST_FAIL_ENV: &str = "CUSTODYD_TEST_POLICY_FAIL";

/// How an asset tried to leave the cage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Scanned by the gate's reader in `mode = "release"`.
    Scan,
    /// Seen crossing the gate from its inside zone to its outside zone.
    Moved,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Scan => "scan",
            Via::Moved => "moved",
        }
    }
}

/// An asset trying to leave a cage through its gate: `event` is the custody
/// event that showed it, at the gate's location; the gate task publishes it
/// once it has decided.
#[derive(Debug)]
pub struct LeaveAttempt {
    pub via: Via,
    pub event: Draft,
}

/// What the rules task hands to the gate task.
#[derive(Debug)]
enum ToGate {
    Leave(LeaveAttempt),
    /// A station's refusal (its alarm), signalled where the station is a
    /// gate, then published.
    Refused(Draft),
}

/// The rules task's end of the hand-off to the gate task. The gate task
/// ends (locking every gate) once the last clone is dropped: the
/// supervisor holds one, for each new front, and drops it at shutdown.
#[derive(Debug, Clone, Default)]
pub struct Attempts {
    /// Readers in `mode = "release"`.
    release_readers: Arc<HashSet<Arc<str>>>,
    /// `None` on a gateway without gates.
    to_gates: Option<mpsc::Sender<ToGate>>,
}

impl Attempts {
    /// The hand-off for a front built from `config`: the same gates (a
    /// reload may not change them), the release readers it configures.
    pub fn for_config(&self, config: &Config) -> Attempts {
        Attempts {
            release_readers: Arc::new(release_readers(config)),
            to_gates: self.to_gates.clone(),
        }
    }

    /// A scan by a release reader, and a station's refusal, go to the gate
    /// task (`None` comes back); any other draft comes back to be passed
    /// on, as do those when there is no gate task.
    pub async fn divert(&self, draft: Draft) -> Option<Draft> {
        let for_gates = match &draft.body {
            Body::Custody(c) => {
                c.transition == Transition::Scanned && self.release_readers.contains(&c.reader)
            }
            Body::Alarm(a) => context::REFUSALS.contains(&a.kind),
            _ => false,
        };
        let Some(gates) = self.to_gates.as_ref().filter(|_| for_gates) else {
            return Some(draft);
        };
        let Ok(permit) = gates.reserve().await else {
            return Some(draft);
        };
        permit.send(match draft.body {
            Body::Alarm(_) => ToGate::Refused(draft),
            _ => ToGate::Leave(LeaveAttempt {
                via: Via::Scan,
                event: draft,
            }),
        });
        None
    }

    /// Hands `attempt` to the gate task; gives it back when there is none
    /// (its event is then passed on undecided).
    pub async fn attempt(&self, attempt: LeaveAttempt) -> Result<(), LeaveAttempt> {
        let Some(gates) = &self.to_gates else {
            return Err(attempt);
        };
        match gates.reserve().await {
            Ok(permit) => {
                permit.send(ToGate::Leave(attempt));
                Ok(())
            }
            Err(_) => Err(attempt),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("location {location}: gate: {source}")]
    Gpio { location: String, source: GpioError },
    #[error("release policy store: {0}")]
    Retained(#[from] RetainedError),
}

/// The gate task, if this gateway has gates, and the hand-off to it.
pub struct Started {
    pub attempts: Attempts,
    pub task: Option<JoinHandle<()>>,
}

/// The gates' outputs, claimed and driven locked, and their door sensors.
pub struct Claimed {
    gates: Vec<Gate>,
    doors: Vec<(usize, Input)>,
}

/// Claims every gate's pins, driving each output inactive (locked, dark,
/// quiet): the first thing the daemon does after reading its configuration,
/// before the spool or the broker, as the relays may be in any state after
/// a crash. `None` on a gateway without gates.
pub fn claim(config: &Config, pins: Option<&Pins>) -> Result<Option<Claimed>, StartError> {
    let gated: Vec<_> = config
        .locations
        .iter()
        .filter_map(|l| Some((l.name.as_str(), l.gate.as_ref()?)))
        .collect();
    let Some(pins) = pins.filter(|_| !gated.is_empty()) else {
        return Ok(None);
    };
    let gpio_error = |location: &str| {
        let location = location.to_string();
        move |source| StartError::Gpio { location, source }
    };
    let mut gates = Vec::new();
    let mut doors = Vec::new();
    for (i, (location, gate)) in gated.into_iter().enumerate() {
        gates.push(Gate::claim(location.into(), gate.clone(), pins).map_err(gpio_error(location))?);
        if let Some(sensor) = &gate.door_sensor {
            doors.push((i, pins.input(sensor).map_err(gpio_error(location))?));
        }
    }
    Ok(Some(Claimed { gates, doors }))
}

/// Opens the policy's local copy (its table of `retained`), subscribes to
/// the policy, registers `unlock` and starts the task of the `claimed`
/// gates. The task ends when every [`Attempts`] is gone (the rules task has
/// ended), locking every gate on the way out.
pub fn start(
    config: &Config,
    claimed: Option<Claimed>,
    retained: &Retained,
    bus: &mut Bus,
    commands: &mut Commands,
    drafts: mpsc::Sender<Draft>,
    guard: &Guard,
) -> Result<Started, StartError> {
    let Some(Claimed { gates, doors }) = claimed else {
        return Ok(Started {
            attempts: Attempts::default(),
            task: None,
        });
    };
    let store = retained.table(TABLE)?;
    // Says so at start if a test seam is set.
    let _ = test_stall();
    let _ = test_failures();
    let prefix = config.naming().release_prefix();
    let policy = bus.subscribe(format!("{prefix}#"), POLICY_QUEUE);
    let unlocks = commands.register("unlock");
    let (to_gates, attempts) = mpsc::channel(ATTEMPTS_QUEUE);

    let (edges_tx, edges) = mpsc::channel(16);
    for (gate, door) in doors {
        tokio::spawn(forward_door(gate, door, edges_tx.clone()));
    }
    let task = GateTask {
        gates,
        guard: guard.clone(),
        operators: config.operators.values().cloned().collect(),
        store,
        prefix,
        drafts,
    };
    Ok(Started {
        attempts: Attempts {
            release_readers: Arc::new(release_readers(config)),
            to_gates: Some(to_gates),
        },
        task: Some(tokio::spawn(task.run(attempts, policy, unlocks, edges))),
    })
}

/// The wait of [`TEST_STALL_ENV`], if set (and logged once, as a warning).
fn test_stall() -> Option<Duration> {
    static STALL: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *STALL.get_or_init(|| {
        let seconds = std::env::var(TEST_STALL_ENV).ok()?.parse().ok()?;
        warn!(
            "{TEST_STALL_ENV} is set: every release policy commit waits {seconds} s, as a test \
             seam; not for production"
        );
        Some(Duration::from_secs(seconds))
    })
}

/// The commits [`TEST_FAIL_ENV`] has still to fail (logged once, as a
/// warning, when set).
fn test_failures() -> &'static AtomicU32 {
    static LEFT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    LEFT.get_or_init(|| {
        let failures = std::env::var(TEST_FAIL_ENV)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if failures > 0 {
            warn!(
                "{TEST_FAIL_ENV} is set: the next {failures} release policy commits fail, as a \
                 test seam; not for production"
            );
        }
        AtomicU32::new(failures)
    })
}

/// Readers in `mode = "release"`.
fn release_readers(config: &Config) -> HashSet<Arc<str>> {
    config
        .readers
        .iter()
        .filter(|r| r.mode() == ReadMode::Release)
        .map(|r| Arc::from(r.name.as_str()))
        .collect()
}

/// Follows one door sensor for the gate task, until that task is gone.
async fn forward_door(gate: usize, mut door: Input, to: mpsc::Sender<(usize, Edge)>) {
    while let Some(edge) = door.next().await {
        if to.send((gate, edge)).await.is_err() {
            return;
        }
    }
}

struct GateTask {
    gates: Vec<Gate>,
    /// Checks policy messages, and reports those refused.
    guard: Guard,
    /// Operator ids of `[operators]`: when there are any, an `unlock` must
    /// name one of them.
    operators: HashSet<String>,
    store: Table,
    /// `{root}/{site}/release/`.
    prefix: String,
    drafts: mpsc::Sender<Draft>,
}

impl GateTask {
    async fn run(
        mut self,
        mut attempts: mpsc::Receiver<ToGate>,
        mut policy: mpsc::Receiver<Inbound>,
        mut unlocks: mpsc::Receiver<Request>,
        mut doors: mpsc::Receiver<(usize, Edge)>,
    ) {
        loop {
            let deadline = self.gates.iter().filter_map(Gate::next_deadline).min();
            tokio::select! {
                attempt = attempts.recv() => match attempt {
                    Some(ToGate::Leave(attempt)) => self.on_attempt(attempt).await,
                    Some(ToGate::Refused(alarm)) => self.on_refused(alarm).await,
                    None => break,
                },
                Some(first) = policy.recv() => {
                    let mut batch = vec![first];
                    while batch.len() < POLICY_BATCH {
                        match policy.try_recv() {
                            Ok(message) => batch.push(message),
                            Err(_) => break,
                        }
                    }
                    self.on_policy(batch).await;
                }
                Some(request) = unlocks.recv() => self.on_unlock(request).await,
                Some((gate, edge)) = doors.recv() => self.on_door(gate, edge).await,
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let now = Instant::now();
                    for gate in &mut self.gates {
                        gate.expire(now);
                    }
                }
            }
        }
        // Dropping the gates drives every output inactive: locked, dark, quiet.
        info!("release control stopped; gates locked");
    }

    /// Stores what `batch` changes with one commit, then acknowledges the
    /// whole batch; nothing of it if the commit fails (the broker re-sends).
    async fn on_policy(&mut self, batch: Vec<Inbound>) {
        // Entries accepted in this batch, so an old grant replayed right
        // behind its revocation is judged against the revocation.
        let mut accepted: HashMap<&str, Vec<u8>> = HashMap::new();
        for message in &batch {
            let key = match policy::key_of(&self.prefix, &message.topic) {
                Ok(key) => key,
                Err(why) => {
                    warn!(topic = %message.topic, "release policy message ignored: {why}");
                    continue;
                }
            };
            let Some(verified) = self
                .guard
                .check(&message.topic, &message.payload, Kind::State)
            else {
                continue;
            };
            match self.accept(key, accepted.get(key), verified) {
                Ok(inner) => {
                    accepted.insert(key, inner);
                }
                Err(why) => warn!(topic = %message.topic, "release policy message ignored: {why}"),
            }
        }
        let updates: Vec<(String, Vec<u8>)> = accepted
            .into_iter()
            .map(|(key, inner)| (key.to_owned(), inner))
            .collect();
        if let Some(stall) = test_stall() {
            tokio::time::sleep(stall).await;
        }
        let store = self.store.clone();
        let apply = move || {
            store.apply(
                updates
                    .iter()
                    .map(|(key, inner)| (key.as_str(), Update::Put(inner))),
            )
        };
        let failing = test_failures()
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        let stored = if failing {
            Err(format!("{TEST_FAIL_ENV} failed this commit"))
        } else {
            off_thread(apply).await.map_err(|e| e.to_string())
        };
        match stored {
            Ok(n) => {
                if n > 0 {
                    info!("release policy: {n} entries changed");
                }
                for message in batch {
                    message.ack.done();
                }
            }
            // The dropped acks make the control client reconnect, and the
            // broker re-sends the batch.
            Err(e) => error!(
                "release policy update NOT stored, gates decide on the old one until the \
                 broker re-sends it: {e}"
            ),
        }
    }

    /// What to store for `key` from a verified message (`pending`: what
    /// this batch already accepted for it), or why it is ignored. An empty
    /// payload (taken only while unsigned messages are allowed) is stored
    /// as an empty value: revoked (see [`policy`]).
    fn accept(
        &self,
        key: &str,
        pending: Option<&Vec<u8>>,
        verified: Verified,
    ) -> Result<Vec<u8>, String> {
        let held = match pending {
            Some(inner) => Some(inner.clone()),
            None => self.store.get(key).map_err(|e| e.to_string())?,
        };
        if let Err(refusal) = check_newer(held.as_deref().and_then(trust::issued_at), &verified) {
            self.guard
                .alarms
                .report(&format!("{}{key}", self.prefix), refusal.clone());
            return Err(refusal.to_string());
        }
        if verified.inner.is_empty() {
            debug!(key, "release policy revocation");
        } else {
            let entry = policy::parse(&verified.inner)?;
            debug!(key, released = entry.released, "release policy entry");
        }
        Ok(verified.inner)
    }

    async fn on_attempt(&mut self, attempt: LeaveAttempt) {
        let LeaveAttempt { via, mut event } = attempt;
        let gate = self.gates.iter_mut().find(|g| g.location == event.location);
        let (Some(gate), Body::Custody(custody)) = (gate, &event.body) else {
            debug!(location = %event.location, "leave attempt where no gate is: passed on");
            self.emit(event).await;
            return;
        };
        let asset = custody.asset.clone();
        let key = asset_key(&asset.id);
        let topic = format!("{}{key}", self.prefix);
        let now = SystemTime::now();
        let (store, lookup) = (self.store.clone(), key.clone());
        let stored = off_thread(move || store.get(&lookup))
            .await
            .unwrap_or_else(|e| {
                error!("release policy unreadable, deciding as revoked: {e}");
                Some(Vec::new())
            });
        let standing = policy::standing(stored.as_deref(), now);
        let location = gate.location.clone();
        let refused = |why: String| format!("{} was refused at {location}: {why}.", asset.id);
        let expiry_unjudged = |entry: &policy::Entry| {
            entry.expires_at.is_some()
                && gate.config.unsynced_expiry == UnsyncedExpiry::Deny
                && !crate::clock::is_synced()
        };
        let (grant, alarm) = match standing {
            Standing::Released(entry) if expiry_unjudged(&entry) => {
                let expires = entry.expires_at.map(rfc3339).unwrap_or_default();
                let why = format!(
                    "its release {topic} expires at {expires} and the clock is not synchronised, \
                     so the expiry cannot be judged (gate.unsynced_expiry = \"deny\")"
                );
                (None, Some(("release_denied", refused(why))))
            }
            Standing::Released(entry) => (Some((Basis::Policy, Some(entry))), None),
            Standing::Unknown => {
                let allow = gate.config.unknown == UnknownAsset::Allow;
                let outcome = if allow {
                    "allowed here: the gate was unlocked"
                } else {
                    "denied here: the gate stayed locked"
                };
                let detail = format!(
                    "{} has no release policy entry ({topic}); assets without one are {outcome}.",
                    asset.id
                );
                let grant = allow.then_some((Basis::UnknownAllowed, None));
                (grant, Some(("release_unknown_asset", detail)))
            }
            Standing::NotReleased(entry) => {
                let why = format!("{topic} says released: false{}", reason(&entry));
                (None, Some(("release_denied", refused(why))))
            }
            Standing::Expired(entry) => {
                let expired = entry.expires_at.map(rfc3339).unwrap_or_default();
                let why = format!("its release {topic} expired at {expired}{}", reason(&entry));
                (None, Some(("release_denied", refused(why))))
            }
            Standing::Revoked => {
                let why = format!("its release {topic} was revoked (empty retained message)");
                (None, Some(("release_denied", refused(why))))
            }
        };
        let instant = Instant::now();
        let granted = grant.is_some();
        match grant {
            Some((basis, entry)) => {
                let (reason, expires_at) = entry.map_or((None, None), |e| (e.reason, e.expires_at));
                event.release = Some(Box::new(Release {
                    basis,
                    policy_topic: topic.clone(),
                    asset_key: key,
                    reason,
                    expires_at,
                    decided_at: now,
                    via: via.as_str(),
                }));
            }
            None => {
                warn!(%location, asset = %asset.id, "release denied: gate stays locked");
                gate.signal_denied(instant);
            }
        }
        let observed_at = event.observed_at;
        if !granted {
            self.emit(event).await;
        } else if self.emit_committed(event).await {
            info!(%location, asset = %asset.id, "release granted and recorded: unlocking");
            if let Some(gate) = self.gate_mut(&location) {
                gate.unlock_for(Instant::now(), gate.config.unlock_pulse);
            }
        } else {
            error!(%location, asset = %asset.id, "release granted but NOT recorded (spool full or failing): gate stays locked");
            if let Some(gate) = self.gate_mut(&location) {
                gate.signal_denied(Instant::now());
            }
            let detail = format!(
                "{} was released by {topic} but its custody event could not be committed \
                 (spool full or failing), so the gate at {location} stayed locked.",
                asset.id
            );
            let alarm = Alarm {
                kind: "release_denied",
                asset: Some(asset),
                detail,
            };
            self.record_when_there_is_room(Draft::new(location, observed_at, Body::Alarm(alarm)));
            return;
        }
        if let Some((kind, detail)) = alarm {
            self.alarm(location, observed_at, kind, Some(asset), detail)
                .await;
        }
    }

    /// Sends `draft` to the spool and waits until it is committed; false if
    /// it was not (spool full, storage failing, the spool gone, or no
    /// commit within [`COMMIT_WAIT`]).
    async fn emit_committed(&mut self, mut draft: Draft) -> bool {
        let (receipt, committed) = Receipt::new();
        draft.receipt = Some(receipt);
        self.emit(draft).await;
        matches!(
            tokio::time::timeout(COMMIT_WAIT, committed).await,
            Ok(Ok(()))
        )
    }

    /// Offers `draft` to the spool again every [`RECORD_RETRY`] until it is
    /// committed: the spool drops what it cannot keep, and this alarm says
    /// why a released asset was kept in. Gives up when the spool's input is
    /// closing (the daemon is stopping), so it never holds shutdown up.
    fn record_when_there_is_room(&self, draft: Draft) {
        let drafts = self.drafts.downgrade();
        tokio::spawn(async move {
            loop {
                let Some(spool) = drafts.upgrade() else {
                    return;
                };
                let (receipt, committed) = Receipt::new();
                let mut offer = draft.clone();
                offer.receipt = Some(receipt);
                if spool.send(offer).await.is_err() {
                    return;
                }
                drop(spool);
                if committed.await.is_ok() {
                    return;
                }
                tokio::time::sleep(RECORD_RETRY).await;
            }
        });
    }

    fn gate_mut(&mut self, location: &str) -> Option<&mut Gate> {
        self.gates.iter_mut().find(|g| &*g.location == location)
    }

    async fn on_refused(&mut self, alarm: Draft) {
        if let Some(gate) = self.gates.iter_mut().find(|g| g.location == alarm.location) {
            gate.signal_denied(Instant::now());
        }
        self.emit(alarm).await;
    }

    async fn on_door(&mut self, gate: usize, edge: Edge) {
        let gate = &mut self.gates[gate];
        if !edge.active || !gate.is_locked() {
            debug!(location = %gate.location, open = edge.active, "door");
            return;
        }
        gate.signal_denied(Instant::now());
        let location = gate.location.clone();
        warn!(%location, "door opened while the gate was locked");
        let detail = format!("The door of {location} opened while the gate was locked.");
        self.alarm(location, edge.wall, "gate_forced", None, detail)
            .await;
    }

    async fn on_unlock(&mut self, request: Request) {
        let Request { id, body, reply } = request;
        let unlock = match unlock::parse(&body) {
            Ok(unlock) => unlock,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if !self.operators.is_empty() && !self.operators.contains(&unlock.operator) {
            let _ = reply.send(Err(format!(
                "operator {:?} is not in [operators]",
                unlock.operator
            )));
            return;
        }
        let Some(gate) = self
            .gates
            .iter_mut()
            .find(|g| *g.location == unlock.location)
        else {
            let known: Vec<&str> = self.gates.iter().map(|g| &*g.location).collect();
            let _ = reply.send(Err(format!(
                "no gate at location {:?} (gates: {})",
                unlock.location,
                known.join(", ")
            )));
            return;
        };
        let asked = unlock.duration.unwrap_or(gate.config.unlock_pulse);
        let duration = asked.min(gate.config.override_max);
        let location = gate.location.clone();
        let shown = humantime::format_duration(duration).to_string();
        let detail = format!(
            "Operator {:?} unlocked {location} for {shown} (unlock command {id:?}): {:?}.",
            unlock.operator, unlock.reason
        );
        let alarm = Alarm {
            kind: "gate_override",
            asset: None,
            detail,
        };
        let draft = Draft::new(location.clone(), SystemTime::now(), Body::Alarm(alarm));
        // The audit record first: no override without it.
        if !self.emit_committed(draft).await {
            error!(%location, "override NOT recorded (spool failing): gate stays locked");
            if let Some(gate) = self.gate_mut(&location) {
                gate.signal_denied(Instant::now());
            }
            let _ = reply.send(Err(
                "the override could not be recorded (spool failing): the gate stays locked".into(),
            ));
            return;
        }
        if let Some(gate) = self.gate_mut(&location) {
            gate.unlock_for(Instant::now(), duration);
        }
        let until = SystemTime::now() + duration;
        warn!(%location, operator = %unlock.operator, duration = %shown, "gate unlocked by override");
        let _ = reply.send(Ok(json!({
            "location": &*location,
            "unlocked_for": shown,
            "until": rfc3339(until),
            "capped": Value::Bool(asked > duration),
        })));
    }

    async fn alarm(
        &mut self,
        location: Arc<str>,
        observed_at: SystemTime,
        kind: &'static str,
        asset: Option<crate::identity::Asset>,
        detail: String,
    ) {
        let alarm = Alarm {
            kind,
            asset,
            detail,
        };
        self.emit(Draft::new(location, observed_at, Body::Alarm(alarm)))
            .await;
    }

    async fn emit(&mut self, draft: Draft) {
        if self.drafts.send(draft).await.is_err() {
            error!("release control: the spool is gone; event dropped");
        }
    }
}

/// `" (reason: ...)"` when the entry gives one.
fn reason(entry: &policy::Entry) -> String {
    entry
        .reason
        .as_ref()
        .map_or(String::new(), |r| format!(" (reason: {r:?})"))
}
