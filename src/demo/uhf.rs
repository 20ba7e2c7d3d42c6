//! A simulated UHF reader on a pseudo-terminal: it reads the daemon's
//! commands and answers like an R2000 module (`uhf-a0`) or a Chafon
//! UHFReader288 (`chafon`), with real frames and checksums.
//!
//! `custodyd demo`'s dock door reads with it; the integration tests
//! change what is in the field ([`ReaderSim::set_tags`]), which antennas are
//! unplugged and whether the reader answers at all, and read back every
//! command it was sent.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::sleep;

use super::port::AsyncSimPort;
use crate::decode::crc16_mcrf4xx;

/// How long a simulated inventory round takes: real rounds take tens of
/// milliseconds, and answering instantly would spin the daemon's loop.
const ROUND_TIME: Duration = Duration::from_millis(20);

/// How long the simulator waits for a command before looking again.
const LISTEN: Duration = Duration::from_millis(100);

/// The reader's end of a serial line, as the simulator uses it. The demo's
/// [`AsyncSimPort`] is one; the tests' pty, which can be unplugged and
/// plugged back under the simulator, is another.
pub trait Line: Send + Sync + 'static {
    /// What the host sent: waits up to `timeout` for the first byte, then
    /// returns all that is there; empty if nothing came.
    fn read_available(&self, timeout: Duration)
        -> impl Future<Output = io::Result<Vec<u8>>> + Send;
    /// Sends all of `bytes` to the host.
    fn write(&self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

impl Line for AsyncSimPort {
    fn read_available(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = io::Result<Vec<u8>>> + Send {
        AsyncSimPort::read_available(self, timeout)
    }

    fn write(&self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
        AsyncSimPort::write(self, bytes)
    }
}

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
    /// Every command received, when recording (tests); `None` in the demo,
    /// which may run for days.
    commands: Option<Vec<Command>>,
}

pub struct ReaderSim {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl ReaderSim {
    /// Starts answering on `line`, as a task of the current runtime, until
    /// dropped or the line fails.
    pub fn start(kind: Kind, line: Arc<impl Line>) -> Self {
        Self::spawn(kind, line, None)
    }

    /// Like [`ReaderSim::start`], and keeps every command for
    /// [`ReaderSim::commands`].
    pub fn start_recording(kind: Kind, line: Arc<impl Line>) -> Self {
        Self::spawn(kind, line, Some(Vec::new()))
    }

    fn spawn(kind: Kind, line: Arc<impl Line>, commands: Option<Vec<Command>>) -> Self {
        let state = Arc::new(Mutex::new(State {
            commands,
            ..State::default()
        }));
        let task = tokio::spawn(serve(kind, line, state.clone()));
        ReaderSim { state, task }
    }

    pub fn set_tags(&self, tags: Vec<SimTag>) {
        self.state().tags = tags;
    }

    /// 1-based antennas that answer inventories with "antenna missing".
    pub fn set_missing(&self, antennas: &[u8]) {
        self.state().missing = antennas.to_vec();
    }

    /// A silent reader still records commands but answers none.
    pub fn set_silent(&self, silent: bool) {
        self.state().silent = silent;
    }

    /// Every command received so far, in order; empty unless recording.
    pub fn commands(&self) -> Vec<Command> {
        self.state().commands.clone().unwrap_or_default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: use it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for ReaderSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(kind: Kind, line: Arc<impl Line>, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    // The A0 work antenna, 0-based; a reset selects antenna 1.
    let mut work_antenna = 0u8;
    loop {
        match line.read_available(LISTEN).await {
            Ok(bytes) => buf.extend(bytes),
            Err(_) => return,
        }
        while let Some(command) = split(kind, &mut buf) {
            let answer = {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(commands) = &mut state.commands {
                    commands.push(command.clone());
                }
                if state.silent {
                    continue;
                }
                match kind {
                    Kind::A0 => answer_a0(&state, &command, &mut work_antenna),
                    Kind::Chafon288 => answer_chafon(&state, &command),
                }
            };
            if !answer.is_empty() {
                sleep(ROUND_TIME).await;
                if line.write(&answer).await.is_err() {
                    return;
                }
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
                // Head, length, address, command and check: 5 bytes at least.
                let sum = frame.iter().fold(0u8, |s, &b| s.wrapping_add(b));
                (len, len >= 5 && sum == 0)
            }
            Kind::Chafon288 => {
                let len = usize::from(*buf.first()?) + 1;
                let frame = buf.get(..len)?;
                let valid =
                    len >= 5 && frame[len - 2..] == crc16_mcrf4xx(&frame[..len - 2]).to_le_bytes();
                (len, valid)
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
    match (command.cmd, command.data.first()) {
        (0x70, _) => {
            *work_antenna = 0;
            Vec::new()
        }
        (0x74, Some(&antenna)) => {
            *work_antenna = antenna;
            a0_frame(0x74, &[0x10])
        }
        (0x89 | 0x8B, _) => {
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

/// The UHFReader288 Get Reader Info answer of the Chafon "UHFReader18 User's Manual" (type 0x0C).
const READER_INFO_288: [u8; 18] = [
    0x11, 0x00, 0x21, 0x00, 0x00, 0x16, 0x0C, 0x03, 0x4E, 0x00, 0x1E, 0x0A, 0x01, 0x00, 0x00, 0x00,
    0xE6, 0x51,
];

fn answer_chafon(state: &State, command: &Command) -> Vec<u8> {
    match (command.cmd, command.data.get(7)) {
        (0x21, _) => READER_INFO_288.to_vec(),
        // QValue Session MaskMem MaskAdr(2) MaskLen Target Ant ScanTime.
        (0x01, Some(&ant @ 0x80..=0x87)) => {
            let antenna = ant - 0x80 + 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a0_commands_are_split_out_of_noise_and_short_frames_are_skipped() {
        let reset = [0xA0, 0x03, 0x01, 0x70, 0xEC];
        let mut buf = [&[0x00, 0xA0, 0x01, 0x5F][..], &reset].concat();
        assert_eq!(
            split(Kind::A0, &mut buf),
            Some(Command {
                cmd: 0x70,
                data: Vec::new()
            })
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn answers_to_commands_without_their_data_are_empty() {
        let state = State::default();
        let bare = |cmd| Command {
            cmd,
            data: Vec::new(),
        };
        assert!(answer_a0(&state, &bare(0x74), &mut 0).is_empty());
        assert!(answer_chafon(&state, &bare(0x01)).is_empty());
    }
}
