//! Commands on `cmd/{command}` through the real daemon and Mosquitto: each
//! request gets one reply on `cmd-reply/{command}` with its `id`, and bad
//! requests get an error reply, never a crash.

mod common;

use common::*;

/// Sends `body` to `cmd/{command}` and returns the reply that carries `id`.
async fn ask(
    broker: &Mosquitto,
    sub: &Subscriber,
    command: &str,
    body: &str,
    id: &str,
) -> serde_json::Value {
    publish(&broker.url(), &format!("{GW}/cmd/{command}"), body, false).await;
    let topic = format!("{GW}/cmd-reply/{command}");
    let is_reply = |m: &Message| m.topic == topic && m.json()["id"] == id;
    sub.wait_for(|msgs| msgs.iter().any(is_reply), PATIENCE)
        .await;
    sub.messages().into_iter().find(is_reply).unwrap().json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_and_bad_requests_get_error_replies() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let mut daemon = Daemon::new();
    daemon.spawn(&gateway_config(&broker.url(), &daemon.data_dir()));
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
