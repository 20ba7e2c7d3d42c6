//! Configuration: one TOML file plus `CUSTODYD__SECTION__KEY` environment
//! overrides, validated into these typed structs before anything starts.
//!
//! Every struct denies unknown fields: a typo in a key on a door Pi must be an
//! error at start-up, not a silent fall-back to a default. Validation collects
//! *every* problem (not just the first) so a technician fixes the file in one go.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::topic::Naming;

mod audit;
mod duration;
mod gate;
mod gpio;
mod load;
mod mqtt;
mod names;
mod portal;
mod secrets;
mod size;
mod station;
mod summary;
#[cfg(test)]
mod tests;
mod tls;
mod trust;
mod validate;

pub use audit::AuditConfig;
pub use duration::DURATION_MAX;
pub use gate::{GateConfig, UnknownAsset, UnsyncedExpiry};
pub use gpio::{ActiveLevel, GpioBackend, GpioConfig, InputPinConfig, Pull};
pub use load::{load, ConfigError, ConfigErrors};
pub use mqtt::Broker;
pub use portal::{AntennaSides, BeamsConfig, Side, WindowConfig};
pub use secrets::exposed_secrets;
pub use size::ByteSize;
pub use station::{Operators, ReaderRole, StationConfig, CLEAR_ACTION};
// The decoders own what they are configured with; the file names them here.
pub use crate::decode::{EndOn, Terminator, GS};
pub use trust::{parse_public_key, TrustConfig, PUBLIC_KEY_LEN};

/// Default location of the configuration file installed by the package.
pub const DEFAULT_PATH: &str = "/etc/custodyd/custodyd.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub locations: Vec<LocationConfig>,
    #[serde(default)]
    pub readers: Vec<ReaderConfig>,
    #[serde(default)]
    pub station: StationConfig,
    #[serde(default)]
    pub operators: Operators,
    #[serde(default)]
    pub gpio: GpioConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// `None`: no `[trust]` table, control messages are taken unsigned
    /// (refused at check-config where a cage gate is configured).
    #[serde(default)]
    pub trust: Option<TrustConfig>,
}

impl Config {
    /// The `{root}/{site}/{gateway}` that every topic of this gateway starts with.
    pub fn naming(&self) -> Naming {
        Naming {
            root: self.mqtt.root.clone(),
            site: self.gateway.site.clone(),
            gateway: self.gateway.name.clone(),
        }
    }

    /// The asset identity resolver this configuration describes (validated:
    /// the company prefixes are well-formed).
    pub fn identity(&self) -> crate::identity::Identity {
        let prefixes = crate::identity::gs1::CompanyPrefixes::new(&self.identity.company_prefixes);
        crate::identity::Identity::new(prefixes.unwrap_or_default())
    }

    /// Whether any location uses a GPIO pin: without one, GPIO is never
    /// opened (a gateway with only readers runs on any Linux machine).
    pub fn uses_gpio(&self) -> bool {
        self.locations.iter().any(|l| !l.gpio_pins().is_empty())
    }

    /// `mqtt.client_id`, or `gateway.name` when it is not set.
    pub fn client_id(&self) -> &str {
        self.mqtt.client_id.as_deref().unwrap_or(&self.gateway.name)
    }

    /// The control client's id: the client id with `-control`, stable so
    /// the broker finds its session again after a restart.
    pub fn control_client_id(&self) -> String {
        format!("{}-control", self.client_id())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Topic segment naming the warehouse.
    pub site: String,
    /// Topic segment naming this Pi; also the default MQTT client id.
    pub name: String,
    /// Where the spool and other durable state live. Put it on a USB SSD
    /// rather than a worn SD card (see hardware-notes.md).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// How often the `health` topic is published (at least 1s).
    #[serde(default = "default_health_interval", with = "duration")]
    pub health_interval: Duration,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/custodyd")
}
fn default_health_interval() -> Duration {
    Duration::from_secs(60)
}

/// `Debug` is written by hand (in `mqtt.rs`) so the password never reaches a log.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]`, `tcp://host[:port]` or `mqtts://host[:port]`; see
    /// [`MqttConfig::broker`].
    #[serde(default = "default_mqtt_url")]
    pub url: String,
    /// First topic segment.
    #[serde(default = "default_root")]
    pub root: String,
    /// Defaults to `gateway.name`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password (first line), so the TOML can stay world-readable.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `mqtts://`: PEM file of the CAs the broker's certificate must chain
    /// to; the system's roots when absent. See [`MqttConfig::tls_config`].
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `mqtts://`: PEM certificate chain for brokers that authenticate
    /// clients by certificate (mutual TLS); needs `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// MQTT keep-alive; a half-open link is noticed within about twice this.
    #[serde(default = "default_keep_alive", with = "duration")]
    pub keep_alive: Duration,
    /// How long one connection attempt (TCP + CONNACK) may take.
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// Spooled events published but not yet acknowledged, at most.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
    /// First wait after a failed connection; doubles up to `reconnect_max`.
    #[serde(default = "default_reconnect_min", with = "duration")]
    pub reconnect_min: Duration,
    #[serde(default = "default_reconnect_max", with = "duration")]
    pub reconnect_max: Duration,
    /// MQTT 5 tells a refused publish from a stored one; 3.1.1 cannot.
    #[serde(default)]
    pub protocol: MqttVersion,
    /// The largest packet the gateway sends; the broker's own limit (MQTT 5
    /// CONNACK) lowers it. An event that cannot fit is set aside.
    #[serde(default = "default_max_packet_size")]
    pub max_packet_size: ByteSize,
    /// The largest packet the gateway accepts; MQTT 5 tells the broker, which
    /// then does not send larger ones.
    #[serde(default = "default_max_packet_size")]
    pub max_incoming_packet_size: ByteSize,
    /// How long the broker keeps the control client's session (and queues
    /// its release policy, manifests and commands) while the gateway is
    /// away: an outage longer than this loses what was not retained.
    #[serde(default = "default_session_expiry", with = "duration")]
    pub session_expiry: Duration,
}

