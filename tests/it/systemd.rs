//! The daemon under systemd's notify protocol (`Type=notify`, `WatchdogSec=`,
//! `ExecReload=` sending SIGHUP): the real binary, a real Mosquitto, and a
//! Unix datagram socket bound by the test standing in for systemd's
//! `NOTIFY_SOCKET`.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;
use tempfile::TempDir;
use tokio::net::UnixDatagram;

/// What systemd would receive: every datagram, one state a line.
struct NotifySocket {
    _dir: TempDir,
    path: PathBuf,
    socket: UnixDatagram,
    states: Vec<String>,
}

impl NotifySocket {
    fn bind() -> Self {
        let dir = tempfile::tempdir().expect("tempdir for the notify socket");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            _dir: dir,
            path,
            socket,
            states: Vec::new(),
        }
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("utf-8 tempdir")
    }

    /// Receives until `count` states equal to `state` have arrived in all;
    /// panics with what did arrive after `timeout`.
    async fn wait_for(&mut self, state: &str, count: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while self.count(state) < count {
            match tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await {
                Ok(Ok(n)) => self.push(&buf[..n]),
                Ok(Err(e)) => panic!("notify socket: {e}"),
                Err(_) => panic!(
                    "timed out after {timeout:?} waiting for {count} x {state}; received {:?}",
                    self.states
                ),
            }
        }
    }

    /// Takes whatever is already queued, without waiting.
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.try_recv(&mut buf) {
            self.push(&buf[..n]);
        }
    }

    fn push(&mut self, datagram: &[u8]) {
        let text = std::str::from_utf8(datagram).expect("notify messages are text");
        self.states.extend(text.lines().map(str::to_owned));
    }

    fn count(&self, state: &str) -> usize {
        self.states.iter().filter(|s| *s == state).count()
    }

    fn position(&self, state: &str) -> Option<usize> {
        self.states.iter().position(|s| s == state)
    }

    /// The states received, watchdog pings left out and each
    /// `MONOTONIC_USEC=` value replaced by `*`.
    fn without_pings(&self) -> Vec<String> {
        self.states
            .iter()
            .filter(|s| *s != "WATCHDOG=1")
            .map(|s| match s.split_once('=') {
                Some(("MONOTONIC_USEC", usec)) => {
                    assert!(usec.parse::<u64>().is_ok(), "{s}");
                    "MONOTONIC_USEC=*".to_owned()
                }
                _ => s.clone(),
            })
            .collect()
    }
}

/// A broker and the daemon with one door reader, notifying `notify`, with
/// `WATCHDOG_USEC` set as systemd sets it for `WatchdogSec=`.
async fn start(notify: &NotifySocket, watchdog_usec: Option<&str>) -> (Mosquitto, Pty, Daemon) {
    start_with(notify, watchdog_usec, &[]).await
}

