//! The durable spool: every event is committed here before it is published,
//! and leaves only after the broker has acknowledged it.
//!
//! One task owns the [`Store`]. Producers hand it [`Draft`]s over a bounded
//! channel; it batches them (group commit: one fsync for many events, so an SD
//! card is not hit once per tag), assigns `seq` at commit, renders the final
//! JSON with its `prev` link (the custody log's hash chain, see
//! [`crate::audit`]) and announces the new high-water mark on a `watch`
//! channel. The uplink reads committed records and reports acknowledged ones over a second
//! channel. When every producer is gone the spool says so (`closed`), which is
//! how the uplink knows that shutdown has reached it.
//!
//! The spool is bounded by `spool.max_bytes`, its own alarms and its dead
//! letters included:
//! events may fill it up to [`ALARM_ROOM`] below the bound, and that room is
//! kept for the alarms that say what happened. What it cannot keep (spool
//! full, disk full, a failing card) is never silently discarded: it is
//! counted, logged once, shown in the status and reported in one
//! `spool_overflow` alarm per episode, written when the episode ends (the
//! spool is back under [`HIGH_WATER_REARM`], or the daemon stops) with the
//! count of the whole episode. A `spool_high_water` alarm warns at 80 %.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tracing::{debug, error, info, warn};

use crate::audit::{chain, Digest};
use crate::config::SpoolConfig;
use crate::custody::{rfc3339, Alarm, Body, Draft, Receipt, Save};
use crate::panics::off_thread;
use crate::topic::Naming;
use crate::watchdog::Stage;

mod record;
pub mod recovery;
mod store;

pub use record::{trailer, RecordV1, StoredRecord};
pub use recovery::{Lost, Opened};
pub use store::{Reopener, Stats, Store, StoreError};

/// A `spool_high_water` alarm is raised when the spool passes this share of
/// `max_bytes`, and re-armed once it is back under [`HIGH_WATER_REARM`].
const HIGH_WATER: f64 = 0.8;
const HIGH_WATER_REARM: f64 = 0.6;

/// Room under `spool.max_bytes` that events may not take: the spool's own
/// alarms (lost spool, high water, overflow; well under 1 KiB each) must fit
/// when events have filled the rest.
const ALARM_ROOM: u64 = 8 << 10;
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
    /// The hash of event `next_seq - 1`: what a checkpoint signs. `None`
    /// until this spool's chain has an event.
    pub head: Option<Digest>,
}

impl Committed {
    /// The last committed event's `seq` and hash, if there is one.
    pub fn last(&self) -> Option<(u64, Digest)> {
        self.head.map(|h| (self.next_seq - 1, h))
    }
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
    /// Move `seq` to the dead letters and raise `event_too_large`.
    SetAside {
        seq: u64,
        detail: String,
        reply: oneshot::Sender<bool>,
    },
    /// Commit an alarm about the uplink (`publish_refused`).
    Alarm {
        kind: &'static str,
        detail: String,
    },
}

/// The uplink's side of the spool.
pub struct SpoolReader {
    control: mpsc::Sender<Control>,
    pub committed: watch::Receiver<Committed>,
    /// The oldest undelivered `seq` at start: everything below it was
    /// delivered in an earlier run. Read when the spool task starts, which
    /// fails rather than guess, so a failed read cannot pass for delivery.
    pub start_seq: u64,
}

impl SpoolReader {
    /// Up to `max` committed records from `from` on, all of them: never
    /// some with the unreadable ones left out. Empty if the spool task is
    /// gone or the read failed (the spool task then raises `spool_corrupt`
    /// and the process restarts; the uplink simply retries meanwhile).
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

