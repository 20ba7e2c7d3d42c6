//! Custody rules: what presence's transitions mean where they happened.
//!
//! Presence knows reads and assets; it does not know that a location is a
//! portal between two zones, that a cage gate must hold data-bearing assets,
//! or who is signed in at a station. This stage owns that knowledge, per
//! location, and turns presence's drafts into the custody and alarm events
//! the central system gets. It sits between presence and the spool, so every
//! event it makes is durable like any other.

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::custody::Draft;
use crate::release::{Attempts, LeaveAttempt, Via};

pub mod portal;
mod window;

use portal::Portals;

/// Runs until presence closes its output; passes on what it decides.
/// Leave attempts at cage gates (release scans, and assets moved from a
/// gate's inside to its outside) go to the gate task (`attempts`), which
/// publishes them with its decision.
pub async fn run(
    mut input: mpsc::Receiver<Draft>,
    output: mpsc::Sender<Draft>,
    mut portals: Portals,
    attempts: Attempts,
) {
    let mut out = Vec::new();
    loop {
        tokio::select! {
            draft = input.recv() => match draft {
                Some(draft) => portals.handle(draft, Instant::now(), &mut out),
                None => break,
            },
            () = portals.next_event(&mut out) => {}
        }
        if !pass_on(&mut out, &portals, &attempts, &output).await {
            return;
        }
    }
    portals.shut(&mut out);
    pass_on(&mut out, &portals, &attempts, &output).await;
}

/// Sends `out` on, through the gate task where it decides; `false` once
/// the spool is gone.
async fn pass_on(
    out: &mut Vec<Draft>,
    portals: &Portals,
    attempts: &Attempts,
    output: &mpsc::Sender<Draft>,
) -> bool {
    for draft in out.drain(..) {
        let draft = if portals.leaves_cage(&draft) {
            let attempt = LeaveAttempt {
                via: Via::Moved,
                event: draft,
            };
            match attempts.attempt(attempt).await {
                Ok(()) => continue,
                Err(attempt) => attempt.event,
            }
        } else {
            match attempts.divert(draft).await {
                Some(draft) => draft,
                None => continue,
            }
        };
        if output.send(draft).await.is_err() {
            return false;
        }
    }
    true
}
