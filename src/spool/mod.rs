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
//!
//! The spool is bounded by `spool.max_bytes`. What it cannot keep (spool
//! full, disk full, a failing card) is never silently discarded: it is
//! counted, logged, shown in the status and reported in a `spool_overflow`
//! alarm as soon as something can be stored again. A `spool_high_water`
//! alarm warns at 80 %.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tracing::{debug, error, info, warn};

use crate::config::SpoolConfig;
use crate::custody::{rfc3339, Alarm, Body, Draft, Receipt};
use crate::ops::systemd::Stage;
use crate::topic::Naming;

mod record;
pub mod recovery;
mod store;

pub use record::{RecordV1, StoredRecord};
pub use recovery::Opened;
pub use store::{Stats, Store, StoreError};

/// A `spool_high_water` alarm is raised when the spool passes this share of
/// `max_bytes`, and re-armed once it is back under [`HIGH_WATER_REARM`].
const HIGH_WATER: f64 = 0.8;
const HIGH_WATER_REARM: f64 = 0.6;

/// Records of the latest commits kept for the uplink's next read, at most
/// (see [`SpoolTask::recent`]); about 140 KiB of custody events.
const RECENT_MAX: usize = 256;

/// How far the spool has got, as seen by the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Every `seq` below this is committed.
    pub next_seq: u64,
    /// No producer is left: nothing more will be committed.
    pub closed: bool,
    /// Events that could not be spooled since start (full spool or disk).
    pub dropped: u64,
    /// Spooled bytes, as `spool.max_bytes` counts them.
    pub bytes: u64,
    /// When the oldest undelivered event was committed (ms since the Unix
    /// epoch); `None` while the spool is empty.
    pub oldest_committed_at_ms: Option<u64>,
}

/// A committed event ready to publish.
#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Record {
    fn new(seq: u64, stored: StoredRecord) -> Self {
        let StoredRecord::V1(r) = stored;
        Record {
            seq,
            topic: r.topic,
            payload: r.payload,
        }
    }
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

    /// Every `seq` below `below` was acknowledged by the broker. Each call
    /// is one delete transaction, so callers batch: the uplink reports
    /// its acknowledgements every 250 ms, not one per PUBACK. The deletion
    /// is not fsynced (see [`Store::delete_below`]).
    pub async fn ack(&self, below: u64) {
        let _ = self.control.send(Control::Ack { below }).await;
    }
}

/// Starts the spool task on a spool opened by [`recovery::open`]. Returns the
/// producers' sender, the uplink's reader and the task, which ends once both
/// have been dropped. `stage` tells the systemd watchdog whether the task
/// still comes back for commands.
pub fn spawn(
    opened: Opened,
    data_dir: PathBuf,
    naming: Naming,
    config: SpoolConfig,
    stage: Stage,
) -> Result<(mpsc::Sender<Draft>, SpoolReader, JoinHandle<()>), StoreError> {
    let Opened {
        store,
        next_seq,
        reserved,
        replaced,
    } = opened;
    let bytes = store.bytes()?;
    let oldest_committed_at_ms = oldest_committed_at(&store, 0)?;
    let (append_tx, appends) = mpsc::channel(config.flush_max_events.max(64));
    let (control_tx, control) = mpsc::channel(64);
    let (committed_tx, committed) = watch::channel(Committed {
        next_seq,
        closed: false,
        dropped: 0,
        bytes,
        oldest_committed_at_ms,
    });
    info!(path = %store.path().display(), next_seq, bytes, "spool open");
    let mut task = SpoolTask {
        path: store.path().to_owned(),
        store: Some(Arc::new(store)),
        data_dir,
        naming,
        config,
        next_seq,
        reserved,
        bytes,
        deleted_below: 0,
        recent: VecDeque::new(),
        pending_alarms: Vec::new(),
        overflow: Overflow::default(),
        high_water: false,
        committed: committed_tx,
        receipts: Vec::new(),
    };
    if let Some(detail) = replaced {
        let alarm = task.gateway_alarm("spool_corrupt", detail);
        task.pending_alarms.push(alarm);
    }
    task.high_water = task.bytes as f64 >= task.config.max_bytes.0 as f64 * HIGH_WATER;
    let handle = tokio::spawn(task.run(appends, control, stage));
    Ok((
        append_tx,
        SpoolReader {
            control: control_tx,
            committed,
        },
        handle,
    ))
}

