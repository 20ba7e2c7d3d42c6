//! Only central can release or unlock: signed control messages through the
//! real daemon, a real Mosquitto and the simulated GPIO. Every refusal
//! changes nothing (the lock stays shut) and raises `untrusted_message`
//! at the gateway's own location, naming the topic and why.

use std::time::{Duration, SystemTime};

use crate::common::*;
use custodyd::demo::cage::{cage, gate, release_scanner, LOCK};
use serde_json::Value;

// The relay board is active low: 0 energises the lock relay (open).
const ON: bool = false;
const OFF: bool = true;
const CAGE: &str = "cage-1";
const POLICY: &str = "itad/test-site/release";
const UNLOCK: &str = "itad/test-site/gw-1/cmd/unlock";

struct Gate {
    broker: Mosquitto,
    sub: Subscriber,
    daemon: Daemon,
    scanner: Pty,
    pins: SimPins,
    central: Central,
}

impl Gate {
    /// Broker, daemon and gate with central's key; `retained` (topic,
    /// payload) are published retained before the daemon starts.
    async fn start() -> Gate {
        Self::start_with(Central::new(), |c| c, &[]).await
    }

    /// Likewise with what `extra` adds to the configuration.
    async fn start_with(
        central: Central,
        extra: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
        retained: &[(String, String)],
    ) -> Gate {
        Self::start_on(Mosquitto::start().await, central, extra, retained).await
    }

    /// The same on `broker`.
    async fn start_on(
        broker: Mosquitto,
        central: Central,
        extra: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
        retained: &[(String, String)],
    ) -> Gate {
        let sub = Subscriber::connect(&broker.url(), "itad/#").await;
        for (topic, payload) in retained {
            publish(&broker.url(), topic, payload.as_str(), true).await;
        }
        let scanner = Pty::open();
        let mut daemon = Daemon::new();
        let socket = daemon.dir().join("gpio.sock");
        let gate = gate().unlock_pulse(secs(1)).deny_signal(secs(1));
        let config = gateway_config(&broker.url(), &daemon.data_dir())
            .sim_gpio(&socket)
            .location(cage(gate))
            .reader(release_scanner(scanner.path()));
        daemon.spawn(extra(central.trust(config)));
        let pins = SimPins::connect(&socket).await;
        wait_reader(&sub, "cage1-scan", "up").await;
        Gate {
            broker,
            sub,
            daemon,
            scanner,
            pins,
            central,
        }
    }

    async fn policy(&self, asset: &str, payload: &str) {
        let topic = format!("{POLICY}/{asset}");
        publish(&self.broker.url(), &topic, payload, true).await;
    }

    async fn scan(&self, code: &str) {
        self.scanner.write(format!("{code}\r").as_bytes()).await;
    }

    /// The first alarm of `kind` whose detail contains `text`.
    async fn alarm(&self, kind: &str, text: &str) -> Value {
        let find = |msgs: &[Message]| {
            msgs.iter()
                .filter(|m| m.topic.contains("/alarm/"))
                .map(Message::json)
                .find(|a| a["kind"] == kind && a["detail"].as_str().unwrap().contains(text))
        };
        let msgs = self.sub.wait_for(|m| find(m).is_some(), PATIENCE).await;
        find(&msgs).unwrap()
    }

    /// Waits for the `untrusted_message` about `topic` and `reason`.
    async fn untrusted(&self, topic: &str, reason: &str) {
        let alarm = self
            .alarm(
                "untrusted_message",
                &format!("{topic} was refused: {reason}"),
            )
            .await;
        assert_eq!(alarm["location"], "gw-1", "at the gateway's own location");
    }

    /// The reply to `payload` on `cmd/unlock` (the first carrying `id`
    /// after it was sent).
    async fn unlock_reply(&self, payload: &str, id: &str) -> Value {
        let from = self.sub.messages().len();
        publish(&self.broker.url(), UNLOCK, payload, false).await;
        let is_reply = |m: &Message| m.topic.ends_with("/cmd-reply/unlock") && m.json()["id"] == id;
        self.sub
            .wait_for(|msgs| msgs[from..].iter().any(is_reply), PATIENCE)
            .await;
        let reply = self.sub.messages_since(from).into_iter().find(is_reply);
        reply.unwrap().json()
    }

