//! What the gateway says about portals: which way an asset crossed (the
//! `moved` fields of `custodyd.custody.v1`) and the summary of a read window
//! (`custodyd.pass.v1`).

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use ulid::Ulid;

use super::{rfc3339, Common, Reconciliation};

pub const PASS_SCHEMA: &str = "custodyd.pass.v1";

/// Which way through a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From `outside_zone` to `inside_zone`.
    Inbound,
    /// From `inside_zone` to `outside_zone`.
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// How the direction of a `moved` was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confidence {
    /// The beams and the antennas agree.
    High,
    /// Both sides' antennas saw the asset but not in a clear order; the
    /// beams did.
    Medium,
    /// The antennas alone: the order of the sides' first reads and RSSI
    /// peaks.
    Low,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }
}

/// The portal fields of a `moved` custody event.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    pub from_zone: Arc<str>,
    pub to_zone: Arc<str>,
    pub confidence: Confidence,
    /// The read window the asset passed in, if the portal has windows.
    pub pass_id: Option<Ulid>,
}

/// Which way the assets of a pass went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassDirection {
    All(Direction),
    /// Some one way, some the other.
    Mixed,
}

impl PassDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            PassDirection::All(direction) => direction.as_str(),
            PassDirection::Mixed => "mixed",
        }
    }
}

/// Why a read window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// `quiet_after` passed without a new tag or trigger.
    Quiet,
    /// It had been open for `max_window`.
    MaxWindow,
    /// The daemon stopped.
    Shutdown,
    /// The daemon was gone (killed, power cut) while the window was open,
    /// and found it open in the spool's saved state at its next start.
    Restart,
}

impl ClosedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedBy::Quiet => "quiet",
            ClosedBy::MaxWindow => "max_window",
            ClosedBy::Shutdown => "shutdown",
            ClosedBy::Restart => "restart",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ClosedBy::Quiet,
            ClosedBy::MaxWindow,
            ClosedBy::Shutdown,
            ClosedBy::Restart,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// What assets' evidence at a portal came to, one count per asset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// A direction: a `moved` event.
    pub moved: u64,
    /// Both sides at once, one side only, or contradicting orders.
    pub ambiguous: u64,
    /// Parked near the door: seen by its sides for `static_after` or longer.
    #[serde(rename = "static")]
    pub static_tags: u64,
    /// No read counted: all below `rssi_floor`, or no side assigned.
    pub no_evidence: u64,
}

/// What the assets of a pass came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PassCounts {
    /// Distinct assets read in the window.
    pub assets: u64,
    /// Raw reads of those assets while present.
    pub reads: u64,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// The summary of one read window (`custodyd.pass.v1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    pub pass_id: Ulid,
    /// The beams' order when they gave one, else the direction of the
    /// pass's `moved` events; `None` when neither says.
    pub direction: Option<PassDirection>,
    /// The zones of an inbound or outbound pass.
    pub from_zone: Option<Arc<str>>,
    pub to_zone: Option<Arc<str>>,
    pub opened_at: SystemTime,
    pub closed_at: SystemTime,
    pub closed_by: ClosedBy,
    /// Canonical ids of the assets read, in the order they came.
    pub assets: Vec<Arc<str>>,
    pub counts: PassCounts,
    /// Reconciled against the door's open pickup manifest, if one is open.
    pub manifest: Option<Reconciliation>,
}

#[derive(Serialize)]
struct PassJson<'a> {
    schema: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    pass_id: String,
    direction: Option<&'static str>,
    from_zone: Option<&'a str>,
    to_zone: Option<&'a str>,
    opened_at: String,
    closed_at: String,
    closed_by: &'static str,
    assets: Vec<&'a str>,
    counts: PassCounts,
    manifest: Option<&'a Reconciliation>,
}

impl Pass {
    pub(super) fn to_json(&self, common: Common<'_>) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&PassJson {
            schema: PASS_SCHEMA,
            common,
            pass_id: self.pass_id.to_string(),
            direction: self.direction.map(PassDirection::as_str),
            from_zone: self.from_zone.as_deref(),
            to_zone: self.to_zone.as_deref(),
            opened_at: rfc3339(self.opened_at),
            closed_at: rfc3339(self.closed_at),
            closed_by: self.closed_by.as_str(),
            assets: self.assets.iter().map(|a| &**a).collect(),
            counts: self.counts,
            manifest: self.manifest.as_ref(),
        })
    }
}
