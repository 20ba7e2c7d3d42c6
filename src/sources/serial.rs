//! Serial readers (`/dev/ttyUSB*`, `/dev/ttyACM*`, or their stable
//! `/dev/serial/by-id/...` names) through tokio-serial.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::ReaderState;
use crate::config::ReaderConfig;
use crate::decode::{Decoded, DropReason, ReaderCodec};
use crate::identity;
use crate::presence::{Observation, ReaderInfo};

const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Dropped frames are summarised in the log at most this often, so a
/// garbage flood cannot flood the journal too.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(60);
/// Initial read buffer of a reader. tokio-serial zero-fills all of the
/// buffer's spare room on every read (including the one that finds nothing),
/// so FramedRead's default of 8 KiB meant 16 KiB of memset per frame at one
/// frame per read. A serial reader at 9,600 baud delivers under 1 KiB/s; the
/// buffer still grows if more arrives at once.
const READ_BUFFER: usize = 256;

pub struct SerialReader {
    pub config: ReaderConfig,
    pub info: Arc<ReaderInfo>,
    pub reads: mpsc::Sender<Observation>,
    pub states: mpsc::Sender<ReaderState>,
}

/// How one session with the device ended.
enum Ended {
    Cancelled,
    /// Device error or end of stream: it was unplugged or failed.
    Lost(String),
    /// Presence is gone: the daemon is shutting down.
    PipelineClosed,
}

impl SerialReader {
    pub async fn run(self, cancel: CancellationToken) {
        let name = &self.info.name;
        let path = self.config.path.display().to_string();
        let mut backoff = FIRST_RETRY;
        // Log once per state change, not once per retry.
        let mut last_open_error: Option<String> = None;
        loop {
            match tokio_serial::new(&path, self.config.baud).open_native_async() {
                Ok(port) => {
                    info!(reader = %name, device = %path, "reader up");
                    last_open_error = None;
                    backoff = FIRST_RETRY;
                    self.report(true).await;
                    let ended = self.read_frames(port, &cancel).await;
                    self.report(false).await;
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
                        warn!(reader = %name, device = %path, "cannot open reader: {why}; retrying up to every {:?}", self.config.reopen_max);
                        last_open_error = Some(why);
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.reopen_max);
        }
    }

    async fn report(&self, up: bool) {
        let _ = self
            .states
            .send(ReaderState {
                reader: self.info.name.clone(),
                up,
            })
            .await;
    }

    async fn read_frames(
        &self,
        port: tokio_serial::SerialStream,
        cancel: &CancellationToken,
    ) -> Ended {
        let codec = ReaderCodec::for_reader(&self.config);
        let mut frames = FramedRead::with_capacity(port, codec, READ_BUFFER);
        let mut drops = DropReport::default();
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return Ended::Cancelled,
                item = frames.next() => item,
            };
            match item {
                Some(Ok(Decoded::Read(raw))) => {
                    let obs = Observation {
                        reader: self.info.clone(),
                        asset: identity::resolve(&raw),
                        antenna: raw.antenna,
                        rssi_dbm: raw.rssi_dbm,
                        wall: SystemTime::now(),
                    };
                    if self.reads.send(obs).await.is_err() {
                        return Ended::PipelineClosed;
                    }
                }
                Some(Ok(Decoded::Dropped(reason))) => drops.count(&self.info.name, reason),
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                None => return Ended::Lost("device closed".into()),
            }
        }
    }
}

/// Counts dropped frames and logs a summary now and then.
#[derive(Default)]
struct DropReport {
    counts: HashMap<DropReason, u64>,
    last_report: Option<Instant>,
}

impl DropReport {
    fn count(&mut self, reader: &str, reason: DropReason) {
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
