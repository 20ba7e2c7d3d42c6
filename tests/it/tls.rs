//! The broker link over TLS, against a real Mosquitto TLS listener with
//! certificates made per test, through the real `custodyd` binary; the
//! password hygiene; and `custodyd tail`.
//!
//! The tests' subscribers use the broker's plain listener: what they see is
//! what the broker accepted over TLS.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::common::*;
use custodyd::config::builder::path;

const CARD: &str = "62E3086CED";

/// `[mqtt]`'s TLS keys: the test CA, and a client certificate if given.
fn with_tls(config: ConfigBuilder, pki: &Pki, client: Option<&Issued>) -> ConfigBuilder {
    let config = config.section_key("mqtt", "ca_file", path(&pki.ca_file()));
    match client {
        Some(client) => config
            .section_key("mqtt", "client_cert_file", path(&client.cert))
            .section_key("mqtt", "client_key_file", path(&client.key)),
        None => config,
    }
}

/// The daemon's configuration: the broker at `url` with what `mqtt` adds,
/// and a dock door whose reader is `door`.
fn daemon_config(
    url: &str,
    daemon: &Daemon,
    mqtt: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    door: &Pty,
) -> ConfigBuilder {
    mqtt(gateway_config(url, &daemon.data_dir())).door_with_em4100(door.path(), secs(1))
}

