//! The real `custodyd` binary, run as `custodyd run --config <file>`.

use std::fmt::Display;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::{kill_child, signal_child, tail, wait_child};

/// How long a graceful shutdown may take before the test calls it hung.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);

/// One daemon under test: its own tempdir for config, data and log, and at
/// most one running process. The process is SIGKILLed on drop, and if the
/// test is failing the end of its log is printed.
///
/// ```ignore
/// let mut daemon = Daemon::new();
/// let config = format!("data_dir = {:?}\n...", daemon.data_dir());
/// daemon.spawn(&config);
/// ```
pub struct Daemon {
    dir: TempDir,
    /// Written by the first `spawn`, reused by `restart`.
    config: Option<PathBuf>,
    child: Option<Child>,
    runs: u32,
    /// Extra environment for every run, from [`Daemon::set_env`].
    env: Vec<(String, String)>,
}

impl Daemon {
    /// A fresh tempdir; nothing runs until [`Daemon::spawn`].
    ///
    /// The daemon's clock counts as NTP-synchronised whatever the machine's
    /// state (through the daemon's clock test seam), so tests do not depend
    /// on the host's NTP and get no `clock_unsynced` alarm unless they ask
    /// for one with [`Daemon::set_clock_synced`].
    pub fn new() -> Self {
        let mut daemon = Daemon {
            dir: tempfile::Builder::new()
                .prefix("custodyd-daemon-")
                .tempdir()
                .expect("create daemon tempdir"),
            config: None,
            child: None,
            runs: 0,
            env: Vec::new(),
        };
        daemon.set_clock_synced(true);
        let clock = daemon.clock_path().display().to_string();
        daemon.set_env(custodyd::clock::TEST_STATE_ENV, &clock);
        daemon
    }

    /// What the daemon's clock test seam says from now on: synchronised or not.
    pub fn set_clock_synced(&self, synced: bool) {
        let state = if synced { "synced" } else { "unsynced" };
        fs::write(self.clock_path(), state).expect("write the clock state file");
    }

    fn clock_path(&self) -> PathBuf {
        self.dir.path().join("clock-state")
    }

    /// The tempdir, for any other files a test wants next to the daemon.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<tempdir>/data`, created empty on first use; put it in the config.
    /// It survives [`Daemon::restart`], as a real data dir survives a reboot.
    pub fn data_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("data");
        fs::create_dir_all(&dir).expect("create daemon data_dir");
        dir
    }

    /// Writes `config_toml` (a built configuration, or text a test writes
    /// by hand) to `<tempdir>/custodyd.toml` and starts the daemon with it
    /// (`RUST_LOG=custodyd=debug`, `NO_COLOR=1`, output to [`Daemon::log`]).
    pub fn spawn(&mut self, config_toml: impl Display) {
        let path = self.dir.path().join("custodyd.toml");
        fs::write(&path, config_toml.to_string()).expect("write custodyd.toml");
        self.config = Some(path);
        self.restart();
    }

    /// Replaces the config file of a running daemon (which reads it again on
    /// a reload); [`Daemon::restart`] uses it too.
    pub fn rewrite_config(&self, config_toml: impl Display) {
        let path = self
            .config
            .as_ref()
            .expect("spawn() before rewrite_config()");
        fs::write(path, config_toml.to_string()).expect("rewrite custodyd.toml");
    }

    /// Sets an environment variable for the next start (and every one after).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.into(), value.into()));
    }

    /// Removes an environment variable from the next start on.
    pub fn unset_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// Sends `signal` to the running process.
    pub fn signal(&mut self, signal: Signal) {
        signal_child(
            self.child.as_mut().expect("custodyd is not running"),
            signal,
        );
    }

    /// Starts it again with the same config and data dir. Stop it first
    /// ([`Daemon::terminate`] or [`Daemon::kill`]): which one is the test.
    pub fn restart(&mut self) {
        assert!(
            !self.is_running(),
            "custodyd is still running: terminate() or kill() it before restarting"
        );
        let config = self.config.as_ref().expect("spawn() before restart()");
        self.runs += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open custodyd.log");
        writeln!(log, "===== harness: custodyd run {} =====", self.runs).expect("write log");
        let child = Command::new(env!("CARGO_BIN_EXE_custodyd"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "custodyd=debug")
            // Plain text in the log file, so tests can search it.
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log file"))
            .stderr(log)
            .spawn()
            .expect("spawn custodyd");
        self.child = Some(child);
    }

    /// The running process's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("custodyd is not running").id()
    }

    /// Whether a process was started and has not exited.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, then waits for the exit; panics (with the log) if it takes
    /// longer than 30 s.
    pub async fn terminate(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("custodyd was never started");
        signal_child(child, Signal::SIGTERM);
        self.wait_exit(TERMINATE_TIMEOUT).await
    }

    /// SIGKILL and reap: a crash or power cut, nothing gets flushed.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            kill_child(child);
        }
    }

    /// Waits for the process to exit by itself (e.g. on a bad config) and
    /// returns its status; panics with the log after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("custodyd was never started");
        if let Some(status) = wait_child(child, timeout).await {
            return status;
        }
        let pid = child.id();
        kill_child(child);
        panic!(
            "custodyd (pid {pid}) did not exit within {timeout:?}\n{}",
            tail(&self.log(), 60)
        );
    }

    /// The stdout of `custodyd spool <args>` on this daemon's spool (stop
    /// the daemon first); panics if the command fails.
    pub fn spool_command(&self, args: &[&str]) -> String {
        let config = self
            .config
            .as_ref()
            .expect("spawn() before spool_command()");
        let out = Command::new(env!("CARGO_BIN_EXE_custodyd"))
            .args(["spool", "--config"])
            .arg(config)
            .args(args)
            .output()
            .expect("run custodyd spool");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Everything the daemon printed so far, stdout and stderr interleaved,
    /// all runs (each starts with a `===== harness: custodyd run N` line).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("custodyd.log")
    }
}

impl Default for Daemon {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && self.runs > 0 {
            eprintln!(
                "----- custodyd log (last 100 lines) -----\n{}\n-----------------------------------------",
                tail(&self.log(), 100)
            );
        }
    }
}
