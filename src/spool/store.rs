//! The blocking storage layer under the spool task: one redb file.
//!
//! redb gives crash-safe, checksummed commits (copy-on-write B-trees, one
//! fsync per `Immediate` commit). Records are keyed by `seq`. An append,
//! the commit every event waits for, writes the `events` table and nothing
//! else, because each table a commit touches costs its own pages on the
//! card. What has to survive with the events rides in them or follows from
//! them:
//!
//! - the state the front saved with an event (see [`crate::custody::Save`])
//!   follows its record (see [`super::record`]);
//! - the next `seq`, the spooled byte count and the custody log's head (the
//!   hash of the last committed event, which the next event's `prev`
//!   carries) follow from the *checkpoint* and the records after it.
//!
//! The checkpoint holds the next `seq`, the byte count, the head and the
//! stream (see [`super::recovery`]) as they were at a commit. Every commit
//! other than an append (deleting delivered events, moving one to the dead
//! letters, a new numbering) writes it, after folding the saves of the
//! records since the last one into the `saved` table; an append writes it
//! too once [`CHECKPOINT_RECORDS`] records have followed it, so that opening
//! reads at most that many records to know where the spool stands. All of
//! it survives when every record has been delivered.
//!
//! Files written before checkpoints existed are brought up to date the
//! first time they are opened (see [`migrate`]).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{
    Builder, Database, DatabaseError, Durability, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageBackend, StorageError, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use tracing::error;

use super::record::{self, StoredRecord};
use crate::audit::{chain, Digest};
use crate::custody::{Save, Saved};
use crate::panics::contained;

mod migrate;
mod saved;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Key [`CHECKPOINT_KEY`]: the [`Checkpoint`], postcard-encoded.
const CHECKPOINT: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoint");
const CHECKPOINT_KEY: &str = "checkpoint";
/// Events that can never be sent (larger than the broker takes), moved out
/// of `events` so the ones behind them flow on, and kept for a technician.
/// They still count against `spool.max_bytes`: nothing deletes them, so
/// uncounted they could fill the disk under any bound.
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");

/// Records an append may leave after the checkpoint before it writes one.
const CHECKPOINT_RECORDS: u64 = 256;

/// Where the spool stood at a commit. Versioned like the records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Checkpoint {
    V1(At),
}

/// Where the spool stands after a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct At {
    next_seq: u64,
    bytes: u64,
    head: Option<Digest>,
    stream: Option<String>,
}

/// Where the spool stands now: the checkpoint and the records after it.
#[derive(Debug)]
struct Tally {
    at: At,
    /// A checkpoint or a record was ever written: the file holds a
    /// numbering.
    numbered: bool,
    /// The saves of the records after the checkpoint, in `seq` order: not
    /// yet in the `saved` table.
    pending: Vec<Save>,
    /// Records appended since the checkpoint.
    since: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            at: At {
                next_seq: 1,
                bytes: 0,
                head: None,
                stream: None,
            },
            numbered: false,
            pending: Vec::new(),
            since: 0,
        }
    }
}

impl Tally {
    /// Writes the checkpoint `at` inside `txn`, with the pending saves and
    /// then `saves` folded into the `saved` table; once `txn` is
    /// committed, [`Tally::checkpointed`] says so.
    fn write_checkpoint(
        &self,
        txn: &WriteTransaction,
        at: &At,
        saves: &[Save],
    ) -> Result<(), redb::Error> {
        saved::apply(txn, &self.pending)?;
        saved::apply(txn, saves)?;
        put_checkpoint(txn, &Checkpoint::V1(at.clone()))
    }

    fn checkpointed(&mut self, at: At) {
        self.at = at;
        self.pending.clear();
        self.since = 0;
        self.numbered = true;
    }
}

fn put_checkpoint(txn: &WriteTransaction, checkpoint: &Checkpoint) -> Result<(), redb::Error> {
    let encoded =
        postcard::to_stdvec(checkpoint).expect("postcard encodes into a Vec without failing");
    txn.open_table(CHECKPOINT)?
        .insert(CHECKPOINT_KEY, encoded.as_slice())?;
    Ok(())
}

/// Records read, with their `seq`.
pub type Records = Vec<(u64, StoredRecord)>;

/// Counted per record on top of its encoding: the key.
const KEY_BYTES: u64 = 8;

