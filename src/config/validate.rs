//! Checks that need the whole deserialized configuration. Every problem is
//! collected, so one run of `custodyd check-config` lists all of them.

use std::collections::hash_map::{Entry, HashMap};
use std::hash::Hash;
use std::path::Path;
use std::time::Duration;

use humantime::format_duration;

use super::gpio::PinClaims;
use super::load::ConfigError;
use super::names::{entry_label, name_problem};
use super::{
    ByteSize, ChafonModel, Config, GpioBackend, GpioConfig, LocationConfig, LocationKind,
    MqttConfig, Protocol, ReadMode, ReaderConfig, ReaderKind, ReaderRole, CLEAR_ACTION,
};

/// rumqttc 0.25 asserts in `MqttOptions::set_keep_alive` that the keep-alive is
/// zero or at least a second, and sends it as whole seconds in a `u16`.
const KEEP_ALIVE_MIN: Duration = Duration::from_secs(1);
const KEEP_ALIVE_MAX: Duration = Duration::from_secs(u16::MAX as u64);
const INFLIGHT_MAX: u16 = 1000;
/// Longer than a restart of the service: less would drop the control
/// session between two runs.
const SESSION_EXPIRY_MIN: Duration = Duration::from_secs(60);
/// Room for any event the gateway makes of a normal read; less would set
/// ordinary events aside as too large.
const PACKET_MIN: ByteSize = ByteSize(4 << 10);
/// The largest packet MQTT can carry (a remaining length of 268,435,455).
const PACKET_MAX: ByteSize = ByteSize(268_435_455);
const MAX_LEN_MAX: usize = 65536;
/// R2000/E710 modules have up to 8 ports (0x74 takes 0-7).
const A0_PORTS: u8 = 8;
/// The Chafon Ant bitmask has four bits.
const CHAFON_PORTS: u8 = 4;
/// Gen2 sessions S0-S3.
const MAX_SESSION: u8 = 3;
/// Longer than any contact bounce; more would only delay the sensor.
const DEBOUNCE_MAX: Duration = Duration::from_secs(1);
/// Room for a few hundred events: less would alarm and drop at once.
const SPOOL_MIN: ByteSize = ByteSize(64 << 10);
/// A health sample is a few hundred bytes per reader; more often than this
/// would be traffic, not visibility.
const HEALTH_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// A checkpoint is one signature and one retained message; more often is
/// noise, and a day bounds how long the head can go unsigned.
const CHECKPOINT_INTERVAL: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));

/// Every problem in `config`; empty when it is usable.
pub(super) fn validate(config: &Config) -> Vec<ConfigError> {
    let mut errors = Errors::default();
    check_name(&mut errors, "gateway.site", &config.gateway.site);
    check_name(&mut errors, "gateway.name", &config.gateway.name);
    if config.gateway.health_interval < HEALTH_INTERVAL_MIN {
        errors.push(
            "gateway.health_interval",
            format!(
                "is {}; must be at least {}",
                format_duration(config.gateway.health_interval),
                format_duration(HEALTH_INTERVAL_MIN)
            ),
        );
    }
    let (min, max) = CHECKPOINT_INTERVAL;
    if !(min..=max).contains(&config.audit.checkpoint_interval) {
        errors.push(
            "audit.checkpoint_interval",
            format!(
                "is {}; must be from {} to {}",
                format_duration(config.audit.checkpoint_interval),
                format_duration(min),
                format_duration(max)
            ),
        );
    }
    check_mqtt(&mut errors, &config.mqtt);
    if config.spool.flush_max_events == 0 {
        errors.push("spool.flush_max_events", "must be at least 1");
    }
    if config.spool.max_bytes < SPOOL_MIN {
        errors.push("spool.max_bytes", format!("must be at least {SPOOL_MIN}"));
    }
    for (i, prefix) in config.identity.company_prefixes.iter().enumerate() {
        if let Err(e) = crate::identity::gs1::CompanyPrefixes::new([prefix]) {
            errors.push(format!("identity.company_prefixes[{i}]"), e.to_string());
        }
    }
    check_locations(&mut errors, &config.locations);
    check_readers(&mut errors, &config.readers, &config.locations);
    check_stations(&mut errors, config);
    check_context_locations(&mut errors, config);
    check_badge_readers(&mut errors, config);
    check_gpio(&mut errors, &config.gpio, &config.locations);
    check_trust(&mut errors, config);
    errors.0
}

