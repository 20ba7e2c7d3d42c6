//! Whether the system clock is known to be synchronised.
//!
//! A Raspberry Pi has no RTC: after a power cut it boots with a stale clock
//! until NTP catches up. Every event says whether its timestamp can be trusted,
//! from the kernel's own NTP state (`adjtimex`, `STA_UNSYNC`), and a
//! `clock_unsynced` alarm tells people once per spell without sync.
//!
//! Test seam: when the environment variable [`TEST_STATE_ENV`] names a file,
//! the state is read from that file instead of the kernel (`synced` means
//! synchronised; anything else, or no file, means not). A test cannot set the
//! kernel's NTP state without root and a real time daemon, so this is the
//! only way to drive the alarm and the `clock_synced` fields end to end. The
//! daemon logs a warning when it is set; it is not for production.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::custody::{Alarm, Body, Draft};

/// Names a file that overrides the kernel's clock state, for tests only.
pub const TEST_STATE_ENV: &str = "CUSTODYD_TEST_CLOCK_STATE";

/// How often the watcher looks. `adjtimex` is a cheap read-only syscall;
/// people need to hear within seconds, not milliseconds.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// True when the kernel reports the clock as NTP-synchronised (or the test
/// seam's file says `synced`).
pub fn is_synced() -> bool {
    match test_override() {
        Some(path) => read_override(path),
        None => kernel_synced(),
    }
}

/// The test seam's file, if the environment names one (looked up once: this
/// runs for every event).
pub fn test_override() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| std::env::var_os(TEST_STATE_ENV).map(PathBuf::from))
        .as_deref()
}

fn read_override(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "synced")
}

fn kernel_synced() -> bool {
    // SAFETY: `timex` is plain old data, for which all zeroes is a valid value.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusive `timex`; modes = 0 makes adjtimex read-only.
    let state = unsafe { libc::adjtimex(&mut tx) };
    state != -1 && state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0
}

/// Checks `synced` every [`CHECK_EVERY`] until `cancel`, and sends a
/// `clock_unsynced` alarm about `gateway` to `alarms` once per spell without
/// sync: when first seen unsynced (at start too: a Pi booting after a power
/// cut is exactly the case), and again only after the clock was synced in
/// between.
pub async fn watch(
    mut synced: impl FnMut() -> bool,
    gateway: Arc<str>,
    alarms: mpsc::Sender<Draft>,
    cancel: CancellationToken,
) {
    let mut alarmed = false;
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = check.tick() => {}
        }
        match (synced(), alarmed) {
            (false, false) => {
                alarmed = true;
                warn!("the system clock is not NTP-synchronised; events are marked clock_synced=false");
                let detail =
                    "The system clock is not synchronised (the kernel reports STA_UNSYNC): \
                              event timestamps may be wrong and carry clock_synced=false until NTP \
                              synchronises it."
                        .to_string();
                let alarm = Body::Alarm(Alarm {
                    kind: "clock_unsynced",
                    asset: None,
                    detail,
                });
                if alarms
                    .send(Draft::new(gateway.clone(), SystemTime::now(), alarm))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            (true, true) => {
                alarmed = false;
                info!("the system clock is NTP-synchronised again");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_test_seam_reads_synced_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clock");
        assert!(!read_override(&file), "no file: not synced");
        std::fs::write(&file, "synced\n").unwrap();
        assert!(read_override(&file));
        std::fs::write(&file, "unsynced").unwrap();
        assert!(!read_override(&file));
    }

    #[tokio::test(start_paused = true)]
    async fn the_alarm_is_raised_once_per_spell_without_sync() {
        let synced = Arc::new(AtomicBool::new(false));
        let (alarms, mut raised) = mpsc::channel(8);
        let cancel = CancellationToken::new();
        let state = synced.clone();
        let task = tokio::spawn(watch(
            move || state.load(Ordering::Relaxed),
            "gw-1".into(),
            alarms,
            cancel.clone(),
        ));
        let count = |raised: &mut mpsc::Receiver<Draft>| {
            std::iter::from_fn(|| raised.try_recv().ok())
                .map(|d| match d.body {
                    Body::Alarm(a) => {
                        assert_eq!((a.kind, &*d.location), ("clock_unsynced", "gw-1"));
                    }
                    other => panic!("{other:?} from the clock watcher"),
                })
                .count()
        };
        // Half-way between checks from here on, so no change races one.
        let wait = |checks: u32| tokio::time::sleep(CHECK_EVERY * checks);

        // Unsynced at start: one alarm, however long it stays so.
        tokio::time::sleep(CHECK_EVERY / 2).await;
        assert_eq!(count(&mut raised), 1);
        wait(20).await;
        assert_eq!(count(&mut raised), 0);
        // Synced: nothing. Unsynced again: one more.
        synced.store(true, Ordering::Relaxed);
        wait(3).await;
        assert_eq!(count(&mut raised), 0);
        synced.store(false, Ordering::Relaxed);
        wait(3).await;
        assert_eq!(count(&mut raised), 1);
        // A flicker shorter than a check is not seen, and not alarmed.
        synced.store(true, Ordering::Relaxed);
        tokio::time::sleep(CHECK_EVERY / 4).await;
        synced.store(false, Ordering::Relaxed);
        wait(3).await;
        assert_eq!(count(&mut raised), 0);

        cancel.cancel();
        task.await.unwrap();
    }
}
