//! Faults under load: the delivery guarantee of the real `custodyd` binary
//! against a real Mosquitto while thousands of events flow.
//!
//! What is proven, for each kind of fault: every event the daemon committed
//! reaches a subscriber at least once, no `seq` is missing (1 to the highest
//! all arrive), and every duplicate is a re-delivery (same `seq`, same
//! `event_id`, same bytes). [`Ledger`](crate::common::Ledger) checks that, by `seq` and
//! `event_id`, as the messages arrive. The faults:
//!
//! - the daemon's link is cut (connections closed) and the broker itself is
//!   stopped and restarted, several times while events flow;
//! - the link goes half-open (a pulled cable: nothing moves, no FIN, no RST),
//!   and the daemon must notice within a bound;
//! - the daemon is SIGKILLed repeatedly under load and restarted on the same
//!   data dir: `seq` continues without gaps and nothing committed is lost;
//! - a long outage builds a backlog of thousands of events, which drains in
//!   `seq` order while new events keep being accepted.
//!
//! How: a barcode scanner (a pty) is fed distinct codes (`ITEM-000001`, ...)
//! at a steady pace by a background task, so each code is exactly one
//! `scanned` event and, where nothing is killed, `seq` N is code N. The
//! daemon reaches the broker through a [`Relay`] the test can cut or black
//! out. The observer is a persistent-session subscriber on a persistent
//! broker, so the observer itself never misses a message (see [`rig`]).
//! Every wait is on a condition with a generous deadline; the only sleeps
//! pace the load or hold an outage open.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Deadline for thousands of events to get through a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(120);

/// What the daemon logs when a connection it had is gone (src/sink/mqtt.rs).
const LOST: &str = "broker connection lost";

/// The daemon, its scanner, its link and an observer that misses nothing.
struct Rig {
    // First field, so it is killed (and its log shown) before the rest goes.
    daemon: Daemon,
    scanner: Arc<Pty>,
    link: Relay,
    sub: Subscriber,
    ledger: Ledger,
    broker: Mosquitto,
}

/// Starts a persistent broker, a persistent observer on the custody topics,
/// a relay in `link` mode and the daemon with one scanner behind it.
///
/// Why persistent: a broker restart also disconnects the observer, and a
/// clean-session observer would miss whatever was published until it had
/// resubscribed; and a SIGKILLed Mosquitto loses messages it had
/// acknowledged to the daemon but not yet delivered. Both are the broker's
/// durability, not the daemon's, so the broker keeps its state across a
/// SIGTERM restart and the observer's session (with its queue of QoS 1
/// messages) survives both its own disconnects and the broker's restarts.
/// The broker also has no cap on that queue (mosquitto's default drops
/// messages beyond 1000 queued for one client). Then any gap the ledger
/// finds is the daemon's.
async fn rig(link: Mode) -> Rig {
    let broker = Mosquitto::start_persistent().await;
    let sub =
        Subscriber::connect_persistent(&broker.url(), &format!("{GW}/custody/#"), "observer").await;
    let link = Relay::start(broker.port(), link).await;
    let scanner = Arc::new(Pty::open());
    let mut daemon = Daemon::new();
    daemon.spawn(
        gateway_config(&link.url(), &daemon.data_dir()).station_with_scanner(scanner.path()),
    );
    Rig {
        daemon,
        scanner,
        link,
        sub,
        ledger: Ledger::new(),
        broker,
    }
}

impl Rig {
    /// Waits until the observer has every `seq` in `1..=n`.
    async fn delivered(&mut self, n: u64) {
        self.ledger.wait_contiguous(&self.sub, n, LONG).await;
    }

    /// The ledger's verdict (which panics on a gap or on a duplicate that is
    /// not a re-delivery), after checking that the daemon logged no error:
    /// these faults are all ones it is built to ride out.
    fn verdict(&self) -> Report {
        let log = self.daemon.log();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert!(
            errors.is_empty(),
            "the daemon logged errors:\n{}",
            errors.join("\n")
        );
        self.ledger.report()
    }

    /// How often the daemon has logged losing an established connection.
    fn losses(&self) -> usize {
        self.daemon.log().matches(LOST).count()
    }

    /// Waits until the daemon's log shows `seq` `n` committed to the spool.
    async fn committed(&self, n: u64) {
        wait_until(LONG, &format!("seq {n} to be committed"), || {
            committed_max(&self.daemon.log()) >= n
        })
        .await;
    }
}

