//! The checks of `[mqtt]`.

use std::time::Duration;

use humantime::format_duration;

use super::MqttConfig;
use crate::config::validate::{check_name, Errors};
use crate::config::ByteSize;

/// rumqttc 0.25 asserts in `MqttOptions::set_keep_alive` that the keep-alive is
/// zero or at least a second, and sends it as whole seconds in a `u16`.
const KEEP_ALIVE_MIN: Duration = Duration::from_secs(1);
const KEEP_ALIVE_MAX: Duration = Duration::from_secs(u16::MAX as u64);
const INFLIGHT_MAX: u16 = 1000;
/// Longer than a restart of the service: less would drop the control
/// session between two runs.
const SESSION_EXPIRY_MIN: Duration = Duration::from_secs(60);
/// Room for any event the gateway makes of a normal read; less would set
/// ordinary events aside as too large.
const PACKET_MIN: ByteSize = ByteSize(4 << 10);
/// The largest packet MQTT can carry (a remaining length of 268,435,455).
const PACKET_MAX: ByteSize = ByteSize(268_435_455);

pub(in crate::config) fn check_mqtt(errors: &mut Errors, mqtt: &MqttConfig) {
    match mqtt.broker() {
        Err(e) => errors.push("mqtt.url", e),
        Ok(broker) if broker.tls => {
            if let Err(tls) = mqtt.tls_config() {
                errors.extend(tls.0);
            }
        }
        Ok(_) => {
            for (key, set) in [
                ("mqtt.ca_file", mqtt.ca_file.is_some()),
                ("mqtt.client_cert_file", mqtt.client_cert_file.is_some()),
                ("mqtt.client_key_file", mqtt.client_key_file.is_some()),
            ] {
                if set {
                    errors.push(key, "only applies to mqtts:// URLs (TLS)");
                }
            }
        }
    }
    check_name(errors, "mqtt.root", &mqtt.root);
    if let Some(client_id) = &mqtt.client_id {
        check_name(errors, "mqtt.client_id", client_id);
    }

    match (&mqtt.password, &mqtt.password_file) {
        (Some(_), Some(_)) => errors.push(
            "mqtt.password",
            "set either mqtt.password or mqtt.password_file, not both",
        ),
        (None, Some(_)) => {
            if let Err(e) = mqtt.password() {
                errors.push("mqtt.password_file", e);
            }
        }
        _ => {}
    }
    if mqtt.username.is_none() {
        // MQTT 3.1.1 sends a password only together with a user name.
        for (key, set) in [
            ("mqtt.password", mqtt.password.is_some()),
            ("mqtt.password_file", mqtt.password_file.is_some()),
        ] {
            if set {
                errors.push(key, "needs mqtt.username as well");
            }
        }
    }

    let keep_alive = mqtt.keep_alive;
    if keep_alive < KEEP_ALIVE_MIN {
        errors.push(
            "mqtt.keep_alive",
            format!(
                "is {}; must be at least 1s (without it a half-open link to the broker \
                 goes unnoticed)",
                format_duration(keep_alive)
            ),
        );
    } else if keep_alive > KEEP_ALIVE_MAX {
        errors.push(
            "mqtt.keep_alive",
            format!(
                "is {}; MQTT allows at most {}",
                format_duration(keep_alive),
                format_duration(KEEP_ALIVE_MAX)
            ),
        );
    } else if keep_alive.subsec_nanos() != 0 {
        errors.push(
            "mqtt.keep_alive",
            format!(
                "is {}; must be whole seconds (MQTT sends the keep-alive in seconds)",
                format_duration(keep_alive)
            ),
        );
    }

    if mqtt.connect_timeout.is_zero() {
        errors.push("mqtt.connect_timeout", "must be more than 0");
    }
    if mqtt.session_expiry < SESSION_EXPIRY_MIN {
        errors.push(
            "mqtt.session_expiry",
            format!(
                "is {}; must be at least {} (the broker keeps the control session only this \
                 long, and what central publishes not retained while the gateway is away is \
                 queued there)",
                format_duration(mqtt.session_expiry),
                format_duration(SESSION_EXPIRY_MIN)
            ),
        );
    }
    if !(1..=INFLIGHT_MAX).contains(&mqtt.inflight) {
        errors.push(
            "mqtt.inflight",
            format!("is {}; must be 1 to {INFLIGHT_MAX}", mqtt.inflight),
        );
    }
    for (key, size) in [
        ("mqtt.max_packet_size", mqtt.max_packet_size),
        (
            "mqtt.max_incoming_packet_size",
            mqtt.max_incoming_packet_size,
        ),
    ] {
        if !(PACKET_MIN..=PACKET_MAX).contains(&size) {
            errors.push(
                key,
                format!("is {size}; must be {PACKET_MIN} to {PACKET_MAX}"),
            );
        }
    }
    if mqtt.reconnect_min.is_zero() {
        errors.push(
            "mqtt.reconnect_min",
            "must be more than 0 (the wait doubles from it; 0 would retry in a tight loop)",
        );
    } else if mqtt.reconnect_min > mqtt.reconnect_max {
        errors.push(
            "mqtt.reconnect_min",
            format!(
                "({}) must not exceed mqtt.reconnect_max ({})",
                format_duration(mqtt.reconnect_min),
                format_duration(mqtt.reconnect_max)
            ),
        );
    }
}
