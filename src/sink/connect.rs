//! The one way to the broker: the uplink and `custodyd tail` connect with the
//! same address, login, TLS and timeouts, so a tail that works from a Pi
//! proves the daemon's settings too.

use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions, Transport};
use rustls::{AlertDescription, CertificateError};

use crate::config::{ConfigError, ConfigErrors, MqttConfig};

/// rumqttc's MQTT 5 client refuses (panics on) a shorter keep-alive.
const V5_KEEP_ALIVE_MIN: Duration = Duration::from_secs(5);

/// What every client of `mqtt` shares, whatever its MQTT version.
struct Endpoint {
    host: String,
    port: u16,
    keep_alive: Duration,
    login: Option<(String, String)>,
    tls: Option<Transport>,
    network: NetworkOptions,
}

/// The password file and the TLS files are read here, so each new client
/// picks up a rotated password or certificate.
fn endpoint(mqtt: &MqttConfig) -> Result<Endpoint, ConfigErrors> {
    let broker = mqtt.broker().map_err(|e| single("mqtt.url", e))?;
    let login = match &mqtt.username {
        Some(user) => {
            let password = mqtt
                .password()
                .map_err(|e| single("mqtt.password_file", e))?
                .unwrap_or_default();
            Some((user.clone(), password))
        }
        None => None,
    };
    let tls = match broker.tls {
        true => Some(Transport::tls_with_config(mqtt.tls_config()?.into())),
        false => None,
    };
    let mut network = NetworkOptions::new();
    // Covers the TCP connect, the TLS handshake and the CONNACK.
    network.set_connection_timeout(mqtt.connect_timeout.as_secs().max(1));
    Ok(Endpoint {
        host: broker.host,
        port: broker.port,
        keep_alive: mqtt.keep_alive,
        login,
        tls,
        network,
    })
}

/// An MQTT 3.1.1 client for the broker of `mqtt`, not yet connected
/// (rumqttc connects on the first poll). `customize` sets what differs
/// between callers: the session, the Last Will, the inflight window.
pub fn client(
    mqtt: &MqttConfig,
    client_id: &str,
    capacity: usize,
    customize: impl FnOnce(&mut MqttOptions),
) -> Result<(AsyncClient, EventLoop), ConfigErrors> {
    let end = endpoint(mqtt)?;
    let mut options = MqttOptions::new(client_id, end.host, end.port);
    options.set_keep_alive(end.keep_alive);
    if let Some((user, password)) = end.login {
        options.set_credentials(user, password);
    }
    if let Some(tls) = end.tls {
        options.set_transport(tls);
    }
    customize(&mut options);
    let (client, mut eventloop) = AsyncClient::new(options, capacity);
    eventloop.set_network_options(end.network);
    Ok((client, eventloop))
}

/// The same for MQTT 5. A keep-alive under rumqttc's minimum for MQTT 5 is
/// raised to it: the uplink's own PUBACK watchdog still uses the configured
/// one, so a dead link under traffic is noticed as fast as with 3.1.1.
pub fn client_v5(
    mqtt: &MqttConfig,
    client_id: &str,
    capacity: usize,
    customize: impl FnOnce(&mut rumqttc::v5::MqttOptions),
) -> Result<(rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop), ConfigErrors> {
    let end = endpoint(mqtt)?;
    let mut options = rumqttc::v5::MqttOptions::new(client_id, end.host, end.port);
    options.set_keep_alive(end.keep_alive.max(V5_KEEP_ALIVE_MIN));
    if let Some((user, password)) = end.login {
        options.set_credentials(user, password);
    }
    if let Some(tls) = end.tls {
        options.set_transport(tls);
    }
    options.set_connection_timeout(end.network.connection_timeout());
    options.set_network_options(end.network);
    customize(&mut options);
    Ok(rumqttc::v5::AsyncClient::new(options, capacity))
}

/// A connection error as a log line, with what to check where the cause is
/// a TLS setting: rustls's own words name the problem, not the key to fix.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let hint = rustls_error(error).and_then(|e| match e {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => Some(
            "the broker's certificate does not name the host in mqtt.url; \
             connect by a name the certificate lists",
        ),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => Some(
            "the broker's certificate is not signed by a CA of mqtt.ca_file \
             (or of the system's roots when it is not set)",
        ),
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => Some(
            "the broker requires a client certificate: \
             set mqtt.client_cert_file and mqtt.client_key_file",
        ),
        rustls::Error::AlertReceived(
            AlertDescription::BadCertificate | AlertDescription::UnknownCA,
        ) => Some("the broker rejected the client certificate of mqtt.client_cert_file"),
        _ => None,
    });
    match hint {
        Some(hint) => format!("{error} ({hint})"),
        None => error.to_string(),
    }
}

/// The rustls error under a rumqttc one: tokio-rustls wraps it in an
/// `io::Error`, whose `source()` skips it, so the chain is walked by hand.
fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map_or(e, |inner| inner as &(dyn std::error::Error + 'static));
        if let Some(found) = inner.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        // rumqttc's MQTT 5 state error holds the I/O error without naming it
        // as its source.
        next = match e.downcast_ref::<rumqttc::v5::StateError>() {
            Some(rumqttc::v5::StateError::Deserialization(inner)) => Some(inner),
            _ => e.source(),
        };
    }
    None
}

fn single(key: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        key: key.into(),
        message,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::ConnectionError;

    fn tls_io(e: rustls::Error) -> ConnectionError {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        ConnectionError::Tls(rumqttc::TlsError::Io(io))
    }

    #[test]
    fn names_the_key_behind_a_tls_failure() {
        let mismatch = tls_io(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        let line = describe(&mismatch);
        assert!(line.starts_with(&mismatch.to_string()), "{line}");
        assert!(
            line.contains("does not name the host in mqtt.url"),
            "{line}"
        );

        // After the handshake (TLS 1.3), the alert comes with the first read.
        let required = ConnectionError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
        ));
        assert!(describe(&required).contains("mqtt.client_cert_file"));

        let refused = ConnectionError::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(describe(&refused), refused.to_string());
    }

    #[test]
    fn finds_the_tls_alert_under_an_mqtt_5_state_error() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
        );
        let state = rumqttc::v5::StateError::Deserialization(io.into());
        let error = rumqttc::v5::ConnectionError::MqttState(state);
        assert!(describe(&error).contains("mqtt.client_cert_file"));
    }

    #[test]
    fn a_plain_url_gets_no_tls_and_a_bad_one_names_its_key() {
        let mut mqtt = MqttConfig {
            url: "mqtt://127.0.0.1:1".into(),
            ..MqttConfig::default()
        };
        let (_, eventloop) = client(&mqtt, "id", 8, |_| {}).unwrap();
        assert!(matches!(eventloop.mqtt_options.transport(), Transport::Tcp));

        mqtt.url = "mqtts://127.0.0.1".into();
        mqtt.ca_file = Some("/nonexistent/ca.pem".into());
        let Err(errors) = client(&mqtt, "id", 8, |_| {}) else {
            panic!("a missing CA file was accepted");
        };
        assert_eq!(errors.0[0].key, "mqtt.ca_file", "{errors}");
    }
}
