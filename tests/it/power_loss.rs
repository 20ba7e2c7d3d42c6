//! Power loss, through redb's storage-backend seam (the idea of redb's own
//! crash-consistency test): the spool runs on an in-memory disk that, at a
//! random write, loses power. Everything not yet synced is lost, or, in the
//! harsher mode, a random subset of it reached the platter in any order.
//! Reopened, the spool must hold every event whose append returned `Ok`,
//! byte for byte, and must never hand out a `seq` again, and its custody log
//! head must be the one committed with its last event; and of the events
//! the spool task was told were acknowledged, only the undelivered may be
//! missing. The same disk can also fail reads while the spool runs.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use std::time::SystemTime;

use custodyd::config::SpoolConfig;
use custodyd::custody::{Alarm, Body, Draft, Save};
use custodyd::spool::{self, Opened, RecordV1, Store, StoreError, StoredRecord};
use custodyd::topic::Naming;
use redb::StorageBackend;

/// A deterministic xorshift generator: a failure is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Default)]
struct Disk {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last sync, in order.
    unsynced: Vec<(u64, Vec<u8>)>,
    /// Writes left before the power goes.
    writes_left: Option<u64>,
    dead: bool,
    /// Reads that fail (an I/O error, as from a failing SD card) before
    /// reads work again.
    failing_reads: u32,
}

impl Disk {
    /// What is on the platter after the power comes back.
    fn after_power_loss(&self, rng: &mut Rng, torn: bool) -> Disk {
        let mut platter = self.durable.clone();
        if torn {
            for (offset, data) in &self.unsynced {
                if rng.below(2) == 0 {
                    let end = *offset as usize + data.len();
                    if platter.len() < end {
                        platter.resize(end, 0);
                    }
                    platter[*offset as usize..end].copy_from_slice(data);
                }
            }
        }
        Disk {
            live: platter.clone(),
            durable: platter,
            ..Disk::default()
        }
    }
}

#[derive(Debug, Clone)]
struct PowerLossBackend(Arc<Mutex<Disk>>);

fn power_lost() -> io::Error {
    io::Error::other("power lost")
}

impl StorageBackend for PowerLossBackend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.0.lock().unwrap().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        if disk.failing_reads > 0 {
            disk.failing_reads -= 1;
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        let range = offset as usize..offset as usize + out.len();
        let data = disk
            .live
            .get(range)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"))?;
        out.copy_from_slice(data);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        if disk.dead {
            return Err(power_lost());
        }
        disk.live.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        if disk.dead {
            return Err(power_lost());
        }
        disk.durable = disk.live.clone();
        disk.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        match disk.writes_left {
            _ if disk.dead => return Err(power_lost()),
            Some(0) => {
                disk.dead = true;
                return Err(power_lost());
            }
            Some(n) => disk.writes_left = Some(n - 1),
            None => {}
        }
        let end = offset as usize + data.len();
        if disk.live.len() < end {
            disk.live.resize(end, 0);
        }
        disk.live[offset as usize..end].copy_from_slice(data);
        disk.unsynced.push((offset, data.to_vec()));
        Ok(())
    }
}

fn record(seq: u64) -> Vec<u8> {
    StoredRecord::V1(RecordV1 {
        topic: format!("itad/s/g/custody/door-{}", seq % 7),
        payload: format!(
            "{{\"seq\":{seq},\"pad\":\"{}\"}}",
            "x".repeat((seq % 300) as usize)
        )
        .into_bytes(),
        committed_at_ms: seq,
    })
    .encode()
}

fn open(disk: &Arc<Mutex<Disk>>) -> Result<Store, StoreError> {
    Store::open_with_backend(PowerLossBackend(disk.clone()), Path::new("power-loss"))
}

