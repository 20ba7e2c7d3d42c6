//! The run's numbers: a JSON document and a table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::probe;
use crate::subscriber::Observed;
use crate::Args;

/// Once a second during the run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Since writing started.
    pub t_s: f64,
    /// Daemon CPU over the last interval, % of one core.
    pub cpu_pct: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
    /// Frames written so far.
    pub frames: u64,
    /// Custody events received so far (first deliveries).
    pub events: u64,
    /// Highest `seq` the spool has logged as committed (None without the log).
    pub committed_seq: Option<u64>,
    /// Highest `seq` the subscriber has received.
    pub delivered_seq: u64,
}

impl Sample {
    /// Committed but not yet received: the spool's backlog, seen from outside
    /// (it includes events on their way through the broker).
    pub fn depth(&self) -> Option<u64> {
        self.committed_seq
            .map(|c| c.saturating_sub(self.delivered_seq))
    }
}

pub struct OutageReport {
    pub cut_for_s: f64,
    pub delivered_at_cut: u64,
    /// Committed but not delivered when the link came back.
    pub backlog: u64,
    /// Link restored to first event received.
    pub reconnect_s: Option<f64>,
    /// First event after the reconnect to the backlog's last one.
    pub drain_s: Option<f64>,
}

impl OutageReport {
    fn rate(&self) -> Option<f64> {
        self.drain_s
            .filter(|s| *s > 0.0)
            .map(|s| self.backlog as f64 / s)
    }
}

pub struct Run<'a> {
    pub args: Args,
    pub write_start: Instant,
    pub binary: PathBuf,
    pub startup: Duration,
    /// Seconds of writing.
    pub window: f64,
    pub frames: u64,
    pub idle_slots: u64,
    pub visits: u64,
    pub observed: &'a Observed,
    pub unanswered_arrivals: u64,
    pub unanswered_departures: u64,
    /// The tags (as `asset.id`) of the first few visits still owed an event.
    pub unanswered_tags: Vec<String>,
    pub daemon_cpu_pct: f64,
    pub daemon_cpu_total_s: f64,
    /// Context switches of the daemon's threads per second of writing.
    pub daemon_switches_per_s: f64,
    /// The machine's 1-minute load average when writing started.
    pub load_at_start: String,
    pub broker_cpu_pct: f64,
    pub harness_cpu_pct: f64,
    pub rss_end_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
    pub samples: &'a [Sample],
    pub outage: Option<OutageReport>,
    pub spool_file_bytes: u64,
    pub clean_exit: bool,
}

/// Nearest-rank percentile of `values` (sorted here); NaN when empty.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(values: &[f64]) -> Value {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    json!({
        "n": v.len(),
        "p50": percentile(&v, 50.0),
        "p99": percentile(&v, 99.0),
        "max": v.last().copied().unwrap_or(f64::NAN),
    })
}

/// The machine, and its 1-minute load average when writing started and now.
fn machine(load_at_start: &str) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("?".to_string(), |m| m.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": model,
        "mem_gib": (mem_kib as f64 / (1 << 20) as f64 * 10.0).round() / 10.0,
        "loadavg_at_start": load_at_start,
        "loadavg_at_end": probe::load_average(),
    })
}

/// Arrivals of the field the run starts with (a few hundred tags at once)
/// are left out of the steady-state latency.
const WARM_UP: Duration = Duration::from_secs(1);

