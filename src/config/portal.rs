//! Portal keys: dock doors and cage gates are doors between two zones, and
//! the readers there watch one side each, so that the order in which the
//! sides see an asset says which way it went.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{duration, InputPinConfig, LocationConfig, LocationKind, ReaderConfig};

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
