//! Custody and alarm events: what the gateway promises the central system
//! (`custodyd.custody.v1`, `custodyd.alarm.v1` in the wire contract).
//!
//! An event is built as a [`Draft`] by the stage that decides it happened, and
//! rendered to its final JSON only when the spool commits it, because `seq` is
//! assigned at commit. The rendered bytes are what is stored and re-delivered,
//! so every re-delivery of an event is byte-identical.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use ulid::Ulid;

use crate::identity::Asset;
use crate::topic::Naming;

pub mod context;
mod manifest;
mod portal;
mod receipt;

pub use context::{Change, Context, ContextChange, CONTEXT_SCHEMA};
pub use manifest::Reconciliation;

mod release;
pub mod save;

pub use crate::timestamp::{rfc3339, writable};
pub use portal::{
    ClosedBy, Confidence, Crossing, Direction, Outcomes, Pass, PassCounts, PassDirection,
    PASS_SCHEMA,
};
pub use receipt::Receipt;
pub use release::{Basis, Release};
pub use save::{entries as saved_entries, Save, Saved};

pub const CUSTODY_SCHEMA: &str = "custodyd.custody.v1";
pub const ALARM_SCHEMA: &str = "custodyd.alarm.v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Arrived,
    Departed,
    Scanned,
    /// Crossed a portal from one zone to the other.
    Moved,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Arrived => "arrived",
            Transition::Departed => "departed",
            Transition::Scanned => "scanned",
            Transition::Moved => "moved",
        }
    }
}

/// An asset observed at a location.
#[derive(Debug, Clone, PartialEq)]
pub struct Custody {
    pub transition: Transition,
    pub asset: Asset,
    pub reader: Arc<str>,
    /// Raw reads folded into this event.
    pub reads: u64,
    pub first_seen: SystemTime,
    pub last_seen: SystemTime,
    /// Antennas that saw the tag, ascending.
    pub antennas: Vec<u8>,
    pub rssi_max: Option<f32>,
    /// The station context a scan was made in; empty elsewhere.
    pub context: Context,
    /// `moved` only: the zones and how sure the direction is.
    pub crossing: Option<Crossing>,
}

/// Something a person should look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub kind: &'static str,
    pub asset: Option<Asset>,
    /// One human-readable sentence.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Custody(Custody),
    Alarm(Alarm),
    Context(ContextChange),
    /// A read window's summary.
    Pass(Pass),
}

/// An event decided but not yet committed (it has no `seq` yet).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub event_id: Ulid,
    pub location: Arc<str>,
    pub observed_at: SystemTime,
    pub clock_synced: bool,
    pub body: Body,
    /// Set by a cage gate on the custody event of a leave attempt it
    /// granted; rendered as its `release` object.
    pub release: Option<Box<Release>>,
    /// State that must be durable exactly when this event is: applied by
    /// the spool in the event's commit (see [`Save`]). Never rendered.
    pub saves: Vec<Save>,
    /// Fired by the spool once this draft is committed; never rendered.
    pub receipt: Option<Receipt>,
}

impl Draft {
    pub fn new(location: Arc<str>, observed_at: SystemTime, body: Body) -> Self {
        Draft {
            event_id: Ulid::new(),
            location,
            observed_at,
            clock_synced: crate::clock::is_synced(),
            body,
            release: None,
            saves: Vec::new(),
            receipt: None,
        }
    }

    pub fn topic(&self, naming: &Naming) -> String {
        match self.body {
            Body::Custody(_) => naming.custody(&self.location),
            Body::Alarm(_) => naming.alarm(&self.location),
            Body::Context(_) => naming.context(&self.location),
            Body::Pass(_) => naming.pass(&self.location),
        }
    }

    /// The event's JSON payload, as committed with `seq` in `stream`, after
    /// the event whose hash (lowercase hex) is `prev`.
    pub fn render(&self, naming: &Naming, stream: &str, seq: u64, prev: Option<&str>) -> Vec<u8> {
        let common = Common {
            event_id: self.event_id.to_string(),
            stream,
            seq,
            prev,
            site: &naming.site,
            gateway: &naming.gateway,
            location: &self.location,
            observed_at: rfc3339(self.observed_at),
            clock_synced: self.clock_synced,
        };
        let json = match &self.body {
            Body::Custody(c) => serde_json::to_vec(&CustodyJson {
                schema: CUSTODY_SCHEMA,
                common,
                transition: c.transition.as_str(),
                from_zone: c.crossing.as_ref().map(|x| &*x.from_zone),
                to_zone: c.crossing.as_ref().map(|x| &*x.to_zone),
                direction_confidence: c.crossing.as_ref().map(|x| x.confidence.as_str()),
                pass_id: c
                    .crossing
                    .as_ref()
                    .and_then(|x| x.pass_id)
                    .map(|id| id.to_string()),
                asset: AssetJson::from(&c.asset),
                release: self.release.as_deref().map(release::ReleaseJson::from),
                reader: &c.reader,
                reads: c.reads,
                first_seen: rfc3339(c.first_seen),
                last_seen: rfc3339(c.last_seen),
                antennas: &c.antennas,
                rssi_max: c.rssi_max,
                context: (&c.context).into(),
            }),
            Body::Alarm(a) => serde_json::to_vec(&AlarmJson {
                schema: ALARM_SCHEMA,
                common,
                kind: a.kind,
                asset: a.asset.as_ref().map(AssetJson::from),
                detail: &a.detail,
            }),
            Body::Context(c) => serde_json::to_vec(&c.json(common)),
            Body::Pass(p) => p.to_json(common),
        };
        json.expect("event JSON has only string keys and finite numbers")
    }
}

#[derive(Serialize)]
struct Common<'a> {
    event_id: String,
    /// The numbering `seq` belongs to (see `spool::recovery`).
    stream: &'a str,
    seq: u64,
    /// The custody log's link to the event before (null only at its start).
    prev: Option<&'a str>,
    site: &'a str,
    gateway: &'a str,
    location: &'a str,
    observed_at: String,
    clock_synced: bool,
}

#[derive(Serialize)]
struct AssetJson<'a> {
    id: &'a str,
    raw: &'a str,
    source: &'static str,
}

impl<'a> From<&'a Asset> for AssetJson<'a> {
    fn from(a: &'a Asset) -> Self {
        AssetJson {
            id: &a.id,
            raw: &a.raw,
            source: a.source.as_str(),
        }
    }
}

#[derive(Serialize)]
struct CustodyJson<'a> {
    schema: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    transition: &'static str,
    from_zone: Option<&'a str>,
    to_zone: Option<&'a str>,
    /// Only on `moved`.
    #[serde(skip_serializing_if = "Option::is_none")]
    direction_confidence: Option<&'static str>,
    /// Only on a `moved` decided in a read window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pass_id: Option<String>,
    asset: AssetJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release: Option<release::ReleaseJson<'a>>,
    reader: &'a str,
    reads: u64,
    first_seen: String,
    last_seen: String,
    antennas: &'a [u8],
    rssi_max: Option<f32>,
    #[serde(flatten)]
    context: context::ContextJson<'a>,
}

#[derive(Serialize)]
struct AlarmJson<'a> {
    schema: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    kind: &'static str,
    asset: Option<AssetJson<'a>>,
    detail: &'a str,
}

#[cfg(test)]
mod tests;
