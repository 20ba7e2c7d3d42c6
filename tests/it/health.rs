//! Visibility through the real daemon: the `custodyd.health.v1` topic
//! counts exactly what the readers were sent, the clock's sync state shows
//! in it and raises `clock_unsynced` once per spell, and the log format
//! suits where the log goes.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::Arc;

use crate::common::*;
use serde_json::Value;

const CARD: &str = "62E3086CED";
/// A GTIN (AI 01) whose check digit is wrong: an `invalid_scan`.
const BAD_GTIN: &str = "]C100106141412345678909";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_counts_reads_drops_error_replies_and_invalid_scans() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let station = Pty::open();
    let uhf = Arc::new(Pty::open());
    let sim = ReaderSim::start(Kind::A0, uhf.clone());
    sim.set_missing(&[1]);
    let mut daemon = Daemon::new();
    let uhf_reader = door_uhf(uhf.path(), Protocol::UhfA0).antennas(&[(1, None), (2, None)]);
    daemon.spawn(
        fast_health(&broker.url(), &daemon.data_dir())
            .door_with_em4100(door.path(), secs(30))
            .reader(uhf_reader)
            .station_with_scanner(station.path()),
    );
    for reader in ["door1-em", "door1-uhf", "station1-scan"] {
        wait_reader(&sub, reader, "up").await;
    }

    // 4 good frames, 2 with a bad checksum, a run of noise, 1 not hex.
    let mut bad_checksum = em4100_frame(CARD);
    bad_checksum[12] ^= 0x01;
    for _ in 0..3 {
        door.write(&em4100_frame(CARD)).await;
    }
    door.write(&bad_checksum).await;
    door.write(&bad_checksum).await;
    door.write(b"noise").await;
    door.write(&em4100_frame(CARD)).await;
    door.write(b"\x02ZZ00AB12CDxx\x03").await;
    station.write(format!("{BAD_GTIN}\r").as_bytes()).await;
    let alarm = format!("{GW}/alarm/scan-station-1");
    sub.wait_for(
        |m| {
            m.iter()
                .any(|m| m.topic == alarm && m.json()["kind"] == "invalid_scan")
        },
        PATIENCE,
    )
    .await;

    let sample = health_where(&sub, |h| {
        let em = &h["readers"]["door1-em"];
        em["reads"] == 4
            && em["dropped"]["malformed"] == 1
            && h["readers"]["station1-scan"]["invalid_scans"] == 1
            && h["readers"]["door1-uhf"]["error_replies"].as_u64() > Some(0)
            && h["events"]["published"] == 2
            && h["spool"]["depth"] == 0
    })
    .await;
    let em = &sample["readers"]["door1-em"];
    assert_eq!(em["state"], "up", "{sample:#}");
    assert_eq!(
        em["dropped"],
        serde_json::json!({"checksum": 2, "malformed": 1, "too_long": 0, "garbage": 1, "unterminated": 0}),
    );
    assert_eq!(
        (&em["error_replies"], &em["invalid_scans"]),
        (&0.into(), &0.into())
    );
    assert!(em["reads_per_s"].is_number());
    let station = &sample["readers"]["station1-scan"];
    assert_eq!(
        (&station["reads"], &station["state"]),
        (&1.into(), &"up".into())
    );
    let uhf = &sample["readers"]["door1-uhf"];
    assert_eq!((&uhf["reads"], &uhf["state"]), (&0.into(), &"up".into()));

    assert_eq!(sample["schema"], "custodyd.health.v1");
    assert_eq!(
        (&sample["site"], &sample["gateway"]),
        (&"test-site".into(), &"gw-1".into())
    );
    assert_eq!(sample["clock_synced"], true);
    assert!(sample["uptime_s"].is_u64() && sample["interval_s"].is_number());
    // The arrival and the invalid_scan alarm.
    assert_eq!(sample["events"]["committed"], 2);
    let spool = &sample["spool"];
    assert_eq!((&spool["bytes"], &spool["dropped"]), (&0.into(), &0.into()));
    assert!(spool["oldest_age_s"].is_null() && spool["max_bytes"].is_u64());
    let mqtt = &sample["mqtt"];
    assert_eq!(
        (&mqtt["connected"], &mqtt["reconnects"]),
        (&true.into(), &0.into())
    );
    assert!(mqtt["publish_latency_ms"]["last"]
        .as_f64()
        .is_some_and(|ms| ms > 0.0));
    for key in ["avg", "max", "count"] {
        assert!(
            mqtt["publish_latency_ms"].get(key).is_some(),
            "{key}: {mqtt}"
        );
    }
    let process = &sample["process"];
    assert!(
        process["rss_bytes"].as_u64().is_some_and(|b| b > 1 << 20),
        "{process}"
    );
    assert!(process["cpu_percent"].is_number(), "{process}");
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsynced_clock_is_alarmed_once_per_spell_and_shown_in_health() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let mut daemon = Daemon::new();
    daemon.set_clock_synced(false);
    daemon.spawn(
        fast_health(&broker.url(), &daemon.data_dir()).door_with_em4100(door.path(), secs(1)),
    );
    let alarm_topic = format!("{GW}/alarm/gw-1");
    let clock_alarms = |m: &[Message]| {
        m.iter()
            .filter(|m| m.topic == alarm_topic && m.json()["kind"] == "clock_unsynced")
            .map(Message::json)
            .collect::<Vec<_>>()
    };
    sub.wait_for(|m| clock_alarms(m).len() == 1, PATIENCE).await;
    let alarm = &clock_alarms(&sub.messages())[0];
    assert_eq!(
        (&alarm["location"], &alarm["clock_synced"]),
        (&"gw-1".into(), &false.into())
    );
    assert!(alarm["detail"]
        .as_str()
        .unwrap()
        .contains("not synchronised"));
    health_where(&sub, |h| h["clock_synced"] == false).await;

    // Events made meanwhile say so.
    wait_reader(&sub, "door1-em", "up").await;
    door.write(&em4100_frame(CARD)).await;
    sub.wait_for(|m| !transitions(m, "arrived", CARD).is_empty(), PATIENCE)
        .await;
    assert_eq!(
        transitions(&sub.messages(), "arrived", CARD)[0]["clock_synced"],
        false
    );

    // Synced: no alarm, the health says so; unsynced again: one more alarm.
    daemon.set_clock_synced(true);
    health_where(&sub, |h| h["clock_synced"] == true).await;
    wait_until(PATIENCE, "the clock watcher to see the sync", || {
        daemon.log().contains("NTP-synchronised again")
    })
    .await;
    assert_eq!(clock_alarms(&sub.messages()).len(), 1);
    daemon.set_clock_synced(false);
    sub.wait_for(|m| clock_alarms(m).len() == 2, PATIENCE).await;
    let seen = sub.messages().len();
    sub.wait_for(|m| health_after(m, seen, false) >= 2, PATIENCE)
        .await;
    assert_eq!(clock_alarms(&sub.messages()).len(), 2, "once per spell");
    // Alarms are spooled events like custody: numbered in one sequence.
    let mut seqs: Vec<u64> = sub
        .messages()
        .iter()
        .filter(|m| m.topic.contains("/custody/") || m.topic.contains("/alarm/"))
        .map(|m| m.json()["seq"].as_u64().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

/// Health samples after the first `seen` messages with `clock_synced`.
fn health_after(msgs: &[Message], seen: usize, synced: bool) -> usize {
    msgs.iter()
        .skip(seen)
        .filter(|m| m.topic == format!("{GW}/health") && m.json()["clock_synced"] == synced)
        .count()
}

/// Runs `custodyd` with a command that logs one error (the spool of a data
/// directory that has none) and returns what it wrote to stderr, which goes
/// to a file; `journal` sets `JOURNAL_STREAM` to that file's device and
/// inode, as systemd does for a unit whose output goes to the journal.
fn log_line(args: &[&str], journal: Option<bool>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("custodyd.toml");
    let data = dir.path().join("data");
    std::fs::write(&config, ConfigBuilder::new("s", "g", &data).to_string()).unwrap();
    let stderr = dir.path().join("stderr");
    let file = std::fs::File::create(&stderr).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_custodyd"));
    command
        .args(args)
        .args(["spool", "stats", "--config"])
        .arg(&config)
        .env_remove("JOURNAL_STREAM")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stderr(file.try_clone().unwrap());
    if let Some(matching) = journal {
        let meta = file.metadata().unwrap();
        let ino = if matching { meta.ino() } else { meta.ino() + 1 };
        command.env("JOURNAL_STREAM", format!("{}:{ino}", meta.dev()));
    }
    let status = command.status().unwrap();
    assert!(!status.success(), "there is no spool to show");
    std::fs::read_to_string(stderr).unwrap()
}

#[test]
fn logs_are_human_without_timestamps_in_the_journal_and_json_on_request() {
    let starts_with_timestamp = |line: &str| {
        line.len() > 20
            && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && line.as_bytes()[4] == b'-'
    };

    let human = log_line(&[], None);
    assert!(
        human.contains("ERROR") && human.contains("no spool here"),
        "{human}"
    );
    assert!(
        !human.starts_with('<'),
        "a priority prefix outside the journal: {human}"
    );
    assert!(starts_with_timestamp(&human), "{human}");
    assert!(!human.contains('\x1b'), "no colours into a file: {human:?}");

    // The syslog priority for journald (which strips it), then the line.
    let journal = log_line(&[], Some(true));
    let line = journal
        .strip_prefix("<3>")
        .unwrap_or_else(|| panic!("no <3>: {journal}"));
    assert!(line.trim_start().starts_with("ERROR"), "{journal}");
    assert!(
        !starts_with_timestamp(&journal) && !journal.contains('\x1b'),
        "{journal:?}"
    );
    // Inherited, but stderr is not that stream: timestamps stay.
    let elsewhere = log_line(&[], Some(false));
    assert!(starts_with_timestamp(&elsewhere), "{elsewhere}");
    assert!(!elsewhere.starts_with('<'), "{elsewhere}");

    let json = log_line(&["--log-format", "json"], Some(true));
    let lines: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{json}");
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(lines[0]["timestamp"].is_string());
    assert!(lines[0]["fields"]["message"]
        .as_str()
        .unwrap()
        .contains("no spool here"));
}
