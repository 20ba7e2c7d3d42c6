//! Files written before the checkpoint: their next `seq` and byte count in
//! a `meta` table, the stream in `stream` and the custody log's head in
//! `chain`, each written with every append. Opening such a file moves the
//! three into the checkpoint, in the commit that opening makes, so a file
//! is in one format or the other, never half-way.
//!
//! Its records carry no saves and its `meta` numbered every record: the
//! checkpoint is exact, with no records after it. The byte count is
//! counted afresh rather than taken over, so that it is exact also for a
//! file that went through a version before this one and back.
//!
//! A version older than this one, given a migrated file, finds no `meta`
//! and so no numbering in it: it numbers on from the reservation beside
//! the spool (see [`crate::spool::recovery`]), with a `spool_missing`
//! alarm, and delivers the records still in it. `seq` is not reused.

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::{record_bytes, At, Checkpoint, DEAD_LETTERS, EVENTS};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_SEQ: &str = "next_seq";
const STREAM: TableDefinition<&str, &str> = TableDefinition::new("stream");
const STREAM_KEY: &str = "id";
const CHAIN: TableDefinition<&str, &[u8]> = TableDefinition::new("chain");
const HEAD: &str = "head";

/// Deletes the tables of the old format, if the file has them, and returns
/// the checkpoint they held (`None`: not an old file, or one that never
/// numbered an event).
pub(super) fn take_old_tables(txn: &WriteTransaction) -> Result<Option<Checkpoint>, redb::Error> {
    let old = txn
        .list_tables()?
        .any(|t| [META.name(), STREAM.name(), CHAIN.name()].contains(&t.name()));
    if !old {
        return Ok(None);
    }
    let next_seq = txn.open_table(META)?.get(NEXT_SEQ)?.map(|g| g.value());
    let mut bytes = 0;
    for table in [EVENTS, DEAD_LETTERS] {
        for entry in txn.open_table(table)?.iter()? {
            bytes += record_bytes(entry?.1.value());
        }
    }
    let stream = txn
        .open_table(STREAM)?
        .get(STREAM_KEY)?
        .map(|g| g.value().to_owned());
    let head = txn
        .open_table(CHAIN)?
        .get(HEAD)?
        .and_then(|g| g.value().try_into().ok());
    txn.delete_table(META)?;
    txn.delete_table(STREAM)?;
    txn.delete_table(CHAIN)?;
    Ok(next_seq.map(|next_seq| {
        Checkpoint::V1(At {
            next_seq,
            bytes,
            head,
            stream,
        })
    }))
}
