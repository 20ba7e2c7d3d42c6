//! Station context keys: `[station]`, `[operators]`, the station keys of a
//! location and `role` of a reader.

use super::*;

/// A scan station with a scanner and a badge reader, after [`BASE`]'s door.
const STATION: &str = r#"
[[locations]]
name = "scan-1"
kind = "scan_station"

[[readers]]
name = "scan1-badge"
location = "scan-1"
path = "/dev/ttyUSB7"
protocol = "em4100"
role = "badge"
"#;

#[test]
fn station_keys_take_the_documented_defaults() {
    let config = ok(&with(STATION));
    assert_eq!(config.station.action_prefix, "ACT:");
    for action in [
        "received",
        "quarantined",
        "wiped",
        "shredded",
        "tested",
        "packed",
    ] {
        assert!(
            config.station.actions.iter().any(|a| a == action),
            "{action}"
        );
    }
    assert!(config.station.container_prefixes.is_empty());
    assert!(config.operators.is_empty());
    let (door, station) = (&config.locations[0], &config.locations[1]);
    assert!(!door.is_station() && station.is_station());
    assert_eq!(station.operator_timeout(), Duration::from_secs(1800));
    assert!(!station.require_operator());
    assert_eq!(config.readers[0].role, ReaderRole::Asset);
    assert_eq!(config.readers[1].role, ReaderRole::Badge);
}

#[test]
fn station_keys_are_read() {
    let config = ok(&format!(
        r#"{BASE}
[[locations]]
name = "cage-1"
kind = "cage_gate"
outside_zone = "floor"
inside_zone = "cage"
station = true
operator_timeout = "10m"
require_operator = true

[[readers]]
name = "cage1-badge"
location = "cage-1"
path = "/dev/ttyUSB7"
protocol = "em4100"
role = "badge"

[station]
action_prefix = "DO:"
actions = ["wiped", "Shredded"]
container_prefixes = ["GAY-", "PAL-"]

[operators]
"62E3086CED" = "op-ann"
"0a0b0c0d0e" = "op-bob"

[trust]
allow_unsigned = true
"#
    ));
    let cage = &config.locations[1];
    assert!(cage.is_station() && cage.require_operator());
    assert_eq!(cage.operator_timeout(), Duration::from_secs(600));
    assert_eq!(config.station.action_prefix, "DO:");
    assert_eq!(config.station.actions, ["wiped", "Shredded"]);
    assert_eq!(config.station.container_prefixes, ["GAY-", "PAL-"]);
    // Badge numbers keep their case as written (matching ignores it).
    assert_eq!(config.operators["62E3086CED"], "op-ann");
    assert_eq!(config.operators["0a0b0c0d0e"], "op-bob");
}

#[test]
fn station_keys_are_errors_where_there_is_no_station() {
    let errs = errors(&with(
        r#"role = "badge"
mode = "scan"

[[locations]]
name = "door2"
kind = "dock_door"
station = true
operator_timeout = "5m"
require_operator = true

[[locations]]
name = "scan-1"
kind = "scan_station"
station = true
"#,
    ));
    let msg = error_at(&errs, "readers[0] (door1-em).role");
    assert!(msg.contains("must be at a station"), "{msg}");
    let msg = error_at(&errs, "readers[0] (door1-em).mode");
    assert!(msg.contains("badge"), "{msg}");
    for key in ["station", "operator_timeout", "require_operator"] {
        error_at(&errs, &format!("locations[1] (door2).{key}"));
    }
    let msg = error_at(&errs, "locations[2] (scan-1).station");
    assert!(msg.contains("cage_gate"), "{msg}");
}

#[test]
fn station_values_are_checked() {
    let errs = errors(&format!(
        r#"{BASE}
[[locations]]
name = "scan-1"
kind = "scan_station"
operator_timeout = "0s"
require_operator = true

[station]
action_prefix = "ACT:"
actions = ["wiped", "WIPED", "Clear", "no spaces"]
container_prefixes = ["", "act:x"]

[operators]
"62E3086CED" = "op-ann"
"62e3086ced" = "op-bob"
"0A0B0C0D0E" = "op with space"
"#
    ));
    error_at(&errs, "locations[1] (scan-1).operator_timeout");
    let msg = error_at(&errs, "locations[1] (scan-1).require_operator");
    assert!(msg.contains("badge"), "{msg}");
    assert!(error_at(&errs, "station.actions[1]").contains("twice"));
    assert!(error_at(&errs, "station.actions[2]").contains("reserved"));
    error_at(&errs, "station.actions[3]");
    error_at(&errs, "station.container_prefixes[0]");
    assert!(error_at(&errs, "station.container_prefixes[1]").contains("overlaps"));
    let dup = errs
        .iter()
        .find(|e| e.key.starts_with("operators.") && e.message.contains("twice"));
    assert!(dup.is_some(), "{}", ConfigErrors(errs.clone()));
    error_at(&errs, "operators.0A0B0C0D0E");

    let errs = errors(&with("[station]\naction_prefix = \"\"\nactions = []"));
    error_at(&errs, "station.action_prefix");
    error_at(&errs, "station.actions");
    let msg = error_at(
        &errors(&with("role = \"guest\"")),
        "readers[0] (door1-em).role",
    );
    assert!(msg.contains("badge"), "{msg}");
}

#[test]
fn manifest_timeout_is_for_dock_doors_with_read_windows() {
    let window = "window = { trigger = { pin = 22, active = \"low\" } }";
    let door = |keys: &str| {
        let gpio = "[gpio]\nbackend = \"sim\"\nsim_socket = \"/tmp/gpio.sock\"\n";
        format!(
            "{gpio}{}",
            BASE.replace(
                "inside_zone = \"receiving\"",
                &format!("inside_zone = \"receiving\"\n{keys}")
            )
        )
    };
    let config = ok(&door(window));
    assert!(config.locations[0].takes_manifests());
    assert_eq!(
        config.locations[0].manifest_timeout(),
        Duration::from_secs(7200)
    );
    let config = ok(&door(&format!("{window}\nmanifest_timeout = \"45m\"")));
    assert_eq!(
        config.locations[0].manifest_timeout(),
        Duration::from_secs(2700)
    );
    let key = "locations[0] (door1).manifest_timeout";
    assert_error(&door(&format!("{window}\nmanifest_timeout = \"0s\"")), key);
    let msg = assert_error(&door("manifest_timeout = \"1h\""), key);
    assert!(msg.contains("read windows"), "{msg}");
}