/// Events that could not be spooled and are not yet reported in an alarm.
#[derive(Default)]
struct Overflow {
    unreported: u64,
    since: Option<SystemTime>,
    cause: Option<Cause>,
    total: u64,
}

/// Why events could not be spooled.
#[derive(Debug, Clone)]
enum Cause {
    Full,
    Storage(String),
}

impl Cause {
    fn is_storage(cause: &Option<Cause>) -> bool {
        matches!(cause, Some(Cause::Storage(_)))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Full => f.write_str("spool.max_bytes reached"),
            Cause::Storage(e) => write!(f, "storage error: {e}"),
        }
    }
}

struct SpoolTask {
    /// `None` after a write error: redb poisons a handle that saw one, and
    /// the handle must be dropped (releasing the file lock) before the file
    /// can be opened again, which the next storage call does.
    store: Option<Arc<Store>>,
    path: PathBuf,
    data_dir: PathBuf,
    naming: Naming,
    config: SpoolConfig,
    next_seq: u64,
    /// Every `seq` ever committed is below this (see [`recovery`]).
    reserved: u64,
    /// Spooled bytes, as `max_bytes` counts them.
    bytes: u64,
    deleted_below: u64,
    /// The records of the latest commits that the uplink has not read yet,
    /// contiguous up to `next_seq - 1`. While the uplink keeps up it reads
    /// each group commit right after it, and serving that read from here
    /// saves a trip through the blocking pool and a read transaction per
    /// commit. A read is taken from here only when this holds everything
    /// from its `from` on, so it returns what the store would; what is
    /// handed out is removed (a re-read after a reconnect goes to the store).
    recent: VecDeque<Record>,
    /// Alarms waiting for the next commit.
    pending_alarms: Vec<Draft>,
    overflow: Overflow,
    high_water: bool,
    committed: watch::Sender<Committed>,
    /// Receipts of the drafts admitted to the commit under way, fired once
    /// it is durable (dropped unfired if it fails).
    receipts: Vec<Receipt>,
}

