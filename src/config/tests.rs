//! Loading and validation, end to end through a real file.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use super::load::{load_with_env, serde_names};
use super::*;

mod station;

/// A valid configuration whose last table is `readers[0]`, so appending
/// `key = value` lines sets keys of that reader.
const BASE: &str = r#"
[gateway]
site = "reno-1"
name = "dock-pi-03"

[[locations]]
name = "door1"
kind = "dock_door"
outside_zone = "yard"
inside_zone = "receiving"

[[readers]]
name = "door1-em"
location = "door1"
path = "/dev/ttyUSB0"
protocol = "em4100"
"#;

fn with(extra: &str) -> String {
    format!("{BASE}\n{extra}\n")
}

fn load_env(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    load_with_env(file.path(), env)
}

fn load_str(toml: &str) -> Result<Config, ConfigErrors> {
    load_env(toml, &[])
}

fn ok(toml: &str) -> Config {
    load_str(toml).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn errors(toml: &str) -> Vec<ConfigError> {
    match load_str(toml) {
        Ok(_) => panic!("expected errors for:\n{toml}"),
        Err(ConfigErrors(errors)) => errors,
    }
}

/// The message of the error naming `key`; fails listing every error otherwise.
fn error_at(errors: &[ConfigError], key: &str) -> String {
    match errors.iter().find(|e| e.key == key) {
        Some(e) => e.message.clone(),
        None => panic!(
            "no error for key {key:?}; got:\n{}",
            ConfigErrors(errors.to_vec())
        ),
    }
}

fn assert_error(toml: &str, key: &str) -> String {
    error_at(&errors(toml), key)
}

#[test]
fn minimal_file_takes_the_documented_defaults() {
    let config = ok("[gateway]\nsite = \"s\"\nname = \"g\"\n");
    assert_eq!(config.gateway.data_dir, Path::new("/var/lib/custodyd"));
    let mqtt = &config.mqtt;
    assert_eq!(mqtt.url, "mqtt://127.0.0.1:1883");
    assert_eq!(mqtt.root, "itad");
    assert_eq!(config.client_id(), "g");
    assert_eq!(config.control_client_id(), "g-control");
    assert_eq!(mqtt.session_expiry, Duration::from_secs(3 * 24 * 3600));
    assert_eq!(mqtt.keep_alive, Duration::from_secs(15));
    assert_eq!(mqtt.connect_timeout, Duration::from_secs(5));
    assert_eq!(mqtt.inflight, 32);
    assert_eq!(mqtt.reconnect_min, Duration::from_millis(250));
    assert_eq!(mqtt.reconnect_max, Duration::from_secs(5));
    assert_eq!(mqtt.protocol, MqttVersion::V5);
    assert_eq!(mqtt.max_packet_size, ByteSize(256 << 10));
    assert_eq!(mqtt.max_incoming_packet_size, ByteSize(256 << 10));
    assert_eq!(mqtt.password(), Ok(None));
    assert_eq!(config.spool.flush_interval, Duration::from_millis(5));
    assert_eq!(config.spool.flush_max_events, 512);
    assert!(config.locations.is_empty() && config.readers.is_empty());
}

#[test]
fn reader_and_location_defaults() {
    let config = ok(&with(
        r#"
[[readers]]
name = "scan1"
location = "door1"
path = "/dev/ttyACM0"
protocol = "ascii-line"
"#,
    ));
    assert_eq!(
        config.locations[0].departure_timeout,
        Duration::from_secs(5)
    );
    let em = &config.readers[0];
    assert_eq!(em.kind, ReaderKind::Serial);
    assert_eq!(em.baud(), 9600);
    assert_eq!(em.mode(), ReadMode::Presence);
    assert_eq!(em.rescan_window, Duration::from_secs(2));
    assert_eq!(em.reopen_max, Duration::from_secs(10));
    let scan = &config.readers[1];
    assert_eq!(scan.mode(), ReadMode::Scan);
    assert_eq!(scan.terminator(), Terminator::Cr);
    assert_eq!(scan.max_len, 128);
    assert_eq!(
        (scan.prefix.as_deref(), scan.suffix.as_deref()),
        (None, None)
    );
}

#[test]
fn durations_are_humantime_strings() {
    let config = ok(&with(
        r#"rescan_window = "1m 30s"
[mqtt]
keep_alive = "2m"
reconnect_min = "100ms"
[spool]
flush_interval = "0s""#,
    ));
    assert_eq!(config.readers[0].rescan_window, Duration::from_secs(90));
    assert_eq!(config.mqtt.keep_alive, Duration::from_secs(120));
    assert_eq!(config.mqtt.reconnect_min, Duration::from_millis(100));
    assert_eq!(config.spool.flush_interval, Duration::ZERO);
}

#[test]
fn reference_config_loads_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/custodyd.toml");
    let config = load_with_env(&path, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.readers.len(), 5);
    assert_eq!(config.readers[4].role, ReaderRole::Badge);
    assert_eq!(config.readers[0].protocol, Some(Protocol::Em4100));
    assert_eq!(config.readers[1].mode(), ReadMode::Scan);
    let uhf = &config.readers[2];
    assert_eq!(uhf.protocol, Some(Protocol::UhfA0));
    assert_eq!((uhf.baud(), uhf.antennas()), (115_200, &[1, 2][..]));
    assert_eq!(config.readers[3].kind, ReaderKind::Hid);
    assert_eq!(config.readers[3].mode(), ReadMode::Scan);
    assert_eq!(config.locations[1].kind, LocationKind::ScanStation);
}

/// The package's conffile is refused until a person has filled in what no
/// default can know: a gateway started from it as shipped would publish
/// under empty names to a broker nobody chose.
#[test]
fn the_packaged_conffile_is_refused_until_filled_in() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/debian/custodyd.toml");
    let shipped = std::fs::read_to_string(&path).unwrap();
    let problems = errors(&shipped);
    for key in [
        "gateway.site",
        "gateway.name",
        "mqtt.url",
        "readers[0] (scan1-em).path",
    ] {
        error_at(&problems, key);
    }
    assert_eq!(problems.len(), 4, "{problems:?}");
    let filled = shipped
        .replace("site = \"\"", "site = \"reno-1\"")
        .replace("name = \"\"", "name = \"dock-pi-03\"")
        .replace("url = \"\"", "url = \"mqtt://broker.example.lan\"")
        .replace("path = \"\"", "path = \"/dev/ttyUSB0\"");
    ok(&filled);
}

