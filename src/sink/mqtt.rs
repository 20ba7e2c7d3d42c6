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

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, LastWill, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use super::bus::{self, Bus, Inbound, Outbound, Route};
use super::{connect, Status};
use crate::command::Request;
use crate::config::{Config, ConfigErrors};
use crate::health::metrics::Metrics;
use crate::ops::systemd::Stage;
use crate::sources::ReaderState;
use crate::spool::{Committed, Record, SpoolReader};
use crate::topic::Naming;

/// How long shutdown waits for the broker to take what is still spooled.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long shutdown waits for the offline status to be acknowledged.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);
/// Acknowledged events are deleted from the spool in batches this often.
const TICK: Duration = Duration::from_millis(250);
/// Committed records fetched from the spool per read, at least. Each read
/// queues behind the spool task's group commit (up to `flush_interval` of
/// waiting for a batch plus its fsync), so while new events keep arriving a
/// small read-ahead caps the drain of a backlog: with 64 records a read the
/// load harness drained an outage's backlog at about 4,700 events/s while
/// new events kept coming at 3,900/s; with 512, at about 20,000/s. It costs
/// up to 512 records (about 270 KiB) held in memory.
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
    let (client, eventloop) = connect::client(mqtt, config.client_id(), capacity, |options| {
        // rumqttc's session memory is not trusted (see the module doc).
        options.set_clean_session(true);
        // Room for the event window plus status and bus publishes, so pkids never
        // collide while the broker acknowledges in order.
        options.set_inflight(u16::try_from(window + OUTBOUND_ROOM).unwrap_or(u16::MAX));
        options.set_last_will(LastWill::new(
            naming.status(),
            Status::last_will(),
            QoS::AtLeastOnce,
            true,
        ));
    })?;

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
    } = reporting;
    metrics.uplink.set_delivered_below(watermark);
    let status = Status::new(readers.borrow().iter().cloned());

    let uplink = Uplink {
        client,
        naming,
        spool,
        window,
        keep_alive: mqtt.keep_alive,
        force,
        connected: false,
        submitted: VecDeque::new(),
        parked: None,
        inflight: HashMap::new(),
        in_window: 0,
        waiting_since: None,
        cursor: watermark,
        watermark,
        acked: BTreeSet::new(),
        reported: watermark,
        prefetched: VecDeque::new(),
        committed,
        status,
        status_dirty: true,
        phase: Phase::Running,
        broker_down_logged: false,
        routes: bus.routes,
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
    Event(Event),
    /// The connection failed or was torn down. rumqttc's state is already
    /// wiped; the poll task waits on `resume` before it reconnects.
    Down {
        error: String,
        resume: oneshot::Sender<()>,
    },
}

