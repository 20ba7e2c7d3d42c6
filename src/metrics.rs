//! Counters kept by the stages that do the counted work and sampled by the
//! health task.
//!
//! This is the one exception to "one owner per piece of state, talking over
//! channels": each counter has exactly one writer (the reader task that
//! decoded the frame, the uplink that got the PUBACK, the rules task that
//! decided a portal's outcome), the health task only samples it, and
//! nothing is ever decided on its value. Reporting each read
//! over a channel would put a message per frame on the hottest path
//! (thousands a second at a UHF door) to maintain a number that is looked at
//! once a minute; a relaxed atomic add costs a few nanoseconds and cannot
//! block or fill up. Counters only grow (they are totals since start; the
//! health task computes rates from two samples), except the latency window,
//! which the health task takes and resets in one swap per field.
//!
//! The spool is not here: it already publishes its progress on a `watch`
//! channel ([`crate::spool::Committed`]), and the health task reads that.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::custody::Outcomes;
use crate::decode::DropReason;

/// Every drop reason, in the order the health document lists them.
pub const DROP_REASONS: [DropReason; 5] = [
    DropReason::Checksum,
    DropReason::Malformed,
    DropReason::TooLong,
    DropReason::Garbage,
    DropReason::Unterminated,
];

fn slot(reason: DropReason) -> usize {
    match reason {
        DropReason::Checksum => 0,
        DropReason::Malformed => 1,
        DropReason::TooLong => 2,
        DropReason::Garbage => 3,
        DropReason::Unterminated => 4,
    }
}

/// Everything the health topic reports that is not the spool's.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per configured reader. Changed only when the readers (re)start; a
    /// reader task holds its own `Arc` and never takes the lock.
    readers: Named<ReaderMetrics>,
    /// Per portal location, likewise held by the rules task's portals.
    portals: Named<PortalMetrics>,
    pub uplink: UplinkMetrics,
    /// Control messages refused as untrusted (each, not only those that
    /// raised an `untrusted_message` alarm); counted by `trust::alarm`.
    pub untrusted_messages: Arc<AtomicU64>,
}

impl Metrics {
    /// The counters of reader `name`, created at first use. A reader keeps
    /// its counters across a reload, so totals run on from start.
    pub fn reader(&self, name: &Arc<str>) -> Arc<ReaderMetrics> {
        self.readers.get(name)
    }

    /// Forgets readers that are no longer configured.
    pub fn retain_readers(&self, configured: &[Arc<str>]) {
        self.readers.retain(configured);
    }

    /// Every reader's counters, by name.
    pub fn readers(&self) -> Vec<(Arc<str>, Arc<ReaderMetrics>)> {
        self.readers.all()
    }

    /// The counters of portal `location`, created at first use; kept across
    /// a reload like a reader's.
    pub fn portal(&self, location: &Arc<str>) -> Arc<PortalMetrics> {
        self.portals.get(location)
    }

    /// Forgets portals that are no longer configured.
    pub fn retain_portals(&self, configured: &[Arc<str>]) {
        self.portals.retain(configured);
    }

    /// Every portal's counts, by location.
    pub fn portals(&self) -> Vec<(Arc<str>, PortalStats)> {
        let all = self.portals.all().into_iter();
        all.map(|(location, m)| (location, m.get())).collect()
    }
}

/// Counters by name that outlive the tasks writing them, so that totals
/// run on from start across a reload.
#[derive(Debug)]
struct Named<T>(Mutex<BTreeMap<Arc<str>, Arc<T>>>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Mutex::default())
    }
}

impl<T: Default> Named<T> {
    fn get(&self, name: &Arc<str>) -> Arc<T> {
        self.lock().entry(name.clone()).or_default().clone()
    }

    fn retain(&self, configured: &[Arc<str>]) {
        self.lock().retain(|name, _| configured.contains(name));
    }