#[test]
fn reference_config_documents_every_key() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/custodyd.toml"))
            .unwrap();
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim_start_matches(['#', ' ']).split_once(" ="))
        .map(|(key, _)| key)
        .collect();
    let sections = [
        ("[gateway]", serde_names::<GatewayConfig>()),
        ("[mqtt]", serde_names::<MqttConfig>()),
        ("[spool]", serde_names::<SpoolConfig>()),
        ("[[locations]]", serde_names::<LocationConfig>()),
        ("[[readers]]", serde_names::<ReaderConfig>()),
        ("[station]", serde_names::<StationConfig>()),
        ("[gpio]", serde_names::<GpioConfig>()),
        ("[locations.gate]", serde_names::<GateConfig>()),
        ("door_sensor", serde_names::<InputPinConfig>()),
        ("[locations.window]", serde_names::<WindowConfig>()),
        ("beams", serde_names::<BeamsConfig>()),
        ("[audit]", serde_names::<AuditConfig>()),
        ("[trust]", serde_names::<super::TrustConfig>()),
    ];
    for (section, fields) in sections {
        assert!(text.contains(section), "{section} missing");
        assert!(!fields.is_empty());
        for field in fields {
            assert!(keys.contains(field), "{section} {field} is not documented");
        }
    }
}

#[test]
fn enum_spellings_match_the_file() {
    for kind in [
        LocationKind::DockDoor,
        LocationKind::CageGate,
        LocationKind::ScanStation,
    ] {
        assert!(serde_names::<LocationKind>().contains(&kind.as_str()));
    }
    for protocol in [
        Protocol::Em4100,
        Protocol::AsciiLine,
        Protocol::UhfA0,
        Protocol::Chafon,
    ] {
        assert!(serde_names::<Protocol>().contains(&protocol.as_str()));
    }
    for mode in [ReadMode::Presence, ReadMode::Scan] {
        assert!(serde_names::<ReadMode>().contains(&mode.as_str()));
    }
    for kind in [ReaderKind::Serial, ReaderKind::Hid] {
        assert!(serde_names::<ReaderKind>().contains(&kind.as_str()));
    }
    for role in [ReaderRole::Asset, ReaderRole::Badge] {
        assert!(serde_names::<ReaderRole>().contains(&role.as_str()));
    }
    for end_on in [EndOn::Enter, EndOn::Tab, EndOn::EnterOrTab] {
        assert!(serde_names::<EndOn>().contains(&end_on.as_str()));
    }
}

// --- environment overrides ---

