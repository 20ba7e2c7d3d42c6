//! The `untrusted_message` alarm: one task counts every refused control
//! message and raises at most one alarm per topic and reason per minute,
//! so a flood of forgeries cannot flood the spool while each kind of
//! attempt is still on record. The daemon turns each alarm's sentence into
//! the event (at the gateway's own location), which keeps this module below
//! the pipeline's event types.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::refusal::{Reason, Refusal};

pub const KIND: &str = "untrusted_message";
/// One alarm per topic and reason per this.
const ALARM_EVERY: Duration = Duration::from_secs(60);
/// Refusals waiting; more are counted in the log only.
const QUEUE: usize = 256;

/// Where refusals are reported. Cheap to clone; a default one (no task)
/// only logs.
#[derive(Debug, Clone, Default)]
pub struct Alarms {
    to: Option<mpsc::Sender<(String, Refusal)>>,
}

impl Alarms {
    /// Starts the task: each alarm's detail sentence made into an event by
    /// `alarm` and sent to `out`, every refusal counted in `refused`. It
    /// ends once every [`Alarms`] is gone or at `shutdown` (the command
    /// dispatcher, which reports too, outlives the spool's input).
    pub fn spawn<E: Send + 'static>(
        alarm: impl Fn(String) -> E + Send + 'static,
        out: mpsc::Sender<E>,
        refused: Arc<AtomicU64>,
        shutdown: CancellationToken,
    ) -> (Alarms, JoinHandle<()>) {
        let (to, from) = mpsc::channel(QUEUE);
        let task = Limiter {
            alarm,
            out,
            refused,
            last: HashMap::new(),
        };
        (
            Alarms { to: Some(to) },
            tokio::spawn(task.run(from, shutdown)),
        )
    }

    /// Reports that the message on `topic` was refused (and changed nothing).
    pub fn report(&self, topic: &str, refusal: Refusal) {
        warn!(%topic, "control message refused: {refusal}");
        if let Some(to) = &self.to {
            if to.try_send((topic.to_string(), refusal)).is_err() {
                error!("untrusted_message alarms are not keeping up; this refusal is only logged");
            }
        }
    }
}

struct Limiter<F, E> {
    alarm: F,
    out: mpsc::Sender<E>,
    refused: Arc<AtomicU64>,
    /// When each (topic, reason) last raised an alarm.
    last: HashMap<(String, Reason), Instant>,
}

impl<F: Fn(String) -> E, E> Limiter<F, E> {
    async fn run(
        mut self,
        mut refusals: mpsc::Receiver<(String, Refusal)>,
        shutdown: CancellationToken,
    ) {
        loop {
            let (topic, refusal) = tokio::select! {
                refused = refusals.recv() => match refused {
                    Some(refused) => refused,
                    None => return,
                },
                _ = shutdown.cancelled() => return,
            };
            self.refused.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            self.last
                .retain(|_, at| now.duration_since(*at) < ALARM_EVERY);
            let key = (topic, refusal.reason);
            if self.last.contains_key(&key) {
                continue;
            }
            let detail = format!(
                "A control message on {} was refused: {}; it changed nothing.",
                key.0, refusal
            );
            self.last.insert(key, now);
            if self.out.send((self.alarm)(detail)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_alarm_per_topic_and_reason_per_minute_every_refusal_counted() {
        let (sentences, mut out) = mpsc::channel(16);
        let counted = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (alarms, task) = Alarms::spawn(|d| d, sentences, counted.clone(), stop);
        let unsigned = || Refusal::new(Reason::Unsigned, "not a signed envelope");
        for _ in 0..5 {
            alarms.report("t/a", unsigned());
        }
        alarms.report("t/b", unsigned());
        alarms.report("t/a", Refusal::new(Reason::Stale, "old"));
        while counted.load(Ordering::Relaxed) < 7 {
            tokio::task::yield_now().await;
        }
        tokio::time::advance(ALARM_EVERY).await;
        alarms.report("t/a", unsigned());
        drop(alarms);
        task.await.unwrap();
        let mut details = Vec::new();
        while let Ok(detail) = out.try_recv() {
            details.push(detail);
        }
        assert_eq!(details.len(), 4, "{details:?}");
        assert!(
            details[0].contains("t/a was refused: unsigned"),
            "{}",
            details[0]
        );
        assert_eq!(counted.load(Ordering::Relaxed), 8);
    }
}