/// The MQTT version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum MqttVersion {
    #[default]
    #[serde(rename = "5")]
    V5,
    #[serde(rename = "3.1.1")]
    V311,
}

impl MqttVersion {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V5 => "5",
            MqttVersion::V311 => "3.1.1",
        }
    }
}

fn default_mqtt_url() -> String {
    "mqtt://127.0.0.1:1883".into()
}
fn default_root() -> String {
    "itad".into()
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(15)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_inflight() -> u16 {
    32
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(250)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(5)
}
fn default_max_packet_size() -> ByteSize {
    ByteSize(256 << 10)
}
fn default_session_expiry() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: default_mqtt_url(),
            root: default_root(),
            client_id: None,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive: default_keep_alive(),
            connect_timeout: default_connect_timeout(),
            inflight: default_inflight(),
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
            protocol: MqttVersion::default(),
            max_packet_size: default_max_packet_size(),
            max_incoming_packet_size: default_max_packet_size(),
            session_expiry: default_session_expiry(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Group commit: how long the first event of a batch may wait for others
    /// before the batch is made durable with one fsync.
    #[serde(default = "default_flush_interval", with = "duration")]
    pub flush_interval: Duration,
    /// Group commit: the most events made durable by one fsync.
    #[serde(default = "default_flush_max_events")]
    pub flush_max_events: usize,
    /// The most undelivered events the spool holds (their encoded size).
    /// Past it new events are counted and dropped, never silently; at 80 %
    /// a `spool_high_water` alarm warns first.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
}

fn default_max_bytes() -> ByteSize {
    ByteSize::mib(256)
}

fn default_flush_interval() -> Duration {
    Duration::from_millis(5)
}
fn default_flush_max_events() -> usize {
    512
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            flush_interval: default_flush_interval(),
            flush_max_events: default_flush_max_events(),
            max_bytes: default_max_bytes(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Known GS1 company prefixes (6 to 12 digits). A GS1 barcode needs its
    /// company prefix's length to map to the same EPC URI as the asset's
    /// RFID tag; with an unknown prefix it keeps its element string.
    #[serde(default)]
    pub company_prefixes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    DockDoor,
    CageGate,
    ScanStation,
}

impl LocationKind {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            LocationKind::DockDoor => "dock_door",
            LocationKind::CageGate => "cage_gate",
            LocationKind::ScanStation => "scan_station",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// Topic segment.
    pub name: String,
    pub kind: LocationKind,
    /// No read of an asset for this long at this location makes a `departed`.
    #[serde(default = "default_departure_timeout", with = "duration")]
    pub departure_timeout: Duration,
    /// `cage_gate` only: the gate is also a scan station; see
    /// [`LocationConfig::is_station`].
    #[serde(default)]
    pub station: Option<bool>,
    /// Stations only; see [`LocationConfig::operator_timeout`].
    #[serde(default, with = "duration")]
    pub operator_timeout: Option<Duration>,
    /// Stations only; see [`LocationConfig::require_operator`].
    #[serde(default)]
    pub require_operator: Option<bool>,
    /// Dock doors with read windows; see [`LocationConfig::manifest_timeout`].
    #[serde(default, with = "duration")]
    pub manifest_timeout: Option<Duration>,
    /// Portals (`dock_door`, `cage_gate`): the zone beyond the door's
    /// outside, e.g. `yard`; required there (see `config/portal.rs`).
    #[serde(default)]
    pub outside_zone: Option<String>,
    /// Portals: the zone on the door's inside, e.g. `receiving`; required there.
    #[serde(default)]
    pub inside_zone: Option<String>,
    /// Portals: reads weaker than this (dBm) are no evidence of direction.
    #[serde(default)]
    pub rssi_floor: Option<f32>,
    /// Portals: see [`LocationConfig::static_after`].
    #[serde(default, with = "duration")]
    pub static_after: Option<Duration>,
    /// Portals: see [`LocationConfig::order_margin`].
    #[serde(default, with = "duration")]
    pub order_margin: Option<Duration>,
    /// `cage_gate` only: the gate's relays, door sensor and release rules.
    #[serde(default)]
    pub gate: Option<GateConfig>,
    /// Portals: read only while something passes (see `config/portal.rs`).
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// Portals with a `window`: two light beams across the door.
    #[serde(default)]
    pub beams: Option<BeamsConfig>,
}

pub fn default_departure_timeout() -> Duration {
    Duration::from_secs(5)
}

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

    /// The command/reply UHF protocols, which custodyd drives rather than
    /// listens to.
    pub fn is_uhf(self) -> bool {
        matches!(self, Protocol::UhfA0 | Protocol::Chafon)
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

/// Which Chafon inventory answer layout a `chafon` reader sends: the bytes
/// cannot tell them apart, so it is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ChafonModel {
    /// UHFReader18: no antenna, no RSSI in answers.
    #[serde(rename = "18")]
    Reader18,
    /// UHFReader288 / UHFReader86 and the fixed readers: antenna and RSSI.
    #[serde(rename = "288")]
    Reader288,
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
    pub chafon_variant: Option<ChafonModel>,
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
    pub fn chafon_variant(&self) -> ChafonModel {
        self.chafon_variant.unwrap_or(ChafonModel::Reader288)
    }

    /// UHF: how long a command may go unanswered.
    pub fn reply_timeout(&self) -> Duration {
        self.reply_timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT)
    }
}
