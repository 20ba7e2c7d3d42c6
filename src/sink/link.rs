//! The gateway's connections to the broker, in either MQTT version: the
//! uplink's and the control client's.
//!
//! Only MQTT 5 tells a refused publish from a stored one (a PUBACK reason
//! code) and lets the gateway tell the broker how large a packet it takes;
//! 3.1.1 stays for brokers that cannot speak 5. Both clients are reduced here
//! to the few things the uplink and the control client act on, so each of
//! them exists once.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck as ConnAck5, Packet as Packet5, PubAck as PubAck5, PubAckReason,
};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{v5, Event, LastWill, Outgoing, Packet, QoS};

use super::connect;
use crate::config::{ConfigErrors, MqttConfig, MqttVersion};

/// What a connection's session asks of the client.
pub(super) enum Session {
    /// The uplink's: clean, because the spool, not rumqttc, knows what is
    /// still to deliver (see `mqtt.rs`).
    Clean(Publishing),
    /// The control client's: kept by the broker, with the messages that
    /// match its subscriptions, for `expiry` after a disconnect. MQTT 3.1.1
    /// has no expiry: the broker keeps the session until its own limit
    /// (Mosquitto: `persistent_client_expiration`).
    Kept { expiry: Duration },
}

/// What the uplink, which publishes, asks of its clean session.
pub(super) struct Publishing {
    /// Unacknowledged QoS 1 publishes rumqttc may hold (its packet ids).
    pub inflight: u16,
    /// The Last Will, retained at QoS 1.
    pub will_topic: String,
    pub will: Vec<u8>,
}