/// Runs `rounds` power cuts on one disk; returns how many appends were checked.
fn run(seed: u64, rounds: u32, torn: bool) -> usize {
    let mut rng = Rng(seed);
    let disk = Arc::new(Mutex::new(Disk::default()));
    // seq -> record of every append that returned Ok.
    let mut committed: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    // Every seq below this may have been deleted (deletions are not fsynced).
    let mut deleted_below = 0;
    let mut checked = 0;
    // The head appended with each batch, by the batch's last seq.
    let mut heads: BTreeMap<u64, custodyd::audit::Digest> = BTreeMap::new();
    // The state saved with every append that returned Ok, applied in order.
    let mut saved: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for round in 0..rounds {
        let store =
            open(&disk).unwrap_or_else(|e| panic!("seed {seed} round {round}: reopen failed: {e}"));
        let next_seq = store.next_seq().unwrap();
        let last = committed.keys().next_back().copied().unwrap_or(0);
        assert!(
            next_seq > last,
            "seed {seed} round {round}: seq {next_seq} would be reused (last committed {last})"
        );
        assert_eq!(
            store.head().unwrap(),
            heads.get(&(next_seq - 1)).copied(),
            "seed {seed} round {round}: the head is not the one committed with seq {}",
            next_seq - 1
        );
        let expected: Vec<(String, Vec<u8>)> = saved.clone().into_iter().collect();
        assert_eq!(
            store.saved().unwrap(),
            expected,
            "seed {seed} round {round}: the saved state is not the one committed"
        );
        for (seq, rec) in store.read_from(0, usize::MAX).unwrap() {
            assert_eq!(
                &rec.encode(),
                committed
                    .get(&seq)
                    .unwrap_or_else(|| panic!("seq {seq} was never committed"))
            );
        }
        let present: Vec<u64> = store
            .read_from(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        for seq in committed.range(deleted_below..).map(|(s, _)| *s) {
            assert!(
                present.contains(&seq),
                "seed {seed} round {round}: committed seq {seq} lost"
            );
            checked += 1;
        }

        disk.lock().unwrap().writes_left = Some(rng.below(120));
        let mut seq = next_seq;
        loop {
            if rng.below(4) == 0 && seq > 1 {
                let below = 1 + rng.below(seq);
                if store.delete_below(below).is_err() {
                    break;
                }
                deleted_below = deleted_below.max(below);
                continue;
            }
            let batch: Vec<Vec<u8>> = (seq..seq + 1 + rng.below(24)).map(record).collect();
            let last = StoredRecord::decode(batch.last().unwrap()).unwrap();
            let head = custodyd::audit::chain::hash(&last.v1().payload);
            heads.insert(seq + batch.len() as u64 - 1, head);
            let save = Save {
                key: format!("k{}", seq % 13),
                value: (rng.below(3) != 0).then(|| seq.to_le_bytes().to_vec()),
            };
            if store
                .append_saving(seq, &batch, std::slice::from_ref(&save), &head)
                .is_err()
            {
                break;
            }
            match save.value {
                Some(value) => saved.insert(save.key, value),
                None => saved.remove(&save.key),
            };
            for (i, rec) in batch.into_iter().enumerate() {
                committed.insert(seq + i as u64, rec);
            }
            seq = committed.keys().next_back().unwrap() + 1;
        }
        drop(store);
        let after = disk.lock().unwrap().after_power_loss(&mut rng, torn);
        *disk.lock().unwrap() = after;
    }
    checked
}

#[test]
fn every_acknowledged_append_survives_losing_what_was_not_synced() {
    for seed in [1u64, 2, 3] {
        assert!(run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 80, false) > 0);
    }
}

#[test]
fn every_acknowledged_append_survives_unsynced_writes_landing_in_any_subset() {
    for seed in [4u64, 5, 6] {
        assert!(run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 80, true) > 0);
    }
}

fn seqs_on(disk: &Arc<Mutex<Disk>>) -> Vec<(u64, Vec<u8>)> {
    let store = open(disk).unwrap();
    let records = store.read_from(0, usize::MAX).unwrap();
    records
        .into_iter()
        .map(|(s, r)| (s, r.v1().payload.clone()))
        .collect()
}

/// The spool task on the spool on `disk` (its reservation file in `dir`).
async fn spawn_on(
    disk: &Arc<Mutex<Disk>>,
    dir: &Path,
) -> (
    tokio::sync::mpsc::Sender<Draft>,
    spool::SpoolReader,
    tokio::task::JoinHandle<()>,
) {
    let store = open(disk).unwrap();
    let opened = Opened {
        stream: "S".into(),
        next_seq: store.next_seq().unwrap(),
        store,
        reserved: 0,
        replaced: None,
    };
    let naming = Naming {
        root: "custody".into(),
        site: "s".into(),
        gateway: "g".into(),
    };
    let config = SpoolConfig::default();
    let stage = custodyd::watchdog::Watchdog::default().stage("spool");
    spool::spawn(opened, dir.into(), naming, config, stage)
        .await
        .unwrap()
}