/// Owns the `EventLoop`. Its only state is the connection and the backoff.
async fn poll_loop(
    mut eventloop: EventLoop,
    net: mpsc::Sender<Net>,
    force: Arc<Notify>,
    mut backoff: Backoff,
) {
    loop {
        let polled = tokio::select! {
            polled = eventloop.poll() => polled.map_err(|e: ConnectionError| connect::describe(&e)),
            // The uplink saw something impossible (or a stuck link): start over.
            _ = force.notified() => Err("reset by the uplink".to_string()),
        };
        match polled {
            Ok(event) => {
                let goodbye = matches!(event, Event::Outgoing(Outgoing::Disconnect));
                if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                    backoff.reset();
                }
                if net.send(Net::Event(event)).await.is_err() || goodbye {
                    return;
                }
            }
            Err(error) => {
                wipe(&mut eventloop);
                let (resume, resumed) = oneshot::channel();
                if net.send(Net::Down { error, resume }).await.is_err() || resumed.await.is_err() {
                    return;
                }
                // Requests the uplink queued before it heard of the failure,
                // and any reset it asked for meanwhile: this one covers it.
                wipe(&mut eventloop);
                let _ = force.notified().now_or_never();
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
}

/// Forgets everything rumqttc holds, so nothing from an old connection is
/// replayed into a new one behind the uplink's back.
fn wipe(eventloop: &mut EventLoop) {
    eventloop.clean();
    eventloop.pending.clear();
    eventloop.state.events.clear();
    eventloop.state.collision = None;
}

/// A publish handed to rumqttc, waiting to be matched to its packet id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// A spooled event, and when it was handed to rumqttc (for the publish
    /// latency on the health topic).
    Event {
        seq: u64,
        at: Instant,
    },
    Status {
        online: bool,
    },
    /// A bus publish: nothing waits for its acknowledgement.
    Other,
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
    client: AsyncClient,
    naming: Naming,
    spool: SpoolReader,
    /// Event publishes unacknowledged on this connection, at most.
    window: usize,
    keep_alive: Duration,
    force: Arc<Notify>,
    connected: bool,

    // Correlation of rumqttc's events with what was published, in order.
    submitted: VecDeque<Sent>,
    /// Popped by `AwaitAck` (a pkid collision): the next `Publish` is this one.
    parked: Option<Sent>,
    inflight: HashMap<u16, Sent>,
    in_window: usize,
    /// Since when the uplink waits for an acknowledgement with none arriving.
    waiting_since: Option<Instant>,

    // Delivery progress.
    /// Next `seq` to publish on this connection.
    cursor: u64,
    /// Every `seq` below is acknowledged.
    watermark: u64,
    /// Acknowledged `seq`s above the watermark (acks may come out of order).
    acked: BTreeSet<u64>,
    /// Watermark last reported to the spool.
    reported: u64,
    prefetched: VecDeque<Record>,
    committed: Committed,

    status: Status,
    status_dirty: bool,
    phase: Phase,
    broker_down_logged: bool,

    /// Subscriptions renewed on every connect, and where their messages go.
    routes: Vec<Route>,
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
                _ = tick.tick() => self.on_tick().await,
            }
            self.advance_phase();
            if self.connected && self.phase != Phase::Done {
                self.publish_status_if_dirty();
                self.fill().await;
            }
        }
        self.report_acks().await;
        let _ = self.client.try_disconnect();
        // Let the poll task see the DISCONNECT go out.
        let _ = timeout(GOODBYE_GRACE, async { while net.recv().await.is_some() {} }).await;
        info!(delivered_below = self.watermark, "uplink stopped");
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                info!(
                    "connected to broker; delivering from seq {}",
                    self.watermark
                );
                self.metrics.uplink.connected();
                self.connected = true;
                self.broker_down_logged = false;
                self.cursor = self.watermark;
                self.status_dirty = true;
                self.subscribe();
            }
            Event::Incoming(Packet::Publish(publish)) => self.route(publish),
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                match self.parked.take().or_else(|| self.submitted.pop_front()) {
                    // QoS 0 publishes carry pkid 0 and are never acknowledged.
                    Some(sent) if pkid != 0 => {
                        self.inflight.insert(pkid, sent);
                    }
                    Some(_) => {}
                    None => self.violation(format!(
                        "rumqttc sent publish {pkid} that was never submitted"
                    )),
                }
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => match self.submitted.pop_front() {
                Some(sent) => self.parked = Some(sent),
                None => self.violation(format!(
                    "rumqttc parked publish {pkid} that was never submitted"
                )),
            },
            Event::Incoming(Packet::PubAck(ack)) => match self.inflight.remove(&ack.pkid) {
                Some(Sent::Event { seq, at }) => {
                    self.metrics.uplink.latency.record(at.elapsed());
                    self.on_acked(seq);
                }
                Some(Sent::Status { online: false }) => {
                    if let Phase::Leaving { .. } = self.phase {
                        self.phase = Phase::Done;
                    }
                }
                Some(Sent::Status { online: true } | Sent::Other) => {}
                None => self.violation(format!("PUBACK for unknown packet id {}", ack.pkid)),
            },
            _ => {}
        }
    }

    fn on_acked(&mut self, seq: u64) {
        self.in_window = self.in_window.saturating_sub(1);
        self.waiting_since = (self.in_window > 0).then(Instant::now);
        if seq < self.watermark {
            return;
        }
        if self.acked.insert(seq) {
            self.metrics.uplink.published();
        }
        self.advance_watermark();
    }

    fn advance_watermark(&mut self) {
        while self.acked.remove(&self.watermark) {
            self.watermark += 1;
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
        self.submitted.clear();
        self.parked = None;
        self.inflight.clear();
        self.in_window = 0;
        self.waiting_since = None;
        self.prefetched.clear();
        self.cursor = self.watermark;
    }

    /// Something that cannot happen if rumqttc behaves as understood: do not
    /// guess which event an ack belongs to, reconnect and re-stream instead.
    fn violation(&mut self, what: String) {
        error!("uplink out of step with rumqttc ({what}); reconnecting");
        self.force.notify_one();
    }

    async fn on_tick(&mut self) {
        self.report_acks().await;
        // A half-open link (pulled cable: no FIN, no RST) stops acks without
        // an error; rumqttc's keep-alive notices at about 2x keep-alive.
        if self
            .waiting_since
            .is_some_and(|t| t.elapsed() > self.keep_alive * 2)
        {
            self.waiting_since = None;
            warn!(
                "no PUBACK for {:?}: the link looks dead; reconnecting",
                self.keep_alive * 2
            );
            self.force.notify_one();
        }
    }

    async fn report_acks(&mut self) {
        if self.watermark > self.reported {
            self.spool.ack(self.watermark).await;
            self.reported = self.watermark;
            self.metrics.uplink.set_delivered_below(self.watermark);
        }
    }

    fn advance_phase(&mut self) {
        let now = Instant::now();
        let delivered = self.watermark >= self.committed.next_seq;
        self.phase = match self.phase {
            Phase::Running if self.committed.closed => Phase::Draining {
                until: now + DRAIN_GRACE,
            },
            Phase::Draining { until } if delivered || !self.connected || now >= until => {
                if !delivered {
                    let left = self.committed.next_seq - self.watermark;
                    warn!("{left} events stay spooled and will be delivered after restart");
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

    /// The session is clean, so every connect starts without subscriptions.
    fn subscribe(&mut self) {
        for route in &self.routes {
            if let Err(e) = self
                .client
                .try_subscribe(route.filter.as_str(), QoS::AtLeastOnce)
            {
                // The request queue is sized for this; a failure is a reset in progress.
                warn!("subscribing to {} failed: {e}", route.filter);
            }
        }
    }

    fn route(&mut self, publish: rumqttc::Publish) {
        let Some(route) = self
            .routes
            .iter()
            .find(|r| bus::matches(&r.filter, &publish.topic))
        else {
            debug!("message on {} matches no subscription", publish.topic);
            return;
        };
        let message = Inbound {
            topic: publish.topic,
            payload: publish.payload,
            retain: publish.retain,
        };
        if let Err(e) = route.to.try_send(message) {
            error!(
                "dropped a message on {}: its handler is not keeping up ({e})",
                route.filter
            );
        }
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
        match self
            .client
            .try_publish(message.topic, message.qos, message.retain, message.payload)
        {
            Ok(()) => self.submitted.push_back(Sent::Other),
            Err(e) => warn!("publish dropped: {e}"),
        }
    }

    fn publish_status_if_dirty(&mut self) {
        if self.status_dirty && matches!(self.phase, Phase::Running | Phase::Draining { .. }) {
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
                self.submitted.push_back(Sent::Status { online });
                true
            }
            Err(e) => {
                debug!("status publish deferred: {e}");
                false
            }
        }
    }

    /// Publishes committed events from the cursor while the window has room.
    async fn fill(&mut self) {
        while self.in_window < self.window && self.cursor < self.committed.next_seq {
            if self.prefetched.is_empty() {
                let want = (self.window * 2).max(READ_AHEAD);
                let records = self.spool.read(self.cursor, want).await;
                if records.is_empty() {
                    return; // logged by the spool; retried on the next wake-up
                }
                self.prefetched.extend(records);
            }
            let Some(record) = self.prefetched.pop_front() else {
                return;
            };
            if record.seq < self.cursor {
                continue;
            }
            if record.seq > self.cursor {
                // Only a damaged spool has holes; what is not there cannot be sent.
                error!(
                    "spool has no events {}..{}; skipping them",
                    self.cursor, record.seq
                );
                self.acked.extend(self.cursor..record.seq);
                self.advance_watermark();
            }
            let seq = record.seq;
            self.cursor = seq + 1;
            if self.acked.contains(&seq) {
                continue;
            }
            if let Err(e) =
                self.client
                    .try_publish(record.topic, QoS::AtLeastOnce, false, record.payload)
            {
                debug!("publish deferred: {e}");
                self.cursor = seq;
                self.prefetched.clear();
                return;
            }
            self.submitted.push_back(Sent::Event {
                seq,
                at: Instant::now(),
            });
            self.in_window += 1;
            self.waiting_since.get_or_insert_with(Instant::now);
        }
    }
}

/// Capped exponential backoff with jitter, so a fleet of gateways does not
/// reconnect in lock-step after a broker restart.
struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    random: RandomState,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            current: min,
            random: RandomState::new(),
        }
    }

    fn reset(&mut self) {
        self.current = self.min;
    }

    fn next(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let mut h = self.random.build_hasher();
        h.write_u32(base.subsec_nanos());
        // 75 % to 100 % of the base.
        base.mul_f64(0.75 + (h.finish() % 1000) as f64 / 4000.0)
    }
}
