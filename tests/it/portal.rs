//! Direction at a dock door: a simulated R2000 reader with an antenna on
//! each side of the door reports tags per antenna with RSSI, in scripted
//! sequences, to the real daemon; the custody events are checked at a real
//! Mosquitto.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

const A0_INVENTORY: u8 = 0x89;
/// How long each step of a scripted pass holds, at least: well past the
/// door's `order_margin` (500 ms), well short of its `static_after` (4 s).
const STEP: Duration = Duration::from_millis(1200);

/// A 96-bit EPC numbered `n` (no GS1 header: its id is `urn:epc:raw:...`).
fn epc(n: u8) -> Vec<u8> {
    vec![0xE2, 0x80, 0x11, 0x60, 0x60, 0, 0, 0, 0, 0, 0x10, n]
}

/// The EPC as `asset.raw` shows it.
fn raw(n: u8) -> String {
    epc(n).iter().map(|b| format!("{b:02X}")).collect()
}

/// Tag `n` seen by `antenna` at `dbm` (the A0 RSSI byte is dBm + 129).
fn tag(n: u8, antenna: u8, dbm: i16) -> SimTag {
    SimTag {
        epc: epc(n),
        antenna,
        rssi: u8::try_from(dbm + 129).expect("-129..=-2 dBm"),
    }
}

/// Tag `n` on antenna 1 (outside) or 2 (inside) at a good -60 dBm.
fn outside(n: u8) -> SimTag {
    tag(n, 1, -60)
}

fn inside(n: u8) -> SimTag {
    tag(n, 2, -60)
}

/// Dock door 1 between the yard and receiving, for direction.
fn door() -> Location {
    dock_door(secs(1))
        .order_margin(ms(500))
        .static_after(secs(4))
        .rssi_floor(-90.0)
}

type Door = UhfDoor;

/// The door reading all the time.
async fn start() -> Door {
    start_with(door()).await
}

/// The door at `location` with an R2000 reader on `path`, antenna 1
/// outside and antenna 2 inside, and the simulated GPIO on
/// [`gpio_socket`]; health every second.
fn door_config(url: &str, daemon: &Daemon, path: &Path, location: Location) -> ConfigBuilder {
    let antennas = [(1, Some(Side::Outside)), (2, Some(Side::Inside))];
    fast_health(url, &daemon.data_dir())
        .sim_gpio(&gpio_socket(daemon))
        .location(location)
        .reader(door_uhf(path, Protocol::UhfA0).antennas(&antennas))
}

/// The door at `location` (see [`door_config`]), its reader up.
async fn start_with(location: Location) -> Door {
    UhfDoor::start(Kind::A0, |url, daemon, path| {
        door_config(url, daemon, path, location)
    })
    .await
}

