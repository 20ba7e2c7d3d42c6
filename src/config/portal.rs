//! Portal keys: dock doors and cage gates are doors between two zones, and
//! the readers there watch one side each, so that the order in which the
//! sides see an asset says which way it went.

use std::collections::BTreeMap;
use std::time::Duration;

use humantime::format_duration;
use serde::Deserialize;

use super::gpio::debounce_problem;
use super::validate::{check_name, Errors};
use super::{
    duration, InputPinConfig, LocationConfig, LocationKind, Protocol, ReadMode, ReaderConfig,
};
use crate::decode::ChafonVariant;

/// The side of a portal a reader or antenna watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Towards `outside_zone`.
    Outside,
    /// Towards `inside_zone`.
    Inside,
}

impl Side {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Outside => "outside",
            Side::Inside => "inside",
        }
    }
}

/// `sides` of a reader: antenna number (as a TOML key) to side.
pub type AntennaSides = BTreeMap<String, Side>;

/// A tag seen by one side for this long, and by the other side not at all
/// (or also for this long), is parked near the portal, not passing it: a
/// pass takes seconds, a forklift pausing in the door tens of seconds.
const DEFAULT_STATIC_AFTER: Duration = Duration::from_secs(30);
/// First reads or RSSI peaks closer together than this are "at once": more
/// than one antenna cycle of a UHF reader with a few tags in the field.
const DEFAULT_ORDER_MARGIN: Duration = Duration::from_millis(300);

/// `window`: the portal's UHF readers read only while something passes,
/// and every pass gets a summary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// The photo-eye or motion sensor that opens a window; without it the
    /// beams do.
    #[serde(default)]
    pub trigger: Option<InputPinConfig>,
    /// A window closes once this long has passed without a new tag, with
    /// every sensor clear.
    #[serde(default = "default_quiet_after", with = "duration")]
    pub quiet_after: Duration,
    /// A window closes this long after it opened, whatever else happens.
    #[serde(default = "default_max_window", with = "duration")]
    pub max_window: Duration,
    /// This many windows in a row without a read raise `silent_reader`.
    #[serde(default = "default_silent_after")]
    pub silent_after: u32,
}

fn default_quiet_after() -> Duration {
    Duration::from_secs(2)
}
fn default_max_window() -> Duration {
    Duration::from_secs(30)
}
fn default_silent_after() -> u32 {
    3
}

/// `beams`: two light beams across the door, the outer one nearer
/// `outside_zone`; the order they are broken in is the direction of a pass.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeamsConfig {
    pub outer: InputPinConfig,
    pub inner: InputPinConfig,
}

impl LocationKind {
    /// Dock doors and cage gates are doors between two zones.
    pub fn is_portal(self) -> bool {
        matches!(self, LocationKind::DockDoor | LocationKind::CageGate)
    }
}

impl LocationConfig {
    /// The pins of the read window's sensors, with their keys.
    pub(super) fn portal_pins(&self) -> Vec<(String, u8)> {
        let trigger = self.window.as_ref().and_then(|w| w.trigger.as_ref());
        let beams = self.beams.as_ref();
        [
            ("window.trigger.pin", trigger),
            ("beams.outer.pin", beams.map(|b| &b.outer)),
            ("beams.inner.pin", beams.map(|b| &b.inner)),
        ]
        .into_iter()
        .filter_map(|(key, input)| Some((key.to_string(), input?.pin)))
        .collect()
    }

    /// `static_after`, 30 s unless set.
    pub fn static_after(&self) -> Duration {
        self.static_after.unwrap_or(DEFAULT_STATIC_AFTER)
    }

    /// `order_margin`, 300 ms unless set.
    pub fn order_margin(&self) -> Duration {
        self.order_margin.unwrap_or(DEFAULT_ORDER_MARGIN)
    }
}

impl ReaderConfig {
    /// The side of each 1-based antenna named in `sides` (validated: the
    /// keys are antennas of this reader).
    pub fn antenna_sides(&self) -> Vec<(u8, Side)> {
        self.sides
            .iter()
            .flatten()
            .filter_map(|(antenna, side)| Some((antenna.parse().ok()?, *side)))
            .collect()
    }
}

/// RSSI as UHF readers report it: -129 dBm (the A0 byte 0) to 0 dBm.
const RSSI_FLOOR_RANGE: std::ops::RangeInclusive<f32> = -129.0..=0.0;

