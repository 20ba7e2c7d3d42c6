//! Load harness: the real `custodyd` binary, run as in production (`custodyd
//! run --config FILE`), fed by simulated readers on pseudo-terminals, into a
//! real Mosquitto, watched by a subscriber that timestamps every event.
//!
//! ```sh
//! cargo build --release --bin custodyd --example load
//! target/release/examples/load --readers 8 --rate 1000 --tags 500 --duration 30s --out target/load.json
//! target/release/examples/load ... --outage-at 10s --outage-for 15s   # broker link cut, then backlog drain
//! target/release/examples/load --flood 1000000 --duration 10m ...      # distinct tags: memory stays bounded
//! ```
//!
//! Not part of the daemon or its package; nothing here runs under `cargo test`.
//! See docs/performance.md for what it reports and how it was run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use custodyd::config::builder::{ConfigBuilder, Location, Mqtt, Reader};
use custodyd::config::Protocol;
use custodyd::demo::SimPort;

// Shared with the criterion benches: the door traffic model.
#[allow(dead_code)]
#[path = "../../benches/common/workload.rs"]
mod workload;

// Shared with the integration tests: the same Mosquitto and link cutter.
#[allow(dead_code)]
#[path = "../../tests/it/common/mosquitto.rs"]
mod mosquitto;
#[allow(dead_code)]
#[path = "../../tests/it/common/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../../tests/it/common/relay.rs"]
mod relay;

mod probe;
mod report;
mod subscriber;
mod writer;

// What mosquitto.rs expects from its parent module.
use process::{free_port, kill_child, signal_child, tail, wait_child, POLL};

use mosquitto::Mosquitto;
use relay::{Mode, Relay};
use report::Sample;
use subscriber::{Drain, Subscriber};
use workload::Pattern;
use writer::{Progress, Writer};

const SITE: &str = "load-site";
const GATEWAY: &str = "load-gw";

#[derive(Parser, Debug, Clone)]
#[command(about = "Drive the release custodyd with simulated readers and measure it")]
pub struct Args {
    /// Simulated readers (pseudo-terminals), one dock door each.
    #[arg(long, default_value_t = 8)]
    readers: usize,
    /// EM4100 frames per second written to each reader.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Tag population, dealt to the readers; tags come and go (see --dwell, --gap).
    #[arg(long, default_value_t = 500)]
    tags: u64,
    /// How long frames are written.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Mean time a tag stays in a reader's field per visit (0.5x-1.5x).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    dwell: Duration,
    /// Mean time a tag stays away between visits (0.5x-1.5x; keep half of it
    /// above --departure-timeout or visits merge).
    #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
    gap: Duration,
    /// Each door's `departure_timeout` in the daemon's configuration.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    departure_timeout: Duration,
    /// Flood: this many distinct tags pass once each over --duration.
    #[arg(long)]
    flood: Option<u64>,
    /// Outage: cut the daemon's broker link this long after writing starts ...
    #[arg(long, value_parser = humantime::parse_duration, requires = "outage_for")]
    outage_at: Option<Duration>,
    /// ... for this long, then measure how fast the backlog drains.
    #[arg(long, value_parser = humantime::parse_duration, requires = "outage_at")]
    outage_for: Option<Duration>,
    /// How often the writer wakes up (frames due are written per wake-up,
    /// one write per reader).
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    tick: Duration,
    /// After writing stops, how long to wait for the last events at most.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Run the daemon with the production log filter only: no spool commit
    /// log, so no spool depth in the report.
    #[arg(long)]
    no_spool_log: bool,
    /// Extra environment for the daemon, e.g. `TOKIO_WORKER_THREADS=1`
    /// (for experiments; repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    daemon_env: Vec<String>,
    /// The custodyd binary (default: the one next to this example's directory).
    #[arg(long)]
    daemon: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/load.json")]
    out: PathBuf,
    /// Keep the run's directory (config, daemon log, spool).
    #[arg(long)]
    keep: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.flood.is_none() && args.gap / 2 <= args.departure_timeout {
        eprintln!(
            "load: warning: --gap {:?} can be as short as {:?}, not over --departure-timeout {:?}: \
             visits will merge and arrivals go unmatched",
            args.gap,
            args.gap / 2,
            args.departure_timeout
        );
    }
    let binary = match &args.daemon {
        Some(path) => path.clone(),
        None => default_binary()?,
    };
    let target = binary
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let dir = tempfile::Builder::new()
        .prefix("custodyd-load-")
        .tempdir_in(target)
        .context("run directory")?;
    let result = run(&args, &binary, dir.path()).await;
    if args.keep || result.is_err() {
        let kept = dir.keep();
        eprintln!("load: run directory kept: {}", kept.display());
    }
    result
}