impl Run<'_> {
    /// Arrival latencies (ms): all, and those of visits begun after warm-up.
    fn arrival_ms(&self) -> (Vec<f64>, Vec<f64>) {
        let all = self.observed.arrivals.iter().map(|(_, ms)| *ms).collect();
        let steady = self
            .observed
            .arrivals
            .iter()
            .filter(|(written, _)| *written >= self.write_start + WARM_UP)
            .map(|(_, ms)| *ms)
            .collect();
        (all, steady)
    }

    fn depths(&self) -> Vec<u64> {
        self.samples.iter().filter_map(Sample::depth).collect()
    }

    pub fn json(&self) -> Value {
        let o = self.observed;
        let a = &self.args;
        let depths = self.depths();
        let mode = if a.flood.is_some() {
            "flood"
        } else if a.outage_at.is_some() {
            "outage"
        } else {
            "steady"
        };
        json!({
            "mode": mode,
            "machine": machine(&self.load_at_start),
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "daemon_binary": self.binary.display().to_string(),
            "workload": {
                "readers": a.readers,
                "rate_per_reader": a.rate,
                "tags": a.flood.unwrap_or(a.tags),
                "flood": a.flood.is_some(),
                "duration_s": a.duration.as_secs_f64(),
                "dwell_s": a.dwell.as_secs_f64(),
                "gap_s": a.gap.as_secs_f64(),
                "departure_timeout_s": a.departure_timeout.as_secs_f64(),
                "writer_tick_ms": a.tick.as_secs_f64() * 1000.0,
                "spool_commit_log": !a.no_spool_log,
                "daemon_env": a.daemon_env,
            },
            "startup_s": self.startup.as_secs_f64(),
            "write_window_s": self.window,
            "frames_written": self.frames,
            "frames_per_s": self.frames as f64 / self.window,
            "idle_slots": self.idle_slots,
            "visits": self.visits,
            "reads_in_departed_events": o.reads_departed,
            "reads_ingested_per_s": o.reads_departed as f64 / self.window,
            "events": {
                "custody": o.custody,
                "arrived": o.arrived,
                "departed": o.departed,
                "alarms": o.alarms,
                "duplicates": o.duplicates,
                "unmatched": o.unmatched,
                "max_seq": o.max_seq,
                "per_s": o.custody as f64 / self.window,
                "unanswered_arrivals": self.unanswered_arrivals,
                "unanswered_departures": self.unanswered_departures,
                "unanswered_tags": self.unanswered_tags,
                "unmatched_payloads": o.unmatched_payloads,
            },
            "latency_ms": {
                "frame_to_arrived": summary(&self.arrival_ms().1),
                "frame_to_arrived_including_initial_field": summary(&self.arrival_ms().0),
                "departed_after_timeout": summary(&o.departure_lag_ms),
            },
            "daemon": {
                "cpu_pct_of_one_core": self.daemon_cpu_pct,
                "cpu_s_total": self.daemon_cpu_total_s,
                "context_switches_per_s": self.daemon_switches_per_s,
                "peak_rss_kib": self.hwm_kib,
                "rss_end_kib": self.rss_end_kib,
                "threads": self.threads,
                "clean_exit": self.clean_exit,
            },
            "broker_cpu_pct": self.broker_cpu_pct,
            "harness_cpu_pct": self.harness_cpu_pct,
            "spool": {
                "depth_max": depths.iter().max(),
                "depth_mean": (!depths.is_empty())
                    .then(|| depths.iter().sum::<u64>() as f64 / depths.len() as f64),
                "file_bytes_at_end": self.spool_file_bytes,
            },
            "outage": self.outage.as_ref().map(|r| json!({
                "cut_for_s": r.cut_for_s,
                "delivered_at_cut": r.delivered_at_cut,
                "backlog_events": r.backlog,
                "reconnect_s": r.reconnect_s,
                "drain_s": r.drain_s,
                "drain_events_per_s": r.rate(),
            })),
            "samples": self.samples,
        })
    }

    pub fn print_table(&self) {
        let o = self.observed;
        let a = &self.args;
        let (mut all, mut arrival) = self.arrival_ms();
        all.sort_by(f64::total_cmp);
        arrival.sort_by(f64::total_cmp);
        let mut departure = o.departure_lag_ms.clone();
        departure.sort_by(f64::total_cmp);
        let depths = self.depths();
        let row = |k: &str, v: String| println!("  {k:<40} {v}");
        println!();
        println!(
            "custodyd load: {} readers x {} frames/s, {} {}tags, {:.1} s",
            a.readers,
            a.rate,
            a.flood.unwrap_or(a.tags),
            if a.flood.is_some() { "distinct " } else { "" },
            self.window
        );
        row(
            "frames written / s",
            format!("{:.0}", self.frames as f64 / self.window),
        );
        row(
            "raw reads ingested / s (in departed)",
            format!(
                "{:.0} ({} of {} frames)",
                o.reads_departed as f64 / self.window,
                o.reads_departed,
                self.frames
            ),
        );
        row(
            "events published / s",
            format!(
                "{:.1} ({} arrived, {} departed, {} alarms, {} re-sent)",
                o.custody as f64 / self.window,
                o.arrived,
                o.departed,
                o.alarms,
                o.duplicates
            ),
        );
        row(
            "missing (owed, not received)",
            format!(
                "{} arrived, {} departed; {} unmatched",
                self.unanswered_arrivals, self.unanswered_departures, o.unmatched
            ),
        );
        row(
            "frame -> arrived at subscriber (ms)",
            format!(
                "p50 {:.1}  p99 {:.1}  max {:.1}  (n={})",
                percentile(&arrival, 50.0),
                percentile(&arrival, 99.0),
                arrival.last().copied().unwrap_or(f64::NAN),
                arrival.len()
            ),
        );
        row(
            "  with the initial field's arrivals",
            format!(
                "p50 {:.1}  p99 {:.1}  max {:.1}  (n={})",
                percentile(&all, 50.0),
                percentile(&all, 99.0),
                all.last().copied().unwrap_or(f64::NAN),
                all.len()
            ),
        );
        row(
            "departed after timeout (ms)",
            format!(
                "p50 {:.1}  p99 {:.1}  max {:.1}",
                percentile(&departure, 50.0),
                percentile(&departure, 99.0),
                departure.last().copied().unwrap_or(f64::NAN)
            ),
        );
        row(
            "daemon CPU (% of one core)",
            format!("{:.2}", self.daemon_cpu_pct),
        );
        row(
            "daemon context switches / s",
            format!("{:.0}", self.daemon_switches_per_s),
        );
        row(
            "daemon peak RSS (VmHWM) / at end",
            format!(
                "{:.1} MiB / {:.1} MiB ({} threads)",
                self.hwm_kib as f64 / 1024.0,
                self.rss_end_kib as f64 / 1024.0,
                self.threads
            ),
        );
        row(
            "mosquitto / harness CPU (%)",
            format!("{:.1} / {:.1}", self.broker_cpu_pct, self.harness_cpu_pct),
        );
        if depths.is_empty() {
            row("spool depth", "not measured (--no-spool-log)".into());
        } else {
            row(
                "spool depth (committed - received)",
                format!(
                    "max {}  mean {:.1}",
                    depths.iter().max().unwrap_or(&0),
                    depths.iter().sum::<u64>() as f64 / depths.len() as f64
                ),
            );
        }
        if let Some(r) = &self.outage {
            row(
                "outage",
                format!(
                    "{:.1} s cut, backlog {} events, reconnect {:.2} s",
                    r.cut_for_s,
                    r.backlog,
                    r.reconnect_s.unwrap_or(f64::NAN)
                ),
            );
            row(
                "backlog drain",
                format!(
                    "{:.0} events/s ({:.2} s)",
                    r.rate().unwrap_or(f64::NAN),
                    r.drain_s.unwrap_or(f64::NAN)
                ),
            );
        }
        if a.flood.is_some() && !self.samples.is_empty() {
            let n = self.samples.len();
            let at = |q: usize| &self.samples[(n * q / 4).min(n - 1)];
            row(
                "RSS at 25/50/75/100 % of the run (MiB)",
                [1, 2, 3, 4]
                    .map(|q| format!("{:.1}", at(q).rss_kib as f64 / 1024.0))
                    .join(" / "),
            );
        }
        row(
            "daemon exited cleanly on SIGTERM",
            format!("{}", self.clean_exit),
        );
        row(
            "machine load average at start / end",
            format!("{} / {}", self.load_at_start, probe::load_average()),
        );
    }
}
