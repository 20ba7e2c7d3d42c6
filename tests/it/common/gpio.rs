//! The daemon's simulated GPIO (`[gpio] backend = "sim"`) from a test: drive
//! its inputs, watch its outputs, with deadlines. Levels are electrical
//! (an `active_low` relay is on at `false`).

use std::path::Path;
use std::time::{Duration, Instant};

use custodyd::gpio::sim::Seen;
use custodyd::gpio::SimClient;

use super::PATIENCE;

/// A connection to the daemon's simulated pins.
pub struct SimPins {
    client: SimClient,
    /// Events counted by the client when last looked at.
    events: usize,
}

impl SimPins {
    /// Connects to `socket`, waiting for the daemon to create it.
    pub async fn connect(socket: &Path) -> Self {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match SimClient::connect(socket).await {
                Ok(client) => return SimPins { client, events: 0 },
                Err(e) if Instant::now() >= deadline => {
                    panic!("simulated GPIO {} not reachable: {e}", socket.display())
                }
                Err(_) => tokio::time::sleep(super::POLL).await,
            }
        }
    }

    /// Drives input `pin` to an electrical level.
    pub async fn set(&mut self, pin: u8, high: bool) {
        self.client
            .set(pin, high)
            .await
            .expect("write to simulated GPIO");
    }

    pub fn seen(&self) -> Seen {
        self.client.seen()
    }

    /// The last level of output `pin`, if the daemon has claimed it.
    pub fn level(&self, pin: u8) -> Option<bool> {
        self.seen().outputs.get(&pin).copied()
    }

    /// How many `out` lines have arrived: a mark for [`SimPins::pulsed`].
    pub fn mark(&self) -> usize {
        self.seen().log.len()
    }

    /// Waits until `cond` holds of what has been seen; panics naming
    /// `what` (and showing everything seen) after [`PATIENCE`].
    pub async fn wait(&mut self, what: &str, cond: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let seen = self.seen();
            if cond(&seen) {
                return seen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || seen.closed {
                panic!("simulated GPIO: {what}: not seen within {PATIENCE:?}; saw {seen:?}");
            }
            let wait = self.client.changed(self.events);
            if let Ok(n) = tokio::time::timeout(left.min(Duration::from_secs(1)), wait).await {
                self.events = n;
            }
        }
    }

    /// Waits until output `pin` is at `high`.
    pub async fn wait_level(&mut self, pin: u8, high: bool) {
        self.wait(&format!("GPIO {pin} at {}", u8::from(high)), |s| {
            s.outputs.get(&pin) == Some(&high)
        })
        .await;
    }

    /// Waits until the daemon has closed the socket (it stopped); returns
    /// everything seen.
    pub async fn wait_closed(&mut self) -> Seen {
        self.wait("the daemon closing the socket", |s| s.closed)
            .await
    }
}

/// Whether output `pin` went to `on` and back after `mark` (an index into
/// the log, from [`SimPins::mark`]).
pub fn pulsed(seen: &Seen, pin: u8, on: bool, mark: usize) -> bool {
    let mut changes = seen.log[mark.min(seen.log.len())..]
        .iter()
        .filter(|(p, _)| *p == pin)
        .map(|(_, level)| *level);
    changes.any(|l| l == on) && changes.any(|l| l != on)
}
