//! `custodyd.health.v1` on `{root}/{site}/{gateway}/health`, every
//! `gateway.health_interval`: enough for an ops team to know whether a door
//! works without logging in to the Pi.
//!
//! Published with QoS 0, not retained and not spooled: a sample is stale by
//! the next one, and one lost during an outage is not worth a byte of the
//! spool. Counters are totals since the daemon started (a consumer that
//! misses samples still gets the right rate from the next two); `reads_per_s`,
//! `cpu_percent` and the publish latency cover the last interval.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::QoS;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::bus::Publisher;
use crate::custody::rfc3339;
use crate::spool::Committed;
use crate::topic::Naming;

pub mod clock;
pub mod process;

use crate::metrics::{LatencyWindow, Metrics, DROP_REASONS};

pub const HEALTH_SCHEMA: &str = "custodyd.health.v1";

/// What the health task reads, all owned elsewhere.
pub struct Sources {
    pub metrics: Arc<Metrics>,
    /// The spool's progress (depth, bytes, oldest event).
    pub spool: watch::Receiver<Committed>,
    /// `spool.max_bytes`, for context beside `bytes`.
    pub max_bytes: u64,
    /// Whether the clock is synchronised ([`crate::clock::is_synced`]).
    pub clock_synced: fn() -> bool,
}

/// Publishes a health sample every `every` until `cancel`.
pub fn spawn(
    naming: Naming,
    every: Duration,
    sources: Sources,
    publisher: Publisher,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let mut sampler = Sampler::new(naming, sources);
    tokio::spawn(async move {
        let topic = sampler.naming.health();
        let mut ticks = interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let sample = sampler.sample(Instant::now(), SystemTime::now());
            // Dropped while the broker is unreachable: the next one will do.
            if !publisher.publish(
                topic.clone(),
                sample.to_string().into_bytes(),
                QoS::AtMostOnce,
                false,
            ) {
                debug!("health sample dropped: the uplink is not keeping up");
            }
        }
    })
}

/// Builds samples; remembers the previous one for the rates.
struct Sampler {
    naming: Naming,
    sources: Sources,
    started: Instant,
    /// The spool's next `seq` at start: events committed since are counted
    /// from it.
    first_seq: u64,
    previous: Previous,
}

struct Previous {
    at: Instant,
    cpu: Option<Duration>,
    reads: HashMap<Arc<str>, u64>,
}

impl Sampler {
    fn new(naming: Naming, sources: Sources) -> Self {
        let now = Instant::now();
        let first_seq = sources.spool.borrow().next_seq;
        Sampler {
            naming,
            sources,
            started: now,
            first_seq,
            previous: Previous {
                at: now,
                cpu: process::cpu_time(),
                reads: HashMap::new(),
            },
        }
    }

    fn sample(&mut self, now: Instant, wall: SystemTime) -> Value {
        let elapsed = now.duration_since(self.previous.at).as_secs_f64();
        let per_second = |delta: u64| {
            if elapsed > 0.0 {
                round(delta as f64 / elapsed, 100.0)
            } else {
                0.0
            }
        };
        let metrics = &self.sources.metrics;

        let mut reads_now = HashMap::new();
        let readers: Map<String, Value> = metrics
            .readers()
            .into_iter()
            .map(|(name, m)| {
                let reads = m.reads();
                let before = self.previous.reads.get(&name).copied().unwrap_or(0);
                reads_now.insert(name.clone(), reads);
                let dropped: Map<String, Value> = DROP_REASONS
                    .iter()
                    .map(|r| (r.as_str().to_string(), json!(m.dropped_by(*r))))
                    .collect();
                let reader = json!({
                    "state": if m.is_up() { "up" } else { "down" },
                    "reads": reads,
                    "reads_per_s": per_second(reads.saturating_sub(before)),
                    "dropped": dropped,
                    "error_replies": m.error_replies(),
                    "invalid_scans": m.invalid_scans(),
                });
                (name.to_string(), reader)
            })
            .collect();

        // Every portal location, `{}` at a gateway without one.
        let portals: Map<String, Value> = metrics
            .portals()
            .into_iter()
            .map(|(location, stats)| (location.to_string(), json!(stats)))
            .collect();

        let spool = *self.sources.spool.borrow();
        let now_ms = wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let oldest_age_s = spool
            .oldest_committed_at_ms
            .map(|at| round(now_ms.saturating_sub(at) as f64 / 1000.0, 10.0));
        let uplink = &metrics.uplink;

        let cpu = process::cpu_time();
        let cpu_percent = match (cpu, self.previous.cpu) {
            (Some(now), Some(before)) if elapsed > 0.0 => Some(round(
                now.saturating_sub(before).as_secs_f64() / elapsed * 100.0,
                10.0,
            )),
            _ => None,
        };
        self.previous = Previous {
            at: now,
            cpu,
            reads: reads_now,
        };

        json!({
            "schema": HEALTH_SCHEMA,
            "site": self.naming.site,
            "gateway": self.naming.gateway,
            "at": rfc3339(wall),
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": now.duration_since(self.started).as_secs(),
            "interval_s": round(elapsed, 10.0),
            "clock_synced": (self.sources.clock_synced)(),
            "readers": readers,
            "portals": portals,
            "events": {
                "committed": spool.next_seq.saturating_sub(self.first_seq),
                "published": uplink.published_total(),
            },
            "spool": {
                "depth": spool.next_seq.saturating_sub(uplink.delivered_below()),
                "bytes": spool.bytes,
                "max_bytes": self.sources.max_bytes,
                "oldest_age_s": oldest_age_s,
                "dropped": spool.dropped,
            },
            "untrusted_messages": metrics.untrusted_messages.load(std::sync::atomic::Ordering::Relaxed),
            "mqtt": {
                "connected": uplink.is_connected(),
                "reconnects": uplink.reconnects(),
                "refused": uplink.refused_total(),
                "too_large": uplink.too_large_total(),
                "publish_latency_ms": latency_json(uplink.latency.take()),
            },
            "process": {
                "rss_bytes": process::rss_bytes(),
                "cpu_percent": cpu_percent,
            },
        })
    }
}