/// Central's keys are well-formed, and a cage gate has them unless unsigned
/// control messages are allowed on purpose: otherwise anyone who can publish
/// to the broker opens the gate.
fn check_trust(errors: &mut Errors, config: &Config) {
    let gate = config
        .locations
        .iter()
        .find(|l| l.kind == LocationKind::CageGate);
    let (keys, allow_unsigned) = config
        .trust
        .as_ref()
        .map_or((None, false), |t| (Some(&t.central_keys), t.allow_unsigned));
    for (id, key) in keys.into_iter().flatten() {
        let label = format!("trust.central_keys.{id}");
        if let Some(problem) = name_problem(id) {
            errors.push(label.clone(), format!("the key id {problem}"));
        }
        if let Err(problem) = super::parse_public_key(key) {
            errors.push(label, problem);
        }
    }
    if let Some(gate) = gate.filter(|_| keys.is_none_or(|k| k.is_empty()) && !allow_unsigned) {
        errors.push(
            "trust.central_keys",
            format!(
                "location {} is a cage_gate: configure central's public keys, or set \
                 trust.allow_unsigned = true on purpose (anyone who can publish to \
                 the broker could then release assets and unlock the gate)",
                gate.name
            ),
        );
    }
}

#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }
}

fn check_name(errors: &mut Errors, key: &str, name: &str) {
    if let Some(problem) = name_problem(name) {
        errors.push(key, problem);
    }
}

fn check_mqtt(errors: &mut Errors, mqtt: &MqttConfig) {
    match mqtt.broker() {
        Err(e) => errors.push("mqtt.url", e),
        Ok(broker) if broker.tls => {
            if let Err(tls) = mqtt.tls_config() {
                errors.0.extend(tls.0);
            }
        }
        Ok(_) => {
            for (key, set) in [
                ("mqtt.ca_file", mqtt.ca_file.is_some()),
                ("mqtt.client_cert_file", mqtt.client_cert_file.is_some()),
                ("mqtt.client_key_file", mqtt.client_key_file.is_some()),
            ] {
                if set {
                    errors.push(key, "only applies to mqtts:// URLs (TLS)");
                }
            }
        }
    }
    check_name(errors, "mqtt.root", &mqtt.root);
    if let Some(client_id) = &mqtt.client_id {
        check_name(errors, "mqtt.client_id", client_id);
    }

    match (&mqtt.password, &mqtt.password_file) {
        (Some(_), Some(_)) => errors.push(
            "mqtt.password",
            "set either mqtt.password or mqtt.password_file, not both",
        ),
        (None, Some(_)) => {
            if let Err(e) = mqtt.password() {
                errors.push("mqtt.password_file", e);
            }
        }
        _ => {}
    }
    if mqtt.username.is_none() {
        // MQTT 3.1.1 sends a password only together with a user name.
        for (key, set) in [
            ("mqtt.password", mqtt.password.is_some()),
            ("mqtt.password_file", mqtt.password_file.is_some()),
        ] {
            if set {
                errors.push(key, "needs mqtt.username as well");
            }
        }
    }

    let keep_alive = mqtt.keep_alive;
    if keep_alive < KEEP_ALIVE_MIN {
        errors.push(
            "mqtt.keep_alive",
            format!(
                "is {}; must be at least 1s (without it a half-open link to the broker \
                 goes unnoticed)",
                format_duration(keep_alive)
            ),
        );
    } else if keep_alive > KEEP_ALIVE_MAX {
        errors.push(
            "mqtt.keep_alive",
            format!(
                "is {}; MQTT allows at most {}",
                format_duration(keep_alive),
                format_duration(KEEP_ALIVE_MAX)
            ),
        );
    } else if keep_alive.subsec_nanos() != 0 {
        errors.push(
            "mqtt.keep_alive",
            format!(
                "is {}; must be whole seconds (MQTT sends the keep-alive in seconds)",
                format_duration(keep_alive)
            ),
        );
    }

    if mqtt.connect_timeout.is_zero() {
        errors.push("mqtt.connect_timeout", "must be more than 0");
    }
    if mqtt.session_expiry < SESSION_EXPIRY_MIN {
        errors.push(
            "mqtt.session_expiry",
            format!(
                "is {}; must be at least {} (the broker keeps the control session only this \
                 long, and what central publishes not retained while the gateway is away is \
                 queued there)",
                format_duration(mqtt.session_expiry),
                format_duration(SESSION_EXPIRY_MIN)
            ),
        );
    }
    if !(1..=INFLIGHT_MAX).contains(&mqtt.inflight) {
        errors.push(
            "mqtt.inflight",
            format!("is {}; must be 1 to {INFLIGHT_MAX}", mqtt.inflight),
        );
    }
    for (key, size) in [
        ("mqtt.max_packet_size", mqtt.max_packet_size),
        (
            "mqtt.max_incoming_packet_size",
            mqtt.max_incoming_packet_size,
        ),
    ] {
        if !(PACKET_MIN..=PACKET_MAX).contains(&size) {
            errors.push(
                key,
                format!("is {size}; must be {PACKET_MIN} to {PACKET_MAX}"),
            );
        }
    }
    if mqtt.reconnect_min.is_zero() {
        errors.push(
            "mqtt.reconnect_min",
            "must be more than 0 (the wait doubles from it; 0 would retry in a tight loop)",
        );
    } else if mqtt.reconnect_min > mqtt.reconnect_max {
        errors.push(
            "mqtt.reconnect_min",
            format!(
                "({}) must not exceed mqtt.reconnect_max ({})",
                format_duration(mqtt.reconnect_min),
                format_duration(mqtt.reconnect_max)
            ),
        );
    }
}

