//! Reconciliation of pass summaries against pickup manifests, with a real
//! retained store and tokio's paused clock.

use std::io::Write as _;

use bytes::Bytes;
use ulid::Ulid;

use super::*;
use crate::bus::Settled;
use crate::custody::{ClosedBy, PassCounts};

const DOOR: &str = "dock-door-1";
const MIN: Duration = Duration::from_secs(60);

fn config() -> Config {
    let toml = format!(
        r#"
[gateway]
site = "s"
name = "g"

[gpio]
backend = "sim"
sim_socket = "/tmp/unused.sock"

[[locations]]
name = "{DOOR}"
kind = "dock_door"
outside_zone = "yard"
inside_zone = "receiving"
window = {{ trigger = {{ pin = 22, active = "low" }} }}
manifest_timeout = "30m"

[[locations]]
name = "dock-door-2"
kind = "dock_door"
outside_zone = "yard"
inside_zone = "receiving"
"#
    );
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    crate::config::load(file.path()).unwrap_or_else(|e| panic!("{e}"))
}

fn id(n: u32) -> String {
    format!("urn:epc:id:giai:0614141.LT{n:04}")
}

fn ids(range: impl IntoIterator<Item = u32>) -> Vec<String> {
    range.into_iter().map(id).collect()
}

/// A door's manifests on a store that outlives restarts.
struct Harness {
    dir: tempfile::TempDir,
    /// `None` only while restarting.
    manifests: Option<Manifests>,
}

impl Harness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let manifests = Some(open(&dir, &mut Vec::new()).await);
        Harness { dir, manifests }
    }

    fn m(&mut self) -> &mut Manifests {
        self.manifests.as_mut().expect("running")
    }

    /// The daemon restarted: a new `Manifests` on the same store.
    async fn restart(&mut self) -> Vec<Draft> {
        let mut out = Vec::new();
        // Closed first, as by a stopping daemon: redb opens a file once.
        self.manifests = None;
        self.manifests = Some(open(&self.dir, &mut out).await);
        out
    }

    /// The central system publishes `payload` on `door`'s manifest topic.
    async fn publish(&mut self, door: &str, payload: &str) -> Vec<Draft> {
        let message = Inbound {
            topic: format!("itad/s/manifest/{door}"),
            payload: Bytes::from(payload.to_string()),
            retain: true,
            ack: Ack::default(),
        };
        let mut out = Vec::new();
        self.m().handle(Event::Message(message), &mut out);
        self.m().save(&mut Vec::new()).await;
        out
    }

    async fn manifest(&mut self, pickup: &str, expected: &[String], closed: bool) -> Vec<Draft> {
        let payload =
            serde_json::json!({"pickup_id": pickup, "expected": expected, "closed": closed});
        self.publish(DOOR, &payload.to_string()).await
    }

    /// A read window at `door` closes having read `assets`; returns its
    /// summary's reconciliation and what followed it.
    async fn pass(
        &mut self,
        door: &str,
        assets: &[String],
    ) -> (Option<Reconciliation>, Vec<Draft>) {
        let now = SystemTime::now();
        let summary = Pass {
            pass_id: Ulid::new(),
            direction: None,
            from_zone: None,
            to_zone: None,
            opened_at: now,
            closed_at: now,
            closed_by: ClosedBy::Quiet,
            assets: assets.iter().map(|a| Arc::from(a.as_str())).collect(),
            counts: PassCounts::default(),
            manifest: None,
        };
        let mut out = vec![Draft::new(door.into(), now, Body::Pass(summary))];
        self.m().reconcile(&mut out, Instant::now());
        self.m().save(&mut Vec::new()).await;
        let Body::Pass(pass) = out.remove(0).body else {
            panic!("the pass comes first");
        };
        (pass.manifest, out)
    }
}

async fn open(dir: &tempfile::TempDir, out: &mut Vec<Draft>) -> Manifests {
    let retained = Retained::at(dir.path());
    let mut manifests = Manifests::new(&config(), &retained, None, Default::default()).unwrap();
    manifests.load(&Vec::new(), out).await;
    manifests
}

