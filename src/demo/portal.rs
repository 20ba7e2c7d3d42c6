//! Demo scene: a pallet passing inbound through a dock door with read
//! windows. The photo-eye (a simulated GPIO input) trips, the door's UHF
//! reader (a simulated R2000 with an antenna on each side of the door)
//! starts inventorying, sees three tagged laptops first outside, then
//! inside; the photo-eye clears, the window closes after `quiet_after`, and
//! the three `moved` events (yard to receiving, one `pass_id`) and the
//! pass summary follow.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::time::sleep;

use super::SimPort;
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
/// How long a simulated inventory round takes.
const ROUND: Duration = Duration::from_millis(20);

/// Antennas that see the pallet now.
type Field = Arc<Mutex<Vec<u8>>>;

pub(super) struct PortalScene {
    reader: SimPort,
    gpio: PathBuf,
}

impl PortalScene {
    /// The scene's pins are on the simulated GPIO at `gpio`.
    pub(super) fn open(gpio: &Path) -> anyhow::Result<Self> {
        Ok(PortalScene {
            reader: SimPort::open()
                .context("opening a pseudo-terminal for the dock door's UHF reader")?,
            gpio: gpio.to_path_buf(),
        })
    }

    /// The door's part of the demo configuration.
    pub(super) fn config(&self) -> String {
        format!(
            r#"
[[locations]]
name = "{DOOR}"
kind = "dock_door"
outside_zone = "yard"
inside_zone = "receiving"
departure_timeout = "1s"
window = {{ trigger = {{ pin = {PHOTO_EYE}, active = "high", pull = "down" }}, quiet_after = "1s" }}

[[readers]]
name = "door2-uhf"
location = "{DOOR}"
path = "{}"
protocol = "uhf-a0"
antennas = [{OUTSIDE}, {INSIDE}]
sides = {{ {OUTSIDE} = "outside", {INSIDE} = "inside" }}
"#,
            self.reader.path().display()
        )
    }

    /// Answers the daemon's commands as an R2000 would, and carries the
    /// pallet through the door every 12 s until the demo ends.
    pub(super) async fn play(self, mut ready: watch::Receiver<bool>) -> anyhow::Result<()> {
        let field = Field::default();
        let commands = self.reader.commands()?;
        let answering = field.clone();
        let reader = self.reader;
        std::thread::spawn(move || serve(commands, reader, &answering));
        let _ = ready.wait_for(|r| *r).await;
        let mut gpio = SimClient::connect(&self.gpio).await?;
        let set =
            |antennas: &[u8]| *field.lock().unwrap_or_else(|p| p.into_inner()) = antennas.to_vec();
        loop {
            println!("demo: a pallet of 3 laptops comes to {DOOR} from the yard: the photo-eye trips, a read window opens and the reader starts inventorying");
            gpio.set(PHOTO_EYE, true).await?;
            set(&[OUTSIDE]);
            sleep(Duration::from_millis(1000)).await;
            set(&[OUTSIDE, INSIDE]);
            sleep(Duration::from_millis(300)).await;
            set(&[INSIDE]);
            sleep(Duration::from_millis(1000)).await;
            gpio.set(PHOTO_EYE, false).await?;
            set(&[]);
            println!("demo: the pallet is in receiving, the photo-eye clear (expect 3 moved yard -> receiving with one pass_id, then the pass summary on pass/{DOOR})");
            sleep(Duration::from_secs(12)).await;
        }
    }
}

/// The R2000's side: Set Work Antenna is acknowledged; each inventory
/// round reports the pallet's tags if its antenna sees them, then ends.
/// Runs on its own thread, reading the pseudo-terminal blocking, until the
/// demo exits.
fn serve(mut commands: File, mut reader: SimPort, field: &Mutex<Vec<u8>>) {
    let (mut pending, mut chunk) = (Vec::new(), [0u8; 256]);
    let mut antenna = 0u8;
    while let Ok(n) = commands.read(&mut chunk) {
        pending.extend_from_slice(&chunk[..n]);
        while let Some((cmd, data)) = next_command(&mut pending) {
            let mut answer = Vec::new();
            match cmd {
                0x70 => antenna = 0,
                0x74 => {
                    antenna = data.first().copied().unwrap_or(0);
                    answer = a0_frame(cmd, &[0x10]);
                }
                0x89 | 0x8B => {
                    let sees = field
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains(&(antenna + 1));
                    let tags: &[&str] = if sees { &PALLET } else { &[] };
                    for epc in tags {
                        answer.extend(tag_frame(cmd, antenna, epc));
                    }
                    let n = tags.len() as u8;
                    answer.extend(a0_frame(cmd, &[antenna, 0, n, 0, 0, 0, n]));
                }
                _ => {}
            }
            if !answer.is_empty() {
                std::thread::sleep(ROUND);
                if reader.write(&answer).is_err() {
                    return;
                }
            }
        }
    }
}

/// The first whole command in `pending` (header 0xA0, length, address,
/// command, data, checksum), taken out; bytes before a header are skipped.
fn next_command(pending: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    let start = pending.iter().position(|&b| b == 0xA0)?;
    pending.drain(..start);
    let len = usize::from(*pending.get(1)?) + 2;
    if pending.len() < len || len < 5 {
        return None;
    }
    let frame: Vec<u8> = pending.drain(..len).collect();
    Some((frame[3], frame[4..len - 1].to_vec()))
}

/// A tag record seen on 0-based `antenna` (channel 7), RSSI -60 dBm.
fn tag_frame(cmd: u8, antenna: u8, epc: &str) -> Vec<u8> {
    let epc: Vec<u8> = (0..epc.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&epc[i..i + 2], 16).ok())
        .collect();
    let pc = ((epc.len() / 2) as u16) << 11;
    let mut data = vec![7 << 2 | (antenna & 0x03)];
    data.extend_from_slice(&pc.to_be_bytes());
    data.extend_from_slice(&epc);
    data.push(RSSI);
    a0_frame(cmd, &data)
}

/// A reader frame from address 01, with its checksum.
fn a0_frame(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![0xA0, data.len() as u8 + 3, 0x01, cmd];
    frame.extend_from_slice(data);
    let sum = frame.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    frame.push(sum.wrapping_neg());
    frame
}