/// `[station]` (command barcodes, containers) and `[operators]`.
fn check_stations(errors: &mut Errors, config: &Config) {
    let station = &config.station;
    let prefix = station.action_prefix.to_lowercase();
    if prefix.is_empty() {
        errors.push("station.action_prefix", "must not be empty");
    }
    if station.actions.is_empty() {
        errors.push(
            "station.actions",
            "must list at least one action (or leave it out for the default list)",
        );
    }
    let mut actions: HashMap<String, usize> = HashMap::new();
    for (i, action) in station.actions.iter().enumerate() {
        let key = format!("station.actions[{i}]");
        check_name(errors, &key, action);
        let lower = action.to_lowercase();
        if lower == CLEAR_ACTION {
            errors.push(
                &key,
                format!(
                    "{action:?} is reserved: {}{} clears the context",
                    station.action_prefix,
                    CLEAR_ACTION.to_uppercase()
                ),
            );
        }
        if let Some(first) = actions.insert(lower, i) {
            errors.push(
                key,
                format!("{action:?} is listed twice (also station.actions[{first}]; case does not count)"),
            );
        }
    }
    for (i, container) in station.container_prefixes.iter().enumerate() {
        let key = format!("station.container_prefixes[{i}]");
        let lower = container.to_lowercase();
        if container.is_empty() {
            errors.push(key, "must not be empty (every scan would be a container)");
        } else if !prefix.is_empty() && (lower.starts_with(&prefix) || prefix.starts_with(&lower)) {
            errors.push(
                key,
                format!(
                    "{container:?} overlaps station.action_prefix {:?}: a scan could be both",
                    station.action_prefix
                ),
            );
        }
    }

    let mut badges: HashMap<String, &str> = HashMap::new();
    for (badge, operator) in &config.operators {
        let key = format!("operators.{badge}");
        if badge.trim().is_empty() {
            errors.push(key.clone(), "the badge number must not be empty");
        }
        check_name(errors, &key, operator);
        if let Some(first) = badges.insert(badge.to_uppercase(), badge) {
            errors.push(
                key,
                format!("badge {badge:?} is listed twice (also as {first:?}; case does not count)"),
            );
        }
    }
}

