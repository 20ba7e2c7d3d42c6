//! Commands on `{root}/{site}/{gateway}/cmd/{command}`: one dispatcher task
//! parses and rate-limits requests, and hands each to the task that owns the
//! state the command is about (a gate, the presence engine, the daemon), so
//! no state gets a second owner. The reply goes to `cmd-reply/{command}`
//! carrying the request's `id`.
//!
//! A request is a JSON object with a string `id`; anything else gets an error
//! reply, never a crash. Replies are not spooled: a requester that hears
//! nothing asks again.
//!
//! A request is acknowledged to the broker once dispatched: its id recorded
//! (signed: in the replay store, committed) and handed to its handler, or
//! refused with its reply and alarm queued. One dropped by the flood limit
//! is acknowledged too: it is meant to be gone, not to come back.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use rumqttc::QoS;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::bus::{Bus, Inbound, Publisher};
use crate::topic::Naming;
use crate::trust::replay::Seen;
use crate::trust::{envelope, Guard, Kind, Reason, Refusal};

pub const REPLY_SCHEMA: &str = "custodyd.cmd-reply.v1";

/// What a handler answers: a result object, or an error sentence.
pub type Reply = Result<Value, String>;

/// One command for a handler. Dropping `reply` unanswered is reported to the
/// requester as an internal error.
#[derive(Debug)]
pub struct Request {
    pub id: String,
    /// The whole request object, `id` included.
    pub body: Map<String, Value>,
    pub reply: oneshot::Sender<Reply>,
}

/// Requests accepted per second on average, and in a burst: enough for an
/// operator and a central system, not for a flood to starve the pipeline.
const RATE_PER_SEC: f64 = 5.0;
const BURST: f64 = 20.0;
/// A handler that has not answered by then is reported as timed out.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests queued per handler.
const HANDLER_QUEUE: usize = 8;
pub(crate) const MAX_ID_LEN: usize = 128;

/// The command names and the handlers they go to, filled in while the daemon
/// wires its stages.
#[derive(Debug, Default)]
pub struct Commands {
    handlers: HashMap<&'static str, mpsc::Sender<Request>>,
}

impl Commands {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests for `name` go to the returned receiver.
    pub fn register(&mut self, name: &'static str) -> mpsc::Receiver<Request> {
        let (tx, rx) = mpsc::channel(HANDLER_QUEUE);
        self.handlers.insert(name, tx);
        rx
    }

    /// Subscribes to this gateway's commands and starts dispatching: each
    /// request passes `guard` (and, signed, `seen`: its id runs once) or is
    /// refused. The task ends when the control client does.
    pub fn spawn(
        self,
        naming: Naming,
        bus: &mut Bus,
        guard: Guard,
        seen: Option<Seen>,
    ) -> JoinHandle<()> {
        let requests = bus.subscribe(naming.commands(), 64);
        let dispatcher = Dispatcher {
            handlers: self.handlers,
            guard,
            seen,
            publisher: bus.publisher(),
            naming,
            bucket: BURST,
            refilled: Instant::now(),
            refused: 0,
        };
        tokio::spawn(dispatcher.run(requests))
    }
}

struct Dispatcher {
    handlers: HashMap<&'static str, mpsc::Sender<Request>>,
    guard: Guard,
    /// Command ids executed; `None` where no key can sign (nothing signed
    /// passes `guard`).
    seen: Option<Seen>,
    publisher: Publisher,
    naming: Naming,
    /// Token bucket: requests that may be accepted now.
    bucket: f64,
    refilled: Instant,
    /// Requests dropped since the last one accepted, for one log line.
    refused: u64,
}

impl Dispatcher {
    async fn run(mut self, mut requests: mpsc::Receiver<Inbound>) {
        while let Some(mut message) = requests.recv().await {
            let ack = std::mem::take(&mut message.ack);
            self.take(message);
            ack.done();
        }
    }

    /// Dispatches `message`, unless the flood limit drops it.
    fn take(&mut self, message: Inbound) {
        let command = message.topic.rsplit('/').next().unwrap_or_default();
        if !self.take_token() {
            if self.refused == 0 {
                warn!(
                    "command flood: dropping requests until the rate falls below {RATE_PER_SEC}/s"
                );
            }
            self.refused += 1;
            return;
        }
        if self.refused > 0 {
            warn!("command flood over: {} requests were dropped", self.refused);
            self.refused = 0;
        }
        self.dispatch(command.to_string(), &message);
    }

    fn take_token(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * RATE_PER_SEC;
        self.bucket = (self.bucket + earned).min(BURST);
        self.refilled = now;
        if self.bucket >= 1.0 {
            self.bucket -= 1.0;
            true
        } else {
            false
        }
    }