impl Door {
    /// Puts `tags` in the field for `at_least` and at least three inventory
    /// rounds per antenna (so each tag is read several times even when the
    /// machine is slow).
    async fn hold(&self, tags: Vec<SimTag>, at_least: Duration) {
        let from = self.sim.commands().len();
        let start = Instant::now();
        self.sim.set_tags(tags);
        wait_commands(&self.sim, "three rounds on each antenna", |c| {
            c[from..].iter().filter(|c| c.cmd == A0_INVENTORY).count() >= 6
        })
        .await;
        if let Some(rest) = at_least.checked_sub(start.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }

    /// Carries tag `n` through the door: `from` side, then both, then the
    /// other side, then out of the field.
    async fn carry(&self, n: u8, from: fn(u8) -> SimTag, to: fn(u8) -> SimTag) {
        self.hold(vec![from(n)], STEP).await;
        self.hold(vec![from(n), to(n)], Duration::ZERO).await;
        self.hold(vec![to(n)], STEP).await;
        self.sim.set_tags(Vec::new());
    }

    /// Carries tag 3 through the door, whose `moved` comes after every
    /// earlier departure's, then checks that each tag of `why` departed
    /// without a `moved`, the log saying why.
    async fn assert_no_moved(&self, why: &[(u8, &str)]) {
        self.carry(3, outside, inside).await;
        let (_, msgs) = self.moved(3).await;
        let log = self.daemon.log();
        for &(n, why) in why {
            assert_eq!(events(&msgs, "departed", n).len(), 1, "tag {n}");
            assert!(events(&msgs, "moved", n).is_empty(), "tag {n}");
            assert!(
                log.lines()
                    .any(|l| l.contains("no moved") && l.contains(&raw(n)) && l.contains(why)),
                "tag {n}: {why}\n{log}"
            );
        }
    }

    /// Waits for the `moved` of tag `n`; returns it and every message so far.
    async fn moved(&self, n: u8) -> (Value, Vec<Message>) {
        let msgs = self
            .sub
            .wait_for(|m| !events(m, "moved", n).is_empty(), PATIENCE)
            .await;
        (events(&msgs, "moved", n).remove(0), msgs)
    }
}

/// Custody events of one transition of tag `n`.
fn events(msgs: &[Message], transition: &str, n: u8) -> Vec<Value> {
    custody(msgs)
        .into_iter()
        .filter(|e| e["transition"] == transition && e["asset"]["raw"] == raw(n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_carried_in_and_out_move_between_the_zones() {
    let d = start().await;
    d.carry(1, outside, inside).await;
    let (moved, msgs) = d.moved(1).await;
    assert_eq!(moved["from_zone"], "yard", "{moved}");
    assert_eq!(moved["to_zone"], "receiving");
    assert_eq!(moved["direction_confidence"], "low");
    assert!(moved.get("pass_id").is_none(), "no read window: {moved}");
    assert_eq!(moved["location"], "dock-door-1");
    assert_eq!(moved["reader"], "door1-uhf");
    assert_eq!(moved["antennas"], serde_json::json!([1, 2]));
    assert_eq!(moved["rssi_max"], -60.0);
    assert!(moved["reads"].as_u64().unwrap() >= 6, "{moved}");
    // Presence events as ever, the moved right after the departure.
    assert_eq!(events(&msgs, "arrived", 1).len(), 1);
    let departed = &events(&msgs, "departed", 1)[0];
    assert_eq!(moved["seq"], departed["seq"].as_u64().unwrap() + 1);
    assert_eq!(moved["last_seen"], departed["last_seen"]);
    assert!(departed["from_zone"].is_null() && departed.get("direction_confidence").is_none());

    d.carry(2, inside, outside).await;
    let (moved, _) = d.moved(2).await;
    assert_eq!(moved["from_zone"], "receiving", "{moved}");
    assert_eq!(moved["to_zone"], "yard");
    assert_eq!(moved["direction_confidence"], "low");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_seen_by_both_sides_at_once_or_by_one_side_make_no_moved() {
    let d = start().await;
    // Tag 1 stands in the doorway, both antennas see it from the first
    // round; tag 2 passes by outside only.
    d.hold(vec![outside(1), inside(1), outside(2)], STEP).await;
    d.sim.set_tags(Vec::new());
    d.assert_no_moved(&[
        (1, "both sides saw it at once"),
        (2, "seen by one side only"),
    ])
    .await;
    // Counted for ops: the two ambiguous tags, and tag 3's moved.
    let sample = health_where(&d.sub, |h| {
        h["portals"]["dock-door-1"]["moved"] == 1 && h["portals"]["dock-door-1"]["ambiguous"] == 2
    })
    .await;
    assert_eq!(
        sample["portals"],
        serde_json::json!({"dock-door-1": {"moved": 1, "ambiguous": 2, "static": 0,
            "no_evidence": 0, "passes": 0, "empty_passes": 0}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_parked_by_the_door_and_weak_stray_reads_make_no_moved() {
    let d = start().await;
    // Tag 1 parked outside, in range of the outside antenna, for longer
    // than static_after; tag 2, far away, crosses both antennas' fields
    // below the floor (-100 dBm).
    d.hold(vec![outside(1), tag(2, 1, -100)], Duration::from_secs(5))
        .await;
    d.hold(vec![outside(1), tag(2, 2, -100)], STEP).await;
    d.sim.set_tags(Vec::new());
    d.assert_no_moved(&[(1, "Static"), (2, "NoEvidence")]).await;
}

// --- read windows ---

/// The photo-eye and the beams, active high.
const TRIGGER: u8 = 22;
const OUTER: u8 = 17;
const INNER: u8 = 27;

/// The door with read windows (quiet_after 1 s, closed after `max_window`
/// at the latest, two empty windows make a silent reader).
fn gated_door(max_window: Duration) -> Location {
    let sensor = |pin| InputPin::new(pin, ActiveLevel::High).pull(Pull::Down);
    let window = Window::new()
        .trigger(sensor(TRIGGER))
        .quiet_after(secs(1))
        .max_window(max_window)
        .silent_after(2);
    door().beams(sensor(OUTER), sensor(INNER)).window(window)
}

/// [`gated_door`], its sensors on the simulated GPIO.
async fn gated() -> (Door, SimPins) {
    let door = start_with(gated_door(secs(20))).await;
    let pins = SimPins::connect(&gpio_socket(&door.daemon)).await;
    (door, pins)
}

fn gpio_socket(daemon: &Daemon) -> std::path::PathBuf {
    daemon.dir().join("gpio.sock")
}

fn inventories(sim: &ReaderSim) -> usize {
    sim.commands()
        .iter()
        .filter(|c| c.cmd == A0_INVENTORY)
        .count()
}

/// The inventory count once the reader has sent none for a while. A
/// window may close between the daemon's antenna switch and the inventory
/// that follows it, so one round can still start after the pass summary
/// is out; a reader that keeps reading never settles, and the caller's
/// next count shows it.
async fn settled_inventories(sim: &ReaderSim) -> usize {
    const QUIET: Duration = Duration::from_millis(300);
    let deadline = Instant::now() + PATIENCE;
    let mut last = inventories(sim);
    loop {
        tokio::time::sleep(QUIET).await;
        let now = inventories(sim);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

impl Door {
    /// Drives `pin` to `high` and waits until the reader is inventorying:
    /// the window is open.
    async fn open_window(&self, pins: &mut SimPins, pin: u8) {
        let from = inventories(&self.sim);
        pins.set(pin, true).await;
        wait_commands(&self.sim, "the window to open the reader", |c| {
            c.iter().filter(|c| c.cmd == A0_INVENTORY).count() > from
        })
        .await;
    }

    /// Waits for the `n`th pass summary; returns it and every message.
    async fn pass(&self, n: usize) -> (Value, Vec<Message>) {
        pass_summary(&self.sub, "dock-door-1", n).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pallet_through_the_beams_is_one_pass_closed_on_quiet_after() {
    let (d, mut pins) = gated().await;
    // Tags waiting in the yard are not read: the reader idles between
    // windows. (The wait is what is measured: a reader reading all the
    // time inventories within a reset's 500 ms settling.)
    d.sim.set_tags(vec![outside(1), outside(2)]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(inventories(&d.sim), 0, "{:?}", d.sim.commands());

    // The pallet breaks the outer beam, then the inner one, carrying both
    // tags from the outside antenna's field to the inside one's.
    d.open_window(&mut pins, OUTER).await;
    d.hold(vec![outside(1), outside(2)], STEP).await;
    pins.set(INNER, true).await;
    d.hold(
        vec![outside(1), outside(2), inside(1), inside(2)],
        Duration::ZERO,
    )
    .await;
    pins.set(OUTER, false).await;
    d.hold(vec![inside(1), inside(2)], STEP).await;
    pins.set(INNER, false).await;
    d.sim.set_tags(Vec::new());

    let (pass, msgs) = d.pass(1).await;
    assert_eq!(pass["schema"], "custodyd.pass.v1", "{pass}");
    assert_eq!(pass["location"], "dock-door-1");
    assert_eq!(pass["direction"], "inbound");
    assert_eq!(
        (&pass["from_zone"], &pass["to_zone"]),
        (&"yard".into(), &"receiving".into())
    );
    assert_eq!(pass["closed_by"], "quiet");
    assert!(
        pass["opened_at"].as_str() < pass["closed_at"].as_str(),
        "{pass}"
    );
    let assets = pass["assets"].as_array().unwrap();
    assert_eq!(assets.len(), 2, "{pass}");
    let counts = &pass["counts"];
    assert_eq!(
        (&counts["assets"], &counts["moved"], &counts["ambiguous"]),
        (&2.into(), &2.into(), &0.into())
    );
    assert!(counts["reads"].as_u64().unwrap() >= 12, "{pass}");
    for n in [1, 2] {
        let moved = &events(&msgs, "moved", n)[0];
        assert_eq!(moved["pass_id"], pass["pass_id"], "{moved}");
        assert_eq!(
            moved["direction_confidence"], "high",
            "beams and antennas agree"
        );
        assert_eq!(moved["to_zone"], "receiving");
        assert!(assets.contains(&moved["asset"]["id"]), "{moved}");
        assert!(moved["seq"].as_u64() < pass["seq"].as_u64(), "moves first");
    }
    // Closed: the reader idles again.
    let idle = settled_inventories(&d.sim).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(inventories(&d.sim), idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_that_read_nothing_raise_silent_reader() {
    let (d, mut pins) = gated().await;
    // Two trips of the photo-eye with nothing in the field.
    for n in 1..=2 {
        d.open_window(&mut pins, TRIGGER).await;
        pins.set(TRIGGER, false).await;
        let (pass, _) = d.pass(n).await;
        assert_eq!(pass["assets"], serde_json::json!([]), "{pass}");
        assert!(pass["direction"].is_null(), "{pass}");
        assert_eq!(pass["counts"]["assets"], 0);
    }
    let alarm_topic = format!("{GW}/alarm/dock-door-1");
    let msgs = d
        .sub
        .wait_for(|m| m.iter().any(|m| m.topic == alarm_topic), PATIENCE)
        .await;
    let alarm = msgs.iter().find(|m| m.topic == alarm_topic).unwrap().json();
    assert_eq!(alarm["kind"], "silent_reader", "{alarm}");
    assert!(
        alarm["detail"].as_str().unwrap().contains("door1-uhf"),
        "{alarm}"
    );
    // A window that reads something raises nothing.
    d.open_window(&mut pins, TRIGGER).await;
    d.hold(vec![outside(3)], Duration::ZERO).await;
    pins.set(TRIGGER, false).await;
    d.sim.set_tags(Vec::new());
    let (pass, msgs) = d.pass(3).await;
    assert_eq!(pass["counts"]["assets"], 1, "{pass}");
    assert_eq!(pass["counts"]["ambiguous"], 1, "one side only: {pass}");
    let alarms = msgs.iter().filter(|m| m.topic == alarm_topic).count();
    assert_eq!(alarms, 1);
}

/// A reload rebuilds the door's read windows: the new front claims the
/// window sensors the old one released, and a pallet after it is a pass
/// like any other. The door's counts in the health topic run on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_window_works_after_a_reload() {
    let (mut d, mut pins) = gated().await;
    // An empty window before the reload.
    d.open_window(&mut pins, TRIGGER).await;
    pins.set(TRIGGER, false).await;
    d.pass(1).await;
    let longer = gated_door(secs(30));
    d.daemon
        .rewrite_config(door_config(&d.broker.url(), &d.daemon, &d.path, longer));
    d.daemon.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until(PATIENCE, "the daemon to reload", || {
        d.daemon.log().contains("reloaded")
    })
    .await;
    assert!(!d.daemon.log().contains("refused"), "{}", d.daemon.log());

    d.open_window(&mut pins, TRIGGER).await;
    d.hold(vec![outside(4)], STEP).await;
    d.hold(vec![inside(4)], STEP).await;
    pins.set(TRIGGER, false).await;
    d.sim.set_tags(Vec::new());
    let (pass, msgs) = d.pass(2).await;
    assert_eq!(pass["counts"]["moved"], 1, "{pass}");
    assert_eq!(events(&msgs, "moved", 4)[0]["to_zone"], "receiving");
    assert!(d.daemon.is_running());
    let sample = health_where(&d.sub, |h| h["portals"]["dock-door-1"]["passes"] == 2).await;
    assert_eq!(
        sample["portals"]["dock-door-1"],
        serde_json::json!({"moved": 1, "ambiguous": 0, "static": 0, "no_evidence": 0,
            "passes": 2, "empty_passes": 1})
    );
}

/// A kill -9 while a window is open loses neither its pass nor its
/// member: the next start sums the pass up once, `closed_by: "restart"`,
/// and the tag that was in the field departs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_open_at_a_kill_9_is_summed_up_once_at_the_restart() {
    let (mut d, mut pins) = gated().await;
    d.open_window(&mut pins, TRIGGER).await;
    d.hold(vec![outside(1)], Duration::ZERO).await;
    d.sub
        .wait_for(|m| !events(m, "arrived", 1).is_empty(), PATIENCE)
        .await;
    d.daemon.kill();
    d.sim.set_tags(Vec::new());
    d.daemon.restart();

    let (pass, _) = d.pass(1).await;
    assert_eq!(pass["closed_by"], "restart", "{pass}");
    assert_eq!(pass["counts"]["assets"], 1, "{pass}");
    let arrived = &events(&d.sub.messages(), "arrived", 1)[0];
    assert_eq!(pass["assets"], serde_json::json!([arrived["asset"]["id"]]));
    assert!(pass["opened_at"].as_str() <= arrived["observed_at"].as_str());
    d.sub
        .wait_for(|m| !events(m, "departed", 1).is_empty(), PATIENCE)
        .await;
    d.sub
        .assert_quiet_for(Duration::from_secs(2), |m| {
            m.topic.contains("/pass/") || m.topic.contains("/custody/")
        })
        .await;
    // The kill may come before the spool heard of the broker's PUBACKs:
    // those events are delivered again, the same (at least once).
    let msgs = d.sub.messages();
    let passes: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic.contains("/pass/"))
        .map(Message::json)
        .collect();
    assert_eq!(once_each(passes).len(), 1, "summed up once");
    let once = |transition| once_each(events(&msgs, transition, 1)).len();
    assert_eq!((once("arrived"), once("departed")), (1, 1));
}
