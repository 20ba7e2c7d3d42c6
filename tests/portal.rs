//! Direction at a dock door: a simulated R2000 reader with an antenna on
//! each side of the door reports tags per antenna with RSSI, in scripted
//! sequences, to the real daemon; the custody events are checked at a real
//! Mosquitto.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
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

/// Dock door 1 between the yard and receiving: an R2000 reader on `path`
/// with antenna 1 outside and antenna 2 inside.
fn door(path: &std::path::Path) -> String {
    format!(
        r#"
[[locations]]
name = "dock-door-1"
kind = "dock_door"
outside_zone = "yard"
inside_zone = "receiving"
departure_timeout = "1s"
order_margin = "500ms"
static_after = "4s"
rssi_floor = -90

[[readers]]
name = "door1-uhf"
location = "dock-door-1"
path = "{}"
protocol = "uhf-a0"
antennas = [1, 2]
sides = {{ 1 = "outside", 2 = "inside" }}
"#,
        path.display()
    )
}

struct Door {
    _broker: Mosquitto,
    sub: Subscriber,
    sim: ReaderSim,
    daemon: Daemon,
}

async fn start() -> Door {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let pty = Arc::new(Pty::open());
    let sim = ReaderSim::start(Kind::A0, pty.clone());
    let mut daemon = Daemon::new();
    daemon.spawn(&(gateway_config(&broker.url(), &daemon.data_dir()) + &door(pty.path())));
    wait_reader(&sub, "door1-uhf", "up").await;
    Door {
        _broker: broker,
        sub,
        sim,
        daemon,
    }
}

impl Door {
    /// Puts `tags` in the field for `at_least` and at least three inventory
    /// rounds per antenna (so each tag is read several times even when the
    /// machine is slow).
    async fn hold(&self, tags: Vec<SimTag>, at_least: Duration) {
        let from = self.sim.commands().len();
        let start = Instant::now();
        self.sim.set_tags(tags);
        self.sim
            .wait_commands("three rounds on each antenna", |c| {
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
    // Then a pass, which comes after both departures.
    d.carry(3, outside, inside).await;
    let (_, msgs) = d.moved(3).await;
    for n in [1, 2] {
        assert_eq!(events(&msgs, "departed", n).len(), 1, "tag {n}");
        assert!(events(&msgs, "moved", n).is_empty(), "tag {n}");
    }
    let log = d.daemon.log();
    for (n, why) in [
        (1, "both sides saw it at once"),
        (2, "seen by one side only"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("no moved") && l.contains(&raw(n)) && l.contains(why)),
            "tag {n}: {why}\n{log}"
        );
    }
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
    d.carry(3, inside, outside).await;
    let (_, msgs) = d.moved(3).await;
    for n in [1, 2] {
        assert_eq!(events(&msgs, "departed", n).len(), 1, "tag {n}");
        assert!(events(&msgs, "moved", n).is_empty(), "tag {n}");
    }
    let log = d.daemon.log();
    for (n, outcome) in [(1, "Static"), (2, "NoEvidence")] {
        assert!(
            log.lines()
                .any(|l| l.contains("no moved") && l.contains(&raw(n)) && l.contains(outcome)),
            "tag {n}: {outcome}\n{log}"
        );
    }
}