#[test]
fn environment_overrides_the_file() {
    let toml = with("[mqtt]\nurl = \"mqtt://file-broker:1883\"\ninflight = 8");
    let config = load_env(
        &toml,
        &[
            ("CUSTODYD__MQTT__URL", "mqtt://10.0.0.5:1883"),
            ("CUSTODYD__GATEWAY__SITE", "x"),
            ("CUSTODYD__MQTT__KEEP_ALIVE", "30s"),
            ("custodyd__mqtt__inflight", "64"),
            ("CUSTODYD_MQTT_ROOT", "single-underscores-are-not-ours"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.mqtt.url, "mqtt://10.0.0.5:1883");
    assert_eq!(config.gateway.site, "x");
    assert_eq!(config.mqtt.keep_alive, Duration::from_secs(30));
    assert_eq!(config.mqtt.inflight, 64);
    assert_eq!(config.mqtt.root, "itad");
}

#[test]
fn environment_fills_a_section_the_file_lacks() {
    let config = load_env(BASE, &[("CUSTODYD__MQTT__URL", "mqtts://broker")]).unwrap();
    assert_eq!(config.mqtt.url, "mqtts://broker");
    assert!(config.mqtt.broker().unwrap().tls);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let Err(ConfigErrors(errs)) = load_env(BASE, &[("CUSTODYD__MQTT__URLL", "mqtt://x")]) else {
        panic!("unknown key from the environment was accepted");
    };
    let message = error_at(&errs, "mqtt.urll");
    assert!(message.contains("CUSTODYD__MQTT__URLL"), "{message}");

    let Err(ConfigErrors(errs)) = load_env(BASE, &[("CUSTODYD__MQTT__URL", "http://x")]) else {
        panic!("bad url from the environment was accepted");
    };
    let message = error_at(&errs, "mqtt.url");
    assert!(message.contains("CUSTODYD__MQTT__URL"), "{message}");
}

// --- file-level and deserialization errors ---

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let ConfigErrors(errs) = load_with_env(&path, Vec::new()).unwrap_err();
    let message = error_at(&errs, "(file)");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn syntax_error_gives_the_position_but_not_the_line() {
    let toml =
        "[gateway]\nsite = \"s\"\nname = \"g\"\n[mqtt]\nusername = \"u\"\npassword = \"hunter2\n";
    let message = assert_error(toml, "(file)");
    assert!(message.contains("line 6"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn unknown_keys_in_the_file_are_rejected_by_name() {
    let message = assert_error(&with("[mqtt]\nkeepalive = \"5s\""), "mqtt.keepalive");
    assert!(message.contains("keep_alive"), "{message}");
    assert_error(&with("[logging]\nlevel = \"debug\""), "logging");
    assert_error(&with("antenna = 2"), "readers[0] (door1-em).antenna");
    assert_error(
        &format!("{BASE}\n[[locations]]\nname = \"x\"\nkind = \"dock_door\"\ncolour = 1"),
        "locations[1] (x).colour",
    );
}

#[test]
fn wrong_types_name_the_key() {
    assert_error(&with("[mqtt]\ninflight = \"lots\""), "mqtt.inflight");
    assert_error(&with("[mqtt]\ninflight = 70000"), "mqtt.inflight");
    assert_error(&with("baud = \"fast\""), "readers[0] (door1-em).baud");
    assert_error("gateway = 5", "gateway");
}

#[test]
fn bad_enum_values_list_the_accepted_ones() {
    let toml = BASE.replace("\"em4100\"", "\"em4200\"");
    let message = assert_error(&toml, "readers[0] (door1-em).protocol");
    assert!(
        message.contains("em4200") && message.contains("ascii-line"),
        "{message}"
    );
    let toml = BASE.replace("\"em4100\"", "1");
    let message = assert_error(&toml, "readers[0] (door1-em).protocol");
    assert!(message.contains("em4100"), "{message}");
    let toml = BASE.replace("\"dock_door\"", "\"dock\"");
    let message = assert_error(&toml, "locations[0] (door1).kind");
    assert!(message.contains("cage_gate"), "{message}");
}

#[test]
fn bad_durations_name_the_key() {
    let message = assert_error(
        &with("[mqtt]\nkeep_alive = \"5 parsecs\""),
        "mqtt.keep_alive",
    );
    assert!(message.contains("5s"), "{message}");
    assert_error(&with("[mqtt]\nkeep_alive = 5"), "mqtt.keep_alive");
}

/// Such a value parses as a duration and overflowed the first clock
/// addition it took part in, panicking that task.
#[test]
fn every_duration_key_has_an_upper_bound() {
    let huge = "\"300000000000years\"";
    let message = assert_error(
        &BASE.replace(
            "name = \"dock-pi-03\"",
            &format!("name = \"dock-pi-03\"\nhealth_interval = {huge}"),
        ),
        "gateway.health_interval",
    );
    assert!(message.contains("at most 7days"), "{message}");
    assert_error(
        &with(&format!("rescan_window = {huge}")),
        "readers[0] (door1-em).rescan_window",
    );
    assert_error(
        &with(&format!("scan_timeout = {huge}")),
        "readers[0] (door1-em).scan_timeout",
    );
    assert_error(
        &with("[spool]\nflush_interval = \"8days\""),
        "spool.flush_interval",
    );
    let at_bound = ok(&with("[spool]\nflush_interval = \"7days\""));
    assert_eq!(at_bound.spool.flush_interval, DURATION_MAX);
}

#[test]
fn missing_required_keys_name_the_key() {
    assert_error("[gateway]\nname = \"g\"\n", "gateway.site");
    assert_error("[mqtt]\nroot = \"x\"\n", "gateway");
    assert_error(
        &format!("{BASE}\n[[readers]]\nname = \"r2\"\nlocation = \"door1\"\nprotocol = \"em4100\""),
        "readers[1] (r2).path",
    );
}

// --- validation ---

#[test]
fn the_control_session_outlasts_a_restart_and_the_duration_cap_holds() {
    let error = assert_error(
        &with("[mqtt]\nsession_expiry = \"10s\""),
        "mqtt.session_expiry",
    );
    assert!(error.contains("at least 1m"), "{error}");
    assert_error(
        &with("[mqtt]\nsession_expiry = \"8days\""),
        "mqtt.session_expiry",
    );
    let config = ok(&with("[mqtt]\nsession_expiry = \"7days\""));
    assert_eq!(
        config.mqtt.session_expiry,
        Duration::from_secs(7 * 24 * 3600)
    );
}

#[test]
fn names_must_be_topic_safe() {
    assert_error(&BASE.replace("\"reno-1\"", "\"\""), "gateway.site");
    assert_error(
        &BASE.replace("\"dock-pi-03\"", "\"dock pi\""),
        "gateway.name",
    );
    assert_error(&with("[mqtt]\nroot = \"itad/x\""), "mqtt.root");
    assert_error(&with("[mqtt]\nclient_id = \"a+b\""), "mqtt.client_id");
    let toml = BASE.replace("name = \"door1\"", "name = \"door#1\"");
    assert_error(&toml, "locations[0].name");
    let toml = BASE.replace("\"door1-em\"", &format!("\"{}\"", "r".repeat(65)));
    assert_error(&toml, "readers[0].name");
}

#[test]
fn duplicates_are_rejected() {
    let toml = format!(
        "{BASE}
[[locations]]
name = \"door1\"
kind = \"cage_gate\"

[[readers]]
name = \"door1-em\"
location = \"door1\"
path = \"/dev/ttyUSB0\"
protocol = \"em4100\"
"
    );
    let errs = errors(&toml);
    error_at(&errs, "locations[1] (door1).name");
    error_at(&errs, "readers[1] (door1-em).name");
    let message = error_at(&errs, "readers[1] (door1-em).path");
    assert!(message.contains("readers[0]"), "{message}");
}

#[test]
fn readers_must_name_a_configured_location() {
    let toml = format!(
        "{BASE}
[[readers]]
name = \"door9-em\"
location = \"dock-9\"
path = \"/dev/ttyUSB1\"
protocol = \"em4100\"
"
    );
    let message = assert_error(&toml, "readers[1] (door9-em).location");
    assert!(
        message.starts_with("unknown location \"dock-9\""),
        "{message}"
    );
}

#[test]
fn broker_url_must_parse() {
    let message = assert_error(&with("[mqtt]\nurl = \"http://broker\""), "mqtt.url");
    assert!(message.contains("mqtts://"), "{message}");
    let config = ok(&with("[mqtt]\nurl = \"mqtt://[::1]:1884\""));
    assert_eq!(
        config.mqtt.broker(),
        Ok(Broker {
            host: "::1".into(),
            port: 1884,
            tls: false
        })
    );
}

#[test]
fn password_and_password_file_are_exclusive() {
    let toml = with(
        "[mqtt]\nusername = \"u\"\npassword = \"hunter2\"\npassword_file = \"/etc/custodyd/pw\"",
    );
    let errs = errors(&toml);
    error_at(&errs, "mqtt.password");
    assert!(!ConfigErrors(errs).to_string().contains("hunter2"));
}

#[test]
fn password_file_must_be_readable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let toml = with(&format!(
        "[mqtt]\nusername = \"u\"\npassword_file = {:?}",
        missing.display().to_string()
    ));
    let message = assert_error(&toml, "mqtt.password_file");
    assert!(message.contains("missing"), "{message}");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let toml = with(&format!(
        "[mqtt]\nusername = \"u\"\npassword_file = {:?}",
        empty.display().to_string()
    ));
    assert_error(&toml, "mqtt.password_file");
}

#[test]
fn password_comes_from_the_first_line_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "  s3cret \nignored\n").unwrap();
    let toml = with(&format!(
        "[mqtt]\nusername = \"u\"\npassword_file = {:?}",
        file.display().to_string()
    ));
    assert_eq!(ok(&toml).mqtt.password(), Ok(Some("s3cret".into())));
    let toml = with("[mqtt]\nusername = \"u\"\npassword = \"pw\"");
    assert_eq!(ok(&toml).mqtt.password(), Ok(Some("pw".into())));
}

#[test]
fn password_needs_a_username() {
    assert_error(&with("[mqtt]\npassword = \"pw\""), "mqtt.password");
}

#[test]
fn keep_alive_must_suit_rumqttc() {
    for bad in ["0s", "500ms", "1500ms", "70000s"] {
        assert_error(
            &with(&format!("[mqtt]\nkeep_alive = \"{bad}\"")),
            "mqtt.keep_alive",
        );
    }
    ok(&with("[mqtt]\nkeep_alive = \"1s\""));
}

#[test]
fn mqtt_numbers_are_bounded() {
    assert_error(&with("[mqtt]\ninflight = 0"), "mqtt.inflight");
    assert_error(&with("[mqtt]\ninflight = 1001"), "mqtt.inflight");
    ok(&with("[mqtt]\ninflight = 1000"));
    assert_error(
        &with("[mqtt]\nconnect_timeout = \"0s\""),
        "mqtt.connect_timeout",
    );
    assert_error(
        &with("[mqtt]\nreconnect_min = \"10s\"\nreconnect_max = \"5s\""),
        "mqtt.reconnect_min",
    );
    assert_error(
        &with("[mqtt]\nreconnect_min = \"0s\""),
        "mqtt.reconnect_min",
    );
    assert_error(
        &with("[spool]\nflush_max_events = 0"),
        "spool.flush_max_events",
    );
}

#[test]
fn the_mqtt_version_and_packet_limits_are_checked() {
    let v311 = ok(&with("[mqtt]\nprotocol = \"3.1.1\""));
    assert_eq!(v311.mqtt.protocol, MqttVersion::V311);
    assert!(
        v311.summary()
            .contains("warning: with mqtt.protocol = \"3.1.1\""),
        "{}",
        v311.summary()
    );
    let v5 = ok(&with(
        "[mqtt]\nprotocol = \"5\"\nmax_packet_size = \"1MiB\"",
    ));
    assert!(!v5.summary().contains("warning"), "{}", v5.summary());
    assert!(v5
        .summary()
        .contains("MQTT 5, packets up to 1MiB out, 256KiB in"));
    let bad = assert_error(&with("[mqtt]\nprotocol = \"4\""), "mqtt.protocol");
    assert!(bad.contains("expected one of: 5, 3.1.1"), "{bad}");
    for (key, size) in [
        ("max_packet_size", "1KiB"),
        ("max_incoming_packet_size", "1GiB"),
    ] {
        assert_error(
            &with(&format!("[mqtt]\n{key} = \"{size}\"")),
            &format!("mqtt.{key}"),
        );
    }
}

#[test]
fn reader_and_location_numbers_are_bounded() {
    assert_error(&with("baud = 0"), "readers[0] (door1-em).baud");
    assert_error(&with("max_len = 0"), "readers[0] (door1-em).max_len");
    assert_error(&with("max_len = 65537"), "readers[0] (door1-em).max_len");
    assert_error(
        &with("reopen_max = \"0s\""),
        "readers[0] (door1-em).reopen_max",
    );
    let toml = BASE.replace(
        "kind = \"dock_door\"",
        "kind = \"dock_door\"\ndeparture_timeout = \"0s\"",
    );
    assert_error(&toml, "locations[0] (door1).departure_timeout");
}

#[test]
fn prefix_and_suffix_only_apply_to_ascii_line() {
    let errs = errors(&with("prefix = \"\\u0002\"\nsuffix = \"x\""));
    error_at(&errs, "readers[0] (door1-em).prefix");
    error_at(&errs, "readers[0] (door1-em).suffix");
    ok(&BASE.replace("\"em4100\"", "\"ascii-line\"\nprefix = \"\\u0002\""));
}

// --- UHF readers ---

fn uhf(protocol: &str, extra: &str) -> String {
    with(&format!(
        "[[readers]]\nname = \"uhf1\"\nlocation = \"door1\"\npath = \"/dev/ttyUSB1\"\n\
         protocol = \"{protocol}\"\n{extra}"
    ))
}

/// `BASE` plus a HID scanner as `readers[1]`, followed by `extra` lines of it.
fn with_hid(extra: &str) -> String {
    with(&format!(
        "[[readers]]
name = \"scan1-hid\"
location = \"door1\"
kind = \"hid\"
path = \"/dev/input/by-id/usb-Honeywell_1900-event-kbd\"
{extra}"
    ))
}

#[test]
fn the_summary_lists_the_topics_the_gateway_uses() {
    let summary = ok(BASE).summary();
    for line in ["alarm    ", "health   ", "checkpoint ", "commands "] {
        assert!(summary.contains(line), "{line}: {summary}");
    }
    for line in ["pass     ", "release  ", "manifest "] {
        assert!(!summary.contains(line), "{line}: {summary}");
    }
}

#[test]
fn the_summary_gives_a_hid_scanner_no_baud_rate() {
    let summary = ok(&with_hid("")).summary();
    assert!(
        summary.contains("/dev/input/by-id/usb-Honeywell_1900-event-kbd\n"),
        "{summary}"
    );
}

#[test]
fn uhf_readers_take_protocol_defaults() {
    let config = ok(&uhf("uhf-a0", ""));
    let a0 = &config.readers[1];
    assert_eq!(a0.baud(), 115_200);
    assert_eq!(a0.mode(), ReadMode::Presence);
    assert_eq!(a0.antennas(), [1]);
    assert_eq!(a0.address(), 0xFF);
    assert_eq!(a0.reply_timeout(), Duration::from_secs(1));
    assert_eq!((a0.session, a0.target), (None, None));
    let config = ok(&uhf("chafon", ""));
    let chafon = &config.readers[1];
    assert_eq!(chafon.baud(), 57_600);
    assert_eq!(chafon.chafon_variant(), ChafonModel::Reader288);
    assert_eq!(config.readers[0].baud(), 9600);
    let config = ok(&uhf(
        "chafon",
        "baud = 115200\nantennas = [4, 1]\naddress = 0\nsession = 2\ntarget = \"B\"\n\
         reply_timeout = \"300ms\"\nchafon_variant = \"288\"",
    ));
    let chafon = &config.readers[1];
    assert_eq!((chafon.baud(), chafon.antennas()), (115_200, &[4, 1][..]));
    assert_eq!((chafon.address(), chafon.session), (0, Some(2)));
    assert_eq!(chafon.target, Some(Target::B));
    assert_eq!(chafon.reply_timeout(), Duration::from_millis(300));
    let summary = config.summary();
    assert!(
        summary.contains("/dev/ttyUSB0, 9600 baud\n")
            && summary.contains("/dev/ttyUSB1, 115200 baud, antennas [4, 1]"),
        "{summary}"
    );
    assert_eq!(
        ok(&uhf("chafon", "chafon_variant = \"18\"")).readers[1].chafon_variant(),
        ChafonModel::Reader18
    );
}

#[test]
fn uhf_keys_are_errors_on_other_protocols() {
    for key in [
        "antennas = [1]",
        "address = 1",
        "session = 1",
        "target = \"A\"",
        "reply_timeout = \"1s\"",
        "chafon_variant = \"288\"",
    ] {
        let name = key.split_once(' ').unwrap().0;
        let message = assert_error(&with(key), &format!("readers[0] (door1-em).{name}"));
        assert!(message.contains("only applies to"), "{message}");
    }
    assert_error(
        &uhf("uhf-a0", "chafon_variant = \"18\""),
        "readers[1] (uhf1).chafon_variant",
    );
}

#[test]
fn uhf_values_are_checked() {
    let at = |field: &str| format!("readers[1] (uhf1).{field}");
    ok(&uhf("uhf-a0", "antennas = [1, 2, 3, 4, 5, 6, 7, 8]"));
    for bad in ["[]", "[0]", "[9]", "[1, 1]"] {
        assert_error(
            &uhf("uhf-a0", &format!("antennas = {bad}")),
            &at("antennas"),
        );
    }
    assert_error(&uhf("chafon", "antennas = [5]"), &at("antennas"));
    assert_error(&uhf("uhf-a0", "session = 4"), &at("session"));
    assert_error(
        &uhf("uhf-a0", "reply_timeout = \"0s\""),
        &at("reply_timeout"),
    );
    assert_error(&uhf("uhf-a0", "target = \"C\""), &at("target"));
    assert_error(
        &uhf("chafon", "chafon_variant = \"86\""),
        &at("chafon_variant"),
    );
    let reader18 = "chafon_variant = \"18\"\n";
    for extra in ["antennas = [2]", "session = 1", "target = \"B\""] {
        let name = extra.split_once(' ').unwrap().0;
        assert_error(&uhf("chafon", &format!("{reader18}{extra}")), &at(name));
    }
}

#[test]
fn hid_readers_take_the_documented_defaults() {
    let config = ok(&with_hid(""));
    let hid = &config.readers[1];
    assert_eq!(hid.kind, ReaderKind::Hid);
    assert_eq!(hid.protocol, None);
    assert_eq!(hid.mode(), ReadMode::Scan);
    assert_eq!(hid.end_on(), EndOn::Enter);
    assert_eq!(hid.gs_substitute(), "\u{1d}");
    assert_eq!(hid.scan_timeout(), Duration::from_millis(500));
    assert_eq!(hid.max_len, 128);
    assert_eq!(hid.input_name(), "hid");

    let config = ok(&with_hid(
        "end_on = \"enter_or_tab\"\ngs_substitute = \"|\"\nscan_timeout = \"1s\"\nmode = \"presence\"",
    ));
    let hid = &config.readers[1];
    assert_eq!(hid.end_on(), EndOn::EnterOrTab);
    assert_eq!(hid.gs_substitute(), "|");
    assert_eq!(hid.scan_timeout(), Duration::from_secs(1));
    assert_eq!(hid.mode(), ReadMode::Presence);
}

#[test]
fn serial_keys_are_errors_on_hid_readers_and_say_what_to_use() {
    let errs = errors(&with_hid(
        "protocol = \"ascii-line\"\nbaud = 9600\nterminator = \"cr\"\nprefix = \"x\"",
    ));
    let label = "readers[1] (scan1-hid)";
    let message = error_at(&errs, &format!("{label}.protocol"));
    assert!(message.contains("kind = \"hid\""), "{message}");
    error_at(&errs, &format!("{label}.baud"));
    let message = error_at(&errs, &format!("{label}.terminator"));
    assert!(message.contains("end_on"), "{message}");
    // prefix only applies to ascii-line, which a HID reader is not.
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn hid_keys_are_errors_on_serial_readers() {
    let errs = errors(&with(
        "end_on = \"tab\"\ngs_substitute = \"|\"\nscan_timeout = \"1s\"",
    ));
    for key in ["end_on", "gs_substitute", "scan_timeout"] {
        let message = error_at(&errs, &format!("readers[0] (door1-em).{key}"));
        assert!(message.contains("kind = \"hid\""), "{message}");
    }
}

#[test]
fn serial_readers_need_a_protocol() {
    let message = assert_error(
        &BASE.replace("protocol = \"em4100\"\n", ""),
        "readers[0] (door1-em).protocol",
    );
    assert!(
        message.contains("em4100") && message.contains("hid"),
        "{message}"
    );
    // `kind = "serial"` is the default, and may be spelled out.
    ok(&with("kind = \"serial\""));
}

#[test]
fn hid_values_are_checked() {
    let label = "readers[1] (scan1-hid)";
    assert_error(
        &with_hid("scan_timeout = \"0s\""),
        &format!("{label}.scan_timeout"),
    );
    assert_error(
        &with_hid("gs_substitute = \"\""),
        &format!("{label}.gs_substitute"),
    );
    assert_error(&with_hid("max_len = 0"), &format!("{label}.max_len"));
    let message = assert_error(&with_hid("end_on = \"cr\""), &format!("{label}.end_on"));
    assert!(message.contains("enter_or_tab"), "{message}");
    let toml = with_hid("").replace("\"hid\"", "\"usb\"");
    let message = assert_error(&toml, &format!("{label}.kind"));
    assert!(message.contains("serial, hid"), "{message}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let toml = with("baud = 0\n[mqtt]\ninflight = 0\nurl = \"x\"\n[spool]\nflush_max_events = 0");
    let keys: Vec<String> = errors(&toml).into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        [
            "mqtt.url",
            "mqtt.inflight",
            "spool.flush_max_events",
            "readers[0] (door1-em).baud"
        ]
    );
}

// --- summary and secrecy ---

#[test]
fn summary_shows_the_topics_and_never_the_password() {
    let toml = with(
        "[mqtt]\nurl = \"mqtts://broker.lan\"\nusername = \"custodyd\"\npassword = \"hunter2\"",
    );
    let config = ok(&toml);
    let summary = config.summary();
    for expected in [
        "reno-1",
        "dock-pi-03",
        "broker.lan:8883 (TLS, system CAs)",
        "itad/reno-1/dock-pi-03/status",
        "itad/reno-1/dock-pi-03/custody/+",
        "door1",
        "dock_door",
        "between yard (outside) and receiving (inside)",
        "door1-em",
        "em4100",
        "presence",
        "/dev/ttyUSB0",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} missing:\n{summary}"
        );
    }
    assert!(!summary.contains("hunter2"), "{summary}");
    assert!(!format!("{config:?}").contains("hunter2"));
}

