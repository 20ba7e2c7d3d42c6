//! The observer at the broker: a rumqttc client subscribed to the gateway's
//! topics that timestamps every message as it arrives and matches custody
//! events to the frames that caused them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Deserialize;
use tokio::sync::watch;

use crate::workload::parse_tag;
use crate::writer::Progress;

#[derive(Deserialize)]
struct EventJson<'a> {
    seq: u64,
    #[serde(borrow)]
    transition: Option<&'a str>,
    asset: Option<AssetJson<'a>>,
    reads: Option<u64>,
}

#[derive(Deserialize)]
struct AssetJson<'a> {
    id: &'a str,
}

/// Waiting for the backlog of an outage to be delivered.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// Delivered once an event with this `seq` (or later) arrives.
    pub until_seq: u64,
    pub first: Option<Instant>,
    pub caught_up: Option<Instant>,
}

/// How many unmatched events and unanswered visits the report shows.
pub const EXAMPLES: usize = 20;

#[derive(Default)]
pub struct Observed {
    pub custody: u64,
    pub arrived: u64,
    pub departed: u64,
    pub alarms: u64,
    /// Events with a `seq` already seen (at-least-once re-deliveries).
    pub duplicates: u64,
    pub max_seq: u64,
    /// Σ `reads` of `departed` events: raw reads the daemon folded in.
    pub reads_departed: u64,
    /// When the visit's first frame was written, and from then to its
    /// `arrived` received, in ms.
    pub arrivals: Vec<(Instant, f64)>,
    /// `departed` received minus (last frame written + departure timeout), ms.
    pub departure_lag_ms: Vec<f64>,
    /// Events for which the writer owed nothing (should stay 0).
    pub unmatched: u64,
    /// The first few of those, as received.
    pub unmatched_payloads: Vec<String>,
    pub first_event: Option<Instant>,
    pub last_event: Option<Instant>,
    pub drain: Option<Drain>,
    seen: Vec<u64>,
}

impl Observed {
    fn unmatched(&mut self, payload: &[u8]) {
        self.unmatched += 1;
        if self.unmatched_payloads.len() < EXAMPLES {
            let payload = String::from_utf8_lossy(payload).into_owned();
            self.unmatched_payloads.push(payload);
        }
    }

    /// Records `seq`; false if it was seen before.
    fn first_sighting(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1024, 0);
        }
        let fresh = self.seen[word] & bit == 0;
        self.seen[word] |= bit;
        fresh
    }
}

pub struct Subscriber {
    pub observed: Arc<Mutex<Observed>>,
    /// Latest retained status payload.
    pub status: watch::Receiver<String>,
}

impl Subscriber {
    /// Connects and subscribes; returns once the subscription is acknowledged.
    pub async fn start(
        port: u16,
        prefix: &str,
        progress: Arc<Progress>,
        departure_timeout: Duration,
    ) -> Subscriber {
        let mut options = MqttOptions::new("custodyd-load-observer", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_inflight(1000);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let observed = Arc::new(Mutex::new(Observed::default()));
        let (status_tx, status) = watch::channel(String::new());
        let (subscribed_tx, mut subscribed) = watch::channel(false);
        let filter = format!("{prefix}/#");
        let status_topic = format!("{prefix}/status");
        let alarm_prefix = format!("{prefix}/alarm/");
        let custody_prefix = format!("{prefix}/custody/");
        let shared = observed.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(&filter, QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subscribed_tx.send_replace(true);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let at = Instant::now();
                        if p.topic == status_topic {
                            status_tx.send_replace(String::from_utf8_lossy(&p.payload).into());
                            continue;
                        }
                        // Health and checkpoints are not spooled events: a
                        // checkpoint's `seq` names the event it signs.
                        let alarm = p.topic.starts_with(&alarm_prefix);
                        if alarm || p.topic.starts_with(&custody_prefix) {
                            record(&shared, &progress, at, &p.payload, alarm, departure_timeout);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("load: observer lost the broker: {e}; reconnecting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let _ = subscribed.wait_for(|s| *s).await;
        Subscriber { observed, status }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn record(
    observed: &Mutex<Observed>,
    progress: &Progress,
    at: Instant,
    payload: &[u8],
    alarm: bool,
    departure_timeout: Duration,
) {
    let Ok(event) = serde_json::from_slice::<EventJson>(payload) else {
        eprintln!("load: not an event: {}", String::from_utf8_lossy(payload));
        return;
    };
    let mut o = observed.lock().unwrap();
    o.first_event.get_or_insert(at);
    o.last_event = Some(at);
    o.max_seq = o.max_seq.max(event.seq);
    if let Some(drain) = &mut o.drain {
        drain.first.get_or_insert(at);
        if event.seq >= drain.until_seq && drain.caught_up.is_none() {
            drain.caught_up = Some(at);
        }
    }
    if !o.first_sighting(event.seq) {
        o.duplicates += 1;
        return;
    }
    if alarm {
        o.alarms += 1;
        return;
    }
    o.custody += 1;
    let tag = event.asset.as_ref().and_then(|a| parse_tag(a.id));
    let mut owed = progress.owed.lock().unwrap();
    let owed_at = |map: &mut HashMap<u64, VecDeque<Instant>>| {
        let tag = tag?;
        let queue = map.get_mut(&tag)?;
        let t = queue.pop_front();
        if queue.is_empty() {
            map.remove(&tag);
        }
        t
    };
    match event.transition {
        Some("arrived") => {
            o.arrived += 1;
            match owed_at(&mut owed.arrivals) {
                Some(written) => o
                    .arrivals
                    .push((written, ms(at.saturating_duration_since(written)))),
                None => o.unmatched(payload),
            }
        }
        Some("departed") => {
            o.departed += 1;
            o.reads_departed += event.reads.unwrap_or(0);
            match owed_at(&mut owed.departures) {
                Some(last) => {
                    let due = last + departure_timeout;
                    let lag = if at >= due {
                        ms(at - due)
                    } else {
                        -ms(due - at)
                    };
                    o.departure_lag_ms.push(lag);
                }
                None => o.unmatched(payload),
            }
        }
        _ => o.unmatched(payload),
    }
}
