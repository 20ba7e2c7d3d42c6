use super::*;
use crate::config::{Side, WindowConfig};
use crate::metrics::PortalStats;
use crate::presence::Sides;

fn params() -> Params {
    Params {
        cage: false,
        outside_zone: "yard".into(),
        inside_zone: "receiving".into(),
        static_after: Duration::from_secs(30),
        order_margin: Duration::from_millis(300),
    }
}

/// Evidence from reads `(ms after start, antenna, rssi)`: antenna 1 is
/// outside, 2 inside; the floor is -80 dBm.
fn evidence(reads: &[(u64, u8, f32)]) -> Evidence {
    let sides = Sides::portal(
        None,
        vec![(1, Side::Outside), (2, Side::Inside)],
        Some(-80.0),
    );
    let start = Instant::now();
    let mut e = Evidence::default();
    for &(ms, antenna, rssi) in reads {
        e.fold(
            &sides,
            Some(antenna),
            Some(rssi),
            start + Duration::from_millis(ms),
        );
    }
    e
}

/// A tag carried from antenna `from` to antenna `to`: three reads on
/// each, 100 ms apart, the second side 500 ms after the first.
fn pass(from: u8, to: u8) -> Evidence {
    evidence(&[
        (0, from, -60.0),
        (100, from, -55.0),
        (200, from, -60.0),
        (500, to, -60.0),
        (600, to, -50.0),
        (700, to, -65.0),
    ])
}

#[tokio::test(start_paused = true)]
async fn the_side_that_sees_it_first_is_where_it_came_from() {
    assert_eq!(
        decide(&pass(1, 2), None, &params()),
        Outcome::Moved(Direction::Inbound, Confidence::Low)
    );
    assert_eq!(
        decide(&pass(2, 1), None, &params()),
        Outcome::Moved(Direction::Outbound, Confidence::Low)
    );
    let p = params();
    assert_eq!(
        p.zones(Direction::Inbound),
        ("yard".into(), "receiving".into())
    );
    assert_eq!(
        p.zones(Direction::Outbound),
        ("receiving".into(), "yard".into())
    );
}

#[tokio::test(start_paused = true)]
async fn sides_taking_turns_from_the_start_say_nothing() {
    // Both antennas see it from the first cycle: no order, by time or by lead.
    let e = evidence(&[
        (0, 1, -60.0),
        (40, 2, -60.0),
        (80, 1, -60.0),
        (120, 2, -60.0),
    ]);
    assert!(matches!(decide(&e, None, &params()), Outcome::Ambiguous(_)));
    // Slow turns (a loaded reader): far enough apart in time, but the
    // first side read it once only before the second did; the peaks
    // came close together.
    let e = evidence(&[
        (0, 1, -60.0),
        (400, 2, -60.0),
        (800, 1, -50.0),
        (900, 2, -50.0),
    ]);
    assert!(matches!(decide(&e, None, &params()), Outcome::Ambiguous(_)));
}

