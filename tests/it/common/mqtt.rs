//! MQTT clients for tests: a recording [`Subscriber`] and one-off [`publish`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::task::JoinHandle;

use super::{PATIENCE, POLL};

/// One message as the subscriber received it.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Set on retained messages the broker replays on (re)subscribe.
    pub retain: bool,
}

impl Message {
    /// The payload as JSON; panics (showing the payload) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("payload of {self:?} is not JSON: {e}"))
    }

    /// The payload as text (lossy), for assertions and dumps.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retained = if self.retain { " (retained)" } else { "" };
        write!(f, "{}{retained}: {}", self.topic, self.text())
    }
}

/// A client subscribed (QoS 1) to one topic filter that records every message.
///
/// It reconnects by itself after broker restarts (clean session, so it
/// resubscribes on every ConnAck; retained messages are then delivered again
/// and recorded again). Messages published while it was disconnected are lost
/// to it, as to any clean-session client: after restarting the broker, wait
/// for [`Subscriber::wait_resubscribed`] before causing new publishes. A
/// [`Subscriber::connect_persistent`] one does not lose them.
pub struct Subscriber {
    client: AsyncClient,
    client_id: String,
    /// Its own topic for [`Subscriber::flush`] round trips, kept out of
    /// [`Subscriber::messages`].
    probe_topic: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    messages: Vec<Message>,
    /// Payloads seen on the probe topic.
    probes: Vec<Vec<u8>>,
    /// Completed subscriptions: 1 after connect, +1 per reconnect.
    epoch: u64,
    connected: bool,
    last_error: Option<String>,
}

impl Subscriber {
    /// Connects to `url` (`mqtt://host:port`) and subscribes to `filter`;
    /// returns only once the broker has acknowledged the subscription, so
    /// anything published afterwards is recorded.
    pub async fn connect(url: &str, filter: &str) -> Self {
        Self::connect_with(url, filter, unique_client_id("sub"), true).await
    }

    /// Like [`Subscriber::connect`], but with a persistent session: clean
    /// session off and the fixed `client_id`, so the broker queues the QoS 1
    /// messages published while this client is away (its own reconnects, or
    /// a [`Mosquitto::start_persistent`] broker's stop and restart) and
    /// delivers them when it is back. Nothing published after `connect`
    /// returns is then missed, whatever restarts in between; messages the
    /// broker re-sends after a reconnect are recorded again.
    ///
    /// `client_id` must be unique on the broker: a second client with the
    /// same id takes the session over and disconnects the first.
    ///
    /// [`Mosquitto::start_persistent`]: super::Mosquitto::start_persistent
    pub async fn connect_persistent(url: &str, filter: &str, client_id: &str) -> Self {
        Self::connect_with(url, filter, client_id.to_owned(), false).await
    }

    async fn connect_with(url: &str, filter: &str, client_id: String, clean: bool) -> Self {
        let probe_topic = format!("custodyd-harness/probe/{client_id}");
        let mut options = options(url, &client_id);
        options.set_clean_session(clean);
        let (client, eventloop) = AsyncClient::new(options, 64);
        let state = Arc::new(Mutex::new(State::default()));
        let filters = vec![
            SubscribeFilter::new(filter.to_owned(), QoS::AtLeastOnce),
            SubscribeFilter::new(probe_topic.clone(), QoS::AtLeastOnce),
        ];
        let task = tokio::spawn(run(client.clone(), eventloop, filters, state.clone()));
        let subscriber = Subscriber {
            client,
            client_id,
            probe_topic,
            state,
            task,
        };
        subscriber.wait_resubscribed(0, PATIENCE).await;
        subscriber
    }

    /// Everything received so far, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    /// The messages received after the first `from`, in arrival order: for
    /// following thousands of messages without copying them all each time.
    pub fn messages_since(&self, from: usize) -> Vec<Message> {
        let state = self.lock();
        state.messages.get(from..).unwrap_or_default().to_vec()
    }

