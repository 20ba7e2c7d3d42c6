use super::*;
use redb::TableHandle;

use crate::spool::record::RecordV1;

const HEAD_3: Digest = [3; 32];

fn rec(n: u8) -> Vec<u8> {
    StoredRecord::V1(RecordV1 {
        topic: format!("t/{n}"),
        payload: vec![n],
        committed_at_ms: n as u64,
    })
    .encode()
}

#[test]
fn seq_bytes_and_head_survive_reopen_even_when_everything_was_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.redb");
    let store = Store::open(&path).unwrap();
    assert_eq!((store.next_seq().unwrap(), store.bytes().unwrap()), (1, 0));
    assert_eq!(store.head().unwrap(), None);
    let bytes = store.append(1, &[rec(1), rec(2), rec(3)], &HEAD_3).unwrap();
    assert_eq!(bytes, 3 * record_bytes(&rec(1)));
    assert_eq!(store.delete_below(3).unwrap(), record_bytes(&rec(3)));
    assert_eq!(store.delete_below(4).unwrap(), 0);
    store.sync().unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!((store.next_seq().unwrap(), store.bytes().unwrap()), (4, 0));
    assert_eq!(store.head().unwrap(), Some(HEAD_3), "the chain goes on");
    assert!(store.read_from(0, 10).unwrap().is_empty());
}

#[test]
fn reads_in_seq_order_from_a_cursor_and_deletes_below_a_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("spool.redb")).unwrap();
    store
        .append(1, &[rec(1), rec(2), rec(3), rec(4)], &HEAD_3)
        .unwrap();
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

/// Dead letters were not counted in `spool.max_bytes`, so events too
/// large to send could fill the disk under any bound.
#[test]
fn a_dead_letter_leaves_the_events_but_is_kept_and_still_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("spool.redb")).unwrap();
    store
        .append(1, &[rec(1), rec(2), rec(3)], &[0; 32])
        .unwrap();
    assert!(store.set_aside(2).unwrap());
    assert!(!store.set_aside(2).unwrap(), "moved once");
    let seqs: Vec<u64> = store
        .read_from(0, 10)
        .unwrap()
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(seqs, [1, 3]);
    // Acknowledging past it does not delete it.
    store.delete_below(4).unwrap();
    let dead = store.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].0, dead[0].1.v1().topic.as_str()), (2, "t/2"));
    let stats = store.stats().unwrap();
    let dead = record_bytes(&rec(2));
    assert_eq!((stats.depth, stats.dead_letters, stats.bytes), (0, 1, dead));
}

#[test]
fn dropping_dead_letters_returns_them_and_frees_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.redb");
    let store = Store::open(&path).unwrap();
    store
        .append(1, &[rec(1), rec(2), rec(3), rec(4)], &[0; 32])
        .unwrap();
    for seq in [1, 2, 3] {
        store.set_aside(seq).unwrap();
    }
    let dropped = store.drop_dead_letters(Some(&[2, 9])).unwrap();
    assert_eq!(dropped.iter().map(|d| d.0).collect::<Vec<_>>(), [2]);
    assert_eq!(dropped[0].1.v1().topic, "t/2");
    let dropped = store.drop_dead_letters(None).unwrap();
    assert_eq!(dropped.iter().map(|d| d.0).collect::<Vec<_>>(), [1, 3]);
    drop(store);
    let store = Store::open(&path).unwrap();
    let stats = store.stats().unwrap();
    let left = record_bytes(&rec(4));
    assert_eq!((stats.depth, stats.dead_letters, stats.bytes), (1, 0, left));
}

#[test]
fn an_undecodable_record_is_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("spool.redb")).unwrap();
    store
        .append(1, &[rec(1), vec![0xFF, 0xFF], rec(3)], &HEAD_3)
        .unwrap();
    let got: Vec<u64> = store
        .read_from(1, 10)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(got, [1, 3]);
}