    fn dispatch(&mut self, command: String, message: &Inbound) {
        let topic = self.naming.command_reply(&command);
        let inner = match self.admit(message) {
            Ok(inner) => inner,
            Err(refusal) => {
                let error = format!("refused: {refusal}");
                self.guard.alarms.report(&message.topic, refusal);
                let id = claimed_id(&message.payload);
                self.send(topic, &command, id, Err(error));
                return;
            }
        };
        let (id, body) = match parse(&inner) {
            Ok(parsed) => parsed,
            Err(error) => {
                // Without a readable id the reply carries `id: null`.
                warn!("command {command}: refused: {error}");
                self.send(topic, &command, Value::Null, Err(error));
                return;
            }
        };
        if command == "ping" {
            // Answered here: it proves the command path itself works.
            let pong = json!({ "version": env!("CARGO_PKG_VERSION") });
            self.send(topic, &command, Value::String(id), Ok(pong));
            return;
        }
        let Some(handler) = self.handlers.get(command.as_str()) else {
            let error = format!("unknown command {command:?}");
            warn!("{error} (id {id})");
            self.send(topic, &command, Value::String(id), Err(error));
            return;
        };
        info!(%command, %id, "command received");
        let (reply, answer) = oneshot::channel();
        let request = Request {
            id: id.clone(),
            body,
            reply,
        };
        if handler.try_send(request).is_err() {
            let error = format!("{command} is busy; try again");
            self.send(topic, &command, Value::String(id), Err(error));
            return;
        }
        let publisher = self.publisher.clone();
        // The handler's owner answers when it gets to it; the dispatcher
        // goes on with the next request meanwhile.
        tokio::spawn(async move {
            let reply = match tokio::time::timeout(REPLY_TIMEOUT, answer).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => Err(format!(
                    "{command} was not handled (the daemon is stopping?)"
                )),
                Err(_) => Err(format!("{command} timed out after {REPLY_TIMEOUT:?}")),
            };
            publish_reply(&publisher, topic, &command, Value::String(id), reply);
        });
    }

    /// The request inside `message` if it may run: not retained (a
    /// retained command would run again at every reconnect), trusted, and
    /// (signed) an id not executed before.
    fn admit(&mut self, message: &Inbound) -> Result<Vec<u8>, Refusal> {
        if message.retain {
            return Err(Refusal::new(
                Reason::Retained,
                "commands are never taken from retained messages",
            ));
        }
        let now = SystemTime::now();
        let verified =
            self.guard
                .trust
                .verify(&message.topic, &message.payload, Kind::Command, now)?;
        if let (Some((id, not_after)), Some(seen)) = (
            verified.signed.as_ref().and_then(|s| s.command.as_ref()),
            self.seen.as_mut(),
        ) {
            seen.first_time(id, *not_after, now)?;
        }
        Ok(verified.inner)
    }

    fn send(&self, topic: String, command: &str, id: Value, reply: Reply) {
        publish_reply(&self.publisher, topic, command, id, reply);
    }
}

fn publish_reply(publisher: &Publisher, topic: String, command: &str, id: Value, reply: Reply) {
    let mut json = json!({ "schema": REPLY_SCHEMA, "id": id, "command": command });
    match reply {
        Ok(result) => {
            json["ok"] = Value::Bool(true);
            json["result"] = result;
        }
        Err(error) => {
            json["ok"] = Value::Bool(false);
            json["error"] = Value::String(error);
        }
    }
    if !publisher.publish(
        topic,
        json.to_string().into_bytes(),
        QoS::AtLeastOnce,
        false,
    ) {
        warn!("reply to {command} dropped: the uplink is not keeping up");
    }
}

/// The `id` a refused request claims, unverified, so the requester can
/// match the refusal to its request; `null` when there is none.
fn claimed_id(payload: &[u8]) -> Value {
    let inner = envelope::parse(payload).map_or_else(|_| payload.to_vec(), |e| e.inner);
    parse(&inner).map_or(Value::Null, |(id, _)| Value::String(id))
}

/// The request's `id` and body, or why it is refused.
pub(crate) fn parse(payload: &[u8]) -> Result<(String, Map<String, Value>), String> {
    let body: Map<String, Value> = serde_json::from_slice(payload)
        .map_err(|e| format!("the request is not a JSON object: {e}"))?;
    match body.get("id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID_LEN => {
            Ok((id.clone(), body))
        }
        Some(Value::String(_)) => Err(format!("`id` must be 1 to {MAX_ID_LEN} characters")),
        Some(_) => Err("`id` must be a string".into()),
        None => Err("the request has no `id`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_without_a_string_id_are_refused_with_a_reason() {
        assert!(parse(br#"{"id":"a1","operator":"op-7"}"#).is_ok());
        for (payload, reason) in [
            (&b"not json"[..], "not a JSON object"),
            (b"[1,2]", "not a JSON object"),
            (b"{}", "no `id`"),
            (br#"{"id":7}"#, "must be a string"),
            (br#"{"id":""}"#, "1 to 128"),
        ] {
            let error = parse(payload).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_cut_to_the_burst_then_the_rate() {
        let mut d = Dispatcher {
            handlers: HashMap::new(),
            guard: Guard::default(),
            seen: None,
            publisher: Bus::new().publisher(),
            naming: Naming {
                root: "itad".into(),
                site: "s".into(),
                gateway: "g".into(),
            },
            bucket: BURST,
            refilled: Instant::now(),
            refused: 0,
        };
        let accepted = (0..100).filter(|_| d.take_token()).count();
        assert_eq!(accepted, BURST as usize);
        tokio::time::advance(Duration::from_secs(2)).await;
        let accepted = (0..100).filter(|_| d.take_token()).count();
        assert_eq!(accepted, (2.0 * RATE_PER_SEC) as usize);
    }

    proptest::proptest! {
        #[test]
        fn any_payload_gives_an_id_or_a_reason(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            crate::fuzzing::command(&payload);
        }
    }
}