    fn all(&self) -> Vec<(Arc<str>, Arc<T>)> {
        self.lock()
            .iter()
            .map(|(name, m)| (name.clone(), m.clone()))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Arc<str>, Arc<T>>> {
        lock(&self.0)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere while holding it leaves nothing half-done.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one reader did since the daemon started.
#[derive(Debug, Default)]
pub struct ReaderMetrics {
    up: AtomicBool,
    reads: AtomicU64,
    dropped: [AtomicU64; DROP_REASONS.len()],
    error_replies: AtomicU64,
    invalid_scans: AtomicU64,
}

impl ReaderMetrics {
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// A frame decoded into a read (valid or not as an asset id).
    pub fn read(&self) {
        self.reads.fetch_add(1, Relaxed);
    }

    pub fn reads(&self) -> u64 {
        self.reads.load(Relaxed)
    }

    pub fn dropped(&self, reason: DropReason) {
        self.dropped[slot(reason)].fetch_add(1, Relaxed);
    }

    pub fn dropped_by(&self, reason: DropReason) -> u64 {
        self.dropped[slot(reason)].load(Relaxed)
    }

    /// A UHF reader answered a command with an error (an antenna missing, ...).
    pub fn error_reply(&self) {
        self.error_replies.fetch_add(1, Relaxed);
    }

    pub fn error_replies(&self) -> u64 {
        self.error_replies.load(Relaxed)
    }

    /// A read that names no asset (it becomes an `invalid_scan` alarm).
    pub fn invalid_scan(&self) {
        self.invalid_scans.fetch_add(1, Relaxed);
    }

    pub fn invalid_scans(&self) -> u64 {
        self.invalid_scans.load(Relaxed)
    }
}

/// What one portal's evidence came to since the daemon started, written by
/// the rules task as it decides. Many ambiguous outcomes mean the antennas
/// see too much of each other's side; many static ones, tags parked near a
/// door; many empty passes, a sensor firing for nothing or a reader not
/// reading.
///
/// A lock rather than atomics: a finished pass adds its assets' outcomes
/// and itself in one step, so a sample never shows a pass without its
/// assets; it is taken a few times per pass, never per read.
#[derive(Debug, Default)]
pub struct PortalMetrics(Mutex<PortalStats>);

impl PortalMetrics {
    /// Counts what `f` adds.
    pub fn count(&self, f: impl FnOnce(&mut PortalStats)) {
        f(&mut lock(&self.0));
    }

    pub fn get(&self) -> PortalStats {
        *lock(&self.0)
    }
}

/// A portal's counts, as the health topic shows them (the outcome names are
/// those of the pass summary's `counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortalStats {
    /// Per asset decided.
    #[serde(flatten)]
    pub outcomes: Outcomes,
    /// Read windows finished, and those in which nothing was read.
    pub passes: u64,
    pub empty_passes: u64,
}

impl PortalStats {
    /// A finished pass of `assets` assets whose evidence came to `outcomes`.
    pub fn pass(&mut self, assets: u64, outcomes: &Outcomes) {
        let o = &mut self.outcomes;
        o.moved += outcomes.moved;
        o.ambiguous += outcomes.ambiguous;
        o.static_tags += outcomes.static_tags;
        o.no_evidence += outcomes.no_evidence;
        self.passes += 1;
        self.empty_passes += u64::from(assets == 0);
    }
}

/// The broker link, written by the uplink task.
#[derive(Debug, Default)]
pub struct UplinkMetrics {
    connected: AtomicBool,
    connects: AtomicU64,
    /// Events the broker acknowledged for the first time.
    published: AtomicU64,
    /// Every `seq` below this is delivered (the spool's depth is counted
    /// from here to the spool's next `seq`).
    delivered_below: AtomicU64,
    /// Publishes the broker refused (MQTT 5 PUBACK reason code >= 0x80).
    refused: AtomicU64,
    /// Events too large to ever send, moved to the spool's dead letters.
    too_large: AtomicU64,
    pub latency: Latency,
}

impl UplinkMetrics {
    pub fn connected(&self) {
        self.connected.store(true, Relaxed);
        self.connects.fetch_add(1, Relaxed);
    }

    pub fn disconnected(&self) {
        self.connected.store(false, Relaxed);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    /// Connections after the first.
    pub fn reconnects(&self) -> u64 {
        self.connects.load(Relaxed).saturating_sub(1)
    }

    pub fn published(&self) {
        self.published.fetch_add(1, Relaxed);
    }

    pub fn published_total(&self) -> u64 {
        self.published.load(Relaxed)
    }

    pub fn set_delivered_below(&self, seq: u64) {
        self.delivered_below.store(seq, Relaxed);
    }

    pub fn delivered_below(&self) -> u64 {
        self.delivered_below.load(Relaxed)
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    pub fn too_large(&self) {
        self.too_large.fetch_add(1, Relaxed);
    }

    pub fn too_large_total(&self) -> u64 {
        self.too_large.load(Relaxed)
    }
}

/// Publish latency (submitted to the client until its PUBACK) of spooled
/// events: the last one, and sum, count and max over the current window.
#[derive(Debug, Default)]
pub struct Latency {
    last_us: AtomicU64,
    sum_us: AtomicU64,
    count: AtomicU64,
    max_us: AtomicU64,
}

/// One health interval's publish latencies, taken by [`Latency::take`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyWindow {
    /// The most recent, whether or not in this window; `None` before the first.
    pub last: Option<Duration>,
    pub avg: Option<Duration>,
    pub max: Option<Duration>,
    pub count: u64,
}

impl Latency {
    pub fn record(&self, latency: Duration) {
        // At least 1 µs, so 0 can mean "none yet".
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.last_us.store(us, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    /// The window so far, and starts a new one. A sample recorded while this
    /// runs may land in either window, or have its sum in one and its count
    /// in the other: a rounding error in an average, not a lost event.
    pub fn take(&self) -> LatencyWindow {
        let count = self.count.swap(0, Relaxed);
        let sum = self.sum_us.swap(0, Relaxed);
        let max = self.max_us.swap(0, Relaxed);
        let last = self.last_us.load(Relaxed);
        let us = |v: u64| (v > 0).then(|| Duration::from_micros(v));
        LatencyWindow {
            last: us(last),
            avg: (count > 0).then(|| Duration::from_micros(sum / count)),
            max: us(max).filter(|_| count > 0),
            count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_have_one_slot_each() {
        let m = ReaderMetrics::default();
        for (i, reason) in DROP_REASONS.into_iter().enumerate() {
            assert_eq!(slot(reason), i);
            for _ in 0..=i {
                m.dropped(reason);
            }
        }
        for (i, reason) in DROP_REASONS.into_iter().enumerate() {
            assert_eq!(m.dropped_by(reason), i as u64 + 1, "{}", reason.as_str());
        }
    }

    #[test]
    fn a_reader_keeps_its_counters_until_it_is_no_longer_configured() {
        let metrics = Metrics::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        metrics.reader(&a).read();
        metrics.reader(&b).read();
        // A reload hands the same counters to the restarted reader.
        metrics.reader(&a).read();
        assert_eq!(metrics.reader(&a).reads(), 2);
        metrics.retain_readers(std::slice::from_ref(&a));
        let names: Vec<_> = metrics.readers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [a]);
    }

    #[test]
    fn a_pass_counts_its_assets_outcomes_and_itself() {
        let mut stats = PortalStats::default();
        let outcomes = Outcomes {
            moved: 2,
            ambiguous: 1,
            static_tags: 1,
            no_evidence: 1,
        };
        stats.pass(5, &outcomes);
        stats.pass(0, &Outcomes::default());
        stats.outcomes.moved += 1;
        assert_eq!(
            stats.outcomes,
            Outcomes {
                moved: 3,
                ..outcomes
            }
        );
        assert_eq!((stats.passes, stats.empty_passes), (2, 1));
    }

    #[test]
    fn a_portal_keeps_its_counts_until_it_is_no_longer_configured() {
        let metrics = Metrics::default();
        let (door, gate): (Arc<str>, Arc<str>) = ("dock-door-1".into(), "cage-1".into());
        metrics.portal(&door).count(|s| s.outcomes.moved += 1);
        metrics.portal(&gate).count(|s| s.outcomes.ambiguous += 1);
        // A reload's portals take up the same counts.
        metrics
            .portal(&door)
            .count(|s| s.pass(0, &Outcomes::default()));
        let counts = metrics.portals();
        let (name, door_counts) = &counts[1];
        assert_eq!(name, &door);
        assert_eq!(
            (door_counts.outcomes.moved, door_counts.passes),
            (1, 1),
            "{counts:?}"
        );
        metrics.retain_portals(std::slice::from_ref(&door));
        let names: Vec<_> = metrics.portals().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, [door]);
    }

    #[test]
    fn the_latency_window_resets_but_the_last_sample_stays() {
        let l = Latency::default();
        assert_eq!(l.take().last, None);
        for ms in [4, 10, 1] {
            l.record(Duration::from_millis(ms));
        }
        let w = l.take();
        assert_eq!(w.count, 3);
        assert_eq!(w.last, Some(Duration::from_millis(1)));
        assert_eq!(w.avg, Some(Duration::from_millis(5)));
        assert_eq!(w.max, Some(Duration::from_millis(10)));
        let empty = l.take();
        assert_eq!((empty.count, empty.avg, empty.max), (0, None, None));
        assert_eq!(empty.last, Some(Duration::from_millis(1)));
    }
}
