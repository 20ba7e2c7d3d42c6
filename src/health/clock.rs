//! The `clock_unsynced` alarm: raised once per spell without NTP sync, so
//! people hear that event timestamps may be wrong (see [`crate::clock`]).

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::CHECK_EVERY;
use crate::custody::{Alarm, Body, Draft};

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
