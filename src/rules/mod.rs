//! Custody rules: what presence's transitions mean where they happened.
//!
//! Presence knows reads and assets; it does not know that a location is a
//! portal between two zones, that a cage gate must hold data-bearing assets,
//! or who is signed in at a station. This stage owns that knowledge, per
//! location, and turns presence's drafts into the custody and alarm events
//! the central system gets. It sits between presence and the spool, so every
//! event it makes is durable like any other.

use tokio::sync::mpsc;

use crate::custody::Draft;

pub mod portal;

use portal::Portals;

/// Runs until presence closes its output; passes on what it decides.
pub async fn run(
    mut input: mpsc::Receiver<Draft>,
    output: mpsc::Sender<Draft>,
    mut portals: Portals,
) {
    let mut out = Vec::new();
    while let Some(draft) = input.recv().await {
        portals.handle(draft, &mut out);
        for draft in out.drain(..) {
            if output.send(draft).await.is_err() {
                return;
            }
        }
    }
}
