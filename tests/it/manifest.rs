//! Pickup manifests at a dock door, through the real daemon and Mosquitto:
//! the central system publishes the manifest retained, pallets pass the
//! door in photo-eye read windows (a simulated R2000 module, simulated
//! GPIO), and each pass summary reconciles the pickup so far; the pickup
//! survives a restart between its passes.

use std::sync::Arc;

use crate::common::*;
use serde_json::{json, Value};

const A0_INVENTORY: u8 = 0x89;
/// The photo-eye that opens a read window, active high.
const EYE: u8 = 22;
const MANIFEST: &str = "itad/test-site/manifest/dock-door-1";

/// A 96-bit EPC numbered `n`, not a GS1 encoding.
fn epc(n: u8) -> Vec<u8> {
    vec![0xE2, 0x80, 0x11, 0x60, 0x60, 0, 0, 0, 0, 0, 0x20, n]
}

/// Its canonical asset id.
fn id(n: u8) -> String {
    let hex: String = epc(n).iter().map(|b| format!("{b:02X}")).collect();
    format!("urn:epc:raw:96.x{hex}")
}

fn ids(ns: impl IntoIterator<Item = u8>) -> Vec<String> {
    ns.into_iter().map(id).collect()
}

struct Door {
    broker: Mosquitto,
    sub: Subscriber,
    sim: ReaderSim,
    daemon: Daemon,
}

impl Door {
    /// Dock door 1 with a photo-eye read window (closing 1 s after the
    /// last new tag) and an R2000 reader, manifests ending 10 min after a
    /// pickup's last pass.
    async fn start() -> Door {
        let broker = Mosquitto::start().await;
        let sub = Subscriber::connect(&broker.url(), "itad/#").await;
        let pty = Arc::new(Pty::open());
        let sim = ReaderSim::start_recording(Kind::A0, pty.clone());
        let mut daemon = Daemon::new();
        let eye = InputPin::new(EYE, ActiveLevel::High).pull(Pull::Down);
        let door = dock_door(secs(1))
            .window(Window::new().trigger(eye).quiet_after(secs(1)))
            .manifest_timeout(secs(600));
        daemon.spawn(
            gateway_config(&broker.url(), &daemon.data_dir())
                .sim_gpio(&daemon.dir().join("gpio.sock"))
                .location(door)
                .reader(door_uhf(pty.path(), Protocol::UhfA0)),
        );
        let door = Door {
            broker,
            sub,
            sim,
            daemon,
        };
        wait_reader(&door.sub, "door1-uhf", "up").await;
        door
    }

    /// A pallet carrying `tags` breaks the photo-eye: the window opens,
    /// the reader reads them for at least three inventory rounds, the
    /// pallet is through. Returns the `n`th pass summary.
    async fn pass(&self, tags: &[u8], n: usize) -> Value {
        let mut eye = SimPins::connect(&self.daemon.dir().join("gpio.sock")).await;
        let sim_tags = tags
            .iter()
            .map(|&t| SimTag {
                epc: epc(t),
                antenna: 1,
                rssi: 70,
            })
            .collect();
        let rounds = |c: &[Command]| c.iter().filter(|c| c.cmd == A0_INVENTORY).count();
        let from = rounds(&self.sim.commands());
        self.sim.set_tags(sim_tags);
        eye.set(EYE, true).await;
        wait_commands(&self.sim, "three inventory rounds in the window", |c| {
            rounds(c) >= from + 3
        })
        .await;
        eye.set(EYE, false).await;
        self.sim.set_tags(Vec::new());
        pass_summary(&self.sub, "dock-door-1", n).await.0
    }

    /// The central system publishes the door's manifest, retained, and the
    /// daemon has taken it.
    async fn manifest(&self, manifest: Value, taken: &str) {
        publish(&self.broker.url(), MANIFEST, manifest.to_string(), true).await;
        wait_until(PATIENCE, taken, || self.daemon.log().contains(taken)).await;
    }

    fn mismatches(&self) -> Vec<Value> {
        self.sub
            .messages()
            .iter()
            .filter(|m| m.topic == format!("{GW}/alarm/dock-door-1"))
            .map(|m| m.json())
            .filter(|a| a["kind"] == "manifest_mismatch")
            .collect()
    }
}

fn list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pickup_of_20_over_two_passes_and_a_restart_gives_exactly_its_lists() {
    let mut door = Door::start().await;
    let expected = ids(1..=20);
    let manifest = json!({"pickup_id": "PU-0042", "expected": expected});
    door.manifest(manifest, "pickup manifest").await;

    let first = door.pass(&(1..=10).collect::<Vec<_>>(), 1).await;
    let r = &first["manifest"];
    assert_eq!(r["pickup_id"], "PU-0042", "{first}");
    assert_eq!(
        (&r["passes"], list(&r["received"])),
        (&json!(1), ids(1..=10))
    );
    assert_eq!(list(&r["missing"]), ids(11..=20));
    assert!(list(&r["unexpected"]).is_empty());
    assert!(door.mismatches().is_empty(), "half a pickup is no mismatch");

    // The gateway restarts between two pallets of the pickup.
    door.daemon.terminate().await;
    door.daemon.restart();
    wait_reader(&door.sub, "door1-uhf", "up").await;

    let mut second: Vec<u8> = (11..=18).collect();
    second.push(99);
    let pass = door.pass(&second, 2).await;
    let r = &pass["manifest"];
    assert_eq!(r["passes"], 2, "{pass}");
    assert_eq!(list(&r["expected"]), expected);
    assert_eq!(list(&r["received"]), ids(1..=18));
    assert_eq!(list(&r["missing"]), ids(19..=20));
    assert_eq!(list(&r["unexpected"]), [id(99)]);
    door.sub
        .wait_for(|_| !door.mismatches().is_empty(), PATIENCE)
        .await;
    let alarm = &door.mismatches()[0];
    assert!(
        alarm["detail"].as_str().unwrap().contains(&id(99)),
        "{alarm}"
    );
    assert!(
        alarm["seq"].as_u64() > pass["seq"].as_u64(),
        "after its pass"
    );

    // The central system closes the pickup: two never came.
    let closed = json!({"pickup_id": "PU-0042", "expected": expected, "closed": true});
    publish(&door.broker.url(), MANIFEST, closed.to_string(), true).await;
    door.sub
        .wait_for(|_| door.mismatches().len() >= 2, PATIENCE)
        .await;
    let detail = door.mismatches()[1]["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("was closed") && detail.contains("18 of 20"),
        "{detail}"
    );
    assert!(
        detail.contains(&id(19)) && detail.contains(&id(20)),
        "{detail}"
    );

    // A later pass at the door is not reconciled against a closed pickup.
    let later = door.pass(&[19], 3).await;
    assert!(later["manifest"].is_null(), "{later}");
}
