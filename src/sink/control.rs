//! The control client: a second MQTT connection, used only to receive the
//! release policy, pickup manifests and commands, in a session the broker
//! keeps while the gateway is away.
//!
//! The uplink's session is clean (its spool, not rumqttc, knows what is
//! still to deliver), so a broker forgets its subscriptions at every
//! disconnect, and a control message published then without the retain
//! flag (a revocation, an unlock) would never reach the gateway. This
//! client connects with a stable id (`<client id>-control`), without a clean
//! start and with a Session Expiry Interval (`mqtt.session_expiry`;
//! MQTT 3.1.1: a persistent session), and subscribes at QoS 1: the broker
//! queues what matches while the gateway is stopped, restarting or cut off,
//! and hands it over at the next connect. It publishes nothing, so none of
//! the uplink's delivery logic applies here.
//!
//! It acknowledges (PUBACK) a message only when its handler settles the
//! message's [`Ack`] (its effect stored, or its refusal reported): until
//! then the broker keeps it in the session, so a crash or power cut between
//! delivery and commit leaves it to be re-sent at the next connect, with
//! DUP. A delivery is acknowledged on the connection it came on or not at
//! all: after a reconnect the broker re-sends what was not acknowledged, and
//! the handlers take the copy again (they are idempotent: the newest
//! `issued_at` wins, a command id runs once). MQTT re-sends only then, so a
//! message a handler dropped (its commit failed) makes the client reconnect
//! after a backoff: a revocation that met a failing disk is taken again as
//! soon as the disk allows, not at whatever reconnect comes next.
//!
//! Subscriptions are renewed on every connect anyway: a session the broker
//! lost (expired, or a restart without persistence) has none, and the
//! broker re-sends retained messages, the local copies' safety net.
//! Everything received goes to the same handlers, and through the same trust
//! checks, as before; a handler that lags holds this client back (the
//! broker keeps the rest) rather than losing a message.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::link::{self, Client, Connection, Happened, Receipt, Session};
use super::mqtt::Backoff;
use crate::bus::{self, Ack, Bus, Inbound, Route, Settled};
use crate::config::{Config, ConfigErrors};

/// The longest wait before a reconnect that has dropped deliveries re-sent:
/// a disk that keeps failing would otherwise have every retained message
/// re-sent every few seconds.
const REDELIVER_MAX: Duration = Duration::from_secs(300);
/// How long shutdown waits for the DISCONNECT to go out.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);
/// Room in rumqttc's request queue for PUBACKs, besides the subscriptions:
/// more than a broker sends unacknowledged (Mosquitto: 20 by default).
const ACK_ROOM: usize = 1024;

