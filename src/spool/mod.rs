//! The durable spool: every event is committed here before it is published,
//! and leaves only after the broker has acknowledged it.
//!
//! One task owns the [`Store`]. Producers hand it [`Draft`]s over a bounded
//! channel; it batches them (group commit: one fsync for many events, so an SD
//! card is not hit once per tag), assigns `seq` at commit, renders the final
//! JSON and announces the new high-water mark on a `watch` channel. The
//! uplink reads committed records and reports acknowledged ones over a second
//! channel. When every producer is gone the spool says so (`closed`), which is
//! how the uplink knows that shutdown has reached it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tracing::{debug, error, info, warn};

use crate::config::SpoolConfig;
use crate::custody::Draft;
use crate::topic::Naming;

mod record;
mod store;

pub use record::{RecordV1, StoredRecord};
pub use store::{Stats, Store, StoreError};

/// How far the spool has got, as seen by the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Every `seq` below this is committed.
    pub next_seq: u64,
    /// No producer is left: nothing more will be committed.
    pub closed: bool,
}

/// A committed event ready to publish.
#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

enum Control {
    Read {
        from: u64,
        max: usize,
        reply: oneshot::Sender<Vec<Record>>,
    },
    Ack {
        below: u64,
    },
}

/// The uplink's side of the spool.
pub struct SpoolReader {
    control: mpsc::Sender<Control>,
    pub committed: watch::Receiver<Committed>,
}

impl SpoolReader {
    /// Up to `max` committed records from `from` on. Empty if the spool task
    /// is gone or the read failed (it logs why; the uplink simply retries).
    pub async fn read(&self, from: u64, max: usize) -> Vec<Record> {
        let (reply, rx) = oneshot::channel();
        if self
            .control
            .send(Control::Read { from, max, reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Every `seq` below `below` was acknowledged by the broker.
    pub async fn ack(&self, below: u64) {
        let _ = self.control.send(Control::Ack { below }).await;
    }
}

/// Starts the spool task. Returns the producers' sender, the uplink's reader
/// and the task, which ends once both have been dropped.
pub fn spawn(
    store: Store,
    naming: Naming,
    config: SpoolConfig,
) -> Result<(mpsc::Sender<Draft>, SpoolReader, JoinHandle<()>), StoreError> {
    let next_seq = store.next_seq()?;
    let (append_tx, appends) = mpsc::channel(config.flush_max_events.max(64));
    let (control_tx, control) = mpsc::channel(64);
    let (committed_tx, committed) = watch::channel(Committed {
        next_seq,
        closed: false,
    });
    info!(path = %store.path().display(), next_seq, "spool open");
    let task = SpoolTask {
        store: Arc::new(store),
        naming,
        config,
        next_seq,
        deleted_below: 0,
        committed: committed_tx,
    };
    let handle = tokio::spawn(task.run(appends, control));
    Ok((
        append_tx,
        SpoolReader {
            control: control_tx,
            committed,
        },
        handle,
    ))
}

struct SpoolTask {
    store: Arc<Store>,
    naming: Naming,
    config: SpoolConfig,
    next_seq: u64,
    deleted_below: u64,
    committed: watch::Sender<Committed>,
}

impl SpoolTask {
    async fn run(
        mut self,
        mut appends: mpsc::Receiver<Draft>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let mut appends_open = true;
        loop {
            tokio::select! {
                // Acks and reads first: they free space and keep the uplink moving.
                biased;
                cmd = control.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                first = appends.recv(), if appends_open => match first {
                    Some(first) => {
                        let batch = self.collect_batch(first, &mut appends).await;
                        self.commit(batch).await;
                    }
                    None => {
                        appends_open = false;
                        self.committed.send_modify(|c| c.closed = true);
                    }
                },
            }
        }
        let store = self.store.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || store.sync())
            .await
            .expect("spool sync panicked")
        {
            warn!("final spool sync failed, acknowledged events may be re-sent: {e}");
        }
    }

    /// Group commit: waits up to `flush_interval` after the first event for
    /// more, up to `flush_max_events`.
    async fn collect_batch(&self, first: Draft, appends: &mut mpsc::Receiver<Draft>) -> Vec<Draft> {
        let max = self.config.flush_max_events;
        let mut batch = vec![first];
        let deadline = Instant::now() + self.config.flush_interval;
        while batch.len() < max {
            match appends.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => match timeout_at(deadline, appends.recv()).await {
                    Ok(Some(d)) => batch.push(d),
                    _ => break,
                },
            }
        }
        batch
    }

    async fn commit(&mut self, batch: Vec<Draft>) {
        let first_seq = self.next_seq;
        let committed_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let records: Arc<Vec<StoredRecord>> = Arc::new(
            (first_seq..)
                .zip(&batch)
                .map(|(seq, draft)| {
                    StoredRecord::V1(RecordV1 {
                        topic: draft.topic(&self.naming),
                        payload: draft.render(&self.naming, seq),
                        committed_at_ms,
                    })
                })
                .collect(),
        );
        // Never drop a batch: retry until the store takes it. Meanwhile
        // producers wait on the full channel, which is the back-pressure we want.
        let mut backoff = Duration::from_millis(100);
        loop {
            let (store, recs) = (self.store.clone(), records.clone());
            match tokio::task::spawn_blocking(move || store.append(first_seq, &recs)).await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => error!(
                    "spool commit of {} events failed, retrying in {backoff:?}: {e}",
                    batch.len()
                ),
                Err(e) => error!("spool commit panicked, retrying: {e}"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        self.next_seq = first_seq + batch.len() as u64;
        let next_seq = self.next_seq;
        debug!("spool committed seq {first_seq}..={}", next_seq - 1);
        self.committed.send_modify(|c| c.next_seq = next_seq);
    }

    async fn handle(&mut self, cmd: Control) {
        match cmd {
            Control::Read { from, max, reply } => {
                let store = self.store.clone();
                let read = tokio::task::spawn_blocking(move || store.read_from(from, max)).await;
                let records = match read {
                    Ok(Ok(records)) => records,
                    Ok(Err(e)) => {
                        error!("spool read failed: {e}");
                        Vec::new()
                    }
                    Err(e) => {
                        error!("spool read panicked: {e}");
                        Vec::new()
                    }
                };
                let records = records
                    .into_iter()
                    .map(|(seq, StoredRecord::V1(r))| Record {
                        seq,
                        topic: r.topic,
                        payload: r.payload,
                    })
                    .collect();
                let _ = reply.send(records);
            }
            Control::Ack { below } if below > self.deleted_below => {
                let store = self.store.clone();
                match tokio::task::spawn_blocking(move || store.delete_below(below)).await {
                    Ok(Ok(())) => self.deleted_below = below,
                    Ok(Err(e)) => {
                        warn!("could not delete delivered events (they will be re-sent): {e}")
                    }
                    Err(e) => warn!("spool delete panicked: {e}"),
                }
            }
            Control::Ack { .. } => {}
        }
    }
}
