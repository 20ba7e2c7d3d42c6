//! Configuration of the chain-of-custody context: at scan stations who is
//! signed in, what is being done and into which container
//! (`src/rules/station.rs`); at dock doors, how long a pickup's manifest is
//! reconciled (`src/rules/manifest.rs`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use super::names::entry_label;
use super::validate::{check_name, Errors};
use super::{Config, LocationConfig, LocationKind};

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

/// `[station]` (command barcodes, containers) and `[operators]`.
pub(super) fn check_stations(errors: &mut Errors, config: &Config) {
    let station = &config.station;
    let prefix = station.action_prefix.to_lowercase();
    if prefix.is_empty() {
        errors.push("station.action_prefix", "must not be empty");
    }
    if station.actions.is_empty() {
        errors.push(
            "station.actions",
            "must list at least one action (or leave it out for the default list)",
        );
    }
    let mut actions: HashMap<String, usize> = HashMap::new();
    for (i, action) in station.actions.iter().enumerate() {
        let key = format!("station.actions[{i}]");
        check_name(errors, &key, action);
        let lower = action.to_lowercase();
        if lower == CLEAR_ACTION {
            errors.push(
                &key,
                format!(
                    "{action:?} is reserved: {}{} clears the context",
                    station.action_prefix,
                    CLEAR_ACTION.to_uppercase()
                ),
            );
        }
        if let Some(first) = actions.insert(lower, i) {
            errors.push(
                key,
                format!("{action:?} is listed twice (also station.actions[{first}]; case does not count)"),
            );
        }
    }
    for (i, container) in station.container_prefixes.iter().enumerate() {
        let key = format!("station.container_prefixes[{i}]");
        let lower = container.to_lowercase();
        if container.is_empty() {
            errors.push(key, "must not be empty (every scan would be a container)");
        } else if !prefix.is_empty() && (lower.starts_with(&prefix) || prefix.starts_with(&lower)) {
            errors.push(
                key,
                format!(
                    "{container:?} overlaps station.action_prefix {:?}: a scan could be both",
                    station.action_prefix
                ),
            );
        }
    }

    let mut badges: HashMap<String, &str> = HashMap::new();
    for (badge, operator) in &config.operators {
        let key = format!("operators.{badge}");
        if badge.trim().is_empty() {
            errors.push(key.clone(), "the badge number must not be empty");
        }
        check_name(errors, &key, operator);
        if let Some(first) = badges.insert(badge.to_uppercase(), badge) {
            errors.push(
                key,
                format!("badge {badge:?} is listed twice (also as {first:?}; case does not count)"),
            );
        }
    }
}

/// The keys only a station, or a dock door taking manifests, can use.
pub(super) fn check_context_locations(errors: &mut Errors, config: &Config) {
    for (i, location) in config.locations.iter().enumerate() {
        let label = entry_label("locations", i, &location.name);
        if location.station.is_some() && location.kind != LocationKind::CageGate {
            errors.push(
                format!("{label}.station"),
                "only applies to kind = \"cage_gate\" (a scan_station always is a station)",
            );
        }
        if !location.is_station() {
            for (field, set) in [
                ("operator_timeout", location.operator_timeout.is_some()),
                ("require_operator", location.require_operator.is_some()),
            ] {
                if set {
                    errors.push(
                        format!("{label}.{field}"),
                        "only applies to stations (kind = \"scan_station\", or a cage_gate \
                         with station = true)",
                    );
                }
            }
        } else if location.operator_timeout.is_some_and(|t| t.is_zero()) {
            errors.push(format!("{label}.operator_timeout"), "must be more than 0");
        }
        let has_badge_reader = config
            .readers
            .iter()
            .any(|r| r.role == ReaderRole::Badge && r.location == location.name);
        if location.is_station() && location.require_operator() && !has_badge_reader {
            errors.push(
                format!("{label}.require_operator"),
                "no reader with role = \"badge\" is at this location, so nobody could sign in \
                 and every scan would be refused",
            );
        }
        let key = format!("{label}.manifest_timeout");
        match location.manifest_timeout {
            Some(_) if !location.takes_manifests() => errors.push(
                key,
                "only applies to a dock_door with read windows (window = ...): manifests are \
                 reconciled against their pass summaries",
            ),
            Some(timeout) if timeout.is_zero() => errors.push(key, "must be more than 0"),
            _ => {}
        }
    }
}

/// Badge readers: at a station, and never in an asset read mode.
pub(super) fn check_badge_readers(errors: &mut Errors, config: &Config) {
    for (i, reader) in config.readers.iter().enumerate() {
        if reader.role != ReaderRole::Badge {
            continue;
        }
        let label = entry_label("readers", i, &reader.name);
        let location = config.locations.iter().find(|l| l.name == reader.location);
        if location.is_some_and(|l| !l.is_station()) {
            errors.push(
                format!("{label}.role"),
                format!(
                    "a badge reader must be at a station; {:?} is not one (kind = \"scan_station\", \
                     or a cage_gate with station = true)",
                    reader.location
                ),
            );
        }
        if reader.mode.is_some() {
            errors.push(
                format!("{label}.mode"),
                "does not apply to role = \"badge\" (badge reads never become assets)",
            );
        }
    }
}
