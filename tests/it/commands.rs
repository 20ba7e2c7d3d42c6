//! Commands on `cmd/{command}` through the real daemon and Mosquitto: each
//! request gets one reply on `cmd-reply/{command}` with its `id`, and bad
//! requests get an error reply, never a crash.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_and_bad_requests_get_error_replies() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let mut daemon = Daemon::new();
    daemon.spawn(gateway_config(&broker.url(), &daemon.data_dir()));
    sub.wait_for(
        |m| {
            m.iter()
                .any(|m| m.topic == format!("{GW}/status") && m.json()["state"] == "online")
        },
        PATIENCE,
    )
    .await;

    let pong = ask(&broker, &sub, "ping", r#"{"id":"p-1"}"#, "p-1").await;
    assert_eq!(pong["schema"], "custodyd.cmd-reply.v1");
    assert_eq!(pong["ok"], true, "{pong}");
    assert_eq!(pong["result"]["version"], env!("CARGO_PKG_VERSION"));

    let unknown = ask(&broker, &sub, "self-destruct", r#"{"id":"u-1"}"#, "u-1").await;
    assert_eq!(unknown["ok"], false);
    assert!(
        unknown["error"]
            .as_str()
            .unwrap()
            .contains("unknown command"),
        "{unknown}"
    );

    // Malformed: no id to match, so the reply carries `id: null`.
    publish(&broker.url(), &format!("{GW}/cmd/ping"), "{not json", false).await;
    let topic = format!("{GW}/cmd-reply/ping");
    sub.wait_for(
        |m| {
            m.iter()
                .any(|m| m.topic == topic && m.json()["id"].is_null())
        },
        PATIENCE,
    )
    .await;

    // Still serving after all that.
    let again = ask(&broker, &sub, "ping", r#"{"id":"p-2"}"#, "p-2").await;
    assert_eq!(again["ok"], true);
}

const CARD: &str = "62E3086CED";

/// A daemon with one EM4100 door reader, its status online and the reader up.
async fn door_daemon(
    broker: &Mosquitto,
    sub: &Subscriber,
    door: &Pty,
    departure: Duration,
) -> Daemon {
    let mut daemon = Daemon::new();
    daemon.spawn(
        gateway_config(&broker.url(), &daemon.data_dir()).door_with_em4100(door.path(), departure),
    );
    wait_reader(sub, "door1-em", "up").await;
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_the_status_document_plus_uptime() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let _daemon = door_daemon(&broker, &sub, &door, secs(1)).await;

    let reply = ask(&broker, &sub, "status", r#"{"id":"s-1"}"#, "s-1").await;
    assert_eq!(reply["ok"], true, "{reply}");
    let status = &reply["result"];
    let retained = latest_status(&sub.messages()).unwrap();
    assert!(status["uptime_s"].is_u64(), "{status}");
    let mut without_uptime = status.clone();
    without_uptime.as_object_mut().unwrap().remove("uptime_s");
    assert_eq!(
        without_uptime, retained,
        "the same document as the status topic"
    );
    assert_eq!(status["readers"]["door1-em"]["state"], "up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_lists_the_assets_present_now() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let _daemon = door_daemon(&broker, &sub, &door, secs(30)).await;

    let empty = ask(&broker, &sub, "inventory", r#"{"id":"i-0"}"#, "i-0").await;
    assert_eq!(
        empty["result"]["locations"]["dock-door-1"],
        serde_json::json!([]),
        "{empty}"
    );

    for _ in 0..3 {
        door.write(&em4100_frame(CARD)).await;
    }
    sub.wait_for(|m| !transitions(m, "arrived", CARD).is_empty(), PATIENCE)
        .await;
    // The reads after the arrival are folded in by the time presence
    // answers: it takes requests and reads in turn, from one task.
    let mut listed = serde_json::Value::Null;
    for round in 0..50 {
        let id = format!("i-{}", round + 1);
        let reply = ask(
            &broker,
            &sub,
            "inventory",
            &format!(r#"{{"id":"{id}"}}"#),
            &id,
        )
        .await;
        listed = reply["result"]["locations"]["dock-door-1"][0].clone();
        if listed["reads"] == 3 {
            break;
        }
    }
    assert_eq!(listed["asset"]["id"], CARD, "{listed}");
    assert_eq!(listed["asset"]["source"], "rfid");
    assert_eq!(listed["reader"], "door1-em");
    assert_eq!(listed["reads"], 3);
    assert!(listed["first_seen"].is_string() && listed["last_seen"].is_string());

    let unknown = ask(
        &broker,
        &sub,
        "inventory",
        r#"{"id":"i-x","location":"nowhere"}"#,
        "i-x",
    )
    .await;
    assert_eq!(unknown["ok"], false);
    assert!(unknown["error"]
        .as_str()
        .unwrap()
        .contains("unknown location"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_flood_is_cut_down_and_the_daemon_keeps_working() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let daemon = door_daemon(&broker, &sub, &door, secs(1)).await;

    let flood: Vec<Vec<u8>> = (0..200)
        .map(|i| format!(r#"{{"id":"flood-{i}"}}"#).into_bytes())
        .collect();
    publish_many(&broker.url(), &format!("{GW}/cmd/status"), flood, false).await;
    // The dispatcher refuses most of them, and says so once.
    wait_until(PATIENCE, "the flood to be logged", || {
        daemon.log().contains("command flood")
    })
    .await;

    // A ping is answered again once the rate allows (retried until then).
    let reply_topic = format!("{GW}/cmd-reply/ping");
    let answered = |m: &[Message]| {
        m.iter()
            .any(|m| m.topic == reply_topic && m.json()["id"] == "after")
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while !answered(&sub.messages()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no ping reply after the flood"
        );
        publish(
            &broker.url(),
            &format!("{GW}/cmd/ping"),
            r#"{"id":"after"}"#,
            false,
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    // Custody goes on.
    door.write(&em4100_frame(CARD)).await;
    sub.wait_for(|m| !transitions(m, "departed", CARD).is_empty(), PATIENCE)
        .await;
    let msgs = sub.messages();
    let flood_replies = msgs
        .iter()
        .filter(|m| m.topic == format!("{GW}/cmd-reply/status"))
        .count();
    assert!(
        (1..200).contains(&flood_replies),
        "{flood_replies} of 200 flood requests answered: the rate limit did not cut them"
    );
    check_delivery(&msgs);
    assert!(daemon.log().contains("command flood over"));
}