    /// Grants `asset` (signed, retained), waits until it is stored, stops
    /// the daemon; returns the asset's policy topic.
    async fn grant_then_stop(&mut self, asset: &str) -> String {
        let topic = format!("{POLICY}/{asset}");
        let grant = self.central.sign(&topic, r#"{"released":true}"#);
        self.policy(asset, &grant).await;
        wait_until(PATIENCE, "the grant is stored", || {
            self.daemon.log().contains("released=true")
        })
        .await;
        self.daemon.terminate().await;
        topic
    }

    fn lock_opened_since(&self, mark: usize) -> bool {
        pulsed(&self.pins.seen(), LOCK, ON, mark)
    }

    /// Starts the stopped daemon again and returns once it says it is
    /// online with its reader up (which it says only once its control
    /// subscriptions are in place).
    async fn restart(&mut self) {
        let from = self.sub.messages().len();
        self.daemon.restart();
        self.pins = SimPins::connect(&self.daemon.dir().join("gpio.sock")).await;
        let up = |msgs: &[Message]| {
            latest_status(&msgs[from..]).is_some_and(|s| {
                s["state"] == "online" && s["readers"]["cage1-scan"]["state"] == "up"
            })
        };
        self.sub.wait_for(up, PATIENCE).await;
    }
}

fn unlock_body(id: &str, operator: &str) -> String {
    format!(
        r#"{{"id":"{id}","location":"{CAGE}","operator":"{operator}","reason":"stuck pallet"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_copied_and_stale_release_entries_change_nothing() {
    let mut gate = Gate::start().await;
    let c = &gate.central;
    let t = |asset: &str| format!("{POLICY}/{asset}");
    let granted = c.sign(&t("A-1"), r#"{"released":true}"#);
    gate.policy("A-1", &granted).await;
    // Unsigned: what an attacker on the broker sends.
    gate.policy("B-1", r#"{"released":true}"#).await;
    // Signed by a key the gateway does not know.
    let stranger = Central::new();
    let mut unknown = stranger.sign(&t("B-2"), r#"{"released":true}"#);
    unknown = unknown.replace("central-1", "central-9");
    gate.policy("B-2", &unknown).await;
    // Another key claiming central's key id.
    gate.policy("B-3", &stranger.sign(&t("B-3"), r#"{"released":true}"#))
        .await;
    // A-1's genuine grant copied to another asset's topic.
    gate.policy("B-4", &granted).await;
    // An older revocation of A-1 replayed: it must not roll A-1 back.
    let before = SystemTime::now() - Duration::from_secs(3600);
    let old = c.sign_at(&t("A-1"), r#"{"released":false}"#, before);
    gate.policy("A-1", &old).await;
    for (asset, reason) in [
        ("B-1", "unsigned"),
        ("B-2", "unknown key"),
        ("B-3", "bad signature"),
        ("B-4", "wrong topic"),
        ("A-1", "stale"),
    ] {
        gate.untrusted(&t(asset), reason).await;
    }

    let mark = gate.pins.mark();
    for asset in ["B-1", "B-2", "B-3", "B-4"] {
        gate.scan(asset).await;
        gate.alarm("release_unknown_asset", asset).await;
    }
    assert!(
        !gate.lock_opened_since(mark),
        "no forged grant opened the lock"
    );
    gate.scan("A-1").await;
    gate.pins.wait_level(LOCK, ON).await;
    gate.pins.wait_level(LOCK, OFF).await;

    // Revocation: a signed released: false, newer than the grant.
    gate.policy("A-1", &c.sign(&t("A-1"), r#"{"released":false}"#))
        .await;
    wait_until(PATIENCE, "the revocation is stored", || {
        gate.daemon.log().contains("released=false")
    })
    .await;
    let mark = gate.pins.mark();
    // Past the reader's rescan window: a new scan, not a duplicate.
    tokio::time::sleep(Duration::from_secs(3)).await;
    gate.scan("A-1").await;
    gate.alarm("release_denied", "says released: false").await;
    assert!(!gate.lock_opened_since(mark), "revoked");
}

/// Stop, revoke, start, scan: denied. The revocation is a signed
/// `released: false`, newer than the grant, published retained while the
/// gateway is stopped; the broker hands it over at the next subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_published_while_stopped_is_honoured_after_start() {
    revoke_while_stopped(Mosquitto::start().await, |c| c, Revoked::Retained).await;
}

/// The same with a revocation published NOT retained while the gateway is
/// stopped (newer than the retained grant, which stays on the broker): only
/// the control client's persistent session, which the broker keeps while
/// the gateway is away, has it queued for the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_not_retained_published_while_stopped_is_honoured_after_start() {
    revoke_while_stopped(Mosquitto::start().await, |c| c, Revoked::NotRetained).await;
}

/// The same in MQTT 3.1.1, whose persistent session is `clean_session = 0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_not_retained_is_honoured_after_start_with_mqtt_3_1_1() {
    let protocol = |c: ConfigBuilder| c.section_key("mqtt", "protocol", "3.1.1");
    revoke_while_stopped(Mosquitto::start().await, protocol, Revoked::NotRetained).await;
}

/// The same across a broker restart meanwhile: a broker with persistence
/// keeps the session and what it queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_queued_while_stopped_survives_a_broker_restart() {
    let broker = Mosquitto::start_persistent().await;
    revoke_while_stopped(broker, |c| c, Revoked::ThenBrokerRestarted).await;
}

/// How the revocation is published while the gateway is stopped.
#[derive(PartialEq)]
enum Revoked {
    Retained,
    NotRetained,
    /// Not retained, then the broker is restarted (SIGTERM: it saves).
    ThenBrokerRestarted,
}

/// Grant (retained), stop the gateway, revoke, start the gateway, scan:
/// denied.
async fn revoke_while_stopped(
    broker: Mosquitto,
    extra: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    how: Revoked,
) {
    let mut gate = Gate::start_on(broker, Central::new(), extra, &[]).await;
    let topic = gate.grant_then_stop("A-1").await;
    let revocation = gate.central.sign(&topic, r#"{"released":false}"#);
    let retain = how == Revoked::Retained;
    publish(&gate.broker.url(), &topic, revocation.as_str(), retain).await;
    if how == Revoked::ThenBrokerRestarted {
        gate.broker.stop().await;
        gate.broker.restart().await;
    }
    let from = gate.daemon.log().len();
    gate.restart().await;
    wait_until(PATIENCE, "the revocation is stored", || {
        gate.daemon.log()[from..].contains("released=false")
    })
    .await;
    let log = gate.daemon.log();
    assert!(
        log[from..].contains("control session resumed"),
        "the broker kept the session: {log}"
    );
    let mark = gate.pins.mark();
    gate.scan("A-1").await;
    gate.alarm("release_denied", "says released: false").await;
    assert!(!gate.lock_opened_since(mark), "revoked while stopped");
}

/// A revocation delivered while the policy store cannot commit yet, then
/// `kill -9` before the commit: the gateway had not acknowledged it, so the
/// broker still has it in the session and hands it over again at the next
/// start. (With acknowledgement on receipt, the broker had deleted it: the
/// grant stood.) The store is stalled by the test seam
/// `CUSTODYD_TEST_POLICY_STALL`, set for one run only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_delivered_but_not_yet_stored_survives_kill_9() {
    revocation_in_flight_at_kill_9(|c| c).await;
}

/// The same in MQTT 3.1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_delivered_but_not_yet_stored_survives_kill_9_with_mqtt_3_1_1() {
    revocation_in_flight_at_kill_9(|c| c.section_key("mqtt", "protocol", "3.1.1")).await;
}

async fn revocation_in_flight_at_kill_9(extra: impl FnOnce(ConfigBuilder) -> ConfigBuilder) {
    let mut gate = Gate::start_with(Central::new(), extra, &[]).await;
    let topic = gate.grant_then_stop("A-1").await;

    gate.daemon
        .set_env(custodyd::release::TEST_STALL_ENV, "3600");
    gate.restart().await;
    let from = gate.daemon.log().len();
    let revocation = gate.central.sign(&topic, r#"{"released":false}"#);
    publish(&gate.broker.url(), &topic, revocation.as_str(), false).await;
    let received = format!("control message received topic={topic} retain=false");
    wait_until(PATIENCE, "the revocation reached the daemon", || {
        gate.daemon.log()[from..].contains(&received)
    })
    .await;
    assert!(
        !gate.daemon.log()[from..].contains("released=false"),
        "stalled before its commit"
    );
    gate.daemon.kill();

    gate.daemon.unset_env(custodyd::release::TEST_STALL_ENV);
    let from = gate.daemon.log().len();
    gate.restart().await;
    wait_until(PATIENCE, "the revocation is stored after all", || {
        gate.daemon.log()[from..].contains("released=false")
    })
    .await;
    let mark = gate.pins.mark();
    gate.scan("A-1").await;
    gate.alarm("release_denied", "says released: false").await;
    assert!(!gate.lock_opened_since(mark), "revoked");
}

/// A revocation whose commit failed (a failing disk; the test seam
/// `CUSTODYD_TEST_POLICY_FAIL` fails the first one) is taken again while
/// the gateway stays connected. MQTT re-sends an unacknowledged message only
/// at a reconnect, which could be days away: meanwhile the grant stood. The
/// control client now reconnects after such a drop to have it re-sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_commit_failed_is_stored_without_waiting_for_a_reconnect() {
    revocation_whose_commit_failed(|c| c).await;
}

/// The same in MQTT 3.1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_commit_failed_is_stored_without_waiting_for_a_reconnect_3_1_1() {
    revocation_whose_commit_failed(|c| c.section_key("mqtt", "protocol", "3.1.1")).await;
}

async fn revocation_whose_commit_failed(extra: impl FnOnce(ConfigBuilder) -> ConfigBuilder) {
    let mut gate = Gate::start_with(Central::new(), extra, &[]).await;
    // Granted without the retain flag, so that no retained copy comes at the
    // restart and the revocation's commit is the first one.
    let topic = format!("{POLICY}/A-1");
    let grant = gate.central.sign(&topic, r#"{"released":true}"#);
    publish(&gate.broker.url(), &topic, grant.as_str(), false).await;
    wait_until(PATIENCE, "the grant is stored", || {
        gate.daemon.log().contains("released=true")
    })
    .await;
    gate.daemon.terminate().await;
    gate.daemon.set_env(custodyd::release::TEST_FAIL_ENV, "1");
    gate.restart().await;
    let from = gate.daemon.log().len();
    let revocation = gate.central.sign(&topic, r#"{"released":false}"#);
    publish(&gate.broker.url(), &topic, revocation.as_str(), false).await;
    wait_until(PATIENCE, "the revocation's first commit to fail", || {
        gate.daemon.log()[from..].contains("release policy update NOT stored")
    })
    .await;
    let failed = gate.daemon.log().len();
    wait_until(PATIENCE, "the revocation to be stored after all", || {
        gate.daemon.log()[failed..].contains("release policy: 1 entries changed")
    })
    .await;
    let mark = gate.pins.mark();
    gate.scan("A-1").await;
    gate.alarm("release_denied", "says released: false").await;
    assert!(!gate.lock_opened_since(mark), "revoked");
}

/// A signed unlock published (not retained) while the gateway is stopped,
/// still within its `not_after` when the gateway is back: the broker queued
/// it in the control session, and it runs once. Not again after another
/// restart: the broker has it acknowledged, and its id is remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlock_queued_while_stopped_runs_once_after_start_within_its_not_after() {
    let mut gate = Gate::start_with(Central::new(), operators, &[]).await;
    gate.daemon.terminate().await;
    let from = gate.sub.messages().len();
    // Held open for a few seconds, so the pins connection sees it even if
    // the command is handled right after start.
    let body =
        r#"{"id":"q-1","location":"cage-1","operator":"op-ann","reason":"queued","duration":"3s"}"#;
    let queued = gate.central.sign(UNLOCK, body);
    publish(&gate.broker.url(), UNLOCK, queued.as_str(), false).await;
    gate.restart().await;
    gate.pins.wait_level(LOCK, ON).await;
    gate.pins.wait_level(LOCK, OFF).await;
    let replies = |msgs: &[Message]| -> Vec<Value> {
        msgs.iter()
            .filter(|m| m.topic.ends_with("/cmd-reply/unlock"))
            .map(Message::json)
            .filter(|r| r["id"] == "q-1")
            .collect()
    };
    gate.sub
        .wait_for(|m| !replies(&m[from..]).is_empty(), PATIENCE)
        .await;
    let first = replies(&gate.sub.messages_since(from));
    assert_eq!(first[0]["ok"], true, "{first:?}");

    gate.daemon.terminate().await;
    gate.restart().await;
    let mark = gate.pins.mark();
    // A ping sent now is queued behind anything the broker would re-send:
    // once it is answered, a second run of q-1 would have shown.
    let ping = "itad/test-site/gw-1/cmd/ping";
    let ping_body = gate.central.sign(ping, r#"{"id":"p-1"}"#);
    let ping_from = gate.sub.messages().len();
    publish(&gate.broker.url(), ping, ping_body.as_str(), false).await;
    gate.sub
        .wait_for(
            |m| {
                m[ping_from..]
                    .iter()
                    .any(|m| m.topic.ends_with("/cmd-reply/ping"))
            },
            PATIENCE,
        )
        .await;
    let all = replies(&gate.sub.messages_since(from));
    assert_eq!(all.len(), 1, "q-1 ran once: {all:?}");
    assert!(!gate.lock_opened_since(mark), "not again after a restart");
    let overrides = gate
        .sub
        .messages_since(from)
        .iter()
        .filter(|m| m.topic.contains("/alarm/") && m.json()["kind"] == "gate_override")
        .count();
    assert_eq!(overrides, 1, "one override recorded");
}

/// The operator the signed commands name.
fn operators(config: ConfigBuilder) -> ConfigBuilder {
    config.operator("62E3086CED", "op-ann")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_only_signed_fresh_once_by_a_known_operator_and_never_retained() {
    let central = Central::new();
    // Retained before the daemon starts: delivered with the retain flag at
    // every subscription, so it would run at each restart and reconnect.
    let retained = central.sign(UNLOCK, &unlock_body("r-1", "op-ann"));
    let mut gate = Gate::start_with(central, operators, &[(UNLOCK.to_string(), retained)]).await;
    gate.untrusted(UNLOCK, "retained").await;
    let mark = gate.pins.mark();

    let unsigned = gate
        .unlock_reply(&unlock_body("u-1", "op-ann"), "u-1")
        .await;
    assert_eq!(unsigned["ok"], false, "{unsigned}");
    assert!(unsigned["error"].as_str().unwrap().contains("unsigned"));
    gate.untrusted(UNLOCK, "unsigned").await;

    let expired = gate.central.sign_at(
        UNLOCK,
        &unlock_body("u-2", "op-ann"),
        SystemTime::now() - Duration::from_secs(120),
    );
    let reply = gate.unlock_reply(&expired, "u-2").await;
    assert!(
        reply["error"].as_str().unwrap().contains("expired"),
        "{reply}"
    );
    gate.untrusted(UNLOCK, "expired").await;

    let other_gateway = "itad/test-site/gw-2/cmd/unlock";
    let misdirected = gate
        .central
        .sign(other_gateway, &unlock_body("u-3", "op-ann"));
    let reply = gate.unlock_reply(&misdirected, "u-3").await;
    assert!(
        reply["error"].as_str().unwrap().contains("wrong topic"),
        "{reply}"
    );

    let nobody = gate.central.sign(UNLOCK, &unlock_body("u-5", "nobody"));
    let reply = gate.unlock_reply(&nobody, "u-5").await;
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("not in [operators]"),
        "{reply}"
    );
    assert!(!gate.lock_opened_since(mark), "no refused command unlocked");

    let good = gate.central.sign(UNLOCK, &unlock_body("u-4", "op-ann"));
    let reply = gate.unlock_reply(&good, "u-4").await;
    assert_eq!(reply["ok"], true, "{reply}");
    gate.pins.wait_level(LOCK, ON).await;
    gate.pins.wait_level(LOCK, OFF).await;

    // The same request again, also after a restart: never twice.
    let reply = gate.unlock_reply(&good, "u-4").await;
    assert!(
        reply["error"].as_str().unwrap().contains("replayed"),
        "{reply}"
    );
    gate.daemon.terminate().await;
    let from = gate.sub.messages().len();
    gate.daemon.restart();
    gate.pins = SimPins::connect(&gate.daemon.dir().join("gpio.sock")).await;
    let mark = gate.pins.mark();
    let replayed = |m: &[Message]| {
        m[from..].iter().any(|m| {
            m.topic.ends_with("/cmd-reply/unlock")
                && m.json()["id"] == "u-4"
                && m.text().contains("replayed")
        })
    };
    // Sent until the restarted daemon answers (it subscribes when connected).
    let deadline = std::time::Instant::now() + PATIENCE;
    while !replayed(&gate.sub.messages()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted daemon never refused the replay"
        );
        publish(&gate.broker.url(), UNLOCK, good.as_str(), false).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        !gate.lock_opened_since(mark),
        "replayed and retained: locked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_release_is_refused_while_the_clock_is_unsynchronised() {
    let central = Central::new();
    let topic = format!("{POLICY}/E-1");
    let expires = humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(86_400));
    let entry = central.sign(
        &topic,
        &format!(r#"{{"released":true,"expires_at":"{expires}"}}"#),
    );
    let mut gate = Gate::start_with(central, |c| c, &[(topic, entry)]).await;
    gate.daemon.set_clock_synced(false);
    wait_until(PATIENCE, "the entry is stored", || {
        gate.daemon.log().contains("release policy entry")
    })
    .await;
    let mark = gate.pins.mark();
    gate.scan("E-1").await;
    gate.alarm("release_denied", "clock is not synchronised")
        .await;
    assert!(!gate.lock_opened_since(mark), "fail secure");
    gate.daemon.set_clock_synced(true);
    // Past the reader's rescan window: a new scan, not a duplicate.
    tokio::time::sleep(Duration::from_secs(3)).await;
    gate.scan("E-1").await;
    gate.pins.wait_level(LOCK, ON).await;
}

/// A client of the secured broker as `user`, recording what it receives on
/// `filter`.
async fn client_as(
    broker: &Mosquitto,
    user: &str,
    filter: &str,
) -> (
    rumqttc::AsyncClient,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(format!("acl-{user}"), "127.0.0.1", broker.port());
    options.set_credentials(user, "pw");
    let (client, mut events) = AsyncClient::new(options, 16);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (connected, mut up) = tokio::sync::watch::channel(false);
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            match event {
                Event::Incoming(Packet::ConnAck(_)) => {
                    let _ = connected.send(true);
                }
                Event::Incoming(Packet::Publish(p)) => record.lock().unwrap().push(format!(
                    "{} {}",
                    p.topic,
                    String::from_utf8_lossy(&p.payload)
                )),
                _ => {}
            }
        }
    });
    tokio::time::timeout(PATIENCE, up.wait_for(|c| *c))
        .await
        .expect("connected")
        .unwrap();
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    (client, seen)
}

/// Publishes one message as `user` on a connection of its own, returning
/// once the broker has answered it (or dropped the connection).
async fn publish_as(broker: &Mosquitto, user: &str, topic: &str, payload: &str) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(format!("acl-{user}-pub"), "127.0.0.1", broker.port());
    options.set_credentials(user, "pw");
    let (client, mut events) = AsyncClient::new(options, 4);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    let answered = async {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = event {
                return;
            }
        }
    };
    tokio::time::timeout(PATIENCE, answered)
        .await
        .expect("an answer");
}

/// The ACL template (deploy/mosquitto/) in a real Mosquitto: a gateway's
/// identity cannot publish another gateway's commands (nor any control
/// topic); central's can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_lets_no_gateway_publish_another_gateways_commands() {
    use rumqttc::QoS;
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mosquitto/custodyd.acl"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("custodyd.acl");
    std::fs::write(&acl, template.replace("itad/reno-1/", "itad/test-site/")).unwrap();
    let passwd = dir.path().join("custodyd.passwd");
    for (i, user) in ["central", "gw-1", "gw-2"].iter().enumerate() {
        let mut cmd = std::process::Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let status = cmd
            .arg("-b")
            .arg(&passwd)
            .arg(user)
            .arg("pw")
            .status()
            .unwrap();
        assert!(status.success());
    }
    let broker = Mosquitto::start_configured(&format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}",
        passwd.display(),
        acl.display()
    ))
    .await;
    let (_gw1, gw1_seen) = client_as(&broker, "gw-1", "itad/test-site/gw-1/cmd/#").await;
    let (central, central_seen) = client_as(&broker, "central", "itad/#").await;
    // A marker from central until both subscriptions are in place.
    let marker = "itad/test-site/gw-1/cmd/ping";
    let deadline = std::time::Instant::now() + PATIENCE;
    while !gw1_seen
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.contains("marker"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "central's command never arrived"
        );
        central
            .publish(marker, QoS::AtLeastOnce, false, "marker")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each on a connection of its own: Mosquitto 2.0 answers a denied
    // publish in a way an MQTT 3.1.1 client takes as a broken connection.
    // The broker has handled each before its connection ends, so once the
    // allowed one published last is seen, the others would have been too.
    for (topic, payload) in [
        ("itad/test-site/gw-1/cmd/unlock", "forged"),
        ("itad/test-site/release/A-1", "forged"),
        ("itad/test-site/manifest/door-1", "forged"),
        ("itad/test-site/gw-1/status", "forged"),
        ("itad/test-site/gw-2/health", "own"),
    ] {
        publish_as(&broker, "gw-2", topic, payload).await;
    }
    wait_until(PATIENCE, "gw-2's own message arrives", || {
        central_seen
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.ends_with(" own"))
    })
    .await;
    let central_saw = central_seen.lock().unwrap().clone();
    assert!(
        !central_saw.iter().any(|m| m.contains("forged")),
        "{central_saw:?}"
    );
    assert!(!gw1_seen
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.contains("forged")));
}
