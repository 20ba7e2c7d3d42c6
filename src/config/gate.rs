//! The `gate` table of a `cage_gate` location: the relays and the door
//! sensor of the gate, and how it decides (see `release`).

use std::time::Duration;

use humantime::format_duration;
use serde::Deserialize;

use super::gpio::debounce_problem;
use super::validate::Errors;
use super::{duration, InputPinConfig, LocationConfig, LocationKind, ReadMode, ReaderConfig};

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

/// Longest unlock, denial signal or override a gate accepts: longer is a
/// door left open, which is what the gate is there to prevent.
const GATE_PULSE_MAX: Duration = Duration::from_secs(60);
const OVERRIDE_MAX: Duration = Duration::from_secs(3600);

/// A `gate` table: only on a cage gate, with durations a gate can use.
pub(super) fn check_gate(errors: &mut Errors, location: &LocationConfig, label: &str) {
    let Some(gate) = &location.gate else {
        return;
    };
    let key = |field: &str| format!("{label}.gate.{field}");
    if location.kind != LocationKind::CageGate {
        errors.push(
            format!("{label}.gate"),
            format!(
                "only applies to kind = \"cage_gate\"; {} is a {}",
                location.name,
                location.kind.as_str()
            ),
        );
    }
    for (field, value, max) in [
        ("unlock_pulse", gate.unlock_pulse, GATE_PULSE_MAX),
        ("deny_signal", gate.deny_signal, GATE_PULSE_MAX),
        ("override_max", gate.override_max, OVERRIDE_MAX),
    ] {
        if value.is_zero() || value > max {
            errors.push(
                key(field),
                format!(
                    "is {}; must be more than 0 and at most {}",
                    format_duration(value),
                    format_duration(max)
                ),
            );
        }
    }
    if let Some(problem) = gate
        .door_sensor
        .as_ref()
        .and_then(|d| debounce_problem(d.debounce))
    {
        errors.push(key("door_sensor.debounce"), problem);
    }
}

/// `mode = "release"` asks a gate to decide: there must be one.
pub(super) fn check_release_mode(
    errors: &mut Errors,
    reader: &ReaderConfig,
    locations: &[LocationConfig],
    key: &dyn Fn(&str) -> String,
) {
    if reader.mode() != ReadMode::Release {
        return;
    }
    let location = locations.iter().find(|l| l.name == reader.location);
    if location.is_some_and(|l| l.gate.is_none() || l.kind != LocationKind::CageGate) {
        errors.push(
            key("mode"),
            format!(
                "\"release\" needs a cage_gate location with a gate table; {} has none",
                reader.location
            ),
        );
    }
}
