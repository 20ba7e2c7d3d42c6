//! One cage gate's outputs and how long each stays on.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::GateConfig;
use crate::gpio::{GpioError, Output, Pins};

/// An output that is on until a deadline. A gate without that output
/// (no buzzer wired) keeps the timing all the same.
struct Timed {
    out: Option<Output>,
    until: Option<Instant>,
}

impl Timed {
    fn new(pins: &Pins, pin: Option<u8>, active_low: bool) -> Result<Self, GpioError> {
        let out = pin.map(|p| pins.output(p, active_low)).transpose()?;
        Ok(Timed { out, until: None })
    }

    /// On for `d` from `now`, or longer if it already was.
    fn on_for(&mut self, now: Instant, d: Duration) {
        let until = now + d;
        self.until = Some(self.until.map_or(until, |u| u.max(until)));
        self.set(true);
    }

    fn off(&mut self) {
        self.until = None;
        self.set(false);
    }

    fn expire(&mut self, now: Instant) {
        if self.until.is_some_and(|u| u <= now) {
            self.off();
        }
    }

    fn set(&mut self, on: bool) {
        if let Some(out) = &mut self.out {
            out.set(on);
        }
    }
}

/// A gate: the lock (open while its relay is active), the stack light's
/// green and red, the buzzer. Everything is off, the lock engaged, from the
/// moment it is claimed; and again when it is dropped.
pub struct Gate {
    pub location: Arc<str>,
    pub config: GateConfig,
    lock: Timed,
    green: Timed,
    red: Timed,
    buzzer: Timed,
}

impl Gate {
    pub fn claim(location: Arc<str>, config: GateConfig, pins: &Pins) -> Result<Self, GpioError> {
        let low = config.active_low;
        Ok(Gate {
            lock: Timed::new(pins, Some(config.lock_pin), low)?,
            green: Timed::new(pins, config.green_pin, low)?,
            red: Timed::new(pins, config.red_pin, low)?,
            buzzer: Timed::new(pins, config.buzzer_pin, low)?,
            location,
            config,
        })
    }

    /// Unlocks, green, for `d`; a denial's red and buzzer stop.
    pub fn unlock_for(&mut self, now: Instant, d: Duration) {
        self.red.off();
        self.buzzer.off();
        self.lock.on_for(now, d);
        self.green.on_for(now, d);
    }

    /// Red and the buzzer for `deny_signal`. The lock is left as it is: a
    /// pulse already running for an asset that was released (or an
    /// operator's override) is not cut short under it.
    pub fn signal_denied(&mut self, now: Instant) {
        let d = self.config.deny_signal;
        self.red.on_for(now, d);
        self.buzzer.on_for(now, d);
    }

    pub fn is_locked(&self) -> bool {
        self.lock.until.is_none()
    }

    /// When [`Gate::expire`] next has something to switch off.
    pub fn next_deadline(&self) -> Option<Instant> {
        [&self.lock, &self.green, &self.red, &self.buzzer]
            .iter()
            .filter_map(|t| t.until)
            .min()
    }

    pub fn expire(&mut self, now: Instant) {
        for t in [
            &mut self.lock,
            &mut self.green,
            &mut self.red,
            &mut self.buzzer,
        ] {
            t.expire(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpio::SimGpio;

    #[tokio::test(start_paused = true)]
    async fn a_pulse_is_extended_never_shortened_and_a_grant_silences_a_denial() {
        let dir = tempfile::tempdir().unwrap();
        let sim = Arc::new(SimGpio::bind(&dir.path().join("gpio.sock")).unwrap());
        let pins = Pins::new(sim, Duration::from_millis(20));
        let config: GateConfig = serde_json::from_str(r#"{"lock_pin": 5, "red_pin": 13}"#).unwrap();
        let mut gate = Gate::claim("cage-1".into(), config, &pins).unwrap();
        assert!(gate.is_locked() && gate.next_deadline().is_none());

        let t0 = Instant::now();
        gate.signal_denied(t0);
        assert_eq!(gate.next_deadline(), Some(t0 + Duration::from_secs(3)));
        gate.unlock_for(t0, Duration::from_secs(10));
        gate.unlock_for(t0, Duration::from_secs(5));
        assert!(!gate.is_locked());
        assert_eq!(
            gate.next_deadline(),
            Some(t0 + Duration::from_secs(10)),
            "red is off"
        );
        gate.expire(t0 + Duration::from_secs(9));
        assert!(!gate.is_locked());
        gate.expire(t0 + Duration::from_secs(10));
        assert!(gate.is_locked() && gate.next_deadline().is_none());
    }
}
