//! Processes and ports for the harness: picking a free port, signalling,
//! waiting for and reaping child processes (the daemon, the broker).
//!
//! Also used by the load harness (`examples/load`), which runs the same
//! Mosquitto as the tests.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How often the polling waits look again.
pub const POLL: Duration = Duration::from_millis(20);

/// A loopback TCP port that was free a moment ago.
///
/// The port is released before returning, so someone else may take it before
/// it is used: callers that bind it must handle "address in use" by retrying
/// with another port (as `Mosquitto::start` does).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to pick a free port")
        .port()
}

/// Sends `signal` to a child that has not been reaped yet (so its pid cannot
/// have been reused). A child that already exited is left alone.
pub fn signal_child(child: &mut Child, signal: Signal) {
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
pub async fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
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
pub fn kill_child(child: &mut Child) {
    signal_child(child, Signal::SIGKILL);
    child.wait().expect("waitpid after SIGKILL");
}

/// The last `lines` lines of `text`, for failure messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
