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

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// A publish handed to rumqttc, waiting to be matched to its packet id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
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
    /// Behind the cursor or already acknowledged: nothing to do.
    Skip,
    /// Publish it.
    Send,
    /// Publish it; the spool had no records `from..to` before it (only a
    /// damaged spool has holes, and what is not there cannot be sent).
    SendAfterHole { from: u64, to: u64 },
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
}

impl Delivery {
    /// Everything below `watermark` was delivered in an earlier run.
    pub fn new(window: usize, watermark: u64) -> Self {
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
    }

    /// rumqttc accepted a publish request.
    pub fn submitted(&mut self, sent: Sent, now: Instant) {
        if let Sent::Event { .. } = sent {
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

    /// A PUBACK: returns what it acknowledges. An event counts as delivered;
    /// returns `true` beside it the first time it is acknowledged.
    pub fn acked(&mut self, pkid: u16, now: Instant) -> Result<(Sent, bool), Violation> {
        let sent = self
            .inflight
            .remove(&pkid)
            .ok_or(Violation::Ack(pkid))?;
        let first = match sent {
            Sent::Event { seq, .. } => self.event_acked(seq, now),
            _ => false,
        };
        Ok((sent, first))
    }

    fn event_acked(&mut self, seq: u64, now: Instant) -> bool {
        self.in_window = self.in_window.saturating_sub(1);
        self.waiting_since = (self.in_window > 0).then_some(now);
        if seq < self.watermark {
            return false;
        }
        let first = self.acked.insert(seq);
        self.advance_watermark();
        first
    }

    fn advance_watermark(&mut self) {
        while self.acked.remove(&self.watermark) {
            self.watermark += 1;
        }
    }

    /// Decides about the record `seq`, read from the spool at the cursor, and
    /// moves the cursor past it.
    pub fn next(&mut self, seq: u64) -> Next {
        if seq < self.cursor {
            return Next::Skip;
        }
        let hole = (seq > self.cursor).then_some((self.cursor, seq));
        if let Some((from, to)) = hole {
            self.acked.extend(from..to);
            self.advance_watermark();
        }
        self.cursor = seq + 1;
        match hole {
            _ if self.acked.contains(&seq) => Next::Skip,
            Some((from, to)) => Next::SendAfterHole { from, to },
            None => Next::Send,
        }
    }

    /// rumqttc's request queue was full: `seq` goes out on the next try.
    pub fn deferred(&mut self, seq: u64) {
        self.cursor = seq;
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

    fn event(seq: u64) -> Sent {
        Sent::Event {
            seq,
            at: Instant::now(),
        }
    }

    /// Publishes `seqs` through the cursor, as the uplink does.
    fn publish(d: &mut Delivery, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            assert_eq!(d.next(seq), Next::Send, "seq {seq}");
            d.submitted(event(seq), Instant::now());
        }
    }

    fn ack(d: &mut Delivery, pkid: u16) -> Sent {
        d.acked(pkid, Instant::now()).unwrap().0
    }

    #[test]
    fn acks_out_of_order_advance_a_contiguous_watermark() {
        let mut d = Delivery::new(8, 5);
        publish(&mut d, 5..8);
        for pkid in 1..=3 {
            d.sent(pkid).unwrap();
        }
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
        let mut d = Delivery::new(8, 1);
        publish(&mut d, 1..3);
        d.sent(1).unwrap();
        d.parked(1).unwrap();
        // The parked publish goes out before anything submitted after it.
        d.submitted(Sent::Status { online: true }, Instant::now());
        assert!(matches!(ack(&mut d, 1), Sent::Event { seq: 1, .. }));
        d.sent(1).unwrap();
        d.sent(2).unwrap();
        assert!(matches!(ack(&mut d, 1), Sent::Event { seq: 2, .. }));
        assert_eq!(ack(&mut d, 2), Sent::Status { online: true });
        assert_eq!(d.watermark(), 3);
    }

    #[test]
    fn what_was_never_submitted_is_a_violation() {
        let mut d = Delivery::new(8, 1);
        assert_eq!(d.sent(1), Err(Violation::Publish(1)));
        assert_eq!(d.parked(1), Err(Violation::Parked(1)));
        assert_eq!(
            d.acked(7, Instant::now()).unwrap_err(),
            Violation::Ack(7)
        );
        // QoS 0 (pkid 0) is matched but never waits for an ack.
        d.submitted(Sent::Other, Instant::now());
        d.sent(0).unwrap();
        assert!(d.acked(0, Instant::now()).is_err());
    }

    #[test]
    fn a_restart_resends_everything_unacknowledged_but_not_what_was_acknowledged() {
        let mut d = Delivery::new(8, 1);
        publish(&mut d, 1..5);
        for pkid in 1..=4 {
            d.sent(pkid).unwrap();
        }
        ack(&mut d, 2);
        ack(&mut d, 4);
        d.restart();
        assert_eq!(d.cursor(), 1);
        assert!(d.has_room());
        assert_eq!(d.next(1), Next::Send);
        assert_eq!(d.next(2), Next::Skip, "acknowledged before the restart");
        assert_eq!(d.next(3), Next::Send);
        assert_eq!(d.next(4), Next::Skip);
        // An ack from the old connection is unknown on the new one.
        assert!(d.acked(1, Instant::now()).is_err());
    }

    #[test]
    fn the_window_limits_unacknowledged_events_only() {
        let mut d = Delivery::new(2, 1);
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
        let mut d = Delivery::new(8, 1);
        assert_eq!(d.next(4), Next::SendAfterHole { from: 1, to: 4 });
        assert_eq!(d.watermark(), 4);
        assert_eq!(d.next(3), Next::Skip, "behind the cursor");
        d.deferred(4);
        assert_eq!(d.next(4), Next::Send, "deferred: sent on the next try");
    }

    #[test]
    fn a_stall_is_reported_once_per_wait() {
        let mut d = Delivery::new(8, 1);
        let start = Instant::now();
        let limit = Duration::from_secs(30);
        assert!(!d.stalled(start + limit * 2, limit), "nothing owed");
        publish(&mut d, [1]);
        let later = Instant::now() + limit * 2;
        assert!(d.stalled(later, limit));
        assert!(!d.stalled(later, limit), "the wait starts over");
    }
}
