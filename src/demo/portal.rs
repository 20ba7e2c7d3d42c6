//! Demo scene: a pallet passing inbound through a dock door with read
//! windows. The photo-eye (a simulated GPIO input) trips, the door's UHF
//! reader (a simulated R2000 with an antenna on each side of the door)
//! starts inventorying, sees three tagged laptops first outside, then
//! inside (the reader is [`uhf::ReaderSim`], the one the UHF tests use); the photo-eye clears, the window closes after `quiet_after`, and
//! the three `moved` events (yard to receiving, one `pass_id`) and the
//! pass summary follow.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::time::sleep;

use super::uhf::{Kind, ReaderSim, SimTag};
use super::SimPort;
use crate::config::builder::{ConfigBuilder, InputPin, Location, Reader, Window};
use crate::config::{ActiveLevel, Protocol, Pull, Side};
use crate::gpio::SimClient;

pub(super) const DOOR: &str = "dock-door-2";
/// The photo-eye, active high.
const PHOTO_EYE: u8 = 22;
/// SGTIN-96 EPCs of three laptops (company prefix 0614141, serials 6789
/// to 6791).
pub(super) const PALLET: [&str; 3] = [
    "3074257BF7194E4000001A85",
    "3074257BF7194E4000001A86",
    "3074257BF7194E4000001A87",
];
const OUTSIDE: u8 = 1;
const INSIDE: u8 = 2;
/// What the reader reports for the laptops: -60 dBm.
const RSSI: u8 = 69;

pub(super) struct PortalScene {
    reader: ReaderSim,
    path: PathBuf,
    gpio: PathBuf,
}

impl PortalScene {
    /// The scene's pins are on the simulated GPIO at `gpio`.
    pub(super) fn open(gpio: &Path) -> anyhow::Result<Self> {
        let port = SimPort::open()
            .and_then(SimPort::into_async)
            .context("opening a pseudo-terminal for the dock door's UHF reader")?;
        let path = port.path().to_path_buf();
        Ok(PortalScene {
            reader: ReaderSim::start(Kind::A0, Arc::new(port)),
            path,
            gpio: gpio.to_path_buf(),
        })
    }

    /// Adds the door and its reader to the demo configuration.
    pub(super) fn configure(&self, config: ConfigBuilder) -> ConfigBuilder {
        let photo_eye = InputPin::new(PHOTO_EYE, ActiveLevel::High).pull(Pull::Down);
        let window = Window::new()
            .trigger(photo_eye)
            .quiet_after(Duration::from_secs(1));
        let antennas = [(OUTSIDE, Some(Side::Outside)), (INSIDE, Some(Side::Inside))];
        config
            .location(
                Location::dock_door(DOOR, "yard", "receiving")
                    .departure_timeout(Duration::from_secs(1))
                    .window(window),
            )
            .reader(
                Reader::serial("door2-uhf", DOOR, &self.path, Protocol::UhfA0).antennas(&antennas),
            )
    }

    /// Carries the pallet through the door every 12 s until the demo ends.
    pub(super) async fn play(self, mut ready: watch::Receiver<bool>) -> anyhow::Result<()> {
        let _ = ready.wait_for(|r| *r).await;
        let mut gpio = SimClient::connect(&self.gpio).await?;
        let seen_by = |antennas: &[u8]| {
            let tags = antennas.iter().flat_map(|&antenna| {
                PALLET.iter().map(move |epc| SimTag {
                    epc: hex(epc),
                    antenna,
                    rssi: RSSI,
                })
            });
            self.reader.set_tags(tags.collect());
        };
        loop {
            println!("demo: a pallet of 3 laptops comes to {DOOR} from the yard: the photo-eye trips, a read window opens and the reader starts inventorying");
            gpio.set(PHOTO_EYE, true).await?;
            seen_by(&[OUTSIDE]);
            sleep(Duration::from_millis(1000)).await;
            seen_by(&[OUTSIDE, INSIDE]);
            sleep(Duration::from_millis(300)).await;
            seen_by(&[INSIDE]);
            sleep(Duration::from_millis(1000)).await;
            gpio.set(PHOTO_EYE, false).await?;
            seen_by(&[]);
            println!("demo: the pallet is in receiving, the photo-eye clear (expect 3 moved yard -> receiving with one pass_id, then the pass summary on pass/{DOOR})");
            sleep(Duration::from_secs(12)).await;
        }
    }
}

/// The bytes of an EPC written in hex (the constants above: valid).
fn hex(epc: &str) -> Vec<u8> {
    (0..epc.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&epc[i..i + 2], 16).ok())
        .collect()
}
