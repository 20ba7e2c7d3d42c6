//! The blocking storage layer under the spool task: one redb file.
//!
//! redb gives crash-safe, checksummed commits (copy-on-write B-trees, one
//! fsync per `Immediate` commit). Records are keyed by `seq`; the next `seq`
//! and the spooled byte count are stored beside them in the same
//! transaction, so both survive even when every record has been delivered,
//! and so does the stream the numbering belongs to (see [`super::recovery`]);
//! so is the custody log's head (the hash of the last committed event),
//! which the next event's `prev` carries, across any restart.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Builder, Database, DatabaseError, Durability, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageBackend, StorageError, TableDefinition,
};
use tracing::error;

use super::record::StoredRecord;
use crate::audit::Digest;
use crate::custody::Save;
use crate::panics::contained;

mod saved;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Key [`STREAM_KEY`]: the stream id of the numbering.
const STREAM: TableDefinition<&str, &str> = TableDefinition::new("stream");
const STREAM_KEY: &str = "id";
/// Events that can never be sent (larger than the broker takes), moved out
/// of `events` so the ones behind them flow on, and kept for a technician.
/// They still count against `spool.max_bytes`: nothing deletes them, so
/// uncounted they could fill the disk under any bound.
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
const NEXT_SEQ: &str = "next_seq";
const BYTES: &str = "bytes";
const CHAIN: TableDefinition<&str, &[u8]> = TableDefinition::new("chain");
const HEAD: &str = "head";

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
        };
        // Create the tables up front so readers never see "table missing".
        store.write(Durability::Immediate, |txn| {
            txn.open_table(EVENTS)?;
            txn.open_table(META)?;
            txn.open_table(STREAM)?;
            txn.open_table(DEAD_LETTERS)?;
            txn.open_table(CHAIN)?;
            Ok(())
        })?;
        Ok(store)
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
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        txn.set_durability(durability).map_err(|e| self.fail(e))?;
        let out = f(&txn).map_err(|e| self.fail(e))?;
        txn.commit().map_err(|e| self.fail(e))?;
        Ok(out)
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let meta = txn.open_table(META).map_err(|e| self.fail(e))?;
        let value = meta.get(key).map_err(|e| self.fail(e))?.map(|g| g.value());
        Ok(value)
    }

    /// The `seq` the next committed event gets.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.meta(NEXT_SEQ)?.unwrap_or(1))
    }

    /// The spooled bytes, as `spool.max_bytes` counts them.
    pub fn bytes(&self) -> Result<u64, StoreError> {
        Ok(self.meta(BYTES)?.unwrap_or(0))
    }

    /// The hash of the last committed event; `None` before the first (a
    /// new spool, or one replacing a lost one: its chain starts over).
    pub fn head(&self) -> Result<Option<Digest>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let chain = txn.open_table(CHAIN).map_err(|e| self.fail(e))?;
        let head = chain.get(HEAD).map_err(|e| self.fail(e))?;
        Ok(head.and_then(|g| g.value().try_into().ok()))
    }

    /// The numbering this file holds: its stream (`None` if written by a
    /// version without streams) and the next `seq`. `None` for a file that
    /// holds no numbering: new, or emptied.
    pub fn numbering(&self) -> Result<Option<(Option<String>, u64)>, StoreError> {
        let Some(next_seq) = self.meta(NEXT_SEQ)? else {
            return Ok(None);
        };
        Ok(Some((self.stream()?, next_seq)))
    }

    fn stream(&self) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(STREAM).map_err(|e| self.fail(e))?;
        let id = table.get(STREAM_KEY).map_err(|e| self.fail(e))?;
        Ok(id.map(|g| g.value().to_string()))
    }

    /// Numbers on in `stream` from `next_seq`.
    pub fn set_numbering(&self, stream: &str, next_seq: u64) -> Result<(), StoreError> {
        self.write(Durability::Immediate, |txn| {
            txn.open_table(META)?.insert(NEXT_SEQ, next_seq)?;
            txn.open_table(STREAM)?.insert(STREAM_KEY, stream)?;
            Ok(())
        })
    }

    /// Commits `records` as `first_seq, first_seq + 1, ...` durably (one
    /// fsync), with `head`, the hash of the last one's payload. Returns the
    /// spooled bytes after it.
    pub fn append(
        &self,
        first_seq: u64,
        records: &[Vec<u8>],
        head: &Digest,
    ) -> Result<u64, StoreError> {
        self.append_saving(first_seq, records, &[], head)
    }

    /// [`Store::append`], with the state saved alongside the records in
    /// the same transaction.
    pub fn append_saving(
        &self,
        first_seq: u64,
        records: &[Vec<u8>],
        saves: &[Save],
        head: &Digest,
    ) -> Result<u64, StoreError> {
        self.write(Durability::Immediate, |txn| {
            saved::apply(txn, saves)?;
            let mut events = txn.open_table(EVENTS)?;
            let mut added = 0;
            for (seq, record) in (first_seq..).zip(records) {
                events.insert(seq, record.as_slice())?;
                added += record_bytes(record);
            }
            let mut meta = txn.open_table(META)?;
            let bytes = meta.get(BYTES)?.map_or(0, |g| g.value()) + added;
            meta.insert(BYTES, bytes)?;
            meta.insert(NEXT_SEQ, first_seq + records.len() as u64)?;
            txn.open_table(CHAIN)?.insert(HEAD, head.as_slice())?;
            Ok(bytes)
        })
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
        self.write(Durability::None, |txn| {
            let mut events = txn.open_table(EVENTS)?;
            let mut freed = 0;
            events.retain_in(..below, |_, v| {
                freed += record_bytes(v);
                false
            })?;
            let mut meta = txn.open_table(META)?;
            let bytes = meta
                .get(BYTES)?
                .map_or(0, |g| g.value())
                .saturating_sub(freed);
            meta.insert(BYTES, bytes)?;
            Ok(bytes)
        })
    }

    /// Moves event `seq` to the dead letters, durably; its bytes stay
    /// counted. Returns whether it was spooled (`false`: moved already).
    pub fn set_aside(&self, seq: u64) -> Result<bool, StoreError> {
        self.write(Durability::Immediate, |txn| {
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

    /// Makes every earlier non-durable commit durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.write(Durability::Immediate, |_| Ok(()))
    }

    pub fn stats(&self) -> Result<Stats, StoreError> {
        let (next_seq, bytes, stream) = (self.next_seq()?, self.bytes()?, self.stream()?);
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
            bytes,
            oldest_seq,
            oldest_committed_at_ms,
            next_seq,
            stream,
            file_bytes,
            dead_letters,
        })
    }
}

#[cfg(test)]
mod tests;
