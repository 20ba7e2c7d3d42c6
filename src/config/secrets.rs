//! Secrets that every user of the Pi, or everyone on the network path to
//! the broker, can read.
//!
//! Not errors: a technician must still be able to start a gateway whose
//! file permissions are not perfect yet. The daemon logs these at start-up and
//! `check-config` prints them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ::config::{File, FileFormat};

use super::{Config, MqttConfig};

/// The "others" read bit.
const OTHERS_READ: u32 = 0o004;

/// One line per secret that other local users can read, naming its key: a
/// `mqtt.password` written in the configuration file at `path` (not one set
/// from the environment), the `mqtt.password_file` or the `mqtt.client_key_file`;
/// and a password that plain `mqtt://` sends to another host in clear text.
pub fn exposed_secrets(path: &Path, config: &Config) -> Vec<String> {
    let mut warnings: Vec<String> = cleartext_password(&config.mqtt).into_iter().collect();
    if let Some(mode) = readable_by_others(path) {
        if file_holds_password(path) {
            warnings.push(format!(
                "mqtt.password: {} holds the password and every local user can read it \
                 (mode {mode:04o}); chmod o-r it, or move the password to mqtt.password_file",
                path.display()
            ));
        }
    }
    let files = [
        ("mqtt.password_file", &config.mqtt.password_file),
        ("mqtt.client_key_file", &config.mqtt.client_key_file),
    ];
    for (key, file) in files {
        let Some(file) = file else { continue };
        if let Some(mode) = readable_by_others(file) {
            warnings.push(format!(
                "{key}: every local user can read {} (mode {mode:04o}); chmod o-r it",
                file.display()
            ));
        }
    }
    warnings
}

/// MQTT's CONNECT carries the password as it is: over plain `mqtt://`
/// anyone on the path to the broker reads it. A broker on the Pi itself
/// (loopback) is not on a network path.
fn cleartext_password(mqtt: &MqttConfig) -> Option<String> {
    if mqtt.password.is_none() && mqtt.password_file.is_none() {
        return None;
    }
    let broker = mqtt.broker().ok()?;
    let loopback = broker.host == "localhost"
        || broker
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if broker.tls || loopback {
        return None;
    }
    Some(format!(
        "mqtt.url: the password is sent to {broker} over plain MQTT, in clear text that anyone on \
         the network path can read; use mqtts:// (with mqtt.ca_file for a private CA)"
    ))
}

/// The permission bits of `path` when others may read it.
fn readable_by_others(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & OTHERS_READ != 0).then_some(mode)
}

/// Whether the file itself sets `mqtt.password`; the loaded configuration
/// cannot tell, as an environment override looks the same there.
fn file_holds_password(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    ::config::Config::builder()
        .add_source(File::from_str(&text, FileFormat::Toml))
        .build()
        .is_ok_and(|file| file.get_string("mqtt.password").is_ok())
}
