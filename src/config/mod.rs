//! Configuration: one TOML file plus `CUSTODYD__SECTION__KEY` environment
//! overrides, validated into these typed structs before anything starts.
//!
//! Every struct denies unknown fields: a typo in a key on a door Pi must be an
//! error at start-up, not a silent fall-back to a default. Validation collects
//! *every* problem (not just the first) so a technician fixes the file in one go.

use serde::Deserialize;

use crate::topic::Naming;

mod audit;
pub mod builder;
mod duration;
mod gate;
mod gateway;
mod gpio;
mod identity;
mod load;
mod location;
mod mqtt;
mod names;
mod portal;
mod reader;
mod secrets;
mod size;
mod spool;
mod station;
mod summary;
#[cfg(test)]
mod tests;
mod tls;
mod trust;
mod validate;

pub use audit::AuditConfig;
pub use duration::DURATION_MAX;
pub use gate::{GateConfig, UnknownAsset, UnsyncedExpiry};
pub use gateway::GatewayConfig;
pub use gpio::{ActiveLevel, GpioBackend, GpioConfig, InputPinConfig, Pull};
pub use identity::IdentityConfig;
pub use load::{load, ConfigError, ConfigErrors};
pub use location::{default_departure_timeout, LocationConfig, LocationKind};
pub use mqtt::{Broker, MqttConfig, MqttVersion};
pub use portal::{AntennaSides, BeamsConfig, Side, WindowConfig};
pub use reader::{
    Protocol, ProtocolKind, ReadMode, ReaderConfig, ReaderKind, StreamingProtocol, Target,
    UhfProtocol,
};
pub use secrets::exposed_secrets;
pub use size::ByteSize;
pub use spool::SpoolConfig;
pub use station::{Operators, ReaderRole, StationConfig, CLEAR_ACTION};
// The decoders own what they are configured with; the file names them here.
pub use crate::decode::{EndOn, Terminator, GS};
pub use trust::{parse_public_key, TrustConfig, PUBLIC_KEY_LEN};

/// Default location of the configuration file installed by the package.
pub const DEFAULT_PATH: &str = "/etc/custodyd/custodyd.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub locations: Vec<LocationConfig>,
    #[serde(default)]
    pub readers: Vec<ReaderConfig>,
    #[serde(default)]
    pub station: StationConfig,
    #[serde(default)]
    pub operators: Operators,
    #[serde(default)]
    pub gpio: GpioConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// `None`: no `[trust]` table, control messages are taken unsigned
    /// (refused at check-config where a cage gate is configured).
    #[serde(default)]
    pub trust: Option<TrustConfig>,
}

impl Config {
    /// The `{root}/{site}/{gateway}` that every topic of this gateway starts with.
    pub fn naming(&self) -> Naming {
        Naming {
            root: self.mqtt.root.clone(),
            site: self.gateway.site.clone(),
            gateway: self.gateway.name.clone(),
        }
    }

    /// The asset identity resolver this configuration describes (validated:
    /// the company prefixes are well-formed).
    pub fn identity(&self) -> crate::identity::Identity {
        let prefixes = crate::identity::gs1::CompanyPrefixes::new(&self.identity.company_prefixes);
        crate::identity::Identity::new(prefixes.unwrap_or_default())
    }

    /// Whether any location uses a GPIO pin: without one, GPIO is never
    /// opened (a gateway with only readers runs on any Linux machine).
    pub fn uses_gpio(&self) -> bool {
        self.locations.iter().any(|l| !l.gpio_pins().is_empty())
    }

    /// `mqtt.client_id`, or `gateway.name` when it is not set.
    pub fn client_id(&self) -> &str {
        self.mqtt.client_id.as_deref().unwrap_or(&self.gateway.name)
    }

    /// The control client's id: the client id with `-control`, stable so
    /// the broker finds its session again after a restart.
    pub fn control_client_id(&self) -> String {
        format!("{}-control", self.client_id())
    }
}