/// The keys only a station, or a dock door taking manifests, can use.
fn check_context_locations(errors: &mut Errors, config: &Config) {
    for (i, location) in config.locations.iter().enumerate() {
        let label = entry_label("locations", i, &location.name);
        if location.station.is_some() && location.kind != LocationKind::CageGate {
            errors.push(
                format!("{label}.station"),
                "only applies to kind = \"cage_gate\" (a scan_station always is a station)",
            );
        }
        if !location.is_station() {
            for (field, set) in [
                ("operator_timeout", location.operator_timeout.is_some()),
                ("require_operator", location.require_operator.is_some()),
            ] {
                if set {
                    errors.push(
                        format!("{label}.{field}"),
                        "only applies to stations (kind = \"scan_station\", or a cage_gate \
                         with station = true)",
                    );
                }
            }
        } else if location.operator_timeout.is_some_and(|t| t.is_zero()) {
            errors.push(format!("{label}.operator_timeout"), "must be more than 0");
        }
        let has_badge_reader = config
            .readers
            .iter()
            .any(|r| r.role == ReaderRole::Badge && r.location == location.name);
        if location.is_station() && location.require_operator() && !has_badge_reader {
            errors.push(
                format!("{label}.require_operator"),
                "no reader with role = \"badge\" is at this location, so nobody could sign in \
                 and every scan would be refused",
            );
        }
        let key = format!("{label}.manifest_timeout");
        match location.manifest_timeout {
            Some(_) if !location.takes_manifests() => errors.push(
                key,
                "only applies to a dock_door with read windows (window = ...): manifests are \
                 reconciled against their pass summaries",
            ),
            Some(timeout) if timeout.is_zero() => errors.push(key, "must be more than 0"),
            _ => {}
        }
    }
}

/// Badge readers: at a station, and never in an asset read mode.
fn check_badge_readers(errors: &mut Errors, config: &Config) {
    for (i, reader) in config.readers.iter().enumerate() {
        if reader.role != ReaderRole::Badge {
            continue;
        }
        let label = entry_label("readers", i, &reader.name);
        let location = config.locations.iter().find(|l| l.name == reader.location);
        if location.is_some_and(|l| !l.is_station()) {
            errors.push(
                format!("{label}.role"),
                format!(
                    "a badge reader must be at a station; {:?} is not one (kind = \"scan_station\", \
                     or a cage_gate with station = true)",
                    reader.location
                ),
            );
        }
        if reader.mode.is_some() {
            errors.push(
                format!("{label}.mode"),
                "does not apply to role = \"badge\" (badge reads never become assets)",
            );
        }
    }
}

fn check_locations(errors: &mut Errors, locations: &[LocationConfig]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, location) in locations.iter().enumerate() {
        let label = entry_label("locations", i, &location.name);
        check_name(errors, &format!("{label}.name"), &location.name);
        if let Some(first) = first_seen(&mut seen, location.name.as_str(), i) {
            errors.push(
                format!("{label}.name"),
                format!(
                    "duplicate name {:?} (also locations[{first}])",
                    location.name
                ),
            );
        }
        if location.departure_timeout.is_zero() {
            errors.push(format!("{label}.departure_timeout"), "must be more than 0");
        }
        check_gate(errors, location, &label);
        check_portal(errors, location, &label);
    }
}

