//! What the broker refuses or cannot carry never loses an event and never
//! stops the others: through the real daemon, a scanner on a pty and a real
//! Mosquitto (with an ACL file, or a packet limit).

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;
use custodyd::demo::cage::{cage, gate, release_scanner};
use serde_json::Value;

/// Every client may read everything, and the gateway may publish all but
/// custody events: an ACL with a typo in one line.
const REFUSING_CUSTODY: &str = "topic read #\n\
     topic write itad/test-site/gw-1/status\n\
     topic write itad/test-site/gw-1/alarm/#\n\
     topic write itad/test-site/gw-1/health\n\
     topic write itad/test-site/gw-1/cmd-reply/#\n";
const OPEN: &str = "topic readwrite #\n";

/// A scan station whose scanner takes lines of up to 10,000 characters.
fn long_line_station(url: &str, daemon: &Daemon, scanner: &Path) -> ConfigBuilder {
    fast_health(url, &daemon.data_dir())
        .location(Location::scan_station("scan-station-1"))
        .reader(station_scanner(scanner).max_len(10_000))
}

/// Alarms of `kind` among `msgs`.
fn alarms(msgs: &[Message], kind: &str) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic.starts_with(&format!("{GW}/alarm/")))
        .map(Message::json)
        .filter(|a| a["kind"] == kind)
        .collect()
}

fn scanned(msgs: &[Message], id: &str) -> Vec<Value> {
    transitions(msgs, "scanned", id)
}

