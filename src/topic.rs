//! MQTT topic names of the wire contract.
//!
//! Only configured, validated names go into topics. Tag and barcode data never
//! does as read: where an asset must be named in a topic it is written as its
//! [`asset_key`], so a barcode full of `/#+` cannot alter a topic.

use std::fmt::Write;

/// The `{root}/{site}/{gateway}` prefix every gateway topic starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    pub root: String,
    pub site: String,
    pub gateway: String,
}

impl Naming {
    fn gateway_topic(&self, rest: &str) -> String {
        format!("{}/{}/{}/{}", self.root, self.site, self.gateway, rest)
    }

    pub fn status(&self) -> String {
        self.gateway_topic("status")
    }

    pub fn custody(&self, location: &str) -> String {
        self.gateway_topic(&format!("custody/{location}"))
    }

    pub fn alarm(&self, location: &str) -> String {
        self.gateway_topic(&format!("alarm/{location}"))
    }

    /// Station context changes (`custodyd.context.v1`).
    pub fn context(&self, location: &str) -> String {
        self.gateway_topic(&format!("context/{location}"))
    }

    /// Where a portal's read-window summaries (`custodyd.pass.v1`) go.
    pub fn pass(&self, location: &str) -> String {
        self.gateway_topic(&format!("pass/{location}"))
    }

    pub fn health(&self) -> String {
        self.gateway_topic("health")
    }

    /// The custody log's signed head (`custodyd.checkpoint.v1`, retained).
    pub fn checkpoint(&self) -> String {
        self.gateway_topic("checkpoint")
    }

    /// The filter for every command addressed to this gateway.
    pub fn commands(&self) -> String {
        self.gateway_topic("cmd/+")
    }

    pub fn command_reply(&self, command: &str) -> String {
        self.gateway_topic(&format!("cmd-reply/{command}"))
    }

    /// Pickup manifests of the site's dock doors (central publishes them,
    /// retained): the prefix before the door's location name.
    pub fn manifest_prefix(&self) -> String {
        format!("{}/{}/manifest/", self.root, self.site)
    }

    /// Release policy entries of every asset of the site (central
    /// publishes them, retained): the prefix before the asset key.
    pub fn release_prefix(&self) -> String {
        format!("{}/{}/release/", self.root, self.site)
    }
}

/// Canonical asset id with every byte outside `A-Z a-z 0-9 . _ - :` percent-encoded.
pub fn asset_key(id: &str) -> String {
    let mut key = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':') {
            key.push(b as char);
        } else {
            let _ = write!(key, "%{b:02X}");
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_key_escapes_topic_wildcards_and_separators() {
        assert_eq!(asset_key("AB/1#+"), "AB%2F1%23%2B");
        assert_eq!(
            asset_key("urn:epc:id:giai:0614141.12345400"),
            "urn:epc:id:giai:0614141.12345400"
        );
        assert_eq!(asset_key("a b\u{1d}é"), "a%20b%1D%C3%A9");
    }

    #[test]
    fn topics_follow_the_contract() {
        let n = Naming {
            root: "itad".into(),
            site: "reno-1".into(),
            gateway: "dock-pi-03".into(),
        };
        assert_eq!(n.status(), "itad/reno-1/dock-pi-03/status");
        assert_eq!(
            n.custody("dock-door-1"),
            "itad/reno-1/dock-pi-03/custody/dock-door-1"
        );
        assert_eq!(n.alarm("cage"), "itad/reno-1/dock-pi-03/alarm/cage");
        assert_eq!(n.context("scan-1"), "itad/reno-1/dock-pi-03/context/scan-1");
        assert_eq!(
            n.pass("dock-door-1"),
            "itad/reno-1/dock-pi-03/pass/dock-door-1"
        );
        assert_eq!(n.health(), "itad/reno-1/dock-pi-03/health");
        assert_eq!(n.checkpoint(), "itad/reno-1/dock-pi-03/checkpoint");
    }
}
