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

mod load;
mod mqtt;
mod names;
mod size;
mod summary;
#[cfg(test)]
mod tests;
mod validate;

pub use load::{load, ConfigError, ConfigErrors};
pub use mqtt::Broker;
pub use size::ByteSize;

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
    pub locations: Vec<LocationConfig>,
    #[serde(default)]
    pub readers: Vec<ReaderConfig>,
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

    /// `mqtt.client_id`, or `gateway.name` when it is not set.
    pub fn client_id(&self) -> &str {
        self.mqtt.client_id.as_deref().unwrap_or(&self.gateway.name)
    }
}

#[derive(Debug, Clone, Deserialize)]
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
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/custodyd")
}

/// `Debug` is written by hand (in `mqtt.rs`) so the password never reaches a log.
#[derive(Clone, Deserialize)]
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
    /// MQTT keep-alive; a half-open link is noticed within about twice this.
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    /// How long one connection attempt (TCP + CONNACK) may take.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Spooled events published but not yet acknowledged, at most.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
    /// First wait after a failed connection; doubles up to `reconnect_max`.
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
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

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: default_mqtt_url(),
            root: default_root(),
            client_id: None,
            username: None,
            password: None,
            password_file: None,
            keep_alive: default_keep_alive(),
            connect_timeout: default_connect_timeout(),
            inflight: default_inflight(),
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Group commit: how long the first event of a batch may wait for others
    /// before the batch is made durable with one fsync.
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
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
    #[serde(default = "default_departure_timeout", with = "humantime_serde")]
    pub departure_timeout: Duration,
}

fn default_departure_timeout() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// 125 kHz RDM6300-style readers: STX, 10 hex data, 2 hex XOR, ETX.
    Em4100,
    /// One tag or barcode per line.
    AsciiLine,
}

impl Protocol {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Em4100 => "em4100",
            Protocol::AsciiLine => "ascii-line",
        }
    }
}

/// How reads of a reader become custody events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// RFID-style: a tag in the field is a presence (`arrived` / `departed`).
    Presence,
    /// Barcode-style: each deliberate scan is a `scanned` event.
    Scan,
}

impl ReadMode {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Presence => "presence",
            ReadMode::Scan => "scan",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Terminator {
    Cr,
    Lf,
    Crlf,
    Etx,
}

/// `kind = "hid"`: which key ends a scan. It must match the suffix the
/// scanner is programmed to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndOn {
    Enter,
    Tab,
    EnterOrTab,
}

impl EndOn {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            EndOn::Enter => "enter",
            EndOn::Tab => "tab",
            EndOn::EnterOrTab => "enter_or_tab",
        }
    }
}

/// The GS1 field separator (FNC1 in the symbol), as scanners transmit it.
pub const GS: &str = "\u{1d}";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// Topic-safe name, used in events and the status topic.
    pub name: String,
    /// Name of a `[[locations]]` entry.
    pub location: String,
    /// Serial device; prefer `/dev/serial/by-id/...`, which survives re-plugging.
    pub path: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    pub protocol: Protocol,
    /// Defaults to `presence` for RFID protocols and `scan` for `ascii-line`.
    #[serde(default)]
    pub mode: Option<ReadMode>,
    /// Same code from the same reader within this window is a duplicate (scan mode).
    #[serde(default = "default_rescan_window", with = "humantime_serde")]
    pub rescan_window: Duration,
    /// `ascii-line`: what ends a line.
    #[serde(default = "default_terminator")]
    pub terminator: Terminator,
    /// `ascii-line`: stripped from the start of a line when present.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `ascii-line`: stripped from the end of a line when present.
    #[serde(default)]
    pub suffix: Option<String>,
    /// `ascii-line`: longer lines are dropped and counted.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Longest wait between attempts to reopen a missing device.
    #[serde(default = "default_reopen_max", with = "humantime_serde")]
    pub reopen_max: Duration,
}

fn default_baud() -> u32 {
    9600
}
fn default_rescan_window() -> Duration {
    Duration::from_secs(2)
}
fn default_terminator() -> Terminator {
    Terminator::Cr
}
fn default_max_len() -> usize {
    128
}
fn default_reopen_max() -> Duration {
    Duration::from_secs(10)
}

impl ReaderConfig {
    pub fn mode(&self) -> ReadMode {
        self.mode.unwrap_or(match self.protocol {
            Protocol::Em4100 => ReadMode::Presence,
            Protocol::AsciiLine => ReadMode::Scan,
        })
    }
}
