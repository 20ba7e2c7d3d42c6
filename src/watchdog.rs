//! Telling systemd how the daemon is: `READY=1`, `RELOADING=1`, `WATCHDOG=1`,
//! `STOPPING=1`.
//!
//! The unit is `Type=notify`, so `systemctl start` returns, and units ordered
//! after custodyd start, only once the configuration is valid and the spool is
//! open. A reload (SIGHUP, from `systemctl reload`, or the `reload` command)
//! is bracketed by `RELOADING=1` and a new `READY=1`, so `systemctl reload`
//! returns once the new configuration runs. With `WatchdogSec=` set, systemd kills and restarts the daemon when
//! the pings stop, so they are sent only while the pipeline is healthy: a
//! daemon that is alive but wedged (a stage stuck behind a hung disk, a
//! deadlock, a task that died) is worse than a restart, because it looks up
//! while events pile up nowhere.
//!
//! Healthy means: every watched stage (presence, spool, uplink) is either
//! waiting for its input or has been working on what it last took for less
//! than the watchdog timeout. Waiting is healthy however long it lasts (a quiet
//! door, a broker that is down: the daemon spools, a restart would not help);
//! what is not is a stage that took something and never came back for more,
//! or whose task has ended. Each stage's loop marks this by awaiting its main
//! input through [`Stage::idle`], one line per loop, so the check costs an
//! atomic store per iteration and nothing when idle. A stage is registered
//! once per process: a task that a reload restarts (presence) hands its
//! stage on to the next, so the watchdog watches it across reloads.
//!
//! A process marked broken ([`crate::panics`]: a task panicked, or found
//! something only a restart can fix) gets no more pings either, and the
//! daemon exits (see `daemon`), so systemd restarts it rather than leaving
//! it half alive.
//!
//! Without `NOTIFY_SOCKET` (not under systemd, or in tests) nothing is sent;
//! without `WATCHDOG_USEC` no watchdog task runs.
//!
//! Test seam: [`TEST_PANIC_ENV`] set makes [`ready`] spawn a task that
//! panics, so tests can see what a dead task does to the real daemon
//! without a real bug to trigger. The daemon logs a warning when it is set;
//! it is not for production.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tokio::time::{interval, Instant, MissedTickBehavior};
use tracing::{error, info, warn};

/// Set, a task panics on purpose after `READY=1` (tests only).
pub const TEST_PANIC_ENV: &str = "CUSTODYD_TEST_PANIC";

/// A stage's state word: waiting for input.
const WAITING: u64 = 0;
/// A stage's state word: its task has ended. Anything else is 1 + the
/// milliseconds from [`Watchdog`]'s base to when it took up its current work.
const ENDED: u64 = u64::MAX;

/// The watched stages of one daemon.
pub struct Watchdog {
    base: Instant,
    stages: Vec<(&'static str, Arc<AtomicU64>)>,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            base: Instant::now(),
            stages: Vec::new(),
        }
    }
}

impl Watchdog {
    /// A new watched stage, working (not yet waiting) until its loop first
    /// awaits its input.
    pub fn stage(&mut self, name: &'static str) -> Stage {
        let stage = Stage {
            base: self.base,
            state: Arc::new(AtomicU64::new(WAITING)),
        };
        stage.mark_working();
        self.stages.push((name, stage.state.clone()));
        stage
    }

    /// The first stage that has ended or has been working for longer than
    /// `limit`, with how long it has been working (`None` once ended).
    pub fn stalled(&self, limit: Duration) -> Option<(&'static str, Option<Duration>)> {
        let now = millis_since(self.base);
        self.stages
            .iter()
            .find_map(|(name, state)| match state.load(Ordering::Relaxed) {
                WAITING => None,
                ENDED => Some((*name, None)),
                since => {
                    let working = Duration::from_millis(now.saturating_sub(since - 1));
                    (working > limit).then_some((*name, Some(working)))
                }
            })
    }
}

/// Milliseconds since `base`, kept below the encodings of [`ENDED`].
fn millis_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_millis()).map_or(ENDED - 2, |ms| ms.min(ENDED - 2))
}