fn check_readers(errors: &mut Errors, readers: &[ReaderConfig], locations: &[LocationConfig]) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut paths: HashMap<&Path, usize> = HashMap::new();
    for (i, reader) in readers.iter().enumerate() {
        let label = entry_label("readers", i, &reader.name);
        let key = |field: &str| format!("{label}.{field}");

        check_name(errors, &key("name"), &reader.name);
        if let Some(first) = first_seen(&mut names, reader.name.as_str(), i) {
            errors.push(
                key("name"),
                format!("duplicate name {:?} (also readers[{first}])", reader.name),
            );
        }

        if !locations.iter().any(|l| l.name == reader.location) {
            let known: Vec<&str> = locations.iter().map(|l| l.name.as_str()).collect();
            let hint = if known.is_empty() {
                "no [[locations]] are configured".to_string()
            } else {
                format!("configured: {}", known.join(", "))
            };
            errors.push(
                key("location"),
                format!("unknown location {:?} ({hint})", reader.location),
            );
        }

        if reader.path.as_os_str().is_empty() {
            errors.push(key("path"), "must not be empty");
        } else if let Some(first) = first_seen(&mut paths, reader.path.as_path(), i) {
            errors.push(
                key("path"),
                format!(
                    "{} is also read by readers[{first}]; a device can have one reader only",
                    reader.path.display()
                ),
            );
        }

        if reader.baud == Some(0) {
            errors.push(key("baud"), "must be more than 0");
        }
        if !(1..=MAX_LEN_MAX).contains(&reader.max_len) {
            errors.push(
                key("max_len"),
                format!("is {}; must be 1 to {MAX_LEN_MAX}", reader.max_len),
            );
        }
        if reader.reopen_max.is_zero() {
            errors.push(
                key("reopen_max"),
                "must be more than 0 (0 would retry a missing device in a tight loop)",
            );
        }
        if reader.protocol != Some(Protocol::AsciiLine) {
            for (field, set) in [
                ("prefix", reader.prefix.is_some()),
                ("suffix", reader.suffix.is_some()),
            ] {
                if set {
                    errors.push(key(field), "only applies to protocol = \"ascii-line\"");
                }
            }
        }
        match reader.kind {
            ReaderKind::Serial => check_serial(errors, reader, &key),
            ReaderKind::Hid => check_hid(errors, reader, &key),
        }
        check_release_mode(errors, reader, locations, &key);
        let location = locations.iter().find(|l| l.name == reader.location);
        check_sides(errors, reader, location, &key);
    }
}

/// A serial reader needs a protocol, and HID keys would do nothing on it.
fn check_serial(errors: &mut Errors, reader: &ReaderConfig, key: &dyn Fn(&str) -> String) {
    if reader.protocol.is_none() {
        errors.push(
            key("protocol"),
            "is required for serial readers: \"em4100\", \"ascii-line\", \"uhf-a0\" \
             or \"chafon\" (or set kind = \"hid\" for a USB keyboard-wedge scanner)",
        );
    }
    check_uhf(errors, reader, key);
    for (field, set) in [
        ("end_on", reader.end_on.is_some()),
        ("gs_substitute", reader.gs_substitute.is_some()),
        ("scan_timeout", reader.scan_timeout.is_some()),
    ] {
        if set {
            errors.push(key(field), "only applies to kind = \"hid\"");
        }
    }
}

/// A HID scanner is decoded by the keymap: serial framing keys would be
/// silently ignored, so they are errors, each saying what to use instead.
fn check_hid(errors: &mut Errors, reader: &ReaderConfig, key: &dyn Fn(&str) -> String) {
    for (field, set, why) in [
        (
            "protocol",
            reader.protocol.is_some(),
            "keystrokes are decoded by the US keymap; remove it",
        ),
        (
            "baud",
            reader.baud.is_some(),
            "a USB keyboard has no line speed; remove it",
        ),
        (
            "terminator",
            reader.terminator.is_some(),
            "use end_on = \"enter\", \"tab\" or \"enter_or_tab\"",
        ),
    ] {
        if set {
            errors.push(
                key(field),
                format!("does not apply to kind = \"hid\" ({why})"),
            );
        }
    }
    if reader.gs_substitute.as_deref() == Some("") {
        errors.push(
            key("gs_substitute"),
            "must not be empty (GS1 fields would run together)",
        );
    }
    if reader.scan_timeout.is_some_and(|t| t.is_zero()) {
        errors.push(key("scan_timeout"), "must be more than 0");
    }
}

