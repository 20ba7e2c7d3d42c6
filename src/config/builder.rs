//! Configuration files written by code: `custodyd demo`, the integration
//! tests and the load harness run the real daemon as a separate process,
//! so what they hand it is TOML text, the same file a technician writes.
//!
//! One builder for all of them, so a renamed or retyped key is changed in
//! one place and a test cannot drift from what the demo shows. Values are
//! typed (durations, paths, pins, the configuration's own enums) and
//! rendered as the file spells them; a key without a method here is set
//! with [`Keys::set`], which still takes a typed value. Files that are
//! meant to be wrong (the config and check-config tests) are written by
//! hand instead.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

use super::{
    ActiveLevel, ByteSize, GpioBackend, LocationKind, MqttVersion, Protocol, Pull, ReadMode,
    ReaderKind, ReaderRole, Side, Terminator, UnknownAsset,
};

/// A duration as the file spells it (`"1s 500ms"`).
pub fn duration(d: Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

/// A path as the file spells it.
pub fn path(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

/// An enum without an `as_str` as the file spells it, through the serde
/// names it is read with. A unit variant always serialises; were one not
/// to, the error's text lands in the file and the daemon refuses it there,
/// naming the key.
fn spelled(v: impl serde::Serialize) -> Value {
    Value::try_from(v).unwrap_or_else(|e| Value::String(e.to_string()))
}

/// Strings as a TOML array.
fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::from(*s)).collect())
}

/// One table of the file (a section, a location, a reader, a gate...), and
/// any key of it that has no typed method.
pub trait Keys: Sized {
    fn table(&mut self) -> &mut Table;

    /// Sets `key` to `value`: for the keys a typed method does not cover.
    fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.table().insert(key.to_string(), value.into());
        self
    }
}

/// The whole file.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    root: Table,
    locations: Vec<Table>,
    readers: Vec<Table>,
}

impl ConfigBuilder {
    /// `[gateway]`: the topic segments `site` and `name`, and `data_dir`.
    pub fn new(site: &str, name: &str, data_dir: &Path) -> Self {
        let gateway = Table::from_iter([
            ("site".to_string(), Value::from(site)),
            ("name".to_string(), Value::from(name)),
            ("data_dir".to_string(), path(data_dir)),
        ]);
        ConfigBuilder {
            root: Table::from_iter([("gateway".to_string(), Value::Table(gateway))]),
            locations: Vec::new(),
            readers: Vec::new(),
        }
    }

    /// Sets `key` in section `[section]`, creating it.
    pub fn section_key(mut self, section: &str, key: &str, value: impl Into<Value>) -> Self {
        let entry = self
            .root
            .entry(section.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(table) = entry {
            table.insert(key.to_string(), value.into());
        }
        self
    }

    /// `gateway.health_interval`.
    pub fn health_interval(self, every: Duration) -> Self {
        self.section_key("gateway", "health_interval", duration(every))
    }

    /// `[mqtt]`.
    pub fn mqtt(mut self, mqtt: Mqtt) -> Self {
        self.root.insert("mqtt".to_string(), Value::Table(mqtt.0));
        self
    }

    /// `[gpio]` on the simulator, driven and watched through `socket`.
    pub fn gpio_sim(self, socket: &Path) -> Self {
        self.section_key("gpio", "backend", GpioBackend::Sim.as_str())
            .section_key("gpio", "sim_socket", path(socket))
    }

    /// `gpio.debounce`.
    pub fn gpio_debounce(self, debounce: Duration) -> Self {
        self.section_key("gpio", "debounce", duration(debounce))
    }

    /// `spool.max_bytes`.
    pub fn spool_max_bytes(self, max: ByteSize) -> Self {
        self.section_key("spool", "max_bytes", max.to_string())
    }

    /// `[trust]`: central's public key `key_id` (base64).
    pub fn central_key(mut self, key_id: &str, public_base64: &str) -> Self {
        let trust = self
            .root
            .entry("trust".to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(trust) = trust {
            let keys = trust
                .entry("central_keys".to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(keys) = keys {
                keys.insert(key_id.to_string(), Value::from(public_base64));
            }
        }
        self
    }

    /// `trust.allow_unsigned = true`.
    pub fn allow_unsigned(self) -> Self {
        self.section_key("trust", "allow_unsigned", true)
    }

    /// `identity.company_prefixes`.
    pub fn company_prefixes(self, prefixes: &[&str]) -> Self {
        self.section_key("identity", "company_prefixes", strings(prefixes))
    }

    /// `audit.checkpoint_interval`.
    pub fn checkpoint_interval(self, every: Duration) -> Self {
        self.section_key("audit", "checkpoint_interval", duration(every))
    }

    /// `station.container_prefixes`.
    pub fn container_prefixes(self, prefixes: &[&str]) -> Self {
        self.section_key("station", "container_prefixes", strings(prefixes))
    }

    /// `[operators]`: `badge` is `operator`.
    pub fn operator(self, badge: &str, operator: &str) -> Self {
        self.section_key("operators", badge, operator)
    }

    /// A `[[locations]]` entry.
    pub fn location(mut self, location: Location) -> Self {
        self.locations.push(location.0);
        self
    }

    /// A `[[readers]]` entry.
    pub fn reader(mut self, reader: Reader) -> Self {
        self.readers.push(reader.0);
        self
    }
}

/// The TOML text the daemon reads.
impl fmt::Display for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut root = self.root.clone();
        for (key, tables) in [("locations", &self.locations), ("readers", &self.readers)] {
            if !tables.is_empty() {
                let array = tables.iter().cloned().map(Value::Table).collect();
                root.insert(key.to_string(), Value::Array(array));
            }
        }
        root.fmt(f)
    }
}

/// `[mqtt]`.
#[derive(Debug, Clone)]
pub struct Mqtt(Table);

impl Keys for Mqtt {
    fn table(&mut self) -> &mut Table {
        &mut self.0
    }
}

impl Mqtt {
    /// The broker at `url` (`mqtt://host:port`, `mqtts://...`).
    pub fn new(url: &str) -> Self {
        Mqtt(Table::from_iter([("url".to_string(), Value::from(url))]))
    }

