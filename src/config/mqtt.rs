//! The broker address and the credentials of `[mqtt]`.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{duration, ByteSize};

mod validate;

pub(super) use validate::check_mqtt;

/// `Debug` is written by hand (below) so the password never reaches a log.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]`, `tcp://host[:port]` or `mqtts://host[:port]`; see
    /// [`MqttConfig::broker`].
    #[serde(default = "default_mqtt_url")]
    pub url: String,
    /// First topic segment.
    #[serde(default = "default_root")]
    pub root: String,
    /// Defaults to `gateway.name`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password (first line), so the TOML can stay world-readable.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `mqtts://`: PEM file of the CAs the broker's certificate must chain
    /// to; the system's roots when absent. See [`MqttConfig::tls_config`].
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `mqtts://`: PEM certificate chain for brokers that authenticate
    /// clients by certificate (mutual TLS); needs `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// MQTT keep-alive; a half-open link is noticed within about twice this.
    #[serde(default = "default_keep_alive", with = "duration")]
    pub keep_alive: Duration,
    /// How long one connection attempt (TCP + CONNACK) may take.
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// Spooled events published but not yet acknowledged, at most.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
    /// First wait after a failed connection; doubles up to `reconnect_max`.
    #[serde(default = "default_reconnect_min", with = "duration")]
    pub reconnect_min: Duration,
    #[serde(default = "default_reconnect_max", with = "duration")]
    pub reconnect_max: Duration,
    /// MQTT 5 tells a refused publish from a stored one; 3.1.1 cannot.
    #[serde(default)]
    pub protocol: MqttVersion,
    /// The largest packet the gateway sends; the broker's own limit (MQTT 5
    /// CONNACK) lowers it. An event that cannot fit is set aside.
    #[serde(default = "default_max_packet_size")]
    pub max_packet_size: ByteSize,
    /// The largest packet the gateway accepts; MQTT 5 tells the broker, which
    /// then does not send larger ones.
    #[serde(default = "default_max_packet_size")]
    pub max_incoming_packet_size: ByteSize,
    /// How long the broker keeps the control client's session (and queues
    /// its release policy, manifests and commands) while the gateway is
    /// away: an outage longer than this loses what was not retained.
    #[serde(default = "default_session_expiry", with = "duration")]
    pub session_expiry: Duration,
}

/// The MQTT version spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum MqttVersion {
    #[default]
    #[serde(rename = "5")]
    V5,
    #[serde(rename = "3.1.1")]
    V311,
}

impl MqttVersion {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V5 => "5",
            MqttVersion::V311 => "3.1.1",
        }
    }
}

fn default_mqtt_url() -> String {
    "mqtt://127.0.0.1:1883".into()
}
fn default_root() -> String {
    "itad".into()
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(15)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_inflight() -> u16 {
    32
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(250)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(5)
}
fn default_max_packet_size() -> ByteSize {
    ByteSize(256 << 10)
}
fn default_session_expiry() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: default_mqtt_url(),
            root: default_root(),
            client_id: None,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive: default_keep_alive(),
            connect_timeout: default_connect_timeout(),
            inflight: default_inflight(),
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
            protocol: MqttVersion::default(),
            max_packet_size: default_max_packet_size(),
            max_incoming_packet_size: default_max_packet_size(),
            session_expiry: default_session_expiry(),
        }
    }
}

/// Where to connect, parsed from `mqtt.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host name or IP address. An IPv6 address is kept without its brackets
    /// (`::1`), the form rumqttc and rustls expect as a host.
    pub host: String,
    pub port: u16,
    /// `mqtts://`: connect with TLS.
    pub tls: bool,
}

/// `host:port`, with brackets around an IPv6 address so the port stays readable.
impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl MqttConfig {
    /// Parses `url`: `mqtt://host[:port]` or `tcp://host[:port]` (plain, default
    /// port 1883) or `mqtts://host[:port]` (TLS, default port 8883). IPv6
    /// addresses go in brackets: `mqtt://[::1]:1883`.
    ///
    /// Anything else is refused rather than guessed at: a path, a query or
    /// credentials in the URL would otherwise be silently dropped. The error
    /// never repeats a URL that carries credentials.
    pub fn broker(&self) -> Result<Broker, String> {
        parse_broker_url(&self.url)
    }

    /// The password from `password` or, failing that, the first line of
    /// `password_file` (trimmed). Read on every call, so a reconnect picks up a
    /// rotated password file.
    pub fn password(&self) -> Result<Option<String>, String> {
        if let Some(password) = &self.password {
            return Ok(Some(password.clone()));
        }
        let Some(file) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let first = text.lines().next().unwrap_or("").trim();
        if first.is_empty() {
            return Err(format!("{}: the first line is empty", file.display()));
        }
        Ok(Some(first.to_string()))
    }
}