/// `target/release/custodyd`, beside `target/release/examples/load`.
fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .context("locating target/release")?;
    let binary = release.join("custodyd");
    if !binary.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release --bin custodyd)",
            binary.display()
        );
    }
    Ok(binary)
}

fn config(args: &Args, url: &str, data_dir: &Path, ports: &[SimPort]) -> String {
    let mqtt = Mqtt::new(url)
        .keep_alive(Duration::from_secs(5))
        .reconnect(Duration::from_millis(100), Duration::from_secs(1));
    let mut config = ConfigBuilder::new(SITE, GATEWAY, data_dir).mqtt(mqtt);
    for (i, port) in ports.iter().enumerate() {
        let door = format!("door-{i}");
        config = config
            .location(
                Location::dock_door(&door, "yard", "receiving")
                    .departure_timeout(args.departure_timeout),
            )
            .reader(Reader::serial(
                &format!("reader-{i}"),
                &door,
                port.path(),
                Protocol::Em4100,
            ));
    }
    config.to_string()
}

fn spawn_daemon(
    binary: &Path,
    config: &Path,
    log: &Path,
    spool_log: bool,
    env: &[String],
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    let mut cmd = Command::new(binary);
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if spool_log {
        // The production filter plus one debug line per group commit.
        cmd.env(
            "RUST_LOG",
            "warn,custodyd=info,rumqttd=off,custodyd::spool=debug",
        );
    }
    for kv in env {
        let (k, v) = kv.split_once('=').context("--daemon-env takes KEY=VALUE")?;
        cmd.env(k, v);
    }
    cmd.spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

fn all_readers_up(status: &str, readers: usize) -> bool {
    serde_json::from_str::<serde_json::Value>(status)
        .ok()
        .and_then(|v| {
            let r = v["readers"].as_object()?.clone();
            Some(r.len() == readers && r.values().all(|s| s["state"] == "up"))
        })
        .unwrap_or(false)
}

async fn run(args: &Args, binary: &Path, dir: &Path) -> anyhow::Result<()> {
    let broker = Mosquitto::start_quiet().await;
    let relay = match args.outage_at {
        Some(_) => Some(Relay::start(broker.port(), Mode::Forward).await),
        None => None,
    };
    let url = relay.as_ref().map_or_else(|| broker.url(), Relay::url);
    let ports: Vec<SimPort> = (0..args.readers)
        .map(|_| SimPort::open())
        .collect::<Result<_, _>>()
        .context("opening pseudo-terminals")?;
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let config_path = dir.join("custodyd.toml");
    std::fs::write(&config_path, config(args, &url, &data_dir, &ports))?;
    let log_path = dir.join("custodyd.log");

    let progress = Arc::new(Progress::default());
    let prefix = format!("itad/{SITE}/{GATEWAY}");
    let sub = Subscriber::start(
        broker.port(),
        &prefix,
        progress.clone(),
        args.departure_timeout,
    )
    .await;

    let started = Instant::now();
    let mut daemon = spawn_daemon(
        binary,
        &config_path,
        &log_path,
        !args.no_spool_log,
        &args.daemon_env,
    )?;
    let pid = daemon.id();
    let mut status = sub.status.clone();
    let ready = tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| all_readers_up(s, args.readers)),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if !ready {
        kill_child(&mut daemon);
        bail!(
            "the daemon did not report every reader up within 30 s; its log:\n{}",
            tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 30)
        );
    }
    let startup = started.elapsed();
    let flood = args.flood.is_some();
    let pattern = Pattern {
        readers: args.readers,
        tags: args.flood.unwrap_or(args.tags),
        dwell_us: args.dwell.as_micros() as u64,
        gap_us: args.gap.as_micros() as u64,
        flood,
        span_us: args.duration.as_micros() as u64,
        seed: args.seed,
    };
    eprintln!(
        "load: custodyd pid {pid} up in {startup:?}; writing {} readers x {} frames/s for {:?}",
        args.readers, args.rate, args.duration
    );

    let mut commits = probe::CommitLog::new(&log_path);
    let own_pid = std::process::id();
    let cpu = |pid| probe::cpu_seconds(pid).unwrap_or(0.0);
    let broker_pid = broker.pid().context("broker pid")?;
    let (daemon_cpu0, broker_cpu0, own_cpu0) = (cpu(pid), cpu(broker_pid), cpu(own_pid));
    let switches = || probe::context_switches(pid).unwrap_or(0);
    let switches0 = switches();
    let load_at_start = probe::load_average();

    let writer = Writer {
        ports,
        pattern,
        rate: args.rate,
        tick: args.tick,
        duration: args.duration,
        progress: progress.clone(),
    };
    let write_start = Instant::now();
    let writer = std::thread::spawn(move || writer.run());

    let mut samples = Vec::new();
    let mut last = (write_start, daemon_cpu0);
    let mut outage = Outage::default();
    let mut write_end = None;
    let mut cpu_at_write_end = (0.0, 0.0, 0.0);
    let mut switches_at_write_end = 0;
    let mut next_sample = write_start + Duration::from_secs(1);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = Instant::now();
        let t = now - write_start;
        if let (Some(at), Some(len), Some(relay)) = (args.outage_at, args.outage_for, &relay) {
            if outage.cut.is_none() && t >= at {
                relay.set(Mode::Refuse);
                outage.cut = Some(now);
                outage.delivered_at_cut = sub.observed.lock().unwrap().max_seq;
                eprintln!("load: broker link cut at {t:.1?}");
            }
            if outage.restored.is_none() && t >= at + len {
                let committed = commits.poll();
                let mut o = sub.observed.lock().unwrap();
                outage.delivered_at_restore = o.max_seq;
                outage.committed_at_restore = committed;
                o.drain = Some(Drain {
                    until_seq: committed,
                    first: None,
                    caught_up: None,
                });
                drop(o);
                relay.set(Mode::Forward);
                outage.restored = Some(now);
                eprintln!(
                    "load: broker link restored at {t:.1?}; backlog {} events",
                    committed.saturating_sub(outage.delivered_at_restore)
                );
            }
        }
        if write_end.is_none() && progress.done.load(Ordering::Acquire) {
            write_end = Some(now);
            cpu_at_write_end = (cpu(pid), cpu(broker_pid), cpu(own_pid));
            switches_at_write_end = switches();
        }
        if now >= next_sample {
            next_sample += Duration::from_secs(1);
            let cpu_now = cpu(pid);
            let (rss, hwm) = probe::memory_kib(pid).unwrap_or((0, 0));
            let committed = commits.poll();
            let o = sub.observed.lock().unwrap();
            samples.push(Sample {
                t_s: t.as_secs_f64(),
                cpu_pct: 100.0 * (cpu_now - last.1) / (now - last.0).as_secs_f64(),
                rss_kib: rss,
                hwm_kib: hwm,
                threads: probe::threads(pid).unwrap_or(0),
                frames: progress.frames.load(Ordering::Relaxed),
                events: o.custody,
                committed_seq: (!args.no_spool_log).then_some(committed),
                delivered_seq: o.max_seq,
            });
            drop(o);
            last = (now, cpu_now);
        }
        if let Some(end) = write_end {
            let settled = {
                let owed = progress.owed.lock().unwrap();
                owed.arrivals.is_empty() && owed.departures.is_empty()
            };
            let drained = outage.cut.is_none()
                || sub
                    .observed
                    .lock()
                    .unwrap()
                    .drain
                    .is_some_and(|d| d.caught_up.is_some());
            if (settled && drained) || now - end >= args.settle {
                break;
            }
        }
    }
    let ports = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))?
        .context("writing frames")?;
    let (rss_end, hwm_end) = probe::memory_kib(pid).unwrap_or((0, 0));
    let threads_end = probe::threads(pid).unwrap_or(0);
    let daemon_cpu_total = cpu(pid);

    signal_child(&mut daemon, nix::sys::signal::Signal::SIGTERM);
    let exit = wait_child(&mut daemon, Duration::from_secs(30)).await;
    if exit.is_none() {
        kill_child(&mut daemon);
    }
    drop(ports);
    let spool_file = std::fs::metadata(data_dir.join("spool.redb")).map_or(0, |m| m.len());

    let write_end = write_end.unwrap_or_else(Instant::now);
    let window = (write_end - write_start).as_secs_f64();
    let o = sub.observed.lock().unwrap();
    let owed = progress.owed.lock().unwrap();
    let run = report::Run {
        args: args.clone(),
        write_start,
        binary: binary.to_owned(),
        startup,
        window,
        frames: progress.frames.load(Ordering::Relaxed),
        idle_slots: progress.idle_slots.load(Ordering::Relaxed),
        visits: progress.visits.load(Ordering::Relaxed),
        observed: &o,
        unanswered_arrivals: owed.arrivals.values().map(|q| q.len() as u64).sum(),
        unanswered_departures: owed.departures.values().map(|q| q.len() as u64).sum(),
        unanswered_tags: owed
            .arrivals
            .keys()
            .chain(owed.departures.keys())
            .take(subscriber::EXAMPLES)
            .map(|&tag| workload::tag_hex(tag))
            .collect(),
        daemon_cpu_pct: 100.0 * (cpu_at_write_end.0 - daemon_cpu0) / window,
        daemon_cpu_total_s: daemon_cpu_total - daemon_cpu0,
        daemon_switches_per_s: switches_at_write_end.saturating_sub(switches0) as f64 / window,
        load_at_start,
        broker_cpu_pct: 100.0 * (cpu_at_write_end.1 - broker_cpu0) / window,
        harness_cpu_pct: 100.0 * (cpu_at_write_end.2 - own_cpu0) / window,
        rss_end_kib: rss_end,
        hwm_kib: hwm_end,
        threads: threads_end,
        samples: &samples,
        outage: outage.report(&o),
        spool_file_bytes: spool_file,
        clean_exit: exit.is_some_and(|s| s.success()),
    };
    let value = run.json();
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&value)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    run.print_table();
    println!("\nJSON: {}", args.out.display());
    Ok(())
}

/// The broker link cut of outage mode.
#[derive(Default)]
struct Outage {
    cut: Option<Instant>,
    restored: Option<Instant>,
    delivered_at_cut: u64,
    delivered_at_restore: u64,
    committed_at_restore: u64,
}

impl Outage {
    fn report(&self, o: &subscriber::Observed) -> Option<report::OutageReport> {
        let (cut, restored) = (self.cut?, self.restored?);
        let drain = o.drain?;
        let backlog = self
            .committed_at_restore
            .saturating_sub(self.delivered_at_restore);
        let first = drain.first;
        let caught = drain.caught_up;
        Some(report::OutageReport {
            cut_for_s: (restored - cut).as_secs_f64(),
            delivered_at_cut: self.delivered_at_cut,
            backlog,
            reconnect_s: first.map(|f| (f - restored).as_secs_f64()),
            drain_s: first.zip(caught).map(|(f, c)| (c - f).as_secs_f64()),
        })
    }
}
