//! Validation of the gateway, mqtt, spool, audit and reader keys.

use super::*;

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