    pub fn protocol(self, version: MqttVersion) -> Self {
        self.set("protocol", version.as_str())
    }

    pub fn keep_alive(self, every: Duration) -> Self {
        self.set("keep_alive", duration(every))
    }

    /// `reconnect_min` and `reconnect_max`: the backoff between attempts.
    pub fn reconnect(self, min: Duration, max: Duration) -> Self {
        self.set("reconnect_min", duration(min))
            .set("reconnect_max", duration(max))
    }
}

/// A `[[locations]]` entry.
#[derive(Debug, Clone)]
pub struct Location(Table);

impl Keys for Location {
    fn table(&mut self) -> &mut Table {
        &mut self.0
    }
}

impl Location {
    fn new(name: &str, kind: LocationKind) -> Self {
        Location(Table::from_iter([
            ("name".to_string(), Value::from(name)),
            ("kind".to_string(), Value::from(kind.as_str())),
        ]))
    }

    /// A portal (`dock_door`, `cage_gate`) between two zones.
    fn portal(name: &str, kind: LocationKind, outside_zone: &str, inside_zone: &str) -> Self {
        Self::new(name, kind)
            .set("outside_zone", outside_zone)
            .set("inside_zone", inside_zone)
    }

    pub fn dock_door(name: &str, outside_zone: &str, inside_zone: &str) -> Self {
        Self::portal(name, LocationKind::DockDoor, outside_zone, inside_zone)
    }

    pub fn cage_gate(name: &str, outside_zone: &str, inside_zone: &str, gate: Gate) -> Self {
        Self::portal(name, LocationKind::CageGate, outside_zone, inside_zone)
            .set("gate", Value::Table(gate.0))
    }

    pub fn scan_station(name: &str) -> Self {
        Self::new(name, LocationKind::ScanStation)
    }

    pub fn departure_timeout(self, timeout: Duration) -> Self {
        self.set("departure_timeout", duration(timeout))
    }

    /// `station`: a cage gate that is also a scan station.
    pub fn station(self, is_station: bool) -> Self {
        self.set("station", is_station)
    }

    pub fn operator_timeout(self, timeout: Duration) -> Self {
        self.set("operator_timeout", duration(timeout))
    }

    pub fn require_operator(self, required: bool) -> Self {
        self.set("require_operator", required)
    }

    pub fn manifest_timeout(self, timeout: Duration) -> Self {
        self.set("manifest_timeout", duration(timeout))
    }

    pub fn rssi_floor(self, dbm: f32) -> Self {
        self.set("rssi_floor", f64::from(dbm))
    }

    pub fn static_after(self, after: Duration) -> Self {
        self.set("static_after", duration(after))
    }

    pub fn order_margin(self, margin: Duration) -> Self {
        self.set("order_margin", duration(margin))
    }

