//! Opening the spool at start-up, whatever state the SD card left it in.
//!
//! `seq` is never reused. Events are numbered within a *stream*: an id
//! (a ULID) that every event carries beside its `seq`. The spool stores the
//! stream and the next `seq` in the same commit as the events, and reserves
//! blocks of `seq` in a small file beside it (`spool.seq`: the reservation
//! and the stream), so that either file alone is enough to number on:
//!
//! - the spool holds its numbering: it is exact, numbering continues there
//!   (an unreadable reservation is rewritten);
//! - the spool is missing, emptied or unreadable (moved aside, never
//!   deleted: someone may want to recover it) but the reservation is
//!   there: numbering continues in the same stream past the reservation,
//!   and a `spool_missing` / `spool_corrupt` alarm says what happened. The
//!   jump in `seq` is a gap a consumer can see, which is the truth: whatever
//!   the lost file held is missing;
//! - neither can be trusted: a new stream starts at seq 1, its first event
//!   the alarm. A consumer keys `seq` by stream, so nothing is reused, and
//!   the new stream id is how it sees that numbering restarted.
//!
//! With neither file there at all, this is a new gateway: a new stream, no
//! alarm. The daemon never crash-loops on a bad file.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// The stream `seq` numbers in.
    pub stream: Arc<str>,
    pub next_seq: u64,
    /// Every committed `seq` is below this.
    pub reserved: u64,
    /// Set when spooled events were lost: the alarm to raise first.
    pub replaced: Option<Lost>,
}

/// Spooled events lost before this start, as an alarm says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// `spool_missing` or `spool_corrupt`.
    pub kind: &'static str,
    pub detail: String,
}

/// What `spool.seq` said.
enum Reservation {
    Absent,
    Unreadable(String),
    Held { upto: u64, stream: Option<String> },
}

/// Opens `data_dir/spool.redb`, replacing it if it is unreadable, and
/// decides where numbering goes on (see the module documentation).
pub fn open(data_dir: &Path) -> Result<Opened, StoreError> {
    let path = data_dir.join(SPOOL_FILE);
    let reservation = read_reservation(data_dir);
    let emptied = fs::metadata(&path).is_ok_and(|m| m.len() == 0);
    let (store, damage) = match Store::open(&path) {
        Ok(store) => (store, None),
        Err(StoreError::Corrupt { detail, .. }) => {
            let aside = move_aside(&path)?;
            let damage = format!(
                "The spool was unreadable ({detail}) and was moved to {}",
                aside.display()
            );
            (Store::open(&path)?, Some(damage))
        }
        Err(e) => return Err(e),
    };
    let fresh = damage.is_none() && !emptied;
    let held = match damage {
        None => store.numbering()?,
        Some(_) => None,
    };
    let lost = match damage {
        Some(damage) => ("spool_corrupt", damage),
        None => (
            "spool_missing",
            format!("The spool {} was missing or empty at start", path.display()),
        ),
    };
    let stored = held.clone();
    let (stream, next_seq, replaced) = match (held, reservation) {
        (Some((stream, next_seq)), reservation) => {
            if let Reservation::Unreadable(why) = reservation {
                warn!("{why}; numbering continues from the spool, which holds it exactly");
            }
            (stream.unwrap_or_else(new_stream), next_seq, None)
        }
        (None, Reservation::Held { upto, stream }) => {
            let stream = stream.unwrap_or_else(new_stream);
            let detail = format!(
                "{}; the events it held were not delivered. Numbering continues at seq {upto} \
                 (stream {stream}).",
                lost.1
            );
            (stream, upto.max(1), Some(detail))
        }
        (None, Reservation::Absent) if fresh => (new_stream(), 1, None),
        (None, reservation) => {
            let stream = new_stream();
            let reservation = match reservation {
                Reservation::Unreadable(why) => why,
                _ => format!("{RESERVATION_FILE} is missing"),
            };
            let detail = format!(
                "{}; the events it held were not delivered. {reservation}, so numbering \
                 starts a new stream {stream} at seq 1.",
                lost.1
            );
            (stream, 1, Some(detail))
        }
    };
    let replaced = replaced.map(|detail| {
        error!("{detail}");
        Lost {
            kind: lost.0,
            detail,
        }
    });
    // A commit (an fsync) only when the file does not hold this yet.
    if stored != Some((Some(stream.clone()), next_seq)) {
        store.set_numbering(&stream, next_seq)?;
    }
    let reserved = match reserve(data_dir, next_seq + RESERVE_BLOCK, &stream) {
        Ok(()) => next_seq + RESERVE_BLOCK,
        Err(e) => {
            warn!("cannot reserve seq numbers in {}: {e}", data_dir.display());
            next_seq
        }
    };
    Ok(Opened {
        store,
        stream: stream.into(),
        next_seq,
        reserved,
        replaced,
    })
}