// --- portals ---

#[test]
fn portals_need_two_distinct_topic_safe_zones() {
    let toml = BASE.replace("outside_zone = \"yard\"\ninside_zone = \"receiving\"\n", "");
    let errs = errors(&toml);
    let message = error_at(&errs, "locations[0] (door1).outside_zone");
    assert!(message.contains("dock_door"), "{message}");
    error_at(&errs, "locations[0] (door1).inside_zone");
    let toml = BASE.replace("\"receiving\"", "\"yard\"");
    assert_error(&toml, "locations[0] (door1).inside_zone");
    let toml = BASE.replace("\"receiving\"", "\"bay/2\"");
    assert_error(&toml, "locations[0] (door1).inside_zone");
    let config = ok(BASE);
    let door = &config.locations[0];
    assert!(door.kind.is_portal());
    assert_eq!(door.outside_zone.as_deref(), Some("yard"));
    assert_eq!(door.static_after(), Duration::from_secs(30));
    assert_eq!(door.order_margin(), Duration::from_millis(300));
    assert_eq!(door.rssi_floor, None);
}

#[test]
fn direction_keys_are_checked_and_only_apply_at_portals() {
    let toml = BASE.replace(
        "inside_zone = \"receiving\"",
        "inside_zone = \"receiving\"\nrssi_floor = -75\nstatic_after = \"1m\"\norder_margin = \"0s\"",
    );
    let door = &ok(&toml).locations[0];
    assert_eq!(door.rssi_floor, Some(-75.0));
    assert_eq!(door.static_after(), Duration::from_secs(60));
    assert_eq!(door.order_margin(), Duration::ZERO);
    let toml = BASE.replace(
        "inside_zone = \"receiving\"",
        "inside_zone = \"receiving\"\nrssi_floor = 3.5\nstatic_after = \"0s\"",
    );
    let errs = errors(&toml);
    error_at(&errs, "locations[0] (door1).rssi_floor");
    error_at(&errs, "locations[0] (door1).static_after");

    let station = format!(
        "{BASE}\n[[locations]]\nname = \"scan-1\"\nkind = \"scan_station\"\n\
         outside_zone = \"a\"\ninside_zone = \"b\"\nrssi_floor = -70\nstatic_after = \"5s\"\n\
         order_margin = \"1s\""
    );
    let errs = errors(&station);
    for key in [
        "outside_zone",
        "inside_zone",
        "rssi_floor",
        "static_after",
        "order_margin",
    ] {
        let message = error_at(&errs, &format!("locations[1] (scan-1).{key}"));
        assert!(message.contains("cage_gate"), "{message}");
    }
}

