//! Portal keys: dock doors and cage gates are doors between two zones, and
//! the readers there watch one side each, so that the order in which the
//! sides see an asset says which way it went.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{LocationConfig, LocationKind, ReaderConfig};

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

impl LocationKind {
    /// Dock doors and cage gates are doors between two zones.
    pub fn is_portal(self) -> bool {
        matches!(self, LocationKind::DockDoor | LocationKind::CageGate)
    }
}

impl LocationConfig {
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