fn latency_json(w: LatencyWindow) -> Value {
    let ms = |d: Option<Duration>| d.map(|d| round(d.as_secs_f64() * 1000.0, 10.0));
    json!({ "last": ms(w.last), "avg": ms(w.avg), "max": ms(w.max), "count": w.count })
}

/// `x` to `1 / per` (`per` 10: one decimal).
fn round(x: f64, per: f64) -> f64 {
    (x * per).round() / per
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DropReason;

    #[tokio::test(start_paused = true)]
    async fn a_sample_reports_totals_and_rates_over_the_interval() {
        let metrics = Arc::new(Metrics::default());
        let (spool_tx, spool) = watch::channel(Committed {
            next_seq: 10,
            closed: false,
            dropped: 0,
            bytes: 0,
            oldest_committed_at_ms: None,
            head: None,
        });
        let naming = Naming {
            root: "itad".into(),
            site: "s".into(),
            gateway: "g".into(),
        };
        let sources = Sources {
            metrics: metrics.clone(),
            spool,
            max_bytes: 1 << 20,
            clock_synced: || false,
        };
        let mut sampler = Sampler::new(naming, sources);
        let door = metrics.reader(&"door1-em".into());
        door.set_up(true);
        for _ in 0..20 {
            door.read();
        }
        door.dropped(DropReason::Checksum);
        metrics.uplink.connected();
        metrics.uplink.set_delivered_below(12);
        metrics.uplink.latency.record(Duration::from_millis(3));
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        spool_tx.send_modify(|c| {
            c.next_seq = 15;
            c.bytes = 1590;
            c.oldest_committed_at_ms = Some(1_000_000_000 - 2_500);
        });

        tokio::time::advance(Duration::from_secs(10)).await;
        let s = sampler.sample(Instant::now(), wall);
        assert_eq!(s["schema"], HEALTH_SCHEMA);
        assert_eq!(s["clock_synced"], false);
        let r = &s["readers"]["door1-em"];
        assert_eq!((&r["state"], &r["reads"]), (&json!("up"), &json!(20)));
        assert_eq!(r["reads_per_s"], 2.0);
        assert_eq!(r["dropped"]["checksum"], 1);
        assert_eq!(r["dropped"]["unterminated"], 0);
        assert_eq!(s["events"]["committed"], 5);
        assert_eq!(s["spool"]["depth"], 3);
        assert_eq!(s["spool"]["bytes"], 1590);
        assert_eq!(s["spool"]["oldest_age_s"], 2.5);
        assert_eq!(s["mqtt"]["connected"], true);
        assert_eq!(s["mqtt"]["reconnects"], 0);
        assert_eq!(s["mqtt"]["publish_latency_ms"]["max"], 3.0);
        assert!(s["process"]["rss_bytes"].as_u64().is_some_and(|b| b > 0));
        assert_eq!(s["portals"], json!({}), "no portal");

        // The next interval: rates and latency start over, totals do not.
        let door = metrics.portal(&"dock-door-1".into());
        door.count(|p| {
            p.outcomes.ambiguous += 1;
            p.pass(
                2,
                &crate::custody::Outcomes {
                    moved: 2,
                    ..Default::default()
                },
            );
        });
        tokio::time::advance(Duration::from_secs(10)).await;
        let s = sampler.sample(Instant::now(), wall);
        assert_eq!(
            s["portals"],
            json!({"dock-door-1": {"moved": 2, "ambiguous": 1, "static": 0, "no_evidence": 0,
                "passes": 1, "empty_passes": 0}})
        );
        let r = &s["readers"]["door1-em"];
        assert_eq!((&r["reads"], &r["reads_per_s"]), (&json!(20), &json!(0.0)));
        assert_eq!(s["mqtt"]["publish_latency_ms"]["count"], 0);
        assert_eq!(s["mqtt"]["publish_latency_ms"]["last"], 3.0);
        assert!(s["mqtt"]["publish_latency_ms"]["avg"].is_null());
    }
}