#[test]
fn sides_name_the_readers_antennas() {
    let config = ok(&uhf(
        "uhf-a0",
        "antennas = [1, 2, 3]\nsides = { 1 = \"outside\", 2 = \"inside\" }",
    ));
    assert_eq!(
        config.readers[1].antenna_sides(),
        [(1, Side::Outside), (2, Side::Inside)]
    );
    let config = ok(&with("side = \"inside\""));
    assert_eq!(config.readers[0].side, Some(Side::Inside));

    let message = assert_error(
        &uhf(
            "uhf-a0",
            "antennas = [1, 2]\nsides = { 1 = \"outside\", 3 = \"inside\" }",
        ),
        "readers[1] (uhf1).sides",
    );
    assert!(
        message.contains("\"3\"") && message.contains("[1, 2]"),
        "{message}"
    );
    assert_error(
        &uhf("chafon", "sides = { x = \"outside\" }"),
        "readers[1] (uhf1).sides",
    );
    assert_error(
        &uhf("uhf-a0", "side = \"outside\"\nsides = { 1 = \"outside\" }"),
        "readers[1] (uhf1).sides",
    );
    let message = assert_error(
        &with("sides = { 1 = \"outside\" }"),
        "readers[0] (door1-em).sides",
    );
    assert!(message.contains("use side"), "{message}");
    assert_error(
        &uhf(
            "chafon",
            "chafon_variant = \"18\"\nsides = { 1 = \"outside\" }",
        ),
        "readers[1] (uhf1).sides",
    );
    assert_error(
        &with("mode = \"scan\"\nside = \"outside\""),
        "readers[0] (door1-em).side",
    );
    let message = assert_error(&with("side = \"up\""), "readers[0] (door1-em).side");
    assert!(message.contains("outside"), "{message}");
}

