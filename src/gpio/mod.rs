//! Digital inputs and outputs: gate relays (lock, stack light, buzzer) and
//! sensors (door contact, light beams).
//!
//! Users work with [`Output`] and [`Input`], which speak "active" and
//! "inactive": the wiring's polarity (`active_low` relay boards, sensors
//! active high or low) is applied here, once. Underneath, a [`Gpio`] backend
//! deals in electrical levels only: [`cdev`] is the kernel's GPIO character
//! device (the Pi's header, or any other chip), [`sim`] simulated pins that
//! tests and `demo` drive and watch through a Unix socket. Nothing outside
//! this module knows which one runs.
//!
//! Safety is built into the types: an output is driven inactive (lock
//! engaged, lights and buzzer off) the moment it is claimed and again when it
//! is dropped, so start-up, shutdown and every error path that unwinds the
//! owning task leave the gate locked.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::config::{ActiveLevel, GpioBackend, GpioConfig, InputPinConfig, Pull};

mod cdev;
pub mod sim;

pub use sim::{SimClient, SimGpio};

#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    #[error("cannot open GPIO (backend {backend}): {detail}")]
    Open {
        backend: &'static str,
        detail: String,
    },
    #[error("GPIO {pin}: {detail}")]
    Pin { pin: u8, detail: String },
}

/// One claimed output pin, as a backend drives it.
pub trait Driver: Send {
    /// Sets the electrical level.
    fn write(&mut self, high: bool);
}

/// One claimed input pin, as a backend reads it: its electrical level, as
/// it changes, undebounced. Whatever `hold` is keeps the pin claimed (and
/// its interrupt running) for as long as the input is used.
pub struct RawInput {
    pub levels: watch::Receiver<bool>,
    pub hold: Box<dyn Send>,
}

/// A GPIO backend: hands out pins by BCM number.
pub trait Gpio: Send + Sync {
    /// Claims `pin` as an output, already driving `high`.
    fn output(&self, pin: u8, high: bool) -> Result<Box<dyn Driver>, GpioError>;
    /// Claims `pin` as an input with the internal bias `pull`.
    fn input(&self, pin: u8, pull: Pull) -> Result<RawInput, GpioError>;
    /// Completes once every level written so far has reached whoever
    /// watches the pins (the simulator's clients); then the backend is done.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The pins of this gateway: what the tasks that own gates and sensors
/// claim their outputs and inputs from.
#[derive(Clone)]
pub struct Pins {
    gpio: Arc<dyn Gpio>,
    /// `gpio.debounce`, for inputs that set none of their own.
    debounce: Duration,
}

/// Opens the configured backend. Only called when some location uses a
/// pin, so a gateway without gates never touches GPIO.
pub fn open(config: &GpioConfig) -> Result<Pins, GpioError> {
    let gpio: Arc<dyn Gpio> = match (config.backend, &config.sim_socket) {
        (GpioBackend::Cdev, _) => Arc::new(cdev::CdevGpio::open(config.chip())?),
        (GpioBackend::Sim, Some(socket)) => Arc::new(SimGpio::bind(socket)?),
        (GpioBackend::Sim, None) => {
            return Err(GpioError::Open {
                backend: "sim",
                detail: "gpio.sim_socket is not set".into(),
            })
        }
    };
    Ok(Pins::new(gpio, config.debounce))
}

impl Pins {
    pub fn new(gpio: Arc<dyn Gpio>, debounce: Duration) -> Self {
        Pins { gpio, debounce }
    }

    /// Claims `pin` as an output, inactive. `active_low`: the pin is driven
    /// low to activate (the usual relay board, whose inputs sink current
    /// through an opto-coupler's LED).
    pub fn output(&self, pin: u8, active_low: bool) -> Result<Output, GpioError> {
        let driver = self.gpio.output(pin, active_low)?;
        Ok(Output {
            pin,
            active_low,
            active: false,
            driver,
        })
    }

    /// Claims a sensor input as configured.
    pub fn input(&self, config: &InputPinConfig) -> Result<Input, GpioError> {
        let raw = self.gpio.input(config.pin, config.pull)?;
        let level = *raw.levels.borrow();
        Ok(Input {
            pin: config.pin,
            active_low: config.active == ActiveLevel::Low,
            debounce: config.debounce.unwrap_or(self.debounce),
            levels: raw.levels,
            level,
            pending: None,
            _hold: raw.hold,
        })
    }

    /// See [`Gpio::close`]: call it after every output has been dropped.
    pub async fn close(&self) {
        self.gpio.close().await;
    }
}

/// An output in terms of what it does: active (relay energised, lock open,
/// light on) or inactive. Dropped, it goes inactive.
pub struct Output {
    pin: u8,
    active_low: bool,
    active: bool,
    driver: Box<dyn Driver>,
}

impl Output {
    pub fn set(&mut self, active: bool) {
        if active != self.active {
            self.active = active;
            self.driver.write(active != self.active_low);
        }
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn pin(&self) -> u8 {
        self.pin
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// A debounced change of a sensor input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// The new state: the sensor is triggered (door open, beam broken).
    pub active: bool,
    /// When the level changed (not when the debounce ended), so that the
    /// order of two sensors' edges is the order of the events.
    pub at: Instant,
    pub wall: SystemTime,
}

/// A sensor input: its debounced state and its edges. A new level counts
/// once it has held for the debounce time; shorter pulses are bounce and
/// are ignored. The owner must keep polling [`Input::next`] (in its
/// `select!` loop): levels are followed while it does.
pub struct Input {
    pin: u8,
    active_low: bool,
    debounce: Duration,
    levels: watch::Receiver<bool>,
    /// The debounced electrical level.
    level: bool,
    /// A new level seen, not yet held for the debounce time: (level, since).
    pending: Option<(bool, Instant, SystemTime)>,
    _hold: Box<dyn Send>,
}

impl Input {
    pub fn pin(&self) -> u8 {
        self.pin
    }

    /// The debounced state, as of the last edge returned.
    pub fn is_active(&self) -> bool {
        self.level != self.active_low
    }

    /// The next debounced edge; `None` once the backend has gone away.
    /// Cancel-safe: a pending level survives being dropped from a `select!`.
    pub async fn next(&mut self) -> Option<Edge> {
        loop {
            match self.pending {
                Some((level, since, wall)) => tokio::select! {
                    changed = self.levels.changed() => {
                        changed.ok()?;
                        self.observe();
                    }
                    _ = sleep_until(since + self.debounce) => {
                        self.pending = None;
                        self.level = level;
                        return Some(Edge {
                            active: self.is_active(),
                            at: since,
                            wall,
                        });
                    }
                },
                None => {
                    self.levels.changed().await.ok()?;
                    self.observe();
                }
            }
        }
    }

    fn observe(&mut self) {
        let now = *self.levels.borrow_and_update();
        if now == self.level {
            // Bounced back before the debounce time: nothing happened.
            self.pending = None;
        } else if self.pending.is_none() {
            self.pending = Some((now, Instant::now(), SystemTime::now()));
        }
    }
}

#[cfg(test)]
mod tests;