/// Zones on both sides of a portal, and the direction keys only there.
pub(super) fn check_portal(errors: &mut Errors, location: &LocationConfig, label: &str) {
    let key = |field: &str| format!("{label}.{field}");
    let zones = [
        ("outside_zone", &location.outside_zone),
        ("inside_zone", &location.inside_zone),
    ];
    if !location.kind.is_portal() {
        let portal_keys = [
            ("outside_zone", location.outside_zone.is_some()),
            ("inside_zone", location.inside_zone.is_some()),
            ("rssi_floor", location.rssi_floor.is_some()),
            ("static_after", location.static_after.is_some()),
            ("order_margin", location.order_margin.is_some()),
            ("window", location.window.is_some()),
            ("beams", location.beams.is_some()),
        ];
        for (field, set) in portal_keys {
            if set {
                errors.push(
                    key(field),
                    "only applies to kind = \"dock_door\" or \"cage_gate\"",
                );
            }
        }
        return;
    }
    for (field, zone) in zones {
        match zone {
            None => errors.push(
                key(field),
                format!(
                    "is required for kind = {:?}: a portal is a door between two zones",
                    location.kind.as_str()
                ),
            ),
            Some(zone) => check_name(errors, &key(field), zone),
        }
    }
    if let (Some(outside), Some(inside)) = (&location.outside_zone, &location.inside_zone) {
        if outside == inside {
            errors.push(
                key("inside_zone"),
                format!("is {inside:?}, the same as outside_zone; a portal joins two zones"),
            );
        }
    }
    if let Some(floor) = location.rssi_floor {
        if !RSSI_FLOOR_RANGE.contains(&floor) {
            errors.push(
                key("rssi_floor"),
                format!("is {floor}; must be -129 to 0 (dBm)"),
            );
        }
    }
    if location.static_after.is_some_and(|t| t.is_zero()) {
        errors.push(key("static_after"), "must be more than 0");
    }
    check_window(errors, location, &key);
}

/// A read window needs a sensor to open it; beams only work in windows.
fn check_window(errors: &mut Errors, location: &LocationConfig, key: &dyn Fn(&str) -> String) {
    let Some(window) = &location.window else {
        if location.beams.is_some() {
            errors.push(
                key("beams"),
                "needs a window table: the beams' order is taken per read window",
            );
        }
        return;
    };
    if window.trigger.is_none() && location.beams.is_none() {
        errors.push(
            key("window.trigger"),
            "is required without beams: something must open the window",
        );
    }
    if window.quiet_after.is_zero() {
        errors.push(key("window.quiet_after"), "must be more than 0");
    }
    if window.max_window < window.quiet_after {
        errors.push(
            key("window.max_window"),
            format!(
                "is {}; must be at least window.quiet_after ({})",
                format_duration(window.max_window),
                format_duration(window.quiet_after)
            ),
        );
    }
    if window.silent_after == 0 {
        errors.push(key("window.silent_after"), "must be at least 1");
    }
    let beams = location.beams.as_ref();
    let inputs = [
        ("window.trigger.debounce", window.trigger.as_ref()),
        ("beams.outer.debounce", beams.map(|b| &b.outer)),
        ("beams.inner.debounce", beams.map(|b| &b.inner)),
    ];
    for (field, input) in inputs {
        if let Some(problem) = input.and_then(|i| debounce_problem(i.debounce)) {
            errors.push(key(field), problem);
        }
    }
}

/// `side` / `sides`: only at a portal, only on presence readers, and
/// `sides` only names antennas the reader inventories.
pub(super) fn check_sides(
    errors: &mut Errors,
    reader: &ReaderConfig,
    location: Option<&LocationConfig>,
    key: &dyn Fn(&str) -> String,
) {
    let field = match (&reader.side, &reader.sides) {
        (None, None) => return,
        (Some(_), Some(_)) => {
            errors.push(
                key("sides"),
                "set either side (the whole reader) or sides (per antenna), not both",
            );
            return;
        }
        (Some(_), None) => "side",
        (None, Some(_)) => "sides",
    };
    if let Some(location) = location.filter(|l| !l.kind.is_portal()) {
        errors.push(
            key(field),
            format!(
                "only applies at a dock_door or cage_gate; {} is a {}",
                location.name,
                location.kind.as_str()
            ),
        );
    }
    if reader.mode() != ReadMode::Presence {
        errors.push(
            key(field),
            "only applies to mode = \"presence\" readers (scans are no evidence of direction)",
        );
    }
    let Some(sides) = &reader.sides else {
        return;
    };
    if !reader.protocol.is_some_and(Protocol::is_uhf)
        || reader.chafon_variant == Some(ChafonVariant::Reader18)
    {
        errors.push(
            key("sides"),
            "only applies to readers that report antennas (uhf-a0, chafon \"288\"); use side",
        );
        return;
    }
    let antennas = reader.antennas();
    for name in sides.keys() {
        if !name.parse().is_ok_and(|a: u8| antennas.contains(&a)) {
            errors.push(
                key("sides"),
                format!("{name:?} is not one of the reader's antennas {antennas:?}"),
            );
        }
    }
}