#[test]
fn sides_only_apply_at_portals() {
    let toml = format!(
        "{BASE}\n[[locations]]\nname = \"scan-1\"\nkind = \"scan_station\"\n\
         [[readers]]\nname = \"r2\"\nlocation = \"scan-1\"\npath = \"/dev/ttyUSB2\"\n\
         protocol = \"em4100\"\nside = \"outside\""
    );
    let message = assert_error(&toml, "readers[1] (r2).side");
    assert!(message.contains("scan_station"), "{message}");
}

#[test]
fn gpio_defaults_to_the_pi_and_is_not_used_without_pins() {
    let config = ok(BASE);
    assert_eq!(config.gpio.backend, GpioBackend::Cdev);
    assert_eq!(config.gpio.chip(), std::path::Path::new("/dev/gpiochip0"));
    assert_eq!(config.gpio.debounce, Duration::from_millis(20));
    assert!(!config.uses_gpio());
    let sim = ok(&with(
        "[gpio]\nbackend = \"sim\"\nsim_socket = \"/tmp/g.sock\"",
    ));
    assert_eq!(sim.gpio.backend, GpioBackend::Sim);
}

#[test]
fn gpio_keys_are_checked() {
    assert!(
        assert_error(&with("[gpio]\nbackend = \"sim\""), "gpio.sim_socket").contains("required")
    );
    assert!(assert_error(
        &with("[gpio]\nsim_socket = \"/tmp/g.sock\""),
        "gpio.sim_socket"
    )
    .contains("only applies"));
    assert!(assert_error(&with("[gpio]\ndebounce = \"2s\""), "gpio.debounce").contains("at most"));
    let unknown = assert_error(&with("[gpio]\nbackend = \"pigpio\""), "gpio.backend");
    assert!(
        unknown.contains("one of: cdev") && unknown.contains("sim"),
        "{unknown}"
    );
    assert!(assert_error(
        &with("[gpio]\nbackend = \"sim\"\nsim_socket = \"/tmp/g.sock\"\nchip = \"/dev/gpiochip1\""),
        "gpio.chip"
    )
    .contains("only applies"));
}

#[test]
fn gpio_cdev_takes_a_chip_and_the_old_rppal_name() {
    let pi5 = ok(&with(
        "[gpio]\nbackend = \"cdev\"\nchip = \"/dev/gpiochip4\"",
    ));
    assert_eq!(pi5.gpio.chip(), std::path::Path::new("/dev/gpiochip4"));
    // Configurations written for the rppal backend keep working: its BCM
    // numbers are the header chip's line offsets.
    let old = ok(&with("[gpio]\nbackend = \"rppal\""));
    assert_eq!(old.gpio.backend, GpioBackend::Cdev);
    assert_eq!(old.gpio.chip(), std::path::Path::new("/dev/gpiochip0"));
}