pub(super) enum Client {
    V311(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// Boxed: the two event loops differ in size by half a KiB.
pub(super) enum Connection {
    V311(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

/// What happened on the link, as far as the uplink cares.
#[derive(Debug)]
pub(super) enum Happened {
    /// A CONNACK, with the broker's Maximum Packet Size if it has one, and
    /// whether the broker still had the session.
    Connected {
        max_packet: Option<u32>,
        session_present: bool,
    },
    Message {
        topic: String,
        payload: Bytes,
        retain: bool,
        receipt: Receipt,
    },
    /// `Outgoing::Publish(pkid)`.
    Sent(u16),
    /// `Outgoing::AwaitAck(pkid)`: a packet id collision.
    Parked(u16),
    /// A PUBACK; `refused` when its reason code says the broker did not take
    /// the message.
    Acked {
        pkid: u16,
        refused: Option<Refusal>,
    },
    /// A SUBACK; `granted` unless the broker refused the subscription
    /// (its ACL, for one).
    Subscribed {
        granted: bool,
    },
    /// The DISCONNECT went out.
    Goodbye,
    Other,
}

/// What acknowledges a received message to the broker: its packet id and
/// QoS. Only a kept session acknowledges by hand ([`Client::try_ack`]); the
/// uplink's client does it on receipt.
#[derive(Debug, Clone, Copy)]
pub(super) struct Receipt {
    pkid: u16,
    qos: QoS,
}

/// A PUBACK reason code of 0x80 or more (MQTT 5, 3.4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub code: u8,
    pub name: &'static str,
}

impl Refusal {
    /// `None` for the reason codes that mean the message was taken.
    fn of(reason: PubAckReason) -> Option<Refusal> {
        let (code, name) = match reason {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => return None,
            PubAckReason::UnspecifiedError => (0x80, "unspecified error"),
            PubAckReason::ImplementationSpecificError => (0x83, "implementation specific error"),
            PubAckReason::NotAuthorized => (0x87, "not authorized"),
            PubAckReason::TopicNameInvalid => (0x90, "topic name invalid"),
            PubAckReason::PacketIdentifierInUse => (0x91, "packet identifier in use"),
            PubAckReason::QuotaExceeded => (0x97, "quota exceeded"),
            PubAckReason::PayloadFormatInvalid => (0x99, "payload format invalid"),
        };
        Some(Refusal { code, name })
    }
}

/// A client in the configured MQTT version, with the packet limits of
/// `mqtt` and the given session.
pub(super) fn open(
    mqtt: &MqttConfig,
    client_id: &str,
    capacity: usize,
    session: Session,
) -> Result<(Client, Connection), ConfigErrors> {
    let incoming = u32::try_from(mqtt.max_incoming_packet_size.0).unwrap_or(u32::MAX);
    let outgoing = usize::try_from(mqtt.max_packet_size.0).unwrap_or(usize::MAX);
    Ok(match mqtt.protocol {
        MqttVersion::V311 => {
            let (client, eventloop) = connect::client(mqtt, client_id, capacity, |options| {
                options.set_max_packet_size(incoming as usize, outgoing);
                options.set_clean_session(matches!(session, Session::Clean(_)));
                options.set_manual_acks(matches!(session, Session::Kept { .. }));
                if let Session::Clean(p) = session {
                    options.set_inflight(p.inflight);
                    let will = LastWill::new(p.will_topic, p.will, QoS::AtLeastOnce, true);
                    options.set_last_will(will);
                }
            })?;
            (Client::V311(client), Connection::V311(Box::new(eventloop)))
        }
        MqttVersion::V5 => {
            let (client, eventloop) = connect::client_v5(mqtt, client_id, capacity, |options| {
                // Sent in CONNECT: the broker sends nothing larger, so a
                // large retained message cannot cut the connection.
                options.set_max_packet_size(Some(incoming));
                match session {
                    Session::Clean(p) => {
                        options.set_clean_start(true);
                        options.set_outgoing_inflight_upper_limit(p.inflight);
                        options.set_last_will(v5::mqttbytes::v5::LastWill::new(
                            p.will_topic,
                            p.will,
                            QoS5::AtLeastOnce,
                            true,
                            None,
                        ));
                    }
                    Session::Kept { expiry } => {
                        options.set_clean_start(false);
                        // rumqttc sizes a table of in-flight publishes by
                        // this limit up front (all of u16 when unset, some
                        // MiB of memory); this client publishes nothing, and
                        // its SUBSCRIBEs need only a few packet ids.
                        options.set_outgoing_inflight_upper_limit(CONTROL_PACKET_IDS);
                        // Its handlers acknowledge, once stored (`bus::Ack`).
                        options.set_manual_acks(true);
                        // Validation caps durations far below u32 seconds.
                        let seconds = u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX);
                        options.set_session_expiry_interval(Some(seconds));
                    }
                }
            })?;
            (Client::V5(client), Connection::V5(Box::new(eventloop)))
        }
    })
}

/// Packet ids of the control client, which sends only its SUBSCRIBEs (one
/// per route, renewed on each connect).
const CONTROL_PACKET_IDS: u16 = 16;

fn qos5(qos: QoS) -> QoS5 {
    match qos {
        QoS::AtMostOnce => QoS5::AtMostOnce,
        QoS::AtLeastOnce => QoS5::AtLeastOnce,
        QoS::ExactlyOnce => QoS5::ExactlyOnce,
    }
}

fn qos311(qos: QoS5) -> QoS {
    match qos {
        QoS5::AtMostOnce => QoS::AtMostOnce,
        QoS5::AtLeastOnce => QoS::AtLeastOnce,
        QoS5::ExactlyOnce => QoS::ExactlyOnce,
    }
}

impl Client {
    /// Queues a publish without waiting; an error means the queue is full
    /// (or the link task is gone).
    pub fn try_publish(
        &self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        match self {
            Client::V311(c) => c
                .try_publish(topic, qos, retain, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_publish(topic, qos5(qos), retain, payload)
                .map_err(|e| e.to_string()),
        }
    }

    pub fn try_subscribe(&self, filter: &str, qos: QoS) -> Result<(), String> {
        match self {
            Client::V311(c) => c.try_subscribe(filter, qos).map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe(filter, qos5(qos))
                .map_err(|e| e.to_string()),
        }
    }

    /// Queues the PUBACK of a received message (none for QoS 0); an error
    /// means the queue is full or the link task is gone, and the broker
    /// re-sends the message at the next connect.
    pub fn try_ack(&self, receipt: Receipt) -> Result<(), String> {
        // rumqttc acknowledges a publish; only its packet id and QoS count.
        match self {
            Client::V311(c) => {
                let mut publish = rumqttc::Publish::new("", receipt.qos, Vec::new());
                publish.pkid = receipt.pkid;
                c.try_ack(&publish).map_err(|e| e.to_string())
            }
            Client::V5(c) => {
                let qos = qos5(receipt.qos);
                let mut publish = v5::mqttbytes::v5::Publish::new("", qos, Bytes::new(), None);
                publish.pkid = receipt.pkid;
                c.try_ack(&publish).map_err(|e| e.to_string())
            }
        }
    }

    pub fn try_disconnect(&self) {
        let _ = match self {
            Client::V311(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

impl Connection {
    /// The next thing that happened; an error (described for the log) ends
    /// the connection, and the next poll reconnects.
    pub async fn poll(&mut self) -> Result<Happened, String> {
        match self {
            Connection::V311(eventloop) => eventloop
                .poll()
                .await
                .map(happened)
                .map_err(|e| connect::describe(&e)),
            Connection::V5(eventloop) => eventloop
                .poll()
                .await
                .map(happened5)
                .map_err(|e| connect::describe(&e)),
        }
    }

    /// Forgets everything rumqttc holds, so nothing from an old connection is
    /// replayed into a new one behind the uplink's back.
    pub fn wipe(&mut self) {
        match self {
            Connection::V311(eventloop) => {
                eventloop.clean();
                eventloop.pending.clear();
                eventloop.state.events.clear();
                eventloop.state.collision = None;
            }
            Connection::V5(eventloop) => {
                eventloop.clean();
                eventloop.pending.clear();
                eventloop.state.events.clear();
                eventloop.state.collision = None;
            }
        }
    }
}

fn outgoing(out: Outgoing) -> Happened {
    match out {
        Outgoing::Publish(pkid) => Happened::Sent(pkid),
        Outgoing::AwaitAck(pkid) => Happened::Parked(pkid),
        Outgoing::Disconnect => Happened::Goodbye,
        _ => Happened::Other,
    }
}

fn happened(event: Event) -> Happened {
    match event {
        Event::Incoming(Packet::ConnAck(ack)) => Happened::Connected {
            max_packet: None,
            session_present: ack.session_present,
        },
        Event::Incoming(Packet::SubAck(ack)) => Happened::Subscribed {
            granted: ack
                .return_codes
                .iter()
                .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
        },
        Event::Incoming(Packet::Publish(p)) => Happened::Message {
            receipt: Receipt {
                pkid: p.pkid,
                qos: p.qos,
            },
            topic: p.topic,
            payload: p.payload,
            retain: p.retain,
        },
        // MQTT 3.1.1 has no reason code: every PUBACK reads as "stored".
        Event::Incoming(Packet::PubAck(ack)) => Happened::Acked {
            pkid: ack.pkid,
            refused: None,
        },
        Event::Outgoing(out) => outgoing(out),
        Event::Incoming(_) => Happened::Other,
    }
}

fn happened5(event: v5::Event) -> Happened {
    match event {
        v5::Event::Incoming(Packet5::ConnAck(ConnAck5 {
            properties,
            session_present,
            ..
        })) => Happened::Connected {
            max_packet: properties.and_then(|p| p.max_packet_size),
            session_present,
        },
        v5::Event::Incoming(Packet5::SubAck(ack)) => Happened::Subscribed {
            granted: ack
                .return_codes
                .iter()
                .all(|c| matches!(c, v5::mqttbytes::v5::SubscribeReasonCode::Success(_))),
        },
        v5::Event::Incoming(Packet5::Publish(p)) => match String::from_utf8(p.topic.to_vec()) {
            Ok(topic) => Happened::Message {
                topic,
                payload: p.payload,
                retain: p.retain,
                receipt: Receipt {
                    pkid: p.pkid,
                    qos: qos311(p.qos),
                },
            },
            // The broker checks topics are UTF-8; a client cannot route what is not.
            Err(_) => Happened::Other,
        },
        v5::Event::Incoming(Packet5::PubAck(PubAck5 { pkid, reason, .. })) => Happened::Acked {
            pkid,
            refused: Refusal::of(reason),
        },
        v5::Event::Outgoing(out) => outgoing(out),
        v5::Event::Incoming(_) => Happened::Other,
    }
}

/// The size of the PUBLISH packet (QoS 1) that carries `payload` bytes on
/// `topic`, at most: fixed header with the longest remaining length, topic,
/// packet id and an empty MQTT 5 property block.
pub(super) fn publish_size(topic: &str, payload: usize) -> u64 {
    (1 + 4 + 2 + topic.len() + 2 + 1 + payload) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_reasons_are_not_refusals_and_refusals_keep_their_code() {
        assert_eq!(Refusal::of(PubAckReason::Success), None);
        assert_eq!(Refusal::of(PubAckReason::NoMatchingSubscribers), None);
        let refused = Refusal::of(PubAckReason::NotAuthorized).unwrap();
        assert_eq!((refused.code, refused.name), (0x87, "not authorized"));
        assert_eq!(Refusal::of(PubAckReason::QuotaExceeded).unwrap().code, 0x97);
    }

    #[test]
    fn the_control_session_is_kept_and_the_uplinks_is_clean_in_both_versions() {
        let mut mqtt = MqttConfig {
            url: "mqtt://127.0.0.1:1".into(),
            ..MqttConfig::default()
        };
        let kept = || Session::Kept {
            expiry: Duration::from_secs(3 * 24 * 3600),
        };
        let clean = || {
            Session::Clean(Publishing {
                inflight: 8,
                will_topic: "s".into(),
                will: Vec::new(),
            })
        };
        let Ok((_, Connection::V5(control))) = open(&mqtt, "g-control", 8, kept()) else {
            panic!("an MQTT 5 client");
        };
        assert!(!control.options.clean_start());
        assert_eq!(
            control.options.get_outgoing_inflight_upper_limit(),
            Some(CONTROL_PACKET_IDS),
            "no table of 65,536 in-flight publishes for a client that publishes none"
        );
        assert_eq!(control.options.session_expiry_interval(), Some(259_200));
        assert!(
            control.options.last_will().is_none(),
            "it publishes nothing"
        );
        let Ok((_, Connection::V5(uplink))) = open(&mqtt, "g", 8, clean()) else {
            panic!("an MQTT 5 client");
        };
        assert!(uplink.options.clean_start());
        assert_eq!(uplink.options.session_expiry_interval(), None);

        mqtt.protocol = MqttVersion::V311;
        let Ok((_, Connection::V311(control))) = open(&mqtt, "g-control", 8, kept()) else {
            panic!("an MQTT 3.1.1 client");
        };
        assert!(!control.mqtt_options.clean_session());
        let Ok((_, Connection::V311(uplink))) = open(&mqtt, "g", 8, clean()) else {
            panic!("an MQTT 3.1.1 client");
        };
        assert!(uplink.mqtt_options.clean_session());
    }
}