/// The number after `label` in `spool stats`.
fn stat(stats: &str, label: &str) -> u64 {
    let line = stats.lines().find(|l| l.starts_with(label)).unwrap();
    line[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_broker_refuses_stay_spooled_and_arrive_once_the_acl_is_fixed() {
    let mut broker = Mosquitto::start_with_acl(REFUSING_CUSTODY).await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let scanner = Pty::open();
    let mut daemon = Daemon::new();
    daemon
        .spawn(fast_health(&broker.url(), &daemon.data_dir()).station_with_scanner(scanner.path()));
    wait_reader(&sub, "station1-scan", "up").await;

    for i in 0..5 {
        scanner.write(format!("ITEM-{i}\r").as_bytes()).await;
    }
    // The alarm topic is allowed: central hears of the refusal at once.
    let msgs = sub
        .wait_for(|m| !alarms(m, "publish_refused").is_empty(), PATIENCE)
        .await;
    let alarm = &alarms(&msgs, "publish_refused")[0];
    let detail = alarm["detail"].as_str().unwrap();
    assert!(detail.contains("0x87 (not authorized)"), "{detail}");
    assert!(
        detail.contains(&format!("{GW}/custody/scan-station-1")),
        "{detail}"
    );
    health_where(&sub, |h| h["mqtt"]["refused"].as_u64() >= Some(1)).await;
    assert!(custody(&sub.messages()).is_empty(), "the broker took none");
    let log = daemon.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("ERROR") && l.contains("refused"))
            .count(),
        1,
        "one error line per episode, not one per event\n{log}"
    );

    daemon.terminate().await;
    let stats = daemon.spool_command(&["stats"]);
    assert!(
        stat(&stats, "depth") >= 5,
        "the refused events are kept\n{stats}"
    );

    broker.set_acl(OPEN);
    daemon.restart();
    let msgs = sub
        .wait_for(
            |m| (0..5).all(|i| !scanned(m, &format!("ITEM-{i}")).is_empty()),
            PATIENCE,
        )
        .await;
    for i in 0..5 {
        assert_eq!(
            scanned(&msgs, &format!("ITEM-{i}")).len(),
            1,
            "ITEM-{i} once"
        );
    }
    // Every spooled event (custody and alarm) is accounted for, no gap.
    let seqs: BTreeSet<u64> = msgs
        .iter()
        .filter(|m| m.topic.contains("/custody/") || m.topic.contains("/alarm/"))
        .filter_map(|m| m.json()["seq"].as_u64())
        .collect();
    let max = *seqs.last().unwrap();
    assert_eq!(seqs, (1..=max).collect(), "seq gap-free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_events_are_retried_and_arrive_in_order_once_the_broker_takes_them() {
    let mut broker = Mosquitto::start_with_acl(REFUSING_CUSTODY).await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let scanner = Pty::open();
    let mut daemon = Daemon::new();
    daemon.spawn(
        gateway_config(&broker.url(), &daemon.data_dir()).station_with_scanner(scanner.path()),
    );
    wait_reader(&sub, "station1-scan", "up").await;
    for i in 0..3 {
        scanner.write(format!("ITEM-{i}\r").as_bytes()).await;
    }
    sub.wait_for(|m| !alarms(m, "publish_refused").is_empty(), PATIENCE)
        .await;
    // Refused while held: these wait behind the first.
    for i in 3..6 {
        scanner.write(format!("ITEM-{i}\r").as_bytes()).await;
    }

    // Fixed while the daemon runs: the retries get through, no restart.
    broker.set_acl(OPEN);
    let msgs = sub
        .wait_for(
            |m| (0..6).all(|i| !scanned(m, &format!("ITEM-{i}")).is_empty()),
            PATIENCE,
        )
        .await;
    let seqs: Vec<u64> = custody(&msgs)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order on their topic: {seqs:?}"
    );
    let log = daemon.log();
    assert!(log.contains("the broker takes events on"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8000_character_scan_does_not_stop_the_scan_behind_it() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let scanner = Pty::open();
    let mut daemon = Daemon::new();
    daemon.spawn(long_line_station(&broker.url(), &daemon, scanner.path()));
    wait_reader(&sub, "station1-scan", "up").await;

    let long = "L".repeat(8000);
    scanner.write(format!("{long}\rNEXT-1\r").as_bytes()).await;
    let msgs = sub
        .wait_for(|m| !scanned(m, "NEXT-1").is_empty(), PATIENCE)
        .await;
    let first = scanned(&msgs, &long).len() + alarms(&msgs, "event_too_large").len();
    assert!(first > 0, "the long scan arrived or was alarmed");
    let health = health_where(&sub, |h| h["mqtt"]["connected"] == true).await;
    assert_eq!(health["mqtt"]["reconnects"], 0, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_larger_than_the_broker_takes_goes_to_the_dead_letters() {
    // The broker says so in its CONNACK (MQTT 5 Maximum Packet Size).
    let broker = Mosquitto::start_configured("max_packet_size 4096\n").await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let scanner = Pty::open();
    let mut daemon = Daemon::new();
    daemon.spawn(long_line_station(&broker.url(), &daemon, scanner.path()));
    wait_reader(&sub, "station1-scan", "up").await;

    let long = "L".repeat(6000);
    scanner
        .write(format!("NEXT-0\r{long}\rNEXT-1\r").as_bytes())
        .await;
    let msgs = sub
        .wait_for(
            |m| !scanned(m, "NEXT-1").is_empty() && !alarms(m, "event_too_large").is_empty(),
            PATIENCE,
        )
        .await;
    let seq0 = scanned(&msgs, "NEXT-0")[0]["seq"].as_u64().unwrap();
    let seq1 = scanned(&msgs, "NEXT-1")[0]["seq"].as_u64().unwrap();
    assert_eq!(seq1, seq0 + 2, "one event between them");
    let alarm = &alarms(&msgs, "event_too_large")[0];
    let detail = alarm["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("seq {}", seq0 + 1)), "{detail}");
    assert!(detail.contains("4096 bytes"), "{detail}");
    let health = health_where(&sub, |h| h["mqtt"]["too_large"] == 1).await;
    assert_eq!(health["mqtt"]["reconnects"], 0, "{health}");

    daemon.terminate().await;
    let stats = daemon.spool_command(&["stats"]);
    assert_eq!(stat(&stats, "dead"), 1, "{stats}");
    let peek = daemon.spool_command(&["peek"]);
    let dead: Vec<Value> = peek
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["dead_letter"] == true)
        .collect();
    assert_eq!(dead.len(), 1, "{peek}");
    assert_eq!(dead[0]["seq"], seq0 + 1);
    assert_eq!(dead[0]["event"]["asset"]["raw"], long.as_str());

    // A technician who kept it deletes it, and its bytes with it.
    let bytes = stat(&stats, "bytes");
    let dropped = daemon.spool_command(&["drop-dead-letters", "--all"]);
    let dropped: Value = serde_json::from_str(dropped.trim()).unwrap();
    assert_eq!(dropped["seq"], seq0 + 1);
    assert_eq!(dropped["event"]["asset"]["raw"], long.as_str());
    let stats = daemon.spool_command(&["stats"]);
    assert_eq!(stat(&stats, "dead"), 0, "{stats}");
    assert!(stat(&stats, "bytes") + 6000 < bytes, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_retained_message_does_not_cut_the_link() {
    let broker = Mosquitto::start().await;
    let junk = vec![b'x'; 12 * 1024];
    publish(&broker.url(), "itad/test-site/release/JUNK", junk, true).await;
    let sub = Subscriber::connect(&broker.url(), "itad/test-site/gw-1/#").await;
    // A cage gate: the gateway subscribes to the release policy.
    let scanner = Pty::open();
    let mut daemon = Daemon::new();
    let socket = daemon.dir().join("gpio.sock");
    daemon.spawn(
        fast_health(&broker.url(), &daemon.data_dir())
            .sim_gpio(&socket)
            .location(cage(gate()))
            .reader(release_scanner(scanner.path()))
            .allow_unsigned(),
    );
    let _pins = SimPins::connect(&socket).await;
    wait_reader(&sub, "cage1-scan", "up").await;
    // Three health samples: the link has had time to be cut, were it to be.
    let mut uptime = Value::Null;
    let mut health = Value::Null;
    for _ in 0..3 {
        health = health_where(&sub, |h| h["uptime_s"] != uptime).await;
        uptime = health["uptime_s"].clone();
    }
    assert_eq!(health["mqtt"]["reconnects"], 0, "{health}");
    let log = daemon.log();
    assert_eq!(log.matches("connected to broker").count(), 1, "{log}");
}
