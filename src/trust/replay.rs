//! Command ids already executed, remembered durably (table `command_ids` of
//! the retained store) until their `not_after`: after that the command is
//! refused as expired anyway, so the id can be forgotten.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::error;

use super::refusal::{Reason, Refusal};
use crate::retained::{Retained, RetainedError, Table, Update};

const TABLE: &str = "command_ids";
/// Forgetting expired ids costs a scan of the table: at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The dispatcher's memory of command ids.
pub struct Seen {
    table: Table,
    pruned: Option<SystemTime>,
}

impl Seen {
    pub fn open(retained: &Retained) -> Result<Self, RetainedError> {
        Ok(Seen {
            table: retained.table(TABLE)?,
            pruned: None,
        })
    }

    /// Refuses `id` if it was seen before; otherwise remembers it until
    /// `not_after`, durably before the command may run. A store that
    /// cannot be read or written refuses too (fail secure).
    pub fn first_time(
        &mut self,
        id: &str,
        not_after: SystemTime,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        self.prune(now);
        let failed = |e: RetainedError| {
            error!("command ids: {e}");
            Refusal::new(
                Reason::Replayed,
                format!("id {id:?} could not be checked against those seen: {e}"),
            )
        };
        if self.table.get(id).map_err(failed)?.is_some() {
            return Err(Refusal::new(
                Reason::Replayed,
                format!("id {id:?} was executed before"),
            ));
        }
        let until = millis(not_after).to_be_bytes();
        self.table
            .apply([(id, Update::Put(&until))])
            .map_err(failed)?;
        Ok(())
    }

    fn prune(&mut self, now: SystemTime) {
        if self
            .pruned
            .is_some_and(|at| now.duration_since(at).unwrap_or_default() < PRUNE_EVERY)
        {
            return;
        }
        self.pruned = Some(now);
        let entries = match self.table.entries() {
            Ok(entries) => entries,
            Err(e) => return error!("command ids: {e}"),
        };
        let now = millis(now);
        let expired: Vec<String> = entries
            .into_iter()
            .filter(|(_, until)| {
                <[u8; 8]>::try_from(until.as_slice()).map_or(true, |b| u64::from_be_bytes(b) < now)
            })
            .map(|(id, _)| id)
            .collect();
        if let Err(e) = self
            .table
            .apply(expired.iter().map(|id| (id.as_str(), Update::Remove)))
        {
            error!("command ids: {e}");
        }
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_runs_once_across_restarts_and_is_forgotten_after_not_after() {
        let dir = tempfile::tempdir().unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let until = now + Duration::from_secs(300);
        {
            let mut seen = Seen::open(&Retained::at(dir.path())).unwrap();
            seen.first_time("a", until, now).unwrap();
            let again = seen.first_time("a", until, now).unwrap_err();
            assert_eq!(again.reason, Reason::Replayed);
        }
        let mut seen = Seen::open(&Retained::at(dir.path())).unwrap();
        assert!(seen.first_time("a", until, now).is_err(), "durable");
        let later = until + Duration::from_secs(1);
        seen.first_time("b", later + Duration::from_secs(60), later)
            .unwrap();
        assert_eq!(seen.table.get("a").unwrap(), None, "pruned once expired");
    }
}
