use super::*;
use crate::custody::Transition;
use crate::decode::Source;
use crate::identity::Asset;
use crate::presence::SideSeen;

const QUIET: Duration = Duration::from_secs(2);
const DEPARTURE: Duration = Duration::from_secs(3);

fn windows() -> Windows {
    let config = WindowConfig {
        trigger: None,
        quiet_after: QUIET,
        max_window: Duration::from_secs(10),
        silent_after: 2,
    };
    Windows::new(config, DEPARTURE)
}

fn edge(active: bool) -> Edge {
    Edge {
        active,
        at: Instant::now(),
        wall: SystemTime::now(),
    }
}

fn departed(id: &str) -> (Custody, Box<Evidence>) {
    let now = SystemTime::now();
    let custody = Custody {
        transition: Transition::Departed,
        asset: Asset {
            id: id.into(),
            raw: id.into(),
            source: Source::Rfid,
        },
        reader: "door1-uhf".into(),
        reads: 3,
        first_seen: now,
        last_seen: now,
        antennas: vec![1],
        rssi_max: None,
        crossing: None,
        context: Default::default(),
    };
    let seen = SideSeen {
        first_at: Instant::now(),
        last_at: Instant::now(),
        reads: 3,
        lead: 3,
        peak: None,
    };
    let evidence = Evidence {
        outside: Some(seen),
        ..Evidence::default()
    };
    (custody, Box::new(evidence))
}

/// Runs `w` until its next deadline and expires it.
async fn run_to_deadline(w: &mut Windows, out: &mut Vec<Finished>) {
    let at = w.deadline().expect("a deadline");
    tokio::time::sleep_until(at).await;
    w.expire(Instant::now(), out);
}

