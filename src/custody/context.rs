//! Chain-of-custody context (`custodyd.context.v1`): who is signed in at a
//! station, what they are doing and into which container. Stamped on every
//! scan there, and published itself whenever it changes, so the central
//! system can rebuild who held what at any moment.

use std::sync::Arc;

use serde::Serialize;

use super::Common;

pub const CONTEXT_SCHEMA: &str = "custodyd.context.v1";

/// The alarms by which a station refuses what it was shown: a scan with
/// nobody signed in, an action it does not know, a badge of nobody. At a
/// cage gate that is a station, the gate also pulses its red light and
/// buzzer for them, so the operator at the gate notices at once.
pub const REFUSALS: [&str; 3] = [OPERATOR_REQUIRED, UNKNOWN_ACTION, UNKNOWN_BADGE];
pub const OPERATOR_REQUIRED: &str = "operator_required";
pub const UNKNOWN_ACTION: &str = "unknown_action";
pub const UNKNOWN_BADGE: &str = "unknown_badge";

/// A station's context; `None` where not set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Operator id (or the badge number as read, without an operator table).
    pub operator: Option<Arc<str>>,
    /// One of the configured actions, as configured.
    pub action: Option<Arc<str>>,
    /// Canonical id of the current container (an SSCC or a prefixed label).
    pub container: Option<Arc<str>>,
}

/// What made a context change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A badge signed an operator in (replacing whoever was signed in).
    SignedIn,
    /// The signed-in operator's badge was read again.
    SignedOut,
    /// No activity at the station for its `operator_timeout`.
    TimedOut,
    ActionSet,
    ContainerSet,
    /// `ACT:CLEAR`: action and container cleared.
    Cleared,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::SignedIn => "signed_in",
            Change::SignedOut => "signed_out",
            Change::TimedOut => "timed_out",
            Change::ActionSet => "action_set",
            Change::ContainerSet => "container_set",
            Change::Cleared => "cleared",
        }
    }
}

/// A context event: the change and the whole context after it, so each
/// event stands alone.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextChange {
    pub change: Change,
    /// The reader whose read made the change; `None` for a timeout.
    pub reader: Option<Arc<str>>,
    pub context: Context,
}

/// The context fields as they appear in custody and context events.
#[derive(Serialize)]
pub(super) struct ContextJson<'a> {
    operator: Option<&'a str>,
    action: Option<&'a str>,
    container: Option<&'a str>,
}

impl<'a> From<&'a Context> for ContextJson<'a> {
    fn from(c: &'a Context) -> Self {
        ContextJson {
            operator: c.operator.as_deref(),
            action: c.action.as_deref(),
            container: c.container.as_deref(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct ContextChangeJson<'a> {
    schema: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    change: &'static str,
    reader: Option<&'a str>,
    #[serde(flatten)]
    context: ContextJson<'a>,
}

impl ContextChange {
    pub(super) fn json<'a>(&'a self, common: Common<'a>) -> ContextChangeJson<'a> {
        ContextChangeJson {
            schema: CONTEXT_SCHEMA,
            common,
            change: self.change.as_str(),
            reader: self.reader.as_deref(),
            context: ContextJson::from(&self.context),
        }
    }
}