    /// `window`: read only while something passes.
    pub fn window(self, window: Window) -> Self {
        self.set("window", Value::Table(window.0))
    }

    /// `beams`: the outer (towards `outside_zone`) and inner light beams.
    pub fn beams(self, outer: InputPin, inner: InputPin) -> Self {
        let beams = Table::from_iter([
            ("outer".to_string(), Value::Table(outer.0)),
            ("inner".to_string(), Value::Table(inner.0)),
        ]);
        self.set("beams", Value::Table(beams))
    }
}

/// A cage gate's `gate` table.
#[derive(Debug, Clone)]
pub struct Gate(Table);

impl Keys for Gate {
    fn table(&mut self) -> &mut Table {
        &mut self.0
    }
}

impl Gate {
    /// The lock's relay on `lock_pin`.
    pub fn new(lock_pin: u8) -> Self {
        Gate(Table::new()).set("lock_pin", i64::from(lock_pin))
    }

    /// The stack light's green and red relays and the buzzer's.
    pub fn signals(self, green: u8, red: u8, buzzer: u8) -> Self {
        self.set("green_pin", i64::from(green))
            .set("red_pin", i64::from(red))
            .set("buzzer_pin", i64::from(buzzer))
    }

    pub fn door_sensor(self, sensor: InputPin) -> Self {
        self.set("door_sensor", Value::Table(sensor.0))
    }

    pub fn unlock_pulse(self, pulse: Duration) -> Self {
        self.set("unlock_pulse", duration(pulse))
    }

    pub fn deny_signal(self, signal: Duration) -> Self {
        self.set("deny_signal", duration(signal))
    }

    pub fn unknown(self, unknown: UnknownAsset) -> Self {
        self.set("unknown", unknown.as_str())
    }

    pub fn override_max(self, max: Duration) -> Self {
        self.set("override_max", duration(max))
    }
}

/// A portal's `window` table.
#[derive(Debug, Clone, Default)]
pub struct Window(Table);

impl Keys for Window {
    fn table(&mut self) -> &mut Table {
        &mut self.0
    }
}

impl Window {
    /// Opened by the beams alone (see [`Window::trigger`]).
    pub fn new() -> Self {
        Window::default()
    }

    pub fn trigger(self, sensor: InputPin) -> Self {
        self.set("trigger", Value::Table(sensor.0))
    }

    pub fn quiet_after(self, quiet: Duration) -> Self {
        self.set("quiet_after", duration(quiet))
    }

    pub fn max_window(self, max: Duration) -> Self {
        self.set("max_window", duration(max))
    }

    pub fn silent_after(self, windows: u32) -> Self {
        self.set("silent_after", i64::from(windows))
    }
}

/// A sensor input (`{ pin = 26, active = "high" }`).
#[derive(Debug, Clone)]
pub struct InputPin(Table);

impl Keys for InputPin {
    fn table(&mut self) -> &mut Table {
        &mut self.0
    }
}

impl InputPin {
    pub fn new(pin: u8, active: ActiveLevel) -> Self {
        InputPin(Table::new())
            .set("pin", i64::from(pin))
            .set("active", spelled(active))
    }

    pub fn pull(self, pull: Pull) -> Self {
        self.set("pull", spelled(pull))
    }
}

/// A `[[readers]]` entry.
#[derive(Debug, Clone)]
pub struct Reader(Table);

impl Keys for Reader {
    fn table(&mut self) -> &mut Table {
        &mut self.0
    }
}

impl Reader {
    fn new(name: &str, location: &str, device: &Path) -> Self {
        Reader(Table::from_iter([
            ("name".to_string(), Value::from(name)),
            ("location".to_string(), Value::from(location)),
            ("path".to_string(), path(device)),
        ]))
    }

    /// A serial reader framed by `protocol`.
    pub fn serial(name: &str, location: &str, device: &Path, protocol: Protocol) -> Self {
        Self::new(name, location, device).set("protocol", protocol.as_str())
    }

    /// A USB HID keyboard-wedge scanner.
    pub fn hid(name: &str, location: &str, device: &Path) -> Self {
        Self::new(name, location, device).set("kind", ReaderKind::Hid.as_str())
    }

    pub fn mode(self, mode: ReadMode) -> Self {
        self.set("mode", mode.as_str())
    }

    pub fn role(self, role: ReaderRole) -> Self {
        self.set("role", role.as_str())
    }

    pub fn terminator(self, terminator: Terminator) -> Self {
        self.set("terminator", spelled(terminator))
    }