/// redb's default page cache is sized for servers; a door Pi needs a few MiB.
const CACHE_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("spool {path}: {source}")]
    Db { path: PathBuf, source: redb::Error },
    /// The file cannot be trusted: damaged, truncated, not a redb file, or
    /// written by an incompatible version.
    #[error("spool {path} is unreadable: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// Reading spooled events failed on an open spool (an I/O error from
    /// the card): unlike a failure to open it again, which a full disk can
    /// cause, this says the file itself could not be read.
    #[error("spool {path}: reading events: {source}")]
    Read { path: PathBuf, source: redb::Error },
}

/// What a technician wants to know about the spool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Events committed but not yet acknowledged by the broker.
    pub depth: u64,
    /// Their encoded size and the dead letters', as `spool.max_bytes`
    /// counts it.
    pub bytes: u64,
    pub oldest_seq: Option<u64>,
    /// Commit time of the oldest undelivered event (ms since the Unix epoch).
    pub oldest_committed_at_ms: Option<u64>,
    pub next_seq: u64,
    /// The stream `next_seq` numbers in (`None`: no event numbered yet).
    pub stream: Option<String>,
    pub file_bytes: u64,
    /// Events set aside as too large to send (`spool peek` shows them).
    pub dead_letters: u64,
}

pub struct Store {
    db: Database,
    path: PathBuf,
    origin: Origin,
    /// Kept by every commit; read from the file when it is opened.
    tally: Mutex<Tally>,
}

/// What a database handle is opened from, as the result of redb's open
/// (which may panic on a damaged file).
type Create = dyn Fn() -> std::thread::Result<Result<Database, DatabaseError>> + Send + Sync;

/// Where a store came from, so that it can be opened again after an I/O
/// error poisoned its handle: a store on a storage backend (the power loss
/// and read fault tests) must come back on that backend, not on a file
/// named after its label.
#[derive(Clone)]
enum Origin {
    File,
    Backend(Arc<Create>),
}

/// Opens a store again (see [`Store::reopener`]).
#[derive(Clone)]
pub struct Reopener {
    path: PathBuf,
    origin: Origin,
}

impl Reopener {
    /// The store's path (or label).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`Store::reopen`], on what the store was opened from.
    pub fn reopen(&self) -> Result<Store, StoreError> {
        match &self.origin {
            Origin::File => Store::reopen(&self.path),
            Origin::Backend(create) => Store::init(&self.path, create(), self.origin.clone()),
        }
    }
}

/// The size a record counts for against `spool.max_bytes`.
pub fn record_bytes(encoded: &[u8]) -> u64 {
    encoded.len() as u64 + KEY_BYTES
}

