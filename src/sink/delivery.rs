//! The uplink's bookkeeping, without any I/O: which publish a packet id
//! stands for, which events the broker has acknowledged, what the spool may
//! delete and where to resume after a reconnect.
//!
//! rumqttc reports its progress only as a stream of events (a packet id was
//! sent, parked behind a collision, acknowledged); this state machine turns
//! that stream into delivery progress. Kept apart from the rumqttc calls so
//! that every rule here is unit-tested without a broker, and so a change of
//! the client (or the MQTT version) cannot silently change what counts as
//! delivered.
//!
//! A refused publish (MQTT 5 PUBACK reason code 0x80 or more) is not
//! delivered: the event stays spooled and its topic is held, so no later
//! event of that topic overtakes it, while other topics flow on. The refused
//! event alone is retried, with a capped exponential backoff; once the broker
//! takes it, the rest of its topic follows in `seq` order.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::link::Refusal;

/// A publish handed to rumqttc, waiting to be matched to its packet id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sent {
    /// A spooled event, and when it was handed to rumqttc (for the publish
    /// latency on the health topic).
    Event {
        seq: u64,
        topic: String,
        at: Instant,
    },
    Status {
        online: bool,
    },
    /// A bus publish: nothing waits for its acknowledgement.
    Other,
}

/// rumqttc did something that cannot happen if it behaves as understood.
/// The only safe answer is to start over: reconnect and re-stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Violation {
    #[error("rumqttc sent publish {0} that was never submitted")]
    Publish(u16),
    #[error("rumqttc parked publish {0} that was never submitted")]
    Parked(u16),
    #[error("PUBACK for unknown packet id {0}")]
    Ack(u16),
}

/// What to do with a committed record the uplink has read from the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Behind the cursor, already acknowledged or awaiting its answer:
    /// nothing to do.
    Skip,
    /// Its topic is held by a refusal: it waits (it is not delivered).
    Held,
    /// Publish it.
    Send,
    /// Publish it; the spool had no records `from..to` before it (only a
    /// damaged spool has holes, and what is not there cannot be sent).
    SendAfterHole { from: u64, to: u64 },
}

/// What a PUBACK answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// The broker took an event: `first` the first time, and `released` when
    /// it was the retried head of a held topic, which now flows again.
    Delivered {
        at: Instant,
        first: bool,
        released: Option<Held>,
    },
    /// The broker refused an event; it stays spooled and its topic is held.
    /// `episode` when no topic was held before.
    Refused {
        seq: u64,
        topic: String,
        refusal: Refusal,
        episode: bool,
    },
    Status {
        online: bool,
    },
    Other,
}

/// A topic the broker refuses, as reported in the `publish_refused` alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Held {
    pub topic: String,
    /// The oldest refused event of the topic.
    pub seq: u64,
    /// The latest refusal.
    pub refusal: Refusal,
    /// Refusals since the topic was first refused.
    pub refusals: u64,
}

#[derive(Debug)]
struct Hold {
    held: Held,
    backoff: Duration,
    retry_at: Instant,
    /// The oldest refused event is out again, awaiting its answer.
    probing: bool,
    /// Reported in an alarm already.
    alarmed: bool,
}

#[derive(Debug)]
pub(super) struct Delivery {
    /// Event publishes unacknowledged on this connection, at most.
    window: usize,

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
    /// Events published on this connection and not answered yet: a rewind
    /// of the cursor must not send them twice.
    unanswered: BTreeSet<u64>,

    // Refusals.
    /// Topics the broker refused, by topic.
    holds: BTreeMap<String, Hold>,
    /// The first and the longest wait before a refused event is retried.
    retry: (Duration, Duration),
    /// The cursor went back (a held topic is due or released): records read
    /// ahead from the old cursor must be read again.
    rewound: bool,
}