/// Every field but the password, which shows only whether it is set.
impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let MqttConfig {
            url,
            root,
            client_id,
            username,
            password,
            password_file,
            ca_file,
            client_cert_file,
            client_key_file,
            keep_alive,
            connect_timeout,
            inflight,
            reconnect_min,
            reconnect_max,
            protocol,
            max_packet_size,
            max_incoming_packet_size,
            session_expiry,
        } = self;
        f.debug_struct("MqttConfig")
            .field("url", url)
            .field("root", root)
            .field("client_id", client_id)
            .field("username", username)
            .field("password", &password.as_ref().map(|_| "<redacted>"))
            .field("password_file", password_file)
            .field("ca_file", ca_file)
            .field("client_cert_file", client_cert_file)
            .field("client_key_file", client_key_file)
            .field("keep_alive", keep_alive)
            .field("connect_timeout", connect_timeout)
            .field("inflight", inflight)
            .field("reconnect_min", reconnect_min)
            .field("reconnect_max", reconnect_max)
            .field("protocol", protocol)
            .field("max_packet_size", max_packet_size)
            .field("max_incoming_packet_size", max_incoming_packet_size)
            .field("session_expiry", session_expiry)
            .finish()
    }
}

fn parse_broker_url(url: &str) -> Result<Broker, String> {
    const EXPECTED: &str = "expected mqtt://host[:port], tcp://host[:port] or mqtts://host[:port]";
    if url.contains('@') {
        // Not echoed: the part before `@` is likely a password.
        return Err("credentials in the URL are not supported; \
                    use mqtt.username with mqtt.password or mqtt.password_file"
            .into());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{url:?}: {EXPECTED}"));
    };
    let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => (false, 1883),
        "mqtts" => (true, 8883),
        _ => return Err(format!("unsupported scheme {scheme:?}; {EXPECTED}")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(c) = authority.chars().find(|c| matches!(c, '/' | '?' | '#')) {
        return Err(format!("{url:?}: unexpected {c:?}; {EXPECTED}"));
    }

    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: missing ']' after the IPv6 address"))?;
        inside
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("{url:?}: {inside:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("{url:?}: expected ':port' after the IPv6 address"))?,
            ),
        };
        (inside, port)
    } else {
        match authority.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(format!(
                    "{url:?}: an IPv6 address must be in brackets, e.g. mqtt://[::1]:1883"
                ))
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };

    if host.is_empty() {
        return Err(format!("{url:?}: the host is missing"));
    }
    // A bracketed host has parsed as IPv6 above; a name or IPv4 address has no ':'.
    if let Some(c) = host
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
    {
        return Err(format!("{url:?}: the host contains {c:?}"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("{url:?}: {p:?} is not a port (1 to 65535)")),
        },
    };
    Ok(Broker {
        host: host.to_string(),
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(host: &str, port: u16, tls: bool) -> Broker {
        Broker {
            host: host.into(),
            port,
            tls,
        }
    }

    #[test]
    fn accepts_the_three_schemes_with_their_default_ports() {
        assert_eq!(
            parse_broker_url("mqtt://10.0.0.5"),
            Ok(broker("10.0.0.5", 1883, false))
        );
        assert_eq!(
            parse_broker_url("tcp://broker.lan:1884"),
            Ok(broker("broker.lan", 1884, false))
        );
        assert_eq!(
            parse_broker_url("mqtts://broker.example.com"),
            Ok(broker("broker.example.com", 8883, true))
        );
        assert_eq!(
            parse_broker_url("MQTT://broker/"),
            Ok(broker("broker", 1883, false))
        );
    }

    #[test]
    fn accepts_bracketed_ipv6() {
        assert_eq!(
            parse_broker_url("mqtt://[::1]:1883"),
            Ok(broker("::1", 1883, false))
        );
        assert_eq!(
            parse_broker_url("mqtts://[fd00::5]"),
            Ok(broker("fd00::5", 8883, true))
        );
        assert_eq!(broker("::1", 1883, false).to_string(), "[::1]:1883");
        assert_eq!(broker("h", 1, true).to_string(), "h:1");
    }

    #[test]
    fn rejects_everything_else() {
        for url in [
            "",
            "10.0.0.5:1883",
            "http://broker:1883",
            "ws://broker",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://broker:",
            "mqtt://broker:0",
            "mqtt://broker:65536",
            "mqtt://broker:port",
            "mqtt://broker/topic",
            "mqtt://broker?x=1",
            "mqtt://::1:1883",
            "mqtt://[::1",
            "mqtt://[::1]1883",
            "mqtt://[not-ip]:1883",
            "mqtt://bro ker",
        ] {
            assert!(parse_broker_url(url).is_err(), "{url:?} was accepted");
        }
    }

    #[test]
    fn never_echoes_credentials_in_the_url() {
        for url in ["mqtt://user:hunter2@broker", "mqtt:/user:hunter2@broker"] {
            let err = parse_broker_url(url).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn debug_redacts_the_password() {
        let config = MqttConfig {
            password: Some("hunter2".into()),
            ..MqttConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