fn custodyd(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custodyd"))
        .args(args)
        .arg(config)
        .output()
        .expect("run custodyd")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A broker whose certificate is signed by `pki` for `names`.
async fn tls_broker(pki: &Pki, names: &[&str], require_certificate: bool) -> Mosquitto {
    let server = pki.server("broker", names);
    Mosquitto::start_tls(TlsListener {
        cafile: pki.ca_file(),
        certfile: server.cert,
        keyfile: server.key,
        require_certificate,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_over_mutual_tls() {
    let pki = Pki::new();
    let broker = tls_broker(&pki, &["localhost", "127.0.0.1"], true).await;
    let client = pki.client("gw-1", "gw-1");
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let mut daemon = Daemon::new();
    daemon.spawn(daemon_config(
        &broker.tls_url(),
        &daemon,
        |c| with_tls(c, &pki, Some(&client)),
        &door,
    ));
    wait_reader(&sub, "door1-em", "up").await;

    door.write(&em4100_frame(CARD)).await;
    let msgs = sub
        .wait_for(|m| !transitions(m, "arrived", CARD).is_empty(), PATIENCE)
        .await;
    assert_eq!(transitions(&msgs, "arrived", CARD)[0]["reader"], "door1-em");
    // The daemon's only way in was the TLS listener.
    let tls_port = broker.tls_url().rsplit(':').next().unwrap().to_owned();
    assert!(
        broker.log().contains(&format!("on port {tls_port}.")),
        "no connection on the TLS port {tls_port}:\n{}",
        tail(&broker.log(), 40)
    );
}

/// A daemon that trusts `pki` but has no client certificate, against a
/// broker whose certificate `pki` signed for `names`. The daemon must say why
/// it is refused (`expected`, in its log), the broker must get nothing, and a
/// card read meanwhile must stay spooled through a stop. Returns the broker,
/// the stopped daemon and its door reader.
async fn refused_and_spooled(
    pki: &Pki,
    names: &[&str],
    require_certificate: bool,
    expected: &[&str],
) -> (Mosquitto, Daemon, Pty) {
    let broker = tls_broker(pki, names, require_certificate).await;
    let mut daemon = Daemon::new();
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    daemon.spawn(daemon_config(
        &broker.tls_url(),
        &daemon,
        |c| with_tls(c, pki, None),
        &door,
    ));
    wait_until(PATIENCE, "the daemon logs the refusal", || {
        let log = daemon.log();
        expected.iter().all(|e| log.contains(e))
    })
    .await;
    wait_until(PATIENCE, "the reader is up", || {
        daemon.log().contains("reader up")
    })
    .await;
    door.write(&em4100_frame(CARD)).await;
    wait_until(PATIENCE, "the event is spooled", || {
        daemon.log().contains("spool committed seq")
    })
    .await;

    sub.flush().await;
    let gateway: Vec<Message> = sub
        .messages()
        .into_iter()
        .filter(|m| m.topic.starts_with(GW))
        .collect();
    assert!(gateway.is_empty(), "the broker took {gateway:?}");
    assert!(daemon.terminate().await.success());
    let stats = text(&custodyd(
        &["spool", "stats", "--config"],
        &daemon.dir().join("custodyd.toml"),
    ));
    let depth: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("depth"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no depth in:\n{stats}"));
    assert!(depth >= 1, "the event did not stay spooled:\n{stats}");
    (broker, daemon, door)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_broker_whose_certificate_names_another_host() {
    // Signed by the right CA, but for another name than the URL's 127.0.0.1.
    refused_and_spooled(
        &Pki::new(),
        &["other.example"],
        false,
        &[
            "cannot reach broker",
            "not valid for name \"127.0.0.1\"",
            "other.example",
            "does not name the host in mqtt.url",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_requiring_a_client_certificate_refuses_none_and_gets_the_events_once_given_one() {
    let pki = Pki::new();
    let (broker, mut daemon, door) = refused_and_spooled(
        &pki,
        &["127.0.0.1"],
        true,
        &[
            "cannot reach broker",
            "CertificateRequired",
            "set mqtt.client_cert_file and mqtt.client_key_file",
        ],
    )
    .await;

    // Given a certificate, the same daemon delivers what it kept.
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let client = pki.client("gw-1", "gw-1");
    let fixed = daemon_config(
        &broker.tls_url(),
        &daemon,
        |c| with_tls(c, &pki, Some(&client)),
        &door,
    );
    daemon.spawn(&fixed);
    sub.wait_for(|m| !transitions(m, "arrived", CARD).is_empty(), PATIENCE)
        .await;
}

#[test]
fn check_config_names_the_tls_key_at_fault() {
    let pki = Pki::new();
    let client = pki.client("gw-1", "gw-1");
    let other = pki.client("other", "other");
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    fs::write(&not_pem, "hello\n").unwrap();
    // Deliberately broken files: text appended to the `[mqtt]` table, last.
    let base = gateway_config("mqtts://127.0.0.1:8883", dir.path()).to_string();
    let path = dir.path().join("custodyd.toml");
    let cases: &[(String, &str, &str)] = &[
        (
            format!("ca_file = {:?}\n", dir.path().join("missing.pem")),
            "mqtt.ca_file: ",
            "cannot read",
        ),
        (
            format!("ca_file = {not_pem:?}\n"),
            "mqtt.ca_file: ",
            "no PEM certificate",
        ),
        (
            format!("client_cert_file = {:?}\n", client.cert),
            "mqtt.client_key_file: ",
            "is required with mqtt.client_cert_file",
        ),
        (
            format!(
                "client_cert_file = {:?}\nclient_key_file = {not_pem:?}\n",
                client.cert
            ),
            "mqtt.client_key_file: ",
            "no PEM private key",
        ),
        (
            format!(
                "client_cert_file = {:?}\nclient_key_file = {:?}\n",
                client.cert, other.key
            ),
            "mqtt.client_key_file: ",
            "does not go with mqtt.client_cert_file",
        ),
    ];
    for (keys, key, problem) in cases {
        fs::write(&path, base.clone() + keys).unwrap();
        let out = custodyd(&["check-config"], &path);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{keys}: {shown}");
        assert!(
            shown
                .lines()
                .any(|l| l.contains(key) && l.contains(problem)),
            "{keys}: expected {key}{problem} in:\n{shown}"
        );
    }

    let good = gateway_config("mqtts://127.0.0.1:8883", dir.path());
    fs::write(&path, with_tls(good, &pki, Some(&client)).to_string()).unwrap();
    let out = custodyd(&["check-config"], &path);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("(TLS, CAs from {}", pki.ca_file().display())),
        "{}",
        text(&out)
    );
}

const SECRET: &str = "pw-Kx81-not-for-logs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_is_never_shown_and_a_world_readable_file_is_warned_about() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let mut daemon = Daemon::new();
    let login = |c: ConfigBuilder| {
        c.section_key("mqtt", "username", "custodyd")
            .section_key("mqtt", "password", SECRET)
    };
    let config = daemon_config(&broker.url(), &daemon, login, &door).to_string();
    let path = daemon.dir().join("custodyd.toml");
    let set_mode = |mode: u32| {
        fs::write(&path, &config).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };

    set_mode(0o644);
    let out = custodyd(&["check-config"], &path);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("warning: mqtt.password: ") && shown.contains("(mode 0644)"),
        "{shown}"
    );
    assert!(shown.contains("user custodyd, password set"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");

    set_mode(0o600);
    let shown = text(&custodyd(&["check-config"], &path));
    assert!(!shown.contains("warning"), "{shown}");

    // An invalid file names the bad key, never the password beside it.
    fs::write(&path, config.replace("[mqtt]", "[mqtt]\ninflight = 0")).unwrap();
    let out = custodyd(&["check-config"], &path);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("mqtt.inflight"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");

    // The daemon logs in with it, warns at start-up, and never logs it.
    set_mode(0o644);
    daemon.spawn(&config);
    wait_reader(&sub, "door1-em", "up").await;
    door.write(&em4100_frame(CARD)).await;
    sub.wait_for(|m| !transitions(m, "arrived", CARD).is_empty(), PATIENCE)
        .await;
    let log = daemon.log();
    assert!(
        log.contains("WARN") && log.contains("mqtt.password: "),
        "{log}"
    );
    assert!(!log.contains(SECRET), "{log}");
    assert!(
        broker.log().contains("u'custodyd'"),
        "the broker saw no login:\n{}",
        tail(&broker.log(), 40)
    );
}

/// `custodyd tail` as a child process, its output in files; killed on drop.
struct Tail {
    child: Child,
    dir: tempfile::TempDir,
}

impl Tail {
    fn spawn(config: &ConfigBuilder, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custodyd.toml");
        fs::write(&path, config.to_string()).unwrap();
        let file = |name: &str| fs::File::create(dir.path().join(name)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_custodyd"))
            .args(["tail", "--config"])
            .arg(&path)
            .args(args)
            // Central European Time in POSIX form: needs no tz database.
            .env("TZ", "CET-1")
            .stdin(Stdio::null())
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("spawn custodyd tail");
        Tail { child, dir }
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

/// A custody event as the daemon publishes it (docs/contract.md).
fn departed_at(location: &str) -> String {
    format!(
        r#"{{"schema":"custodyd.custody.v1","event_id":"01JDZ4Q8M2W4H3V6X5R7K9T0AB","seq":42,
 "site":"test-site","gateway":"gw-1","location":"{location}",
 "observed_at":"2026-11-22T09:14:03.120Z","clock_synced":true,
 "transition":"departed","from_zone":null,"to_zone":null,
 "asset":{{"id":"{CARD}","raw":"{CARD}","source":"rfid"}},
 "reader":"door1-em","reads":30,
 "first_seen":"2026-11-22T09:13:55.020Z","last_seen":"2026-11-22T09:13:58.120Z",
 "antennas":[],"rssi_max":null}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_a_custody_event_as_one_line_over_mutual_tls() {
    let pki = Pki::new();
    let broker = tls_broker(&pki, &["127.0.0.1"], true).await;
    let client = pki.client("gw-1", "gw-1");
    let scratch = tempfile::tempdir().unwrap();
    let config = with_tls(
        gateway_config(&broker.tls_url(), scratch.path()),
        &pki,
        Some(&client),
    );
    let tail = Tail::spawn(&config, &["--location", "dock-door-1"]);
    wait_until(PATIENCE, "tail has subscribed", || {
        tail.read("stderr").contains("subscribed")
    })
    .await;

    let custody = |location: &str| format!("{GW}/custody/{location}");
    publish(
        &broker.url(),
        &custody("dock-door-2"),
        departed_at("dock-door-2"),
        false,
    )
    .await;
    publish(
        &broker.url(),
        &custody("dock-door-1"),
        departed_at("dock-door-1"),
        false,
    )
    .await;
    wait_until(PATIENCE, "tail printed the event", || {
        !tail.read("stdout").is_empty()
    })
    .await;
    // Mosquitto delivers in order: had dock-door-2 been printed, it would be first.
    assert_eq!(
        tail.read("stdout"),
        "2026-11-22 10:14:03  dock-door-1       departed  62E3086CED  reader door1-em\n",
        "stderr: {}",
        tail.read("stderr")
    );
}
