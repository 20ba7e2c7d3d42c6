//! Only central can release or unlock: signed control messages
//! (CONTRACT.md, "Signed control messages").
//!
//! Release policy entries, pickup manifests and commands change what a gate
//! or a door does, and anyone who can publish to the broker could send
//! them. So with `[trust] central_keys` configured, each must come as an
//! Ed25519-signed envelope whose inner object names the topic it is
//! published on and when central signed it. This module checks that and
//! hands back the inner JSON, or a [`Refusal`] saying why not; the task that
//! owns the state a message is about applies the stateful checks
//! (a release entry older than the one held: [`check_newer`]; a command id
//! seen before: [`replay::Seen`]) and reports refusals to the
//! `untrusted_message` alarm ([`alarm::Alarms`]).
//!
//! What remains trusted is the gateway itself: its configuration (the keys)
//! and its data directory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::config::TrustConfig;
use crate::timestamp::parse_rfc3339;

pub mod alarm;
pub mod envelope;
pub mod keys;
pub mod refusal;
pub mod replay;
pub mod sign;

pub use alarm::Alarms;
pub use refusal::{Reason, Refusal};

/// A command is refused this long after it was issued whatever its
/// `not_after` says, which also bounds how long its id must be remembered.
pub const COMMAND_LIFETIME_MAX: Duration = Duration::from_secs(3600);

/// What a message is: retained state (release entries, manifests) or a
/// command, which must also carry `id` and `not_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    State,
    Command,
}

/// A message that passed: its inner JSON and what the signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The inner JSON object's bytes (the payload itself when unsigned
    /// messages are allowed and this was one).
    pub inner: Vec<u8>,
    /// `None` for an unsigned message.
    pub signed: Option<Signed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub key: String,
    pub issued_at: SystemTime,
    /// Commands: the request's id and when it stops being valid (capped at
    /// [`COMMAND_LIFETIME_MAX`] after `issued_at`).
    pub command: Option<(String, SystemTime)>,
}

/// The fields the signature binds, besides the message's own.
#[derive(Deserialize)]
struct Bound {
    topic: Option<String>,
    issued_at: Option<String>,
    id: Option<String>,
    not_after: Option<String>,
}

/// Central's keys, and whether unsigned messages are taken. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Trust {
    keys: Arc<BTreeMap<String, [u8; keys::PUBLIC_KEY_LEN]>>,
    allow_unsigned: bool,
}

impl Trust {
    /// From `[trust]` (validated); no table at all takes unsigned messages,
    /// as before signing existed (check-config refuses that at a cage gate).
    pub fn from_config(config: Option<&TrustConfig>) -> Self {
        let Some(config) = config else {
            return Trust {
                keys: Arc::default(),
                allow_unsigned: true,
            };
        };
        let keys = config
            .central_keys
            .iter()
            .filter_map(|(id, text)| Some((id.clone(), keys::parse_public(text).ok()?)))
            .collect();
        Trust {
            keys: Arc::new(keys),
            allow_unsigned: config.allow_unsigned,
        }
    }

    /// Whether any key is configured (so signed messages can pass).
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether unsigned messages are refused.
    pub fn required(&self) -> bool {
        !self.allow_unsigned
    }

