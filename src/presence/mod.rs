//! Dedup and presence: many raw reads into few custody transitions.
//!
//! A UHF reader reports one tag hundreds of times a second and a 125 kHz
//! reader repeats a held card ten times a second; a scanner double-fires.
//! This stage turns that into `arrived` / `departed` per (location, asset)
//! and `scanned` per deliberate scan. One task owns the state ([`Engine`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::command::Request;
use crate::config::{Config, ReadMode, ReaderConfig};
use crate::custody::Draft;
use crate::identity::{Asset, Rejected};
use crate::watchdog::Stage;

mod engine;
mod evidence;
mod saved;

pub use engine::Engine;
pub use evidence::{Evidence, SideSeen, Sides};
pub use saved::Clocks;

/// What presence needs to know about the reader behind a read; built once per
/// reader and shared, so a read carries a pointer rather than copies.
#[derive(Debug)]
pub struct ReaderInfo {
    pub name: Arc<str>,
    pub location: Arc<str>,
    pub mode: ReadMode,
    pub rescan_window: Duration,
    pub departure_timeout: Duration,
    /// At a portal: which side each read is evidence for.
    pub sides: Sides,
}

impl ReaderInfo {
    /// `config` is validated, so the reader's location exists.
    pub fn new(config: &Config, reader: &ReaderConfig) -> Arc<ReaderInfo> {
        let location = config.locations.iter().find(|l| l.name == reader.location);
        Arc::new(ReaderInfo {
            name: reader.name.as_str().into(),
            location: reader.location.as_str().into(),
            mode: reader.mode(),
            rescan_window: reader.rescan_window,
            departure_timeout: location.map_or(Duration::from_secs(5), |l| l.departure_timeout),
            sides: Sides::new(config, reader),
        })
    }
}

/// One read of one asset, with where and when it happened.
#[derive(Debug)]
pub struct Observation {
    pub reader: Arc<ReaderInfo>,
    /// What was read, or why it names no asset (it then becomes an alarm).
    pub asset: Result<Asset, Rejected>,
    pub antenna: Option<u8>,
    pub rssi_dbm: Option<f32>,
    pub wall: SystemTime,
}

/// What presence keeps across a reload, which restarts the task: the
/// assets in the field stay present (no second `arrived`, and their
/// `departed` carries every read), and `inventory` commands queued meanwhile
/// are answered by the next task.
pub struct State {
    pub engine: Engine,
    pub inventory: mpsc::Receiver<Request>,
    /// The configured locations, listed by `inventory` even when empty.
    pub locations: Vec<Arc<str>>,
    /// Tells the systemd watchdog whether the loop still comes back for
    /// reads. Registered once and carried, because a stage dropped by one
    /// task ends for good: a stage per task would stop the watchdog at the
    /// first reload.
    pub stage: Stage,
}

impl State {
    pub fn new(inventory: mpsc::Receiver<Request>, stage: Stage) -> Self {
        State {
            engine: Engine::new(),
            inventory,
            locations: Vec::new(),
            stage,
        }
    }
}

/// What presence decided, on its way to the rules: the event, and for a
/// portal's `departed` what each side saw. The rules turn the evidence into
/// a direction; it never reaches the wire, so it is not part of the event.
#[derive(Debug)]
pub struct Sighting {
    pub draft: Draft,
    pub evidence: Option<Box<Evidence>>,
}

impl From<Draft> for Sighting {
    fn from(draft: Draft) -> Self {
        Sighting {
            draft,
            evidence: None,
        }
    }
}

/// Runs until every sender of `reads` is gone, then hands its state back.
/// Assets still present then get no `departed`: they did not leave, the
/// daemon stopped or reloaded.
pub async fn run(
    mut state: State,
    mut reads: mpsc::Receiver<Observation>,
    decided: mpsc::Sender<Sighting>,
) -> State {
    let engine = &mut state.engine;
    let mut out = Vec::new();
    loop {
        let deadline = engine.next_deadline();
        tokio::select! {
            read = state.stage.idle(reads.recv()) => match read {
                Some(obs) => out.extend(engine.observe(obs, Instant::now()).map(Sighting::from)),
                None => break,
            },
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                engine.expire(Instant::now(), SystemTime::now(), &mut out);
            }
            Some(request) = state.inventory.recv() => {
                let only = request.body.get("location").and_then(|l| l.as_str());
                let _ = request.reply.send(engine.inventory(&state.locations, only));
            }
        }
        for sighting in out.drain(..) {
            if decided.send(sighting).await.is_err() {
                return state;
            }
        }
    }
    state
}

#[cfg(test)]
mod tests;
