//! Durable local copies of retained MQTT topics (`data_dir/retained.redb`).
//!
//! Central systems publish state for the gateways as retained messages: the
//! release policy of the cage gates, the manifests of the stations. The
//! broker re-delivers them on every connect, but a gateway must act on them
//! while the broker is unreachable too, and right after a restart before it
//! has connected. So each use keeps the latest payload per topic here, in a
//! table of its own, updated as messages arrive, and reads it back when it
//! decides.
//!
//! What goes in is the owner's choice: it validates a message before
//! storing it (a malformed one must not replace a good entry) and decides
//! what an empty payload means ([`Update::from_payload`]: MQTT's "no
//! retained message any more", a delete).
//!
//! A redb file can be opened once per process, so the daemon makes one
//! [`Retained`] and each owner takes its [`Table`] from it.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Builder, Database, ReadableDatabase, ReadableTable, TableDefinition};
use tracing::error;

use crate::panics::contained;

pub const RETAINED_FILE: &str = "retained.redb";

/// Policies and manifests are small; a door Pi's memory is not.
const CACHE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct RetainedError {
    path: PathBuf,
    source: redb::Error,
}

/// The file, opened by the first [`Retained::table`]: a gateway that keeps
/// no retained topic writes none. Cheap to clone.
#[derive(Clone)]
pub struct Retained {
    path: Arc<Path>,
    db: Arc<Mutex<Option<Arc<Database>>>>,
}

/// One owner's topics and their latest payloads.
#[derive(Clone)]
pub struct Table {
    db: Arc<Database>,
    path: Arc<Path>,
    def: TableDefinition<'static, &'static str, &'static [u8]>,
}

/// What a message does to its topic's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update<'a> {
    Put(&'a [u8]),
    Remove,
}

impl<'a> Update<'a> {
    /// MQTT's meaning: an empty retained payload clears the topic.
    pub fn from_payload(payload: &'a [u8]) -> Self {
        if payload.is_empty() {
            Update::Remove
        } else {
            Update::Put(payload)
        }
    }
}

impl Retained {
    /// `data_dir/retained.redb`, not opened yet.
    pub fn at(data_dir: &Path) -> Self {
        Retained {
            path: data_dir.join(RETAINED_FILE).into(),
            db: Arc::default(),
        }
    }

    /// The table `name`. One name per use (`release`, `manifests`), fixed
    /// in the code that owns it. Created by its first write: until then it
    /// reads as empty, and taking it commits nothing (a reload takes its
    /// tables again on the runtime's thread, where no fsync may run).
    pub fn table(&self, name: &'static str) -> Result<Table, RetainedError> {
        Ok(Table {
            db: self.db()?,
            path: self.path.clone(),
            def: TableDefinition::new(name),
        })
    }

    fn db(&self) -> Result<Arc<Database>, RetainedError> {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = &*db {
            return Ok(db.clone());
        }
        let opened = Arc::new(open(&self.path)?);
        *db = Some(opened.clone());
        Ok(opened)
    }
}

/// Opens (or creates) the file. One redb cannot read is moved aside and a
/// new one started: it only ever holds copies of what the broker
/// re-delivers on the next connect, and a gateway that crash-looped on it
/// would stop recording custody altogether.
fn open(path: &Path) -> Result<Database, RetainedError> {
    let failed = |source| RetainedError {
        path: path.to_owned(),
        source,
    };
    match create(path) {
        Ok(db) => Ok(db),
        Err(problem) if path.exists() => {
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let aside = path.with_extension(format!("redb.unreadable-{stamp}"));
            error!(
                "{} is unreadable ({problem}); moved to {} and started empty: \
                 retained state is known again once the broker re-delivers it",
                path.display(),
                aside.display()
            );
            std::fs::rename(path, &aside).map_err(|e| failed(redb::Error::Io(e)))?;
            create(path).map_err(failed)
        }
        Err(source) => Err(failed(source)),
    }
}

fn create(path: &Path) -> Result<Database, redb::Error> {
    let mut builder = Builder::new();
    builder.set_cache_size(CACHE_BYTES);
    // redb may panic on a damaged file rather than return an error.
    match contained(AssertUnwindSafe(|| builder.create(path))) {
        Ok(opened) => opened.map_err(redb::Error::from),
        Err(_) => Err(redb::Error::Corrupted(
            "redb could not make sense of it".into(),
        )),
    }
}

