//! The human summary printed by `custodyd check-config`.

use std::fmt::Write;

use humantime::format_duration;

use super::{Config, MqttVersion, Protocol};

impl Config {
    /// A short, terminal-friendly summary of what this gateway will do: where
    /// it publishes, its topics, locations and readers. Never shows the
    /// password, only where it comes from.
    pub fn summary(&self) -> String {
        let naming = self.naming();
        let mqtt = &self.mqtt;
        let mut out = String::new();

        let broker = match mqtt.broker() {
            Ok(b) if b.tls => {
                let ca = mqtt.ca_file.as_ref().map_or("system CAs".to_string(), |f| {
                    format!("CAs from {}", f.display())
                });
                let client = mqtt.client_cert_file.as_ref().map_or(String::new(), |f| {
                    format!(", client certificate {}", f.display())
                });
                format!("{b} (TLS, {ca}{client})")
            }
            Ok(b) => b.to_string(),
            Err(e) => format!("invalid url: {e}"),
        };
        let auth = match (&mqtt.username, &mqtt.password, &mqtt.password_file) {
            (None, None, None) => "no login".to_string(),
            (user, password, file) => {
                let mut auth = format!("user {}", user.as_deref().unwrap_or("(none)"));
                if let Some(file) = file {
                    let _ = write!(auth, ", password from {}", file.display());
                } else if password.is_some() {
                    auth.push_str(", password set");
                }
                auth
            }
        };

        let _ = writeln!(out, "site      {}", self.gateway.site);
        let _ = writeln!(out, "gateway   {}", self.gateway.name);
        let _ = writeln!(out, "data dir  {}", self.gateway.data_dir.display());
        let _ = writeln!(
            out,
            "broker    {broker}, client id {}, {auth}",
            self.client_id()
        );
        let _ = writeln!(
            out,
            "control   client id {}, session kept {} while away",
            self.control_client_id(),
            format_duration(mqtt.session_expiry)
        );
        let _ = writeln!(
            out,
            "protocol  MQTT {}, packets up to {} out, {} in",
            mqtt.protocol.as_str(),
            mqtt.max_packet_size,
            mqtt.max_incoming_packet_size
        );
        if mqtt.protocol == MqttVersion::V311 {
            let _ = writeln!(
                out,
                "warning: with mqtt.protocol = \"3.1.1\" a publish the broker refuses (ACL, quota) \
                 is acknowledged like a stored one and deleted from the spool; use \"5\" \
                 unless the broker cannot speak MQTT 5"
            );
        }
        let _ = writeln!(out, "topics    root {}", mqtt.root);
        let windows = self.locations.iter().any(|l| l.window.is_some());
        let gates = self.locations.iter().any(|l| l.gate.is_some());
        let topics = [
            ("status", naming.status(), true),
            ("custody", naming.custody("+"), true),
            ("alarm", naming.alarm("+"), true),
            ("pass", naming.pass("+"), windows),
            (
                "context",
                naming.context("+"),
                self.locations.iter().any(|l| l.is_station()),
            ),
            ("health", naming.health(), true),
            ("checkpoint", naming.checkpoint(), true),
            (
                "commands",
                format!("{} (subscribed)", naming.commands()),
                true,
            ),
            (
                "release",
                format!("{}# (subscribed)", naming.release_prefix()),
                gates,
            ),
            (
                "manifest",
                format!("{}+ (subscribed)", naming.manifest_prefix()),
                self.locations.iter().any(|l| l.takes_manifests()),
            ),
        ];
        for (what, topic, _) in topics.iter().filter(|(_, _, used)| *used) {
            let _ = writeln!(out, "          {what:10} {topic}");
        }
        let trust = match &self.trust {
            None => "control messages taken unsigned (no [trust])".to_string(),
            Some(t) => {
                let keys: Vec<&str> = t.central_keys.keys().map(String::as_str).collect();
                let unsigned = if t.allow_unsigned {
                    "; unsigned ones taken too (allow_unsigned)"
                } else {
                    ""
                };
                format!("control messages signed by {}{unsigned}", keys.join(", "))
            }
        };
        let _ = writeln!(out, "trust     {trust}");

        let _ = writeln!(out, "locations ({})", self.locations.len());
        let width = self
            .locations
            .iter()
            .map(|l| l.name.len())
            .max()
            .unwrap_or(0);
        for l in &self.locations {
            let _ = write!(
                out,
                "  {:width$}  {:12}  departed after {}",
                l.name,
                l.kind.as_str(),
                format_duration(l.departure_timeout)
            );
            if let (Some(outside), Some(inside)) = (&l.outside_zone, &l.inside_zone) {
                let _ = write!(out, ", between {outside} (outside) and {inside} (inside)");
            }
            if l.window.is_some() {
                let beams = if l.beams.is_some() { " and beams" } else { "" };
                let _ = write!(out, ", read windows{beams}");
            }
            if l.takes_manifests() {
                let _ = write!(
                    out,
                    ", pickup manifests (timeout {})",
                    format_duration(l.manifest_timeout())
                );
            }
            if l.is_station() {
                let _ = write!(
                    out,
                    ", station, operator timeout {}{}",
                    format_duration(l.operator_timeout()),
                    if l.require_operator() {
                        ", operator required"
                    } else {
                        ""
                    }
                );
            }
            out.push('\n');
        }

        let _ = writeln!(out, "readers ({})", self.readers.len());
        let width = self.readers.iter().map(|r| r.name.len()).max().unwrap_or(0);
        let loc_width = self
            .readers
            .iter()
            .map(|r| r.location.len())
            .max()
            .unwrap_or(0);
        for r in &self.readers {
            let _ = write!(
                out,
                "  {:width$}  {:10}  {:8}  at {:loc_width$}  {}",
                r.name,
                r.input_name(),
                match r.role {
                    super::ReaderRole::Badge => "badge",
                    super::ReaderRole::Asset => r.mode().as_str(),
                },
                r.location,
                r.path.display(),
            );
            // A HID scanner has no line speed.
            if r.kind == super::ReaderKind::Serial {
                let _ = write!(out, ", {} baud", r.baud());
            }
            if r.protocol.is_some_and(Protocol::is_uhf) {
                let _ = write!(out, ", antennas {:?}", r.antennas());
            }
            if let Some(side) = r.side {
                let _ = write!(out, ", side {}", side.as_str());
            }
            for (antenna, side) in r.antenna_sides() {
                let _ = write!(out, ", antenna {antenna} {}", side.as_str());
            }
            out.push('\n');
        }
        out
    }
}
