//! Configuration of the chain-of-custody context: at scan stations who is
//! signed in, what is being done and into which container
//! (`src/rules/station.rs`); at dock doors, how long a pickup's manifest is
//! reconciled (`src/rules/manifest.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{LocationConfig, LocationKind};

/// `[station]`: how command barcodes and containers are recognised, shared
/// by every station of the gateway (the labels are printed once for a site).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    /// A scan starting with this (any case) selects an action rather than
    /// naming an asset: `ACT:WIPED`.
    #[serde(default = "default_action_prefix")]
    pub action_prefix: String,
    /// The actions an operator may select, as published.
    #[serde(default = "default_actions")]
    pub actions: Vec<String>,
    /// A scan starting with one of these names a container (a gaylord or
    /// pallet label that is not an SSCC); an SSCC always does.
    #[serde(default)]
    pub container_prefixes: Vec<String>,
}

/// The action that clears the context instead of setting one (`ACT:CLEAR`).
pub const CLEAR_ACTION: &str = "clear";

fn default_action_prefix() -> String {
    "ACT:".into()
}

/// The status changes ITAD practice asks to be scanned at.
fn default_actions() -> Vec<String> {
    [
        "received",
        "quarantined",
        "audited",
        "tested",
        "wiped",
        "shredded",
        "repaired",
        "packed",
        "shipped",
    ]
    .map(String::from)
    .to_vec()
}

impl Default for StationConfig {
    fn default() -> Self {
        StationConfig {
            action_prefix: default_action_prefix(),
            actions: default_actions(),
            container_prefixes: Vec::new(),
        }
    }
}

/// `[operators]`: badge number -> operator id. Empty: operators are
/// published by their badge number as read.
pub type Operators = BTreeMap<String, String>;

/// What a reader's reads are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderRole {
    /// Assets: reads go to presence and become custody events.
    #[default]
    Asset,
    /// Operator badges at a station: reads sign operators in and out and
    /// never become assets.
    Badge,
}

impl ReaderRole {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            ReaderRole::Asset => "asset",
            ReaderRole::Badge => "badge",
        }
    }
}

/// Long enough for a wipe cycle between scans, short enough that a badge
/// left signed in over a break does not sign the next person's work.
const DEFAULT_OPERATOR_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_MANIFEST_TIMEOUT: Duration = Duration::from_secs(2 * 60 * 60);

impl LocationConfig {
    /// Whether the location keeps a station context: every scan station, and
    /// a cage gate configured with `station = true`.
    pub fn is_station(&self) -> bool {
        match self.kind {
            LocationKind::ScanStation => true,
            LocationKind::CageGate => self.station == Some(true),
            LocationKind::DockDoor => false,
        }
    }

    /// Stations: inactivity after which the operator is signed out (30 min
    /// unless set).
    pub fn operator_timeout(&self) -> Duration {
        self.operator_timeout.unwrap_or(DEFAULT_OPERATOR_TIMEOUT)
    }

    /// Stations: scans without a signed-in operator are refused.
    pub fn require_operator(&self) -> bool {
        self.require_operator.unwrap_or(false)
    }

    /// Whether pickups are reconciled here: a dock door's read windows
    /// make the pass summaries a manifest is checked against.
    pub fn takes_manifests(&self) -> bool {
        self.kind == LocationKind::DockDoor && self.window.is_some()
    }

    /// Dock doors with read windows: a pickup's reconciliation ends this
    /// long after its last pass unless the central system closes it first
    /// (2 h unless set: a truck is unloaded within that).
    pub fn manifest_timeout(&self) -> Duration {
        self.manifest_timeout.unwrap_or(DEFAULT_MANIFEST_TIMEOUT)
    }
}