    /// Moves event `seq`, which can never be sent, to the dead letters and
    /// raises an `event_too_large` alarm saying `detail`. Returns whether it
    /// is out of the way (false: the spool could not move it; try again).
    /// Sent before the acknowledgement that passes `seq`, on the same
    /// channel, so the event is moved before it could be deleted.
    pub async fn set_aside(&self, seq: u64, detail: String) -> bool {
        let (reply, rx) = oneshot::channel();
        let set_aside = Control::SetAside { seq, detail, reply };
        if self.control.send(set_aside).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Raises a gateway alarm about the delivery of events.
    pub async fn alarm(&self, kind: &'static str, detail: String) {
        let _ = self.control.send(Control::Alarm { kind, detail }).await;
    }
}

/// Opens `data_dir`'s spool ([`recovery::open`]) on the blocking pool.
pub async fn open(data_dir: PathBuf) -> Result<Opened, StoreError> {
    off_thread(move || recovery::open(&data_dir)).await
}

/// Starts the spool task on a spool opened by [`open`]. Returns the
/// producers' sender, the uplink's reader and the task, which ends once both
/// have been dropped. `stage` tells the systemd watchdog whether the task
/// still comes back for commands.
pub async fn spawn(
    opened: Opened,
    data_dir: PathBuf,
    naming: Naming,
    config: SpoolConfig,
    stage: Stage,
) -> Result<(mpsc::Sender<Draft>, SpoolReader, JoinHandle<()>), StoreError> {
    let Opened {
        store,
        stream,
        next_seq,
        reserved,
        replaced,
    } = opened;
    let store = Arc::new(store);
    let reading = store.clone();
    let (bytes, head, oldest) =
        off_thread(move || Ok((reading.bytes()?, reading.head()?, reading.read_from(0, 1)?)))
            .await?;
    let start_seq = oldest.first().map_or(next_seq, |(seq, _)| *seq);
    let oldest_committed_at_ms = oldest.first().map(|(_, r)| r.v1().committed_at_ms);
    let (append_tx, appends) = mpsc::channel(config.flush_max_events.max(64));
    let (control_tx, control) = mpsc::channel(64);
    let (committed_tx, committed) = watch::channel(Committed {
        next_seq,
        closed: false,
        dropped: 0,
        bytes,
        oldest_committed_at_ms,
        head,
    });
    info!(path = %store.path().display(), %stream, next_seq, bytes, "spool open");
    let mut task = SpoolTask {
        reopener: store.reopener(),
        store: Some(store),
        data_dir,
        naming,
        config,
        stream,
        next_seq,
        reserved,
        head,
        bytes,
        deleted_below: 0,
        recent: VecDeque::new(),
        pending_alarms: Vec::new(),
        overflow: Overflow::default(),
        high_water: false,
        closing: false,
        failing: false,
        damaged: None,
        restarting: false,
        undecodable_below: 0,
        committed: committed_tx,
        receipts: Vec::new(),
    };
    if let Some(Lost { kind, detail }) = replaced {
        let alarm = task.gateway_alarm(kind, detail);
        task.pending_alarms.push(alarm);
    }
    task.high_water = task.bytes as f64 >= task.config.max_bytes.0 as f64 * HIGH_WATER;
    let handle = tokio::spawn(task.run(appends, control, stage));
    Ok((
        append_tx,
        SpoolReader {
            control: control_tx,
            committed,
            start_seq,
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
    reopener: Reopener,
    data_dir: PathBuf,
    naming: Naming,
    config: SpoolConfig,
    /// The stream `seq` numbers in (see [`recovery`]).
    stream: Arc<str>,
    next_seq: u64,
    /// Every `seq` ever committed is below this (see [`recovery`]).
    reserved: u64,
    /// The hash of event `next_seq - 1`, committed with it.
    head: Option<Digest>,
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
    /// No producer is left: an overflow episode still open is reported now.
    closing: bool,
    /// The last write failed (logged once until one succeeds).
    failing: bool,
    /// Why the spool could not be read, or was found corrupt, while
    /// running (see [`SpoolTask::report_damage`]).
    damaged: Option<String>,
    /// The damage is reported: the process is broken and about to restart.
    restarting: bool,
    /// Undecodable records below this have been alarmed.
    undecodable_below: u64,
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
                        self.close().await;
                        self.committed.send_modify(|c| c.closed = true);
                    }
                },
            }
            self.report_damage().await;
        }
        self.close().await;
        if let Err(e) = self.blocking(|store| store.sync()).await {
            warn!("final spool sync failed, acknowledged events may be re-sent: {e}");
        }
    }

    /// Nothing more will be offered: an overflow episode still open is
    /// reported now, as its count lives only in memory.
    async fn close(&mut self) {
        self.closing = true;
        if self.overflow.unreported > 0 {
            self.commit(Vec::new()).await;
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
                let reopener = self.reopener.clone();
                let store = Arc::new(off_thread(move || reopener.reopen()).await?);
                self.store = Some(store.clone());
                store
            }
        };
        let result = off_thread(move || f(&store)).await;
        if let Err(e) = &result {
            self.store = None;
            if let StoreError::Corrupt { .. } = e {
                self.damaged.get_or_insert_with(|| e.to_string());
            }
        }
        result
    }

    /// The spool could not be read (or was found corrupt) while running:
    /// the events from the uplink's cursor on cannot be delivered, and
    /// skipping them would lose them. Only the full check that opening
    /// makes can tell what is left, so the alarm is committed (if the file
    /// still takes it) and the process is marked broken: the watchdog
    /// stops and the daemon exits to be restarted. Nothing was deleted, so
    /// the restarted daemon delivers from the oldest undelivered event, or
    /// moves a file that fails the check aside with its own alarm.
    async fn report_damage(&mut self) {
        let Some(why) = self.damaged.take() else {
            return;
        };
        if std::mem::replace(&mut self.restarting, true) {
            return;
        }
        error!("spool unreadable while running: {why}");
        let detail = format!(
            "The spool could not be read while running ({why}). Nothing was skipped or deleted: \
             custodyd restarts, checks the whole spool as it opens it and delivers on from the \
             oldest undelivered event."
        );
        let alarm = self.gateway_alarm("spool_corrupt", detail);
        self.pending_alarms.push(alarm);
        self.commit(Vec::new()).await;
        crate::panics::broken("the spool could not be read while running");
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

    /// Whether the overflow episode is over: the spool has room again (with
    /// a margin, so that a spool hovering at its bound makes one episode,
    /// not one per dropped batch), or the daemon is stopping.
    fn overflow_ended(&self) -> bool {
        self.overflow.unreported > 0
            && (self.closing
                || (self.bytes as f64) < self.config.max_bytes.0 as f64 * HIGH_WATER_REARM)
    }

    /// Commits pending alarms and `batch`, as much of it as fits, with the
    /// state the batch's drafts carry.
    async fn commit(&mut self, mut batch: Vec<Draft>) {
        let saves: Vec<Save> = batch
            .iter_mut()
            .flat_map(|d| std::mem::take(&mut d.saves))
            .collect();
        let mut pending = std::mem::take(&mut self.pending_alarms);
        let reporting = self.overflow.unreported;
        let ended = self.overflow_ended();
        if ended {
            pending.push(self.overflow_alarm());
        }
        let high_water_before = self.high_water;
        // The saves follow the last record and count with it.
        let saves_bytes = record::trailer_len(&saves);
        let (records, fresh, alarms_in, refused, head) = self.admit(&pending, &batch, saves_bytes);
        // Alarms that did not fit wait for room; the overflow alarm is
        // written afresh from the counts next time.
        let reported = ended && alarms_in == pending.len();
        pending.truncate(pending.len() - usize::from(ended));
        let waiting = pending.split_off(alarms_in.min(pending.len()));
        let Some(head) = head else {
            self.count_dropped(refused, Cause::Full);
            self.pending_alarms = waiting;
            return;
        };
        let count = records.len() as u64;
        self.ensure_reserved(self.next_seq + count).await;
        match self.append(records, saves, head).await {
            Ok(bytes) => {
                if self.failing {
                    info!("spool writable again");
                    self.failing = false;
                }
                let first = self.next_seq;
                self.bytes = bytes;
                self.next_seq += count;
                self.head = Some(head);
                self.pending_alarms = waiting;
                if reported {
                    self.overflow.unreported -= reporting;
                    self.overflow.cause = None;
                }
                self.count_dropped(refused, Cause::Full);
                self.recent.extend(fresh);
                let surplus = self.recent.len().saturating_sub(RECENT_MAX);
                self.recent.drain(..surplus);
                let next_seq = self.next_seq;
                debug!(
                    "spool committed seq {first}..={} ({bytes} bytes)",
                    next_seq - 1
                );
                self.receipts.drain(..).for_each(|r| r.fire());
                self.committed.send_modify(|c| {
                    c.next_seq = next_seq;
                    c.bytes = bytes;
                    c.head = Some(head);
                    c.oldest_committed_at_ms.get_or_insert_with(unix_ms_now);
                });
            }
            Err(e) => {
                if !self.failing {
                    error!("cannot write the spool, new events are dropped and counted until it works again: {e}");
                } else {
                    debug!("spool still not writable: {e}");
                }
                self.failing = true;
                self.high_water = high_water_before;
                pending.extend(waiting);
                self.receipts.clear();
                self.pending_alarms = pending;
                self.count_dropped(batch.len() as u64, Cause::Storage(e.to_string()));
            }
        }
    }

    /// Renders what may be stored: `alarms` in order while they fit under
    /// `max_bytes`, then events while they fit under it less
    /// [`ALARM_ROOM`], each linked to the one before, with room for
    /// `extra` bytes stored with them. Returns the encoded
    /// records, numbered from `next_seq`, the same as the uplink reads them,
    /// how many of `alarms` are in, how many events did not fit, and the hash
    /// of the last record (`None` if there is none).
    fn admit(
        &mut self,
        alarms: &[Draft],
        batch: &[Draft],
        extra: u64,
    ) -> (Vec<Vec<u8>>, Vec<Record>, usize, u64, Option<Digest>) {
        let committed_at_ms = unix_ms_now();
        let encode = |draft: &Draft, seq: u64, prev: Option<Digest>| {
            let prev = prev.as_ref().map(chain::hex);
            let payload = draft.render(&self.naming, &self.stream, seq, prev.as_deref());
            let hash = chain::hash(&payload);
            let stored = StoredRecord::V1(RecordV1 {
                topic: draft.topic(&self.naming),
                payload,
                committed_at_ms,
            });
            (stored.encode(), Record::new(seq, stored), hash)
        };
        let max = self.config.max_bytes.0;
        let mut head = self.head;
        let (mut records, mut fresh, mut alarms_in, mut refused, mut size) =
            (Vec::new(), Vec::new(), 0, 0, self.bytes + extra);
        let mut alarm_refused = false;
        let drafts = alarms
            .iter()
            .map(|d| (d, true))
            .chain(batch.iter().map(|d| (d, false)));
        for (draft, is_alarm) in drafts {
            if is_alarm && alarm_refused {
                continue; // an earlier alarm did not fit: keep their order
            }
            let (record, readable, hash) =
                encode(draft, self.next_seq + records.len() as u64, head);
            let n = store::record_bytes(&record);
            let bound = if is_alarm {
                max
            } else {
                max.saturating_sub(ALARM_ROOM)
            };
            if size + n > bound {
                refused += u64::from(!is_alarm);
                alarm_refused |= is_alarm;
                continue;
            }
            alarms_in += usize::from(is_alarm);
            head = Some(hash);
            size += n;
            records.push(record);
            fresh.push(readable);
            self.receipts.extend(draft.receipt.clone());
            if !self.high_water && size >= self.high_mark() {
                self.high_water = true;
                let detail = format!(
                    "The spool holds {} KiB of undelivered events and dead letters, over {:.0} % of spool.max_bytes \
                     ({}): the broker has not taken events for a while, or dead letters (custodyd spool peek) fill \
                     it; when the spool is full new events are dropped.",
                    size >> 10,
                    HIGH_WATER * 100.0,
                    self.config.max_bytes
                );
                let alarm = self.gateway_alarm("spool_high_water", detail);
                let (record, readable, hash) =
                    encode(&alarm, self.next_seq + records.len() as u64, head);
                let n = store::record_bytes(&record);
                if size + n > max {
                    self.high_water = false; // raised once there is room
                    continue;
                }
                warn!("spool above {:.0} % of spool.max_bytes", HIGH_WATER * 100.0);
                head = Some(hash);
                size += n;
                records.push(record);
                fresh.push(readable);
            }
        }
        let last = head.filter(|_| !records.is_empty());
        (records, fresh, alarms_in, refused, last)
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
    async fn append(
        &mut self,
        records: Vec<Vec<u8>>,
        saves: Vec<Save>,
        head: Digest,
    ) -> Result<u64, StoreError> {
        let (records, saves) = (Arc::new(records), Arc::new(saves));
        let first = self.next_seq;
        let (attempt, attempt_saves) = (records.clone(), saves.clone());
        match self
            .blocking(move |s| s.append_saving(first, &attempt, &attempt_saves, &head))
            .await
        {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                debug!("spool append failed, retrying on a reopened spool: {e}");
                self.blocking(move |s| s.append_saving(first, &records, &saves, &head))
                    .await
            }
        }
    }

    async fn ensure_reserved(&mut self, upto: u64) {
        if upto <= self.reserved {
            return;
        }
        let (dir, reserve) = (self.data_dir.clone(), upto + recovery::RESERVE_BLOCK);
        let stream = self.stream.clone();
        match tokio::task::spawn_blocking(move || recovery::reserve(&dir, reserve, &stream)).await {
            Ok(Ok(())) => self.reserved = reserve,
            Ok(Err(e)) => warn!(
                "cannot reserve seq numbers in {}: {e}",
                self.data_dir.display()
            ),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// A record that does not decode is skipped (the uplink delivers what
    /// follows it), which leaves a gap in `seq`: a `spool_corrupt` alarm
    /// names it, once per record however often it is read.
    async fn report_undecodable(&mut self, mut seqs: Vec<u64>) {
        seqs.retain(|seq| *seq >= self.undecodable_below);
        let Some(&last) = seqs.last() else {
            return;
        };
        self.undecodable_below = last + 1;
        let list: Vec<String> = seqs.iter().map(u64::to_string).collect();
        let detail = format!(
            "Events with seq {} are in the spool but cannot be decoded; they were skipped and are lost.",
            list.join(", ")
        );
        let alarm = self.gateway_alarm("spool_corrupt", detail);
        self.pending_alarms.push(alarm);
        self.commit(Vec::new()).await;
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
                let mut undecodable = Vec::new();
                let records = match self.take_recent(from, max) {
                    Some(records) => records,
                    None => match self.blocking(move |s| s.read_checked(from, max)).await {
                        Ok((records, skipped)) => {
                            undecodable = skipped;
                            records
                                .into_iter()
                                .map(|(seq, stored)| Record::new(seq, stored))
                                .collect()
                        }
                        // The file could not be read: only a restart can tell
                        // what is left of it.
                        Err(e @ (StoreError::Read { .. } | StoreError::Corrupt { .. })) => {
                            self.damaged.get_or_insert_with(|| e.to_string());
                            Vec::new()
                        }
                        // Not opened again (a full disk refuses the commit
                        // that opening makes): retried on the next read.
                        Err(e) => {
                            error!("spool read failed: {e}");
                            Vec::new()
                        }
                    },
                };
                let _ = reply.send(records);
                self.report_undecodable(undecodable).await;
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
                        if self.overflow_ended() || !self.pending_alarms.is_empty() {
                            self.commit(Vec::new()).await;
                        }
                    }
                    Err(e) => {
                        warn!("could not delete delivered events (they will be re-sent): {e}")
                    }
                }
            }
            Control::Ack { .. } => {}
            Control::SetAside { seq, detail, reply } => {
                let moved = match self.blocking(move |s| s.set_aside(seq)).await {
                    Ok(true) => {
                        let alarm = self.gateway_alarm("event_too_large", detail);
                        self.pending_alarms.push(alarm);
                        self.commit(Vec::new()).await;
                        true
                    }
                    Ok(false) => true,
                    Err(e) => {
                        error!("cannot move event {seq} to the dead letters: {e}");
                        false
                    }
                };
                let _ = reply.send(moved);
            }
            Control::Alarm { kind, detail } => {
                let alarm = self.gateway_alarm(kind, detail);
                self.pending_alarms.push(alarm);
                self.commit(Vec::new()).await;
            }
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

    async fn start(dir: &std::path::Path) -> (mpsc::Sender<Draft>, SpoolReader, JoinHandle<()>) {
        start_with(dir, SpoolConfig::default()).await
    }

    async fn start_with(
        dir: &std::path::Path,
        config: SpoolConfig,
    ) -> (mpsc::Sender<Draft>, SpoolReader, JoinHandle<()>) {
        let opened = recovery::open(dir).unwrap();
        let stage = crate::watchdog::Watchdog::default().stage("spool");
        spawn(opened, dir.to_owned(), naming(), config, stage)
            .await
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
        let (drafts, reader, task) = start(dir.path()).await;
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

    /// The smallest spool configuration allows.
    fn bounded() -> SpoolConfig {
        SpoolConfig {
            max_bytes: crate::config::ByteSize(64 << 10),
            ..SpoolConfig::default()
        }
    }

    /// Sends `n` drafts and waits until each is committed or counted dropped.
    async fn offer(drafts: &mpsc::Sender<Draft>, reader: &SpoolReader, n: u32) {
        let c = *reader.committed.borrow();
        let done = c.next_seq + c.dropped + u64::from(n);
        for i in 0..n {
            drafts.send(draft(i)).await.unwrap();
        }
        let mut committed = reader.committed.clone();
        committed
            .wait_for(|c| c.next_seq + c.dropped >= done)
            .await
            .unwrap();
    }

    /// `spool.max_bytes = "64KiB"` let the spool grow to 727 KB of alarms,
    /// and one overflow episode made 58 `spool_overflow` alarms: one per
    /// dropped batch, each admitted whatever the bound.
    #[tokio::test]
    async fn max_bytes_bounds_alarms_too_and_an_episode_is_one_alarm() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start_with(dir.path(), bounded()).await;
        let max = bounded().max_bytes.0;
        let bytes = || reader.committed.borrow().bytes;
        // Full, then hovering at the bound: the broker takes a few events
        // now and then, and each time more arrive than fit.
        let mut peak = 0;
        for _ in 0..40 {
            offer(&drafts, &reader, 30).await;
            peak = peak.max(bytes());
            let oldest = reader.read(0, 5).await;
            reader.ack(oldest.last().unwrap().seq + 1).await;
            let mut committed = reader.committed.clone();
            committed.wait_for(|c| c.bytes < peak).await.unwrap();
        }
        let dropped = reader.committed.borrow().dropped;
        assert!(dropped > 500, "it did overflow: {dropped}");
        assert!(peak <= max, "{peak} bytes spooled, over {max}");
        // Delivered: the episode ends, and says how many it dropped.
        let upto = reader.committed.borrow().next_seq;
        reader.ack(upto).await;
        let mut committed = reader.committed.clone();
        committed.wait_for(|c| c.next_seq > upto).await.unwrap();
        let alarms: Vec<serde_json::Value> = reader
            .read(0, 1000)
            .await
            .iter()
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .filter(|a: &serde_json::Value| a["kind"] == "spool_overflow")
            .collect();
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        let detail = alarms[0]["detail"].as_str().unwrap();
        assert!(detail.starts_with(&format!("{dropped} events")), "{detail}");
        drop((drafts, reader));
        task.await.unwrap();
    }

    fn prev(record: &Record) -> Option<String> {
        let event: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
        event["prev"].as_str().map(str::to_owned)
    }

    /// The head is committed with the events, so the chain runs on across a
    /// restart, even when every event had been delivered and deleted.
    #[tokio::test]
    async fn every_event_links_to_the_one_before_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start(dir.path()).await;
        commit(&drafts, &reader, 3).await;
        let mut events = reader.read(1, 100).await;
        reader.ack(4).await;
        let mut committed = reader.committed.clone();
        committed.wait_for(|c| c.bytes == 0).await.unwrap();
        drop((drafts, reader));
        task.await.unwrap();

        let (drafts, reader, task) = start(dir.path()).await;
        let head = chain::hash(&events[2].payload);
        assert_eq!(reader.committed.borrow().last(), Some((3, head)));
        commit(&drafts, &reader, 2).await;
        events.extend(reader.read(4, 100).await);
        assert_eq!(seqs(&events), [1, 2, 3, 4, 5]);
        assert_eq!(prev(&events[0]), None, "seq 1 starts the chain");
        for pair in events.windows(2) {
            let want = chain::hex(&chain::hash(&pair[0].payload));
            assert_eq!(prev(&pair[1]), Some(want), "seq {}", pair[1].seq);
        }
        let last = chain::hash(&events[4].payload);
        assert_eq!(reader.committed.borrow().last(), Some((5, last)));
        drop((drafts, reader));
        task.await.unwrap();
    }

    /// An episode still open at shutdown is reported then: its count
    /// lives only in memory.
    #[tokio::test]
    async fn an_overflow_still_open_at_shutdown_is_reported_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start_with(dir.path(), bounded()).await;
        let max = bounded().max_bytes.0;
        offer(&drafts, &reader, 300).await;
        let dropped = reader.committed.borrow().dropped;
        assert!(dropped > 0);
        drop((drafts, reader));
        task.await.unwrap();
        let store = Store::open(&dir.path().join(recovery::SPOOL_FILE)).unwrap();
        assert!(store.bytes().unwrap() <= max);
        let last = store.read_from(0, 1000).unwrap().pop().unwrap().1;
        let alarm: serde_json::Value = serde_json::from_slice(&last.v1().payload).unwrap();
        assert_eq!(alarm["kind"], "spool_overflow");
        assert!(
            alarm["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{dropped} events")),
            "{alarm}"
        );
    }

    /// The state saved with a commit rides in its last record and counts
    /// against `max_bytes`: room is made for it before events are
    /// admitted, so the bound holds with it.
    #[tokio::test]
    async fn state_saved_with_events_counts_against_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start_with(dir.path(), bounded()).await;
        let max = bounded().max_bytes.0;
        let bytes = || reader.committed.borrow().bytes;
        // Filled to where one event still fits but not its saved state.
        let save = 10_000;
        while bytes() + save <= max {
            offer(&drafts, &reader, 1).await;
        }
        let mut d = draft(0);
        d.saves.push(Save {
            key: "presence/dock-1/A".into(),
            value: Some(vec![7; save as usize]),
        });
        let c = *reader.committed.borrow();
        drafts.send(d).await.unwrap();
        let mut committed = reader.committed.clone();
        committed
            .wait_for(|n| n.next_seq + n.dropped > c.next_seq + c.dropped)
            .await
            .unwrap();
        assert!(bytes() <= max, "{} bytes spooled, over {max}", bytes());
        drop((drafts, reader));
        task.await.unwrap();
    }

    /// A lost spool takes its head with it: the replacement's first event
    /// (the alarm that says so) starts a new chain, after a gap in `seq`.
    #[tokio::test]
    async fn a_spool_replacing_a_lost_one_starts_a_new_chain_with_its_alarm() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start(dir.path()).await;
        commit(&drafts, &reader, 2).await;
        drop((drafts, reader));
        task.await.unwrap();
        std::fs::write(dir.path().join(recovery::SPOOL_FILE), b"not a spool").unwrap();

        let (drafts, reader, task) = start(dir.path()).await;
        let mut committed = reader.committed.clone();
        committed.wait_for(|c| c.head.is_some()).await.unwrap();
        let records = reader.read(0, 10).await;
        let alarm: serde_json::Value = serde_json::from_slice(&records[0].payload).unwrap();
        assert_eq!(alarm["kind"], "spool_corrupt");
        assert!(records[0].seq > 3, "numbering goes on past the lost events");
        assert_eq!(prev(&records[0]), None);
        drop((drafts, reader));
        task.await.unwrap();
    }

    /// An undecodable record was skipped with a log line only, and the
    /// uplink delivered past it: a gap in `seq` nobody explained.
    #[tokio::test]
    async fn an_undecodable_record_is_skipped_and_alarmed_once() {
        let dir = tempfile::tempdir().unwrap();
        let opened = recovery::open(dir.path()).unwrap();
        let good = StoredRecord::V1(RecordV1 {
            topic: "t".into(),
            payload: b"{}".to_vec(),
            committed_at_ms: 1,
        })
        .encode();
        opened
            .store
            .append(1, &[good.clone(), vec![0xFF, 0xFF], good], &[0; 32])
            .unwrap();
        drop(opened);
        let (drafts, reader, task) = start(dir.path()).await;
        assert_eq!(seqs(&reader.read(1, 10).await), [1, 3]);
        assert_eq!(
            seqs(&reader.read(1, 10).await),
            [1, 3, 4],
            "the alarm, once"
        );
        let alarm: serde_json::Value =
            serde_json::from_slice(&reader.read(4, 1).await[0].payload).unwrap();
        assert_eq!(alarm["kind"], "spool_corrupt");
        assert!(
            alarm["detail"].as_str().unwrap().contains("seq 2 "),
            "{alarm}"
        );
        drop((drafts, reader));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn an_event_set_aside_is_kept_as_a_dead_letter_and_alarmed_even_when_acknowledged_past() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start(dir.path()).await;
        commit(&drafts, &reader, 3).await;
        assert!(reader.set_aside(2, "too large".into()).await);
        assert!(reader.set_aside(2, "again".into()).await, "moved already");
        // The acknowledgement right behind it passes seq 2.
        reader.ack(4).await;
        let mut committed = reader.committed.clone();
        committed.wait_for(|c| c.next_seq == 5).await.unwrap();
        let left = reader.read(0, 10).await;
        assert_eq!(seqs(&left), [4], "only the alarm is left");
        let alarm: serde_json::Value = serde_json::from_slice(&left[0].payload).unwrap();
        assert_eq!(
            (&alarm["kind"], &alarm["detail"]),
            (&"event_too_large".into(), &"too large".into())
        );
        drop((drafts, reader));
        task.await.unwrap();
        let store = Store::open(&dir.path().join(recovery::SPOOL_FILE)).unwrap();
        let dead = store.dead_letters(10).unwrap();
        assert_eq!(dead.iter().map(|d| d.0).collect::<Vec<_>>(), [2]);
        assert_eq!(store.stats().unwrap().dead_letters, 1);
    }

    /// Dead letters did not count against `spool.max_bytes`: events too
    /// large to send could fill the disk under any bound. Counted, dead
    /// letters that fill the spool make it refuse new events like any
    /// overflow (counted, and one `spool_overflow` alarm), and nothing
    /// deletes them to make room.
    #[tokio::test]
    async fn dead_letters_count_against_max_bytes_and_are_never_dropped_for_room() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start_with(dir.path(), bounded()).await;
        let max = bounded().max_bytes.0;
        for n in 0..5 {
            let mut big = draft(n);
            if let Body::Alarm(a) = &mut big.body {
                a.detail = "x".repeat(10 << 10);
            }
            drafts.send(big).await.unwrap();
        }
        let mut committed = reader.committed.clone();
        committed.wait_for(|c| c.next_seq >= 6).await.unwrap();
        for seq in 1..=5 {
            assert!(reader.set_aside(seq, "too large".into()).await);
        }
        // Everything else delivered: only the dead letters are left.
        let upto = reader.committed.borrow().next_seq;
        reader.ack(upto).await;
        assert!(reader.read(0, 100).await.is_empty());
        let dead = reader.committed.borrow().bytes;
        assert!(dead > 50 << 10, "the dead letters count: {dead} bytes");

        offer(&drafts, &reader, 200).await;
        let c = *reader.committed.borrow();
        assert!(
            c.dropped > 0,
            "refused once the dead letters fill the spool"
        );
        assert!(c.bytes <= max, "{} bytes spooled, over {max}", c.bytes);
        drop((drafts, reader));
        task.await.unwrap();
        let store = Store::open(&dir.path().join(recovery::SPOOL_FILE)).unwrap();
        assert_eq!(store.stats().unwrap().dead_letters, 5, "none deleted");
        assert!(store.bytes().unwrap() <= max);
        let last = store.read_from(0, 1000).unwrap().pop().unwrap().1;
        let alarm: serde_json::Value = serde_json::from_slice(&last.v1().payload).unwrap();
        assert_eq!(alarm["kind"], "spool_overflow", "{alarm}");
    }

    #[tokio::test]
    async fn reads_of_fresh_commits_return_what_the_store_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (drafts, reader, task) = start(dir.path()).await;
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
