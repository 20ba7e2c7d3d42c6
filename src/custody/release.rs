//! The `release` object of a custody event: why a cage gate let the asset
//! out, so an auditor can trace the decision to the policy entry behind it.

use std::time::SystemTime;

use serde::Serialize;

use super::rfc3339;

/// What a granted release was based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The asset's policy entry said `released: true` and had not expired.
    Policy,
    /// The policy had no entry for the asset and the gate is configured
    /// with `unknown = "allow"`.
    UnknownAllowed,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Policy => "policy",
            Basis::UnknownAllowed => "unknown_allowed",
        }
    }
}

/// A gate's grant, carried by the custody event of the attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub basis: Basis,
    /// `{root}/{site}/release/{asset key}`: where the entry was (or would be).
    pub policy_topic: String,
    pub asset_key: String,
    /// From the policy entry.
    pub reason: Option<String>,
    pub expires_at: Option<SystemTime>,
    pub decided_at: SystemTime,
    /// How the asset tried to leave: `scan` or `moved`.
    pub via: &'static str,
}

#[derive(Serialize)]
pub(super) struct ReleaseJson<'a> {
    basis: &'static str,
    policy_topic: &'a str,
    asset_key: &'a str,
    reason: Option<&'a str>,
    expires_at: Option<String>,
    decided_at: String,
    via: &'static str,
}

impl<'a> From<&'a Release> for ReleaseJson<'a> {
    fn from(r: &'a Release) -> Self {
        ReleaseJson {
            basis: r.basis.as_str(),
            policy_topic: &r.policy_topic,
            asset_key: &r.asset_key,
            reason: r.reason.as_deref(),
            expires_at: r.expires_at.map(rfc3339),
            decided_at: rfc3339(r.decided_at),
            via: r.via,
        }
    }
}
