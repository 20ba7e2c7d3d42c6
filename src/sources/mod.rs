//! Sources: the readers at the door.
//!
//! Each reader is a task that owns its device: it opens it, decodes its input
//! (a serial protocol's codec, or a HID scanner's keymap), resolves each read
//! to an asset and hands it to presence. A missing or vanished device is
//! retried with capped exponential backoff; the daemon never stops for one
//! bad reader. State changes (up, down) go to the uplink for the retained
//! status topic. [`run_with_reopen`] is that loop, shared by every kind of
//! reader; a kind supplies how to open its device and how to read it.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::bus::ReaderState;
use crate::decode::{Decoded, DropReason, RawRead};
use crate::identity::Identity;
use crate::metrics::ReaderMetrics;
use crate::presence::{Observation, ReaderInfo};

pub mod hid;
pub mod monitor;
pub mod serial;
pub mod uhf;

/// A reader task's connections to the rest of the pipeline.
pub struct Downstream {
    pub info: Arc<ReaderInfo>,
    pub identity: Arc<Identity>,
    pub reads: mpsc::Sender<Observation>,
    pub states: mpsc::Sender<ReaderState>,
    /// A UHF reader at a door with read windows reads only while this is
    /// `true`; `None`: all the time.
    pub reading: Option<watch::Receiver<bool>>,
    /// Counted for the health topic.
    pub metrics: Arc<ReaderMetrics>,
}

/// How one session with a device ended.
pub enum Ended {
    Cancelled,
    /// Device error or end of stream: it was unplugged or failed.
    Lost(String),
    /// Presence is gone: the daemon is shutting down.
    PipelineClosed,
}

const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Dropped frames are summarised in the log at most this often, so a
/// garbage flood cannot flood the journal too.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(60);

impl Downstream {
    async fn report(&self, up: bool) {
        self.metrics.set_up(up);
        let _ = self
            .states
            .send(ReaderState {
                reader: self.info.name.clone(),
                up,
                failing_antennas: Vec::new(),
            })
            .await;
    }

    /// Hands a decoded item on: a read resolved to its asset to presence, a
    /// drop to `drops`. `Err` when presence is gone.
    pub async fn deliver(&self, item: Decoded, drops: &mut DropReport) -> Result<(), Ended> {
        match item {
            Decoded::Read(raw) => self.deliver_read(&raw).await,
            Decoded::Dropped(reason) => {
                self.dropped(drops, reason);
                Ok(())
            }
        }
    }

    /// Counts a dropped frame, in the log's summary and for the health topic.
    pub(super) fn dropped(&self, drops: &mut DropReport, reason: DropReason) {
        drops.count(&self.info.name, reason);
        self.metrics.dropped(reason);
    }

    /// Resolves a read to its asset and hands it to presence.
    pub(super) async fn deliver_read(&self, raw: &RawRead) -> Result<(), Ended> {
        let asset = self.identity.resolve(raw);
        self.metrics.read();
        if asset.is_err() {
            self.metrics.invalid_scan();
        }
        let obs = Observation {
            reader: self.info.clone(),
            asset,
            antenna: raw.antenna,
            rssi_dbm: raw.rssi_dbm,
            wall: SystemTime::now(),
        };
        self.reads
            .send(obs)
            .await
            .map_err(|_| Ended::PipelineClosed)
    }
}

/// Runs one reader until `cancel` or until presence is gone: `open`s the
/// device at `path`, reports it up, runs a `session` on it until it ends,
/// reports it down, and opens it again, waiting from 250 ms doubling up to
/// `reopen_max` between failed attempts. Each state change is logged once,
/// not each retry. A session owns its device, so a lost device is closed
/// before the next attempt.
pub async fn run_with_reopen<D, E, S>(
    link: &Downstream,
    path: &Path,
    reopen_max: Duration,
    cancel: &CancellationToken,
    mut open: impl FnMut() -> Result<D, E>,
    mut session: impl FnMut(D) -> S,
) where
    E: Display,
    S: Future<Output = Ended>,
{
    let name = &link.info.name;
    let path = path.display();
    let mut backoff = FIRST_RETRY;
    let mut last_open_error: Option<String> = None;
    loop {
        match open() {
            Ok(device) => {
                info!(reader = %name, device = %path, "reader up");
                last_open_error = None;
                backoff = FIRST_RETRY;
                link.report(true).await;
                let ended = session(device).await;
                link.report(false).await;
                match ended {
                    Ended::Cancelled | Ended::PipelineClosed => return,
                    Ended::Lost(why) => {
                        warn!(reader = %name, device = %path, "reader down: {why}; reopening")
                    }
                }
            }
            Err(e) => {
                let why = e.to_string();
                if last_open_error.as_deref() != Some(&why) {
                    warn!(reader = %name, device = %path, "cannot open reader: {why}; retrying up to every {:?}", reopen_max);
                    last_open_error = Some(why);
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(reopen_max);
    }
}

/// Counts dropped frames and logs a summary now and then.
#[derive(Default)]
pub struct DropReport {
    counts: HashMap<DropReason, u64>,
    last_report: Option<Instant>,
}

impl DropReport {
    pub(super) fn count(&mut self, reader: &str, reason: DropReason) {
        debug!(reader, reason = reason.as_str(), "frame dropped");
        *self.counts.entry(reason).or_default() += 1;
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < DROP_REPORT_EVERY)
        {
            return;
        }
        self.last_report = Some(now);
        let mut summary: Vec<String> = self
            .counts
            .iter()
            .map(|(r, n)| format!("{} {n}", r.as_str()))
            .collect();
        summary.sort();
        warn!(
            reader,
            "dropped bad frames since start: {}",
            summary.join(", ")
        );
    }
}