    /// Checks `payload`, published on `topic`, at `now`.
    pub fn verify(
        &self,
        topic: &str,
        payload: &[u8],
        kind: Kind,
        now: SystemTime,
    ) -> Result<Verified, Refusal> {
        if !envelope::looks_signed(payload) {
            if self.allow_unsigned {
                return Ok(Verified {
                    inner: payload.to_vec(),
                    signed: None,
                });
            }
            let what = if payload.is_empty() {
                "an empty payload".to_string()
            } else {
                "not a signed envelope".to_string()
            };
            return Err(Refusal::new(Reason::Unsigned, what));
        }
        let envelope = envelope::parse(payload)?;
        let key = self.keys.get(&envelope.key).ok_or_else(|| {
            Refusal::new(
                Reason::UnknownKey,
                format!("key {:?} is not in [trust] central_keys", envelope.key),
            )
        })?;
        if !keys::verifies(key, &envelope.inner, &envelope.sig) {
            return Err(Refusal::new(
                Reason::BadSignature,
                format!("the signature does not verify with key {:?}", envelope.key),
            ));
        }
        let bound: Bound = serde_json::from_slice(&envelope.inner).map_err(|e| {
            Refusal::new(
                Reason::BadSignature,
                format!("the signed bytes are not a JSON object with string fields: {e}"),
            )
        })?;
        match bound.topic.as_deref() {
            Some(t) if t == topic => {}
            Some(t) => {
                return Err(Refusal::new(
                    Reason::WrongTopic,
                    format!("signed for {t:?}"),
                ))
            }
            None => return Err(Refusal::new(Reason::WrongTopic, "no `topic` signed")),
        }
        let issued_at = time(bound.issued_at.as_deref(), "issued_at", Reason::Stale)?;
        let command = match kind {
            Kind::State => None,
            Kind::Command => {
                let id = bound
                    .id
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| Refusal::new(Reason::Replayed, "no `id` signed"))?;
                let asked = time(bound.not_after.as_deref(), "not_after", Reason::Expired)?;
                let not_after = asked.min(issued_at + COMMAND_LIFETIME_MAX);
                if now > not_after {
                    let capped = if asked > not_after {
                        " (capped at issued_at + 1h)"
                    } else {
                        ""
                    };
                    return Err(Refusal::new(
                        Reason::Expired,
                        format!(
                            "not_after {}{capped} has passed",
                            humantime::format_rfc3339_seconds(not_after)
                        ),
                    ));
                }
                Some((id, not_after))
            }
        };
        Ok(Verified {
            inner: envelope.inner,
            signed: Some(Signed {
                key: envelope.key,
                issued_at,
                command,
            }),
        })
    }
}

/// What a task that takes control messages holds: the checks, and where
/// refusals go.
#[derive(Debug, Clone)]
pub struct Guard {
    pub trust: Trust,
    pub alarms: Alarms,
}

impl Default for Guard {
    /// Unsigned messages taken, refusals only logged: for a gateway (or a
    /// test) without `[trust]`.
    fn default() -> Self {
        Guard {
            trust: Trust::from_config(None),
            alarms: Alarms::default(),
        }
    }
}

impl Guard {
    /// [`Trust::verify`], with a refusal reported.
    pub fn check(&self, topic: &str, payload: &[u8], kind: Kind) -> Option<Verified> {
        self.trust
            .verify(topic, payload, kind, SystemTime::now())
            .map_err(|refusal| self.alarms.report(topic, refusal))
            .ok()
    }
}

fn time(text: Option<&str>, field: &str, reason: Reason) -> Result<SystemTime, Refusal> {
    let text = text.ok_or_else(|| Refusal::new(reason, format!("no `{field}` signed")))?;
    parse_rfc3339(text).map_err(|e| Refusal::new(reason, format!("`{field}` {e}")))
}

/// `issued_at` of a stored inner object (what [`Verified::inner`] was),
/// `None` for an unsigned one.
pub fn issued_at(inner: &[u8]) -> Option<SystemTime> {
    #[derive(Deserialize)]
    struct Issued {
        issued_at: String,
    }
    let issued: Issued = serde_json::from_slice(inner).ok()?;
    parse_rfc3339(&issued.issued_at).ok()
}

/// Refuses a release entry or manifest older than the one held for its
/// topic (`held`: the held one's `issued_at`): no rollback by replaying an
/// old grant. The same `issued_at` passes (the broker re-delivers retained
/// messages after every reconnect).
pub fn check_newer(held: Option<SystemTime>, verified: &Verified) -> Result<(), Refusal> {
    match (held, &verified.signed) {
        (Some(held), Some(signed)) if signed.issued_at < held => Err(Refusal::new(
            Reason::Stale,
            format!(
                "issued_at {} is older than the {} already held",
                humantime::format_rfc3339_millis(signed.issued_at),
                humantime::format_rfc3339_millis(held)
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
