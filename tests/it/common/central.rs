//! Central's side of signed control messages, for tests: a key pair made
//! per test, its key in the gateway's `[trust]`, and envelopes signed with it.

use std::time::{Duration, SystemTime};

use custodyd::config::builder::ConfigBuilder;
use custodyd::trust::keys::SigningKey;
use custodyd::trust::sign::sign;

pub struct Central {
    pub key: SigningKey,
}

impl Central {
    pub fn new() -> Self {
        Central {
            key: SigningKey::generate("central-1").expect("a key"),
        }
    }

    /// Adds this central's public key to the gateway's `[trust]`.
    pub fn trust(&self, config: ConfigBuilder) -> ConfigBuilder {
        config.central_key(&self.key.key_id, &self.key.public_base64())
    }

    /// `inner` signed for `topic`, issued now (commands valid for a minute).
    pub fn sign(&self, topic: &str, inner: &str) -> String {
        self.sign_at(topic, inner, SystemTime::now())
    }

    pub fn sign_at(&self, topic: &str, inner: &str, issued_at: SystemTime) -> String {
        sign(
            &self.key,
            topic,
            inner.as_bytes(),
            issued_at,
            Duration::from_secs(60),
        )
        .expect("a JSON object to sign")
    }
}
