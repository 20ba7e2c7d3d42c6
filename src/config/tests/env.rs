//! Environment overrides.

use super::*;

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