/// One stage's side of [`Watchdog`]: owned by the stage's task, so dropping it
/// (the task ending, or panicking) marks the stage ended. A task that a
/// reload replaces hands it back instead, for the next one.
pub struct Stage {
    base: Instant,
    state: Arc<AtomicU64>,
}

impl Stage {
    /// Awaits `input` with the stage marked waiting; however the wait ends
    /// (`input` completes, or another `select!` branch wins and drops it),
    /// the stage is working from then until its next `idle`.
    pub async fn idle<F: Future>(&self, input: F) -> F::Output {
        self.state.store(WAITING, Ordering::Relaxed);
        let _working = Working(self);
        input.await
    }

    fn mark_working(&self) {
        self.state
            .store(millis_since(self.base) + 1, Ordering::Relaxed);
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.state.store(ENDED, Ordering::Relaxed);
    }
}

/// Marks its stage working when dropped.
struct Working<'a>(&'a Stage);

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.0.mark_working();
    }
}

/// The daemon's systemd session, from `READY=1` to `STOPPING=1`.
pub struct Notifier {
    watchdog: Option<JoinHandle<()>>,
}

/// Sends `READY=1` and, when systemd asked for a watchdog (`WATCHDOG_USEC`),
/// starts pinging it every half timeout while `watchdog` says the pipeline is
/// healthy.
pub fn ready(watchdog: Watchdog) -> Notifier {
    notify(&[NotifyState::Ready]);
    if std::env::var_os(TEST_PANIC_ENV).is_some() {
        warn!("{TEST_PANIC_ENV} is set: a task panics now, as a test seam; not for production");
        tokio::spawn(async { panic!("{TEST_PANIC_ENV}: a task dies") });
    }
    let watchdog = sd_notify::watchdog_enabled().map(|timeout| {
        info!(?timeout, "systemd watchdog enabled");
        tokio::spawn(ping(watchdog, timeout, |state| notify(&[state])))
    });
    Notifier { watchdog }
}

impl Notifier {
    /// `RELOADING=1`: a reload starts. Must be followed by
    /// [`Notifier::reloaded`]; systemd 253 and later also want the
    /// monotonic time of the start, to tell this reload from a later one.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => notify(&[NotifyState::Reloading, now]),
            Err(e) => {
                warn!("reading the monotonic clock for systemd: {e}");
                notify(&[NotifyState::Reloading]);
            }
        }
    }

    /// `READY=1` again: the reload is done.
    pub fn reloaded(&self) {
        notify(&[NotifyState::Ready]);
    }

    /// Stops the watchdog pings and sends `STOPPING=1`: from here systemd
    /// times the shutdown with `TimeoutStopSec=`, not the watchdog.
    pub async fn stopping(self) {
        if let Some(watchdog) = self.watchdog {
            watchdog.abort();
            let _ = watchdog.await;
        }
        notify(&[NotifyState::Stopping]);
    }
}

/// Sends `states` in one message.
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        let states: Vec<String> = states.iter().map(ToString::to_string).collect();
        warn!("telling systemd {}: {e}", states.join(" "));
    }
}

