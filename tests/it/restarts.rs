//! A crash does not rewrite history: what was in the field when the
//! daemon was SIGKILLed is still there when it starts again (the real
//! binary, a real Mosquitto, a card reader on a pseudo-terminal).
//!
//! A card held at the door across the kill (or a clean restart) makes one
//! `arrived` and one `departed`; a card taken away while the daemon was
//! down gets its `departed` a departure timeout after the start. The power-cut variant,
//! through redb's storage seam, is in `power_loss.rs`; the read window
//! left open by a kill in `portal.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

/// Held across the kill.
const HELD: &str = "62E3086CED";
/// Taken away while the daemon is down.
const TAKEN: &str = "0F00AB12CD";

/// Feeds `cards` to `door` ten frames a second each, as an RDM6300 repeats
/// a held card, until `stop` is set.
fn keep_reading(door: Arc<Pty>, cards: Vec<&'static str>, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            for card in &cards {
                door.write(&em4100_frame(card)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Waits until both cards have made a `transition`.
async fn wait_both(sub: &Subscriber, transition: &'static str) {
    let both = |m: &[Message]| {
        [HELD, TAKEN]
            .iter()
            .all(|c| !transitions(m, transition, c).is_empty())
    };
    sub.wait_for(both, PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_across_a_kill_9_make_one_arrived_and_one_departed_each() {
    across(Stop::Kill).await;
}

/// `systemctl restart`: the field is the same after a clean stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_across_a_clean_restart_make_one_arrived_and_one_departed_each() {
    across(Stop::Terminate).await;
}

enum Stop {
    /// A crash: nothing is flushed, no task says goodbye.
    Kill,
    /// SIGTERM: the daemon stops in order.
    Terminate,
}

/// Both cards in the field, the daemon stopped by `stop`, one card taken
/// away meanwhile: each card makes one `arrived` and one `departed`.
async fn across(stop: Stop) {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Arc::new(Pty::open());
    let mut daemon = Daemon::new();
    daemon.spawn(
        gateway_config(&broker.url(), &daemon.data_dir()).door_with_em4100(door.path(), secs(2)),
    );
    wait_reader(&sub, "door1-em", "up").await;

    let both = Arc::new(AtomicBool::new(false));
    keep_reading(door.clone(), vec![HELD, TAKEN], both.clone());
    wait_both(&sub, "arrived").await;
    match stop {
        Stop::Kill => daemon.kill(),
        Stop::Terminate => assert!(daemon.terminate().await.success()),
    }
    both.store(true, Ordering::Relaxed);
    let held = Arc::new(AtomicBool::new(false));
    keep_reading(door.clone(), vec![HELD], held.clone());
    let before_restart = sub.messages().len();
    daemon.restart();
    // The held card is read by the new process before it is taken away.
    sub.wait_for(
        |m| {
            latest_status(&m[before_restart..])
                .is_some_and(|s| s["readers"]["door1-em"]["state"] == "up")
        },
        PATIENCE,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    held.store(true, Ordering::Relaxed);

    wait_both(&sub, "departed").await;
    sub.assert_quiet_for(Duration::from_millis(2500), |m| {
        m.topic.contains("/custody/")
    })
    .await;
    let msgs = sub.messages();
    // The kill may come before the spool heard of the broker's PUBACKs:
    // those events are delivered again, the same (at least once).
    let distinct = |transition, card| once_each(transitions(&msgs, transition, card));
    for card in [HELD, TAKEN] {
        let (arrived, departed) = (distinct("arrived", card), distinct("departed", card));
        assert_eq!(
            (arrived.len(), departed.len()),
            (1, 1),
            "{card}: {:#?}\n{}",
            custody(&msgs),
            tail(&daemon.log(), 60)
        );
        assert_eq!(
            departed[0]["first_seen"], arrived[0]["first_seen"],
            "{card}: one presence"
        );
    }
    let taken = &transitions(&msgs, "departed", TAKEN)[0];
    let held = &transitions(&msgs, "departed", HELD)[0];
    assert!(
        held["reads"].as_u64() > taken["reads"].as_u64(),
        "the held card's reads after the restart count in its presence: {held} {taken}"
    );
}
