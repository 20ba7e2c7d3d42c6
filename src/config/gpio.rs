//! `[gpio]`: which GPIO backend drives the gate relays and reads the door
//! and beam sensors, and the pin tables every GPIO user shares.
//!
//! Pins are BCM numbers (the `GPIO17` names on a Pi pinout, not the header
//! positions). A pin belongs to one function of one location: validation
//! collects every pin the configuration uses ([`LocationConfig::gpio_pins`])
//! and rejects one used twice, naming both keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use humantime::format_duration;
use serde::{Deserialize, Serialize};

use super::names::entry_label;
use super::validate::Errors;
use super::{duration, LocationConfig};

/// BCM GPIO 0 to 27 are on the 40-pin header of every Pi since the B+.
pub const MAX_PIN: u8 = 27;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpioBackend {
    /// The kernel's GPIO character device (`gpio.chip`). Also accepted as
    /// "rppal": files written for that backend number pins by BCM, which
    /// are the line offsets of the Pi's header chip, so they mean the same.
    #[default]
    #[serde(alias = "rppal")]
    Cdev,
    /// Simulated pins behind a Unix socket, for `demo` and the tests.
    Sim,
}

impl GpioBackend {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            GpioBackend::Cdev => "cdev",
            GpioBackend::Sim => "sim",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    #[serde(default)]
    pub backend: GpioBackend,
    /// `backend = "sim"`: the Unix socket through which the simulated pins
    /// are driven and watched (see `gpio::sim`).
    #[serde(default)]
    pub sim_socket: Option<PathBuf>,
    /// `backend = "cdev"`: the GPIO chip whose line offsets the pins are;
    /// [`GpioConfig::chip`] gives the default.
    #[serde(default)]
    pub chip: Option<PathBuf>,
    /// How long an input must hold a new level before it counts: contact
    /// bounce of a reed switch or relay lasts a few milliseconds.
    #[serde(default = "default_debounce", with = "duration")]
    pub debounce: Duration,
}

/// The Pi's header chip: gpiochip0 on every model, the Pi 5 included since
/// its kernel 6.6 (older Pi 5 kernels named it gpiochip4).
pub const DEFAULT_CHIP: &str = "/dev/gpiochip0";

impl GpioConfig {
    /// The chip `backend = "cdev"` opens.
    pub fn chip(&self) -> &Path {
        self.chip.as_deref().unwrap_or(Path::new(DEFAULT_CHIP))
    }
}

fn default_debounce() -> Duration {
    Duration::from_millis(20)
}

impl Default for GpioConfig {
    fn default() -> Self {
        GpioConfig {
            backend: GpioBackend::default(),
            sim_socket: None,
            chip: None,
            debounce: default_debounce(),
        }
    }
}

/// The electrical level at which an input means "yes" (door open, beam
/// broken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActiveLevel {
    High,
    Low,
}

/// The pin's internal bias resistor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pull {
    /// An opto-coupler's open collector or a switch to ground needs it.
    #[default]
    Up,
    Down,
    /// The sensor drives the line both ways (a level shifter's output).
    None,
}

/// A sensor input, written inline: `{ pin = 26, active = "high" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputPinConfig {
    /// BCM number.
    pub pin: u8,
    /// The level that means the sensor is triggered.
    pub active: ActiveLevel,
    #[serde(default)]
    pub pull: Pull,
    /// Overrides `gpio.debounce` for this input.
    #[serde(default, with = "duration")]
    pub debounce: Option<Duration>,
}

impl LocationConfig {
    /// Every GPIO pin this location uses, with its key below the location
    /// (`gate.lock_pin`), for the checks that span locations.
    pub fn gpio_pins(&self) -> Vec<(String, u8)> {
        let mut pins = Vec::new();
        if let Some(gate) = &self.gate {
            pins.extend(gate.pins());
        }
        pins.extend(self.portal_pins());
        pins
    }
}

/// Pins seen so far while validating, so a second use names the first.
#[derive(Default)]
pub(super) struct PinClaims(HashMap<u8, String>);

impl PinClaims {
    /// Why `pin` cannot be used at `key`, or `None` (it is now claimed).
    pub(super) fn claim(&mut self, key: &str, pin: u8) -> Option<String> {
        if pin > MAX_PIN {
            return Some(format!(
                "is {pin}; BCM GPIO pins are numbered 0 to {MAX_PIN}"
            ));
        }
        match self.0.get(&pin) {
            Some(first) => Some(format!("GPIO {pin} is already used by {first}")),
            None => {
                self.0.insert(pin, key.to_string());
                None
            }
        }
    }
}

/// Longer than any contact bounce; more would only delay the sensor.
const DEBOUNCE_MAX: Duration = Duration::from_secs(1);

/// `[gpio]`, and every pin of every location: on the header, used once.
pub(super) fn check_gpio(errors: &mut Errors, gpio: &GpioConfig, locations: &[LocationConfig]) {
    match (gpio.backend, &gpio.sim_socket) {
        (GpioBackend::Sim, None) => errors.push(
            "gpio.sim_socket",
            "is required with backend = \"sim\" (the socket the simulated pins are driven through)",
        ),
        (GpioBackend::Cdev, Some(_)) => {
            errors.push("gpio.sim_socket", "only applies to backend = \"sim\"")
        }
        _ => {}
    }
    if gpio.backend == GpioBackend::Sim && gpio.chip.is_some() {
        errors.push("gpio.chip", "only applies to backend = \"cdev\"");
    }
    if let Some(problem) = debounce_problem(Some(gpio.debounce)) {
        errors.push("gpio.debounce", problem);
    }
    let mut claims = PinClaims::default();
    for (i, location) in locations.iter().enumerate() {
        let label = entry_label("locations", i, &location.name);
        for (field, pin) in location.gpio_pins() {
            let key = format!("{label}.{field}");
            if let Some(problem) = claims.claim(&key, pin) {
                errors.push(key, problem);
            }
        }
    }
}

/// Why a `debounce` is too long, if it is.
pub(super) fn debounce_problem(debounce: Option<Duration>) -> Option<String> {
    debounce
        .filter(|d| *d > DEBOUNCE_MAX)
        .map(|d| format!("is {}; at most 1s", format_duration(d)))
}
