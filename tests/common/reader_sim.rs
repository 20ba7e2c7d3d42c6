//! A simulated UHF reader on a [`Pty`]: it reads the daemon's commands from
//! the master side and answers like an R2000 module (`uhf-a0`) or a Chafon
//! UHFReader288 (`chafon`).
//!
//! The test changes what is in the field ([`ReaderSim::set_tags`]), which
//! antennas are unplugged and whether the reader answers at all, and reads
//! back every command it was sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use custodyd::decode::crc16_mcrf4xx;
use tokio::task::JoinHandle;

use super::{wait_until, Pty, PATIENCE};

/// How long a simulated inventory round takes: real rounds take tens of
/// milliseconds, and answering instantly would spin the daemon's loop.
const ROUND_TIME: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    A0,
    Chafon288,
}

/// A tag in the field: its EPC, the 1-based antenna that sees it and the
/// raw RSSI byte the reader reports.
#[derive(Debug, Clone)]
pub struct SimTag {
    pub epc: Vec<u8>,
    pub antenna: u8,
    pub rssi: u8,
}

/// One command the daemon sent: its command byte and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub cmd: u8,
    pub data: Vec<u8>,
}

#[derive(Default)]
struct State {
    tags: Vec<SimTag>,
    missing: Vec<u8>,
    silent: bool,
    commands: Vec<Command>,
}

pub struct ReaderSim {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl ReaderSim {
    pub fn start(kind: Kind, pty: Arc<Pty>) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(serve(kind, pty, state.clone()));
        ReaderSim { state, task }
    }

    pub fn set_tags(&self, tags: Vec<SimTag>) {
        self.state.lock().unwrap().tags = tags;
    }

    /// 1-based antennas that answer inventories with "antenna missing".
    pub fn set_missing(&self, antennas: &[u8]) {
        self.state.lock().unwrap().missing = antennas.to_vec();
    }

    /// A silent reader still records commands but answers none.
    pub fn set_silent(&self, silent: bool) {
        self.state.lock().unwrap().silent = silent;
    }

    /// Every command received so far, in order.
    pub fn commands(&self) -> Vec<Command> {
        self.state.lock().unwrap().commands.clone()
    }

    /// Waits until the commands received so far satisfy `cond`.
    pub async fn wait_commands(&self, what: &str, cond: impl Fn(&[Command]) -> bool) {
        wait_until(PATIENCE, what, || {
            cond(&self.state.lock().unwrap().commands)
        })
        .await;
    }
}

impl Drop for ReaderSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(kind: Kind, pty: Arc<Pty>, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    // The A0 work antenna, 0-based; a reset selects antenna 1.
    let mut work_antenna = 0u8;
    loop {
        buf.extend(pty.read_available(Duration::from_millis(100)).await);
        while let Some(command) = split(kind, &mut buf) {
            let answer = {
                let mut state = state.lock().unwrap();
                state.commands.push(command.clone());
                if state.silent {
                    continue;
                }
                match kind {
                    Kind::A0 => answer_a0(&state, &command, &mut work_antenna),
                    Kind::Chafon288 => answer_chafon(&state, &command),
                }
            };
            if !answer.is_empty() {
                tokio::time::sleep(ROUND_TIME).await;
                pty.write(&answer).await;
            }
        }
    }
}

/// Takes the first whole host command out of `buf`, skipping bytes that do
/// not start one.
fn split(kind: Kind, buf: &mut Vec<u8>) -> Option<Command> {
    loop {
        let (len, valid) = match kind {
            Kind::A0 => {
                let start = buf.iter().position(|&b| b == 0xA0).unwrap_or(buf.len());
                buf.drain(..start);
                let len = usize::from(*buf.get(1)?) + 2;
                let frame = buf.get(..len)?;
                (len, frame.iter().fold(0u8, |s, &b| s.wrapping_add(b)) == 0)
            }
            Kind::Chafon288 => {
                let len = usize::from(*buf.first()?) + 1;
                let frame = buf.get(..len)?;
                let crc = crc16_mcrf4xx(&frame[..len - 2]).to_le_bytes();
                (len, len >= 5 && frame[len - 2..] == crc)
            }
        };
        if !valid {
            buf.remove(0);
            continue;
        }
        let frame: Vec<u8> = buf.drain(..len).collect();
        let body = match kind {
            Kind::A0 => &frame[3..len - 1],
            Kind::Chafon288 => &frame[2..len - 2],
        };
        return Some(Command {
            cmd: body[0],
            data: body[1..].to_vec(),
        });
    }
}

