//! The state table: what the front saved with its events ([`Save`]), kept
//! in the spool's file so that it is written in the events' own commit.
//!
//! It holds what is in the field and in open read windows now, not
//! history, so it stays small and is not counted against
//! `spool.max_bytes`.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError, WriteTransaction};

use super::{Store, StoreError};
use crate::custody::{Save, Saved};

const SAVED: TableDefinition<&str, &[u8]> = TableDefinition::new("saved");

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
    /// Every saved entry, in key order. A spool written before the table
    /// existed has none.
    pub fn saved(&self) -> Result<Saved, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = match txn.open_table(SAVED) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Saved::new()),
            Err(e) => return Err(self.fail(e)),
        };
        let mut out = Saved::new();
        for entry in table.iter().map_err(|e| self.fail(e))? {
            let (key, value) = entry.map_err(|e| self.fail(e))?;
            out.push((key.value().to_owned(), value.value().to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(key: &str, value: Option<&[u8]>) -> Save {
        Save {
            key: key.into(),
            value: value.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn saves_land_with_the_events_and_outlive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        let store = Store::open(&path).unwrap();
        assert!(store.saved().unwrap().is_empty());
        store
            .append_saving(
                1,
                &[vec![1]],
                &[save("b", Some(b"1")), save("a", Some(b"2"))],
                &[0; 32],
            )
            .unwrap();
        store
            .append_saving(
                2,
                &[vec![2]],
                &[save("b", None), save("a", Some(b"3"))],
                &[0; 32],
            )
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.saved().unwrap(), [("a".to_string(), b"3".to_vec())]);
    }
}