/// A table opened for reading, or `None` if nothing was ever written to it.
fn written<T>(opened: Result<T, redb::TableError>) -> Result<Option<T>, redb::Error> {
    match opened {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Table {
    /// The latest payload stored for `topic`.
    pub fn get(&self, topic: &str) -> Result<Option<Vec<u8>>, RetainedError> {
        let read = || -> Result<Option<Vec<u8>>, redb::Error> {
            let txn = self.db.begin_read()?;
            let Some(table) = written(txn.open_table(self.def))? else {
                return Ok(None);
            };
            Ok(table.get(topic)?.map(|v| v.value().to_vec()))
        };
        read().map_err(|e| self.error(e))
    }

    /// Every topic and its payload, in topic order.
    pub fn entries(&self) -> Result<Vec<(String, Vec<u8>)>, RetainedError> {
        let read = || -> Result<Vec<(String, Vec<u8>)>, redb::Error> {
            let txn = self.db.begin_read()?;
            let mut all = Vec::new();
            let Some(table) = written(txn.open_table(self.def))? else {
                return Ok(all);
            };
            for entry in table.iter()? {
                let (k, v) = entry?;
                all.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(all)
        };
        read().map_err(|e| self.error(e))
    }

    /// Applies a batch of updates in one commit (one fsync), and none at
    /// all when nothing changes: the broker re-delivers every retained
    /// message after each reconnect, and those are mostly what is stored
    /// already. Returns how many entries changed.
    pub fn apply<'a>(
        &self,
        updates: impl IntoIterator<Item = (&'a str, Update<'a>)>,
    ) -> Result<usize, RetainedError> {
        let mut changed = 0;
        self.write(|txn| {
            let mut table = txn.open_table(self.def)?;
            for (topic, update) in updates {
                let before = table.get(topic)?.map(|v| v.value().to_vec());
                match update {
                    Update::Put(payload) if before.as_deref() != Some(payload) => {
                        table.insert(topic, payload)?;
                        changed += 1;
                    }
                    Update::Remove if before.is_some() => {
                        table.remove(topic)?;
                        changed += 1;
                    }
                    _ => {}
                }
            }
            Ok(changed > 0)
        })?;
        Ok(changed)
    }

    /// Runs `f` in a write transaction, committed if it returns true.
    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<bool, redb::Error>,
    ) -> Result<(), RetainedError> {
        let run = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            if f(&txn)? {
                txn.commit()?;
            } else {
                txn.abort()?;
            }
            Ok(())
        };
        run().map_err(|e| self.error(e))
    }

    fn error(&self, source: impl Into<redb::Error>) -> RetainedError {
        RetainedError {
            path: self.path.to_path_buf(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_payload_per_topic_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Retained::at(dir.path());
            assert!(
                !dir.path().join(RETAINED_FILE).exists(),
                "opened on first use"
            );
            let t = store.table("release").unwrap();
            assert_eq!(t.get("a").unwrap(), None);
            let n = t
                .apply([
                    ("a", Update::from_payload(b"1")),
                    ("b", Update::from_payload(b"2")),
                    ("a", Update::from_payload(b"3")),
                ])
                .unwrap();
            assert_eq!(n, 3);
            // Re-delivered as stored: nothing to write.
            assert_eq!(t.apply([("a", Update::Put(b"3"))]).unwrap(), 0);
            assert_eq!(t.apply([("b", Update::from_payload(b""))]).unwrap(), 1);
            assert_eq!(t.apply([("b", Update::Remove)]).unwrap(), 0);
            // Another use of the same file does not see these.
            let other = store.table("manifests").unwrap();
            assert!(other.entries().unwrap().is_empty());
        }
        let t = Retained::at(dir.path()).table("release").unwrap();
        assert_eq!(t.entries().unwrap(), [("a".to_string(), b"3".to_vec())]);
    }

    #[test]
    fn an_unreadable_file_is_moved_aside_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RETAINED_FILE), vec![0xA5; 8192]).unwrap();
        let t = Retained::at(dir.path()).table("release").unwrap();
        assert_eq!(t.get("a").unwrap(), None);
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().contains("unreadable")
            })
            .count();
        assert_eq!(aside, 1);
    }
}