fn mismatches(out: &[Draft]) -> Vec<String> {
    out.iter()
        .map(|d| match &d.body {
            Body::Alarm(a) if a.kind == "manifest_mismatch" => {
                assert_eq!(&*d.location, DOOR);
                a.detail.clone()
            }
            other => panic!("expected a manifest_mismatch, got {other:?}"),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn passes_of_one_pickup_add_up_and_closing_it_reports_what_is_missing() {
    let mut h = Harness::start().await;
    let expected = ids(1..=20);
    assert!(h.manifest("PU-1", &expected, false).await.is_empty());

    let (r, out) = h.pass(DOOR, &ids(1..=10)).await;
    let r = r.expect("reconciled");
    assert!(out.is_empty(), "half a pickup is no mismatch yet: {out:?}");
    assert_eq!((r.pickup_id.as_str(), r.passes), ("PU-1", 1));
    assert_eq!(r.expected, expected);
    assert_eq!((r.received, r.missing), (ids(1..=10), ids(11..=20)));
    assert!(r.unexpected.is_empty());

    // The second pallet: 8 more, one asset not on the manifest, and one
    // already read (a tag seen again is not counted twice).
    let mut second = ids(11..=18);
    second.insert(3, id(99));
    second.push(id(5));
    let (r, out) = h.pass(DOOR, &second).await;
    let r = r.expect("reconciled");
    assert_eq!(r.passes, 2);
    assert_eq!(r.received, ids(1..=18));
    assert_eq!(r.missing, ids(19..=20));
    assert_eq!(r.unexpected, [id(99)]);
    let alarms = mismatches(&out);
    assert_eq!(alarms.len(), 1);
    assert!(
        alarms[0].contains(&id(99)) && alarms[0].contains("PU-1"),
        "{}",
        alarms[0]
    );

    let out = h.manifest("PU-1", &expected, true).await;
    let alarms = mismatches(&out);
    assert_eq!(alarms.len(), 1);
    let detail = &alarms[0];
    assert!(
        detail.contains("was closed") && detail.contains("18 of 20"),
        "{detail}"
    );
    assert!(detail.contains(&id(19)) && detail.contains(&id(20)) && detail.contains(&id(99)));

    // Closed: later passes at the door are not reconciled against it.
    let (r, out) = h.pass(DOOR, &ids(19..=20)).await;
    assert!(r.is_none() && out.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_complete_pickup_closes_quietly_and_redelivery_changes_nothing() {
    let mut h = Harness::start().await;
    let expected = ids(1..=3);
    h.manifest("PU-1", &expected, false).await;
    // The broker re-delivers the retained manifest after a reconnect.
    assert!(h.manifest("PU-1", &expected, false).await.is_empty());
    let (r, _) = h.pass(DOOR, &expected).await;
    assert_eq!(r.unwrap().passes, 1);
    assert!(h.manifest("PU-1", &expected, true).await.is_empty());
    // Re-delivered as first published (closed: false), it stays closed.
    assert!(h.manifest("PU-1", &expected, false).await.is_empty());
    let (r, _) = h.pass(DOOR, &expected).await;
    assert!(r.is_none(), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn a_pickup_ends_manifest_timeout_after_its_last_pass() {
    let mut h = Harness::start().await;
    h.manifest("PU-1", &ids(1..=4), false).await;
    // No pass yet: the truck may be late; no timeout runs.
    assert!(h.m().doors[DOOR].ends_at.is_none());
    h.pass(DOOR, &ids(1..=2)).await;
    tokio::time::sleep(20 * MIN).await;
    let last_pass = SystemTime::now();
    let (_, out) = h.pass(DOOR, &ids(3..=3)).await;
    assert!(out.is_empty());
    let started = Instant::now();
    let event = h.m().next_event().await;
    assert!(matches!(event, Event::Timeout));
    assert_eq!(started.elapsed(), 30 * MIN, "30 min after the last pass");
    let mut out = Vec::new();
    h.m().handle(event, &mut out);
    let alarms = mismatches(&out);
    assert!(
        alarms[0].contains("timed out 30m") && alarms[0].contains(&id(4)),
        "{}",
        alarms[0]
    );
    // Dated when it ran out (the last pass is kept to the millisecond).
    let dated = out[0].observed_at.duration_since(last_pass).unwrap();
    assert!(
        dated > 30 * MIN - Duration::from_millis(2) && dated < 31 * MIN,
        "{dated:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_next_pickup_ends_the_last_and_a_withdrawn_one_ends_quietly() {
    let mut h = Harness::start().await;
    h.manifest("PU-1", &ids(1..=2), false).await;
    h.pass(DOOR, &ids(1..=1)).await;
    let alarms = mismatches(&h.manifest("PU-2", &ids(10..=12), false).await);
    assert!(
        alarms[0].contains("replaced by pickup \"PU-2\""),
        "{}",
        alarms[0]
    );
    let (r, _) = h.pass(DOOR, &ids(10..=11)).await;
    let r = r.unwrap();
    assert_eq!((r.pickup_id.as_str(), r.passes), ("PU-2", 1));
    assert_eq!((r.received, r.missing), (ids(10..=11), ids(12..=12)));

    assert!(h.publish(DOOR, "").await.is_empty(), "withdrawn: no alarm");
    let (r, _) = h.pass(DOOR, &ids(12..=12)).await;
    assert!(r.is_none());
}

#[tokio::test(start_paused = true)]
async fn bad_manifests_and_other_doors_are_ignored() {
    let mut h = Harness::start().await;
    h.manifest("PU-1", &ids(1..=2), false).await;
    for bad in [
        "not json",
        r#"{"expected": ["a"]}"#,
        r#"{"pickup_id": " ", "expected": []}"#,
        r#"{"pickup_id": "PU-9", "expected": [""]}"#,
    ] {
        assert!(h.publish(DOOR, bad).await.is_empty(), "{bad}");
    }
    // Not a door with read windows here, or not a door of this gateway.
    let other = r#"{"pickup_id": "PU-7", "expected": ["x"]}"#;
    assert!(h.publish("dock-door-2", other).await.is_empty());
    assert!(h.publish("dock-door-77", other).await.is_empty());
    let (r, _) = h.pass(DOOR, &ids(1..=1)).await;
    assert_eq!(
        r.unwrap().pickup_id,
        "PU-1",
        "the bad ones did not replace it"
    );
    let (r, _) = h.pass("dock-door-2", &ids(1..=1)).await;
    assert!(r.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_pickup_goes_on_across_a_restart_and_times_out_while_down() {
    let mut h = Harness::start().await;
    let expected = ids(1..=4);
    h.manifest("PU-1", &expected, false).await;
    h.pass(DOOR, &ids(1..=2)).await;

    assert!(h.restart().await.is_empty());
    let (r, _) = h.pass(DOOR, &ids(3..=3)).await;
    let r = r.expect("the manifest was kept");
    assert_eq!((r.passes, r.received), (2, ids(1..=3)));
    // The broker re-delivers the manifest after the restart: no change.
    assert!(h.manifest("PU-1", &expected, false).await.is_empty());

    // Down for longer than manifest_timeout since the last pass: the
    // pickup ends at start-up.
    let mut saved = h.m().doors[DOOR].progress.clone().unwrap();
    saved.last_pass_ms -= 40 * 60 * 1000;
    let json = serde_json::to_vec(&saved).unwrap();
    let (_, progress) = h.m().tables.clone().unwrap();
    progress
        .apply([(DOOR, crate::retained::Update::Put(&json))])
        .unwrap();
    drop(progress);
    let out = h.restart().await;
    let alarms = mismatches(&out);
    assert!(
        alarms[0].contains("timed out") && alarms[0].contains(&id(4)),
        "{}",
        alarms[0]
    );
    let (r, _) = h.pass(DOOR, &ids(4..=4)).await;
    assert!(r.is_none(), "ended");
}

proptest::proptest! {
    /// Whatever is published on a manifest topic: no panic; what is
    /// accepted has a pickup id and each expected asset once, in the order
    /// first listed.
    #[test]
    fn any_payload_is_a_manifest_or_refused(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        crate::fuzzing::manifest(&payload);
    }

    #[test]
    fn expected_lists_keep_each_asset_once_first_listed_first(
        expected in proptest::collection::vec("[A-C]{0,2}", 0..12),
    ) {
        let payload = serde_json::json!({"pickup_id": "PU-1", "expected": expected}).to_string();
        match parse(payload.as_bytes()) {
            Ok(m) => {
                let mut first = Vec::new();
                for id in &expected {
                    if !first.contains(id) {
                        first.push(id.clone());
                    }
                }
                proptest::prop_assert_eq!(m.expected, first);
            }
            Err(_) => proptest::prop_assert!(expected.iter().any(String::is_empty)),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn only_signed_manifests_no_older_than_the_one_held_are_taken_where_trust_has_keys() {
    use crate::config::TrustConfig;
    use crate::trust::{keys::SigningKey, sign::sign, Trust};
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate("c1").unwrap();
    let keys = TrustConfig {
        central_keys: [("c1".to_string(), key.public_base64())].into(),
        allow_unsigned: false,
    };
    let guard = Guard {
        trust: Trust::from_config(Some(&keys)),
        alarms: Default::default(),
    };
    let mut m = Manifests::new(&config(), &Retained::at(dir.path()), None, guard).unwrap();
    let topic = format!("itad/s/manifest/{DOOR}");
    let inner = |pickup: &str| format!(r#"{{"pickup_id":"{pickup}","expected":["a"]}}"#);
    let signed = |topic: &str, pickup: &str, at: SystemTime| {
        sign(&key, topic, inner(pickup).as_bytes(), at, Duration::ZERO).unwrap()
    };
    let deliver = |m: &mut Manifests, payload: String| {
        let message = Inbound {
            topic: topic.clone(),
            payload: Bytes::from(payload),
            retain: true,
            ack: Ack::default(),
        };
        m.handle(Event::Message(message), &mut Vec::new());
        let door = &m.doors[DOOR];
        door.manifest.as_ref().map(|m| m.pickup_id.clone())
    };
    let now = SystemTime::now();
    assert_eq!(deliver(&mut m, inner("PU-0")), None, "unsigned");
    assert_eq!(deliver(&mut m, String::new()), None, "empty");
    let elsewhere = signed("itad/s/manifest/dock-door-2", "PU-9", now);
    assert_eq!(deliver(&mut m, elsewhere), None, "wrong topic");
    let current = signed(&topic, "PU-1", now);
    assert_eq!(deliver(&mut m, current.clone()).as_deref(), Some("PU-1"));
    let older = signed(&topic, "PU-OLD", now - MIN);
    assert_eq!(deliver(&mut m, older).as_deref(), Some("PU-1"), "stale");
    assert_eq!(
        deliver(&mut m, current).as_deref(),
        Some("PU-1"),
        "re-delivered"
    );
    let newer = signed(&topic, "PU-2", now + MIN);
    assert_eq!(deliver(&mut m, newer).as_deref(), Some("PU-2"));
}

#[tokio::test(start_paused = true)]
async fn a_manifest_is_acknowledged_once_stored_and_not_before() {
    let mut h = Harness::start().await;
    let (settle, mut settled) = tokio::sync::mpsc::unbounded_channel();
    let inner = serde_json::json!({ "pickup_id": "P1", "expected": ids(1..=2) }).to_string();
    let message = Inbound {
        topic: format!("itad/s/manifest/{DOOR}"),
        payload: Bytes::from(inner),
        retain: false,
        ack: Ack::new(7, settle),
    };
    h.m().handle(Event::Message(message), &mut Vec::new());
    assert!(
        settled.try_recv().is_err(),
        "not acknowledged before its commit"
    );
    h.m().save(&mut Vec::new()).await;
    assert_eq!(settled.try_recv().ok(), Some(Settled::Done(7)));
    h.restart().await;
    let door = &h.m().doors[DOOR];
    assert_eq!(
        door.manifest.as_ref().map(|m| m.pickup_id.as_str()),
        Some("P1")
    );
}
