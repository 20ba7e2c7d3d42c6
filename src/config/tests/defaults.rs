//! The documented defaults, the reference file and the enum spellings.

use super::*;

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
