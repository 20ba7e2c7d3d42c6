//! The health topic: a gateway that samples it every second, and waiting
//! for a sample.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{gateway_config, ConfigBuilder, Subscriber, GW, PATIENCE};

/// The gateway with a one-second health interval.
pub fn fast_health(url: &str, data_dir: &Path) -> ConfigBuilder {
    gateway_config(url, data_dir).health_interval(Duration::from_secs(1))
}

/// Waits for a health sample that satisfies `cond`; returns it.
pub async fn health_where(sub: &Subscriber, cond: impl Fn(&Value) -> bool) -> Value {
    let topic = format!("{GW}/health");
    let msgs = sub
        .wait_for(
            |m| m.iter().any(|m| m.topic == topic && cond(&m.json())),
            PATIENCE,
        )
        .await;
    let sample = msgs
        .into_iter()
        .find(|m| m.topic == topic && cond(&m.json()));
    let sample = sample.unwrap();
    assert!(!sample.retain, "health is not retained");
    sample.json()
}
