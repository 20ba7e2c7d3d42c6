//! The MQTT uplink: drains the spool in `seq` order with QoS 1 and tells the
//! spool which events the broker has acknowledged.
//!
//! rumqttc 0.25 has no per-publish handle: a PUBACK can only be matched to
//! its publish by the order of `Outgoing::Publish(pkid)` events. On reconnect
//! into a clean session it silently drops everything pending, and a packet-id
//! collision can outlive a reconnect. So rumqttc's memory is treated as a
//! disposable cache and the spool as the only truth:
//!
//! - one task ([`poll_loop`]) owns the `EventLoop`; on any error it wipes
//!   rumqttc's pending state, tells the uplink, waits until the uplink has
//!   reset too, wipes again (dropping whatever was queued meanwhile), then
//!   backs off and reconnects;
//! - the uplink task ([`Uplink`]) owns correlation and delivery progress, and
//!   after every CONNACK re-streams from the lowest unacknowledged `seq`.
//!
//! Delivery is therefore at-least-once; consumers de-duplicate on `event_id`.
//!
//! Nothing one event does stops the others: a refused publish holds only its
//! topic (see [`super::delivery`]), and an event larger than the broker takes
//! is moved to the spool's dead letters instead of being sent, because
//! sending it would fail the connection and, resent first after every
//! reconnect, stop everything behind it.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use rumqttc::QoS;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use super::delivery::{Answer, Delivery, Held, Next, Sent, Violation};
use super::link::{self, Client, Connection, Happened, Publishing, Refusal, Session};
use super::Status;
use crate::audit::Checkpoints;
use crate::bus::ReaderState;
use crate::bus::{Bus, Outbound};
use crate::command::Request;
use crate::config::{Config, ConfigErrors};
use crate::metrics::Metrics;
use crate::spool::{Committed, Record, SpoolReader};
use crate::topic::Naming;
use crate::watchdog::Stage;

/// How long shutdown waits for the broker to take what is still spooled.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for the offline status to be acknowledged.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);
/// Acknowledged events are deleted from the spool in batches this often.
const TICK: Duration = Duration::from_millis(250);
/// Committed records fetched from the spool per read, at least. Each read
/// queues behind the spool task's group commit (up to `flush_interval` of
/// waiting for a batch plus its fsync), so while new events keep arriving a
/// small read-ahead caps the drain of a backlog (measured in
/// docs/performance.md, "Drain"); the price is the records held in memory.
const READ_AHEAD: usize = 512;
/// Publishes besides the event window that may be unacknowledged at once
/// (status, command replies).
const OUTBOUND_ROOM: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
}

/// What the uplink reports besides the events, and where it learns it.
pub struct Reporting {
    /// The configured readers: a reload changes them, and the status
    /// document follows.
    pub readers: watch::Receiver<Vec<Arc<str>>>,
    /// `status` commands: the uplink owns the status document, so it
    /// answers them.
    pub status_requests: mpsc::Receiver<Request>,
    pub metrics: Arc<Metrics>,
    /// The custody log's signed head: the uplink publishes it beside the
    /// events it covers.
    pub checkpoints: Checkpoints,
    /// Whether the control client's subscriptions are in place: the status
    /// says online only once they are, so whoever sees it online can send
    /// commands.
    pub control: watch::Receiver<bool>,
    /// Told once the uplink has connected: the control client waits for it,
    /// so that replies to commands queued while the gateway was away can go
    /// out.
    pub connected: watch::Sender<bool>,
}