impl Store {
    /// Opens (or creates) the spool at `path`, verifying every page first so
    /// that a damaged file is reported as [`StoreError::Corrupt`] rather than
    /// trusted (a plain open of a damaged file may even panic).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_checked(path, true)
    }

    /// Opens again after an I/O error poisoned the previous handle. The file
    /// on disk is whatever the last good commit left, so the full check of
    /// [`Store::open`] is not needed; and it would have to commit, which a
    /// full disk may refuse.
    pub fn reopen(path: &Path) -> Result<Store, StoreError> {
        Self::open_checked(path, false)
    }

    fn open_checked(path: &Path, check: bool) -> Result<Store, StoreError> {
        let mut builder = Builder::new();
        builder
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(check);
        Self::init(
            path,
            contained(AssertUnwindSafe(|| builder.create(path))),
            Origin::File,
        )
    }

    /// A spool on any storage: the seam through which power loss and failing
    /// reads are simulated. Opened again (after an I/O error) on a clone of
    /// `backend`.
    pub fn open_with_backend(
        backend: impl StorageBackend + Clone,
        label: &Path,
    ) -> Result<Store, StoreError> {
        let create = move |check: bool| {
            let mut builder = Builder::new();
            builder
                .set_cache_size(CACHE_BYTES)
                .set_check_integrity_on_open(check);
            let backend = backend.clone();
            contained(AssertUnwindSafe(|| builder.create_with_backend(backend)))
        };
        let opened = create(true);
        let origin = Origin::Backend(Arc::new(move || create(false)));
        Self::init(label, opened, origin)
    }

    /// How to open this store again once its handle is dropped.
    pub fn reopener(&self) -> Reopener {
        Reopener {
            path: self.path.clone(),
            origin: self.origin.clone(),
        }
    }

    fn init(
        path: &Path,
        opened: std::thread::Result<Result<Database, DatabaseError>>,
        origin: Origin,
    ) -> Result<Store, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: path.to_owned(),
            detail,
        };
        let db = match opened {
            Err(_) => return Err(corrupt("redb could not make sense of it".into())),
            Ok(Err(DatabaseError::Storage(StorageError::Corrupted(detail)))) => {
                return Err(corrupt(detail))
            }
            // "Not a redb database": something else was written over it.
            Ok(Err(DatabaseError::Storage(StorageError::Io(e))))
                if e.kind() == std::io::ErrorKind::InvalidData =>
            {
                return Err(corrupt(e.to_string()))
            }
            Ok(Err(DatabaseError::UpgradeRequired(v))) => {
                return Err(corrupt(format!(
                    "written in redb file format {v}, which this version does not read"
                )))
            }
            Ok(Err(e)) => {
                return Err(StoreError::Db {
                    path: path.to_owned(),
                    source: e.into(),
                })
            }
            Ok(Ok(db)) => db,
        };
        let store = Store {
            db,
            path: path.to_owned(),
            origin,
            tally: Mutex::default(),
        };
        // Create the tables up front so readers never see "table missing",
        // and bring a file written before checkpoints up to date.
        let stored = store.write(Durability::Immediate, |txn| {
            txn.open_table(EVENTS)?;
            txn.open_table(DEAD_LETTERS)?;
            saved::create(txn)?;
            if let Some(old) = migrate::take_old_tables(txn)? {
                put_checkpoint(txn, &old)?;
            }
            let table = txn.open_table(CHECKPOINT)?;
            let stored = table.get(CHECKPOINT_KEY)?.map(|g| g.value().to_vec());
            Ok(stored)
        })?;
        let tally = store.load_tally(stored)?;
        *store.tally() = tally;
        Ok(store)
    }

    /// Where the spool stands: the checkpoint `stored` (encoded) and the
    /// records after it.
    fn load_tally(&self, stored: Option<Vec<u8>>) -> Result<Tally, StoreError> {
        let mut tally = Tally::default();
        if let Some(stored) = stored {
            let Checkpoint::V1(at) =
                postcard::from_bytes(&stored).map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("its checkpoint does not decode: {e}"),
                })?;
            tally.at = at;
            tally.numbered = true;
        }
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.fail(e))?;
        for entry in events
            .range(tally.at.next_seq..)
            .map_err(|e| self.fail(e))?
        {
            let (seq, value) = entry.map_err(|e| self.fail(e))?;
            let (seq, value) = (seq.value(), value.value());
            tally.at.next_seq = seq + 1;
            tally.at.bytes += record_bytes(value);
            tally.since += 1;
            tally.numbered = true;
            match StoredRecord::decode_with_saves(value) {
                Ok((record, saves)) => {
                    tally.at.head = Some(chain::hash(&record.v1().payload));
                    tally.pending.extend(saves);
                }
                Err(e) => {
                    // Its link and its saves are lost with it: the next
                    // event starts a new chain, as after a lost spool.
                    error!(
                        "spool {}: event {seq} cannot be decoded: {e}",
                        self.path.display()
                    );
                    tally.at.head = None;
                }
            }
        }
        Ok(tally)
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, e: impl Into<redb::Error>) -> StoreError {
        match e.into() {
            redb::Error::Corrupted(detail) => StoreError::Corrupt {
                path: self.path.clone(),
                detail,
            },
            source => StoreError::Db {
                path: self.path.clone(),
                source,
            },
        }
    }

    fn write<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        txn.set_durability(durability).map_err(|e| self.fail(e))?;
        let out = f(&txn).map_err(|e| self.fail(e))?;
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(out)
    }

    /// Commits `f` with a checkpoint of where the spool stands after it
    /// (`f` may change that), and keeps that once committed.
    fn write_checkpointed<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction, &mut At) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        self.checkpoint_with(&mut self.tally(), durability, &[], f)
    }

    /// [`Store::write_checkpointed`] on a tally already held, folding
    /// `saves` (committed by `f`) after the pending ones.
    fn checkpoint_with<T>(
        &self,
        tally: &mut Tally,
        durability: Durability,
        saves: &[Save],
        f: impl FnOnce(&WriteTransaction, &mut At) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let mut at = tally.at.clone();
        let out = self.write(durability, |txn| {
            let out = f(txn, &mut at)?;
            tally.write_checkpoint(txn, &at, saves)?;
            Ok(out)
        })?;
        tally.checkpointed(at);
        Ok(out)
    }

    /// The `seq` the next committed event gets.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.tally().at.next_seq)
    }

    /// The spooled bytes, as `spool.max_bytes` counts them.
    pub fn bytes(&self) -> Result<u64, StoreError> {
        Ok(self.tally().at.bytes)
    }

    /// The hash of the last committed event; `None` before the first (a
    /// new spool, or one replacing a lost one: its chain starts over).
    pub fn head(&self) -> Result<Option<Digest>, StoreError> {
        Ok(self.tally().at.head)
    }

    /// The numbering this file holds: its stream (`None` if written by a
    /// version without streams) and the next `seq`. `None` for a file that
    /// holds no numbering: new, or emptied.
    pub fn numbering(&self) -> Result<Option<(Option<String>, u64)>, StoreError> {
        let tally = self.tally();
        Ok(tally
            .numbered
            .then(|| (tally.at.stream.clone(), tally.at.next_seq)))
    }

    /// Numbers on in `stream` from `next_seq`.
    pub fn set_numbering(&self, stream: &str, next_seq: u64) -> Result<(), StoreError> {
        self.write_checkpointed(Durability::Immediate, |_, at| {
            at.next_seq = next_seq;
            at.stream = Some(stream.to_owned());
            Ok(())
        })
    }

    /// Commits `records` as `first_seq, first_seq + 1, ...` durably (one
    /// fsync). `head` must be the hash of the last one's payload, which is
    /// what opening the file finds when no checkpoint followed. Returns the
    /// spooled bytes after it.
    pub fn append(
        &self,
        first_seq: u64,
        records: &[Vec<u8>],
        head: &Digest,
    ) -> Result<u64, StoreError> {
        self.append_saving(first_seq, records, &[], head)
    }

    /// [`Store::append`], with `saves` committed with the records: they
    /// follow the last one (see [`super::record`]), and count in its
    /// bytes.
    pub fn append_saving(
        &self,
        first_seq: u64,
        records: &[Vec<u8>],
        saves: &[Save],
        head: &Digest,
    ) -> Result<u64, StoreError> {
        let mut tally = self.tally();
        let trailer = record::trailer(saves);
        let last = match (records.split_last(), trailer.is_empty()) {
            (Some((last, _)), false) => Some([last.as_slice(), &trailer].concat()),
            _ => None,
        };
        let count = records.len() as u64;
        let added = records.iter().map(|r| record_bytes(r)).sum::<u64>() + trailer.len() as u64;
        let advance = |at: &mut At| {
            at.next_seq = first_seq + count;
            at.bytes += added;
            at.head = Some(*head);
        };
        let insert = |txn: &WriteTransaction| {
            let mut events = txn.open_table(EVENTS)?;
            for (i, (seq, record)) in (first_seq..).zip(records).enumerate() {
                let value = match &last {
                    Some(last) if i + 1 == records.len() => last,
                    _ => record,
                };
                events.insert(seq, value.as_slice())?;
            }
            Ok(())
        };
        if records.is_empty() || tally.since + count >= CHECKPOINT_RECORDS {
            self.checkpoint_with(&mut tally, Durability::Immediate, saves, |txn, at| {
                insert(txn)?;
                advance(at);
                Ok(())
            })?;
        } else {
            self.write(Durability::Immediate, insert)?;
            advance(&mut tally.at);
            tally.pending.extend_from_slice(saves);
            tally.since += count;
            tally.numbered = true;
        }
        Ok(tally.at.bytes)
    }

    /// Up to `max` records from `from` on, in `seq` order, skipping those
    /// that do not decode (see [`Store::read_checked`]).
    pub fn read_from(&self, from: u64, max: usize) -> Result<Records, StoreError> {
        Ok(self.read_checked(from, max)?.0)
    }

    /// Up to `max` records from `from` on, in `seq` order, and the `seq` of
    /// each record among them that does not decode. Those are logged and
    /// skipped: one bad record must not stop the delivery of every record
    /// after it.
    pub fn read_checked(&self, from: u64, max: usize) -> Result<(Records, Vec<u64>), StoreError> {
        let fail = |e: redb::Error| match self.fail(e) {
            StoreError::Db { path, source } => StoreError::Read { path, source },
            corrupt => corrupt,
        };
        let txn = self.db.begin_read().map_err(|e| fail(e.into()))?;
        let events = txn.open_table(EVENTS).map_err(|e| fail(e.into()))?;
        let (mut out, mut undecodable) = (Vec::new(), Vec::new());
        for entry in events.range(from..).map_err(|e| fail(e.into()))?.take(max) {
            let (k, v) = entry.map_err(|e| fail(e.into()))?;
            match StoredRecord::decode(v.value()) {
                Ok(record) => out.push((k.value(), record)),
                Err(e) => {
                    error!(
                        "spool {}: event {} cannot be decoded and is skipped: {e}",
                        self.path.display(),
                        k.value()
                    );
                    undecodable.push(k.value());
                }
            }
        }
        Ok((out, undecodable))
    }

    /// Forgets every record below `below` (they were acknowledged). Returns
    /// the spooled bytes after it.
    ///
    /// Not fsynced: after a crash the deletion may roll back and those events
    /// are delivered again, which at-least-once delivery allows. The next
    /// durable append (or [`Store::sync`]) makes it stick.
    pub fn delete_below(&self, below: u64) -> Result<u64, StoreError> {
        self.write_checkpointed(Durability::None, |txn, at| {
            txn.open_table(EVENTS)?.retain_in(..below, |_, v| {
                at.bytes = at.bytes.saturating_sub(record_bytes(v));
                false
            })?;
            Ok(at.bytes)
        })
    }

    /// Moves event `seq` to the dead letters, durably; its bytes stay
    /// counted. Returns whether it was spooled (`false`: moved already).
    pub fn set_aside(&self, seq: u64) -> Result<bool, StoreError> {
        self.write_checkpointed(Durability::Immediate, |txn, _| {
            let mut events = txn.open_table(EVENTS)?;
            let Some(record) = events.remove(seq)?.map(|v| v.value().to_vec()) else {
                return Ok(false);
            };
            txn.open_table(DEAD_LETTERS)?
                .insert(seq, record.as_slice())?;
            Ok(true)
        })
    }

    /// Up to `max` dead letters, oldest first.
    pub fn dead_letters(&self, max: usize) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let dead = txn.open_table(DEAD_LETTERS).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for entry in dead.iter().map_err(|e| self.fail(e))?.take(max) {
            let (k, v) = entry.map_err(|e| self.fail(e))?;
            if let Ok(record) = StoredRecord::decode(v.value()) {
                out.push((k.value(), record));
            }
        }
        Ok(out)
    }

    /// Deletes the dead letters `seqs` (every one for `None`), durably, and
    /// returns them: a technician's only way to free what they hold once
    /// they are saved elsewhere. Their bytes stop counting.
    pub fn drop_dead_letters(
        &self,
        seqs: Option<&[u64]>,
    ) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        self.write_checkpointed(Durability::Immediate, |txn, at| {
            let mut dead = txn.open_table(DEAD_LETTERS)?;
            let mut dropped = Vec::new();
            dead.retain(|seq, value| {
                let drop = seqs.is_none_or(|seqs| seqs.contains(&seq));
                if drop {
                    at.bytes = at.bytes.saturating_sub(record_bytes(value));
                    if let Ok(record) = StoredRecord::decode(value) {
                        dropped.push((seq, record));
                    }
                }
                !drop
            })?;
            Ok(dropped)
        })
    }

    /// Makes every earlier non-durable commit durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.write(Durability::Immediate, |_| Ok(()))
    }

    pub fn stats(&self) -> Result<Stats, StoreError> {
        let at = self.tally().at.clone();
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.fail(e))?;
        let depth = events.len().map_err(|e| self.fail(e))?;
        let first = events.first().map_err(|e| self.fail(e))?;
        let oldest_seq = first.as_ref().map(|(k, _)| k.value());
        let oldest_committed_at_ms = first
            .and_then(|(_, v)| StoredRecord::decode(v.value()).ok())
            .map(|r| r.v1().committed_at_ms);
        let file_bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let dead = txn.open_table(DEAD_LETTERS).map_err(|e| self.fail(e))?;
        let dead_letters = dead.len().map_err(|e| self.fail(e))?;
        Ok(Stats {
            depth,
            bytes: at.bytes,
            oldest_seq,
            oldest_committed_at_ms,
            next_seq: at.next_seq,
            stream: at.stream,
            file_bytes,
            dead_letters,
        })
    }

    /// Every saved entry, in key order: the `saved` table with the saves
    /// of the records after the checkpoint applied.
    pub fn saved(&self) -> Result<Saved, StoreError> {
        let mut entries: BTreeMap<String, Vec<u8>> = self.saved_table()?.into_iter().collect();
        for save in &self.tally().pending {
            match &save.value {
                Some(value) => entries.insert(save.key.clone(), value.clone()),
                None => entries.remove(&save.key),
            };
        }
        Ok(entries.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
