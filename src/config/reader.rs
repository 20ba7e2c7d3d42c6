//! `[[readers]]`: the devices the gateway reads, how it talks to each and
//! what their reads become.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{duration, AntennaSides, EndOn, ReaderRole, Side, Terminator, GS};
use crate::decode::ChafonVariant;

mod validate;

pub(super) use validate::check_readers;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// 125 kHz RDM6300-style readers: STX, 10 hex data, 2 hex XOR, ETX.
    Em4100,
    /// One tag or barcode per line.
    AsciiLine,
    /// Impinj R2000 / E710 UHF modules (header 0xA0), driven by custodyd:
    /// reset, work antenna, real-time inventory rounds.
    #[serde(rename = "uhf-a0")]
    UhfA0,
    /// Chafon UHFReader18 / UHFReader288 family, asked for inventories in
    /// answer mode.
    Chafon,
}

impl Protocol {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Em4100 => "em4100",
            Protocol::AsciiLine => "ascii-line",
            Protocol::UhfA0 => "uhf-a0",
            Protocol::Chafon => "chafon",
        }
    }

    /// Which of the two ways of reading a serial reader the protocol needs.
    pub fn kind(self) -> ProtocolKind {
        match self {
            Protocol::Em4100 => ProtocolKind::Streaming(StreamingProtocol::Em4100),
            Protocol::AsciiLine => ProtocolKind::Streaming(StreamingProtocol::AsciiLine),
            Protocol::UhfA0 => ProtocolKind::CommandReply(UhfProtocol::A0),
            Protocol::Chafon => ProtocolKind::CommandReply(UhfProtocol::Chafon),
        }
    }

    /// The command/reply UHF protocols, which custodyd drives rather than
    /// listens to.
    pub fn is_uhf(self) -> bool {
        matches!(self.kind(), ProtocolKind::CommandReply(_))
    }

    /// The factory line speed of the hardware that speaks it.
    fn default_baud(self) -> u32 {
        match self {
            Protocol::Em4100 | Protocol::AsciiLine => 9600,
            Protocol::UhfA0 => 115_200,
            Protocol::Chafon => 57_600,
        }
    }
}

/// The two ways a serial reader is read: they need different loops, and
/// each loop takes only the protocols it can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolKind {
    /// The reader sends its reads unasked; custodyd listens
    /// (`sources::serial`).
    Streaming(StreamingProtocol),
    /// The reader reads only while asked; custodyd drives it with commands
    /// and takes the replies (`sources::uhf`).
    CommandReply(UhfProtocol),
}

/// The protocols of readers that stream their reads unasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamingProtocol {
    Em4100,
    AsciiLine,
}

/// The command/reply UHF protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UhfProtocol {
    /// `uhf-a0`.
    A0,
    Chafon,
}

/// The Gen2 inventoried flag a UHF inventory round selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Target {
    A,
    B,
}

/// How reads of a reader become custody events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// RFID-style: a tag in the field is a presence (`arrived` / `departed`).
    Presence,
    /// Barcode-style: each deliberate scan is a `scanned` event.
    Scan,
    /// A scan at a cage gate asking to take the asset out: a `scanned`
    /// event that the gate decides on (see `release`).
    Release,
}

impl ReadMode {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Presence => "presence",
            ReadMode::Scan => "scan",
            ReadMode::Release => "release",
        }
    }
}

/// How the daemon talks to a reader's device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReaderKind {
    /// A serial or CDC-ACM port whose bytes a `protocol` frames.
    #[default]
    Serial,
    /// A USB HID keyboard wedge (barcode scanner) read through Linux evdev.
    Hid,
}

impl ReaderKind {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            ReaderKind::Serial => "serial",
            ReaderKind::Hid => "hid",
        }
    }
}