/// Starts the uplink. It ends by itself once the spool is closed and drained
/// (or the drain grace has passed), after publishing the offline status.
/// `stage` tells the systemd watchdog whether it still comes back for events.
pub async fn spawn(
    config: &Config,
    naming: Naming,
    spool: SpoolReader,
    states: mpsc::Receiver<ReaderState>,
    bus: Bus,
    reporting: Reporting,
    stage: Stage,
) -> Result<JoinHandle<()>, UplinkError> {
    let mqtt = &config.mqtt;
    let window = usize::from(mqtt.inflight);

    let capacity = window + OUTBOUND_ROOM * 2;
    // rumqttc's session memory is not trusted (see the module doc): the
    // session is clean. Room for the event window plus status and bus
    // publishes, so pkids never collide while the broker acknowledges in order.
    let session = Session::Clean(Publishing {
        inflight: u16::try_from(window + OUTBOUND_ROOM).unwrap_or(u16::MAX),
        will_topic: naming.status(),
        will: Status::last_will(),
    });
    let (client, eventloop) = link::open(mqtt, config.client_id(), capacity, session)?;

    let (net_tx, net) = mpsc::channel(window * 2 + 64);
    let force = Arc::new(Notify::new());
    let backoff = Backoff::new(mqtt.reconnect_min, mqtt.reconnect_max);
    let poller = tokio::spawn(poll_loop(eventloop, net_tx, force.clone(), backoff));

    // Everything below the oldest spooled record was delivered in an earlier run.
    let committed = *spool.committed.borrow();
    let watermark = spool.start_seq;
    // The URL holds no credentials: validation refuses them there.
    info!(broker = %mqtt.url, from_seq = watermark, "uplink starting");
    let Reporting {
        readers,
        status_requests,
        metrics,
        checkpoints,
        control,
        connected,
    } = reporting;
    metrics.uplink.set_delivered_below(watermark);
    let status = Status::new(readers.borrow().iter().cloned(), checkpoints.device_key());

    let uplink = Uplink {
        client,
        naming,
        spool,
        window,
        keep_alive: mqtt.keep_alive,
        force,
        connected: false,
        delivery: Delivery::new(window, watermark, (mqtt.reconnect_min, mqtt.reconnect_max)),
        ceiling: mqtt.max_packet_size.0,
        max_packet: mqtt.max_packet_size.0,
        prefetched: VecDeque::new(),
        committed,
        status,
        status_dirty: true,
        checkpoints,
        phase: Phase::Running,
        broker_down_logged: false,
        control,
        up: connected,
        metrics,
    };
    Ok(tokio::spawn(async move {
        uplink
            .run(net, states, bus.outbound, readers, status_requests, stage)
            .await;
        let _ = timeout(GOODBYE_GRACE, poller).await;
    }))
}

/// What the poll task tells the uplink.
enum Net {
    Event(Happened),
    /// The connection failed or was torn down. rumqttc's state is already
    /// wiped; the poll task waits on `resume` before it reconnects.
    Down {
        error: String,
        resume: oneshot::Sender<()>,
    },
}