/// [`start`], with more environment variables.
async fn start_with(
    notify: &NotifySocket,
    watchdog_usec: Option<&str>,
    env: &[(&str, &str)],
) -> (Mosquitto, Pty, Daemon) {
    let broker = Mosquitto::start().await;
    let door = Pty::open();
    let mut daemon = Daemon::new();
    for (key, value) in env {
        daemon.set_env(key, value);
    }
    daemon.set_env("NOTIFY_SOCKET", notify.path());
    if let Some(usec) = watchdog_usec {
        daemon.set_env("WATCHDOG_USEC", usec);
    }
    let config = gateway_config(&broker.url(), &daemon.data_dir());
    daemon.spawn(config.door_with_em4100(door.path(), secs(3)));
    (broker, door, daemon)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_after_the_spool_opens_watchdog_while_running_stopping_on_sigterm() {
    let mut notify = NotifySocket::bind();
    let (_broker, _door, mut daemon) = start(&notify, Some("2000000")).await;
    let data_dir = daemon.data_dir();

    notify.wait_for("READY=1", 1, PATIENCE).await;
    assert!(
        data_dir.join("spool.redb").exists(),
        "READY=1 before the spool was opened"
    );
    // Pinged every second (half of WATCHDOG_USEC) while the pipeline is idle
    // and healthy: three pings take at least two seconds.
    notify.wait_for("WATCHDOG=1", 3, PATIENCE).await;
    assert_eq!(
        notify.position("READY=1"),
        Some(0),
        "nothing before READY=1: {:?}",
        notify.states
    );

    let status = daemon.terminate().await;
    assert!(status.success(), "{status}\n{}", daemon.log());
    notify.drain();
    let stopping = notify
        .position("STOPPING=1")
        .unwrap_or_else(|| panic!("no STOPPING=1 after SIGTERM: {:?}", notify.states));
    assert_eq!(
        stopping,
        notify.states.len() - 1,
        "nothing after STOPPING=1: {:?}",
        notify.states
    );
    assert_eq!(notify.count("READY=1"), 1, "{:?}", notify.states);
}

/// A task that panicked (the gate task on a policy expiry, the spool task
/// rendering one) left the daemon up, pinging the watchdog, while releases
/// went undecided. Any panic now stops the pings and ends the process with
/// an error, so systemd restarts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_panics_stops_the_watchdog_and_the_process() {
    let mut notify = NotifySocket::bind();
    let env = [(custodyd::watchdog::TEST_PANIC_ENV, "1")];
    let (_broker, _door, mut daemon) = start_with(&notify, Some("2000000"), &env).await;
    notify.wait_for("READY=1", 1, PATIENCE).await;
    let status = daemon.wait_exit(PATIENCE).await;
    assert!(!status.success(), "{status}\n{}", daemon.log());
    assert!(daemon.log().contains("a task panicked"), "{}", daemon.log());
    notify.drain();
    assert!(
        notify.count("WATCHDOG=1") <= 1,
        "pinged after the panic: {:?}",
        notify.states
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_watchdog_pings_unless_systemd_asks_for_them() {
    let mut notify = NotifySocket::bind();
    let (_broker, _door, mut daemon) = start(&notify, None).await;
    notify.wait_for("READY=1", 1, PATIENCE).await;
    // At once: the signal handlers are in place before READY=1.
    let status = daemon.terminate().await;
    assert!(status.success(), "{status}\n{}", daemon.log());
    notify.drain();
    assert_eq!(notify.states, ["READY=1", "STOPPING=1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_exits_2_without_ready() {
    let mut notify = NotifySocket::bind();
    let mut daemon = Daemon::new();
    daemon.set_env("NOTIFY_SOCKET", notify.path());
    daemon.spawn("[gateway]\nsite = \"no name\"\n");
    let status = daemon.wait_exit(PATIENCE).await;
    assert_eq!(status.code(), Some(2), "{}", daemon.log());
    notify.drain();
    assert_eq!(notify.states, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_bracketed_by_reloading_and_ready_and_the_watchdog_outlives_it() {
    let mut notify = NotifySocket::bind();
    let (_broker, _door, mut daemon) = start(&notify, Some("2000000")).await;
    notify.wait_for("READY=1", 1, PATIENCE).await;

    // The same file twice, as `systemctl reload` would: two fronts (and two
    // presence tasks) replaced. One SIGHUP at a time: signals coalesce.
    for reloads in 1..=2 {
        daemon.signal(Signal::SIGHUP);
        notify.wait_for("READY=1", 1 + reloads, PATIENCE).await;
    }
    // Presence's watchdog stage survived both: an ended stage would stop
    // the pings at once.
    let pings = notify.count("WATCHDOG=1");
    notify.wait_for("WATCHDOG=1", pings + 3, PATIENCE).await;

    // A refused reload stops nothing, so it tells systemd nothing.
    daemon.rewrite_config("[gateway]\nsite = \"no name\"\n");
    daemon.signal(Signal::SIGHUP);
    wait_until(PATIENCE, "the reload to be refused", || {
        daemon.log().contains("reload (SIGHUP) refused")
    })
    .await;

    let status = daemon.terminate().await;
    assert!(status.success(), "{status}\n{}", daemon.log());
    notify.drain();
    let bracket = ["RELOADING=1", "MONOTONIC_USEC=*", "READY=1"];
    let expected: Vec<&str> = std::iter::once("READY=1")
        .chain(bracket)
        .chain(bracket)
        .chain(["STOPPING=1"])
        .collect();
    assert_eq!(notify.without_pings(), expected);
}
