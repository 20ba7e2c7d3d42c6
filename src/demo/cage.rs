//! Demo scene: a secure cage's gate. Central's release policy is published
//! (one laptop released, one not), both are scanned at the gate's release
//! scanner, and the gate's relays, simulated in-process, are printed as
//! they switch: red and buzzer for the one refused, lock and green for the
//! one let out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::time::sleep;

use super::central::Central;
use super::{SimPort, GPIO_SOCKET, SITE};
use crate::config::builder::{ConfigBuilder, Gate, Location, Reader};
use crate::config::{Protocol, ReadMode};
use crate::gpio::SimClient;

const CAGE: &str = "cage-1";
/// The gate's relays, active low as on a real relay board.
pub const LOCK: u8 = 5;
pub const GREEN: u8 = 6;
pub const RED: u8 = 13;
pub const BUZZER: u8 = 19;
const PINS: [(u8, &str); 4] = [
    (LOCK, "lock"),
    (GREEN, "green"),
    (RED, "red"),
    (BUZZER, "buzzer"),
];
const RELEASED: &str = "LAPTOP-0001";
const HELD: &str = "LAPTOP-0002";

/// The gate's lock, stack light and buzzer on the pins above. The demo's
/// scene and the tests run this gate (with `[gpio]` on the simulator).
pub fn gate() -> Gate {
    Gate::new(LOCK).signals(GREEN, RED, BUZZER)
}

/// `cage-1`, a cage gate from the floor into the secure cage, with `gate`.
pub fn cage(gate: Gate) -> Location {
    Location::cage_gate(CAGE, "floor", "secure-cage", gate)
}

/// `cage1-scan`, the gate's release scanner (ascii-line) on `path`.
pub fn release_scanner(path: &Path) -> Reader {
    Reader::serial("cage1-scan", CAGE, path, Protocol::AsciiLine).mode(ReadMode::Release)
}

pub(super) struct CageScene {
    scanner: SimPort,
    socket: PathBuf,
}

impl CageScene {
    pub(super) fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Ok(CageScene {
            scanner: SimPort::open().context("opening a pseudo-terminal for the cage scanner")?,
            socket: data_dir.join(GPIO_SOCKET),
        })
    }

    /// The simulated GPIO's socket, which other scenes' pins share.
    pub(super) fn gpio_socket(&self) -> &Path {
        &self.socket
    }

    /// Adds the gate to the demo configuration.
    pub(super) fn configure(&self, config: ConfigBuilder) -> ConfigBuilder {
        config
            .location(cage(gate()))
            .reader(release_scanner(self.scanner.path()))
    }

    /// Publishes the policy, then scans both laptops in turn, until the
    /// demo ends; meanwhile prints every switch of the gate's relays.
    pub(super) async fn play(
        mut self,
        central: Central,
        mut ready: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let _ = ready.wait_for(|r| *r).await;
        tokio::spawn(print_relays(self.socket.clone()));
        publish_policy(&central).await?;
        loop {
            println!("demo: {HELD} scanned for release at {CAGE}: central says not released (expect red and buzzer, a release_denied alarm; the lock stays shut)");
            self.scanner.write(format!("{HELD}\r").as_bytes())?;
            sleep(Duration::from_secs(4)).await;
            println!("demo: {RELEASED} scanned for release at {CAGE}: released (expect the lock open and green for 5 s, and a custody event with a release object)");
            self.scanner.write(format!("{RELEASED}\r").as_bytes())?;
            sleep(Duration::from_secs(8)).await;
        }
    }
}

/// The retained policy central would publish.
async fn publish_policy(central: &Central) -> anyhow::Result<()> {
    let policy = [
        (
            RELEASED,
            r#"{"released":true,"reason":"data destruction certified"}"#,
        ),
        (
            HELD,
            r#"{"released":false,"reason":"awaiting data destruction"}"#,
        ),
    ];
    let messages: Vec<(String, String)> = policy
        .iter()
        .map(|(asset, payload)| {
            let topic = format!("itad/{SITE}/release/{}", crate::topic::asset_key(asset));
            (topic, payload.to_string())
        })
        .collect();
    central.publish_retained(&messages).await
}

/// Prints the relays as the simulated GPIO shows them.
async fn print_relays(socket: PathBuf) {
    let Ok(mut gpio) = SimClient::connect(&socket).await else {
        println!(
            "demo: cannot watch the simulated GPIO at {}",
            socket.display()
        );
        return;
    };
    let (mut events, mut shown) = (0, 0);
    loop {
        let seen = gpio.seen();
        for &(pin, high) in &seen.log[shown..] {
            let name = PINS.iter().find(|p| p.0 == pin).map_or("?", |p| p.1);
            // Active low: a relay is energised while its pin is low.
            let state = match (name, high) {
                ("lock", false) => "OPEN",
                ("lock", true) => "locked",
                (_, false) => "on",
                (_, true) => "off",
            };
            println!(
                "gpio: {CAGE} {name} {state} (GPIO{pin} = {})",
                u8::from(high)
            );
        }
        shown = seen.log.len();
        if seen.closed {
            return;
        }
        events = gpio.changed(events).await;
    }
}
