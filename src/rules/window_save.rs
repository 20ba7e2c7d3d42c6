//! Read windows as saved with the events of their passes (see
//! [`crate::custody::Save`]): a `kill -9` or a power cut while a window is
//! open, or while a closed one waits for its members' departures, would
//! otherwise lose its pass summary. At the next start every saved pass is
//! summed up once, with what the spool knew of it: an open one with
//! `closed_by: "restart"`, a closed one as it closed. Its members' moves
//! are not decided (their evidence of the window is gone), so the counts
//! say only how many assets it read.
//!
//! One entry per portal holds all its passes; it is saved when the
//! windows changed, with the next event the rules pass on, and removed
//! with the summary of the last pass.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use ulid::Ulid;

use crate::custody::save::{ms, time};
use crate::custody::{saved_entries, Body, ClosedBy, Draft, Pass, PassCounts, Save, Saved};

/// The rules stage's keys for read windows in the saved state.
const PREFIX: &str = "window/";

/// A pass as the next start needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPass {
    pub pass_id: u128,
    pub opened_at_ms: u64,
    /// When and why it closed, if it had.
    pub closed: Option<(u64, String)>,
    pub assets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Stored {
    V1(Vec<SavedPass>),
}

impl SavedPass {
    pub fn new(
        pass_id: Ulid,
        opened_at: SystemTime,
        closed: Option<(SystemTime, ClosedBy)>,
        assets: &[Arc<str>],
    ) -> Self {
        SavedPass {
            pass_id: pass_id.0,
            opened_at_ms: ms(opened_at),
            closed: closed.map(|(at, by)| (ms(at), by.as_str().to_owned())),
            assets: assets.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The summary of a pass the daemon did not live to finish.
    fn summary(self, location: &Arc<str>, restarted: SystemTime) -> Draft {
        let (closed_at, closed_by) = self
            .closed
            .and_then(|(at, by)| Some((time(at), ClosedBy::parse(&by)?)))
            .unwrap_or((restarted, ClosedBy::Restart));
        let assets: Vec<Arc<str>> = self.assets.iter().map(|a| a.as_str().into()).collect();
        let pass = Pass {
            pass_id: Ulid(self.pass_id),
            direction: None,
            from_zone: None,
            to_zone: None,
            opened_at: time(self.opened_at_ms),
            closed_at,
            closed_by,
            counts: PassCounts {
                assets: assets.len() as u64,
                ..PassCounts::default()
            },
            assets,
            manifest: None,
        };
        Draft::new(location.clone(), closed_at, Body::Pass(pass))
    }
}

/// The save of a portal's passes (`None` when it has none left).
pub fn save(location: &str, passes: Vec<SavedPass>) -> Save {
    let value =
        (!passes.is_empty()).then(|| postcard::to_stdvec(&Stored::V1(passes)).unwrap_or_default());
    Save {
        key: format!("{PREFIX}{location}"),
        value,
    }
}

/// The summaries of every pass in `saved`, and the saves that forget them.
pub fn restore(saved: &Saved, out: &mut Vec<Draft>, saves: &mut Vec<Save>) {
    let restarted = SystemTime::now();
    for (location, bytes) in saved_entries(saved, PREFIX) {
        let location: Arc<str> = location.into();
        match postcard::from_bytes(bytes) {
            Ok(Stored::V1(passes)) => {
                info!(%location, passes = passes.len(), "read windows left open by the last run summed up");
                out.extend(passes.into_iter().map(|p| p.summary(&location, restarted)));
            }
            Err(e) => warn!(%location, "saved read windows ignored: {e}"),
        }
        saves.push(save(&location, Vec::new()));
    }
}