/// One reader. Keys that only apply to one kind or protocol are `Option`s,
/// `None` when left out rather than filled with their default, so validation
/// can reject a key that would silently do nothing (`baud` on a HID
/// scanner); the accessors below supply the documented defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// Topic-safe name, used in events and the status topic.
    pub name: String,
    /// Name of a `[[locations]]` entry.
    pub location: String,
    #[serde(default)]
    pub kind: ReaderKind,
    /// `badge`: an operator badge reader at a station, whose reads never
    /// become assets.
    #[serde(default)]
    pub role: ReaderRole,
    /// The device: prefer `/dev/serial/by-id/...` or `/dev/input/by-id/...`,
    /// which survive re-plugging.
    pub path: PathBuf,
    /// Serial only; see [`ReaderConfig::baud`].
    #[serde(default)]
    pub baud: Option<u32>,
    /// Required for serial readers, not allowed for HID ones (their keystrokes
    /// are decoded by the keymap).
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Defaults to `presence` for RFID protocols and `scan` otherwise.
    #[serde(default)]
    pub mode: Option<ReadMode>,
    /// Same code from the same reader within this window is a duplicate (scan mode).
    #[serde(default = "default_rescan_window", with = "duration")]
    pub rescan_window: Duration,
    /// `ascii-line`: what ends a line; see [`ReaderConfig::terminator`].
    #[serde(default)]
    pub terminator: Option<Terminator>,
    /// `ascii-line`: stripped from the start of a line when present.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `ascii-line`: stripped from the end of a line when present.
    #[serde(default)]
    pub suffix: Option<String>,
    /// `ascii-line` and `hid`: longer lines or scans are dropped and counted.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// HID only; see [`ReaderConfig::end_on`].
    #[serde(default)]
    pub end_on: Option<EndOn>,
    /// HID only; see [`ReaderConfig::gs_substitute`].
    #[serde(default)]
    pub gs_substitute: Option<String>,
    /// HID only; see [`ReaderConfig::scan_timeout`].
    #[serde(default, with = "duration")]
    pub scan_timeout: Option<Duration>,
    /// Longest wait between attempts to reopen a missing device.
    #[serde(default = "default_reopen_max", with = "duration")]
    pub reopen_max: Duration,
    /// A reader down this long raises a `reader_offline` alarm: long enough
    /// that re-plugging a cable does not page anyone.
    #[serde(default = "default_offline_alarm_after", with = "duration")]
    pub offline_alarm_after: Duration,
    /// UHF: 1-based antenna ports inventoried in turn; default `[1]`.
    #[serde(default)]
    pub antennas: Option<Vec<u8>>,
    /// UHF: the reader's bus address; default 0xFF, which every reader answers.
    #[serde(default)]
    pub address: Option<u8>,
    /// UHF: Gen2 session (0-3) of the inventory rounds.
    #[serde(default)]
    pub session: Option<u8>,
    /// UHF: Gen2 target (A or B) of the inventory rounds.
    #[serde(default)]
    pub target: Option<Target>,
    /// `chafon`: which answer layout the reader sends; default "288".
    #[serde(default)]
    pub chafon_variant: Option<ChafonVariant>,
    /// UHF: how long a command may go unanswered before the reader is reset.
    #[serde(default, with = "duration")]
    pub reply_timeout: Option<Duration>,
    /// At a portal: the side every antenna of this reader watches.
    #[serde(default)]
    pub side: Option<Side>,
    /// At a portal, UHF: the side each antenna watches, `{ 1 = "outside" }`.
    #[serde(default)]
    pub sides: Option<AntennaSides>,
}

fn default_offline_alarm_after() -> Duration {
    Duration::from_secs(30)
}

/// Broadcast: answered by a UHF reader whatever address it was given.
const UHF_BROADCAST: u8 = 0xFF;
const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(1);
fn default_rescan_window() -> Duration {
    Duration::from_secs(2)
}
fn default_max_len() -> usize {
    128
}
fn default_reopen_max() -> Duration {
    Duration::from_secs(10)
}

impl ReaderConfig {
    /// What the reader reads, by its mode: a presence reader reads tags, a
    /// scanner barcodes.
    pub fn source(&self) -> crate::decode::Source {
        match self.mode() {
            ReadMode::Presence => crate::decode::Source::Rfid,
            ReadMode::Scan | ReadMode::Release => crate::decode::Source::Barcode,
        }
    }

    pub fn mode(&self) -> ReadMode {
        self.mode.unwrap_or(match (self.kind, self.protocol) {
            (ReaderKind::Serial, Some(Protocol::Em4100 | Protocol::UhfA0 | Protocol::Chafon)) => {
                ReadMode::Presence
            }
            _ => ReadMode::Scan,
        })
    }

    /// `baud`, or the protocol's factory speed: 9600 for em4100 and
    /// ascii-line, 115200 for uhf-a0, 57600 for chafon.
    pub fn baud(&self) -> u32 {
        self.baud
            .unwrap_or(self.protocol.map_or(9600, Protocol::default_baud))
    }

    /// `ascii-line`: `cr` unless set (the usual factory setting of scanners).
    pub fn terminator(&self) -> Terminator {
        self.terminator.unwrap_or(Terminator::Cr)
    }

    /// HID: Enter unless set (the usual factory suffix of keyboard wedges).
    pub fn end_on(&self) -> EndOn {
        self.end_on.unwrap_or(EndOn::Enter)
    }

    /// HID: what Ctrl+] (how most keyboard wedges type the GS1 separator)
    /// becomes in the scan; GS itself unless set, so GS1 data keeps its
    /// field boundaries.
    pub fn gs_substitute(&self) -> &str {
        self.gs_substitute.as_deref().unwrap_or(GS)
    }

    /// HID: how long a scan may go without its terminator before it is
    /// dropped (500 ms unless set). A scanner types a whole code within a
    /// few tens of milliseconds, so a longer silence means the end key was
    /// lost or the scanner sends another one.
    pub fn scan_timeout(&self) -> Duration {
        self.scan_timeout.unwrap_or(Duration::from_millis(500))
    }

    /// What decodes this reader's input, for summaries: the protocol of a
    /// serial reader, `hid` for a keyboard wedge.
    pub fn input_name(&self) -> &'static str {
        match (self.kind, self.protocol) {
            (ReaderKind::Hid, _) => ReaderKind::Hid.as_str(),
            (ReaderKind::Serial, Some(protocol)) => protocol.as_str(),
            (ReaderKind::Serial, None) => "(no protocol)",
        }
    }

    /// UHF: the 1-based antennas to inventory, in order.
    pub fn antennas(&self) -> &[u8] {
        self.antennas.as_deref().unwrap_or(&[1])
    }

    /// UHF: the address commands are sent to.
    pub fn address(&self) -> u8 {
        self.address.unwrap_or(UHF_BROADCAST)
    }

    /// `chafon`: the answer layout.
    pub fn chafon_variant(&self) -> ChafonVariant {
        self.chafon_variant.unwrap_or(ChafonVariant::Reader288)
    }

    /// UHF: how long a command may go unanswered.
    pub fn reply_timeout(&self) -> Duration {
        self.reply_timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT)
    }
}