/// The keys of the command/reply UHF protocols: set on any other protocol
/// they would be silently ignored, so they are errors there.
fn check_uhf(errors: &mut Errors, reader: &ReaderConfig, key: &dyn Fn(&str) -> String) {
    let chafon = reader.protocol == Some(Protocol::Chafon);
    let uhf_keys = [
        ("antennas", reader.antennas.is_some()),
        ("address", reader.address.is_some()),
        ("session", reader.session.is_some()),
        ("target", reader.target.is_some()),
        ("reply_timeout", reader.reply_timeout.is_some()),
    ];
    if !reader.protocol.is_some_and(Protocol::is_uhf) {
        for (field, set) in uhf_keys {
            if set {
                errors.push(
                    key(field),
                    "only applies to protocol = \"uhf-a0\" or \"chafon\"",
                );
            }
        }
    }
    if !chafon && reader.chafon_variant.is_some() {
        errors.push(
            key("chafon_variant"),
            "only applies to protocol = \"chafon\"",
        );
    }
    if !reader.protocol.is_some_and(Protocol::is_uhf) {
        return;
    }
    let reader18 = chafon && reader.chafon_variant() == ChafonModel::Reader18;
    let ports = if chafon { CHAFON_PORTS } else { A0_PORTS };
    let antennas = reader.antennas();
    if antennas.is_empty() {
        errors.push(key("antennas"), "must list at least one antenna");
    }
    for (i, &antenna) in antennas.iter().enumerate() {
        if !(1..=ports).contains(&antenna) {
            errors.push(
                key("antennas"),
                format!("antenna {antenna} does not exist; ports are numbered 1 to {ports}"),
            );
        } else if antennas[..i].contains(&antenna) {
            errors.push(
                key("antennas"),
                format!("antenna {antenna} is listed twice"),
            );
        }
    }
    if reader18 && antennas != [1] {
        errors.push(
            key("antennas"),
            "a UHFReader18 (chafon_variant = \"18\") cannot be told which antenna to use",
        );
    }
    if let Some(session) = reader.session {
        if session > MAX_SESSION {
            errors.push(
                key("session"),
                format!("is {session}; must be 0 to {MAX_SESSION}"),
            );
        }
    }
    if reader18 {
        for (field, set) in [
            ("session", reader.session.is_some()),
            ("target", reader.target.is_some()),
        ] {
            if set {
                errors.push(
                    key(field),
                    "a UHFReader18 (chafon_variant = \"18\") inventory takes no session or target",
                );
            }
        }
    }
    if reader.reply_timeout.is_some_and(|t| t.is_zero()) {
        errors.push(key("reply_timeout"), "must be more than 0");
    }
}

/// Longest unlock, denial signal or override a gate accepts: longer is a
/// door left open, which is what the gate is there to prevent.
const GATE_PULSE_MAX: Duration = Duration::from_secs(60);
const OVERRIDE_MAX: Duration = Duration::from_secs(3600);

/// A `gate` table: only on a cage gate, with durations a gate can use.
fn check_gate(errors: &mut Errors, location: &LocationConfig, label: &str) {
    let Some(gate) = &location.gate else {
        return;
    };
    let key = |field: &str| format!("{label}.gate.{field}");
    if location.kind != LocationKind::CageGate {
        errors.push(
            format!("{label}.gate"),
            format!(
                "only applies to kind = \"cage_gate\"; {} is a {}",
                location.name,
                location.kind.as_str()
            ),
        );
    }
    for (field, value, max) in [
        ("unlock_pulse", gate.unlock_pulse, GATE_PULSE_MAX),
        ("deny_signal", gate.deny_signal, GATE_PULSE_MAX),
        ("override_max", gate.override_max, OVERRIDE_MAX),
    ] {
        if value.is_zero() || value > max {
            errors.push(
                key(field),
                format!(
                    "is {}; must be more than 0 and at most {}",
                    format_duration(value),
                    format_duration(max)
                ),
            );
        }
    }
    if let Some(problem) = gate
        .door_sensor
        .as_ref()
        .and_then(|d| debounce_problem(d.debounce))
    {
        errors.push(key("door_sensor.debounce"), problem);
    }
}

