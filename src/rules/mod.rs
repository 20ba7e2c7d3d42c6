//! Custody rules: what presence's transitions mean where they happened.
//!
//! Presence knows reads and assets; it does not know that a location is a
//! portal between two zones, that a cage gate must hold data-bearing assets,
//! or who is signed in at a station. This stage owns that knowledge, per
//! location, and turns presence's drafts into the custody and alarm events
//! the central system gets. It sits between presence and the spool, so every
//! event it makes is durable like any other.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::warn;

use crate::bus::Inbound;
use crate::custody::{saved_entries, Draft, Save, Saved};
use crate::panics::off_thread;
use crate::presence::{Observation, Sighting};
use crate::release::{Attempts, LeaveAttempt, Via};
use crate::retained::{Table, Update};

pub mod manifest;
pub mod portal;
pub mod station;
mod window;
mod window_save;

use manifest::Manifests;
use portal::Portals;
use station::Stations;

/// What the rules task owns, per kind of location.
pub struct State {
    pub portals: Portals,
    pub stations: Stations,
    pub manifests: Manifests,
    /// Leave attempts at cage gates (release scans, and assets moved from a
    /// gate's inside to its outside) go to the gate task, which publishes
    /// them with its decision.
    pub attempts: Attempts,
    /// The state the spool saved when the daemon last ran: read windows it
    /// did not live to close, station context, pickup progress. Empty after
    /// the first front, which a reload replaces from the retained store.
    pub saved: Saved,
}

/// Runs until presence closes its output; passes on what it decides.
/// `badges` are the reads of badge readers, which skip presence: a badge is
/// not an asset. Returns the manifest subscription, for the next front.
pub async fn run(
    mut input: mpsc::Receiver<Sighting>,
    mut badges: mpsc::Receiver<Observation>,
    output: mpsc::Sender<Draft>,
    state: State,
) -> Option<mpsc::Receiver<Inbound>> {
    let State {
        mut portals,
        mut stations,
        mut manifests,
        attempts,
        saved,
    } = state;
    let mut out = Vec::new();
    // State (read windows, station context, pickup progress) waiting for
    // an event to ride with into the spool.
    let mut saves = Vec::new();
    window_save::restore(&saved, &mut out, &mut saves);
    // What the stations let through, on its way to the portals.
    let mut staged = Vec::new();
    stations.load(&saved, &mut out).await;
    manifests.load(&saved, &mut out).await;
    loop {
        manifests.reconcile(&mut out, Instant::now());
        // Saved before it is published: what the central system hears of
        // is what a restart resumes from.
        stations.save(&mut saves).await;
        manifests.save(&mut saves).await;
        portals.saves(&mut saves);
        if !pass_on(&mut out, &mut saves, &portals, &attempts, &output).await {
            break;
        }
        let deadline = stations.next_deadline();
        tokio::select! {
            sighting = input.recv() => match sighting {
                Some(Sighting { draft, mut evidence }) => {
                    let now = Instant::now();
                    stations.on_draft(draft, now, &mut staged);
                    // Stations change only scans, and only a departure
                    // carries evidence: it stays with its own event.
                    for draft in staged.drain(..) {
                        let evidence = evidence.take();
                        portals.handle(Sighting { draft, evidence }, now, &mut out);
                    }
                }
                None => break,
            },
            Some(badge) = badges.recv() => stations.on_badge(badge, Instant::now(), &mut out),
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                stations.expire(Instant::now(), &mut out);
            }
            () = portals.next_event(&mut out) => {}
            event = manifests.next_event() => manifests.handle(event, &mut out),
        }
    }
    portals.shut(&mut out);
    manifests.reconcile(&mut out, Instant::now());
    manifests.save(&mut saves).await;
    portals.saves(&mut saves);
    pass_on(&mut out, &mut saves, &portals, &attempts, &output).await;
    // The next front claims the same sensors.
    portals.free_sensors().await;
    manifests.into_subscription()
}

/// Sends `out` on, through the gate task where it decides; `false` once
/// the spool is gone. `saves` ride with the last draft that goes straight
/// to the spool, so they are committed with (or after) every event before
/// them; without one they wait for the next call.
async fn pass_on(
    out: &mut Vec<Draft>,
    saves: &mut Vec<Save>,
    portals: &Portals,
    attempts: &Attempts,
    output: &mpsc::Sender<Draft>,
) -> bool {
    let mut last: Option<Draft> = None;
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
        if let Some(previous) = last.replace(draft) {
            if output.send(previous).await.is_err() {
                return false;
            }
        }
    }
    let Some(mut last) = last else {
        return true;
    };
    last.saves.append(saves);
    output.send(last).await.is_ok()
}