/// The highest `seq` in the daemon's `spool committed seq A..=B` debug lines
/// (0 if none).
fn committed_max(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| line.split("spool committed seq ").nth(1))
        .filter_map(|range| {
            let last = range.split("..=").nth(1)?;
            let digits: String = last.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// The `n`th barcode of the load.
fn code(n: u64) -> String {
    format!("ITEM-{n:06}")
}

/// Asserts that `seq` N is code N for every delivered event: each code
/// written became exactly one event, in the order written, and nothing else
/// was committed.
fn assert_one_event_per_code(report: &Report) {
    for (seq, asset) in (1..).zip(&report.assets) {
        assert_eq!(*asset, code(seq), "seq {seq} is not the {seq}th code");
    }
}

/// Distinct codes written to the scanner at a steady pace from a background
/// task, until stopped.
struct Load {
    /// The next code number to write.
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Load {
    /// Writes `code(first)`, `code(first + 1)`, ... at about `per_second`,
    /// a batch every 10 ms.
    fn start(scanner: &Arc<Pty>, first: u64, per_second: u64) -> Load {
        let next = Arc::new(AtomicU64::new(first));
        let stop = Arc::new(AtomicBool::new(false));
        let per_tick = (per_second / 100).max(1);
        let task = tokio::spawn({
            let (scanner, next, stop) = (scanner.clone(), next.clone(), stop.clone());
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let n = next.load(Ordering::Relaxed);
                    let batch: String = (n..n + per_tick).map(|i| code(i) + "\r").collect();
                    scanner.write(batch.as_bytes()).await;
                    next.store(n + per_tick, Ordering::Relaxed);
                }
            }
        });
        Load { next, stop, task }
    }

    /// Waits until code number `n` has been written.
    async fn written(&self, n: u64) {
        wait_until(LONG, &format!("code {n} to be written"), || {
            self.next.load(Ordering::Relaxed) > n
        })
        .await;
    }

    /// Stops after the batch being written; returns the last code number.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the load generator failed");
        self.next.load(Ordering::Relaxed) - 1
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The relay closes the daemon's connection and refuses new ones.
    CutLink,
    /// Mosquitto is stopped (SIGTERM, state saved) and started again.
    RestartBroker,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarted_several_times_while_thousands_of_events_flow() {
    use Fault::*;
    let mut rig = rig(Mode::Forward).await;
    let load = Load::start(&rig.scanner, 1, 400);
    let faults = [CutLink, RestartBroker, CutLink, RestartBroker, CutLink];
    for fault in faults {
        // Delivery is running (again): 500 more events got through.
        let mark = rig.ledger.contiguous() + 500;
        rig.delivered(mark).await;
        match fault {
            CutLink => {
                rig.link.set(Mode::Refuse);
                tokio::time::sleep(Duration::from_millis(300)).await;
                rig.link.set(Mode::Forward);
            }
            RestartBroker => {
                rig.broker.stop().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                rig.broker.restart().await;
            }
        }
    }
    // And it keeps flowing after the last fault.
    let mark = rig.ledger.contiguous() + 500;
    rig.delivered(mark).await;
    load.written(3000).await;
    let last = load.stop().await;
    rig.delivered(last).await;

    let report = rig.verdict();
    assert_eq!(report.max_seq, last, "one event per code, nothing more");
    assert_one_event_per_code(&report);
    assert!(
        rig.losses() >= faults.len(),
        "every fault broke an established connection: {} losses logged",
        rig.losses()
    );
    eprintln!(
        "{last} events, {} faults, {} duplicates",
        faults.len(),
        report.duplicates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_link_is_detected_and_nothing_is_lost() {
    let mut rig = rig(Mode::Forward).await;
    let load = Load::start(&rig.scanner, 1, 300);
    rig.delivered(300).await;

    let losses = rig.losses();
    rig.link.set(Mode::Blackhole);
    let blackout = Instant::now();
    // keep_alive is 2 s: a missing PINGRESP (or PUBACK, the uplink's
    // watchdog) shows at about 4 s; 15 s leaves room for a loaded machine.
    wait_until(
        Duration::from_secs(15),
        "the daemon to notice the dead link",
        || rig.losses() > losses,
    )
    .await;
    let noticed = blackout.elapsed();
    // Events keep being committed while nothing can be delivered.
    let delivered = rig.ledger.max_seq();
    rig.committed(delivered + 300).await;

    rig.link.set(Mode::Forward);
    load.written(2000).await;
    let last = load.stop().await;
    rig.delivered(last).await;

    let report = rig.verdict();
    assert_eq!(report.max_seq, last, "one event per code, nothing more");
    assert_one_event_per_code(&report);
    let log = rig.daemon.log();
    let why = log.lines().filter(|l| l.contains(LOST)).nth(losses);
    eprintln!(
        "half-open link noticed after {noticed:?}: {}; {last} events, {} duplicates",
        why.unwrap_or("?"),
        report.duplicates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_committed() {
    let mut rig = rig(Mode::Forward).await;
    let load = Load::start(&rig.scanner, 1, 500);
    let kills = 5;
    for _ in 0..kills {
        // This run is up and delivering: 500 more events got through.
        let mark = rig.ledger.contiguous() + 500;
        rig.delivered(mark).await;
        rig.daemon.kill();
        // The killed daemon could not clear its TIOCEXCL (see Pty).
        rig.scanner.release_exclusive();
        rig.daemon.restart();
    }
    let mark = rig.ledger.contiguous() + 500;
    rig.delivered(mark).await;
    let last_written = load.stop().await;

    // Reads are handled in order, so once this last code's event arrives,
    // everything read before it was either committed (a lower seq) or read
    // by a killed run and never committed (no seq at all).
    rig.scanner.write(b"DONE\r").await;
    rig.ledger
        .wait(&rig.sub, LONG, "the DONE event", |l| {
            !l.seqs_of_asset("DONE").is_empty()
        })
        .await;
    let done = rig.ledger.seqs_of_asset("DONE")[0];
    rig.delivered(done).await;

    let report = rig.verdict();
    assert_eq!(report.max_seq, done, "DONE is the last event committed");
    assert_eq!(
        committed_max(&rig.daemon.log()),
        done,
        "the log's last commit is DONE's"
    );
    // A code cut in half by a kill may come back as a fragment ("0123"),
    // which is a legitimate (garbled) scan; whole codes must each have been
    // committed once at most, in the order written.
    let whole: Vec<u64> = report
        .assets
        .iter()
        .filter_map(|a| a.strip_prefix("ITEM-").and_then(|n| n.parse().ok()))
        .collect();
    assert!(
        whole.windows(2).all(|w| w[0] < w[1]),
        "codes committed twice or out of order: {whole:?}"
    );
    assert_eq!(
        rig.daemon
            .log()
            .matches("===== harness: custodyd run")
            .count(),
        kills + 1,
        "one run per kill, plus the last"
    );
    eprintln!(
        "{kills} kills: {last_written} codes written, {} committed whole, {} other events, \
         {} duplicates",
        whole.len(),
        report.max_seq - whole.len() as u64 - 1,
        report.duplicates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_outage_backlog_drains_in_order_while_new_events_keep_coming() {
    let mut rig = rig(Mode::Refuse).await;
    wait_until(
        PATIENCE,
        "the daemon to find the broker unreachable",
        || rig.daemon.log().contains("cannot reach broker"),
    )
    .await;
    let load = Load::start(&rig.scanner, 1, 2000);
    load.written(5000).await;
    let backlog = load.stop().await;
    rig.committed(backlog).await;
    rig.ledger.update(&rig.sub);
    assert_eq!(rig.ledger.max_seq(), 0, "nothing crosses a refused link");

    rig.link.set(Mode::Forward);
    let drain = Instant::now();
    let load = Load::start(&rig.scanner, backlog + 1, 500);
    // The drain takes seconds; the first new event is committed within
    // milliseconds, long before the backlog is through.
    rig.committed(backlog + 1).await;
    rig.ledger.update(&rig.sub);
    let delivered = rig.ledger.contiguous();
    assert!(
        delivered < backlog,
        "a new event was committed only once the backlog was delivered ({delivered} events)"
    );
    load.written(backlog + 1000).await;
    let last = load.stop().await;
    rig.delivered(last).await;
    let drained = drain.elapsed();

    let report = rig.verdict();
    assert_eq!(report.max_seq, last, "one event per code, nothing more");
    assert_one_event_per_code(&report);
    assert!(
        report.first_deliveries_in_order(),
        "first deliveries out of seq order: {:?}",
        report.first_delivery_order.windows(2).find(|w| w[0] > w[1])
    );
    eprintln!(
        "backlog of {backlog} plus {} new events delivered in {drained:?}, {} duplicates",
        last - backlog,
        report.duplicates
    );
}
