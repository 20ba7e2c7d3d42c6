//! Custody rules: what presence's transitions mean where they happened.
//!
//! Presence knows reads and assets; it does not know that a location is a
//! portal between two zones, that a cage gate must hold data-bearing assets,
//! or who is signed in at a station. This stage owns that knowledge, per
//! location, and turns presence's drafts into the custody and alarm events
//! the central system gets. It sits between presence and the spool, so every
//! event it makes is durable like any other.

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::custody::Draft;
use crate::presence::Observation;
use crate::release::Attempts;
use crate::retained::RetainedError;

pub mod station;

use station::Stations;

/// Runs until presence closes its output; passes on what it decides.
/// `badges` are the reads of badge readers, which skip presence: a badge is
/// not an asset. Leave attempts at cage gates go to the gate task
/// (`attempts`), which publishes them with its decision.
pub async fn run(
    mut input: mpsc::Receiver<Draft>,
    mut badges: mpsc::Receiver<Observation>,
    output: mpsc::Sender<Draft>,
    mut stations: Stations,
    attempts: Attempts,
) {
    let mut out = Vec::new();
    stations.load(&mut out).await;
    loop {
        // Saved before it is published: what the central system hears of
        // is what a restart resumes from.
        stations.save().await;
        for draft in out.drain(..) {
            let Some(draft) = attempts.divert(draft).await else {
                continue;
            };
            if output.send(draft).await.is_err() {
                return;
            }
        }
        let deadline = stations.next_deadline();
        tokio::select! {
            draft = input.recv() => match draft {
                Some(draft) => stations.on_draft(draft, Instant::now(), &mut out),
                None => return,
            },
            Some(badge) = badges.recv() => stations.on_badge(badge, Instant::now(), &mut out),
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                stations.expire(Instant::now(), &mut out);
            }
        }
    }
}

/// Runs a retained-store call on the blocking pool: it commits with an
/// fsync, which must not stall the runtime's threads.
async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RetainedError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