#[test]
fn a_file_that_is_not_a_spool_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.redb");
    std::fs::write(&path, vec![0x5A; 64 * 1024]).unwrap();
    assert!(
        matches!(Store::open(&path), Err(StoreError::Corrupt { .. })),
        "garbage file"
    );

    let store = Store::open(&path.with_extension("ok")).unwrap();
    store.append(1, &[rec(1), rec(2)], &HEAD_3).unwrap();
    drop(store);
    // Damage the middle of a real spool.
    let mut bytes = std::fs::read(path.with_extension("ok")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 4096].iter_mut().for_each(|b| *b ^= 0xA5);
    std::fs::write(&path, bytes).unwrap();
    match Store::open(&path) {
        Err(StoreError::Corrupt { .. }) => {}
        Ok(store) => assert!(
            store.read_from(0, 10).is_ok(),
            "opened: the damage hit free space"
        ),
        Err(e) => panic!("damage must read as corruption, got {e}"),
    }
}

fn event(n: u64, payload_len: usize) -> Vec<u8> {
    StoredRecord::V1(RecordV1 {
        topic: "custody/site/dock-1/arrived".into(),
        payload: vec![n as u8; payload_len],
        committed_at_ms: n,
    })
    .encode()
}

fn save(key: &str, value: Option<&[u8]>) -> Save {
    Save {
        key: key.into(),
        value: value.map(<[u8]>::to_vec),
    }
}

fn head_of(record: &[u8]) -> Digest {
    chain::hash(&StoredRecord::decode(record).unwrap().v1().payload)
}

/// A crash leaves records after the checkpoint: the next `seq`, the
/// bytes, the head and the saved state follow from them.
#[test]
fn where_the_spool_stands_follows_from_the_records_after_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.redb");
    let store = Store::open(&path).unwrap();
    store.set_numbering("S", 1).unwrap();
    let (one, two) = (event(1, 40), event(2, 50));
    store
        .append_saving(
            1,
            std::slice::from_ref(&one),
            &[save("a", Some(b"1"))],
            &head_of(&one),
        )
        .unwrap();
    let bytes = store
        .append_saving(
            2,
            std::slice::from_ref(&two),
            &[save("a", None), save("b", Some(b"2"))],
            &head_of(&two),
        )
        .unwrap();
    assert!(
        bytes > record_bytes(&one) + record_bytes(&two),
        "saves count"
    );
    let expect = |store: &Store, next_seq, bytes| {
        assert_eq!(
            store.numbering().unwrap(),
            Some((Some("S".into()), next_seq))
        );
        assert_eq!(store.bytes().unwrap(), bytes);
        assert_eq!(store.head().unwrap(), Some(head_of(&two)));
        assert_eq!(store.saved().unwrap(), [("b".to_string(), b"2".to_vec())]);
    };
    expect(&store, 3, bytes);
    drop(store);

    let store = Store::open(&path).unwrap();
    expect(&store, 3, bytes);
    // Deleting writes a checkpoint: the saves are folded, the head kept.
    let left = store.delete_below(2).unwrap();
    assert!(left < bytes);
    expect(&store, 3, left);
    store.sync().unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    expect(&store, 3, left);
    assert_eq!(
        store.saved_table().unwrap(),
        [("b".to_string(), b"2".to_vec())]
    );
}

/// Without deletions (the broker away), appends write a checkpoint now
/// and then, so that opening reads a bounded number of records.
#[test]
fn appends_fold_their_saves_into_a_checkpoint_every_so_many_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("spool.redb")).unwrap();
    for n in 1..CHECKPOINT_RECORDS {
        let key = format!("k{n}");
        store
            .append_saving(n, &[event(n, 10)], &[save(&key, Some(b"v"))], &[0; 32])
            .unwrap();
    }
    assert!(store.saved_table().unwrap().is_empty());
    let n = CHECKPOINT_RECORDS;
    store
        .append_saving(n, &[event(n, 10)], &[save("last", Some(b"v"))], &[0; 32])
        .unwrap();
    assert_eq!(
        store.saved_table().unwrap().len() as u64,
        CHECKPOINT_RECORDS
    );
    assert_eq!(store.tally().since, 0);
}

