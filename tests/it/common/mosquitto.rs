//! A real Mosquitto broker per test, on a free loopback port.

use std::fs::{self, File, OpenOptions};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::{free_port, kill_child, signal_child, tail, wait_child, POLL};

/// Every log line, for the tests: their failure messages show the log.
const LOG_ALL: &[&str] = &["all"];

/// How long a broker may take to open its listener on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `restart` keeps retrying a port that is still taken.
const REBIND_TIMEOUT: Duration = Duration::from_secs(30);

/// One `mosquitto` process listening on `127.0.0.1:port()`.
///
/// Its config, log (`mosquitto.log`) and stderr live in a tempdir that is
/// removed with it; the process is SIGKILLed on drop.
pub struct Mosquitto {
    dir: TempDir,
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Started with [`Mosquitto::start_persistent`].
    persistent: bool,
    /// Mosquitto's `log_type` lines: everything for the tests (their
    /// failure messages show it), less for the load harness.
    log_types: &'static [&'static str],
    /// The TLS listener of [`Mosquitto::start_tls`], on `tls_port`.
    tls: Option<TlsListener>,
    tls_port: u16,
    /// More `mosquitto.conf` lines for the default listener.
    settings: String,
    /// The text of the `acl_file`, if the broker has one.
    acl: Option<String>,
}

/// A TLS listener on a second port, beside the plain one (which the tests'
/// subscribers keep using). PEM files.
pub struct TlsListener {
    pub cafile: PathBuf,
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    /// Mutual TLS: refuse clients that present no certificate signed by `cafile`.
    pub require_certificate: bool,
}

/// Why one launch attempt did not give a running broker.
enum Launch {
    /// The port was taken (by someone else, or our own old socket).
    AddrInUse,
}

impl Mosquitto {
    /// Starts a broker on a fresh free port and returns once it accepts TCP
    /// connections. Retries with another port if the picked one is taken
    /// between picking and binding.
    pub async fn start() -> Self {
        Self::start_with(false, LOG_ALL, None).await
    }

    /// Like [`Mosquitto::start`], with more `mosquitto.conf` lines after the
    /// defaults, such as `max_packet_size 4096` or `allow_anonymous false`,
    /// `password_file`, `acl_file`; files they name can go in
    /// [`Mosquitto::dir`].
    pub async fn start_configured(settings: &str) -> Self {
        Self::launch_new(false, LOG_ALL, None, settings.into(), None).await
    }

    /// Like [`Mosquitto::start`], with an `acl_file` of this text for every
    /// client (they are all anonymous); [`Mosquitto::set_acl`] changes it.
    pub async fn start_with_acl(acl: &str) -> Self {
        Self::launch_new(false, LOG_ALL, None, String::new(), Some(acl.into())).await
    }

    /// Rewrites the ACL file and makes the running broker read it again
    /// (SIGHUP), as an administrator fixing a typo would.
    pub fn set_acl(&mut self, acl: &str) {
        assert!(self.acl.is_some(), "started without an ACL file");
        fs::write(self.dir.path().join("acl.conf"), acl).expect("write acl.conf");
        self.acl = Some(acl.into());
        signal_child(
            self.child.as_mut().expect("mosquitto is not running"),
            Signal::SIGHUP,
        );
    }

    /// Like [`Mosquitto::start`], plus a TLS listener on [`Mosquitto::tls_url`].
    pub async fn start_tls(tls: TlsListener) -> Self {
        Self::start_with(false, LOG_ALL, Some(tls)).await
    }

    /// Like [`Mosquitto::start`], but without mosquitto's per-message debug
    /// log, which would cost the broker more than the traffic itself: for
    /// measurements (the load harness).
    #[allow(dead_code)] // the load harness's alone (examples/load includes this file)
    pub async fn start_quiet() -> Self {
        Self::start_with(false, &["error", "warning", "notice", "information"], None).await
    }

