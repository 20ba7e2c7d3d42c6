//! UHF readers driven by the daemon: a simulated R2000 module or Chafon
//! UHFReader288 on a pseudo-terminal answers the real `custodyd`'s
//! commands, and the custody events are checked at a real Mosquitto.

use crate::common::*;

/// The SGTIN-96 of reference 2.3 and its pure-identity URI.
const EPC: &str = "3074257BF7194E4000001A85";
const SGTIN: &str = "urn:epc:id:sgtin:0614141.812345.6789";
/// RSSI byte 0x3B: 59 - 129 = -70 dBm on an R2000.
const RSSI: u8 = 0x3B;

const A0_RESET: u8 = 0x70;
const A0_SET_ANTENNA: u8 = 0x74;
const A0_INVENTORY: u8 = 0x89;

fn epc() -> Vec<u8> {
    (0..EPC.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&EPC[i..i + 2], 16).unwrap())
        .collect()
}

fn tag_on(antenna: u8) -> Vec<SimTag> {
    vec![SimTag {
        epc: epc(),
        antenna,
        rssi: RSSI,
    }]
}

/// Waits for the first `transition` of the SGTIN tag; returns it and every
/// message so far.
async fn first(sub: &Subscriber, transition: &str) -> (serde_json::Value, Vec<Message>) {
    let msgs = sub
        .wait_for(|m| !transitions(m, transition, SGTIN).is_empty(), PATIENCE)
        .await;
    (transitions(&msgs, transition, SGTIN).remove(0), msgs)
}

/// Broker, subscriber, simulated reader and the daemon driving it, with
/// the reader up; `keys` adds to the reader's table.
async fn door(kind: Kind, protocol: Protocol, keys: impl FnOnce(Reader) -> Reader) -> UhfDoor {
    UhfDoor::start(kind, |url, daemon, path| {
        gateway_config(url, &daemon.data_dir())
            .location(dock_door(secs(2)))
            .reader(keys(door_uhf(path, protocol)))
    })
    .await
}