impl SpoolTask {
    async fn run(
        mut self,
        mut appends: mpsc::Receiver<Draft>,
        mut control: mpsc::Receiver<Control>,
        stage: Stage,
    ) {
        if !self.pending_alarms.is_empty() {
            self.commit(Vec::new()).await;
        }
        let mut appends_open = true;
        loop {
            tokio::select! {
                // Acks and reads first: they free space and keep the uplink moving.
                biased;
                cmd = stage.idle(control.recv()) => match cmd {
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
        if let Err(e) = self.blocking(|store| store.sync()).await {
            warn!("final spool sync failed, acknowledged events may be re-sent: {e}");
        }
    }

    /// Runs a storage call off the async threads, reopening the store first
    /// if an earlier error closed it. A failed write closes it.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = match &self.store {
            Some(store) => store.clone(),
            None => {
                let path = self.path.clone();
                let store = Arc::new(run_blocking(move || Store::reopen(&path)).await?);
                self.store = Some(store.clone());
                store
            }
        };
        let result = run_blocking(move || f(&store)).await;
        if result.is_err() {
            self.store = None;
        }
        result
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

    fn gateway_alarm(&self, kind: &'static str, detail: String) -> Draft {
        let location = self.naming.gateway.as_str().into();
        Draft::new(
            location,
            SystemTime::now(),
            Body::Alarm(Alarm {
                kind,
                asset: None,
                detail,
            }),
        )
    }

    fn high_mark(&self) -> u64 {
        (self.config.max_bytes.0 as f64 * HIGH_WATER) as u64
    }

    /// Commits pending alarms and `batch`, as much of it as fits.
    async fn commit(&mut self, batch: Vec<Draft>) {
        let pending = std::mem::take(&mut self.pending_alarms);
        let reporting = self.overflow.unreported;
        let overflow_alarm = (reporting > 0).then(|| self.overflow_alarm());
        let high_water_before = self.high_water;
        let alarms: Vec<&Draft> = pending.iter().chain(&overflow_alarm).collect();
        let (records, fresh, refused) = self.admit(&alarms, &batch);
        if records.is_empty() {
            self.count_dropped(refused, Cause::Full);
            self.pending_alarms = pending;
            return;
        }
        let count = records.len() as u64;
        self.ensure_reserved(self.next_seq + count).await;
        match self.append(records).await {
            Ok(bytes) => {
                if Cause::is_storage(&self.overflow.cause) {
                    info!("spool writable again");
                }
                let first = self.next_seq;
                self.bytes = bytes;
                self.next_seq += count;
                self.overflow.unreported -= reporting;
                if self.overflow.unreported == 0 {
                    self.overflow.cause = None;
                }
                self.count_dropped(refused, Cause::Full);
                self.recent.extend(fresh);
                let surplus = self.recent.len().saturating_sub(RECENT_MAX);
                self.recent.drain(..surplus);
                let next_seq = self.next_seq;
                debug!("spool committed seq {first}..={}", next_seq - 1);
                self.receipts.drain(..).for_each(|r| r.fire());
                self.committed.send_modify(|c| {
                    c.next_seq = next_seq;
                    c.bytes = bytes;
                    c.oldest_committed_at_ms.get_or_insert_with(unix_ms_now);
                });
            }
            Err(e) => {
                if !Cause::is_storage(&self.overflow.cause) {
                    error!("cannot write the spool, new events are dropped and counted until it works again: {e}");
                } else {
                    debug!("spool still not writable: {e}");
                }
                self.high_water = high_water_before;
                self.receipts.clear();
                self.pending_alarms = pending;
                self.count_dropped(batch.len() as u64, Cause::Storage(e.to_string()));
            }
        }
    }

    /// Renders what may be stored: alarms always (they are few and small),
    /// events while they fit under `max_bytes`. Returns the encoded records,
    /// numbered from `next_seq`, the same as the uplink reads them, and how
    /// many events did not fit.
    fn admit(&mut self, alarms: &[&Draft], batch: &[Draft]) -> (Vec<Vec<u8>>, Vec<Record>, u64) {
        let committed_at_ms = unix_ms_now();
        let encode = |draft: &Draft, seq: u64| {
            let stored = StoredRecord::V1(RecordV1 {
                topic: draft.topic(&self.naming),
                payload: draft.render(&self.naming, seq),
                committed_at_ms,
            });
            (stored.encode(), Record::new(seq, stored))
        };
        let (mut records, mut fresh, mut refused, mut size) =
            (Vec::new(), Vec::new(), 0, self.bytes);
        let drafts = alarms
            .iter()
            .map(|d| (*d, true))
            .chain(batch.iter().map(|d| (d, false)));
        for (draft, is_alarm) in drafts {
            let (record, readable) = encode(draft, self.next_seq + records.len() as u64);
            let n = store::record_bytes(&record);
            if !is_alarm && size + n > self.config.max_bytes.0 {
                refused += 1;
                continue;
            }
            size += n;
            records.push(record);
            fresh.push(readable);
            self.receipts.extend(draft.receipt.clone());
            if !self.high_water && size >= self.high_mark() {
                self.high_water = true;
                let detail = format!(
                    "The spool holds {} KiB of undelivered events, over {:.0} % of spool.max_bytes ({}): the broker \
                     has not taken events for a while; when the spool is full new events are dropped.",
                    size >> 10,
                    HIGH_WATER * 100.0,
                    self.config.max_bytes
                );
                let alarm = self.gateway_alarm("spool_high_water", detail);
                warn!("spool above {:.0} % of spool.max_bytes", HIGH_WATER * 100.0);
                let (record, readable) = encode(&alarm, self.next_seq + records.len() as u64);
                size += store::record_bytes(&record);
                records.push(record);
                fresh.push(readable);
            }
        }
        (records, fresh, refused)
    }

    fn overflow_alarm(&self) -> Draft {
        let since = self
            .overflow
            .since
            .map_or_else(String::new, |t| format!(" since {}", rfc3339(t)));
        let cause = self
            .overflow
            .cause
            .as_ref()
            .map_or_else(String::new, |c| format!(" ({c})"));
        let detail = format!(
            "{} events could not be spooled{since}{cause} and were dropped; {} since start.",
            self.overflow.unreported, self.overflow.total
        );
        self.gateway_alarm("spool_overflow", detail)
    }

    fn count_dropped(&mut self, n: u64, cause: Cause) {
        if n == 0 {
            return;
        }
        if self.overflow.unreported == 0 {
            self.overflow.since = Some(SystemTime::now());
            if let Cause::Full = cause {
                error!("spool full ({cause}): new events are dropped and counted until the broker takes some");
            }
        }
        self.overflow.unreported += n;
        self.overflow.total += n;
        debug!(
            "spool dropped {n} events ({cause}); {} since start",
            self.overflow.total
        );
        self.overflow.cause = Some(cause);
        let total = self.overflow.total;
        self.committed.send_modify(|c| c.dropped = total);
    }

    /// Appends durably; after a failure, tries once more on a reopened store.
    async fn append(&mut self, records: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        let records = Arc::new(records);
        let first = self.next_seq;
        let attempt = records.clone();
        match self.blocking(move |s| s.append(first, &attempt)).await {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                debug!("spool append failed, retrying on a reopened spool: {e}");
                self.blocking(move |s| s.append(first, &records)).await
            }
        }
    }

    async fn ensure_reserved(&mut self, upto: u64) {
        if upto <= self.reserved {
            return;
        }
        let (dir, reserve) = (self.data_dir.clone(), upto + recovery::RESERVE_BLOCK);
        match tokio::task::spawn_blocking(move || recovery::reserve(&dir, reserve)).await {
            Ok(Ok(())) => self.reserved = reserve,
            Ok(Err(e)) => warn!(
                "cannot reserve seq numbers in {}: {e}",
                self.data_dir.display()
            ),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// What `read_from(from, max)` would return, from [`SpoolTask::recent`]
    /// if it holds everything from `from` on; `None` sends the read to the
    /// store.
    fn take_recent(&mut self, from: u64, max: usize) -> Option<Vec<Record>> {
        if self.recent.front()?.seq > from {
            return None;
        }
        let read = self.recent.partition_point(|r| r.seq < from);
        self.recent.drain(..read);
        let n = max.min(self.recent.len());
        Some(self.recent.drain(..n).collect())
    }

    async fn handle(&mut self, cmd: Control) {
        match cmd {
            Control::Read { from, max, reply } => {
                let records = match self.take_recent(from, max) {
                    Some(records) => records,
                    None => match self.blocking(move |s| s.read_from(from, max)).await {
                        Ok(records) => records
                            .into_iter()
                            .map(|(seq, stored)| Record::new(seq, stored))
                            .collect(),
                        Err(e) => {
                            error!("spool read failed: {e}");
                            Vec::new()
                        }
                    },
                };
                let _ = reply.send(records);
            }
            Control::Ack { below } if below > self.deleted_below => {
                let deleted = self
                    .blocking(move |s| Ok((s.delete_below(below)?, oldest_committed_at(s, below)?)))
                    .await;
                match deleted {
                    Ok((bytes, oldest)) => {
                        self.deleted_below = below;
                        let gone = self.recent.partition_point(|r| r.seq < below);
                        self.recent.drain(..gone);
                        self.bytes = bytes;
                        self.committed.send_modify(|c| {
                            c.bytes = bytes;
                            c.oldest_committed_at_ms = oldest;
                        });
                        if (bytes as f64) < self.config.max_bytes.0 as f64 * HIGH_WATER_REARM {
                            self.high_water = false;
                        }
                        // Room again: say what was lost without waiting for the next event.
                        if self.overflow.unreported > 0 {
                            self.commit(Vec::new()).await;
                        }
                    }
                    Err(e) => {
                        warn!("could not delete delivered events (they will be re-sent): {e}")
                    }
                }
            }
            Control::Ack { .. } => {}
        }
    }
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Commit time of the oldest record from `from` on: what the health topic
/// reports as the age of the oldest undelivered event.
fn oldest_committed_at(store: &Store, from: u64) -> Result<Option<u64>, StoreError> {
    let first = store.read_from(from, 1)?;
    Ok(first.first().map(|(_, r)| r.v1().committed_at_ms))
}

/// Runs blocking storage work off the async threads; a panic there is a
/// bug and propagates.
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Opens the spool of a stopped daemon for a technician (`custodyd spool`).
/// Never creates one: inspecting the wrong `data_dir` must say so.
pub fn open_for_inspection(data_dir: &std::path::Path) -> Result<Store, StoreError> {
    let path = data_dir.join(recovery::SPOOL_FILE);
    if !path.exists() {
        let missing = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no spool here (wrong gateway.data_dir?)",
        );
        return Err(StoreError::Db {
            path,
            source: redb::Error::Io(missing),
        });
    }
    match Store::reopen(&path) {
        Err(StoreError::Db {
            path,
            source: redb::Error::DatabaseAlreadyOpen,
        }) => {
            let busy = std::io::Error::other(
                "in use by the running daemon; stop it first (systemctl stop custodyd)",
            );
            Err(StoreError::Db {
                path,
                source: redb::Error::Io(busy),
            })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming() -> Naming {
        Naming {
            root: "custody".into(),
            site: "s".into(),
            gateway: "g".into(),
        }
    }

    fn start(dir: &std::path::Path) -> (mpsc::Sender<Draft>, SpoolReader, JoinHandle<()>) {
        let opened = recovery::open(dir).unwrap();
        let stage = crate::ops::systemd::Health::default().stage("spool");
        spawn(
            opened,
            dir.to_owned(),
            naming(),
            SpoolConfig::default(),
            stage,
        )
        .unwrap()
    }

    fn draft(n: u32) -> Draft {
        let alarm = Alarm {
            kind: "test",
            asset: None,
            detail: format!("event {n}"),
        };
        Draft::new("dock-1".into(), SystemTime::now(), Body::Alarm(alarm))
    }

    /// Commits `n` events and waits until the spool says so.
    async fn commit(drafts: &mpsc::Sender<Draft>, reader: &SpoolReader, n: u32) {
        let upto = reader.committed.borrow().next_seq + u64::from(n);
        for i in 0..n {
            drafts.send(draft(i)).await.unwrap();
        }
        let mut committed = reader.committed.clone();
        committed.wait_for(|c| c.next_seq >= upto).await.unwrap();
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    #[tokio::test]
    async fn an_acknowledgement_deletes_every_event_below_it_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start(dir.path());
        commit(&drafts, &reader, 6).await;
        assert_eq!(seqs(&reader.read(1, 100).await), [1, 2, 3, 4, 5, 6]);
        let full = reader.committed.borrow().bytes;

        reader.ack(5).await;
        let mut committed = reader.committed.clone();
        committed.wait_for(|c| c.bytes < full).await.unwrap();
        // From the start again, as after a reconnect: what the store holds.
        assert_eq!(seqs(&reader.read(0, 100).await), [5, 6]);

        drop((drafts, reader));
        task.await.unwrap();
        let store = Store::open(&dir.path().join(recovery::SPOOL_FILE)).unwrap();
        let left: Vec<u64> = store
            .read_from(0, 100)
            .unwrap()
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(left, [5, 6], "the deletion outlives a shutdown");
    }

    #[tokio::test]
    async fn reads_of_fresh_commits_return_what_the_store_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start(dir.path());
        commit(&drafts, &reader, 5).await;
        // Served from memory: the uplink reads on from its cursor.
        let fresh = reader.read(2, 2).await;
        assert_eq!(seqs(&fresh), [2, 3]);
        assert_eq!(seqs(&reader.read(4, 100).await), [4, 5]);
        commit(&drafts, &reader, 2).await;
        assert_eq!(seqs(&reader.read(6, 100).await), [6, 7]);
        commit(&drafts, &reader, 2).await;
        // A re-read (after a reconnect) comes from the store, byte for byte the same.
        let stored = reader.read(1, 100).await;
        assert_eq!(seqs(&stored), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        for (a, b) in fresh.iter().zip(&stored[1..]) {
            assert_eq!((&a.topic, &a.payload), (&b.topic, &b.payload));
        }
        drop((drafts, reader));
        task.await.unwrap();
    }
}