/// Owns the `EventLoop`. Its only state is the connection and the backoff.
async fn poll_loop(
    mut eventloop: Connection,
    net: mpsc::Sender<Net>,
    force: Arc<Notify>,
    mut backoff: Backoff,
) {
    loop {
        let polled = tokio::select! {
            polled = eventloop.poll() => polled,
            // The uplink saw something impossible (or a stuck link): start over.
            _ = force.notified() => Err("reset by the uplink".to_string()),
        };
        match polled {
            Ok(event) => {
                let goodbye = matches!(event, Happened::Goodbye);
                if matches!(event, Happened::Connected { .. }) {
                    backoff.reset();
                }
                if net.send(Net::Event(event)).await.is_err() || goodbye {
                    return;
                }
            }
            Err(error) => {
                eventloop.wipe();
                let (resume, resumed) = oneshot::channel();
                if net.send(Net::Down { error, resume }).await.is_err() || resumed.await.is_err() {
                    return;
                }
                // Requests the uplink queued before it heard of the failure,
                // and any reset it asked for meanwhile: this one covers it.
                eventloop.wipe();
                let _ = force.notified().now_or_never();
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// The spool is closed: deliver what is left, until the deadline.
    Draining {
        until: Instant,
    },
    /// The offline status is out: wait for its PUBACK, until the deadline.
    Leaving {
        until: Instant,
    },
    Done,
}

struct Uplink {
    client: Client,
    naming: Naming,
    spool: SpoolReader,
    /// Event publishes unacknowledged on this connection, at most.
    window: usize,
    keep_alive: Duration,
    force: Arc<Notify>,
    connected: bool,
    /// Correlation and delivery progress.
    delivery: Delivery,
    /// `mqtt.max_packet_size`.
    ceiling: u64,
    /// The largest packet that may be sent on this connection: the ceiling,
    /// or less if the broker said so in its CONNACK.
    max_packet: u64,
    prefetched: VecDeque<Record>,
    committed: Committed,

    status: Status,
    status_dirty: bool,
    checkpoints: Checkpoints,
    phase: Phase,
    broker_down_logged: bool,

    /// See [`Reporting::control`].
    control: watch::Receiver<bool>,
    /// See [`Reporting::connected`].
    up: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Uplink {
    async fn run(
        mut self,
        mut net: mpsc::Receiver<Net>,
        mut states: mpsc::Receiver<ReaderState>,
        mut outbound: mpsc::Receiver<Outbound>,
        mut readers: watch::Receiver<Vec<Arc<str>>>,
        mut status_requests: mpsc::Receiver<Request>,
        stage: Stage,
    ) {
        let mut committed = self.spool.committed.clone();
        let mut states_open = true;
        let mut readers_open = true;
        let mut spool_open = true;
        let mut control_open = true;
        let mut tick = interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while self.phase != Phase::Done {
            tokio::select! {
                event = stage.idle(net.recv()) => match event {
                    Some(Net::Event(event)) => self.on_event(event),
                    Some(Net::Down { error, resume }) => {
                        self.on_down(&error);
                        let _ = resume.send(());
                    }
                    None => return,
                },
                state = states.recv(), if states_open => match state {
                    Some(state) => {
                        // A reload's reader set before the states of its readers.
                        if readers.has_changed().unwrap_or(false) {
                            self.set_readers(&mut readers);
                        }
                        self.status_dirty |= self.status.set_reader(state);
                    }
                    None => states_open = false,
                },
                changed = readers.changed(), if readers_open => match changed {
                    Ok(()) => self.set_readers(&mut readers),
                    Err(_) => readers_open = false,
                },
                Some(request) = status_requests.recv() => {
                    let _ = request.reply.send(Ok(self.status.report()));
                }
                changed = committed.changed(), if spool_open => {
                    if changed.is_ok() {
                        self.committed = *committed.borrow_and_update();
                        self.status_dirty |= self.status.set_spool_dropped(self.committed.dropped);
                    } else {
                        spool_open = false;
                        self.committed.closed = true;
                    }
                }
                Some(message) = outbound.recv() => self.publish_outbound(message),
                // The status waits for it (see `publish_status_if_dirty`).
                changed = self.control.changed(), if control_open => {
                    control_open = changed.is_ok();
                }
                _ = tick.tick() => self.on_tick().await,
            }
            self.advance_phase();
            if self.connected && self.phase != Phase::Done {
                self.publish_status_if_dirty();
                self.publish_checkpoint_if_due();
                self.fill().await;
            }
        }
        self.report_acks().await;
        self.client.try_disconnect();
        // Let the poll task see the DISCONNECT go out.
        let _ = timeout(GOODBYE_GRACE, async { while net.recv().await.is_some() {} }).await;
        info!(
            delivered_below = self.delivery.watermark(),
            "uplink stopped"
        );
    }

    fn on_event(&mut self, event: Happened) {
        match event {
            Happened::Connected { max_packet, .. } => {
                self.max_packet = max_packet.map_or(self.ceiling, |m| self.ceiling.min(m.into()));
                info!(
                    "connected to broker; delivering from seq {} (packets up to {} bytes)",
                    self.delivery.watermark(),
                    self.max_packet
                );
                self.metrics.uplink.connected();
                self.up.send_replace(true);
                self.connected = true;
                self.broker_down_logged = false;
                self.delivery.restart();
                self.status_dirty = true;
            }
            Happened::Sent(pkid) => {
                if let Err(v) = self.delivery.sent(pkid) {
                    self.violation(v);
                }
            }
            Happened::Parked(pkid) => {
                if let Err(v) = self.delivery.parked(pkid) {
                    self.violation(v);
                }
            }
            Happened::Acked { pkid, refused } => {
                // rumqttc does not send a publish parked behind a refused
                // one: its state cannot be trusted past this point.
                let stuck = refused.is_some() && self.delivery.collision_parked();
                match self.delivery.acked(pkid, refused, Instant::now()) {
                    Ok(answer) => self.on_answer(answer),
                    Err(v) => self.violation(v),
                }
                if stuck {
                    debug!("a refusal with a publish parked behind it; resetting the client");
                    self.force.notify_one();
                }
            }
            // The uplink subscribes to nothing: the control client does.
            Happened::Message { .. }
            | Happened::Subscribed { .. }
            | Happened::Goodbye
            | Happened::Other => {}
        }
    }

    fn on_answer(&mut self, answer: Answer) {
        match answer {
            Answer::Delivered {
                at,
                first,
                released,
            } => {
                self.metrics.uplink.latency.record(at.elapsed());
                if first {
                    self.metrics.uplink.published();
                }
                if let Some(held) = released {
                    info!(
                        "the broker takes events on {} again, after {} refusals",
                        held.topic, held.refusals
                    );
                }
            }
            Answer::Refused {
                seq,
                topic,
                refusal,
                episode,
            } => {
                self.metrics.uplink.refused();
                // Once per episode: from no topic held to one held.
                if episode {
                    error!(
                        "the broker refused event {seq} on {topic}: {}; it stays spooled and is \
                         retried, with the later events of its topic (check the broker's ACL)",
                        describe(refusal)
                    );
                } else {
                    debug!(
                        "the broker refused event {seq} on {topic}: {}",
                        describe(refusal)
                    );
                }
            }
            Answer::Status { online: false } => {
                if let Phase::Leaving { .. } = self.phase {
                    self.phase = Phase::Done;
                }
            }
            Answer::Status { online: true } | Answer::Other => {}
        }
    }

    fn on_down(&mut self, error: &str) {
        if self.connected {
            warn!(
                "broker connection lost: {error}; reconnecting (undelivered events stay spooled)"
            );
        } else if !self.broker_down_logged {
            warn!("cannot reach broker: {error}; retrying (events stay spooled)");
        } else {
            debug!("broker still unreachable: {error}");
        }
        self.broker_down_logged = true;
        self.connected = false;
        self.metrics.uplink.disconnected();
        self.delivery.restart();
        self.prefetched.clear();
    }

    /// Something that cannot happen if rumqttc behaves as understood: do not
    /// guess which event an ack belongs to, reconnect and re-stream instead.
    fn violation(&mut self, what: Violation) {
        error!("uplink out of step with rumqttc ({what}); reconnecting");
        self.force.notify_one();
    }

    async fn on_tick(&mut self) {
        self.report_acks().await;
        // A half-open link (pulled cable: no FIN, no RST) stops acks without
        // an error; rumqttc's keep-alive notices at about 2x keep-alive.
        if self.delivery.stalled(Instant::now(), self.keep_alive * 2) {
            warn!(
                "no PUBACK for {:?}: the link looks dead; reconnecting",
                self.keep_alive * 2
            );
            self.force.notify_one();
        }
    }

    async fn report_acks(&mut self) {
        if let Some(watermark) = self.delivery.report() {
            self.spool.ack(watermark).await;
            self.metrics.uplink.set_delivered_below(watermark);
        }
    }

    fn advance_phase(&mut self) {
        let now = Instant::now();
        let delivered = self.delivery.watermark() >= self.committed.next_seq;
        self.phase = match self.phase {
            Phase::Running if self.committed.closed => Phase::Draining {
                until: now + DRAIN_GRACE,
            },
            Phase::Draining { until } if delivered || !self.connected || now >= until => {
                if !delivered {
                    let left = self.committed.next_seq - self.delivery.watermark();
                    warn!("{left} events stay spooled and will be delivered after restart");
                }
                // The last checkpoint goes out before the goodbye.
                if self.connected {
                    self.publish_checkpoint_if_due();
                }
                if self.connected && self.publish_status(false) {
                    Phase::Leaving {
                        until: now + GOODBYE_GRACE,
                    }
                } else {
                    Phase::Done
                }
            }
            Phase::Leaving { until } if now >= until || !self.connected => Phase::Done,
            phase => phase,
        };
    }

    fn set_readers(&mut self, readers: &mut watch::Receiver<Vec<Arc<str>>>) {
        let configured = readers.borrow_and_update().clone();
        self.status_dirty |= self.status.set_readers(&configured);
    }

    fn publish_outbound(&mut self, message: Outbound) {
        if !self.connected {
            debug!("not connected: dropped the publish to {}", message.topic);
            return;
        }
        let size = link::publish_size(&message.topic, message.payload.len());
        if size > self.max_packet {
            // Not spooled, so nothing to keep; sending it would fail the link.
            warn!(
                "dropped a {size}-byte publish to {}: the broker link takes at most {} bytes",
                message.topic, self.max_packet
            );
            return;
        }
        match self
            .client
            .try_publish(message.topic, message.qos, message.retain, message.payload)
        {
            Ok(()) => self.delivery.submitted(Sent::Other, Instant::now()),
            Err(e) => warn!("publish dropped: {e}"),
        }
    }

    fn publish_status_if_dirty(&mut self) {
        if self.status_dirty
            && *self.control.borrow()
            && matches!(self.phase, Phase::Running | Phase::Draining { .. })
        {
            self.status_dirty = !self.publish_status(true);
        }
    }

    fn publish_status(&mut self, online: bool) -> bool {
        let payload = self.status.to_json(online);
        match self
            .client
            .try_publish(self.naming.status(), QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => {
                self.delivery
                    .submitted(Sent::Status { online }, Instant::now());
                true
            }
            Err(e) => {
                debug!("status publish deferred: {e}");
                false
            }
        }
    }

    /// Publishes a checkpoint of what the spool committed when one is due
    /// (and at once once the spool has closed).
    fn publish_checkpoint_if_due(&mut self) {
        let (head, closed) = (self.committed.last(), self.committed.closed);
        self.checkpoints.update(head, closed, Instant::now());
        let Some(payload) = self.checkpoints.take() else {
            return;
        };
        match self.client.try_publish(
            self.naming.checkpoint(),
            QoS::AtLeastOnce,
            true,
            payload.clone(),
        ) {
            Ok(()) => self.delivery.submitted(Sent::Other, Instant::now()),
            Err(e) => {
                debug!("checkpoint publish deferred: {e}");
                self.checkpoints.retry(payload);
            }
        }
    }

    /// Publishes committed events from the cursor while the window has room.
    async fn fill(&mut self) {
        let now = Instant::now();
        for held in self.delivery.due(now) {
            self.spool
                .alarm("publish_refused", refused_detail(&held))
                .await;
        }
        if self.delivery.take_rewound() {
            self.prefetched.clear();
        }
        while self.delivery.has_room() && self.delivery.cursor() < self.committed.next_seq {
            if self.prefetched.is_empty() {
                let want = (self.window * 2).max(READ_AHEAD);
                let records = self.spool.read(self.delivery.cursor(), want).await;
                if records.is_empty() {
                    return; // logged by the spool; retried on the next wake-up
                }
                self.prefetched.extend(records);
            }
            let Some(record) = self.prefetched.pop_front() else {
                return;
            };
            let seq = record.seq;
            match self.delivery.next(seq, &record.topic, now) {
                Next::Skip | Next::Held => continue,
                Next::SendAfterHole { from, to } => {
                    error!("spool has no events {from}..{to}; skipping them");
                }
                Next::Send => {}
            }
            let size = link::publish_size(&record.topic, record.payload.len());
            if size > self.max_packet {
                if !self.set_aside(&record, size).await {
                    self.delivery.deferred(seq, &record.topic);
                    self.prefetched.clear();
                    return;
                }
                continue;
            }
            let topic = record.topic.clone();
            if let Err(e) =
                self.client
                    .try_publish(record.topic, QoS::AtLeastOnce, false, record.payload)
            {
                debug!("publish deferred: {e}");
                self.delivery.deferred(seq, &topic);
                self.prefetched.clear();
                return;
            }
            self.delivery.submitted(
                Sent::Event {
                    seq,
                    topic,
                    at: now,
                },
                now,
            );
        }
    }

    /// Moves an event that can never be sent to the spool's dead letters,
    /// with an `event_too_large` alarm. Returns whether it is out of the way.
    async fn set_aside(&mut self, record: &Record, size: u64) -> bool {
        let seq = record.seq;
        let detail = format!(
            "Event seq {seq} on {} is {size} bytes as an MQTT packet, more than the {} bytes \
             the broker link takes (mqtt.max_packet_size or the broker's limit): it is kept in \
             the spool's dead letters (custodyd spool peek) and the events behind it are delivered.",
            record.topic, self.max_packet
        );
        if !self.spool.set_aside(seq, detail).await {
            return false;
        }
        error!(
            seq,
            size,
            limit = self.max_packet,
            "an event too large to send was moved to the spool's dead letters"
        );
        self.metrics.uplink.too_large();
        self.delivery.set_aside(seq, &record.topic);
        true
    }
}

/// A refusal as people read it: `0x87 (not authorized)`.
fn describe(refusal: Refusal) -> String {
    format!("reason code {:#04x} ({})", refusal.code, refusal.name)
}

/// The `publish_refused` alarm's sentence.
fn refused_detail(held: &Held) -> String {
    format!(
        "The broker refused {} publishes on {} with {}, from event seq {} on: they stay spooled \
         and are retried, and events on other topics are delivered meanwhile.",
        held.refusals,
        held.topic,
        describe(held.refusal),
        held.seq
    )
}

/// Capped exponential backoff with jitter, so a fleet of gateways does not
/// reconnect in lock-step after a broker restart.
pub(super) struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    random: RandomState,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            current: min,
            random: RandomState::new(),
        }
    }

    pub(super) fn reset(&mut self) {
        self.current = self.min;
    }

    pub(super) fn next(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let mut h = self.random.build_hasher();
        h.write_u32(base.subsec_nanos());
        // 75 % to 100 % of the base.
        base.mul_f64(0.75 + (h.finish() % 1000) as f64 / 4000.0)
    }
}
