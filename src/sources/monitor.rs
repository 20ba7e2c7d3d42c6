//! Watches reader states on their way to the status topic and raises an
//! alarm for a reader that stays down.
//!
//! The status topic already says `down` at once; an alarm is for people, so
//! it waits `offline_alarm_after`, and a reader that comes back after an
//! alarm says so with `reader_online`, closing the incident.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::bus::ReaderState;
use crate::custody::{Alarm, Body, Draft};

/// What the monitor knows of one reader.
pub struct Watched {
    pub location: Arc<str>,
    pub offline_alarm_after: Duration,
}

struct Down {
    since: SystemTime,
    alarm_at: Instant,
    alarmed: bool,
}

/// Forwards every state change to `out` and sends alarms to `drafts`. Ends
/// when every reader is gone. Readers start down (until opened), so one
/// missing at start-up is alarmed too.
pub async fn run(
    watched: HashMap<Arc<str>, Watched>,
    mut states: mpsc::Receiver<ReaderState>,
    out: mpsc::Sender<ReaderState>,
    drafts: mpsc::Sender<Draft>,
) {
    let start = Instant::now();
    let mut down: HashMap<Arc<str>, Down> = watched
        .iter()
        .map(|(name, w)| {
            let d = Down {
                since: SystemTime::now(),
                alarm_at: start + w.offline_alarm_after,
                alarmed: false,
            };
            (name.clone(), d)
        })
        .collect();
    loop {
        let next = down
            .values()
            .filter(|d| !d.alarmed)
            .map(|d| d.alarm_at)
            .min();
        tokio::select! {
            state = states.recv() => {
                let Some(state) = state else { return };
                let Some(w) = watched.get(&state.reader) else { continue };
                if state.up {
                    if down.remove(&state.reader).is_some_and(|d| d.alarmed) {
                        let detail = format!("Reader {} is back up.", state.reader);
                        let _ = drafts.send(alarm(w, "reader_online", detail)).await;
                    }
                } else {
                    let d = Down { since: SystemTime::now(), alarm_at: Instant::now() + w.offline_alarm_after, alarmed: false };
                    down.entry(state.reader.clone()).or_insert(d);
                }
                if out.send(state).await.is_err() {
                    return;
                }
            }
            _ = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                for (name, d) in down.iter_mut().filter(|(_, d)| !d.alarmed && d.alarm_at <= now) {
                    d.alarmed = true;
                    let w = &watched[name];
                    let detail = format!(
                        "Reader {name} has been down since {} (missing, unplugged or failing); custody at {} is not being recorded by it.",
                        crate::custody::rfc3339(d.since),
                        w.location
                    );
                    let _ = drafts.send(alarm(w, "reader_offline", detail)).await;
                }
            }
        }
    }
}

fn alarm(w: &Watched, kind: &'static str, detail: String) -> Draft {
    Draft::new(
        w.location.clone(),
        SystemTime::now(),
        Body::Alarm(Alarm {
            kind,
            asset: None,
            detail,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(rx: &mut mpsc::Receiver<Draft>) -> Vec<&'static str> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|d| match d.body {
                Body::Alarm(a) => a.kind,
                other => panic!("{other:?} from the monitor"),
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_down_past_the_threshold_is_alarmed_once_and_its_return_closes_it() {
        let watched = HashMap::from([(
            Arc::from("door1-em"),
            Watched {
                location: "dock-door-1".into(),
                offline_alarm_after: Duration::from_secs(30),
            },
        )]);
        let (states_tx, states) = mpsc::channel(8);
        let (out, mut forwarded) = mpsc::channel(8);
        let (drafts, mut alarms) = mpsc::channel(8);
        tokio::spawn(run(watched, states, out, drafts));
        let state = |up| ReaderState {
            reader: "door1-em".into(),
            up,
            failing_antennas: vec![],
        };

        // Up right away: no alarm for the start-up moment it was down.
        states_tx.send(state(true)).await.unwrap();
        assert_eq!(forwarded.recv().await, Some(state(true)));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(kinds(&mut alarms).is_empty());

        // A quick re-plug raises nothing.
        states_tx.send(state(false)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        states_tx.send(state(true)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(kinds(&mut alarms).is_empty());

        // Unplugged for good: one alarm after 30 s, then one when it is back.
        states_tx.send(state(false)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(kinds(&mut alarms).is_empty());
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(kinds(&mut alarms), ["reader_offline"]);
        states_tx.send(state(true)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(kinds(&mut alarms), ["reader_online"]);
        // Every change after the first (received above) reached the status topic.
        assert_eq!(std::iter::from_fn(|| forwarded.try_recv().ok()).count(), 4);
    }
}