    pub fn rescan_window(self, window: Duration) -> Self {
        self.set("rescan_window", duration(window))
    }

    pub fn max_len(self, bytes: usize) -> Self {
        self.set("max_len", i64::try_from(bytes).unwrap_or(i64::MAX))
    }

    pub fn reopen_max(self, max: Duration) -> Self {
        self.set("reopen_max", duration(max))
    }

    pub fn offline_alarm_after(self, after: Duration) -> Self {
        self.set("offline_alarm_after", duration(after))
    }

    /// UHF: the antenna ports inventoried in turn, each watching a side of
    /// the portal (`sides`) where one is given.
    pub fn antennas(self, antennas: &[(u8, Option<Side>)]) -> Self {
        let ports = antennas
            .iter()
            .map(|(port, _)| Value::from(i64::from(*port)))
            .collect();
        let sides: Table = antennas
            .iter()
            .filter_map(|(port, side)| {
                side.map(|side| (port.to_string(), Value::from(side.as_str())))
            })
            .collect();
        let reader = self.set("antennas", Value::Array(ports));
        if sides.is_empty() {
            reader
        } else {
            reader.set("sides", Value::Table(sides))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the builder writes is a file the daemon accepts, with every
    /// value where the daemon looks for it.
    #[test]
    fn a_built_file_loads_with_every_value_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let text = ConfigBuilder::new("s", "gw-1", dir.path())
            .health_interval(Duration::from_secs(1))
            .mqtt(
                Mqtt::new("mqtt://127.0.0.1:1883")
                    .protocol(MqttVersion::V311)
                    .reconnect(Duration::from_millis(50), Duration::from_millis(1500)),
            )
            .gpio_sim(&dir.path().join("gpio.sock"))
            .spool_max_bytes(ByteSize(64 << 10))
            .allow_unsigned()
            .location(
                Location::dock_door("door", "yard", "receiving")
                    .departure_timeout(Duration::from_millis(1500))
                    .rssi_floor(-90.0)
                    .window(
                        Window::new()
                            .trigger(InputPin::new(22, ActiveLevel::High).pull(Pull::Down))
                            .silent_after(2),
                    ),
            )
            .location(Location::cage_gate(
                "cage",
                "floor",
                "secure",
                Gate::new(5)
                    .signals(6, 13, 19)
                    .door_sensor(InputPin::new(26, ActiveLevel::High)),
            ))
            .location(Location::scan_station("station"))
            .reader(
                Reader::serial("uhf", "door", Path::new("/dev/a \"b\""), Protocol::UhfA0)
                    .antennas(&[(1, Some(Side::Outside)), (2, Some(Side::Inside))]),
            )
            .reader(
                Reader::serial("scan", "station", Path::new("/dev/b"), Protocol::AsciiLine)
                    .mode(ReadMode::Scan)
                    .terminator(Terminator::Crlf),
            )
            .reader(
                Reader::serial("rel", "cage", Path::new("/dev/c"), Protocol::AsciiLine)
                    .mode(ReadMode::Release),
            )
            .to_string();
        let file = dir.path().join("custodyd.toml");
        std::fs::write(&file, &text).unwrap();
        let config = super::super::load(&file).unwrap_or_else(|e| panic!("{e}\n{text}"));

        assert_eq!(config.gateway.name, "gw-1");
        assert_eq!(config.gateway.health_interval, Duration::from_secs(1));
        assert_eq!(config.mqtt.protocol, MqttVersion::V311);
        assert_eq!(config.mqtt.reconnect_max, Duration::from_millis(1500));
        assert_eq!(config.spool.max_bytes, ByteSize(64 << 10));
        let door = &config.locations[0];
        assert_eq!(door.departure_timeout, Duration::from_millis(1500));
        assert_eq!(door.rssi_floor, Some(-90.0));
        let window = door.window.as_ref().unwrap();
        assert_eq!(window.silent_after, 2);
        assert_eq!(window.trigger.as_ref().unwrap().pull, Pull::Down);
        let gate = config.locations[1].gate.as_ref().unwrap();
        assert_eq!((gate.lock_pin, gate.buzzer_pin), (5, Some(19)));
        assert_eq!(config.readers[0].path, Path::new("/dev/a \"b\""));
        assert_eq!(config.readers[0].antennas, Some(vec![1, 2]));
        assert_eq!(config.readers[1].terminator(), Terminator::Crlf);
        assert_eq!(config.readers[2].mode, Some(ReadMode::Release));
    }
}