    /// Like [`Mosquitto::start`], but a broker that keeps what it has
    /// acknowledged across [`Mosquitto::stop`] + [`Mosquitto::restart`]:
    ///
    /// - `persistence true` in the tempdir, `autosave_interval 1`: SIGTERM
    ///   ([`Mosquitto::stop`]) saves the sessions and their queued QoS 1
    ///   messages, and the restarted broker loads them. [`Mosquitto::kill`]
    ///   still loses whatever arrived since the last autosave, as a crashed
    ///   broker does;
    /// - and, as on every broker started here, `max_queued_messages 0`,
    ///   which a subscriber away during a restart needs.
    ///
    /// Pair it with [`Subscriber::connect_persistent`], whose session (and
    /// so its queue) survives both its own disconnects and broker restarts.
    ///
    /// [`Subscriber::connect_persistent`]: super::Subscriber::connect_persistent
    pub async fn start_persistent() -> Self {
        Self::start_with(true, LOG_ALL, None).await
    }

    async fn start_with(
        persistent: bool,
        log_types: &'static [&'static str],
        tls: Option<TlsListener>,
    ) -> Self {
        Self::launch_new(persistent, log_types, tls, String::new(), None).await
    }

    async fn launch_new(
        persistent: bool,
        log_types: &'static [&'static str],
        tls: Option<TlsListener>,
        settings: String,
        acl: Option<String>,
    ) -> Self {
        let mut broker = Mosquitto {
            dir: tempfile::Builder::new()
                .prefix("custodyd-mosquitto-")
                .tempdir()
                .expect("create mosquitto tempdir"),
            binary: find_binary(),
            port: 0,
            child: None,
            persistent,
            log_types,
            tls,
            tls_port: 0,
            settings,
            acl,
        };
        for _ in 0..20 {
            broker.port = free_port();
            if broker.tls.is_some() {
                broker.tls_port = free_port();
                if broker.tls_port == broker.port {
                    continue;
                }
            }
            if broker.launch().await.is_ok() {
                return broker;
            }
        }
        panic!("mosquitto: 20 free ports in a row were taken before it could bind them");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtts://127.0.0.1:PORT` of the TLS listener: an IP address, so the
    /// broker's certificate is checked against its IP subjectAltName.
    pub fn tls_url(&self) -> String {
        assert!(self.tls.is_some(), "started without a TLS listener");
        format!("mqtts://127.0.0.1:{}", self.tls_port)
    }

    /// The broker process, while it runs (the load harness samples its CPU).
    #[allow(dead_code)] // the load harness's alone (examples/load includes this file)
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `mqtt://127.0.0.1:PORT`, the form custodyd's config takes.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// SIGKILL and reap: a crash, connections drop without a goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_child(&mut child);
        }
    }

    /// SIGTERM and wait for a clean exit. A persistent broker saves its
    /// state on the way out (checked here).
    pub async fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("mosquitto is not running");
        signal_child(&mut child, Signal::SIGTERM);
        match wait_child(&mut child, READY_TIMEOUT).await {
            Some(status) => {
                // A broker that cannot write its file still exits cleanly;
                // a test counting on persistence must not go on silently.
                let saved = self.dir.path().join("mosquitto.db");
                assert!(
                    !self.persistent || saved.is_file(),
                    "mosquitto stopped without saving {}\n{}",
                    saved.display(),
                    tail(&self.log(), 40)
                );
                status
            }
            None => {
                kill_child(&mut child);
                panic!(
                    "mosquitto ignored SIGTERM for {READY_TIMEOUT:?}\n{}",
                    tail(&self.log(), 40)
                );
            }
        }
    }

    /// Starts the broker again on the same port (killing it first if it is
    /// still running). Retries while the port is still taken: mosquitto sets
    /// SO_REUSEADDR, so its own old connections in TIME_WAIT do not block the
    /// bind, but the retry also covers a slow exit.
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + REBIND_TIMEOUT;
        while self.launch().await.is_err() {
            if Instant::now() >= deadline {
                panic!(
                    "mosquitto could not bind port {} again within {REBIND_TIMEOUT:?}\n{}",
                    self.port,
                    tail(&self.log(), 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The broker's log file and stderr so far (all runs).
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("mosquitto.log"), read("mosquitto.stderr"))
    }

    /// One attempt to run the broker on `self.port`; returns when it is
    /// listening, `Err` if the port was taken, panics on anything else.
    async fn launch(&mut self) -> Result<(), Launch> {
        assert!(self.child.is_none(), "mosquitto is already running");
        let dir = self.dir.path();
        let log_path = dir.join("mosquitto.log");
        let config = dir.join("mosquitto.conf");
        // `user root`: started as root, mosquitto otherwise switches to the
        // `mosquitto` user and can no longer write its log (or its
        // persistence file) into this 0700 tempdir (it then fails to start,
        // or silently never saves). Ignored when not run as root.
        let persistence = if self.persistent {
            // The trailing slash is required: it is a prefix, not a dir.
            format!(
                "persistence true\n\
                 persistence_location {}/\n\
                 autosave_interval 1\n",
                dir.display()
            )
        } else {
            "persistence false\n".to_owned()
        };
        // No cap on the QoS 1 messages queued per client, on every broker:
        // Mosquitto's default (1000) silently drops messages it has already
        // acknowledged to the publisher once a subscriber is that far
        // behind, which a backlog drain at tens of thousands of events a
        // second easily is, and a test (or the load harness) would count
        // them as lost by custodyd.
        let persistence = persistence + "max_queued_messages 0\n";
        let mut settings = self.settings.clone();
        if !settings.is_empty() && !settings.ends_with('\n') {
            settings.push('\n');
        }
        if let Some(acl) = &self.acl {
            let file = dir.join("acl.conf");
            fs::write(&file, acl).expect("write acl.conf");
            settings += &format!("acl_file {}\n", file.display());
        }
        let log_types: String = self
            .log_types
            .iter()
            .map(|t| format!("log_type {t}\n"))
            .collect();
        // Listener settings follow their `listener` line, so this goes last.
        let tls = self.tls.as_ref().map_or(String::new(), |tls| {
            format!(
                "listener {} 127.0.0.1\n\
                 cafile {}\n\
                 certfile {}\n\
                 keyfile {}\n\
                 require_certificate {}\n",
                self.tls_port,
                tls.cafile.display(),
                tls.certfile.display(),
                tls.keyfile.display(),
                tls.require_certificate
            )
        });
        fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\n\
                 allow_anonymous true\n\
                 {persistence}\
                 {settings}\
                 user root\n\
                 log_dest file {log}\n\
                 {log_types}\
                 {tls}",
                port = self.port,
                log = log_path.display()
            ),
        )
        .expect("write mosquitto.conf");
        // Only the log written by this run counts when looking for readiness.
        let log_start = fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let stderr = append(&dir.join("mosquitto.stderr"));
        let mut child = Command::new(&self.binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("dup stderr file"))
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()));

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let this_run = fs::read(&log_path)
                .map(|all| String::from_utf8_lossy(&all[log_start.min(all.len())..]).into_owned())
                .unwrap_or_default();
            if let Some(status) = child.try_wait().expect("waitpid on mosquitto") {
                if this_run.contains("Address already in use") {
                    return Err(Launch::AddrInUse);
                }
                panic!("mosquitto exited ({status}) while starting\n{}", self.log());
            }
            // "... running" is logged once every listener is bound, so a TCP
            // answer after it is ours, not another test's broker that
            // happened to grab the same port.
            if this_run.contains(" running")
                && TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok()
            {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                kill_child(&mut child);
                panic!(
                    "mosquitto did not listen on port {} within {READY_TIMEOUT:?}\n{}",
                    self.port,
                    self.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// `mosquitto` from PATH, else the Debian location (/usr/sbin is often not
/// on a non-root PATH).
fn find_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "mosquitto not found (PATH, /usr/sbin, /usr/local/sbin): the integration \
                 tests need a real broker. Run `scripts/test.sh` or `.ci/run`, which install \
                 it, or `apt-get install mosquitto`."
            )
        })
}
