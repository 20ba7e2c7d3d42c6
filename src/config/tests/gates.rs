//! GPIO pins and cage gates.

use super::*;

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

/// The RFC 8032 test 1 public key.
const CENTRAL_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/// A cage gate with every pin, and a release reader; `gate_extra` adds keys
/// to the gate table.
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
