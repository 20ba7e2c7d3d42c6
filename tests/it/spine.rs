//! The spine, end to end: real frames into a pseudo-terminal, the real
//! `custodyd` binary, a real Mosquitto, and assertions on what the broker
//! delivered.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

const CARD: &str = "62E3086CED";

/// Every field the contract promises on a custody event.
fn assert_contract_fields(e: &serde_json::Value) {
    assert_eq!(e["schema"], "custodyd.custody.v1", "{e}");
    assert_eq!(e["event_id"].as_str().map(str::len), Some(26), "ULID: {e}");
    assert!(e["seq"].as_u64().is_some_and(|s| s >= 1), "{e}");
    assert_eq!(e["site"], "test-site");
    assert_eq!(e["gateway"], "gw-1");
    for key in ["observed_at", "first_seen", "last_seen"] {
        let t = e[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing: {e}"));
        assert!(
            t.ends_with('Z') && t.len() == 24,
            "{key} not RFC 3339 UTC ms: {t}"
        );
    }
    assert!(e["clock_synced"].is_boolean());
    for key in [
        "reader",
        "asset",
        "reads",
        "antennas",
        "from_zone",
        "to_zone",
        "rssi_max",
    ] {
        assert!(e.get(key).is_some(), "{key} missing: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_card_makes_one_arrived_and_one_departed() {
    let EmDoor {
        broker: _broker,
        sub,
        door,
        daemon: _daemon,
    } = EmDoor::start(secs(3)).await;

    // An RDM6300 repeats a held card about ten times a second.
    for _ in 0..20 {
        door.write(&em4100_frame(CARD)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sub.wait_for(|m| !transitions(m, "departed", CARD).is_empty(), PATIENCE)
        .await;
    sub.assert_quiet_for(Duration::from_millis(500), |m| {
        m.topic.contains("/custody/")
    })
    .await;
    let msgs = sub.messages();
    let events = custody(&msgs);
    let arrived = transitions(&msgs, "arrived", CARD);
    let departed = transitions(&msgs, "departed", CARD);
    assert_eq!((arrived.len(), departed.len()), (1, 1), "{events:#?}");
    let (a, d) = (&arrived[0], &departed[0]);
    assert_contract_fields(a);
    assert_contract_fields(d);
    assert_eq!(a["location"], "dock-door-1");
    assert_eq!(a["reader"], "door1-em");
    assert_eq!(a["asset"]["raw"], CARD);
    assert_eq!(a["asset"]["source"], "rfid");
    assert_eq!(a["reads"], 1);
    assert_eq!(d["reads"], 20, "every repeat is folded into the presence");
    assert!(d["last_seen"].as_str() > d["first_seen"].as_str());
    assert_eq!((a["seq"].as_u64(), d["seq"].as_u64()), (Some(1), Some(2)));
    assert_ne!(a["event_id"], d["event_id"]);
    let topics: Vec<&str> = msgs
        .iter()
        .filter(|m| m.topic.contains("/custody/"))
        .map(|m| m.topic.as_str())
        .collect();
    assert!(
        topics
            .iter()
            .all(|t| *t == format!("{GW}/custody/dock-door-1")),
        "{topics:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_with_a_bad_checksum_publishes_nothing() {
    let EmDoor {
        broker: _broker,
        sub,
        door,
        daemon,
    } = EmDoor::start(secs(1)).await;

    let mut bad = em4100_frame("0F00AB12CD");
    bad[12] ^= 0x01;
    door.write(&bad).await;
    door.write(b"\x02ZZ00AB12CDxx\x03").await; // not hex at all
    door.write(&em4100_frame(CARD)).await;
    // Frames are decoded in order: once the good card is in, the bad ones
    // were seen and dropped.
    sub.wait_for(|m| !transitions(m, "arrived", CARD).is_empty(), PATIENCE)
        .await;
    sub.wait_for(|m| !transitions(m, "departed", CARD).is_empty(), PATIENCE)
        .await;
    let events = custody(&sub.messages());
    assert_eq!(events.len(), 2, "only the good card: {events:#?}");
    assert!(
        daemon.log().contains("checksum 1"),
        "the drop is counted in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_made_while_the_broker_is_unreachable_arrive_once_it_is_reachable() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let link = Relay::start(broker.port(), Mode::Refuse).await;
    let door = Pty::open();
    let mut daemon = Daemon::new();
    daemon.spawn(
        gateway_config(&link.url(), &daemon.data_dir()).door_with_em4100(door.path(), secs(1)),
    );
    wait_until(
        PATIENCE,
        "the daemon to report the broker unreachable",
        || daemon.log().contains("cannot reach broker"),
    )
    .await;

    // Written before the reader may even be open: the pty keeps the bytes.
    for card in ["0000000001", "0000000002", "0000000003"] {
        door.write(&em4100_frame(card)).await;
    }
    wait_until(
        PATIENCE,
        "three arrivals and departures to be spooled",
        || daemon.log().contains("spool committed seq") && daemon.log().contains("..=6"),
    )
    .await;
    assert!(
        custody(&sub.messages()).is_empty(),
        "nothing can arrive while the link is refused"
    );

    link.set(Mode::Forward);
    let msgs = sub.wait_for(|m| custody(m).len() == 6, PATIENCE).await;
    let mut seqs: Vec<u64> = custody(&msgs)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    // The retained status went out once connected.
    wait_reader(&sub, "door1-em", "up").await;
}

/// A scan station: broker, a subscriber to everything, a serial scanner and
/// the daemon reading it, configured with `extra` besides; the scanner up.
struct Station {
    _broker: Mosquitto,
    sub: Subscriber,
    scanner: Pty,
    _daemon: Daemon,
}

async fn station(extra: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Station {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "#").await;
    let scanner = Pty::open();
    let mut daemon = Daemon::new();
    daemon.spawn(extra(
        gateway_config(&broker.url(), &daemon.data_dir()).station_with_scanner(scanner.path()),
    ));
    wait_reader(&sub, "station1-scan", "up").await;
    Station {
        _broker: broker,
        sub,
        scanner,
        _daemon: daemon,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barcode_full_of_topic_wildcards_is_published_intact_and_never_alters_a_topic() {
    let Station { sub, scanner, .. } = &station(|c| c).await;
    scanner.write(b"AB/1#+\r").await;
    scanner.write(b"AB/1#+\r").await; // the scanner double-fires
    scanner.write(b"+/#\r").await;
    let msgs = sub.wait_for(|m| custody(m).len() == 2, PATIENCE).await;
    sub.assert_quiet_for(Duration::from_millis(500), |m| {
        m.topic.contains("/custody/")
    })
    .await;
    let events = custody(&msgs);
    assert_eq!(events[0]["asset"]["id"], "AB/1#+");
    assert_eq!(events[0]["asset"]["raw"], "AB/1#+");
    assert_eq!(events[0]["asset"]["source"], "barcode");
    assert_eq!(events[0]["transition"], "scanned");
    assert_eq!(events[1]["asset"]["id"], "+/#");
    let allowed = [
        format!("{GW}/status"),
        format!("{GW}/custody/scan-station-1"),
    ];
    for m in sub.messages() {
        assert!(allowed.contains(&m.topic), "unexpected topic {}", m.topic);
    }
}

/// A serial scanner set to wrap each scan in STX/ETX and to send AIM
/// symbology identifiers, with the factory CR suffix: the framing is
/// stripped, and the asset is the code without its identifier (a GS1 one
/// says how to read the data: the label's EPC URI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framed_scan_with_an_aim_identifier_is_the_asset_it_names() {
    let Station { sub, scanner, .. } = &station(|c| c.company_prefixes(&["0614141"])).await;
    scanner.write(b"\x02]C0ASSET-0042\x03\r").await;
    scanner.write(b"\x02]C18004061414112345400\x03\r").await;
    let msgs = sub.wait_for(|m| custody(m).len() == 2, PATIENCE).await;
    let events = custody(&msgs);
    assert_eq!(events[0]["asset"]["id"], "ASSET-0042");
    assert_eq!(events[0]["asset"]["raw"], "]C0ASSET-0042");
    assert_eq!(events[1]["asset"]["id"], "urn:epc:id:giai:0614141.12345400");
    assert_eq!(events[1]["asset"]["raw"], "]C18004061414112345400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_goes_offline_cleanly_and_seq_continues_after_restart() {
    let EmDoor {
        broker,
        sub,
        door,
        mut daemon,
    } = EmDoor::start(secs(1)).await;
    door.write(&em4100_frame(CARD)).await;
    sub.wait_for(|m| !transitions(m, "departed", CARD).is_empty(), PATIENCE)
        .await;

    let status = daemon.terminate().await;
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    let offline = sub
        .wait_for(
            |m| {
                m.iter()
                    .any(|m| m.topic == format!("{GW}/status") && m.json()["state"] == "offline")
            },
            PATIENCE,
        )
        .await;
    let last = offline
        .iter()
        .rev()
        .find(|m| m.topic == format!("{GW}/status"))
        .unwrap();
    assert_eq!(last.json()["state"], "offline");
    // Retained: a newcomer sees the gateway as offline.
    let late = Subscriber::connect(&broker.url(), &format!("{GW}/status")).await;
    let replay = late.wait_for(|m| !m.is_empty(), PATIENCE).await;
    assert!(
        replay[0].retain && replay[0].json()["state"] == "offline",
        "{replay:?}"
    );

    door.release_exclusive();
    daemon.restart();
    door.write(&em4100_frame("0000000042")).await;
    let msgs = sub
        .wait_for(
            |m| !transitions(m, "arrived", "0000000042").is_empty(),
            PATIENCE,
        )
        .await;
    assert_eq!(
        transitions(&msgs, "arrived", "0000000042")[0]["seq"],
        3,
        "seq continues across restarts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_reader_goes_down_and_comes_back_up_without_a_restart() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let mut door = Pty::open();
    let scanner = Pty::open();
    let mut daemon = Daemon::new();
    daemon.spawn(
        gateway_config(&broker.url(), &daemon.data_dir())
            .door_with_em4100(door.path(), secs(1))
            .station_with_scanner(scanner.path()),
    );
    wait_reader(&sub, "door1-em", "up").await;

    door.unplug();
    wait_reader(&sub, "door1-em", "down").await;
    // The other reader keeps working meanwhile.
    scanner.write(b"ASSET-0042\r").await;
    sub.wait_for(
        |m| !transitions(m, "scanned", "ASSET-0042").is_empty(),
        PATIENCE,
    )
    .await;

    door.replug();
    wait_reader(&sub, "door1-em", "up").await;
    door.write(&em4100_frame(CARD)).await;
    sub.wait_for(|m| !transitions(m, "arrived", CARD).is_empty(), PATIENCE)
        .await;
    assert!(daemon.is_running());
    assert_eq!(
        daemon.log().matches("reader down").count(),
        1,
        "logged once per state change"
    );
}

/// Runs `custodyd check-config` on `toml`; returns (exit code, stderr).
fn check_config(toml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custodyd.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_custodyd"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run custodyd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_kind_of_config_error_is_rejected_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = gateway_config("mqtt://127.0.0.1:1883", dir.path())
        .door_with_em4100(std::path::Path::new("/dev/ttyUSB0"), secs(5))
        .to_string();
    let cases: &[(&str, &str, &str)] = &[
        ("unknown key", "keep_alive = \"2s\"", "keepalive = \"2s\""),
        ("empty site", "site = \"test-site\"", "site = \"\""),
        (
            "name unfit for a topic",
            "name = \"gw-1\"",
            "name = \"gw/1\"",
        ),
        (
            "unknown location",
            "location = \"dock-door-1\"",
            "location = \"dock-door-9\"",
        ),
        (
            "bad duration",
            "departure_timeout = \"5s\"",
            "departure_timeout = \"soon\"",
        ),
        (
            "unknown protocol",
            "protocol = \"em4100\"",
            "protocol = \"em4200\"",
        ),
        (
            // Parsed, then overflowed a clock addition and killed a task.
            "duration too long",
            "departure_timeout = \"5s\"",
            "departure_timeout = \"300000000000years\"",
        ),
        (
            "bad url",
            "url = \"mqtt://127.0.0.1:1883\"",
            "url = \"http://127.0.0.1\"",
        ),
    ];
    let (code, _) = check_config(&good);
    assert_eq!(code, 0, "the unmodified config is valid");
    for (what, from, to) in cases {
        let (code, stderr) = check_config(&good.replacen(from, to, 1));
        assert_eq!(code, 2, "{what}: {stderr}");
        let key = match *what {
            "unknown key" => "mqtt.keepalive",
            "empty site" => "gateway.site",
            "name unfit for a topic" => "gateway.name",
            "unknown location" => "readers[0] (door1-em).location",
            "bad duration" => "locations[0]",
            "unknown protocol" => "readers[0]",
            "duration too long" => "departure_timeout: is 300000000000years; must be at most 7days",
            "bad url" => "mqtt.url",
            _ => unreachable!(),
        };
        assert!(stderr.contains(key), "{what}: expected {key} in:\n{stderr}");
    }

    // Two readers on one path.
    let twice = good.clone()
        + r#"
[[readers]]
name = "door1-em-b"
location = "dock-door-1"
path = "/dev/ttyUSB0"
protocol = "em4100"
"#;
    let (code, stderr) = check_config(&twice);
    assert_eq!(code, 2);
    assert!(stderr.contains("readers[1] (door1-em-b).path"), "{stderr}");

    // Several errors at once are all reported.
    let (code, stderr) = check_config(
        &good
            .replacen("site = \"test-site\"", "site = \"\"", 1)
            .replacen("location = \"dock-door-1\"", "location = \"nowhere\"", 1),
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("gateway.site") && stderr.contains("nowhere"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_to_start_on_a_bad_config() {
    let mut daemon = Daemon::new();
    daemon.spawn("[gateway]\nsite = \"x\"\nname = \"y\"\nbogus = 1\n");
    let status = daemon.wait_exit(PATIENCE).await;
    assert_eq!(status.code(), Some(2));
    assert!(daemon.log().contains("gateway.bogus"), "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_shows_offline_through_its_last_will() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), &format!("{GW}/status")).await;
    let door = Pty::open();
    let mut daemon = Daemon::new();
    daemon.spawn(
        gateway_config(&broker.url(), &daemon.data_dir()).door_with_em4100(door.path(), secs(1)),
    );
    wait_reader(&sub, "door1-em", "up").await;
    daemon.kill();
    // The broker publishes the will after 1.5 keep-alives (2 s) of silence.
    let msgs = sub
        .wait_for(
            |m| m.last().is_some_and(|m| m.json()["state"] == "offline"),
            PATIENCE,
        )
        .await;
    assert_eq!(
        msgs.last().unwrap().json(),
        serde_json::json!({"schema": "custodyd.status.v1", "state": "offline"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stays_unplugged_raises_reader_offline_and_its_return_reader_online() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let mut door = Pty::open();
    let mut daemon = Daemon::new();
    let config = gateway_config(&broker.url(), &daemon.data_dir())
        .location(dock_door(secs(1)))
        .reader(door_em4100(door.path()).offline_alarm_after(secs(1)));
    daemon.spawn(&config);
    wait_reader(&sub, "door1-em", "up").await;
    let alarm = |kind: &'static str| {
        move |msgs: &[Message]| {
            msgs.iter()
                .any(|m| m.topic == format!("{GW}/alarm/dock-door-1") && m.json()["kind"] == kind)
        }
    };

    door.unplug();
    let msgs = sub.wait_for(alarm("reader_offline"), PATIENCE).await;
    let a = msgs
        .iter()
        .find(|m| m.topic.ends_with("/alarm/dock-door-1"))
        .unwrap()
        .json();
    assert_eq!(a["schema"], "custodyd.alarm.v1");
    assert!(a["asset"].is_null());
    assert!(a["detail"].as_str().unwrap().contains("door1-em"), "{a}");
    door.replug();
    sub.wait_for(alarm("reader_online"), PATIENCE).await;
}