/// `mode = "release"` asks a gate to decide: there must be one.
fn check_release_mode(
    errors: &mut Errors,
    reader: &ReaderConfig,
    locations: &[LocationConfig],
    key: &dyn Fn(&str) -> String,
) {
    if reader.mode() != ReadMode::Release {
        return;
    }
    let location = locations.iter().find(|l| l.name == reader.location);
    if location.is_some_and(|l| l.gate.is_none() || l.kind != LocationKind::CageGate) {
        errors.push(
            key("mode"),
            format!(
                "\"release\" needs a cage_gate location with a gate table; {} has none",
                reader.location
            ),
        );
    }
}

/// `[gpio]`, and every pin of every location: on the header, used once.
fn check_gpio(errors: &mut Errors, gpio: &GpioConfig, locations: &[LocationConfig]) {
    match (gpio.backend, &gpio.sim_socket) {
        (GpioBackend::Sim, None) => errors.push(
            "gpio.sim_socket",
            "is required with backend = \"sim\" (the socket the simulated pins are driven through)",
        ),
        (GpioBackend::Cdev, Some(_)) => {
            errors.push("gpio.sim_socket", "only applies to backend = \"sim\"")
        }
        _ => {}
    }
    if gpio.backend == GpioBackend::Sim && gpio.chip.is_some() {
        errors.push("gpio.chip", "only applies to backend = \"cdev\"");
    }
    if let Some(problem) = debounce_problem(Some(gpio.debounce)) {
        errors.push("gpio.debounce", problem);
    }
    let mut claims = PinClaims::default();
    for (i, location) in locations.iter().enumerate() {
        let label = entry_label("locations", i, &location.name);
        for (field, pin) in location.gpio_pins() {
            let key = format!("{label}.{field}");
            if let Some(problem) = claims.claim(&key, pin) {
                errors.push(key, problem);
            }
        }
    }
}

/// Why a `debounce` is too long, if it is.
fn debounce_problem(debounce: Option<Duration>) -> Option<String> {
    debounce
        .filter(|d| *d > DEBOUNCE_MAX)
        .map(|d| format!("is {}; at most 1s", format_duration(d)))
}

/// RSSI as UHF readers report it: -129 dBm (the A0 byte 0) to 0 dBm.
const RSSI_FLOOR_RANGE: std::ops::RangeInclusive<f32> = -129.0..=0.0;

/// Zones on both sides of a portal, and the direction keys only there.
fn check_portal(errors: &mut Errors, location: &LocationConfig, label: &str) {
    let key = |field: &str| format!("{label}.{field}");
    let zones = [
        ("outside_zone", &location.outside_zone),
        ("inside_zone", &location.inside_zone),
    ];
    if !location.kind.is_portal() {
        let portal_keys = [
            ("outside_zone", location.outside_zone.is_some()),
            ("inside_zone", location.inside_zone.is_some()),
            ("rssi_floor", location.rssi_floor.is_some()),
            ("static_after", location.static_after.is_some()),
            ("order_margin", location.order_margin.is_some()),
            ("window", location.window.is_some()),
            ("beams", location.beams.is_some()),
        ];
        for (field, set) in portal_keys {
            if set {
                errors.push(
                    key(field),
                    "only applies to kind = \"dock_door\" or \"cage_gate\"",
                );
            }
        }
        return;
    }
    for (field, zone) in zones {
        match zone {
            None => errors.push(
                key(field),
                format!(
                    "is required for kind = {:?}: a portal is a door between two zones",
                    location.kind.as_str()
                ),
            ),
            Some(zone) => check_name(errors, &key(field), zone),
        }
    }
    if let (Some(outside), Some(inside)) = (&location.outside_zone, &location.inside_zone) {
        if outside == inside {
            errors.push(
                key("inside_zone"),
                format!("is {inside:?}, the same as outside_zone; a portal joins two zones"),
            );
        }
    }
    if let Some(floor) = location.rssi_floor {
        if !RSSI_FLOOR_RANGE.contains(&floor) {
            errors.push(
                key("rssi_floor"),
                format!("is {floor}; must be -129 to 0 (dBm)"),
            );
        }
    }
    if location.static_after.is_some_and(|t| t.is_zero()) {
        errors.push(key("static_after"), "must be more than 0");
    }
    check_window(errors, location, &key);
}