/// A cage gate with every pin, and a release reader; `gate_extra` adds keys
/// to the gate table.
/// The RFC 8032 test 1 public key.
const CENTRAL_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

fn cage(gate_extra: &str) -> String {
    format!(
        r#"{BASE}
[trust]
central_keys = {{ central-1 = "{CENTRAL_KEY}" }}

[[readers]]
name = "cage1-scan"
location = "cage-1"
path = "/dev/ttyACM0"
protocol = "ascii-line"
mode = "release"

[[locations]]
name = "cage-1"
kind = "cage_gate"
outside_zone = "floor"
inside_zone = "secure-cage"

[locations.gate]
lock_pin = 5
green_pin = 6
red_pin = 13
buzzer_pin = 19
door_sensor = {{ pin = 26, active = "high" }}
{gate_extra}
"#
    )
}

#[test]
fn a_cage_gate_needs_central_keys_or_unsigned_allowed_on_purpose() {
    let config = ok(&cage(""));
    assert!(config.trust.unwrap().central_keys.contains_key("central-1"));
    let keyless = cage("").replace(
        &format!("central_keys = {{ central-1 = \"{CENTRAL_KEY}\" }}"),
        "",
    );
    let e = error_at(&errors(&keyless), "trust.central_keys");
    assert!(e.contains("allow_unsigned"), "{e}");
    let no_table = keyless.replace("[trust]", "");
    error_at(&errors(&no_table), "trust.central_keys");
    ok(&keyless.replace("[trust]", "[trust]\nallow_unsigned = true"));
    let bad = cage("")
        .replace(CENTRAL_KEY, "AAAA")
        .replace("central-1", "\"central 1\"");
    let errors = errors(&bad);
    let e = error_at(&errors, "trust.central_keys.central 1");
    assert!(e.contains("3 bytes") || e.contains("contains"), "{e}");
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn gates_take_the_documented_defaults() {
    let config = ok(&cage(""));
    let gate = config.locations[1].gate.as_ref().unwrap();
    assert!(gate.active_low);
    assert_eq!(gate.unlock_pulse, Duration::from_secs(5));
    assert_eq!(gate.deny_signal, Duration::from_secs(3));
    assert_eq!(gate.unknown, UnknownAsset::Deny);
    assert_eq!(gate.override_max, Duration::from_secs(300));
    assert_eq!(gate.unsynced_expiry, super::UnsyncedExpiry::Deny);
    let door = gate.door_sensor.as_ref().unwrap();
    assert_eq!(
        (door.active, door.pull, door.debounce),
        (ActiveLevel::High, Pull::Up, None)
    );
    assert_eq!(config.readers[1].mode(), ReadMode::Release);
    assert!(config.uses_gpio());
    assert_eq!(
        config.locations[1].gpio_pins(),
        [
            ("gate.lock_pin".to_string(), 5),
            ("gate.green_pin".to_string(), 6),
            ("gate.red_pin".to_string(), 13),
            ("gate.buzzer_pin".to_string(), 19),
            ("gate.door_sensor.pin".to_string(), 26),
        ]
    );
}

#[test]
fn pins_are_on_the_header_and_used_once() {
    let e = assert_error(
        &cage("").replace("red_pin = 13", "red_pin = 6"),
        "locations[1] (cage-1).gate.red_pin",
    );
    assert!(
        e.contains("GPIO 6 is already used by locations[1] (cage-1).gate.green_pin"),
        "{e}"
    );
    let e = assert_error(
        &cage("").replace("buzzer_pin = 19", "buzzer_pin = 28"),
        "locations[1] (cage-1).gate.buzzer_pin",
    );
    assert!(e.contains("0 to 27"), "{e}");
    let e = assert_error(
        &cage("").replace("pin = 26", "pin = 5"),
        "locations[1] (cage-1).gate.door_sensor.pin",
    );
    assert!(e.contains("already used"), "{e}");
}

#[test]
fn gate_keys_are_checked() {
    let e = assert_error(
        &cage("").replace("cage_gate", "dock_door"),
        "locations[1] (cage-1).gate",
    );
    assert!(e.contains("only applies to kind = \"cage_gate\""), "{e}");
    for (extra, key) in [
        ("unlock_pulse = \"0s\"", "unlock_pulse"),
        ("deny_signal = \"2m\"", "deny_signal"),
        ("override_max = \"2h\"", "override_max"),
    ] {
        let e = assert_error(&cage(extra), &format!("locations[1] (cage-1).gate.{key}"));
        assert!(e.contains("at most"), "{e}");
    }
    let e = assert_error(
        &cage("").replace("active = \"high\"", "active = \"high\", debounce = \"3s\""),
        "locations[1] (cage-1).gate.door_sensor.debounce",
    );
    assert!(e.contains("at most 1s"), "{e}");
    let e = assert_error(
        &cage("unknown = \"maybe\""),
        "locations[1] (cage-1).gate.unknown",
    );
    assert!(e.contains("deny, allow"), "{e}");
    let e = assert_error(&cage("lock_pn = 5"), "locations[1] (cage-1).gate.lock_pn");
    assert!(e.contains("unknown key"), "{e}");
}

#[test]
fn release_readers_need_a_gate() {
    let text = cage("").replace(
        "[locations.gate]\nlock_pin = 5\ngreen_pin = 6\nred_pin = 13\nbuzzer_pin = 19\ndoor_sensor = { pin = 26, active = \"high\" }\n",
        "",
    );
    let e = assert_error(&text, "readers[1] (cage1-scan).mode");
    assert!(
        e.contains("needs a cage_gate location with a gate table"),
        "{e}"
    );
}

#[test]
fn health_interval_defaults_to_a_minute_and_is_bounded() {
    let config = ok(BASE);
    assert_eq!(config.gateway.health_interval, Duration::from_secs(60));
    let toml = BASE.replace(
        "name = \"dock-pi-03\"",
        "name = \"dock-pi-03\"\nhealth_interval = \"5s\"",
    );
    assert_eq!(ok(&toml).gateway.health_interval, Duration::from_secs(5));
    let toml = BASE.replace(
        "name = \"dock-pi-03\"",
        "name = \"dock-pi-03\"\nhealth_interval = \"100ms\"",
    );
    let message = assert_error(&toml, "gateway.health_interval");
    assert!(message.contains("at least 1s"), "{message}");
}

#[test]
fn checkpoint_interval_defaults_to_a_minute_and_is_bounded() {
    assert_eq!(ok(BASE).audit.checkpoint_interval, Duration::from_secs(60));
    let config = ok(&with("[audit]\ncheckpoint_interval = \"5m\""));
    assert_eq!(config.audit.checkpoint_interval, Duration::from_secs(300));
    for bad in ["100ms", "2days"] {
        let toml = with(&format!("[audit]\ncheckpoint_interval = \"{bad}\""));
        let message = assert_error(&toml, "audit.checkpoint_interval");
        assert!(message.contains("from 1s to 1day"), "{message}");
    }
}

// --- TLS keys and exposed secrets ---

#[test]
fn tls_keys_need_mqtts_and_come_in_pairs() {
    for key in ["ca_file", "client_cert_file", "client_key_file"] {
        let toml = with(&format!(
            "[mqtt]\nurl = \"mqtt://broker\"\n{key} = \"/etc/x.pem\""
        ));
        let message = assert_error(&toml, &format!("mqtt.{key}"));
        assert!(message.contains("mqtts://"), "{message}");
    }
    let mqtts = "[mqtt]\nurl = \"mqtts://broker\"\n";
    let message = assert_error(
        &with(&format!("{mqtts}client_key_file = \"/etc/k.pem\"")),
        "mqtt.client_cert_file",
    );
    assert!(message.contains("mqtt.client_key_file"), "{message}");
    assert_error(
        &with(&format!("{mqtts}client_cert_file = \"/etc/c.pem\"")),
        "mqtt.client_key_file",
    );
}

/// `toml` written to a file of `mode`, loaded with `env`; the warnings.
fn exposed(toml: &str, mode: u32, env: &[(&str, &str)]) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), toml).unwrap();
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let config = load_with_env(file.path(), env).unwrap_or_else(|e| panic!("{e}"));
    exposed_secrets(file.path(), &config)
}

