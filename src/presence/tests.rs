use super::*;
use crate::custody::{Body, Transition};
use crate::decode::Source;
use std::time::Duration;

fn reader(name: &str, mode: ReadMode) -> Arc<ReaderInfo> {
    Arc::new(ReaderInfo {
        name: name.into(),
        location: "dock-door-1".into(),
        mode,
        rescan_window: Duration::from_secs(2),
        departure_timeout: Duration::from_secs(5),
        sides: Sides::default(),
    })
}

fn read(reader: &Arc<ReaderInfo>, id: &str, antenna: Option<u8>, rssi: Option<f32>) -> Observation {
    let source = if reader.mode == ReadMode::Scan {
        Source::Barcode
    } else {
        Source::Rfid
    };
    Observation {
        reader: reader.clone(),
        asset: Ok(Asset {
            id: id.into(),
            raw: id.into(),
            source,
        }),
        antenna,
        rssi_dbm: rssi,
        wall: SystemTime::now(),
    }
}

fn custody(d: &Draft) -> &crate::custody::Custody {
    match &d.body {
        Body::Custody(c) => c,
        other => panic!("expected custody, got {other:?}"),
    }
}

/// Drives the real task under tokio's paused clock.
struct Harness {
    reads: mpsc::Sender<Observation>,
    drafts: mpsc::Receiver<Sighting>,
}

impl Harness {
    fn start() -> Self {
        let (reads, rx) = mpsc::channel(64);
        let (tx, drafts) = mpsc::channel(64);
        let (_, inventory) = mpsc::channel(1);
        let stage = crate::watchdog::Watchdog::default().stage("presence");
        tokio::spawn(run(State::new(inventory, stage), rx, tx));
        Harness { reads, drafts }
    }

    async fn next(&mut self) -> Draft {
        self.drafts.recv().await.expect("presence task ended").draft
    }

    fn none_pending(&mut self) -> bool {
        self.drafts.try_recv().is_err()
    }
}

