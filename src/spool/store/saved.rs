//! The state table: what the front saved with its events ([`Save`]), as
//! of the spool's checkpoint. The saves of the records after it follow
//! those records (see [`super`]).
//!
//! It holds what is in the field and in open read windows now, not
//! history, so it stays small and is not counted against
//! `spool.max_bytes`.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{Store, StoreError};
use crate::custody::{Save, Saved};

const SAVED: TableDefinition<&str, &[u8]> = TableDefinition::new("saved");

pub(super) fn create(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(SAVED)?;
    Ok(())
}

/// Applies `saves` in order inside the caller's transaction.
pub(super) fn apply(txn: &WriteTransaction, saves: &[Save]) -> Result<(), redb::Error> {
    if saves.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(SAVED)?;
    for save in saves {
        match &save.value {
            Some(value) => table.insert(save.key.as_str(), value.as_slice())?,
            None => table.remove(save.key.as_str())?,
        };
    }
    Ok(())
}

impl Store {
    /// The `saved` table's entries, in key order.
    pub(super) fn saved_table(&self) -> Result<Saved, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(SAVED).map_err(|e| self.fail(e))?;
        let mut out = Saved::new();
        for entry in table.iter().map_err(|e| self.fail(e))? {
            let (key, value) = entry.map_err(|e| self.fail(e))?;
            out.push((key.value().to_owned(), value.value().to_vec()));
        }
        Ok(out)
    }
}