/// Inventory rounds the sim was asked for on (0-based) `antenna`, counting
/// from each 0x74; a reset selects antenna 0.
fn a0_rounds_on(commands: &[Command], antenna: u8) -> usize {
    let mut work = 0;
    let mut rounds = 0;
    for c in commands {
        match c.cmd {
            A0_RESET => work = 0,
            A0_SET_ANTENNA => work = c.data[0],
            A0_INVENTORY if work == antenna => rounds += 1,
            _ => {}
        }
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r2000_tag_arrives_as_its_sgtin_and_departs_when_no_longer_reported() {
    let d = door(Kind::A0, Protocol::UhfA0, |r| {
        r.antennas(&[(1, None), (2, None)])
    })
    .await;
    d.sim.set_tags(tag_on(2));
    let (arrived, _) = first(&d.sub, "arrived").await;
    assert_eq!(arrived["asset"]["raw"], EPC);
    assert_eq!(arrived["asset"]["source"], "rfid");
    assert_eq!(arrived["reader"], "door1-uhf");
    assert_eq!(arrived["antennas"], serde_json::json!([2]));
    assert_eq!(arrived["rssi_max"], -70.0);

    // Reset first, then the antennas in turn, each with a round.
    let commands = d.sim.commands();
    assert_eq!(commands[0].cmd, A0_RESET, "{commands:?}");
    let cycle: Vec<(u8, Vec<u8>)> = commands[1..5]
        .iter()
        .map(|c| (c.cmd, c.data.clone()))
        .collect();
    assert_eq!(
        cycle,
        [
            (A0_SET_ANTENNA, vec![0]),
            (A0_INVENTORY, vec![1]),
            (A0_SET_ANTENNA, vec![1]),
            (A0_INVENTORY, vec![1]),
        ]
    );

    d.sim.set_tags(Vec::new());
    let (_, msgs) = first(&d.sub, "departed").await;
    assert_eq!(
        transitions(&msgs, "arrived", SGTIN).len(),
        1,
        "one presence"
    );
    let departed = &transitions(&msgs, "departed", SGTIN)[0];
    assert!(departed["reads"].as_u64().unwrap() >= 1, "{departed}");
    assert_eq!(departed["antennas"], serde_json::json!([2]));
    assert_eq!(departed["rssi_max"], -70.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_and_target_use_the_customized_session_inventory() {
    let d = door(Kind::A0, Protocol::UhfA0, |r| {
        r.set("session", 1).set("target", "B")
    })
    .await;
    d.sim.set_tags(tag_on(1));
    first(&d.sub, "arrived").await;
    // One antenna: selected once after the reset, then rounds only.
    let commands = d.sim.commands();
    let start: Vec<(u8, Vec<u8>)> = commands[..4]
        .iter()
        .map(|c| (c.cmd, c.data.clone()))
        .collect();
    assert_eq!(
        start,
        [
            (A0_RESET, vec![]),
            (A0_SET_ANTENNA, vec![0]),
            (0x8B, vec![1, 1, 1]),
            (0x8B, vec![1, 1, 1]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_antenna_is_logged_once_and_the_other_antennas_keep_reading() {
    let d = door(Kind::A0, Protocol::UhfA0, |r| {
        r.antennas(&[(1, None), (2, None)])
    })
    .await;
    d.sim.set_missing(&[1]);
    d.sim.set_tags(tag_on(2));
    first(&d.sub, "arrived").await;
    let before = d.sim.commands();
    let (missing, working) = (a0_rounds_on(&before, 0), a0_rounds_on(&before, 1));
    wait_commands(&d.sim, "more rounds on both antennas", |c| {
        a0_rounds_on(c, 0) >= missing + 5 && a0_rounds_on(c, 1) >= working + 5
    })
    .await;
    let log = d.daemon.log();
    assert_eq!(
        log.matches("antenna 1: antenna missing (error 0x22)")
            .count(),
        1,
        "logged once, not every round:\n{log}"
    );
    assert!(!log.contains("reader down"), "{log}");
    wait_health(
        &d.sub,
        serde_json::json!({"state": "up", "failing_antennas": [1]}),
    )
    .await;

    // Plugged back in: the reader says so once.
    d.sim.set_missing(&[]);
    wait_until(PATIENCE, "antenna 1 to be back", || {
        d.daemon.log().contains("antenna 1 inventories again")
    })
    .await;
    wait_health(&d.sub, serde_json::json!({"state": "up"})).await;
}

/// Waits until the latest status shows `door1-uhf` as `health`.
async fn wait_health(sub: &Subscriber, health: serde_json::Value) {
    wait_reader_status(sub, "door1-uhf", |r| *r == health).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_answering_is_reset_then_reopened_and_reads_again() {
    let mut d = door(Kind::A0, Protocol::UhfA0, |r| {
        r.antennas(&[(1, None), (2, None)])
            .set("reply_timeout", duration(ms(300)))
    })
    .await;
    wait_commands(&d.sim, "a few rounds", |c| a0_rounds_on(c, 1) >= 3).await;
    let from_msg = d.sub.messages().len();
    let from_cmd = d.sim.commands().len();
    d.sim.set_silent(true);
    wait_commands(&d.sim, "a reset after the silence", |c| {
        c[from_cmd..].iter().any(|c| c.cmd == A0_RESET)
    })
    .await;
    let status = format!("{GW}/status");
    let states = |msgs: &[Message]| -> Vec<String> {
        msgs.iter()
            .filter(|m| m.topic == status)
            .map(|m| m.json()["readers"]["door1-uhf"]["state"].to_string())
            .collect()
    };
    d.sub
        .wait_for(
            |m| states(&m[from_msg.min(m.len())..]).contains(&"\"down\"".to_string()),
            PATIENCE,
        )
        .await;
    wait_until(PATIENCE, "the port to be reopened", || {
        d.daemon
            .log()
            .contains("reader down: no answer within 300ms")
    })
    .await;

    d.sim.set_silent(false);
    d.sim.set_tags(tag_on(1));
    first(&d.sub, "arrived").await;
    wait_reader(&d.sub, "door1-uhf", "up").await;
    assert!(d.daemon.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chafon_288_tag_arrives_through_multi_frame_answers_and_departs() {
    // The sim's framing reproduces the reference vector.
    let tag_0313 = [&[0x01, 0x01, 0x0C][..], &[0; 10], &[0x03, 0x13, 0x6B]].concat();
    let mut reference = vec![0x15, 0x00, 0x01, 0x03];
    reference.extend_from_slice(&tag_0313);
    reference.extend_from_slice(&[0xB1, 0xA5]);
    assert_eq!(chafon_frame(0x01, 0x03, &tag_0313), reference);

    let d = door(Kind::Chafon288, Protocol::Chafon, |r| {
        r.antennas(&[(1, None), (2, None)])
    })
    .await;
    d.sim.set_missing(&[1]);
    d.sim.set_tags(tag_on(2));
    let (arrived, _) = first(&d.sub, "arrived").await;
    assert_eq!(arrived["asset"]["raw"], EPC);
    assert_eq!(arrived["antennas"], serde_json::json!([2]));
    assert!(
        arrived["rssi_max"].is_null(),
        "no documented dBm scale: {arrived}"
    );

    let commands = d.sim.commands();
    assert_eq!(commands[0].cmd, 0x21, "reader info first: {commands:?}");
    // Q 4, S0, no mask, target A, antenna 2 (0x81), 500 ms.
    assert!(
        commands.contains(&Command {
            cmd: 0x01,
            data: vec![4, 0, 1, 0, 0, 0, 0, 0x81, 5],
        }),
        "{commands:?}"
    );
    // Antenna 2's tag may arrive before antenna 1's round has failed.
    wait_until(PATIENCE, "antenna 1's error reply logged", || {
        d.daemon
            .log()
            .contains("antenna 1: antenna error (error 0xF8)")
    })
    .await;

    d.sim.set_tags(Vec::new());
    let (_, msgs) = first(&d.sub, "departed").await;
    assert_eq!(transitions(&msgs, "arrived", SGTIN).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_chafon_reader_is_reported_down_and_reopened() {
    let d = door(Kind::Chafon288, Protocol::Chafon, |r| {
        r.set("reply_timeout", duration(ms(300)))
    })
    .await;
    let from_cmd = d.sim.commands().len();
    d.sim.set_silent(true);
    wait_until(PATIENCE, "the port to be reopened", || {
        d.daemon
            .log()
            .contains("reader down: no answer within 300ms")
    })
    .await;
    // Each reopen starts by asking for the reader's info again.
    wait_commands(&d.sim, "a probe after reopening", |c| {
        c[from_cmd..].iter().filter(|c| c.cmd == 0x21).count() >= 2
    })
    .await;
    d.sim.set_silent(false);
    d.sim.set_tags(tag_on(1));
    first(&d.sub, "arrived").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_whose_every_antenna_fails_is_not_polled_in_a_tight_loop() {
    let mut d = door(Kind::A0, Protocol::UhfA0, |r| {
        r.set("reply_timeout", duration(ms(300)))
    })
    .await;
    d.sim.set_missing(&[1]);
    let rounds = |c: &[Command]| c.iter().filter(|c| c.cmd == A0_INVENTORY).count();
    let from = rounds(&d.sim.commands());
    wait_commands(&d.sim, "a failed round", |c| rounds(c) > from).await;
    let start = std::time::Instant::now();
    wait_commands(&d.sim, "three more rounds", |c| rounds(c) > from + 3).await;
    // The sim answers every round at once with "antenna missing"; the
    // daemon waits a reply_timeout after each all-failed cycle.
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(3 * 300),
        "{:?}",
        start.elapsed()
    );
    assert!(d.daemon.is_running());
}
