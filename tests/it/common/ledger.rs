//! The delivery ledger: custody events as a subscriber received them, by
//! `seq` and `event_id`, checked against the at-least-once contract.
//!
//! The contract (docs/contract.md): `seq` counts every spooled
//! event from 1 with no gaps, and a re-delivery is the same event again (same
//! `seq`, same `event_id`, same bytes). So a subscriber that has every `seq`
//! from 1 to the highest it saw has every event the daemon committed up to
//! there, and any other duplicate is a bug.
//!
//! [`check_delivery`] checks a finished list of messages; a [`Ledger`] does
//! the same incrementally while the messages arrive, so a test can wait for
//! thousands of events without re-reading them all on every poll. Either
//! panics with a clear message on the first contradiction.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::{Message, Subscriber, POLL};

/// What a consistent delivery looked like.
#[derive(Debug, Clone)]
pub struct Report {
    /// The highest `seq` delivered; every `seq` in `1..=max_seq` was.
    pub max_seq: u64,
    /// Deliveries beyond the first of each `seq` (all of them identical
    /// re-deliveries).
    pub duplicates: usize,
    /// Each `seq` once, in the order of its first delivery.
    pub first_delivery_order: Vec<u64>,
    /// `asset.id` of every event: index `seq - 1`.
    pub assets: Vec<String>,
}

impl Report {
    /// Whether the first deliveries came in increasing `seq` order.
    pub fn first_deliveries_in_order(&self) -> bool {
        self.first_delivery_order.windows(2).all(|w| w[0] < w[1])
    }
}

/// Checks custody events among `msgs` (other topics are ignored): every
/// `seq` from 1 to the highest is present, and each `seq` always came with
/// one `event_id` and one payload (and each `event_id` with one `seq`).
/// Panics naming the gap or the conflicting deliveries otherwise.
pub fn check_delivery(msgs: &[Message]) -> Report {
    let mut ledger = Ledger::default();
    ledger.absorb(msgs);
    ledger.report()
}

/// The first delivery of one `seq`.
struct Delivered {
    event_id: String,
    payload: Vec<u8>,
    asset: String,
}

/// Custody deliveries so far, checked as they are absorbed.
#[derive(Default)]
pub struct Ledger {
    /// Messages already taken from the subscriber by [`Ledger::update`].
    taken: usize,
    by_seq: HashMap<u64, Delivered>,
    seq_of_event: HashMap<String, u64>,
    seqs_of_asset: HashMap<String, Vec<u64>>,
    first_delivery_order: Vec<u64>,
    duplicates: usize,
    /// Every `seq` in `1..=contiguous` was delivered.
    contiguous: u64,
    max_seq: u64,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every `seq` in `1..=contiguous()` was delivered.
    pub fn contiguous(&self) -> u64 {
        self.contiguous
    }

    /// The highest `seq` delivered (0 if none).
    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }

    /// The `seq`s of events for asset `id`, in order of first delivery.
    pub fn seqs_of_asset(&self, id: &str) -> &[u64] {
        self.seqs_of_asset.get(id).map_or(&[], Vec::as_slice)
    }

    /// Takes in the subscriber's messages that arrived since the last update.
    pub fn update(&mut self, sub: &Subscriber) {
        let new = sub.messages_since(self.taken);
        self.taken += new.len();
        self.absorb(&new);
    }

    /// Takes in `msgs` (custody events only; other topics are skipped).
    /// Panics on a `seq` delivered with a different `event_id` or payload
    /// than before, or an `event_id` delivered with two `seq`s.
    pub fn absorb(&mut self, msgs: &[Message]) {
        for msg in msgs.iter().filter(|m| m.topic.contains("/custody/")) {
            self.absorb_one(msg);
        }
    }

    fn absorb_one(&mut self, msg: &Message) {
        let event = msg.json();
        let seq = event["seq"]
            .as_u64()
            .filter(|&s| s >= 1)
            .unwrap_or_else(|| panic!("custody event without a seq >= 1: {msg:?}"));
        let event_id = event["event_id"]
            .as_str()
            .unwrap_or_else(|| panic!("custody event without an event_id: {msg:?}"));
        if let Some(first) = self.by_seq.get(&seq) {
            assert!(
                first.event_id == event_id,
                "seq {seq} was delivered as two different events, {} and {event_id}:\n  \
                 first: {}\n  now:   {}",
                first.event_id,
                String::from_utf8_lossy(&first.payload),
                msg.text()
            );
            assert!(
                first.payload == msg.payload,
                "seq {seq} ({event_id}) was re-delivered with a different payload:\n  \
                 first: {}\n  now:   {}",
                String::from_utf8_lossy(&first.payload),
                msg.text()
            );
            self.duplicates += 1;
            return;
        }
        if let Some(other) = self.seq_of_event.insert(event_id.to_owned(), seq) {
            panic!("event {event_id} was delivered with two seqs, {other} and {seq}: {msg:?}");
        }
        let asset = event["asset"]["id"].as_str().unwrap_or_default().to_owned();
        self.seqs_of_asset
            .entry(asset.clone())
            .or_default()
            .push(seq);
        self.by_seq.insert(
            seq,
            Delivered {
                event_id: event_id.to_owned(),
                payload: msg.payload.clone(),
                asset,
            },
        );
        self.first_delivery_order.push(seq);
        self.max_seq = self.max_seq.max(seq);
        while self.by_seq.contains_key(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
    }

    /// The final verdict: panics if any `seq` below the highest delivered
    /// one is missing.
    pub fn report(&self) -> Report {
        assert!(
            self.contiguous == self.max_seq,
            "events missing: {} of 1..={} never arrived: {}",
            self.max_seq - self.by_seq.len() as u64,
            self.max_seq,
            self.missing()
        );
        Report {
            max_seq: self.max_seq,
            duplicates: self.duplicates,
            first_delivery_order: self.first_delivery_order.clone(),
            assets: (1..=self.max_seq)
                .map(|seq| self.by_seq[&seq].asset.clone())
                .collect(),
        }
    }

    /// Follows `sub` until every `seq` in `1..=n` has arrived; panics after
    /// `timeout` saying which are missing.
    pub async fn wait_contiguous(&mut self, sub: &Subscriber, n: u64, timeout: Duration) {
        self.wait(sub, timeout, &format!("every seq in 1..={n}"), |l| {
            l.contiguous >= n
        })
        .await;
    }

    /// Follows `sub` until `cond` holds; panics after `timeout` naming
    /// `what` and the state of the ledger.
    pub async fn wait(
        &mut self,
        sub: &Subscriber,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&Ledger) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.update(sub);
            if cond(self) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}: delivered 1..={} \
                     contiguously, {} distinct, highest {}, {} duplicates; missing below \
                     the highest: {}",
                    self.contiguous,
                    self.by_seq.len(),
                    self.max_seq,
                    self.duplicates,
                    self.missing()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The missing `seq`s below the highest, as ranges (the first few).
    fn missing(&self) -> String {
        let mut out = String::new();
        let mut ranges = 0;
        let mut seq = self.contiguous + 1;
        while seq < self.max_seq {
            if self.by_seq.contains_key(&seq) {
                seq += 1;
                continue;
            }
            let start = seq;
            while seq < self.max_seq && !self.by_seq.contains_key(&seq) {
                seq += 1;
            }
            ranges += 1;
            if ranges > 20 {
                out.push_str(" ...");
                break;
            }
            let _ = write!(out, " {start}..={}", seq - 1);
        }
        if out.is_empty() {
            out.push_str(" none");
        }
        out
    }
}
