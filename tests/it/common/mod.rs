//! Shared harness for custodyd's integration tests: real parts, no mocks.
//!
//! Every test module uses it (`use crate::common::*;`) and gets:
//!
//! - [`Mosquitto`]: a real broker on a free loopback port that can be killed
//!   and restarted on the same port, optionally with a [`TlsListener`] too;
//! - [`Central`]: central's signing key, for signed control messages;
//! - [`Pki`]: a CA per test, and the broker and client certificates it signs;
//! - [`Subscriber`]: a rumqttc client that records every message it is sent
//!   and survives broker restarts, plus [`publish`] for one-off messages;
//! - [`Pty`]: a pseudo-terminal standing in for a serial reader, with a stable
//!   path that survives unplug/replug;
//! - [`VirtualScanner`]: a virtual USB keyboard-wedge scanner through
//!   `/dev/uinput`, likewise, where the machine has uinput;
//! - [`Daemon`]: the real `custodyd` binary run with a test's config;
//! - [`ReaderSim`]: a UHF reader (R2000 or Chafon) answering the daemon's
//!   commands on a [`Pty`];
//! - [`Relay`]: a TCP relay that cuts the daemon's link to the broker;
//! - [`SimPins`]: the daemon's simulated GPIO, driven and watched;
//! - [`gateway_config`], [`TestSite`] and friends: the test site's
//!   configuration, built with `custodyd::config::builder` (durations as
//!   [`secs`] and [`ms`]), and frames;
//! - [`fast_health`] and [`health_where`]: health samples every second;
//! - [`check_delivery`] and [`Ledger`]: custody events by `seq` and
//!   `event_id`, checked for gaps and for duplicates that are not
//!   re-deliveries;
//! - [`wait_until`] and [`free_port`].
//!
//! Synchronisation is always "wait for a condition, with a generous deadline":
//! the tests run on a loaded 2-core machine, so a fixed sleep would either be
//! flaky or slow. The one deliberate exception is
//! [`Subscriber::assert_quiet_for`], whose window *is* the thing measured.

mod central;
mod certs;
mod daemon;
mod gpio;
mod health;
mod ledger;
mod mosquitto;
mod mqtt;
mod process;
mod pty;
mod relay;
mod setup;
mod uinput;

pub use central::Central;
pub use certs::{Issued, Pki};
pub use daemon::Daemon;
pub use gpio::{pulsed, SimPins};
pub use health::{fast_health, health_where};
pub use ledger::{check_delivery, Ledger, Report};
pub use mosquitto::{Mosquitto, TlsListener};
pub use mqtt::{publish, publish_many, Message, Subscriber};
pub use process::*;
pub use pty::{wait_commands, Pty};
pub use relay::{Mode, Relay};
pub use setup::*;
pub use uinput::VirtualScanner;

// The simulated UHF reader is the library's, shared with `custodyd demo`.
pub use custodyd::demo::uhf::{chafon_frame, Command, Kind, ReaderSim, SimTag};

use std::time::{Duration, Instant};

/// `n` seconds, for the configurations tests build.
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `n` milliseconds, likewise.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The default deadline for "this should happen soon": far longer than it
/// takes on an idle machine, so a miss means it is not happening.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds; panics naming `what` after `timeout`.
///
/// For conditions other than MQTT messages (those have
/// [`Subscriber::wait_for`]): a file appearing, a log line, a process exiting.
///
/// Deadlines here are wall-clock (`std::time::Instant`), not tokio time, so
/// they stay honest in a test that pauses tokio's clock: the processes being
/// waited for run in real time.
pub async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}