/// A file of the format before checkpoints keeps its numbering, byte
/// count, head and saved state, and loses its old tables.
#[test]
fn a_spool_written_before_checkpoints_is_migrated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: TableDefinition<&str, u64> = TableDefinition::new("meta");
            let mut meta = txn.open_table(meta).unwrap();
            meta.insert("next_seq", 8).unwrap();
            // Wrong: counted afresh.
            meta.insert("bytes", 1234).unwrap();
            let stream: TableDefinition<&str, &str> = TableDefinition::new("stream");
            txn.open_table(stream).unwrap().insert("id", "OLD").unwrap();
            let chain: TableDefinition<&str, &[u8]> = TableDefinition::new("chain");
            txn.open_table(chain)
                .unwrap()
                .insert("head", [7u8; 32].as_slice())
                .unwrap();
            let saved: TableDefinition<&str, &[u8]> = TableDefinition::new("saved");
            txn.open_table(saved)
                .unwrap()
                .insert("presence/x", b"p".as_slice())
                .unwrap();
            txn.open_table(EVENTS)
                .unwrap()
                .insert(7, event(7, 10).as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.numbering().unwrap(), Some((Some("OLD".into()), 8)));
    assert_eq!(store.bytes().unwrap(), record_bytes(&event(7, 10)));
    assert_eq!(store.head().unwrap(), Some([7; 32]));
    assert_eq!(
        store.saved().unwrap(),
        [("presence/x".to_string(), b"p".to_vec())]
    );
    assert_eq!(store.read_from(0, 10).unwrap()[0].0, 7);
    let txn = store.db.begin_read().unwrap();
    let mut tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().into())
        .collect();
    tables.sort();
    assert_eq!(tables, ["checkpoint", "dead_letters", "events", "saved"]);
    drop(txn);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.numbering().unwrap(), Some((Some("OLD".into()), 8)));
    assert_eq!(store.head().unwrap(), Some([7; 32]));
}

/// Storage that counts the bytes written: the pages a commit writes are
/// the spool's cost on an SD card, and the file format decides them.
#[derive(Debug, Clone, Default)]
struct Counting {
    data: Arc<Mutex<Vec<u8>>>,
    written: Arc<std::sync::atomic::AtomicU64>,
}

impl Counting {
    fn written(&self) -> u64 {
        self.written.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl StorageBackend for Counting {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.data.lock().unwrap().len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let data = self.data.lock().unwrap();
        out.copy_from_slice(&data[offset as usize..offset as usize + out.len()]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.data.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), std::io::Error> {
        let mut data = self.data.lock().unwrap();
        let end = offset as usize + bytes.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(bytes);
        self.written
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// An append is the commit every event waits for. With 500 assets in the
/// field and each event saving one asset's presence, it writes the events
/// table's leaf and branch and redb's own pages (the header, the table of
/// tables, the allocator's state): the saves ride in the record. Writing
/// the byte count, the head and the presence entry in tables of their own
/// took it to ten pages.
#[test]
fn an_append_writes_the_events_table_and_no_other() {
    let disk = Counting::default();
    let store = Store::open_with_backend(disk.clone(), Path::new("counting")).unwrap();
    let presence = |n: u64| {
        save(
            &format!("presence/dock-1/ASSET-{n:08}"),
            Some(&[n as u8; 120]),
        )
    };
    for n in 1..=500 {
        store
            .append_saving(n, &[event(n, 420)], &[presence(n)], &[0; 32])
            .unwrap();
        store.delete_below(n).unwrap();
    }
    const COMMITS: u64 = 100;
    let before = disk.written();
    for n in 501..501 + COMMITS {
        store
            .append_saving(n, &[event(n, 420)], &[presence(n - 500)], &[0; 32])
            .unwrap();
    }
    let pages = (disk.written() - before) as f64 / 4096.0 / COMMITS as f64;
    eprintln!("pages written per append: {pages:.2}");
    assert!(pages < 7.0, "{pages:.2} pages per append");
}
