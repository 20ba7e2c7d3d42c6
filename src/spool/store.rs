//! The blocking storage layer under the spool task: one redb file.
//!
//! redb gives crash-safe, checksummed commits (copy-on-write B-trees, one
//! fsync per `Immediate` commit). Records are keyed by `seq`, and the next
//! `seq` is stored beside them in the same transaction, so it survives even
//! when every record has been delivered and deleted.

use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use super::record::StoredRecord;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";

/// redb's default page cache is sized for servers; a door Pi needs a few MiB.
const CACHE_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("spool {path}: {source}")]
    Db { path: PathBuf, source: redb::Error },
    #[error("spool {path}: record {seq} cannot be decoded: {source}")]
    Decode {
        path: PathBuf,
        seq: u64,
        source: postcard::Error,
    },
}

/// What a technician wants to know about the spool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Events committed but not yet acknowledged by the broker.
    pub depth: u64,
    pub oldest_seq: Option<u64>,
    /// Commit time of the oldest undelivered event (ms since the Unix epoch).
    pub oldest_committed_at_ms: Option<u64>,
    pub next_seq: u64,
    pub file_bytes: u64,
}

pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let fail = |e: redb::Error| StoreError::Db {
            path: path.to_owned(),
            source: e,
        };
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| fail(e.into()))?;
        let store = Store {
            db,
            path: path.to_owned(),
        };
        // Create both tables up front so readers never see "table missing".
        store.write(Durability::Immediate, |txn| {
            txn.open_table(EVENTS)?;
            txn.open_table(META)?;
            Ok(())
        })?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source: e.into(),
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

    /// The `seq` the next committed event gets.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let meta = txn.open_table(META).map_err(|e| self.fail(e))?;
        let stored = meta
            .get(NEXT_SEQ)
            .map_err(|e| self.fail(e))?
            .map(|g| g.value());
        Ok(stored.unwrap_or(1))
    }

    /// Commits `records` as `first_seq, first_seq + 1, ...` durably (one fsync).
    pub fn append(&self, first_seq: u64, records: &[StoredRecord]) -> Result<(), StoreError> {
        self.write(Durability::Immediate, |txn| {
            let mut events = txn.open_table(EVENTS)?;
            for (seq, record) in (first_seq..).zip(records) {
                events.insert(seq, record.encode().as_slice())?;
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(NEXT_SEQ, first_seq + records.len() as u64)?;
            Ok(())
        })
    }

    /// Up to `max` records from `from` on, in `seq` order.
    pub fn read_from(&self, from: u64, max: usize) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for entry in events.range(from..).map_err(|e| self.fail(e))?.take(max) {
            let (k, v) = entry.map_err(|e| self.fail(e))?;
            let seq = k.value();
            let record = StoredRecord::decode(v.value()).map_err(|source| StoreError::Decode {
                path: self.path.clone(),
                seq,
                source,
            })?;
            out.push((seq, record));
        }
        Ok(out)
    }

    /// Forgets every record below `below` (they were acknowledged).
    ///
    /// Not fsynced: after a crash the deletion may roll back and those events
    /// are delivered again, which at-least-once delivery allows. The next
    /// durable append (or [`Store::sync`]) makes it stick.
    pub fn delete_below(&self, below: u64) -> Result<(), StoreError> {
        self.write(Durability::None, |txn| {
            let mut events = txn.open_table(EVENTS)?;
            events.retain_in(..below, |_, _| false)?;
            Ok(())
        })
    }

    /// Makes every earlier non-durable commit durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.write(Durability::Immediate, |_| Ok(()))
    }

    pub fn stats(&self) -> Result<Stats, StoreError> {
        let next_seq = self.next_seq()?;
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.fail(e))?;
        let depth = events.len().map_err(|e| self.fail(e))?;
        let first = events.first().map_err(|e| self.fail(e))?;
        let (oldest_seq, oldest_committed_at_ms) = match first {
            Some((k, v)) => {
                let seq = k.value();
                let record =
                    StoredRecord::decode(v.value()).map_err(|source| StoreError::Decode {
                        path: self.path.clone(),
                        seq,
                        source,
                    })?;
                (Some(seq), Some(record.v1().committed_at_ms))
            }
            None => (None, None),
        };
        let file_bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(Stats {
            depth,
            oldest_seq,
            oldest_committed_at_ms,
            next_seq,
            file_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::record::RecordV1;

    fn rec(n: u8) -> StoredRecord {
        StoredRecord::V1(RecordV1 {
            topic: format!("t/{n}"),
            payload: vec![n],
            committed_at_ms: n as u64,
        })
    }

    #[test]
    fn seq_survives_reopen_even_when_everything_was_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.next_seq().unwrap(), 1);
        store.append(1, &[rec(1), rec(2), rec(3)]).unwrap();
        store.delete_below(4).unwrap();
        store.sync().unwrap();
        drop(store);

        let store = Store::open(&path).unwrap();
        assert_eq!(store.next_seq().unwrap(), 4);
        assert!(store.read_from(0, 10).unwrap().is_empty());
    }

    #[test]
    fn reads_in_seq_order_from_a_cursor_and_deletes_below_a_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("spool.redb")).unwrap();
        store.append(1, &[rec(1), rec(2), rec(3), rec(4)]).unwrap();
        let got: Vec<u64> = store
            .read_from(2, 2)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(got, [2, 3]);
        store.delete_below(3).unwrap();
        let stats = store.stats().unwrap();
        assert_eq!(
            (stats.depth, stats.oldest_seq, stats.next_seq),
            (2, Some(3), 5)
        );
        assert_eq!(stats.oldest_committed_at_ms, Some(3));
    }
}
