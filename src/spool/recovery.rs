//! Opening the spool at start-up, whatever state the SD card left it in.
//!
//! A spool that cannot be read is moved aside (never deleted: someone may
//! want to recover it) and a new one is started, with an alarm, so the
//! daemon does not crash-loop on it. `seq` must still never be reused, so
//! the spool reserves blocks of `seq` in a small file beside it: every
//! committed `seq` is below the reservation, and a replacement spool starts
//! at it. The jump is a gap a consumer can see, which is the truth: whatever
//! the lost file held is missing.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{error, warn};

use super::store::{Store, StoreError};

pub const SPOOL_FILE: &str = "spool.redb";
const RESERVATION_FILE: &str = "spool.seq";
/// How many `seq` one reservation covers: one extra fsync per this many events.
pub const RESERVE_BLOCK: u64 = 1 << 16;

/// A spool ready for the spool task.
pub struct Opened {
    pub store: Store,
    pub next_seq: u64,
    /// Every committed `seq` is below this.
    pub reserved: u64,
    /// Set when the previous spool was unreadable: the alarm's sentence.
    pub replaced: Option<String>,
}

/// Opens `data_dir/spool.redb`, replacing it if it is unreadable.
pub fn open(data_dir: &Path) -> Result<Opened, StoreError> {
    let path = data_dir.join(SPOOL_FILE);
    let reserved = read_reservation(data_dir);
    match Store::open(&path) {
        Ok(store) => {
            let next_seq = store.next_seq()?;
            Ok(Opened {
                store,
                next_seq,
                reserved: reserved.unwrap_or(0).max(next_seq),
                replaced: None,
            })
        }
        Err(StoreError::Corrupt { detail, .. }) => {
            let aside = move_aside(&path)?;
            let next_seq = reserved.unwrap_or(1).max(1);
            error!(
                "spool {} is unreadable ({detail}); moved it to {} and started a new spool at seq {next_seq}",
                path.display(),
                aside.display()
            );
            let store = Store::open(&path)?;
            store.set_next_seq(next_seq)?;
            let replaced = format!(
                "The spool was unreadable ({detail}) and was moved to {}; events it held were not delivered; \
                 numbering continues at seq {next_seq}.",
                aside.display()
            );
            Ok(Opened {
                store,
                next_seq,
                reserved: next_seq,
                replaced: Some(replaced),
            })
        }
        Err(e) => Err(e),
    }
}

fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let aside = path.with_extension(format!("redb.unreadable-{stamp}"));
    fs::rename(path, &aside).map_err(|e| StoreError::Db {
        path: path.to_owned(),
        source: redb::Error::Io(e),
    })?;
    Ok(aside)
}

fn read_reservation(data_dir: &Path) -> Option<u64> {
    let path = data_dir.join(RESERVATION_FILE);
    let text = fs::read_to_string(&path).ok()?;
    let parsed = text.trim().parse().ok();
    if parsed.is_none() {
        warn!("{} does not hold a number; ignoring it", path.display());
    }
    parsed
}

/// Durably records that every `seq` below `upto` may be in use.
pub fn reserve(data_dir: &Path, upto: u64) -> std::io::Result<()> {
    let path = data_dir.join(RESERVATION_FILE);
    let tmp = path.with_extension("seq.tmp");
    let mut file = File::create(&tmp)?;
    writeln!(file, "{upto}")?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_spool_is_moved_aside_and_numbering_continues_past_the_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path()).unwrap();
        assert_eq!((first.next_seq, first.replaced.is_none()), (1, true));
        first
            .store
            .append(1, &[vec![0], vec![1]], &[1; 32])
            .unwrap();
        reserve(dir.path(), 1 + RESERVE_BLOCK).unwrap();
        drop(first);

        fs::write(dir.path().join(SPOOL_FILE), b"not a spool at all").unwrap();
        let second = open(dir.path()).unwrap();
        assert_eq!(second.next_seq, 1 + RESERVE_BLOCK);
        assert!(second.replaced.as_deref().unwrap().contains("unreadable"));
        let aside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("unreadable"))
            .collect();
        assert_eq!(aside.len(), 1, "the damaged file is kept for inspection");
        drop(second);

        // The replacement remembers where it started.
        assert_eq!(open(dir.path()).unwrap().next_seq, 1 + RESERVE_BLOCK);
    }
}
