//! `[gateway]`: what this Pi is called in topics and where it keeps its state.

use std::path::PathBuf;
use std::time::Duration;

use humantime::format_duration;
use serde::Deserialize;

use super::duration;
use super::validate::{check_name, Errors};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Topic segment naming the warehouse.
    pub site: String,
    /// Topic segment naming this Pi; also the default MQTT client id.
    pub name: String,
    /// Where the spool and other durable state live. Put it on a USB SSD
    /// rather than a worn SD card (see hardware-notes.md).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// How often the `health` topic is published (at least 1s).
    #[serde(default = "default_health_interval", with = "duration")]
    pub health_interval: Duration,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/custodyd")
}
fn default_health_interval() -> Duration {
    Duration::from_secs(60)
}

/// A health sample is a few hundred bytes per reader; more often than this
/// would be traffic, not visibility.
const HEALTH_INTERVAL_MIN: Duration = Duration::from_secs(1);

pub(super) fn check_gateway(errors: &mut Errors, gateway: &GatewayConfig) {
    check_name(errors, "gateway.site", &gateway.site);
    check_name(errors, "gateway.name", &gateway.name);
    if gateway.health_interval < HEALTH_INTERVAL_MIN {
        errors.push(
            "gateway.health_interval",
            format!(
                "is {}; must be at least {}",
                format_duration(gateway.health_interval),
                format_duration(HEALTH_INTERVAL_MIN)
            ),
        );
    }
}