#[test]
fn a_password_in_a_file_others_can_read_is_warned_about() {
    let toml = with("[mqtt]\nusername = \"u\"\npassword = \"hunter2\"");
    let warnings = exposed(&toml, 0o644, &[]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("mqtt.password: "), "{warnings:?}");
    assert!(warnings[0].contains("(mode 0644)"), "{warnings:?}");
    assert!(!warnings[0].contains("hunter2"), "{warnings:?}");

    assert!(exposed(&toml, 0o640, &[]).is_empty());
    // Set from the environment, it is not in the file.
    let toml = with("[mqtt]\nusername = \"u\"");
    let env = [("CUSTODYD__MQTT__PASSWORD", "hunter2")];
    assert!(exposed(&toml, 0o644, &env).is_empty());
}

#[test]
fn a_password_over_plain_mqtt_to_another_host_is_warned_about() {
    let toml = |url: &str| with(&format!("[mqtt]\nurl = \"{url}\"\nusername = \"u\""));
    let env = [("CUSTODYD__MQTT__PASSWORD", "hunter2")];
    let warnings = exposed(&toml("mqtt://broker.example.com"), 0o600, &env);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("mqtt.url: "), "{warnings:?}");
    assert!(warnings[0].contains("clear text"), "{warnings:?}");
    assert!(!warnings[0].contains("hunter2"), "{warnings:?}");
    assert_eq!(exposed(&toml("tcp://10.0.0.5:1883"), 0o600, &env).len(), 1);
    for quiet in [
        "mqtts://broker.example.com",
        "mqtt://127.0.0.1",
        "mqtt://[::1]:1883",
    ] {
        assert!(exposed(&toml(quiet), 0o600, &env).is_empty(), "{quiet}");
    }
    assert!(
        exposed(&toml("mqtt://broker.example.com"), 0o600, &[]).is_empty(),
        "no password, nothing to leak"
    );
}

#[test]
fn a_password_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret\n").unwrap();
    let toml = with(&format!(
        "[mqtt]\nusername = \"u\"\npassword_file = {:?}",
        file.display().to_string()
    ));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o604)).unwrap();
    let warnings = exposed(&toml, 0o644, &[]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("mqtt.password_file: "),
        "{warnings:?}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(exposed(&toml, 0o644, &[]).is_empty());
}

#[test]
fn read_windows_take_the_documented_defaults_and_claim_their_pins() {
    let toml = BASE.replace(
        "inside_zone = \"receiving\"",
        "inside_zone = \"receiving\"\n\
         beams = { outer = { pin = 17, active = \"low\" }, inner = { pin = 27, active = \"low\" } }\n\
         window = { trigger = { pin = 22, active = \"high\" } }",
    );
    let config = ok(&toml);
    let door = &config.locations[0];
    let window = door.window.as_ref().unwrap();
    assert_eq!(window.quiet_after, Duration::from_secs(2));
    assert_eq!(window.max_window, Duration::from_secs(30));
    assert_eq!(window.silent_after, 3);
    assert_eq!(window.trigger.as_ref().unwrap().pin, 22);
    assert!(config.uses_gpio());
    let pins: Vec<u8> = door.gpio_pins().iter().map(|(_, pin)| *pin).collect();
    assert_eq!(pins, [22, 17, 27]);
    // A pin used twice names both keys.
    let message = assert_error(
        &toml.replace("pin = 27", "pin = 17"),
        "locations[0] (door1).beams.inner.pin",
    );
    assert!(message.contains("beams.outer.pin"), "{message}");
}

#[test]
fn read_window_keys_are_checked() {
    let door = |extra: &str| {
        BASE.replace(
            "inside_zone = \"receiving\"",
            &format!("inside_zone = \"receiving\"\n{extra}"),
        )
    };
    let message = assert_error(&door("window = {}"), "locations[0] (door1).window.trigger");
    assert!(message.contains("beams"), "{message}");
    assert_error(
        &door("beams = { outer = { pin = 17, active = \"low\" }, inner = { pin = 27, active = \"low\" } }"),
        "locations[0] (door1).beams",
    );
    let errs = errors(&door(
        "window = { trigger = { pin = 22, active = \"low\", debounce = \"2s\" }, \
         quiet_after = \"5s\", max_window = \"1s\", silent_after = 0 }",
    ));
    for key in ["debounce", "max_window", "silent_after"] {
        let key = match key {
            "debounce" => "window.trigger.debounce".to_string(),
            other => format!("window.{other}"),
        };
        error_at(&errs, &format!("locations[0] (door1).{key}"));
    }
    assert_error(
        &door("window = { trigger = { pin = 22, active = \"low\" }, quiet_after = \"0s\" }"),
        "locations[0] (door1).window.quiet_after",
    );
    let station = format!(
        "{BASE}\n[[locations]]\nname = \"scan-1\"\nkind = \"scan_station\"\n\
         window = {{ trigger = {{ pin = 22, active = \"low\" }} }}"
    );
    assert_error(&station, "locations[1] (scan-1).window");
}
