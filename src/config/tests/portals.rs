//! Portals: zones, direction keys, sides and read windows.

use super::*;

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
