//! Chain-of-custody context at a scan station, through the real daemon and
//! Mosquitto: operator badges on an EM4100 reader, command and container
//! barcodes on a serial scanner, the context stamped on every scan, context
//! events on `context/{location}`, and the context kept across a restart.

use std::time::Duration;

use crate::common::*;
use custodyd::demo::station::badge_reader;
use serde_json::Value;

const STATION: &str = "scan-station-1";
const ANN: &str = "62E3086CED";
const BOB: &str = "0A0B0C0D0E";
const SSCC: &str = "]C100106141412345678908";
const SSCC_ID: &str = "(00)106141412345678908";

/// The scan station, for a test to add keys to.
fn station() -> Location {
    Location::scan_station(STATION)
}

/// Everything a test needs: broker, subscriber, the two readers, the daemon.
struct Station {
    broker: Mosquitto,
    sub: Subscriber,
    scanner: Pty,
    badges: Pty,
    daemon: Daemon,
}

impl Station {
    /// `location` with a serial scanner and a badge reader; `extra` adds
    /// what else the test needs.
    async fn start(location: Location, extra: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Self {
        let broker = Mosquitto::start().await;
        let sub = Subscriber::connect(&broker.url(), "itad/#").await;
        let (scanner, badges) = (Pty::open(), Pty::open());
        let mut daemon = Daemon::new();
        let badge_reader = badge_reader("station1-badge", STATION, badges.path(), ms(300));
        daemon.spawn(extra(
            gateway_config(&broker.url(), &daemon.data_dir())
                .location(location)
                .reader(station_scanner(scanner.path()))
                .reader(badge_reader),
        ));
        let s = Station {
            broker,
            sub,
            scanner,
            badges,
            daemon,
        };
        s.readers_up().await;
        s
    }

    async fn readers_up(&self) {
        wait_reader(&self.sub, "station1-scan", "up").await;
        wait_reader(&self.sub, "station1-badge", "up").await;
    }

    /// A badge presented briefly: a few frames, as a 125 kHz reader repeats
    /// a card in its field.
    async fn tap(&self, card: &str) {
        for _ in 0..4 {
            self.badges.write(&em4100_frame(card)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn scan(&self, text: &str) {
        self.scanner.write(format!("{text}\r").as_bytes()).await;
    }

    /// Waits for the `n`th (1-based) context event and returns it.
    async fn context_event(&self, n: usize) -> Value {
        let msgs = self
            .sub
            .wait_for(|m| contexts(m).len() >= n, PATIENCE)
            .await;
        contexts(&msgs)[n - 1].clone()
    }

    /// Waits for the scanned event of `id` and returns it.
    async fn scanned(&self, id: &str) -> Value {
        let msgs = self
            .sub
            .wait_for(|m| !transitions(m, "scanned", id).is_empty(), PATIENCE)
            .await;
        transitions(&msgs, "scanned", id).remove(0)
    }

    /// Waits for the `n`th alarm of `kind` and returns it.
    async fn alarm(&self, kind: &str, n: usize) -> Value {
        let msgs = self
            .sub
            .wait_for(|m| alarms(m, kind).len() >= n, PATIENCE)
            .await;
        alarms(&msgs, kind)[n - 1].clone()
    }
}

/// Context events in order, each once: delivery is at-least-once, and a
/// daemon killed before the broker's PUBACK sends the event again.
fn contexts(msgs: &[Message]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    msgs.iter()
        .filter(|m| m.topic == format!("{GW}/context/{STATION}"))
        .map(|m| m.json())
        .filter(|e| seen.insert(e["event_id"].as_str().unwrap().to_string()))
        .collect()
}

fn alarms(msgs: &[Message], kind: &str) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic == format!("{GW}/alarm/{STATION}"))
        .map(|m| m.json())
        .filter(|a| a["kind"] == kind)
        .collect()
}

/// `(change, operator, action, container)` of a context event.
fn summary(e: &Value) -> (String, Value, Value, Value) {
    (
        e["change"].as_str().unwrap().to_string(),
        e["operator"].clone(),
        e["action"].clone(),
        e["container"].clone(),
    )
}

fn s(text: &str) -> Value {
    Value::from(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badges_sign_operators_in_and_out_and_never_become_assets() {
    let st = Station::start(station(), |c| c.operator("62e3086ced", "op-ann")).await;
    st.tap(ANN).await;
    let e = st.context_event(1).await;
    assert_eq!(e["schema"], "custodyd.context.v1");
    assert_eq!(e["location"], STATION);
    assert_eq!(e["reader"], "station1-badge");
    assert!(
        e["seq"].as_u64().is_some() && e["event_id"].is_string(),
        "{e}"
    );
    assert_eq!(
        summary(&e),
        ("signed_in".into(), s("op-ann"), Value::Null, Value::Null)
    );

    st.scan("LAPTOP-0001").await;
    assert_eq!(st.scanned("LAPTOP-0001").await["operator"], "op-ann");

    // A badge not in [operators] signs nobody in.
    st.tap(BOB).await;
    let a = st.alarm("unknown_badge", 1).await;
    assert!(a["asset"].is_null(), "{a}");

    // Well past the reader's 300 ms rescan window: a second tap.
    tokio::time::sleep(Duration::from_secs(1)).await;
    st.tap(ANN).await;
    let e = st.context_event(2).await;
    assert_eq!(
        summary(&e),
        ("signed_out".into(), Value::Null, Value::Null, Value::Null)
    );
    st.scan("LAPTOP-0002").await;
    assert!(st.scanned("LAPTOP-0002").await["operator"].is_null());

    st.sub
        .assert_quiet_for(Duration::from_millis(500), |m| {
            m.topic.contains("/context/")
        })
        .await;
    assert_eq!(contexts(&st.sub.messages()).len(), 2, "one event per tap");
    for m in st.sub.messages() {
        assert!(
            !m.topic.contains("/custody/") || !m.text().contains(ANN),
            "a badge became custody: {m:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactivity_signs_the_operator_out() {
    let st = Station::start(station().operator_timeout(secs(2)), |c| c).await;
    st.tap(ANN).await;
    let signed_in = st.context_event(1).await;
    assert_eq!(signed_in["operator"], ANN, "published as read");
    let e = st.context_event(2).await;
    assert_eq!(
        summary(&e),
        ("timed_out".into(), Value::Null, Value::Null, Value::Null)
    );
    assert!(e["reader"].is_null());
    let at = |e: &Value| humantime::parse_rfc3339(e["observed_at"].as_str().unwrap()).unwrap();
    let idle = at(&e).duration_since(at(&signed_in)).unwrap();
    assert!(
        idle >= Duration::from_secs(2) && idle < Duration::from_secs(3),
        "{idle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_and_containers_are_set_stamped_cleared_and_refused() {
    let st = Station::start(station(), |c| c.container_prefixes(&["GAY-"])).await;
    st.tap(ANN).await;
    st.context_event(1).await;

    st.scan("ACT:wiped").await;
    let e = st.context_event(2).await;
    assert_eq!(
        summary(&e),
        ("action_set".into(), s(ANN), s("wiped"), Value::Null)
    );
    assert_eq!(e["reader"], "station1-scan");
    st.scan(SSCC).await;
    let e = st.context_event(3).await;
    assert_eq!(
        summary(&e),
        ("container_set".into(), s(ANN), s("wiped"), s(SSCC_ID))
    );

    st.scan("LAPTOP-0001").await;
    let scan = st.scanned("LAPTOP-0001").await;
    assert_eq!((&scan["operator"], &scan["action"]), (&s(ANN), &s("wiped")));
    assert_eq!(scan["container"], SSCC_ID);

    st.scan("ACT:MELTED").await;
    let a = st.alarm("unknown_action", 1).await;
    assert!(a["detail"].as_str().unwrap().contains("MELTED"), "{a}");
    st.scan("GAY-0042").await;
    let e = st.context_event(4).await;
    assert_eq!(
        summary(&e),
        ("container_set".into(), s(ANN), s("wiped"), s("GAY-0042"))
    );

    st.scan("ACT:CLEAR").await;
    let e = st.context_event(5).await;
    assert_eq!(
        summary(&e),
        ("cleared".into(), s(ANN), Value::Null, Value::Null)
    );
    st.scan("LAPTOP-0002").await;
    let scan = st.scanned("LAPTOP-0002").await;
    assert!(
        scan["action"].is_null() && scan["container"].is_null(),
        "{scan}"
    );

    // Commands and containers are context, never custody.
    let ids: Vec<Value> = custody(&st.sub.messages())
        .iter()
        .map(|e| e["asset"]["id"].clone())
        .collect();
    assert_eq!(ids, [s("LAPTOP-0001"), s("LAPTOP-0002")]);
    // seq runs over custody, alarm and context events alike.
    let mut seqs: Vec<u64> = st
        .sub
        .messages()
        .iter()
        .filter(|m| !m.topic.ends_with("/status"))
        .map(|m| m.json()["seq"].as_u64().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_operator_refuses_scans_while_nobody_is_signed_in() {
    let st = Station::start(station().require_operator(true), |c| c).await;
    st.scan("LAPTOP-0001").await;
    let a = st.alarm("operator_required", 1).await;
    assert_eq!(a["asset"]["id"], "LAPTOP-0001");
    st.scan("ACT:WIPED").await;
    st.alarm("operator_required", 2).await;

    st.tap(ANN).await;
    st.context_event(1).await;
    st.scan("LAPTOP-0002").await;
    assert_eq!(st.scanned("LAPTOP-0002").await["operator"], ANN);
    assert!(
        transitions(&st.sub.messages(), "scanned", "LAPTOP-0001").is_empty(),
        "a refused scan is no custody event"
    );
    assert_eq!(
        contexts(&st.sub.messages()).len(),
        1,
        "the refused ACT: changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_survives_a_restart_and_its_timeout_still_runs() {
    let mut st = Station::start(station().operator_timeout(secs(10)), |c| c).await;
    st.tap(ANN).await;
    st.scan("ACT:SHREDDED").await;
    st.scan("GAY-7").await;
    st.scan(SSCC).await;
    let last = st.context_event(3).await;
    assert_eq!(
        summary(&last),
        ("container_set".into(), s(ANN), s("shredded"), s(SSCC_ID))
    );

    st.daemon.terminate().await;
    st.daemon.restart();
    st.readers_up().await;
    st.scan("LAPTOP-0001").await;
    let scan = st.scanned("LAPTOP-0001").await;
    assert_eq!(
        (&scan["operator"], &scan["action"]),
        (&s(ANN), &s("shredded"))
    );
    assert_eq!(scan["container"], SSCC_ID);
    assert_eq!(
        contexts(&st.sub.messages()).len(),
        3,
        "a restart is no change"
    );

    // The timeout counts from the last scan, across the restart too; the
    // action and container stay for whoever signs in next.
    let e = st.context_event(4).await;
    assert_eq!(
        summary(&e),
        ("timed_out".into(), Value::Null, s("shredded"), s(SSCC_ID))
    );

    // Killed while signed in, and down for longer than the timeout: signed
    // out at start-up, dated when the timeout ran out.
    st.tap(ANN).await;
    let signed_in = st.context_event(5).await;
    st.daemon.kill();
    tokio::time::sleep(Duration::from_secs(11)).await;
    st.daemon.restart();
    let e = st.context_event(6).await;
    assert_eq!(e["change"], "timed_out");
    let at = |e: &Value| humantime::parse_rfc3339(e["observed_at"].as_str().unwrap()).unwrap();
    let idle = at(&e).duration_since(at(&signed_in)).unwrap();
    assert!(
        idle >= Duration::from_secs(10) && idle < Duration::from_secs(11),
        "{idle:?}"
    );
    let _ = &st.broker;
}