    /// Polls the received messages until `pred` holds and returns them;
    /// panics after `timeout` with everything that did arrive.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&[Message]) -> bool,
        timeout: Duration,
    ) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if pred(&messages) {
                return messages;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: condition not met within {timeout:?}; received:\n{}",
                    self.client_id,
                    self.dump()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// How many times the subscription has been (re)established: 1 after
    /// `connect`, one more after each reconnect.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Waits until the subscription has been established again after
    /// `epoch` (a value from [`Subscriber::epoch`] taken before a broker
    /// restart).
    pub async fn wait_resubscribed(&self, epoch: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let state = self.lock();
                if state.epoch > epoch && state.connected {
                    return;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "{}: not subscribed within {timeout:?} (epoch {} > {epoch} wanted); \
                         last error: {:?}",
                        self.client_id, state.epoch, state.last_error
                    );
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A round trip through the broker on this client's own probe topic.
    ///
    /// When it returns, the subscriber is connected and subscribed, and
    /// whatever the broker had received before the probe has been delivered
    /// (mosquitto forwards in the order it receives).
    pub async fn flush(&self) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let token = format!("probe-{}", NEXT.fetch_add(1, Ordering::Relaxed)).into_bytes();
        let deadline = Instant::now() + PATIENCE;
        loop {
            // Re-sent every second: a probe queued while disconnected is
            // dropped by rumqttc on reconnecting to a clean session.
            self.client
                .publish(&self.probe_topic, QoS::AtLeastOnce, false, token.clone())
                .await
                .expect("queue probe publish");
            let resend = Instant::now() + Duration::from_secs(1);
            while Instant::now() < resend {
                if self.lock().probes.contains(&token) {
                    return;
                }
                if Instant::now() >= deadline {
                    let last_error = self.lock().last_error.clone();
                    panic!(
                        "{}: own probe did not come back within {PATIENCE:?}; last error: {last_error:?}",
                        self.client_id
                    );
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Asserts that no message matching `matching` arrives during `window`.
    ///
    /// Only for "nothing is published" assertions; the window is the thing
    /// measured, so it is a plain sleep. Quiet only counts if the subscriber
    /// was listening the whole time: it must be connected before, must not
    /// have reconnected (which could hide a loss), and a [`flush`] after the
    /// window makes sure messages the broker already had are not still in
    /// flight.
    ///
    /// [`flush`]: Subscriber::flush
    pub async fn assert_quiet_for(&self, window: Duration, matching: impl Fn(&Message) -> bool) {
        self.flush().await;
        let (epoch, seen) = {
            let state = self.lock();
            (state.epoch, state.messages.len())
        };
        tokio::time::sleep(window).await;
        self.flush().await;
        let (epoch_after, arrived): (u64, Vec<Message>) = {
            let state = self.lock();
            let arrived = state.messages[seen..].iter().filter(|m| matching(m));
            (state.epoch, arrived.cloned().collect())
        };
        assert_eq!(
            epoch_after, epoch,
            "{}: reconnected during the quiet window, so it may have missed messages",
            self.client_id
        );
        assert!(
            arrived.is_empty(),
            "{}: expected nothing for {window:?}, got {arrived:#?}",
            self.client_id
        );
    }

    fn dump(&self) -> String {
        let state = self.lock();
        let mut out: String = state
            .messages
            .iter()
            .map(|m| format!("  {m:?}\n"))
            .collect();
        if out.is_empty() {
            out = "  (nothing)\n".into();
        }
        out + &format!(
            "  [epoch {}, connected {}, last error {:?}]",
            state.epoch, state.connected, state.last_error
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it (a failing predicate) leaves plain data
        // behind; keep using it rather than cascade into "poisoned".
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The subscriber's event loop: records publishes, resubscribes on every
/// ConnAck, and backs off between failed connection attempts (rumqttc has no
/// backoff of its own and would otherwise spin while the broker is down).
async fn run(
    client: AsyncClient,
    mut eventloop: EventLoop,
    filters: Vec<SubscribeFilter>,
    state: Arc<Mutex<State>>,
) {
    let probe_topic = filters[1].path.clone();
    let mut backoff = Duration::from_millis(50);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(50);
                // try_: awaiting the request channel from the task that
                // drains it could deadlock. A failure must not kill this
                // task silently: it shows up in wait_resubscribed's panic.
                if let Err(e) = client.try_subscribe_many(filters.clone()) {
                    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                    state.last_error = Some(format!("queue subscribe: {e}"));
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                if ack
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
                {
                    state.epoch += 1;
                    state.connected = true;
                } else {
                    state.last_error = Some(format!("subscription refused: {ack:?}"));
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                if p.topic == probe_topic {
                    state.probes.push(p.payload.to_vec());
                } else {
                    state.messages.push(Message {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    });
                }
            }
            Ok(_) => {}
            Err(e) => {
                {
                    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                    state.connected = false;
                    state.last_error = Some(e.to_string());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Publishes one QoS 1 message from a fresh client and returns once the
/// broker has acknowledged it (so a retained message is stored by then).
/// Retries while the broker is unreachable, panics after [`PATIENCE`].
pub async fn publish(url: &str, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
    publish_many(url, topic, vec![payload.into()], retain).await;
}

/// Publishes `payloads` to `topic` from one fresh client, as fast as the
/// broker takes them (QoS 1), and returns once it has acknowledged all.
pub async fn publish_many(url: &str, topic: &str, payloads: Vec<Vec<u8>>, retain: bool) {
    let client_id = unique_client_id("pub");
    let (client, mut eventloop) = AsyncClient::new(options(url, &client_id), payloads.len() + 8);
    let deadline = Instant::now() + PATIENCE;
    let mut last_error: Option<ConnectionError> = None;
    let mut acked = 0;
    while Instant::now() < deadline {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, eventloop.poll()).await {
            // Queued on each ConnAck: a reconnect to a clean session drops
            // whatever rumqttc had queued before.
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                acked = 0;
                for payload in &payloads {
                    client
                        .try_publish(topic, QoS::AtLeastOnce, retain, payload.clone())
                        .expect("queue publish");
                }
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) if acked + 1 < payloads.len() => acked += 1,
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                let _ = client.try_disconnect();
                // Let the DISCONNECT go out; the broker then drops the
                // connection and poll errors.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while eventloop.poll().await.is_ok() {}
                })
                .await;
                return;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                last_error = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => break,
        }
    }
    panic!("{client_id}: publish to {topic} not acknowledged within {PATIENCE:?}; last error: {last_error:?}");
}

fn options(url: &str, client_id: &str) -> MqttOptions {
    let (host, port) = url
        .strip_prefix("mqtt://")
        .and_then(|rest| rest.rsplit_once(':'))
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .unwrap_or_else(|| panic!("expected mqtt://host:port, got {url:?}"));
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_clean_session(true)
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(1 << 20, 1 << 20);
    options
}

/// Client ids unique across the parallel tests of one process and across
/// test processes sharing a broker.
fn unique_client_id(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "harness-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