/// Starts the control client with the subscriptions registered on `bus`
/// (they move here). It first connects once `uplink` says the uplink has,
/// so that replies to what the broker queued can go out at once. It
/// disconnects, leaving its session to the broker, once `shutdown` is
/// cancelled; the handlers' inputs close when it ends. The returned flag
/// turns true once the broker has confirmed all subscriptions for the first
/// time.
pub fn spawn(
    config: &Config,
    bus: &mut Bus,
    uplink: watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> Result<(JoinHandle<()>, watch::Receiver<bool>), ConfigErrors> {
    let mqtt = &config.mqtt;
    let routes = std::mem::take(&mut bus.routes);
    let client_id = config.control_client_id();
    let session = Session::Kept {
        expiry: mqtt.session_expiry,
    };
    let capacity = routes.len() + 8 + ACK_ROOM;
    let (client, link) = link::open(mqtt, &client_id, capacity, session)?;
    let (ready, subscribed) = watch::channel(false);
    let (settle, settled) = mpsc::unbounded_channel();
    let control = Control {
        client,
        routes,
        ready,
        settle,
        unacked: HashMap::new(),
        deliveries: 0,
        pending: 0,
        backoff: Backoff::new(mqtt.reconnect_min, mqtt.reconnect_max),
        redeliver: None,
        redelivery: Redelivery {
            backoff: Backoff::new(mqtt.reconnect_min, REDELIVER_MAX),
            last_drop: None,
        },
        connected: false,
        down_logged: false,
    };
    info!(client_id, session_expiry = ?mqtt.session_expiry, "control client starting");
    Ok((
        tokio::spawn(control.run(link, settled, uplink, shutdown)),
        subscribed,
    ))
}

struct Control {
    client: Client,
    routes: Vec<Route>,
    /// Whether all subscriptions were confirmed once since start.
    ready: watch::Sender<bool>,
    /// Where the handlers settle deliveries.
    settle: mpsc::UnboundedSender<Settled>,
    /// Deliveries of this connection not settled yet, by their number.
    unacked: HashMap<u64, Receipt>,
    /// Deliveries numbered so far.
    deliveries: u64,
    /// SUBACKs still awaited on this connection.
    pending: usize,
    backoff: Backoff,
    /// When to reconnect so that the broker re-sends dropped deliveries.
    redeliver: Option<Instant>,
    redelivery: Redelivery,
    connected: bool,
    down_logged: bool,
}

impl Control {
    async fn run(
        mut self,
        mut link: Connection,
        mut settled: mpsc::UnboundedReceiver<Settled>,
        mut uplink: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            // An uplink gone is a shutdown under way.
            up = uplink.wait_for(|up| *up) => if up.is_err() { return },
        }
        'connection: loop {
            // Settling goes on while a poll is under way: cancelling the
            // poll could lose a packet it was writing.
            let polled = {
                let poll = link.poll();
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break 'connection,
                        Some(settled) = settled.recv() => self.on_settled(settled),
                        () = until(self.redeliver) => break None,
                        polled = &mut poll => break Some(polled),
                    }
                }
            };
            let Some(polled) = polled else {
                // Whatever the poll was writing is lost with the connection;
                // the broker re-sends what it was not acknowledged for.
                self.reconnect_for_redelivery(&mut link);
                continue;
            };
            match polled {
                Ok(Happened::Connected {
                    session_present, ..
                }) => self.on_connected(session_present),
                Ok(Happened::Subscribed { granted }) => self.on_subscribed(granted),
                Ok(Happened::Message {
                    topic,
                    payload,
                    retain,
                    receipt,
                }) => {
                    self.deliveries += 1;
                    self.unacked.insert(self.deliveries, receipt);
                    let message = Inbound {
                        topic,
                        payload,
                        retain,
                        ack: Ack::new(self.deliveries, self.settle.clone()),
                    };
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        () = self.route(message) => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.on_down(&e);
                    // What was queued for the lost connection is renewed
                    // after the next CONNACK.
                    link.wipe();
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        () = tokio::time::sleep(self.backoff.next()) => {}
                    }
                }
            }
        }
        if self.connected {
            // What the handlers stored by now need not come again.
            while let Ok(settled) = settled.try_recv() {
                self.on_settled(settled);
            }
            // A DISCONNECT ends the connection, not the session.
            self.client.try_disconnect();
            let goodbye = async {
                while let Ok(event) = link.poll().await {
                    if matches!(event, Happened::Goodbye) {
                        return;
                    }
                }
            };
            let _ = timeout(GOODBYE_GRACE, goodbye).await;
        }
        info!("control client stopped; the broker keeps its session");
    }

    fn on_connected(&mut self, session_present: bool) {
        self.backoff.reset();
        self.connected = true;
        self.down_logged = false;
        if session_present {
            info!("control session resumed: what arrived while away follows");
        } else {
            info!(
                "control session new: nothing was kept for this gateway (first start, \
                 expired after mqtt.session_expiry, or a broker without persistence); \
                 retained messages follow"
            );
        }
        // Unsettled deliveries of the last connection come again.
        self.unacked.clear();
        self.pending = 0;
        for route in &self.routes {
            match self
                .client
                .try_subscribe(&route.filter, rumqttc::QoS::AtLeastOnce)
            {
                Ok(()) => self.pending += 1,
                // The request queue is sized for this; a failure is a reset in progress.
                Err(e) => warn!("subscribing to {} failed: {e}", route.filter),
            }
        }
        self.ready_if_subscribed();
    }

    fn on_subscribed(&mut self, granted: bool) {
        if !granted {
            error!(
                "the broker refused a control subscription: release policy, manifests or \
                 commands do not reach this gateway (check the broker's ACL for mqtt.username)"
            );
        }
        self.pending = self.pending.saturating_sub(1);
        self.ready_if_subscribed();
    }

    fn ready_if_subscribed(&self) {
        if self.pending == 0 && !*self.ready.borrow() {
            info!("control subscriptions in place");
            self.ready.send_replace(true);
        }
    }

    fn on_down(&mut self, error: &str) {
        // Any reconnect re-sends what was dropped.
        self.redeliver = None;
        if self.connected {
            warn!("control connection lost: {error}; reconnecting (the broker queues meanwhile)");
        } else if !self.down_logged {
            warn!("control client cannot reach the broker: {error}; retrying");
        } else {
            debug!("control client: broker still unreachable: {error}");
        }
        self.connected = false;
        self.down_logged = true;
        self.unacked.clear();
    }

    /// Acknowledges a delivery of this connection whose effect is durable;
    /// for one dropped unsettled, plans the reconnect that brings it again;
    /// forgets one of a connection gone.
    fn on_settled(&mut self, settled: Settled) {
        match settled {
            Settled::Done(id) => {
                let Some(receipt) = self.unacked.remove(&id) else {
                    return;
                };
                if let Err(e) = self.client.try_ack(receipt) {
                    warn!("acknowledging a control message failed: {e}; the broker re-sends it");
                }
            }
            Settled::Dropped(id) => {
                if self.unacked.remove(&id).is_some() && self.redeliver.is_none() {
                    let now = Instant::now();
                    let after = self.redelivery.after_drop(now);
                    warn!(
                        "a control message was not handled; the broker keeps it, and the \
                         control client reconnects in {after:?} to have it re-sent"
                    );
                    self.redeliver = Some(now + after);
                }
            }
        }
    }

    /// Drops the connection without a DISCONNECT: the broker keeps the
    /// session and re-sends its unacknowledged messages at the reconnect,
    /// which the next poll makes.
    fn reconnect_for_redelivery(&mut self, link: &mut Connection) {
        self.redeliver = None;
        info!("control client reconnecting to have unhandled messages re-sent");
        link.wipe();
        self.connected = false;
        self.unacked.clear();
    }

    /// Hands `message` to the handler of the first matching subscription,
    /// waiting while it is busy.
    async fn route(&self, message: Inbound) {
        debug!(topic = %message.topic, retain = message.retain, "control message received");
        let Some(route) = self
            .routes
            .iter()
            .find(|r| bus::matches(&r.filter, &message.topic))
        else {
            // The session may hold a subscription this configuration no
            // longer makes: what it brings is acknowledged, or it would
            // fill the broker's in-flight window and hold back the rest.
            debug!("message on {} matches no subscription", message.topic);
            message.ack.done();
            return;
        };
        if route.to.send(message).await.is_err() {
            debug!("the handler of {} has ended", route.filter);
        }
    }
}

