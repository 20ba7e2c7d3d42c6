//! Shared harness for custodyd's integration tests: real parts, no mocks.
//!
//! Every test file includes it with `mod common;` and gets:
//!
//! - [`Mosquitto`]: a real broker on a free loopback port that can be killed
//!   and restarted on the same port;
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
//! - [`gateway_config`] and friends: configuration snippets and frames;
//! - [`check_delivery`] and [`Ledger`]: custody events by `seq` and
//!   `event_id`, checked for gaps and for duplicates that are not
//!   re-deliveries;
//! - [`wait_until`] and [`free_port`].
//!
//! Synchronisation is always "wait for a condition, with a generous deadline":
//! the tests run on a loaded 2-core machine, so a fixed sleep would either be
//! flaky or slow. The one deliberate exception is
//! [`Subscriber::assert_quiet_for`], whose window *is* the thing measured.

// Each test file compiles its own copy of this module and uses a subset of
// it; without this every helper (and re-export) that one file does not use
// would warn there, and clippy runs with -D warnings.
#![allow(dead_code, unused_imports)]

mod daemon;
mod ledger;
mod mosquitto;
mod mqtt;
mod pty;
mod reader_sim;
mod relay;
mod setup;
mod uinput;

pub use daemon::Daemon;
pub use ledger::{check_delivery, Ledger, Report};
pub use mosquitto::Mosquitto;
pub use mqtt::{publish, Message, Subscriber};
pub use pty::Pty;
pub use reader_sim::{a0_frame, chafon_frame, Command, Kind, ReaderSim, SimTag};
pub use relay::{Mode, Relay};
pub use setup::*;
pub use uinput::VirtualScanner;

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The default deadline for "this should happen soon": far longer than it
/// takes on an idle machine, so a miss means it is not happening.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How often the polling waits look again.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// A loopback TCP port that was free a moment ago.
///
/// The port is released before returning, so someone else may take it before
/// it is used: callers that bind it must handle "address in use" by retrying
/// with another port (as [`Mosquitto::start`] does).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to pick a free port")
        .port()
}

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

/// Sends `signal` to a child that has not been reaped yet (so its pid cannot
/// have been reused). A child that already exited is left alone.
pub(crate) fn signal_child(child: &mut Child, signal: Signal) {
    if matches!(child.try_wait(), Ok(None)) {
        let pid = Pid::from_raw(child.id() as i32);
        // ESRCH is possible if it exits right now; anything else is a bug here.
        if let Err(e) = kill(pid, signal) {
            assert_eq!(e, nix::errno::Errno::ESRCH, "kill({pid}, {signal}) failed");
        }
    }
}

/// Waits (without blocking the runtime) for a child to exit and reaps it;
/// `None` if it is still running after `timeout`.
pub(crate) async fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waitpid on a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// SIGKILL and reap; safe to call on a child that already exited.
pub(crate) fn kill_child(child: &mut Child) {
    signal_child(child, Signal::SIGKILL);
    child.wait().expect("waitpid after SIGKILL");
}

/// The last `lines` lines of `text`, for failure messages.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
