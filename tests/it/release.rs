//! Release control at a cage gate through the real daemon, a real Mosquitto
//! and the simulated GPIO: the lock, lights and buzzer are watched on the
//! daemon's GPIO socket, the door sensor is driven there, and the events
//! are what arrives at the broker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use custodyd::demo::cage::{cage, gate, release_scanner, BUZZER, GREEN, LOCK, RED};
use serde_json::Value;

// The relay board is active low: 0 on a pin means the relay is energised
// (lock open, light on).
const DOOR: u8 = 26;
const ON: bool = false;
const OFF: bool = true;
const OUTPUTS: [u8; 4] = [LOCK, GREEN, RED, BUZZER];

const CAGE: &str = "cage-1";
const POLICY: &str = "itad/test-site/release";

/// The demo's cage gate with a door sensor and short pulses.
fn test_gate() -> Gate {
    let door = InputPin::new(DOOR, ActiveLevel::High).pull(Pull::Up);
    gate()
        .door_sensor(door)
        .unlock_pulse(secs(1))
        .deny_signal(secs(1))
}

/// The gateway with the gate at `location`, its scanner on `scanner` and
/// the simulated GPIO on `socket`.
fn cage_config(
    url: &str,
    data_dir: &Path,
    socket: &Path,
    scanner: &Path,
    location: Location,
) -> ConfigBuilder {
    // These tests are about the gate's decisions; the `trust` tests sign.
    gateway_config(url, data_dir)
        .sim_gpio(socket)
        .location(location)
        .reader(release_scanner(scanner))
        .allow_unsigned()
}

/// Broker, subscriber, daemon, scanner and pins of one cage gate.
struct Cage {
    broker: Mosquitto,
    sub: Subscriber,
    daemon: Daemon,
    scanner: Pty,
    pins: SimPins,
    socket: PathBuf,
}

impl Cage {
    /// Starts everything with `policy` (asset key, payload) published
    /// retained first, and waits until the daemon has stored it.
    async fn start(gate: Gate, policy: &[(&str, &str)]) -> Cage {
        Self::start_with(Mosquitto::start().await, None, cage(gate), policy, |c| c).await
    }

    /// Likewise with the gate at `location` and what `extra` adds to the
    /// configuration.
    async fn start_with(
        broker: Mosquitto,
        persistent_sub: Option<&str>,
        location: Location,
        policy: &[(&str, &str)],
        extra: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Cage {
        let sub = match persistent_sub {
            Some(id) => Subscriber::connect_persistent(&broker.url(), "itad/#", id).await,
            None => Subscriber::connect(&broker.url(), "itad/#").await,
        };
        for (key, payload) in policy {
            publish(&broker.url(), &format!("{POLICY}/{key}"), *payload, true).await;
        }
        let scanner = Pty::open();
        let mut daemon = Daemon::new();
        let socket = daemon.dir().join("gpio.sock");
        daemon.spawn(extra(cage_config(
            &broker.url(),
            &daemon.data_dir(),
            &socket,
            scanner.path(),
            location,
        )));
        let pins = SimPins::connect(&socket).await;
        let cage = Cage {
            broker,
            sub,
            daemon,
            scanner,
            pins,
            socket,
        };
        wait_reader(&cage.sub, "cage1-scan", "up").await;
        if !policy.is_empty() {
            // Logged as each is accepted, and stored before the next
            // message or scan is looked at.
            wait_until(PATIENCE, "the policy is stored", || {
                cage.daemon.log().matches("release policy entry").count() >= policy.len()
            })
            .await;
        }
        cage
    }

    async fn scan(&self, code: &str) {
        self.scanner.write(format!("{code}\r").as_bytes()).await;
    }

    /// The `scanned` event of `asset`, once it has arrived.
    async fn scanned(&self, asset: &str) -> Value {
        let msgs = self
            .sub
            .wait_for(|m| !transitions(m, "scanned", asset).is_empty(), PATIENCE)
            .await;
        transitions(&msgs, "scanned", asset).remove(0)
    }

    /// The alarm of `kind`, once it has arrived (the first whose asset is
    /// `asset`, when given).
    async fn alarm(&self, kind: &str, asset: Option<&str>) -> Value {
        let find = |msgs: &[Message]| {
            alarms(msgs)
                .into_iter()
                .find(|a| a["kind"] == kind && asset.is_none_or(|id| a["asset"]["id"] == id))
        };
        let msgs = self.sub.wait_for(|m| find(m).is_some(), PATIENCE).await;
        find(&msgs).unwrap()
    }
}

impl Cage {
    /// Waits until every output is claimed, and checks each is off (the
    /// lock engaged).
    async fn outputs_claimed_off(&mut self, when: &str) {
        let seen = self
            .pins
            .wait("every output claimed", |s| {
                OUTPUTS.iter().all(|p| s.outputs.contains_key(p))
            })
            .await;
        for pin in OUTPUTS {
            assert_eq!(seen.outputs[&pin], OFF, "GPIO {pin} {when}: {seen:?}");
        }
    }

