//! `[[locations]]`: the places readers are at, and what kind of place each is.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::gate::check_gate;
use super::names::entry_label;
use super::portal::check_portal;
use super::validate::{check_name, first_seen, Errors};
use super::{duration, BeamsConfig, GateConfig, WindowConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    DockDoor,
    CageGate,
    ScanStation,
}

impl LocationKind {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            LocationKind::DockDoor => "dock_door",
            LocationKind::CageGate => "cage_gate",
            LocationKind::ScanStation => "scan_station",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// Topic segment.
    pub name: String,
    pub kind: LocationKind,
    /// No read of an asset for this long at this location makes a `departed`.
    #[serde(default = "default_departure_timeout", with = "duration")]
    pub departure_timeout: Duration,
    /// `cage_gate` only: the gate is also a scan station; see
    /// [`LocationConfig::is_station`].
    #[serde(default)]
    pub station: Option<bool>,
    /// Stations only; see [`LocationConfig::operator_timeout`].
    #[serde(default, with = "duration")]
    pub operator_timeout: Option<Duration>,
    /// Stations only; see [`LocationConfig::require_operator`].
    #[serde(default)]
    pub require_operator: Option<bool>,
    /// Dock doors with read windows; see [`LocationConfig::manifest_timeout`].
    #[serde(default, with = "duration")]
    pub manifest_timeout: Option<Duration>,
    /// Portals (`dock_door`, `cage_gate`): the zone beyond the door's
    /// outside, e.g. `yard`; required there (see `config/portal.rs`).
    #[serde(default)]
    pub outside_zone: Option<String>,
    /// Portals: the zone on the door's inside, e.g. `receiving`; required there.
    #[serde(default)]
    pub inside_zone: Option<String>,
    /// Portals: reads weaker than this (dBm) are no evidence of direction.
    #[serde(default)]
    pub rssi_floor: Option<f32>,
    /// Portals: see [`LocationConfig::static_after`].
    #[serde(default, with = "duration")]
    pub static_after: Option<Duration>,
    /// Portals: see [`LocationConfig::order_margin`].
    #[serde(default, with = "duration")]
    pub order_margin: Option<Duration>,
    /// `cage_gate` only: the gate's relays, door sensor and release rules.
    #[serde(default)]
    pub gate: Option<GateConfig>,
    /// Portals: read only while something passes (see `config/portal.rs`).
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// Portals with a `window`: two light beams across the door.
    #[serde(default)]
    pub beams: Option<BeamsConfig>,
}

pub fn default_departure_timeout() -> Duration {
    Duration::from_secs(5)
}

pub(super) fn check_locations(errors: &mut Errors, locations: &[LocationConfig]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, location) in locations.iter().enumerate() {
        let label = entry_label("locations", i, &location.name);
        check_name(errors, &format!("{label}.name"), &location.name);
        if let Some(first) = first_seen(&mut seen, location.name.as_str(), i) {
            errors.push(
                format!("{label}.name"),
                format!(
                    "duplicate name {:?} (also locations[{first}])",
                    location.name
                ),
            );
        }
        if location.departure_timeout.is_zero() {
            errors.push(format!("{label}.departure_timeout"), "must be more than 0");
        }
        check_gate(errors, location, &label);
        check_portal(errors, location, &label);
    }
}