/// The spool task on `disk`, once `n` events (of [`event`]) are committed.
async fn spawn_with_events(
    disk: &Arc<Mutex<Disk>>,
    dir: &Path,
    n: u32,
) -> (
    tokio::sync::mpsc::Sender<Draft>,
    spool::SpoolReader,
    tokio::task::JoinHandle<()>,
) {
    let (drafts, reader, task) = spawn_on(disk, dir).await;
    let upto = reader.committed.borrow().next_seq + u64::from(n);
    for i in 0..n {
        drafts.send(event(i)).await.unwrap();
    }
    let mut committed = reader.committed.clone();
    committed.wait_for(|c| c.next_seq >= upto).await.unwrap();
    (drafts, reader, task)
}

fn event(n: u32) -> Draft {
    let alarm = Alarm {
        kind: "test",
        asset: None,
        detail: format!("event {n} {}", "x".repeat(300)),
    };
    Draft::new("dock-1".into(), SystemTime::now(), Body::Alarm(alarm))
}

/// A spool read that fails while the daemon runs (here an I/O error from
/// the card) used to be logged and retried for ever, the daemon looking
/// healthy while nothing behind the unreadable event was delivered; a
/// corrupt page found then stopped the process without a word on the wire.
/// Now the read hands out nothing (not the readable part), nothing is
/// deleted, a `spool_corrupt` alarm is committed and the process is marked
/// broken, which stops the watchdog and exits the daemon (tests/it/systemd.rs,
/// `a_task_that_panics_stops_the_watchdog_and_the_process`, shows what a
/// broken process does). After the restart every undelivered event is there,
/// `seq` gap-free up to the alarm.
#[tokio::test]
async fn a_read_failing_while_running_skips_nothing_is_alarmed_and_restarts() {
    let disk = Arc::new(Mutex::new(Disk::default()));
    let dir = tempfile::tempdir().unwrap();
    // A first run: 300 events committed, the first 100 delivered.
    let (drafts, reader, task) = spawn_with_events(&disk, dir.path(), 300).await;
    reader.ack(101).await;
    drop((drafts, reader));
    task.await.unwrap();

    // Restarted: its page cache is cold, so reading the backlog reads the card.
    let (drafts, reader, task) = spawn_on(&disk, dir.path()).await;
    assert_eq!(reader.start_seq, 101);
    disk.lock().unwrap().failing_reads = 1;
    assert!(
        reader.read(101, 512).await.is_empty(),
        "a failed read hands out nothing, not what it could read"
    );
    // Reads work again; the spool task answers in order, so the damage
    // has been dealt with by the time the next read is answered.
    let after = reader.read(301, 10).await;
    let alarm: Vec<serde_json::Value> = after
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    assert_eq!(alarm.len(), 1, "one alarm after the last event: {alarm:?}");
    assert_eq!(alarm[0]["kind"], "spool_corrupt", "{alarm:?}");
    assert!(
        custodyd::panics::is_broken(),
        "the process must restart: the watchdog stops"
    );

    // The process dies here, with only what was synced.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let cut = Arc::new(Mutex::new(
        disk.lock().unwrap().after_power_loss(&mut rng, false),
    ));
    drop((drafts, reader, task));
    let store = open(&cut).unwrap();
    let left = store.read_from(0, usize::MAX).unwrap();
    let seqs: Vec<u64> = left.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (101..=301).collect::<Vec<_>>(), "nothing skipped");
    let alarm: serde_json::Value = serde_json::from_slice(&left[200].1.v1().payload).unwrap();
    assert_eq!(alarm["kind"], "spool_corrupt", "{alarm}");
    assert!(
        alarm["detail"]
            .as_str()
            .unwrap()
            .contains("could not be read while running"),
        "{alarm}"
    );
}

