//! The uplink's traffic besides spooled events: topics the gateway
//! subscribes to (release policy, manifests, commands) and messages it
//! publishes without spooling (health, command replies).
//!
//! Those messages are not the custody record: a command reply or a health
//! sample that cannot go out now is stale by the time the broker is back, so
//! they are published only while connected and otherwise dropped. What is
//! subscribed to arrives through the control client (`sink::control`), whose
//! session the broker keeps, with what it queued meanwhile, while the
//! gateway is away; it renews every subscription on each connect, so the
//! broker also re-delivers retained state.

use std::sync::Arc;

use bytes::Bytes;
use rumqttc::QoS;
use tokio::sync::mpsc;

/// A message the broker delivered on a subscribed topic.
#[derive(Debug)]
pub struct Inbound {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// Settle it once the message's effect is durable.
    pub ack: Ack,
}

/// The broker keeps a QoS 1 control message in the gateway's session until
/// the gateway acknowledges it, and re-sends it at the next connect until
/// then. So a message is acknowledged only through this, by its handler,
/// once what it changes is stored (or it was refused, its alarm queued: a
/// second delivery would not change the verdict). A handler that drops it
/// unsettled (it failed to store, or ended) leaves it with the broker: a
/// stop or `kill -9` between delivery and commit loses nothing.
///
/// The control client owns the packet ids; this only tells it which of its
/// deliveries to acknowledge, or to have re-sent.
#[derive(Debug, Default)]
pub struct Ack(Option<(u64, mpsc::UnboundedSender<Settled>)>);

/// What became of a delivery, for the control client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its effect is durable: acknowledge it to the broker.
    Done(u64),
    /// Dropped unsettled: leave it with the broker, which re-sends it.
    Dropped(u64),
}

impl Ack {
    /// The token of delivery `id`, reported back to `to`. The default token
    /// settles nothing (a QoS 0 message has nothing to acknowledge).
    pub fn new(id: u64, to: mpsc::UnboundedSender<Settled>) -> Self {
        Ack(Some((id, to)))
    }

    /// The message's effect is durable (or its refusal reported).
    pub fn done(mut self) {
        if let Some((id, to)) = self.0.take() {
            // The control client gone: its connection, and the broker's
            // claim to an acknowledgement, are gone too.
            let _ = to.send(Settled::Done(id));
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some((id, to)) = self.0.take() {
            let _ = to.send(Settled::Dropped(id));
        }
    }
}

/// A message to publish now, without spooling.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
}

/// A reader came up or went down, or its antennas' health changed: for the
/// status document, which the uplink publishes retained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderState {
    pub reader: Arc<str>,
    pub up: bool,
    /// 1-based antennas whose last inventory got an error reply (UHF
    /// readers); empty for the others and for a reader that is down.
    pub failing_antennas: Vec<u8>,
}

/// Where messages on a topic filter go.
#[derive(Debug)]
pub(crate) struct Route {
    pub filter: String,
    pub to: mpsc::Sender<Inbound>,
}

/// Built while the daemon wires its stages, then handed to the uplink.
#[derive(Debug)]
pub struct Bus {
    pub(crate) routes: Vec<Route>,
    pub(crate) outbound: mpsc::Receiver<Outbound>,
    publisher: mpsc::Sender<Outbound>,
}

/// Queue of non-spooled publishes: a burst of command replies, at most.
const OUTBOUND_QUEUE: usize = 64;

impl Bus {
    pub fn new() -> Self {
        let (publisher, outbound) = mpsc::channel(OUTBOUND_QUEUE);
        Bus {
            routes: Vec::new(),
            outbound,
            publisher,
        }
    }

    /// Messages on topics matching `filter` (MQTT wildcards `+` and `#`) are
    /// sent to the returned receiver, each to be settled through its
    /// [`Ack`]. A message matching several filters goes
    /// to the first one subscribed. If the receiver lags `capacity` messages
    /// behind, the control client waits for it (the broker keeps the rest):
    /// its owner must keep up (it only parses and stores).
    pub fn subscribe(&mut self, filter: String, capacity: usize) -> mpsc::Receiver<Inbound> {
        let (to, rx) = mpsc::channel(capacity);
        self.routes.push(Route { filter, to });
        rx
    }

    /// A handle to publish with; publishing never waits for the broker.
    pub fn publisher(&self) -> Publisher {
        Publisher(self.publisher.clone())
    }
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

/// Publishes without spooling. Cloned freely; dropped messages are logged by
/// the uplink, not reported back.
#[derive(Debug, Clone)]
pub struct Publisher(mpsc::Sender<Outbound>);

impl Publisher {
    /// Queues `payload` for `topic`; returns false if the queue is full
    /// (the uplink is stuck or gone), in which case the message is dropped.
    pub fn publish(&self, topic: String, payload: Vec<u8>, qos: QoS, retain: bool) -> bool {
        self.0
            .try_send(Outbound {
                topic,
                payload,
                qos,
                retain,
            })
            .is_ok()
    }
}

/// Whether `topic` matches the subscription `filter` (MQTT 3.1.1, 4.7).
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for want in filter.split('/') {
        match (want, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (want, Some(level)) if want == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_acknowledged_only_when_settled_done() {
        let (to, mut settled) = mpsc::unbounded_channel();
        Ack::new(1, to.clone()).done();
        drop(Ack::new(2, to.clone()));
        drop(Ack::default());
        Ack::default().done();
        assert_eq!(settled.try_recv().ok(), Some(Settled::Done(1)));
        assert_eq!(settled.try_recv().ok(), Some(Settled::Dropped(2)));
        assert!(
            settled.try_recv().is_err(),
            "a default token settles nothing"
        );
    }

    #[test]
    fn filters_match_as_mqtt_says() {
        let yes = [
            ("itad/s/release/#", "itad/s/release/AB%2F1"),
            ("itad/s/release/#", "itad/s/release"),
            ("itad/s/gw/cmd/+", "itad/s/gw/cmd/ping"),
            ("#", "anything/at/all"),
            ("a/+/c", "a//c"),
        ];
        let no = [
            ("itad/s/gw/cmd/+", "itad/s/gw/cmd/ping/extra"),
            ("itad/s/gw/cmd/+", "itad/s/gw/cmd"),
            ("itad/s/release/#", "itad/t/release/x"),
            ("a/b", "a/b/c"),
            ("a/b/c", "a/b"),
        ];
        for (filter, topic) in yes {
            assert!(matches(filter, topic), "{filter} should match {topic}");
        }
        for (filter, topic) in no {
            assert!(!matches(filter, topic), "{filter} should not match {topic}");
        }
    }
}