/// Every entry of `table` that `parse` accepts; the others are logged
/// (as `what`) and left out: a gateway must work on with what it could read.
async fn load_entries<T>(
    table: &Table,
    what: &str,
    parse: impl Fn(&[u8]) -> Result<T, String>,
) -> Vec<(String, T)> {
    let table = table.clone();
    let entries = match off_thread(move || table.entries()).await {
        Ok(entries) => entries,
        Err(e) => {
            warn!("{what} not restored: {e}");
            return Vec::new();
        }
    };
    entries
        .into_iter()
        .filter_map(|(key, payload)| match parse(&payload) {
            Ok(value) => Some((key, value)),
            Err(e) => {
                warn!(key, "saved {what} ignored: {e}");
                None
            }
        })
        .collect()
}

/// `loaded` (from [`load_entries`]) with what the spool saved under
/// `prefix` (see [`keep_entries`]) in its place: the state that goes with
/// the events the central system heard of. An empty entry there is a
/// removal.
fn overlay<T>(
    mut loaded: Vec<(String, T)>,
    spooled: &Saved,
    prefix: &str,
    what: &str,
    parse: impl Fn(&[u8]) -> Result<T, String>,
) -> Vec<(String, T)> {
    for (key, payload) in saved_entries(spooled, prefix) {
        let value = match payload {
            [] => None,
            payload => match parse(payload) {
                Ok(value) => Some(value),
                Err(e) => {
                    warn!(key, "{what} saved in the spool ignored: {e}");
                    continue;
                }
            },
        };
        loaded.retain(|(k, _)| k != key);
        loaded.extend(value.map(|v| (key.to_owned(), v)));
    }
    loaded
}

/// Stores `changed` like [`store_entries`], and also adds it to `saves`
/// under `prefix`, to ride into the spool with the events it goes with (a
/// removal as an empty entry, which must override the store's at start).
/// The store's copy is what a reload starts from; the spool's what a
/// restart does, which may be older: a `kill -9` may come between the
/// store's commit and the event's.
async fn keep_entries(
    table: &Table,
    changed: Vec<(Arc<str>, Option<Vec<u8>>)>,
    what: &str,
    prefix: &str,
    saves: &mut Vec<Save>,
) {
    for (key, value) in &changed {
        let key = format!("{prefix}{key}");
        saves.retain(|s| s.key != key);
        let value = Some(value.clone().unwrap_or_default());
        saves.push(Save { key, value });
    }
    store_entries(table, changed, what).await;
}

/// Stores `changed` (`None`: removes the key) in one commit, off the
/// runtime's threads. A failed write is logged; the state goes on in memory.
/// Returns whether everything is stored.
async fn store_entries(
    table: &Table,
    changed: Vec<(Arc<str>, Option<Vec<u8>>)>,
    what: &str,
) -> bool {
    if changed.is_empty() {
        return true;
    }
    let table = table.clone();
    let write = move || {
        table.apply(changed.iter().map(|(key, value)| {
            let update = value.as_deref().map_or(Update::Remove, Update::Put);
            (&**key, update)
        }))
    };
    match off_thread(write).await {
        Ok(_) => true,
        Err(e) => {
            warn!("{what} not saved: {e}");
            false
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_spool_saved_overrides_the_store_and_an_empty_entry_removes() {
        let loaded = vec![
            ("a".to_string(), 1),
            ("b".to_string(), 2),
            ("c".to_string(), 3),
        ];
        let spooled: Saved = vec![
            ("p/a".into(), b"10".to_vec()),
            ("p/b".into(), Vec::new()),
            ("p/c".into(), b"garbled".to_vec()),
            ("p/d".into(), b"40".to_vec()),
            ("q/c".into(), b"30".to_vec()),
        ];
        let parse = |b: &[u8]| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| "not a number".to_string())
        };
        let mut merged = overlay(loaded, &spooled, "p/", "test", parse);
        merged.sort();
        let expected = [("a", 10), ("c", 3), ("d", 40)].map(|(k, v)| (k.to_string(), v));
        assert_eq!(merged, expected, "a garbled entry leaves the store's");
    }
}
