//! TLS keys and exposed secrets.

use super::*;

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