/// How long to wait before reconnecting for dropped deliveries: growing
/// while drops keep following each other (each reconnect brings the failing
/// message again), from the start again once they have stopped for a while.
struct Redelivery {
    backoff: Backoff,
    last_drop: Option<Instant>,
}

impl Redelivery {
    fn after_drop(&mut self, now: Instant) -> Duration {
        if self
            .last_drop
            .is_some_and(|at| now.duration_since(at) > 2 * REDELIVER_MAX)
        {
            self.backoff.reset();
        }
        self.last_drop = Some(now);
        self.backoff.next()
    }
}

/// Sleeps until `at`, or forever without one.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_in_a_row_wait_longer_and_a_new_episode_starts_over() {
        let min = Duration::from_millis(250);
        let mut redelivery = Redelivery {
            backoff: Backoff::new(min, REDELIVER_MAX),
            last_drop: None,
        };
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..12 {
            let wait = redelivery.after_drop(now);
            waits.push(wait);
            now += wait;
        }
        assert!(waits[0] <= min, "{waits:?}");
        assert!(waits[1] > min, "growing: {waits:?}");
        assert!(
            waits.iter().all(|w| *w <= REDELIVER_MAX),
            "capped: {waits:?}"
        );
        assert!(waits[11] > REDELIVER_MAX / 2, "{waits:?}");
        // Quiet for longer than twice the cap: the next drop is a new episode.
        now += 2 * REDELIVER_MAX + Duration::from_secs(1);
        assert!(redelivery.after_drop(now) <= min);
    }
}