/// The spool task deletes acknowledged events without an fsync: a power cut
/// may bring some back (re-sent, which at-least-once delivery allows) but
/// must not take an unacknowledged one; a shutdown makes the deletions stick.
#[tokio::test]
async fn a_power_cut_after_acknowledgements_loses_no_unacknowledged_event() {
    let disk = Arc::new(Mutex::new(Disk::default()));
    let dir = tempfile::tempdir().unwrap();
    let (drafts, reader, task) = spawn_with_events(&disk, dir.path(), 10).await;
    let mut committed = reader.committed.clone();
    let sent: Vec<(u64, Vec<u8>)> = reader
        .read(1, 100)
        .await
        .into_iter()
        .map(|r| (r.seq, r.payload))
        .collect();
    assert_eq!(sent.len(), 10);
    let full = committed.borrow().bytes;
    reader.ack(8).await;
    committed.wait_for(|c| c.bytes < full).await.unwrap();

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for torn in [false, true] {
        let cut = disk.lock().unwrap().after_power_loss(&mut rng, torn);
        let left = seqs_on(&Arc::new(Mutex::new(cut)));
        assert!(
            left.iter().all(|r| sent.contains(r)),
            "torn {torn}: only what was committed, byte for byte"
        );
        for unacked in &sent[7..] {
            assert!(
                left.contains(unacked),
                "torn {torn}: seq {} lost",
                unacked.0
            );
        }
    }

    drop((drafts, reader));
    task.await.unwrap();
    let after_shutdown = disk.lock().unwrap().after_power_loss(&mut rng, true);
    let left = seqs_on(&Arc::new(Mutex::new(after_shutdown)));
    assert_eq!(left, sent[7..], "deletions are durable after a shutdown");
}

/// What was in the field rides in the spool's commit with its `arrived`:
/// after a power cut (with or without torn writes) the presence is taken
/// up again, so a read of the asset makes no second `arrived`, and its
/// `departed` comes after the departure timeout, as one presence.
#[tokio::test]
async fn the_field_committed_with_its_arrived_survives_a_power_cut() {
    use custodyd::config::ReadMode;
    use custodyd::custody::Transition;
    use custodyd::decode::Source;
    use custodyd::identity::Asset;
    use custodyd::presence::{Clocks, Engine, Observation, ReaderInfo, Sides};
    use std::time::Duration;
    use tokio::time::Instant;

    let disk = Arc::new(Mutex::new(Disk::default()));
    let dir = tempfile::tempdir().unwrap();
    let (drafts, reader, _task) = spawn_on(&disk, dir.path()).await;
    let door = Arc::new(ReaderInfo {
        name: "door1-em".into(),
        location: "dock-door-1".into(),
        mode: ReadMode::Presence,
        rescan_window: Duration::from_secs(2),
        departure_timeout: Duration::from_secs(5),
        sides: Sides::default(),
    });
    let read = || Observation {
        reader: door.clone(),
        asset: Ok(Asset {
            id: "62E3086CED".into(),
            raw: "62E3086CED".into(),
            source: Source::Rfid,
        }),
        antenna: None,
        rssi_dbm: None,
        wall: SystemTime::now(),
    };
    let mut engine = Engine::new();
    let arrived = engine.observe(read(), Instant::now()).expect("arrived");
    drafts.send(arrived).await.unwrap();
    let mut committed = reader.committed.clone();
    committed.wait_for(|c| c.next_seq == 2).await.unwrap();

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for torn in [false, true] {
        let cut = Arc::new(Mutex::new(
            disk.lock().unwrap().after_power_loss(&mut rng, torn),
        ));
        let saved = open(&cut).unwrap().saved().unwrap();
        let mut engine = Engine::new();
        let clocks = Clocks::now();
        engine.restore(&saved, |_| Duration::from_secs(5), clocks);
        assert!(
            engine.observe(read(), clocks.now).is_none(),
            "torn {torn}: still in the field, no second arrived"
        );
        let mut out = Vec::new();
        engine.expire(
            clocks.now + Duration::from_secs(5),
            SystemTime::now(),
            &mut out,
        );
        let [departed] = &out[..] else {
            panic!("torn {torn}: one departed, got {out:?}");
        };
        let Body::Custody(c) = &departed.draft.body else {
            panic!("torn {torn}: {departed:?}");
        };
        assert_eq!((c.transition, c.reads), (Transition::Departed, 2));
        assert_eq!(departed.draft.saves.len(), 1, "forgotten with its departed");
    }
}
