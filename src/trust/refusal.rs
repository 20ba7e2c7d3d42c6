//! Why a control message was refused: the reason words are part of the wire
//! contract (the `untrusted_message` alarm's detail names them).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not a signed envelope, while signatures are required.
    Unsigned,
    /// Signed with a key id the gateway does not have.
    UnknownKey,
    /// The signature does not verify, or the envelope is malformed.
    BadSignature,
    /// Signed for another topic (copied to another asset, door or gateway),
    /// or without a `topic`.
    WrongTopic,
    /// Older than what the gateway already holds for the topic, or
    /// without a usable `issued_at`.
    Stale,
    /// A command `id` already executed.
    Replayed,
    /// A command past its `not_after`, or without one.
    Expired,
    /// A command that came with the MQTT retain flag set.
    Retained,
}

impl Reason {
    /// As written in the alarm's detail.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsigned => "unsigned",
            Reason::UnknownKey => "unknown key",
            Reason::BadSignature => "bad signature",
            Reason::WrongTopic => "wrong topic",
            Reason::Stale => "stale",
            Reason::Replayed => "replayed",
            Reason::Expired => "expired",
            Reason::Retained => "retained",
        }
    }
}

/// A refusal: the reason, and a sentence of what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub detail: String,
}

impl Refusal {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason.as_str(), self.detail)
    }
}

impl std::error::Error for Refusal {}
