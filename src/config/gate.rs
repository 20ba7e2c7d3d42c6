//! The `gate` table of a `cage_gate` location: the relays and the door
//! sensor of the gate, and how it decides (see `release`).

use std::time::Duration;

use serde::Deserialize;

use super::{duration, InputPinConfig};

/// What a gate does with an asset the release policy does not mention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownAsset {
    /// Fail-secure: it stays inside until central says otherwise.
    #[default]
    Deny,
    Allow,
}

impl UnknownAsset {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownAsset::Deny => "deny",
            UnknownAsset::Allow => "allow",
        }
    }
}

/// Whether a release entry's `expires_at` is honoured while the system
/// clock is not known to be synchronised (a Pi without RTC boots with a
/// stale time, so an expired grant could look valid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnsyncedExpiry {
    /// Fail-secure: an entry with `expires_at` is refused until the clock
    /// is synchronised.
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// The relay that opens the lock while active.
    pub lock_pin: u8,
    /// The relay board's inputs are active low (the usual opto-isolated
    /// boards): applies to every output of the gate.
    #[serde(default = "default_active_low")]
    pub active_low: bool,
    /// Stack light and buzzer, each through a relay; all optional.
    #[serde(default)]
    pub green_pin: Option<u8>,
    #[serde(default)]
    pub red_pin: Option<u8>,
    #[serde(default)]
    pub buzzer_pin: Option<u8>,
    /// The door contact, active while the door is open.
    #[serde(default)]
    pub door_sensor: Option<InputPinConfig>,
    /// How long a granted release keeps the lock open (and the light green).
    #[serde(default = "default_unlock_pulse", with = "duration")]
    pub unlock_pulse: Duration,
    /// How long a denial (or a forced door) shows red and sounds the buzzer.
    #[serde(default = "default_deny_signal", with = "duration")]
    pub deny_signal: Duration,
    /// Assets without a release policy entry.
    #[serde(default)]
    pub unknown: UnknownAsset,
    /// The longest an operator's `unlock` command may open the gate.
    #[serde(default = "default_override_max", with = "duration")]
    pub override_max: Duration,
    /// Release entries with `expires_at` while the clock is unsynchronised.
    #[serde(default)]
    pub unsynced_expiry: UnsyncedExpiry,
}

fn default_active_low() -> bool {
    true
}
fn default_unlock_pulse() -> Duration {
    Duration::from_secs(5)
}
fn default_deny_signal() -> Duration {
    Duration::from_secs(3)
}
fn default_override_max() -> Duration {
    Duration::from_secs(300)
}

impl GateConfig {
    /// Every pin of the gate, with its key below the location.
    pub fn pins(&self) -> Vec<(String, u8)> {
        let outputs = [
            ("lock_pin", Some(self.lock_pin)),
            ("green_pin", self.green_pin),
            ("red_pin", self.red_pin),
            ("buzzer_pin", self.buzzer_pin),
        ];
        let door = self
            .door_sensor
            .as_ref()
            .map(|d| ("door_sensor.pin", d.pin));
        outputs
            .into_iter()
            .filter_map(|(key, pin)| Some((key, pin?)))
            .chain(door)
            .map(|(key, pin)| (format!("gate.{key}"), pin))
            .collect()
    }
}