#[tokio::test(start_paused = true)]
async fn a_trigger_opens_a_window_that_the_quiet_closes_and_departures_finish() {
    let mut w = windows();
    let reading = w.reading();
    let mut out = Vec::new();
    assert!(!*reading.borrow() && w.deadline().is_none());
    let opened = Instant::now();
    w.sensor(Sensor::Trigger, edge(true), Instant::now(), &mut out);
    assert!(*reading.borrow(), "readers on");
    // Held open while the photo-eye is blocked.
    assert_eq!(w.deadline(), Some(opened + Duration::from_secs(10)));
    tokio::time::advance(Duration::from_millis(500)).await;
    w.sensor(Sensor::Trigger, edge(false), Instant::now(), &mut out);
    tokio::time::advance(Duration::from_millis(500)).await;
    let a: Arc<str> = "A".into();
    let b: Arc<str> = "B".into();
    w.arrived(&a, Instant::now());
    tokio::time::advance(Duration::from_millis(1000)).await;
    w.arrived(&b, Instant::now());
    // A left early: kept for the pass.
    let (custody, evidence) = departed("A");
    assert!(w.departed(custody, evidence, &mut out).is_none());
    let last_tag = Instant::now();
    run_to_deadline(&mut w, &mut out).await;
    assert_eq!(
        Instant::now(),
        last_tag + QUIET,
        "quiet_after after the last new tag"
    );
    assert!(!*reading.borrow(), "readers idle");
    assert!(out.is_empty(), "B has not departed yet");
    let (custody, evidence) = departed("B");
    assert!(w.departed(custody, evidence, &mut out).is_none());
    let finished = out.pop().expect("finished");
    assert_eq!(finished.assets, [a, b]);
    assert_eq!(finished.members.len(), 2);
    assert_eq!(finished.closed_by, ClosedBy::Quiet);
    assert_eq!(finished.beams, None);
    assert_eq!(finished.silent, None);
    // Not a member of any window: decided alone.
    let (custody, evidence) = departed("C");
    assert!(w.departed(custody, evidence, &mut out).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_window_closes_at_max_window_and_the_beams_give_its_direction() {
    let mut w = windows();
    let mut out = Vec::new();
    let opened = Instant::now();
    w.sensor(Sensor::Outer, edge(true), Instant::now(), &mut out);
    tokio::time::advance(Duration::from_millis(300)).await;
    w.sensor(Sensor::Inner, edge(true), Instant::now(), &mut out);
    // The pallet stops in the doorway, beams broken.
    run_to_deadline(&mut w, &mut out).await;
    assert_eq!(Instant::now(), opened + Duration::from_secs(10));
    let finished = out.pop().expect("no members to wait for");
    assert_eq!(finished.closed_by, ClosedBy::MaxWindow);
    assert_eq!(finished.beams, Some(Direction::Inbound));
    assert!(finished.assets.is_empty());
}

#[tokio::test(start_paused = true)]
async fn members_that_something_still_reads_are_given_up_on() {
    let mut w = windows();
    let mut out = Vec::new();
    w.sensor(Sensor::Trigger, edge(true), Instant::now(), &mut out);
    w.sensor(Sensor::Trigger, edge(false), Instant::now(), &mut out);
    w.arrived(&"A".into(), Instant::now());
    run_to_deadline(&mut w, &mut out).await;
    let closed = Instant::now();
    run_to_deadline(&mut w, &mut out).await;
    assert_eq!(Instant::now(), closed + DEPARTURE + DEPARTURE_SLACK);
    let finished = out.pop().expect("given up");
    assert_eq!(finished.assets.len(), 1);
    assert!(finished.members.is_empty());
    // Its departure later is no one's.
    let (custody, evidence) = departed("A");
    assert!(w.departed(custody, evidence, &mut out).is_some());
}

#[tokio::test(start_paused = true)]
async fn assets_still_present_join_the_next_window() {
    let mut w = windows();
    let mut out = Vec::new();
    w.sensor(Sensor::Trigger, edge(true), Instant::now(), &mut out);
    w.sensor(Sensor::Trigger, edge(false), Instant::now(), &mut out);
    w.arrived(&"A".into(), Instant::now());
    let first = w.open.as_ref().unwrap().pass_id;
    run_to_deadline(&mut w, &mut out).await;
    // A new window before A departed: the first pass is done without A.
    tokio::time::advance(Duration::from_millis(100)).await;
    w.sensor(Sensor::Trigger, edge(true), Instant::now(), &mut out);
    let finished = out.pop().expect("the first pass");
    assert_eq!(finished.pass_id, first);
    assert!(finished.members.is_empty());
    let (custody, evidence) = departed("A");
    assert!(
        w.departed(custody, evidence, &mut out).is_none(),
        "a member of the second"
    );
    assert_eq!(w.open.as_ref().unwrap().members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn empty_windows_in_a_row_are_silent_once_until_one_reads() {
    let mut w = windows();
    let mut out = Vec::new();
    let pass = |w: &mut Windows, read: bool| {
        w.sensor(Sensor::Trigger, edge(true), Instant::now(), &mut Vec::new());
        w.sensor(
            Sensor::Trigger,
            edge(false),
            Instant::now(),
            &mut Vec::new(),
        );
        if read {
            w.arrived(&"A".into(), Instant::now());
            let (custody, evidence) = departed("A");
            w.departed(custody, evidence, &mut Vec::new());
        }
    };
    let mut silences = Vec::new();
    for read in [false, false, false, true, false, false] {
        pass(&mut w, read);
        run_to_deadline(&mut w, &mut out).await;
        silences.push(out.pop().expect("finished").silent);
    }
    assert_eq!(silences, [None, Some(2), None, None, None, Some(2)]);
    // A window cut short by shutdown does not count either way.
    pass(&mut w, false);
    run_to_deadline(&mut w, &mut out).await;
    w.sensor(Sensor::Trigger, edge(true), Instant::now(), &mut out);
    w.shut(Instant::now(), &mut out);
    let shut = out.pop().expect("finished at shutdown");
    assert_eq!(
        (shut.closed_by, shut.silent, w.empty),
        (ClosedBy::Shutdown, None, 3)
    );
}
