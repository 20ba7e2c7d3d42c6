//! Ways in for the fuzz targets (`fuzz/`, built with the `testutil`
//! feature) and the suite's proptests to the parsers of what arrives from
//! the broker, some of them private to the tasks that use them. Each checks
//! what an accepted input promises, and panics where it does not hold.

use std::collections::HashSet;
use std::time::SystemTime;

use crate::command::{self, MAX_ID_LEN};
use crate::release::{policy, unlock};
use crate::rules::manifest;
use crate::trust;

/// A release policy message: its payload and the topic's level below
/// `{root}/{site}/release/`.
pub fn release_policy(payload: &[u8], key: &str) {
    if let Ok(entry) = policy::parse(payload) {
        let now = SystemTime::UNIX_EPOCH;
        match policy::standing(Some(payload), now) {
            policy::Standing::Released(_) => {
                assert!(entry.released && entry.expires_at.is_none_or(|t| t > now));
            }
            policy::Standing::NotReleased(_) | policy::Standing::Expired(_) => {}
            other => panic!("an accepted entry stands as {other:?}"),
        }
    }
    let prefix = "itad/s/release/";
    if let Ok(key) = policy::key_of(prefix, &format!("{prefix}{key}")) {
        assert!(!key.contains(['/', '#', '+']), "{key}");
    }
}

/// A pickup manifest (`{root}/{site}/manifest/{door}`).
pub fn manifest(payload: &[u8]) {
    if let Ok(m) = manifest::parse(payload) {
        assert!(!m.pickup_id.trim().is_empty());
        let unique: HashSet<&String> = m.expected.iter().collect();
        assert_eq!(unique.len(), m.expected.len(), "each asset once");
        assert!(m.expected.iter().all(|id| !id.is_empty()));
    }
}

/// A command request (`cmd/{command}`), and its body as an `unlock`.
pub fn command(payload: &[u8]) {
    let Ok((id, body)) = command::parse(payload) else {
        return;
    };
    assert!(!id.is_empty() && id.len() <= MAX_ID_LEN);
    if let Ok(u) = unlock::parse(&body) {
        assert!(u.duration.is_none_or(|d| !d.is_zero()));
        assert!(!u.operator.trim().is_empty() && !u.reason.trim().is_empty());
    }
}

/// A control message under `[trust]` with one central key: verified or
/// refused with a reason, never taken unsigned.
pub fn trust_envelope(payload: &[u8]) {
    let config = crate::config::TrustConfig {
        // The RFC 8032 test 1 public key: no input here is signed by it.
        central_keys: [(
            "central-1".to_string(),
            "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".to_string(),
        )]
        .into(),
        allow_unsigned: false,
    };
    let checker = trust::Trust::from_config(Some(&config));
    let topic = "itad/s/g/cmd/unlock";
    for kind in [trust::Kind::State, trust::Kind::Command] {
        if let Ok(v) = checker.verify(topic, payload, kind, SystemTime::UNIX_EPOCH) {
            panic!("accepted without a valid signature: {v:?}");
        }
    }
    if let Ok(e) = trust::envelope::parse(payload) {
        assert_eq!(e.sig.len(), trust::envelope::SIGNATURE_LEN);
    }
}