#[tokio::test(start_paused = true)]
async fn a_card_held_at_a_reader_arrives_once_and_departs_with_totals() {
    let r = reader("door1-em", ReadMode::Presence);
    let mut h = Harness::start();
    // Held for 3 s at 10 frames/s.
    for _ in 0..30 {
        h.reads
            .send(read(&r, "62E3086CED", None, None))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrived = h.next().await;
    assert_eq!(custody(&arrived).transition, Transition::Arrived);
    assert_eq!(custody(&arrived).reads, 1);
    assert!(h.none_pending(), "repeats while held must not make events");

    // Nothing yet 4.9 s after the last read; departed at 5 s.
    tokio::time::sleep(Duration::from_millis(4800)).await;
    assert!(h.none_pending());
    let departed = h.next().await;
    let c = custody(&departed);
    assert_eq!(c.transition, Transition::Departed);
    assert_eq!(c.reads, 30);
    assert!(c.last_seen >= c.first_seen);
    assert_eq!(&*departed.location, "dock-door-1");
}

#[tokio::test(start_paused = true)]
async fn antennas_and_rssi_fold_into_the_presence() {
    let r = reader("door1-uhf", ReadMode::Presence);
    let mut h = Harness::start();
    h.reads
        .send(read(&r, "E200", Some(2), Some(-70.0)))
        .await
        .unwrap();
    h.reads
        .send(read(&r, "E200", Some(1), Some(-55.5)))
        .await
        .unwrap();
    h.reads.send(read(&r, "E200", Some(2), None)).await.unwrap();
    let arrived = h.next().await;
    assert_eq!(custody(&arrived).antennas, [2]);
    let departed = h.next().await;
    let c = custody(&departed);
    assert_eq!((c.transition, c.reads), (Transition::Departed, 3));
    assert_eq!(c.antennas, [1, 2]);
    assert_eq!(c.rssi_max, Some(-55.5));
}

#[tokio::test(start_paused = true)]
async fn a_rescan_inside_the_window_is_a_duplicate_and_outside_it_is_not() {
    let r = reader("station-scan", ReadMode::Scan);
    let other = reader("other-scan", ReadMode::Scan);
    let mut h = Harness::start();
    h.reads.send(read(&r, "AB/1#+", None, None)).await.unwrap();
    assert_eq!(custody(&h.next().await).transition, Transition::Scanned);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.reads.send(read(&r, "AB/1#+", None, None)).await.unwrap(); // double fire
    h.reads
        .send(read(&other, "AB/1#+", None, None))
        .await
        .unwrap(); // another reader
    assert_eq!(&*custody(&h.next().await).reader, "other-scan");
    // The duplicate refreshed the window: 1.9 s later is still inside it.
    tokio::time::sleep(Duration::from_millis(1900)).await;
    h.reads.send(read(&r, "AB/1#+", None, None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    h.reads.send(read(&r, "AB/1#+", None, None)).await.unwrap();
    assert_eq!(&*custody(&h.next().await).reader, "station-scan");
    tokio::task::yield_now().await;
    assert!(h.none_pending());
}

#[tokio::test(start_paused = true)]
async fn a_scan_of_an_asset_whose_tag_is_present_here_is_the_same_presence() {
    let tag = reader("door1-uhf", ReadMode::Presence);
    let scanner = reader("door1-scan", ReadMode::Scan);
    let uri = "urn:epc:id:giai:0614141.12345400";
    let mut h = Harness::start();
    h.reads.send(read(&tag, uri, Some(1), None)).await.unwrap();
    assert_eq!(custody(&h.next().await).transition, Transition::Arrived);
    h.reads.send(read(&scanner, uri, None, None)).await.unwrap();
    let departed = h.next().await;
    assert_eq!(
        custody(&departed).transition,
        Transition::Departed,
        "no scanned event in between"
    );
    assert_eq!(custody(&departed).reads, 2);
    // Once it has left, a scan is a scan again.
    h.reads.send(read(&scanner, uri, None, None)).await.unwrap();
    assert_eq!(custody(&h.next().await).transition, Transition::Scanned);
}

#[tokio::test(start_paused = true)]
async fn a_read_that_names_no_asset_becomes_an_alarm_not_custody() {
    let r = reader("station-scan", ReadMode::Scan);
    let mut h = Harness::start();
    let mut bad = read(&r, "x", None, None);
    bad.asset = Err(Rejected {
        raw: "]C100106141412345678909".into(),
        reason: "bad check digit".into(),
    });
    h.reads.send(bad).await.unwrap();
    let d = h.next().await;
    match &d.body {
        Body::Alarm(a) => {
            assert_eq!(a.kind, "invalid_scan");
            assert!(
                a.detail.contains("check digit") && a.detail.contains("station-scan"),
                "{}",
                a.detail
            );
        }
        other => panic!("expected an alarm, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn inventory_lists_what_is_present_and_the_state_outlives_the_task() {
    let r = reader("door1-uhf", ReadMode::Presence);
    let (reads, rx) = mpsc::channel(8);
    let (tx, mut drafts) = mpsc::channel(8);
    let (ask, inventory) = mpsc::channel(1);
    let mut watchdog = crate::watchdog::Watchdog::default();
    let mut state = State::new(inventory, watchdog.stage("presence"));
    state.locations = vec!["dock-door-1".into(), "scan-1".into()];
    let task = tokio::spawn(run(state, rx, tx));
    reads.send(read(&r, "E200", Some(2), None)).await.unwrap();
    reads.send(read(&r, "E200", Some(1), None)).await.unwrap();
    drafts.recv().await.unwrap();

    let inventory = |body: serde_json::Value| {
        let ask = ask.clone();
        async move {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let body = body.as_object().unwrap().clone();
            let id = "i-1".into();
            ask.send(Request { id, body, reply }).await.unwrap();
            answer.await.unwrap()
        }
    };
    let all = inventory(serde_json::json!({"id": "i-1"})).await.unwrap();
    assert_eq!(all["assets"], 1);
    assert_eq!(all["locations"]["scan-1"], serde_json::json!([]));
    let here = &all["locations"]["dock-door-1"][0];
    assert_eq!(here["asset"]["id"], "E200");
    assert_eq!(here["asset"]["source"], "rfid");
    assert_eq!(
        (&here["reader"], &here["reads"]),
        (&"door1-uhf".into(), &2.into())
    );
    assert_eq!(here["antennas"], serde_json::json!([1, 2]));
    assert!(here["first_seen"].is_string() && here["last_seen"].is_string());
    let one = inventory(serde_json::json!({"id": "i-1", "location": "scan-1"}));
    assert_eq!(one.await.unwrap()["assets"], 0);
    let unknown = inventory(serde_json::json!({"id": "i-1", "location": "x"}));
    assert!(unknown.await.unwrap_err().contains("unknown location"));

    // A reload: the task ends with its input and hands the field over.
    drop(reads);
    let state = task.await.unwrap();
    assert_eq!(
        watchdog.stalled(Duration::from_secs(3600)),
        None,
        "the watchdog stage outlives the task"
    );
    let (reads, rx) = mpsc::channel(8);
    let (tx, mut drafts) = mpsc::channel(8);
    tokio::spawn(run(state, rx, tx));
    reads.send(read(&r, "E200", Some(1), None)).await.unwrap();
    let departed = drafts.recv().await.unwrap().draft;
    assert_eq!(custody(&departed).transition, Transition::Departed);
    assert_eq!(custody(&departed).reads, 3, "no second arrived");
}

#[tokio::test(start_paused = true)]
async fn memory_follows_the_field_not_the_history() {
    let r = reader("door1-uhf", ReadMode::Presence);
    let s = reader("scan", ReadMode::Scan);
    let mut engine = Engine::new();
    let mut out = Vec::new();
    for i in 0..10_000 {
        let now = Instant::now();
        engine.observe(read(&r, &format!("T{i}"), None, None), now);
        engine.observe(read(&s, &format!("S{i}"), None, None), now);
        tokio::time::advance(Duration::from_millis(10)).await;
        engine.expire(Instant::now(), SystemTime::now(), &mut out);
    }
    // 5 s departure timeout at 100 tags/s: about 500 present at any time.
    let (present, deadlines, scans) = engine.footprint();
    assert!(present <= 501 && deadlines <= 501, "{present} {deadlines}");
    assert!(scans <= 401, "{scans}");
    assert_eq!(out.len(), 10_000 - present);
}

#[tokio::test(start_paused = true)]
async fn the_field_saved_with_its_events_is_taken_up_by_a_new_engine() {
    let mut door = reader("door1-uhf", ReadMode::Presence);
    Arc::get_mut(&mut door).unwrap().sides =
        Sides::portal(Some(crate::config::Side::Outside), Vec::new(), None);
    let mut engine = Engine::new();
    let arrived = engine
        .observe(read(&door, "E200", Some(2), Some(-60.0)), Instant::now())
        .expect("arrived");
    let [save] = &arrived.saves[..] else {
        panic!("one save with the arrived: {:?}", arrived.saves);
    };
    let saved: crate::custody::Saved = vec![(save.key.clone(), save.value.clone().unwrap())];

    // Another process, a while later; a snapshot it cannot read is
    // left out, not fatal.
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut garbled = saved.clone();
    garbled.push((format!("{}x", save.key), vec![0xFF; 3]));
    let mut taken = Engine::new();
    taken.restore(&garbled, |_| Duration::from_secs(5), Clocks::now());
    let listed = taken.inventory(&[], None).unwrap();
    assert_eq!(listed["assets"], 1, "{listed}");
    assert!(
        taken
            .observe(read(&door, "E200", Some(2), None), Instant::now())
            .is_none(),
        "no second arrived"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    let mut out = Vec::new();
    taken.expire(Instant::now(), SystemTime::now(), &mut out);
    let [departed] = &out[..] else {
        panic!("one departed: {out:?}");
    };
    let c = custody(&departed.draft);
    assert_eq!((c.transition, c.reads), (Transition::Departed, 2));
    // Saved to the millisecond, as the wire has it.
    let wire = |t| crate::custody::rfc3339(t);
    assert_eq!(wire(c.first_seen), wire(custody(&arrived).first_seen));
    assert_eq!((c.antennas.clone(), c.rssi_max), (vec![2], Some(-60.0)));
    let evidence = departed.evidence.as_deref().expect("the portal evidence");
    assert_eq!(evidence.outside.map(|s| s.reads), Some(2));
    assert_eq!(
        departed.draft.saves,
        [crate::custody::Save {
            key: save.key.clone(),
            value: None
        }],
        "forgotten with its departed"
    );
}