impl Delivery {
    /// Everything below `watermark` was delivered in an earlier run. A
    /// refused event is retried after `retry.0`, doubling up to `retry.1`.
    pub fn new(window: usize, watermark: u64, retry: (Duration, Duration)) -> Self {
        Delivery {
            window,
            submitted: VecDeque::new(),
            parked: None,
            inflight: HashMap::new(),
            in_window: 0,
            waiting_since: None,
            cursor: watermark,
            watermark,
            acked: BTreeSet::new(),
            reported: watermark,
            unanswered: BTreeSet::new(),
            holds: BTreeMap::new(),
            retry,
            rewound: false,
        }
    }

    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Whether another event may be published now.
    pub fn has_room(&self) -> bool {
        self.in_window < self.window
    }

    /// A new connection, or the end of one: rumqttc's memory is gone, so
    /// every correlation is, and what was not acknowledged is sent again.
    pub fn restart(&mut self) {
        self.submitted.clear();
        self.parked = None;
        self.inflight.clear();
        self.in_window = 0;
        self.waiting_since = None;
        self.cursor = self.watermark;
        self.unanswered.clear();
        self.rewound = false;
        // A retry that was out has no answer coming any more.
        for hold in self.holds.values_mut() {
            hold.probing = false;
        }
    }

    /// Whether a publish waits for a packet id to be acknowledged.
    pub fn collision_parked(&self) -> bool {
        self.parked.is_some()
    }

    /// Whether some topic is held by a refusal.
    #[cfg(test)]
    fn holding(&self) -> bool {
        !self.holds.is_empty()
    }

    /// rumqttc accepted a publish request.
    pub fn submitted(&mut self, sent: Sent, now: Instant) {
        if let Sent::Event { seq, .. } = sent {
            self.unanswered.insert(seq);
            self.in_window += 1;
            self.waiting_since.get_or_insert(now);
        }
        self.submitted.push_back(sent);
    }