/// Pings every `timeout / 2` while no stage has stalled for `timeout`; logs
/// each change between healthy and stalled once.
async fn ping(watchdog: Watchdog, timeout: Duration, send: impl Fn(NotifyState<'static>)) {
    let mut tick = interval(timeout / 2);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut was_stalled = false;
    loop {
        tick.tick().await;
        if crate::panics::is_broken() {
            error!("a task panicked or failed; withholding watchdog pings, systemd will restart custodyd");
            return;
        }
        let stalled = watchdog.stalled(timeout);
        match stalled {
            None => {
                if was_stalled {
                    info!("pipeline healthy again; watchdog pings resumed");
                }
                send(NotifyState::Watchdog);
            }
            Some((stage, working)) if !was_stalled => match working {
                Some(working) => warn!(
                    "pipeline stage {stage} stuck for {working:?}; withholding watchdog pings, systemd will restart custodyd"
                ),
                None => warn!(
                    "pipeline stage {stage} has ended; withholding watchdog pings, systemd will restart custodyd"
                ),
            },
            Some(_) => {}
        }
        was_stalled = stalled.is_some();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::{mpsc, oneshot};

    const LIMIT: Duration = Duration::from_secs(10);

    /// A stage loop as the pipeline's are: waits for a job through `idle`,
    /// then works on it until the job's oneshot fires.
    fn spawn_stage(stage: Stage) -> mpsc::Sender<oneshot::Receiver<()>> {
        let (tx, mut rx) = mpsc::channel::<oneshot::Receiver<()>>(4);
        tokio::spawn(async move {
            // Ends, dropping the stage, when the sender goes.
            while let Some(job) = stage.idle(rx.recv()).await {
                let _ = job.await;
            }
        });
        tx
    }

    /// Lets spawned tasks run until they block (time is paused).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_stage_is_healthy_however_long_it_waits() {
        let mut watchdog = Watchdog::default();
        let _jobs = spawn_stage(watchdog.stage("presence"));
        settle().await;
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(watchdog.stalled(LIMIT), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stage_stuck_on_one_job_stalls_after_the_limit_and_recovers() {
        let mut watchdog = Watchdog::default();
        let _idle = spawn_stage(watchdog.stage("spool"));
        let jobs = spawn_stage(watchdog.stage("uplink"));
        let (done, job) = oneshot::channel();
        jobs.send(job).await.unwrap();
        settle().await;
        tokio::time::advance(LIMIT - Duration::from_secs(1)).await;
        assert_eq!(watchdog.stalled(LIMIT), None, "working, not yet too long");
        tokio::time::advance(Duration::from_secs(2)).await;
        let (name, working) = watchdog.stalled(LIMIT).expect("stalled");
        assert_eq!(name, "uplink");
        assert!(working.unwrap() > LIMIT, "{working:?}");
        done.send(()).unwrap();
        settle().await;
        assert_eq!(watchdog.stalled(LIMIT), None, "waiting again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stage_is_working_when_another_select_branch_wins() {
        let mut watchdog = Watchdog::default();
        let stage = watchdog.stage("presence");
        tokio::select! {
            biased;
            _ = stage.idle(std::future::pending::<()>()) => unreachable!(),
            _ = tokio::task::yield_now() => {}
        }
        tokio::time::advance(LIMIT * 2).await;
        assert_eq!(watchdog.stalled(LIMIT).map(|s| s.0), Some("presence"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_ended_stage_is_stalled_at_once() {
        let mut watchdog = Watchdog::default();
        let jobs = spawn_stage(watchdog.stage("presence"));
        settle().await;
        assert_eq!(watchdog.stalled(LIMIT), None);
        drop(jobs);
        settle().await;
        assert_eq!(watchdog.stalled(LIMIT), Some(("presence", None)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_pings_only_while_healthy() {
        let mut watchdog = Watchdog::default();
        let jobs = spawn_stage(watchdog.stage("spool"));
        settle().await;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        let timeout = Duration::from_secs(4);
        tokio::spawn(ping(watchdog, timeout, move |s| {
            record.lock().unwrap().push(s.to_string());
        }));
        let pings = || sent.lock().unwrap().len();
        // The clock is paused: each sleep runs every timer before it, in order.
        let wait = |secs| tokio::time::sleep(Duration::from_secs(secs));

        // Healthy: a ping at once, then every 2 s.
        wait(5).await;
        assert_eq!(pings(), 3, "at 0, 2 and 4 s");

        // Stuck on a job from 5 s: pinged at 6 and 8 s, not from 10 s on
        // (working for more than 4 s).
        let (done, job) = oneshot::channel();
        jobs.send(job).await.unwrap();
        wait(20).await;
        assert_eq!(pings(), 5, "no ping while stuck");

        // Back to waiting at 25 s: pinged at 26 and 28 s.
        done.send(()).unwrap();
        wait(4).await;
        assert_eq!(pings(), 7, "pings resumed");
        assert!(sent.lock().unwrap().iter().all(|s| s == "WATCHDOG=1"));
    }
}
