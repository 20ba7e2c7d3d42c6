//! The central system's side of the demo: retained state it publishes for
//! the gateways (release policy, pickup manifests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::time::sleep;

use super::GATEWAY;
use crate::config::Broker;

/// Connections made so far: each gets its own client id, as scenes publish
/// at the same time and a broker drops a client whose id connects again.
static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Publishes each `(topic, payload)` retained, as central would, printing
/// it; returns once the broker has acknowledged them all.
pub(super) async fn publish_retained(
    broker: &Broker,
    messages: &[(String, String)],
) -> anyhow::Result<()> {
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