/// An A0 frame from address 01.
pub fn a0_frame(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![0xA0, data.len() as u8 + 3, 0x01, cmd];
    frame.extend_from_slice(data);
    let sum = frame.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    frame.push(sum.wrapping_neg());
    frame
}

fn answer_a0(state: &State, command: &Command, work_antenna: &mut u8) -> Vec<u8> {
    match command.cmd {
        0x70 => {
            *work_antenna = 0;
            Vec::new()
        }
        0x74 => {
            *work_antenna = command.data[0];
            a0_frame(0x74, &[0x10])
        }
        0x89 | 0x8B => {
            let antenna = *work_antenna + 1;
            if state.missing.contains(&antenna) {
                return a0_frame(command.cmd, &[0x22]);
            }
            let mut out = Vec::new();
            let seen: Vec<&SimTag> = state.tags.iter().filter(|t| t.antenna == antenna).collect();
            for tag in &seen {
                let pc = ((tag.epc.len() / 2) as u16) << 11;
                // Channel 7 (902.0 MHz), the antenna's two low bits.
                let mut data = vec![7 << 2 | (*work_antenna & 0x03)];
                data.extend_from_slice(&pc.to_be_bytes());
                data.extend_from_slice(&tag.epc);
                data.push(tag.rssi | if *work_antenna >= 4 { 0x80 } else { 0 });
                out.extend(a0_frame(command.cmd, &data));
            }
            let n = seen.len() as u8;
            out.extend(a0_frame(command.cmd, &[*work_antenna, 0, n, 0, 0, 0, n]));
            out
        }
        _ => Vec::new(),
    }
}

/// A Chafon answer from address 00.
pub fn chafon_frame(cmd: u8, status: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![data.len() as u8 + 5, 0x00, cmd, status];
    frame.extend_from_slice(data);
    let crc = crc16_mcrf4xx(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// The UHFReader288 Get Reader Info answer of reference 3 (type 0x0C).
const READER_INFO_288: [u8; 18] = [
    0x11, 0x00, 0x21, 0x00, 0x00, 0x16, 0x0C, 0x03, 0x4E, 0x00, 0x1E, 0x0A, 0x01, 0x00, 0x00, 0x00,
    0xE6, 0x51,
];

fn answer_chafon(state: &State, command: &Command) -> Vec<u8> {
    match command.cmd {
        0x21 => READER_INFO_288.to_vec(),
        0x01 => {
            // QValue Session MaskMem MaskAdr(2) MaskLen Target Ant ScanTime.
            let antenna = command.data[7] - 0x80 + 1;
            let mask = 1u8 << (antenna - 1);
            if state.missing.contains(&antenna) {
                return chafon_frame(0x01, 0xF8, &[mask]);
            }
            // One frame per tag with status 0x03 (more follow), then the
            // closing frame with status 0x01 and no tags.
            let mut out = Vec::new();
            for tag in state.tags.iter().filter(|t| t.antenna == antenna) {
                let mut data = vec![mask, 1, tag.epc.len() as u8];
                data.extend_from_slice(&tag.epc);
                data.push(tag.rssi);
                out.extend(chafon_frame(0x01, 0x03, &data));
            }
            out.extend(chafon_frame(0x01, 0x01, &[mask, 0]));
            out
        }
        _ => Vec::new(),
    }
}