fn new_stream() -> String {
    ulid::Ulid::new().to_string()
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

fn read_reservation(data_dir: &Path) -> Reservation {
    let path = data_dir.join(RESERVATION_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Reservation::Absent,
        Err(e) => {
            return Reservation::Unreadable(format!("{} cannot be read ({e})", path.display()))
        }
    };
    let mut words = text.split_whitespace();
    match (words.next().map(str::parse), words.next(), words.next()) {
        (Some(Ok(upto)), stream, None) => Reservation::Held {
            upto,
            stream: stream.map(str::to_string),
        },
        _ => Reservation::Unreadable(format!(
            "{} does not hold a reservation ({:?})",
            path.display(),
            text.chars().take(40).collect::<String>()
        )),
    }
}

/// Durably records that every `seq` below `upto` of `stream` may be in use.
pub fn reserve(data_dir: &Path, upto: u64, stream: &str) -> std::io::Result<()> {
    let path = data_dir.join(RESERVATION_FILE);
    let tmp = path.with_extension("seq.tmp");
    let mut file = File::create(&tmp)?;
    writeln!(file, "{upto} {stream}")?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens, commits `n` records (as the spool task would: reserving
    /// first) and closes; returns the stream and the next `seq`.
    fn run(dir: &Path, n: u64) -> (Arc<str>, u64) {
        let opened = open(dir).unwrap();
        let records: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8]).collect();
        opened
            .store
            .append(opened.next_seq, &records, &[0; 32])
            .unwrap();
        (opened.stream, opened.next_seq + n)
    }

    fn spool(dir: &Path) -> PathBuf {
        dir.join(SPOOL_FILE)
    }

    #[test]
    fn a_new_gateway_starts_a_stream_quietly_and_numbering_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path()).unwrap();
        assert_eq!((first.next_seq, first.replaced.is_none()), (1, true));
        drop(first);
        let (stream, next) = run(dir.path(), 3);
        let again = open(dir.path()).unwrap();
        assert_eq!((&again.stream, again.next_seq), (&stream, next));
        assert!(again.replaced.is_none());
    }

    #[test]
    fn a_deleted_or_emptied_spool_continues_past_the_reservation_in_its_stream() {
        for emptied in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (stream, next) = run(dir.path(), 50);
            if emptied {
                fs::write(spool(dir.path()), b"").unwrap();
            } else {
                fs::remove_file(spool(dir.path())).unwrap();
            }
            let after = open(dir.path()).unwrap();
            assert_eq!(after.stream, stream, "emptied {emptied}");
            assert!(after.next_seq >= next, "emptied {emptied}: no seq reused");
            let lost = after.replaced.unwrap();
            assert_eq!(lost.kind, "spool_missing");
            assert!(lost.detail.contains("missing or empty"), "{}", lost.detail);
        }
    }

    #[test]
    fn an_unreadable_spool_is_moved_aside_and_numbering_continues_past_the_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let (stream, next) = run(dir.path(), 2);
        fs::write(spool(dir.path()), b"not a spool at all").unwrap();
        let second = open(dir.path()).unwrap();
        assert_eq!(second.stream, stream);
        assert!(second.next_seq >= next);
        let lost = second.replaced.as_ref().unwrap();
        assert_eq!(lost.kind, "spool_corrupt");
        assert!(lost.detail.contains("unreadable"), "{}", lost.detail);
        let aside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("unreadable"))
            .collect();
        assert_eq!(aside.len(), 1, "the damaged file is kept for inspection");
        let next = second.next_seq;
        drop(second);

        // The replacement remembers where it started.
        let third = open(dir.path()).unwrap();
        assert_eq!((third.stream, third.next_seq), (stream, next));
    }

    #[test]
    fn an_unreadable_reservation_beside_a_good_spool_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (stream, next) = run(dir.path(), 5);
        fs::write(dir.path().join(RESERVATION_FILE), b"\xff garbage\n").unwrap();
        let after = open(dir.path()).unwrap();
        assert_eq!((&after.stream, after.next_seq), (&stream, next));
        assert!(after.replaced.is_none());
        drop(after);
        // Rewritten: it covers a lost spool again.
        fs::remove_file(spool(dir.path())).unwrap();
        let lost = open(dir.path()).unwrap();
        assert_eq!(lost.stream, stream);
        assert!(lost.next_seq >= next);
    }

    #[test]
    fn with_nothing_trustworthy_left_a_new_stream_starts_with_the_alarm() {
        for reservation in [Some(&b"not a number\n"[..]), Some(b""), None] {
            let dir = tempfile::tempdir().unwrap();
            let (stream, _) = run(dir.path(), 5);
            let file = dir.path().join(RESERVATION_FILE);
            match reservation {
                Some(text) => fs::write(&file, text).unwrap(),
                None => fs::remove_file(&file).unwrap(),
            }
            fs::write(spool(dir.path()), b"").unwrap();
            let after = open(dir.path()).unwrap();
            assert_ne!(after.stream, stream, "{reservation:?}: a new stream");
            assert_eq!(after.next_seq, 1);
            let lost = after.replaced.unwrap();
            assert_eq!(lost.kind, "spool_missing");
            assert!(lost.detail.contains("new stream"), "{}", lost.detail);
        }
    }
}