    /// `Outgoing::Publish(pkid)`: the oldest request (or the one parked by a
    /// collision) went out under `pkid`.
    pub fn sent(&mut self, pkid: u16) -> Result<(), Violation> {
        match self.parked.take().or_else(|| self.submitted.pop_front()) {
            // QoS 0 publishes carry pkid 0 and are never acknowledged.
            Some(sent) if pkid != 0 => {
                self.inflight.insert(pkid, sent);
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(Violation::Publish(pkid)),
        }
    }

    /// `Outgoing::AwaitAck(pkid)`: the oldest request waits for `pkid` to be
    /// acknowledged before it goes out.
    pub fn parked(&mut self, pkid: u16) -> Result<(), Violation> {
        match self.submitted.pop_front() {
            Some(sent) => {
                self.parked = Some(sent);
                Ok(())
            }
            None => Err(Violation::Parked(pkid)),
        }
    }

    /// A PUBACK, `refused` or not: returns what it answered.
    pub fn acked(
        &mut self,
        pkid: u16,
        refused: Option<Refusal>,
        now: Instant,
    ) -> Result<Answer, Violation> {
        let sent = self.inflight.remove(&pkid).ok_or(Violation::Ack(pkid))?;
        let Sent::Event { seq, topic, at } = sent else {
            return Ok(match sent {
                Sent::Status { online } => Answer::Status { online },
                _ => Answer::Other,
            });
        };
        self.unanswered.remove(&seq);
        self.in_window = self.in_window.saturating_sub(1);
        self.waiting_since = (self.in_window > 0).then_some(now);
        Ok(match refused {
            Some(refusal) => self.refused(seq, topic, refusal, now),
            None => {
                let released = self.release(&topic, seq);
                let first = seq >= self.watermark && self.acked.insert(seq);
                self.advance_watermark();
                Answer::Delivered {
                    at,
                    first,
                    released,
                }
            }
        })
    }

    fn refused(&mut self, seq: u64, topic: String, refusal: Refusal, now: Instant) -> Answer {
        let episode = self.holds.is_empty();
        let (min, max) = self.retry;
        let hold = self.holds.entry(topic.clone()).or_insert_with(|| Hold {
            held: Held {
                topic: topic.clone(),
                seq,
                refusal,
                refusals: 0,
            },
            backoff: min,
            retry_at: now + min,
            probing: false,
            alarmed: false,
        });
        hold.held.refusals += 1;
        hold.held.refusal = refusal;
        if hold.probing && seq == hold.held.seq {
            // The retry was refused too: wait longer.
            hold.probing = false;
            hold.backoff = (hold.backoff * 2).min(max);
            hold.retry_at = now + hold.backoff;
        }
        hold.held.seq = hold.held.seq.min(seq);
        Answer::Refused {
            seq,
            topic,
            refusal,
            episode,
        }
    }

    /// The broker took `seq` of `topic`: if it was the held head of the
    /// topic, the topic flows again from there.
    fn release(&mut self, topic: &str, seq: u64) -> Option<Held> {
        if self.holds.get(topic)?.held.seq != seq {
            return None;
        }
        let hold = self.holds.remove(topic)?;
        self.rewind(seq + 1);
        Some(hold.held)
    }

    fn rewind(&mut self, to: u64) {
        if to < self.cursor {
            self.cursor = to;
            self.rewound = true;
        }
    }

    /// Held topics whose retry is due: the cursor goes back to their oldest
    /// refused event. Returns those not reported yet, for one alarm each.
    pub fn due(&mut self, now: Instant) -> Vec<Held> {
        let mut report = Vec::new();
        let mut back = u64::MAX;
        for hold in self.holds.values_mut() {
            if hold.probing || now < hold.retry_at {
                continue;
            }
            back = back.min(hold.held.seq);
            if !hold.alarmed {
                hold.alarmed = true;
                report.push(hold.held.clone());
            }
        }
        self.rewind(back);
        report
    }

    /// Whether the cursor went back since the last call: records read ahead
    /// must be dropped and read again from the cursor.
    pub fn take_rewound(&mut self) -> bool {
        std::mem::take(&mut self.rewound)
    }

    /// `seq` of `topic` can never be sent and was moved aside (it is
    /// accounted for elsewhere): the watermark passes it, and a topic held
    /// behind it flows again.
    pub fn set_aside(&mut self, seq: u64, topic: &str) {
        self.release(topic, seq);
        if seq >= self.watermark {
            self.acked.insert(seq);
            self.advance_watermark();
        }
    }

    fn advance_watermark(&mut self) {
        while self.acked.remove(&self.watermark) {
            self.watermark += 1;
        }
    }

    /// Decides about the record `seq` of `topic`, read from the spool at the
    /// cursor, and moves the cursor past it.
    pub fn next(&mut self, seq: u64, topic: &str, now: Instant) -> Next {
        if seq < self.cursor {
            return Next::Skip;
        }
        let hole = (seq > self.cursor).then_some((self.cursor, seq));
        if let Some((from, to)) = hole {
            self.acked.extend(from..to);
            self.advance_watermark();
        }
        self.cursor = seq + 1;
        if self.acked.contains(&seq) || self.unanswered.contains(&seq) {
            return Next::Skip;
        }
        if let Some(hold) = self.holds.get_mut(topic) {
            let retry = seq == hold.held.seq && !hold.probing && now >= hold.retry_at;
            if !retry {
                return Next::Held;
            }
            hold.probing = true;
        }
        match hole {
            Some((from, to)) => Next::SendAfterHole { from, to },
            None => Next::Send,
        }
    }

    /// rumqttc's request queue was full: `seq` of `topic` goes out on the
    /// next try (a retry of a held topic too).
    pub fn deferred(&mut self, seq: u64, topic: &str) {
        self.cursor = seq;
        if let Some(hold) = self.holds.get_mut(topic) {
            if hold.held.seq == seq {
                hold.probing = false;
            }
        }
    }

    /// The new watermark, if it moved since it was last taken: every event
    /// below it may be deleted from the spool.
    pub fn report(&mut self) -> Option<u64> {
        (self.watermark > self.reported).then(|| {
            self.reported = self.watermark;
            self.watermark
        })
    }

    /// Whether acknowledgements have stopped for longer than `limit` while
    /// some are owed (a half-open link); if so, the wait starts over.
    pub fn stalled(&mut self, now: Instant, limit: Duration) -> bool {
        let stalled = self
            .waiting_since
            .is_some_and(|t| now.saturating_duration_since(t) > limit);
        if stalled {
            self.waiting_since = None;
        }
        stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(4));
    const DENIED: Refusal = Refusal {
        code: 0x87,
        name: "not authorized",
    };

    fn delivery(window: usize, watermark: u64) -> Delivery {
        Delivery::new(window, watermark, RETRY)
    }

    /// Publishes `seqs` on topic `t` through the cursor, as the uplink does.
    fn publish(d: &mut Delivery, seqs: impl IntoIterator<Item = u64>) {
        publish_on(d, "t", seqs, Instant::now());
    }

    fn publish_on(
        d: &mut Delivery,
        topic: &str,
        seqs: impl IntoIterator<Item = u64>,
        now: Instant,
    ) {
        for seq in seqs {
            assert_eq!(d.next(seq, topic, now), Next::Send, "seq {seq}");
            let sent = Sent::Event {
                seq,
                topic: topic.into(),
                at: now,
            };
            d.submitted(sent, now);
        }
    }

    /// A delivery whose events `1..=n` on `custody` were sent (pkids
    /// `1..=n`) and refused.
    fn refused_custody(n: u64, now: Instant) -> Delivery {
        let mut d = delivery(8, 1);
        publish_on(&mut d, "custody", 1..=n, now);
        for pkid in 1..=n as u16 {
            d.sent(pkid).unwrap();
            d.acked(pkid, Some(DENIED), now).unwrap();
        }
        d
    }

    /// The retry of the held `seq` 1 of `custody` goes out.
    fn retry(d: &mut Delivery, at: Instant) {
        let sent = Sent::Event {
            seq: 1,
            topic: "custody".into(),
            at,
        };
        d.submitted(sent, at);
    }

    fn sent(d: &mut Delivery, pkids: std::ops::RangeInclusive<u16>) {
        for pkid in pkids {
            d.sent(pkid).unwrap();
        }
    }

    fn ack(d: &mut Delivery, pkid: u16) -> Answer {
        d.acked(pkid, None, Instant::now()).unwrap()
    }

    fn delivered(answer: &Answer) -> bool {
        matches!(answer, Answer::Delivered { .. })
    }

    #[test]
    fn acks_out_of_order_advance_a_contiguous_watermark() {
        let mut d = delivery(8, 5);
        publish(&mut d, 5..8);
        sent(&mut d, 1..=3);
        ack(&mut d, 2);
        ack(&mut d, 3);
        assert_eq!(d.watermark(), 5, "seq 5 is still owed");
        assert_eq!(d.report(), None);
        ack(&mut d, 1);
        assert_eq!(d.watermark(), 8);
        assert_eq!(d.report(), Some(8));
        assert_eq!(d.report(), None, "reported once");
    }

    #[test]
    fn a_collision_parks_the_publish_until_its_pkid_is_free() {
        let mut d = delivery(8, 1);
        publish(&mut d, 1..3);
        d.sent(1).unwrap();
        d.parked(1).unwrap();
        assert!(d.collision_parked());
        // The parked publish goes out before anything submitted after it.
        d.submitted(Sent::Status { online: true }, Instant::now());
        assert!(delivered(&ack(&mut d, 1)));
        d.sent(1).unwrap();
        assert!(!d.collision_parked());
        d.sent(2).unwrap();
        assert!(delivered(&ack(&mut d, 1)));
        assert_eq!(ack(&mut d, 2), Answer::Status { online: true });
        assert_eq!(d.watermark(), 3);
    }

    #[test]
    fn what_was_never_submitted_is_a_violation() {
        let mut d = delivery(8, 1);
        assert_eq!(d.sent(1), Err(Violation::Publish(1)));
        assert_eq!(d.parked(1), Err(Violation::Parked(1)));
        assert_eq!(
            d.acked(7, None, Instant::now()).unwrap_err(),
            Violation::Ack(7)
        );
        // QoS 0 (pkid 0) is matched but never waits for an ack.
        d.submitted(Sent::Other, Instant::now());
        d.sent(0).unwrap();
        assert!(d.acked(0, None, Instant::now()).is_err());
    }

    #[test]
    fn a_restart_resends_everything_unacknowledged_but_not_what_was_acknowledged() {
        let mut d = delivery(8, 1);
        publish(&mut d, 1..5);
        sent(&mut d, 1..=4);
        ack(&mut d, 2);
        ack(&mut d, 4);
        d.restart();
        assert_eq!(d.cursor(), 1);
        assert!(d.has_room());
        let now = Instant::now();
        assert_eq!(d.next(1, "t", now), Next::Send);
        assert_eq!(
            d.next(2, "t", now),
            Next::Skip,
            "acknowledged before the restart"
        );
        assert_eq!(d.next(3, "t", now), Next::Send);
        assert_eq!(d.next(4, "t", now), Next::Skip);
        // An ack from the old connection is unknown on the new one.
        assert!(d.acked(1, None, now).is_err());
    }

    #[test]
    fn the_window_limits_unacknowledged_events_only() {
        let mut d = delivery(2, 1);
        publish(&mut d, 1..3);
        assert!(!d.has_room());
        d.submitted(Sent::Status { online: true }, Instant::now());
        assert!(!d.has_room());
        d.sent(1).unwrap();
        ack(&mut d, 1);
        assert!(d.has_room());
    }

    #[test]
    fn a_hole_in_the_spool_is_skipped_and_counts_as_delivered() {
        let mut d = delivery(8, 1);
        let now = Instant::now();
        assert_eq!(d.next(4, "t", now), Next::SendAfterHole { from: 1, to: 4 });
        assert_eq!(d.watermark(), 4);
        assert_eq!(d.next(3, "t", now), Next::Skip, "behind the cursor");
        d.deferred(4, "t");
        assert_eq!(
            d.next(4, "t", now),
            Next::Send,
            "deferred: sent on the next try"
        );
    }

    #[test]
    fn a_stall_is_reported_once_per_wait() {
        let mut d = delivery(8, 1);
        let start = Instant::now();
        let limit = Duration::from_secs(30);
        assert!(!d.stalled(start + limit * 2, limit), "nothing owed");
        publish(&mut d, [1]);
        let later = Instant::now() + limit * 2;
        assert!(d.stalled(later, limit));
        assert!(!d.stalled(later, limit), "the wait starts over");
    }

    #[test]
    fn a_refused_event_is_not_delivered_and_holds_only_its_topic() {
        let mut d = delivery(8, 1);
        let t0 = Instant::now();
        publish_on(&mut d, "custody", [1], t0);
        publish_on(&mut d, "alarm", [2], t0);
        publish_on(&mut d, "custody", [3], t0);
        sent(&mut d, 1..=3);
        let answer = d.acked(1, Some(DENIED), t0).unwrap();
        assert_eq!(
            answer,
            Answer::Refused {
                seq: 1,
                topic: "custody".into(),
                refusal: DENIED,
                episode: true,
            }
        );
        assert!(delivered(&ack(&mut d, 2)), "another topic is taken");
        let again = d.acked(3, Some(DENIED), t0).unwrap();
        assert!(matches!(again, Answer::Refused { episode: false, .. }));
        assert_eq!(
            d.watermark(),
            1,
            "nothing below a refused event may be deleted"
        );
        assert_eq!(d.report(), None);
        assert!(d.holding());

        // Later events of the held topic wait; other topics flow on.
        assert_eq!(d.next(4, "custody", t0), Next::Held);
        assert_eq!(d.next(5, "alarm", t0), Next::Send);
    }

    #[test]
    fn a_held_topic_is_retried_from_its_oldest_event_with_a_capped_backoff() {
        let t0 = Instant::now();
        let mut d = refused_custody(2, t0);
        assert!(d.due(t0).is_empty(), "not due before the first wait");
        assert!(!d.take_rewound());

        let mut at = t0 + RETRY.0;
        let reported = d.due(at);
        assert_eq!(reported.len(), 1, "one alarm for the topic");
        assert_eq!((reported[0].seq, reported[0].refusals), (1, 2));
        assert!(d.take_rewound(), "read again from the refused event");
        assert_eq!(d.cursor(), 1);
        // Only the oldest goes out, and only once, until it is answered.
        assert_eq!(d.next(1, "custody", at), Next::Send);
        assert_eq!(d.next(2, "custody", at), Next::Held);
        let mut waits = Vec::new();
        for pkid in 3..7 {
            retry(&mut d, at);
            d.sent(pkid).unwrap();
            d.acked(pkid, Some(DENIED), at).unwrap();
            let start = at;
            while d.due(at).is_empty() && !d.take_rewound() {
                at += Duration::from_millis(250);
            }
            waits.push(at - start);
            assert_eq!(d.next(1, "custody", at), Next::Send);
        }
        assert_eq!(
            waits,
            [2, 4, 4, 4].map(Duration::from_secs),
            "doubling up to the cap"
        );
        assert!(d.due(at).is_empty(), "alarmed once per episode");
    }

    #[test]
    fn once_the_retry_is_taken_the_topic_flows_again_in_order() {
        let t0 = Instant::now();
        let mut d = refused_custody(2, t0);
        // Meanwhile seq 3 on the held topic waits, seq 4 elsewhere is taken.
        assert_eq!(d.next(3, "custody", t0), Next::Held);
        publish_on(&mut d, "alarm", [4], t0);
        d.sent(3).unwrap();
        ack(&mut d, 3);

        let at = t0 + RETRY.0;
        d.due(at);
        assert!(d.take_rewound());
        assert_eq!(d.next(1, "custody", at), Next::Send);
        retry(&mut d, at);
        assert_eq!(d.next(2, "custody", at), Next::Held);
        assert_eq!(d.next(3, "custody", at), Next::Held);
        d.sent(4).unwrap();
        let Answer::Delivered { released, .. } = ack(&mut d, 4) else {
            panic!("the retry was taken");
        };
        assert_eq!(released.map(|h| h.refusals), Some(2));
        assert!(!d.holding());
        assert!(d.take_rewound(), "the rest of the topic is read again");
        assert_eq!(d.cursor(), 2);
        assert_eq!(d.next(2, "custody", at), Next::Send);
        assert_eq!(d.next(3, "custody", at), Next::Send);
        assert_eq!(d.next(4, "alarm", at), Next::Skip, "taken already");
        assert_eq!(d.watermark(), 2);
    }

    #[test]
    fn a_rewind_does_not_send_twice_what_awaits_its_answer() {
        let t0 = Instant::now();
        let mut d = refused_custody(1, t0);
        publish_on(&mut d, "alarm", [2], t0);
        let at = t0 + RETRY.0;
        d.due(at);
        assert!(d.take_rewound());
        assert_eq!(d.next(1, "custody", at), Next::Send);
        assert_eq!(d.next(2, "alarm", at), Next::Skip, "out, not answered yet");
    }

    #[test]
    fn a_retry_that_could_not_be_handed_over_or_was_set_aside_does_not_stall_its_topic() {
        let t0 = Instant::now();
        let mut d = refused_custody(1, t0);
        let at = t0 + RETRY.0;
        d.due(at);
        assert_eq!(d.next(1, "custody", at), Next::Send);
        d.deferred(1, "custody");
        assert_eq!(d.next(1, "custody", at), Next::Send, "tried again");
        d.set_aside(1, "custody");
        assert!(!d.holding(), "nothing left to hold the topic");
        assert_eq!(d.watermark(), 2);
    }

    #[test]
    fn after_a_reconnect_the_held_topic_is_retried_when_due_and_not_before() {
        let t0 = Instant::now();
        let mut d = refused_custody(1, t0);
        d.restart();
        assert_eq!(d.next(1, "custody", t0), Next::Held);
        d.restart();
        assert_eq!(d.next(1, "custody", t0 + RETRY.0), Next::Send);
    }

    #[test]
    fn an_event_set_aside_lets_the_watermark_pass() {
        let mut d = delivery(8, 1);
        let now = Instant::now();
        assert_eq!(d.next(1, "t", now), Next::Send);
        d.set_aside(1, "t");
        publish(&mut d, [2]);
        d.sent(1).unwrap();
        ack(&mut d, 1);
        assert_eq!(d.report(), Some(3));
    }
}
