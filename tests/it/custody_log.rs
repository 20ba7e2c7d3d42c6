//! The custody log through the real binary, a real Mosquitto and the real
//! capture tool (`mosquitto_sub -v`): a capture over a `kill -9` verifies
//! with `custodyd verify`; altering, removing, inserting or reordering an
//! event, or adding a checkpoint signed by another key, makes it fail and
//! name the `seq`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::*;
use custodyd::audit::{chain, checkpoint, DeviceKey};

/// `mosquitto_sub -v` on every topic of the test gateway, into a file.
struct Capture {
    child: Child,
    path: PathBuf,
}

impl Capture {
    async fn start(broker: &Mosquitto, dir: &Path) -> Capture {
        let path = dir.join("capture.txt");
        let child = Command::new("mosquitto_sub")
            .args(["-v", "-q", "1", "-h", "127.0.0.1", "-p"])
            .arg(broker.port().to_string())
            .args(["-t", &format!("{GW}/#")])
            .stdout(fs::File::create(&path).expect("create the capture"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub");
        let capture = Capture { child, path };
        // Subscribed once a probe comes through.
        let probe = format!("{GW}/probe");
        wait_until(PATIENCE, "mosquitto_sub receives", || {
            let line = capture.text().contains(&probe);
            if !line {
                let url = broker.url();
                let probe = probe.clone();
                tokio::spawn(async move { publish(&url, &probe, "x", false).await });
            }
            line
        })
        .await;
        capture
    }

    fn text(&self) -> String {
        fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// `(seq, line)` of every captured event (re-deliveries included).
    fn events(&self) -> Vec<(u64, String)> {
        event_lines(&self.text())
    }

    /// The `seq` of the newest checkpoint captured.
    fn checkpoint(&self) -> Option<u64> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{GW}/checkpoint ")))
            .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .filter_map(|v| v["seq"].as_u64())
            .max()
    }

    fn stop(mut self) -> String {
        kill_child(&mut self.child);
        self.text()
    }
}

fn event_lines(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .filter(|l| {
            l.starts_with(&format!("{GW}/custody/")) || l.starts_with(&format!("{GW}/alarm/"))
        })
        .map(|l| {
            let payload = l.split_once(' ').expect("topic payload").1;
            let v: serde_json::Value = serde_json::from_str(payload).expect("event JSON");
            (v["seq"].as_u64().expect("seq"), l.to_owned())
        })
        .collect()
}

fn max_seq(capture: &Capture) -> u64 {
    capture.events().iter().map(|e| e.0).max().unwrap_or(0)
}

fn custodyd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_custodyd"))
        .args(args)
        .output()
        .expect("run custodyd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `custodyd verify` on `text`; its exit code and report.
fn verify(dir: &Path, name: &str, key: &str, text: &str) -> (i32, String) {
    let file = dir.join(name);
    fs::write(&file, text).expect("write a capture");
    let (code, stdout, stderr) = custodyd(&["verify", "--key", key, file.to_str().unwrap()]);
    (code, stdout + &stderr)
}

/// Replaces every copy of the event at `seq` with `f` of its line.
fn edit(text: &str, seq: u64, f: impl Fn(&str) -> Option<String>) -> String {
    let targets: Vec<String> = event_lines(text)
        .into_iter()
        .filter(|(s, _)| *s == seq)
        .map(|(_, l)| l)
        .collect();
    assert!(!targets.is_empty(), "seq {seq} was captured");
    text.lines()
        .filter_map(|l| match targets.iter().any(|t| t == l) {
            true => f(l),
            false => Some(l.to_owned()),
        })
        .map(|l| l + "\n")
        .collect()
}

fn renumber(line: &str, from: u64, to: u64) -> String {
    let (old, new) = (format!("\"seq\":{from},"), format!("\"seq\":{to},"));
    assert!(line.contains(&old), "{line}");
    line.replacen(&old, &new, 1)
}

async fn scan(scanner: &Pty, capture: &Capture, codes: std::ops::Range<u32>) {
    let before = capture.text().matches("\"transition\":\"scanned\"").count();
    for i in codes.clone() {
        scanner.write(format!("ASSET-{i}\r").as_bytes()).await;
    }
    let want = before + codes.len();
    wait_until(PATIENCE, "the scans are captured", || {
        capture.text().matches("\"transition\":\"scanned\"").count() >= want
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_over_a_kill_9_verifies_and_every_tampering_is_named() {
    let broker = Mosquitto::start().await;
    let mut daemon = Daemon::new();
    let capture = Capture::start(&broker, daemon.dir()).await;
    let scanner = Pty::open();
    let config = gateway_config(&broker.url(), &daemon.data_dir())
        .station_with_scanner(scanner.path())
        .checkpoint_interval(secs(1));
    daemon.spawn(&config);
    let up = "\"station1-scan\":{\"state\":\"up\"}";
    wait_until(PATIENCE, "the scanner is up", || {
        capture.text().contains(up)
    })
    .await;
    scan(&scanner, &capture, 0..4).await;
    let signed = max_seq(&capture);
    wait_until(PATIENCE, "a checkpoint covers the scans", || {
        capture.checkpoint() >= Some(signed)
    })
    .await;

    daemon.kill();
    let before_restart = capture.text().len();
    daemon.restart();
    wait_until(PATIENCE, "the scanner is up again", || {
        capture.text()[before_restart..].contains(up)
    })
    .await;
    scan(&scanner, &capture, 4..8).await;
    daemon.terminate().await;
    let last = max_seq(&capture);
    wait_until(PATIENCE, "the shutdown checkpoint", || {
        capture.checkpoint() == Some(last)
    })
    .await;
    let text = capture.stop();

    let config_file = daemon.dir().join("custodyd.toml");
    let (code, key, err) = custodyd(&["key", "show", "--config", config_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let key = key.trim();
    assert!(
        text.contains(&format!("\"device_key\":\"{key}\"")),
        "the status carries the key"
    );
    let dir = daemon.dir();

    let (code, report) = verify(dir, "intact.txt", key, &text);
    assert_eq!(code, 0, "{report}\n{text}");
    assert!(
        report.contains(&format!("linked over seq 1..={last}")),
        "{report}"
    );
    assert!(report.contains("result      OK"), "{report}");

    // Every line in the middle of the run, by seq.
    let k = last / 2;
    let failed = |name: &str, text: &str, named: &str| {
        let (code, report) = verify(dir, name, key, text);
        assert_eq!(code, 1, "{name}: {report}");
        assert!(
            report.contains(named),
            "{name}: expected {named:?} in\n{report}"
        );
    };

    let altered = edit(&text, k, |l| {
        Some(l.replacen("\"clock_synced\":true", "\"clock_synced\":false", 1))
    });
    failed("altered.txt", &altered, &format!("seq {k}: its bytes"));

    let removed = edit(&text, k, |_| None);
    failed("removed.txt", &removed, &format!("seq {k}: missing"));

    // A forged event linked to the one before it, everything after renumbered.
    let before = &event_lines(&text)
        .into_iter()
        .find(|e| e.0 == k - 1)
        .unwrap()
        .1;
    let prev = chain::hex(&chain::hash(before.split_once(' ').unwrap().1.as_bytes()));
    let forged = renumber(
        &before.replacen("\"prev\":", &format!("\"prev\":\"{prev}\",\"was\":"), 1),
        k - 1,
        k,
    );
    let mut inserted = text.clone();
    for seq in (k..=last).rev() {
        inserted = edit(&inserted, seq, |l| Some(renumber(l, seq, seq + 1)));
    }
    inserted += &(forged + "\n");
    failed("inserted.txt", &inserted, &format!("seq {k}: its bytes"));

    let swapped = edit(&text, k, |l| Some(renumber(l, k, 0)));
    let swapped = edit(&swapped, k + 1, |l| Some(renumber(l, k + 1, k)));
    let swapped = edit(&swapped, 0, |l| Some(renumber(l, 0, k + 1)));
    failed("reordered.txt", &swapped, &format!("seq {k}: its bytes"));

    let other = DeviceKey::generate().unwrap();
    let head = chain::hash(
        event_lines(&text)
            .into_iter()
            .find(|e| e.0 == last)
            .unwrap()
            .1
            .split_once(' ')
            .unwrap()
            .1
            .as_bytes(),
    );
    let foreign = checkpoint::sign(&other, "test-site", "gw-1", last, &head);
    let foreign = format!(
        "{text}{GW}/checkpoint {}\n",
        String::from_utf8(foreign).unwrap()
    );
    failed(
        "foreign.txt",
        &foreign,
        &format!("seq {last}: {}/foreign.txt:", dir.display()),
    );
    let (code, report) = verify(dir, "k.txt", &other.public_base64(), &text);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("no signature by key test-site/gw-1"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_key_that_cannot_be_read_stops_the_start_and_is_left_alone() {
    let broker = Mosquitto::start().await;
    let mut daemon = Daemon::new();
    let config = gateway_config(&broker.url(), &daemon.data_dir());
    let config_file = daemon.dir().join("custodyd.toml");
    fs::write(&config_file, config.to_string()).unwrap();
    let (code, _, err) = custodyd(&["key", "show", "--config", config_file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("no device key"), "{err}");

    let key_file = daemon.data_dir().join("device.key");
    fs::write(&key_file, b"damaged").unwrap();
    daemon.spawn(&config);
    let status = daemon.wait_exit(PATIENCE).await;
    assert!(!status.success());
    assert!(daemon.log().contains("device key"), "{}", daemon.log());
    assert_eq!(
        fs::read(&key_file).unwrap(),
        b"damaged",
        "no silent new key"
    );
}

/// A key file that is gone cannot be told from a first start, except by the
/// custody log it signed: then the new key is announced in the log itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_missing_after_events_is_made_anew_and_the_log_says_so() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), &format!("{GW}/#")).await;
    let scanner = Pty::open();
    let mut daemon = Daemon::new();
    daemon.spawn(
        gateway_config(&broker.url(), &daemon.data_dir()).station_with_scanner(scanner.path()),
    );
    wait_reader(&sub, "station1-scan", "up").await;
    scanner.write(b"ASSET-1\r").await;
    sub.wait_for(|m| !custody(m).is_empty(), PATIENCE).await;
    let replaced = |m: &Message| {
        m.topic.starts_with(&format!("{GW}/alarm/")) && m.json()["kind"] == "device_key_replaced"
    };
    let first = latest_status(&sub.messages()).unwrap()["device_key"].clone();
    assert!(first.is_string());
    assert!(
        !sub.messages().iter().any(replaced),
        "a first start is no replacement"
    );
    daemon.terminate().await;

    fs::remove_file(daemon.data_dir().join("device.key")).unwrap();
    daemon.restart();
    let msgs = sub.wait_for(|m| m.iter().any(replaced), PATIENCE).await;
    let alarm = msgs.iter().find(|m| replaced(m)).unwrap().json();
    let status = sub
        .wait_for(
            |m| {
                latest_status(m)
                    .is_some_and(|s| s["device_key"].is_string() && s["device_key"] != first)
            },
            PATIENCE,
        )
        .await;
    let new = latest_status(&status).unwrap()["device_key"].clone();
    assert!(
        alarm["detail"]
            .as_str()
            .unwrap()
            .contains(new.as_str().unwrap()),
        "{alarm}"
    );
}
