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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn saved_passes_are_summed_up_once_and_forgotten() {
        let opened = SystemTime::now() - Duration::from_secs(3);
        let closed = opened + Duration::from_secs(1);
        let waiting = SavedPass::new(Ulid::new(), opened, Some((closed, ClosedBy::Quiet)), &[]);
        let open = SavedPass::new(Ulid::new(), closed, None, &["A".into(), "B".into()]);
        let Save { key, value } = save("dock-door-1", vec![waiting, open.clone()]);
        let saved = vec![
            (key.clone(), value.unwrap()),
            (format!("{PREFIX}dock-door-2"), vec![0xFF]),
            ("presence/x".into(), vec![1]),
        ];
        let (mut out, mut saves) = (Vec::new(), Vec::new());
        restore(&saved, &mut out, &mut saves);
        let passes: Vec<&Pass> = out
            .iter()
            .map(|d| match &d.body {
                Body::Pass(p) => p,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(passes.len(), 2);
        assert_eq!(passes[0].closed_by, ClosedBy::Quiet);
        assert_eq!(ms(passes[0].closed_at), ms(closed));
        assert_eq!(passes[1].closed_by, ClosedBy::Restart);
        assert_eq!(passes[1].pass_id, Ulid(open.pass_id));
        assert_eq!(passes[1].assets, ["A".into(), "B".into()] as [Arc<str>; 2]);
        assert_eq!(passes[1].counts.assets, 2);
        let forgotten: Vec<(&str, bool)> = saves
            .iter()
            .map(|s| (s.key.as_str(), s.value.is_none()))
            .collect();
        assert_eq!(
            forgotten,
            [("window/dock-door-1", true), ("window/dock-door-2", true)],
            "both forgotten, the unreadable one too"
        );
        assert_eq!(save("dock-door-1", Vec::new()).value, None);
    }
}