    /// Waits until red and the buzzer have pulsed since `mark`.
    async fn denial_signalled(&mut self, mark: usize) {
        self.pins
            .wait("red and buzzer", |s| {
                pulsed(s, RED, ON, mark) && pulsed(s, BUZZER, ON, mark)
            })
            .await;
    }

    /// The lock and green were never switched on since `mark`.
    fn assert_kept_shut(&self, mark: usize) {
        let seen = self.pins.seen();
        assert!(!switched_on(&self.pins, LOCK, mark), "{seen:?}");
        assert!(!switched_on(&self.pins, GREEN, mark), "{seen:?}");
    }
}

fn alarms(msgs: &[Message]) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic == format!("{GW}/alarm/{CAGE}"))
        .map(|m| m.json())
        .collect()
}

/// Whether output `pin` was switched on at all after `mark`.
fn switched_on(pins: &SimPins, pin: u8, mark: usize) -> bool {
    pins.seen().log[mark..].contains(&(pin, ON))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_asset_opens_the_lock_for_a_pulse_with_green() {
    let mut cage = Cage::start(
        test_gate(),
        &[(
            "AB-1",
            r#"{"released":true,"reason":"wiped 2026-11-20","expires_at":"2099-01-01T00:00:00Z"}"#,
        )],
    )
    .await;
    let mark = cage.pins.mark();
    cage.scan("AB-1").await;
    cage.pins
        .wait("the lock and green pulsed", |s| {
            pulsed(s, LOCK, ON, mark) && pulsed(s, GREEN, ON, mark)
        })
        .await;
    assert!(!switched_on(&cage.pins, RED, mark) && !switched_on(&cage.pins, BUZZER, mark));

    let event = cage.scanned("AB-1").await;
    let release = &event["release"];
    assert_eq!(release["basis"], "policy", "{event}");
    assert_eq!(release["policy_topic"], format!("{POLICY}/AB-1"));
    assert_eq!(release["asset_key"], "AB-1");
    assert_eq!(release["reason"], "wiped 2026-11-20");
    assert_eq!(release["expires_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(release["via"], "scan");
    assert!(release["decided_at"].as_str().unwrap().ends_with('Z'));
    cage.sub
        .assert_quiet_for(Duration::from_millis(300), |m| m.topic.contains("/alarm/"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_assets_keep_the_lock_shut_and_the_alarm_says_why() {
    let policy = [
        ("NOT-1", r#"{"released":false,"reason":"awaiting wipe"}"#),
        (
            "OLD-1",
            r#"{"released":true,"expires_at":"2020-01-01T00:00:00Z"}"#,
        ),
        ("GONE-1", r#"{"released":true}"#),
    ];
    let mut cage = Cage::start(test_gate(), &policy).await;
    // Revoked by an empty retained message, while the daemon is online.
    publish(&cage.broker.url(), &format!("{POLICY}/GONE-1"), "", true).await;
    // Malformed messages change nothing: not even a good entry they follow.
    publish(
        &cage.broker.url(),
        &format!("{POLICY}/NOT-1"),
        r#"{"released":"yes"}"#,
        true,
    )
    .await;
    publish(
        &cage.broker.url(),
        &format!("{POLICY}/ok%2f1"),
        r#"{"released":true}"#,
        true,
    )
    .await;
    wait_until(
        PATIENCE,
        "the revocation is stored and the rest ignored",
        || {
            let log = cage.daemon.log();
            log.contains("release policy revocation")
                && log.contains("not a canonical asset key")
                && log.matches("release policy message ignored").count() == 2
        },
    )
    .await;

    let mark = cage.pins.mark();
    for (asset, why) in [
        ("NOT-1", "says released: false (reason: \"awaiting wipe\")"),
        ("OLD-1", "expired at 2020-01-01T00:00:00.000Z"),
        ("GONE-1", "was revoked"),
    ] {
        let red_from = cage.pins.mark();
        cage.scan(asset).await;
        let alarm = cage.alarm("release_denied", Some(asset)).await;
        let detail = alarm["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{detail}");
        assert!(detail.contains(&format!("{POLICY}/{asset}")), "{detail}");
        let event = cage.scanned(asset).await;
        assert!(
            event.get("release").is_none(),
            "no release on a refusal: {event}"
        );
        cage.denial_signalled(red_from).await;
    }
    cage.assert_kept_shut(mark);
    assert_eq!(cage.pins.level(LOCK), Some(OFF));
}

/// An expiry that its offset pushes before 1970 or past 9999 panicked the
/// gate task (quoting it in the denial) or the spool task (rendering the
/// grant), leaving the daemon up but deciding nothing. Such a message is
/// refused like any malformed one, and the gate keeps deciding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiries_outside_1970_to_9999_are_refused_and_the_gate_keeps_deciding() {
    let mut cage = Cage::start(test_gate(), &[("OK-1", r#"{"released":true}"#)]).await;
    for (asset, expiry) in [
        ("EARLY-1", "1970-01-01T00:00:00+01:00"),
        ("LATE-1", "9999-12-31T23:59:59-01:00"),
    ] {
        let payload = format!(r#"{{"released":true,"expires_at":"{expiry}"}}"#);
        publish(
            &cage.broker.url(),
            &format!("{POLICY}/{asset}"),
            payload,
            true,
        )
        .await;
    }
    wait_until(PATIENCE, "both messages are looked at", || {
        let log = cage.daemon.log();
        log.matches("is outside 1970-01-01T00:00:00Z").count() == 2
            || log.matches("release policy entry").count() == 3
    })
    .await;
    for asset in ["EARLY-1", "LATE-1"] {
        cage.scan(asset).await;
        cage.alarm("release_unknown_asset", Some(asset)).await;
        assert!(cage.scanned(asset).await.get("release").is_none());
    }
    let mark = cage.pins.mark();
    cage.scan("OK-1").await;
    assert_eq!(cage.scanned("OK-1").await["release"]["basis"], "policy");
    cage.pins
        .wait("the lock pulsed", |s| pulsed(s, LOCK, ON, mark))
        .await;
    assert!(!cage.daemon.log().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_assets_are_denied_by_default() {
    let mut cage = Cage::start(test_gate(), &[]).await;
    let mark = cage.pins.mark();
    cage.scan("NEVER-HEARD").await;
    let alarm = cage
        .alarm("release_unknown_asset", Some("NEVER-HEARD"))
        .await;
    let detail = alarm["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{POLICY}/NEVER-HEARD")) && detail.contains("stayed locked"),
        "{detail}"
    );
    assert!(cage.scanned("NEVER-HEARD").await.get("release").is_none());
    cage.pins.wait("red", |s| pulsed(s, RED, ON, mark)).await;
    assert!(!switched_on(&cage.pins, LOCK, mark));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_assets_are_let_out_where_configured_and_still_alarmed() {
    let mut cage = Cage::start(test_gate().unknown(UnknownAsset::Allow), &[]).await;
    let mark = cage.pins.mark();
    cage.scan("NEVER-HEARD").await;
    let alarm = cage
        .alarm("release_unknown_asset", Some("NEVER-HEARD"))
        .await;
    assert!(
        alarm["detail"].as_str().unwrap().contains("unlocked"),
        "{alarm}"
    );
    let event = cage.scanned("NEVER-HEARD").await;
    assert_eq!(event["release"]["basis"], "unknown_allowed", "{event}");
    assert!(event["release"]["reason"].is_null());
    cage.pins
        .wait("the lock pulsed", |s| pulsed(s, LOCK, ON, mark))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_learned_online_decides_while_the_broker_is_down() {
    let broker = Mosquitto::start_persistent().await;
    let policy = [
        ("KEEP-1", r#"{"released":true,"reason":"wiped"}"#),
        ("HOLD-1", r#"{"released":false}"#),
    ];
    let mut cage = Cage::start_with(
        broker,
        Some("release-offline-sub"),
        cage(test_gate()),
        &policy,
        |c| c,
    )
    .await;

    cage.daemon.terminate().await;
    // Stopped rather than killed only so that it keeps the subscriber's
    // session, and the events decided meanwhile reach the test later.
    cage.broker.stop().await;
    cage.daemon.restart();
    cage.pins = SimPins::connect(&cage.socket).await;
    wait_until(PATIENCE, "the scanner is up again", || {
        cage.daemon.log().matches("reader up").count() == 2
    })
    .await;

    let mark = cage.pins.mark();
    cage.scan("HOLD-1").await;
    cage.pins
        .wait("HOLD-1 refused: red", |s| pulsed(s, RED, ON, mark))
        .await;
    assert!(!switched_on(&cage.pins, LOCK, mark));
    let mark = cage.pins.mark();
    cage.scan("KEEP-1").await;
    cage.pins
        .wait("KEEP-1 let out: the lock pulsed", |s| {
            pulsed(s, LOCK, ON, mark)
        })
        .await;

    // The decisions were spooled and arrive once the broker is back.
    cage.broker.restart().await;
    let event = cage.scanned("KEEP-1").await;
    assert_eq!(event["release"]["basis"], "policy");
    assert_eq!(event["release"]["reason"], "wiped");
    cage.alarm("release_denied", Some("HOLD-1")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_opened_while_locked_is_forced_but_not_while_unlocked() {
    let mut cage = Cage::start(test_gate(), &[]).await;
    // The door contact (pull-up, high while open) starts closed.
    cage.pins.set(DOOR, false).await;
    wait_until(PATIENCE, "the door is seen closed", || {
        cage.daemon.log().contains("open=false")
    })
    .await;

    let mark = cage.pins.mark();
    cage.pins.set(DOOR, true).await;
    let alarm = cage.alarm("gate_forced", None).await;
    assert!(alarm["asset"].is_null());
    assert!(alarm["detail"]
        .as_str()
        .unwrap()
        .contains("while the gate was locked"));
    cage.pins
        .wait("red and buzzer", |s| {
            pulsed(s, RED, ON, mark) && pulsed(s, BUZZER, ON, mark)
        })
        .await;
    cage.pins.set(DOOR, false).await;

    // Unlocked by an operator, the door may open.
    let reply = unlock(&cage, r#""duration":"20s""#, "u-door").await;
    assert_eq!(reply["ok"], true, "{reply}");
    cage.pins.wait_level(LOCK, ON).await;
    cage.pins.set(DOOR, true).await;
    wait_until(PATIENCE, "the door is seen open", || {
        cage.daemon.log().contains("open=true")
    })
    .await;
    cage.sub
        .assert_quiet_for(Duration::from_millis(300), |m| {
            m.topic.contains("/alarm/")
                && m.json()["kind"] == "gate_forced"
                && m.json()["event_id"] != alarm["event_id"]
        })
        .await;
}

/// Sends an `unlock` for the cage by operator op-7 with `extra` fields and
/// returns the reply.
async fn unlock(cage: &Cage, extra: &str, id: &str) -> Value {
    let body = format!(
        r#"{{"id":"{id}","location":"{CAGE}","operator":"op-7","reason":"stuck pallet",{extra}}}"#
    );
    ask_unlock(cage, &body, id).await
}

async fn ask_unlock(cage: &Cage, body: &str, id: &str) -> Value {
    publish(&cage.broker.url(), &format!("{GW}/cmd/unlock"), body, false).await;
    let topic = format!("{GW}/cmd-reply/unlock");
    let is_reply = |m: &Message| m.topic == topic && m.json()["id"] == id;
    let msgs = cage
        .sub
        .wait_for(|msgs| msgs.iter().any(is_reply), PATIENCE)
        .await;
    msgs.into_iter().find(is_reply).unwrap().json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_override_unlocks_for_a_bounded_time_and_is_audited() {
    let mut cage = Cage::start(test_gate().override_max(secs(3)), &[]).await;
    let mark = cage.pins.mark();
    for (body, id, why) in [
        (
            format!(r#"{{"id":"bad-1","location":"{CAGE}","reason":"x"}}"#),
            "bad-1",
            "`operator` is required",
        ),
        (
            r#"{"id":"bad-2","location":"cage-9","operator":"op-7","reason":"x"}"#.to_string(),
            "bad-2",
            "no gate at location \"cage-9\"",
        ),
        (
            format!(
                r#"{{"id":"bad-3","location":"{CAGE}","operator":"op-7","reason":"x","duration":"soon"}}"#
            ),
            "bad-3",
            "`duration`",
        ),
    ] {
        let reply = ask_unlock(&cage, &body, id).await;
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains(why), "{reply}");
    }
    assert!(
        !switched_on(&cage.pins, LOCK, mark),
        "refused requests unlock nothing"
    );

    let asked_at = std::time::Instant::now();
    let reply = unlock(&cage, r#""duration":"1h""#, "u-1").await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        reply["result"]["unlocked_for"], "3s",
        "capped by override_max"
    );
    assert_eq!(reply["result"]["capped"], true);
    cage.pins.wait_level(LOCK, ON).await;
    cage.pins.wait_level(LOCK, OFF).await;
    // Opened after it was asked, so this is at least the time it was open.
    let held = asked_at.elapsed();
    assert!(
        held >= Duration::from_secs(3) && held < Duration::from_secs(15),
        "asked for 1h, capped at 3s, relocked after {held:?}"
    );

    let alarm = cage.alarm("gate_override", None).await;
    let detail = alarm["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"op-7\"")
            && detail.contains("stuck pallet")
            && detail.contains("3s")
            && detail.contains("u-1"),
        "{detail}"
    );
    assert_eq!(
        alarms(&cage.sub.messages()).len(),
        1,
        "refusals are not audited as overrides"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_safe_at_start_up_and_after_sigterm() {
    let mut cage = Cage::start(test_gate(), &[]).await;
    cage.outputs_claimed_off("at start-up").await;

    let reply = unlock(&cage, r#""duration":"60s""#, "u-1").await;
    assert_eq!(reply["ok"], true, "{reply}");
    cage.pins.wait_level(LOCK, ON).await;
    cage.pins.wait_level(GREEN, ON).await;

    let status = cage.daemon.terminate().await;
    assert!(status.success(), "{status:?}");
    let seen = cage.pins.wait_closed().await;
    for pin in OUTPUTS {
        assert_eq!(
            seen.outputs[&pin], OFF,
            "GPIO {pin} after SIGTERM: {seen:?}"
        );
    }
}

/// No unlock without a durable record: with the spool full (the broker
/// gone, events piling up), a released asset's custody event cannot be
/// committed, so the gate stays locked and shows red; the alarm saying so
/// goes out once the broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_event_cannot_be_committed_keeps_the_gate_locked() {
    // The spool table after the gate table's keys.
    let small_spool = |c: ConfigBuilder| c.spool_max_bytes(ByteSize(64 << 10));
    // A persistent session: what the daemon delivers right after the broker
    // is back is queued for the subscriber even before it has reconnected.
    let mut cage = Cage::start_with(
        Mosquitto::start_persistent().await,
        Some("full-spool-sub"),
        cage(test_gate()),
        &[("A-1", r#"{"released":true}"#)],
        small_spool,
    )
    .await;
    cage.broker.stop().await;
    let codes: String = (0..400).map(|i| format!("FILL-{i}\r")).collect();
    cage.scanner.write(codes.as_bytes()).await;
    wait_until(PATIENCE, "the spool is full", || {
        cage.daemon.log().contains("spool full")
    })
    .await;
    // The fill's denials over (red and buzzer off), so this one shows.
    cage.pins.wait_level(RED, OFF).await;
    let mark = cage.pins.mark();
    cage.scan("A-1").await;
    wait_until(
        PATIENCE,
        "the grant is refused for want of a record",
        || cage.daemon.log().contains("NOT recorded"),
    )
    .await;
    cage.denial_signalled(mark).await;
    cage.assert_kept_shut(mark);
    cage.broker.restart().await;
    let alarm = cage.alarm("release_denied", Some("A-1")).await;
    let detail = alarm["detail"].as_str().unwrap();
    assert!(detail.contains("could not be committed"), "{detail}");
    assert!(cage.pins.level(LOCK) == Some(OFF));
}

/// kill -9 during an override: the process is gone, the relay could keep
/// its level. The next start claims the outputs and drives them locked
/// before it opens the spool or connects, and logs how long that took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_locked_first_thing_after_kill_9_during_an_unlock() {
    let mut cage = Cage::start(test_gate(), &[]).await;
    let reply = unlock(&cage, r#""duration":"60s""#, "u-1").await;
    assert_eq!(reply["ok"], true, "{reply}");
    cage.pins.wait_level(LOCK, ON).await;
    cage.daemon.kill();
    let from = cage.daemon.log().len();
    cage.daemon.restart();
    cage.pins = SimPins::connect(&cage.socket).await;
    cage.outputs_claimed_off("after kill -9").await;
    wait_until(PATIENCE, "the restarted daemon runs", || {
        cage.daemon.log()[from..].contains("custodyd running")
    })
    .await;
    let log = cage.daemon.log()[from..].to_string();
    let locked = log
        .find("cage gates claimed and locked")
        .expect("locked, and logged");
    let spool = log.find("spool open").expect("the spool opened");
    assert!(locked < spool, "locked before the spool was opened:\n{log}");
    assert!(log[locked..].contains("after the process started"), "{log}");
    assert!(!pulsed(&cage.pins.seen(), LOCK, ON, 0), "never re-opened");
}

/// At a cage gate that is a station too, what the station refuses pulses
/// red and the buzzer as a denial does, and the alarm goes out; the lock is
/// not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_refusal_at_the_gate_pulses_red_and_the_buzzer() {
    let mut cage = Cage::start_with(
        Mosquitto::start().await,
        None,
        cage(test_gate()).station(true),
        &[],
        |c| c,
    )
    .await;
    let mark = cage.pins.mark();
    cage.scan("ACT:BOGUS").await;
    let alarm = cage.alarm("unknown_action", None).await;
    assert!(
        alarm["detail"].as_str().unwrap().contains("ACT:BOGUS"),
        "{alarm}"
    );
    cage.denial_signalled(mark).await;
    cage.assert_kept_shut(mark);
}