#[tokio::test(start_paused = true)]
async fn one_side_only_is_ambiguous_and_long_enough_is_parked() {
    let e = evidence(&[(0, 1, -60.0), (500, 1, -60.0)]);
    assert_eq!(
        decide(&e, None, &params()),
        Outcome::Ambiguous("seen by one side only")
    );
    let e = evidence(&[(0, 2, -60.0), (30_000, 2, -60.0)]);
    assert_eq!(decide(&e, None, &params()), Outcome::Static);
    // Even with beams: one side's reads do not place the asset in the pass.
    let e = evidence(&[(0, 1, -60.0), (500, 1, -60.0)]);
    assert!(matches!(
        decide(&e, Some(Direction::Inbound), &params()),
        Outcome::Ambiguous(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn parked_by_the_door_then_carried_through_is_a_pass_but_parked_in_it_is_not() {
    // Staged in the yard for a minute, then driven in.
    let mut reads: Vec<(u64, u8, f32)> = (0..60).map(|s| (s * 1000, 1, -70.0)).collect();
    reads.extend([
        (60_000, 1, -55.0),
        (60_500, 2, -55.0),
        (61_000, 2, -50.0),
        (61_500, 2, -60.0),
    ]);
    assert_eq!(
        decide(&evidence(&reads), None, &params()),
        Outcome::Moved(Direction::Inbound, Confidence::Low)
    );
    // In the doorway for a minute, seen by both sides all along.
    let reads: Vec<(u64, u8, f32)> = (0..60)
        .flat_map(|s| [(s * 1000, 1, -70.0), (s * 1000 + 500, 2, -72.0)])
        .collect();
    assert_eq!(decide(&evidence(&reads), None, &params()), Outcome::Static);
}

#[tokio::test(start_paused = true)]
async fn reads_below_the_floor_are_no_evidence() {
    let e = evidence(&[(0, 1, -85.0), (100, 1, -85.0), (500, 2, -90.0)]);
    assert_eq!(decide(&e, None, &params()), Outcome::NoEvidence);
    assert_eq!(e.weak, 3);
    // A stray weak read on the far side does not spoil a pass either.
    let e = evidence(&[
        (0, 2, -88.0),
        (100, 1, -60.0),
        (200, 1, -60.0),
        (700, 2, -60.0),
    ]);
    assert_eq!(
        decide(&e, None, &params()),
        Outcome::Moved(Direction::Inbound, Confidence::Low)
    );
}

#[tokio::test(start_paused = true)]
async fn rssi_peaks_decide_when_the_first_reads_do_not_and_must_not_contradict_them() {
    // Both sides from the first cycle, but the outside was strongest
    // first: the tag came past the outside antenna to the inside one.
    let e = evidence(&[
        (0, 1, -70.0),
        (40, 2, -75.0),
        (200, 1, -50.0),
        (240, 2, -70.0),
        (900, 1, -72.0),
        (940, 2, -48.0),
    ]);
    assert_eq!(
        decide(&e, None, &params()),
        Outcome::Moved(Direction::Inbound, Confidence::Low)
    );
    // First reads say inbound, the peaks outbound.
    let e = evidence(&[
        (0, 1, -70.0),
        (100, 1, -70.0),
        (500, 2, -40.0),
        (600, 2, -70.0),
        (1200, 1, -45.0),
    ]);
    assert_eq!(
        decide(&e, None, &params()),
        Outcome::Ambiguous("first reads and RSSI peaks disagree")
    );
}

#[tokio::test(start_paused = true)]
async fn beams_raise_or_veto_the_antennas() {
    let p = params();
    assert_eq!(
        decide(&pass(1, 2), Some(Direction::Inbound), &p),
        Outcome::Moved(Direction::Inbound, Confidence::High)
    );
    assert_eq!(
        decide(&pass(1, 2), Some(Direction::Outbound), &p),
        Outcome::Ambiguous("the beams and the antennas disagree")
    );
    let at_once = evidence(&[(0, 1, -60.0), (40, 2, -60.0), (80, 1, -60.0)]);
    assert_eq!(
        decide(&at_once, Some(Direction::Outbound), &p),
        Outcome::Moved(Direction::Outbound, Confidence::Medium)
    );
}

/// A custody draft of asset `id` at dock-door-1, with `evidence`.
fn draft(transition: Transition, id: &str, evidence: Option<Evidence>) -> Sighting {
    let t = std::time::SystemTime::now();
    let draft = Draft::new(
        "dock-door-1".into(),
        t,
        Body::Custody(Custody {
            transition,
            asset: crate::identity::Asset {
                id: id.into(),
                raw: id.into(),
                source: crate::decode::Source::Rfid,
            },
            reader: "door1-uhf".into(),
            reads: 6,
            first_seen: t,
            last_seen: t,
            antennas: vec![1, 2],
            rssi_max: Some(-50.0),
            crossing: None,
            context: Default::default(),
        }),
    );
    Sighting {
        draft,
        evidence: evidence.map(Box::new),
    }
}

fn departed(evidence: Evidence) -> Sighting {
    draft(
        Transition::Departed,
        "urn:epc:id:giai:0614141.1",
        Some(evidence),
    )
}

/// Dock door 1, with read windows if `window`; and the sender of its
/// sensors' edges.
fn portals(window: Option<WindowConfig>) -> (Portals, mpsc::Sender<SensorEdge>) {
    let (edges, sensors) = mpsc::channel(8);
    let portal = Portal {
        params: params(),
        windows: window.map(|w| Windows::new(w, Duration::from_secs(2))),
        readers: vec!["door1-uhf".into()],
        metrics: Arc::default(),
    };
    let portals = Portals {
        portals: HashMap::from([(Arc::from("dock-door-1"), portal)]),
        sensors,
        forwarders: JoinSet::new(),
    };
    (portals, edges)
}

/// Dock door 1's counts.
fn stats(portals: &Portals) -> PortalStats {
    portals.portals["dock-door-1"].metrics.get()
}

fn custody_of(draft: &Draft) -> &Custody {
    match &draft.body {
        Body::Custody(c) => c,
        other => panic!("not custody: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_departure_is_passed_on_and_followed_by_its_moved() {
    let (mut portals, _) = portals(None);
    let mut out = Vec::new();
    portals.handle(departed(pass(2, 1)), Instant::now(), &mut out);
    assert_eq!(out.len(), 2);
    let moved = custody_of(&out[1]);
    assert_eq!(moved.transition, Transition::Moved);
    assert_eq!(moved.reads, 6);
    let crossing = moved.crossing.as_ref().unwrap();
    assert_eq!(
        (&*crossing.from_zone, &*crossing.to_zone),
        ("receiving", "yard")
    );
    assert_eq!(
        (crossing.confidence, crossing.pass_id),
        (Confidence::Low, None)
    );
    assert!(
        !portals.leaves_cage(&out[1]),
        "a dock door has no release control"
    );

    out.clear();
    portals.handle(
        departed(evidence(&[(0, 1, -60.0)])),
        Instant::now(),
        &mut out,
    );
    assert_eq!(out.len(), 1, "no moved: {out:?}");
    // A reader without sides: presence only, nothing to count.
    portals.handle(
        draft(Transition::Departed, "x", None),
        Instant::now(),
        &mut out,
    );
    assert_eq!(out.len(), 2, "no moved: {out:?}");
    let mut expected = PortalStats::default();
    expected.outcomes.moved = 1;
    expected.outcomes.ambiguous = 1;
    assert_eq!(stats(&portals), expected);
}

/// A gateway with the dock doors `doors`, from its configuration file.
fn gateway(doors: &[&str]) -> Config {
    let mut toml = "[gateway]\nsite = \"s\"\nname = \"g\"\n".to_string();
    for door in doors {
        toml += &format!(
            "[[locations]]\nname = \"{door}\"\nkind = \"dock_door\"\n\
             outside_zone = \"yard\"\ninside_zone = \"receiving\"\n"
        );
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), toml).unwrap();
    crate::config::load(file.path()).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(start_paused = true)]
async fn counts_run_on_across_a_reload_and_go_with_the_portal() {
    let metrics = Metrics::default();
    let config = gateway(&["dock-door-1", "dock-door-2"]);
    let mut portals = Portals::new(&config, None, &metrics).unwrap();
    let mut out = Vec::new();
    portals.handle(departed(pass(1, 2)), Instant::now(), &mut out);
    let counts = metrics.portals();
    let doors: Vec<&str> = counts.iter().map(|(name, _)| &**name).collect();
    assert_eq!(doors, ["dock-door-1", "dock-door-2"], "{counts:?}");
    assert_eq!(counts[1].1, PortalStats::default());

    // The reloaded front, without door 2.
    portals.free_sensors().await;
    let mut portals = Portals::new(&gateway(&["dock-door-1"]), None, &metrics).unwrap();
    portals.handle(departed(pass(2, 1)), Instant::now(), &mut out);
    let mut expected = PortalStats::default();
    expected.outcomes.moved = 2;
    assert_eq!(metrics.portals(), [("dock-door-1".into(), expected)]);
}

#[tokio::test(start_paused = true)]
async fn out_of_a_cage_is_a_leave_attempt() {
    let (mut portals, _) = portals(None);
    portals.portals.get_mut("dock-door-1").unwrap().params.cage = true;
    let mut out = Vec::new();
    portals.handle(departed(pass(2, 1)), Instant::now(), &mut out);
    portals.handle(departed(pass(1, 2)), Instant::now(), &mut out);
    let leaving: Vec<bool> = out.iter().map(|d| portals.leaves_cage(d)).collect();
    assert_eq!(leaving, [false, true, false, false]);
}

fn window() -> WindowConfig {
    WindowConfig {
        trigger: None,
        quiet_after: Duration::from_secs(2),
        max_window: Duration::from_secs(30),
        silent_after: 2,
    }
}

fn edge(active: bool) -> Edge {
    Edge {
        active,
        at: Instant::now(),
        wall: std::time::SystemTime::now(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_pass_through_the_beams_moves_its_assets_together_and_sums_up() {
    let (mut portals, edges) = portals(Some(window()));
    let mut out = Vec::new();
    let location: Arc<str> = "dock-door-1".into();
    let sensor = async |sensor, active, portals: &mut Portals, out: &mut Vec<Draft>| {
        edges
            .send((location.clone(), sensor, edge(active)))
            .await
            .unwrap();
        portals.next_event(out).await;
    };
    sensor(Sensor::Outer, true, &mut portals, &mut out).await;
    let reading = portals
        .reading(&reader_config())
        .expect("a UHF reader is switched");
    assert!(*reading.borrow());
    tokio::time::advance(Duration::from_millis(300)).await;
    sensor(Sensor::Inner, true, &mut portals, &mut out).await;
    for id in ["A", "B", "C"] {
        portals.handle(
            draft(Transition::Arrived, id, None),
            Instant::now(),
            &mut out,
        );
    }
    sensor(Sensor::Outer, false, &mut portals, &mut out).await;
    sensor(Sensor::Inner, false, &mut portals, &mut out).await;
    // A: the antennas agree with the beams; B: both sides at once; C:
    // one side only.
    let at_once = evidence(&[(0, 1, -60.0), (40, 2, -60.0)]);
    for (id, evidence) in [
        ("A", pass(1, 2)),
        ("B", at_once),
        ("C", evidence(&[(0, 2, -60.0)])),
    ] {
        portals.handle(
            draft(Transition::Departed, id, Some(evidence)),
            Instant::now(),
            &mut out,
        );
    }
    assert_eq!(
        out.len(),
        6,
        "presence only until the window closes: {out:?}"
    );
    out.clear();
    // quiet_after later the window closes; every member has departed.
    portals.next_event(&mut out).await;
    assert!(!*reading.borrow(), "readers idle");
    let moved: Vec<&Custody> = out[..2].iter().map(custody_of).collect();
    let pass_id = moved[0]
        .crossing
        .as_ref()
        .unwrap()
        .pass_id
        .expect("a pass_id");
    for (m, (id, confidence)) in moved
        .iter()
        .zip([("A", Confidence::High), ("B", Confidence::Medium)])
    {
        assert_eq!(&*m.asset.id, id);
        let crossing = m.crossing.as_ref().unwrap();
        assert_eq!(
            (crossing.confidence, crossing.pass_id),
            (confidence, Some(pass_id))
        );
        assert_eq!(&*crossing.to_zone, "receiving");
    }
    let Body::Pass(summary) = &out[2].body else {
        panic!("{:?}", out[2]);
    };
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(summary.pass_id, pass_id);
    assert_eq!(
        summary.direction,
        Some(PassDirection::All(Direction::Inbound))
    );
    assert_eq!(summary.from_zone.as_deref(), Some("yard"));
    assert_eq!(summary.closed_by, crate::custody::ClosedBy::Quiet);
    let ids: Vec<&str> = summary.assets.iter().map(|a| &**a).collect();
    assert_eq!(ids, ["A", "B", "C"]);
    let c = summary.counts;
    assert_eq!(
        (c.assets, c.reads, c.outcomes.moved, c.outcomes.ambiguous),
        (3, 18, 2, 1)
    );
    let s = stats(&portals);
    assert_eq!((s.passes, s.empty_passes), (1, 0));
    assert_eq!(s.outcomes, c.outcomes, "the pass's outcomes, counted once");
}

#[tokio::test(start_paused = true)]
async fn windows_that_read_nothing_raise_silent_reader() {
    let (mut portals, edges) = portals(Some(window()));
    let location: Arc<str> = "dock-door-1".into();
    let mut out = Vec::new();
    for _ in 0..2 {
        edges
            .send((location.clone(), Sensor::Outer, edge(true)))
            .await
            .unwrap();
        portals.next_event(&mut out).await;
        edges
            .send((location.clone(), Sensor::Outer, edge(false)))
            .await
            .unwrap();
        portals.next_event(&mut out).await;
        portals.next_event(&mut out).await; // closes on quiet_after
    }
    let kinds: Vec<&str> = out
        .iter()
        .map(|d| match &d.body {
            Body::Pass(p) => {
                assert_eq!((p.direction, p.counts.assets), (None, 0));
                "pass"
            }
            Body::Alarm(a) => {
                assert!(a.detail.contains("door1-uhf"), "{}", a.detail);
                a.kind
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["pass", "pass", "silent_reader"]);
    assert_eq!(stats(&portals).empty_passes, 2);
    // At shutdown an open window is summed up too.
    edges
        .send((location.clone(), Sensor::Trigger, edge(true)))
        .await
        .unwrap();
    portals.next_event(&mut out).await;
    out.clear();
    portals.shut(&mut out);
    let Body::Pass(p) = &out[0].body else {
        panic!("{out:?}");
    };
    assert_eq!(p.closed_by, crate::custody::ClosedBy::Shutdown);
}

fn reader_config() -> ReaderConfig {
    let toml = r#"
name = "door1-uhf"
location = "dock-door-1"
path = "/dev/ttyUSB0"
protocol = "uhf-a0"
"#;
    ::config::Config::builder()
        .add_source(::config::File::from_str(toml, ::config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize())
        .expect("a reader table")
}
