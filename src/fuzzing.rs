//! Ways in for the fuzz targets (`fuzz/`, built with the `testutil`
//! feature) and the suite's proptests to the parsers of what arrives from
//! the broker, some of them private to the tasks that use them. Each checks
//! what an accepted input promises, and panics where it does not hold.

use std::collections::HashSet;
use std::time::SystemTime;

use crate::command::{self, MAX_ID_LEN};
use crate::custody::{rfc3339, Basis, Body, Context, Custody, Draft, Release, Transition};
use crate::decode::Source;
use crate::identity::Asset;
use crate::release::{policy, unlock};
use crate::rules::manifest;
use crate::topic::Naming;
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
        render_release(entry, key);
    }
    let prefix = "itad/s/release/";
    if let Ok(key) = policy::key_of(prefix, &format!("{prefix}{key}")) {
        assert!(!key.contains(['/', '#', '+']), "{key}");
    }
}

/// Renders what a gate makes of an accepted entry, as the gate and spool
/// tasks do: the expiry as a denial's alarm quotes it, and the custody
/// event of a grant, whose `release.expires_at` reads back as the entry's
/// expiry (to the millisecond).
fn render_release(entry: policy::Entry, key: &str) {
    let t = SystemTime::now();
    let quoted = entry.expires_at.map(rfc3339);
    let asset = Asset {
        id: key.into(),
        raw: key.into(),
        source: Source::Barcode,
    };
    let scan = Custody {
        transition: Transition::Scanned,
        asset,
        reader: "cage-scan".into(),
        reads: 1,
        first_seen: t,
        last_seen: t,
        antennas: Vec::new(),
        rssi_max: None,
        context: Context::default(),
        crossing: None,
    };
    let mut event = Draft::new("cage-1".into(), t, Body::Custody(scan));
    event.release = Some(Box::new(Release {
        basis: Basis::Policy,
        policy_topic: format!("itad/s/release/{key}"),
        asset_key: key.into(),
        reason: entry.reason,
        expires_at: entry.expires_at,
        decided_at: t,
        via: "scan",
    }));
    let naming = Naming {
        root: "itad".into(),
        site: "s".into(),
        gateway: "g".into(),
    };
    let json: serde_json::Value =
        serde_json::from_slice(&event.render(&naming, "S", 1, None)).expect("an event is JSON");
    let written = &json["release"]["expires_at"];
    assert_eq!(written.as_str(), quoted.as_deref());
    if let (Some(written), Some(expiry)) = (written.as_str(), entry.expires_at) {
        let back = humantime::parse_rfc3339(written).expect("RFC 3339 reads back");
        let since = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .ok()
        };
        assert_eq!(since(back), since(expiry), "{written}");
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

/// A record as the spool reads it back from the card: anything is a
/// record (with the saves that follow it) or an error, and what decodes
/// encodes back to the same record and saves.
pub fn spool_record(bytes: &[u8]) {
    use crate::spool::{self, StoredRecord};
    if let Ok((record, saves)) = StoredRecord::decode_with_saves(bytes) {
        let mut again = record.encode();
        again.extend(spool::trailer(&saves));
        let decoded = StoredRecord::decode_with_saves(&again).expect("re-encoded record decodes");
        assert_eq!(decoded, (record, saves));
    }
}
