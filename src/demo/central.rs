//! The central system's side of the demo: retained state it publishes for
//! the gateways (release policy, pickup manifests), signed with a key pair
//! the demo makes, as central signs them (docs/trust.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::time::sleep;

use super::GATEWAY;
use crate::config::builder::ConfigBuilder;
use crate::config::Broker;
use crate::trust::keys::SigningKey;
use crate::trust::sign::{sign, DEFAULT_COMMAND_TTL};

/// Central as the demo plays it: its broker and its signing key.
#[derive(Clone)]
pub(super) struct Central {
    pub broker: Broker,
    key: Arc<SigningKey>,
}

impl Central {
    /// A new key pair, made for this demo run.
    pub fn new(broker: Broker) -> anyhow::Result<Self> {
        Ok(Central {
            broker,
            key: Arc::new(SigningKey::generate("demo-central")?),
        })
    }

    /// Adds this central's public key to the gateway's `[trust]`.
    pub fn configure(&self, config: ConfigBuilder) -> ConfigBuilder {
        config.central_key(&self.key.key_id, &self.key.public_base64())
    }

    /// Signs each `(topic, inner JSON)` and publishes it retained.
    pub async fn publish_retained(&self, messages: &[(String, String)]) -> anyhow::Result<()> {
        let now = SystemTime::now();
        let mut signed = Vec::with_capacity(messages.len());
        for (topic, inner) in messages {
            println!(
                "demo: central signs {topic} {inner} with key {}",
                self.key.key_id
            );
            let envelope = sign(&self.key, topic, inner.as_bytes(), now, DEFAULT_COMMAND_TTL)
                .map_err(anyhow::Error::msg)?;
            signed.push((topic.clone(), envelope));
        }
        publish_retained(&self.broker, &signed).await
    }
}

/// Connections made so far: each gets its own client id, as scenes publish
/// at the same time and a broker drops a client whose id connects again.
static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Publishes each `(topic, payload)` retained, as central would, printing
/// it; returns once the broker has acknowledged them all.
async fn publish_retained(broker: &Broker, messages: &[(String, String)]) -> anyhow::Result<()> {
    let n = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let client_id = format!("{GATEWAY}-demo-central-{n}");
    let mut options = MqttOptions::new(client_id, &broker.host, broker.port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    for (topic, payload) in messages {
        println!("demo: central publishes {topic} {payload} (retained)");
        client
            .publish(topic, QoS::AtLeastOnce, true, payload.as_bytes())
            .await?;
    }
    let mut acked = 0;
    while acked < messages.len() {
        if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await? {
            acked += 1;
        }
    }
    let _ = client.disconnect().await;
    // The gateway gets them over its own connection; give it a moment.
    sleep(Duration::from_secs(1)).await;
    Ok(())
}
