use super::*;
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
