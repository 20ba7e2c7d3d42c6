//! File-level and deserialization errors.

use super::*;

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
