//! The operator's "stop": every long-running command (the daemon, `demo`,
//! `tail`) ends on the same signals, so systemd, a terminal and a test
//! stop them alike.

use tokio::signal::unix::{signal, SignalKind};

/// Completes on SIGINT or SIGTERM.
pub async fn stop() {
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