/// A read window needs a sensor to open it; beams only work in windows.
fn check_window(errors: &mut Errors, location: &LocationConfig, key: &dyn Fn(&str) -> String) {
    let Some(window) = &location.window else {
        if location.beams.is_some() {
            errors.push(
                key("beams"),
                "needs a window table: the beams' order is taken per read window",
            );
        }
        return;
    };
    if window.trigger.is_none() && location.beams.is_none() {
        errors.push(
            key("window.trigger"),
            "is required without beams: something must open the window",
        );
    }
    if window.quiet_after.is_zero() {
        errors.push(key("window.quiet_after"), "must be more than 0");
    }
    if window.max_window < window.quiet_after {
        errors.push(
            key("window.max_window"),
            format!(
                "is {}; must be at least window.quiet_after ({})",
                format_duration(window.max_window),
                format_duration(window.quiet_after)
            ),
        );
    }
    if window.silent_after == 0 {
        errors.push(key("window.silent_after"), "must be at least 1");
    }
    let beams = location.beams.as_ref();
    let inputs = [
        ("window.trigger.debounce", window.trigger.as_ref()),
        ("beams.outer.debounce", beams.map(|b| &b.outer)),
        ("beams.inner.debounce", beams.map(|b| &b.inner)),
    ];
    for (field, input) in inputs {
        if let Some(problem) = input.and_then(|i| debounce_problem(i.debounce)) {
            errors.push(key(field), problem);
        }
    }
}

/// `side` / `sides`: only at a portal, only on presence readers, and
/// `sides` only names antennas the reader inventories.
fn check_sides(
    errors: &mut Errors,
    reader: &ReaderConfig,
    location: Option<&LocationConfig>,
    key: &dyn Fn(&str) -> String,
) {
    let field = match (&reader.side, &reader.sides) {
        (None, None) => return,
        (Some(_), Some(_)) => {
            errors.push(
                key("sides"),
                "set either side (the whole reader) or sides (per antenna), not both",
            );
            return;
        }
        (Some(_), None) => "side",
        (None, Some(_)) => "sides",
    };
    if let Some(location) = location.filter(|l| !l.kind.is_portal()) {
        errors.push(
            key(field),
            format!(
                "only applies at a dock_door or cage_gate; {} is a {}",
                location.name,
                location.kind.as_str()
            ),
        );
    }
    if reader.mode() != ReadMode::Presence {
        errors.push(
            key(field),
            "only applies to mode = \"presence\" readers (scans are no evidence of direction)",
        );
    }
    let Some(sides) = &reader.sides else {
        return;
    };
    if !reader.protocol.is_some_and(Protocol::is_uhf)
        || reader.chafon_variant == Some(ChafonModel::Reader18)
    {
        errors.push(
            key("sides"),
            "only applies to readers that report antennas (uhf-a0, chafon \"288\"); use side",
        );
        return;
    }
    let antennas = reader.antennas();
    for name in sides.keys() {
        if !name.parse().is_ok_and(|a: u8| antennas.contains(&a)) {
            errors.push(
                key("sides"),
                format!("{name:?} is not one of the reader's antennas {antennas:?}"),
            );
        }
    }
}

/// The index `key` was first seen at, or `None` (remembering `index`) when
/// this is its first appearance.
fn first_seen<'a, K: Eq + Hash + ?Sized>(
    seen: &mut HashMap<&'a K, usize>,
    key: &'a K,
    index: usize,
) -> Option<usize> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(*first.get()),
        Entry::Vacant(slot) => {
            slot.insert(index);
            None
        }
    }
}
