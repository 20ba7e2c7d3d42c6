use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use super::keys::SigningKey;
use super::sign::sign;
use super::*;

const TOPIC: &str = "itad/s1/release/A1";
const CMD: &str = "itad/s1/gw1/cmd/unlock";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn setup(allow_unsigned: bool) -> (SigningKey, Trust) {
    let key = SigningKey::generate("central-1").unwrap();
    let config = TrustConfig {
        central_keys: BTreeMap::from([("central-1".to_string(), key.public_base64())]),
        allow_unsigned,
    };
    (key, Trust::from_config(Some(&config)))
}

fn signed(key: &SigningKey, topic: &str, inner: &str) -> String {
    sign(key, topic, inner.as_bytes(), now(), Duration::from_secs(60)).unwrap()
}

fn reason(r: Result<Verified, Refusal>) -> Reason {
    r.unwrap_err().reason
}

#[test]
fn a_signed_entry_passes_with_its_inner_bytes() {
    let (key, trust) = setup(false);
    let envelope = signed(&key, TOPIC, r#"{"released":true}"#);
    let v = trust
        .verify(TOPIC, envelope.as_bytes(), Kind::State, now())
        .unwrap();
    let inner: serde_json::Value = serde_json::from_slice(&v.inner).unwrap();
    assert_eq!(inner["released"], true);
    assert_eq!(inner["topic"], TOPIC);
    let signed = v.signed.unwrap();
    assert_eq!(signed.issued_at, now());
    assert_eq!(issued_at(&v.inner), Some(now()));
}

#[test]
fn every_refusal_has_its_reason() {
    let (key, trust) = setup(false);
    let state = |payload: &[u8]| trust.verify(TOPIC, payload, Kind::State, now());
    assert_eq!(reason(state(br#"{"released":true}"#)), Reason::Unsigned);
    assert_eq!(reason(state(b"")), Reason::Unsigned);
    let stranger = SigningKey::generate("central-9").unwrap();
    let forged = signed(&stranger, TOPIC, r#"{"released":true}"#);
    assert_eq!(reason(state(forged.as_bytes())), Reason::UnknownKey);
    // Another key claiming a trusted id.
    let impostor =
        SigningKey::parse(&stranger.to_file_text().replace("central-9", "central-1")).unwrap();
    let forged = signed(&impostor, TOPIC, r#"{"released":true}"#);
    assert_eq!(reason(state(forged.as_bytes())), Reason::BadSignature);
    let good = signed(&key, TOPIC, r#"{"released":true}"#);
    let mut wire: serde_json::Value = serde_json::from_str(&good).unwrap();
    let other = signed(&key, TOPIC, r#"{"released":false}"#);
    let other: serde_json::Value = serde_json::from_str(&other).unwrap();
    wire["signed"] = other["signed"].clone();
    assert_eq!(
        reason(state(wire.to_string().as_bytes())),
        Reason::BadSignature
    );
    let elsewhere = signed(&key, "itad/s1/release/B2", r#"{"released":true}"#);
    assert_eq!(reason(state(elsewhere.as_bytes())), Reason::WrongTopic);
}

#[test]
fn commands_need_an_id_and_a_not_after_still_ahead_capped_at_an_hour() {
    let (key, trust) = setup(false);
    let cmd = |inner: &str, at: SystemTime| {
        trust.verify(CMD, signed(&key, CMD, inner).as_bytes(), Kind::Command, at)
    };
    let v = cmd(r#"{"location":"c"}"#, now()).unwrap();
    let (id, not_after) = v.signed.unwrap().command.unwrap();
    assert!(!id.is_empty());
    assert_eq!(not_after, now() + Duration::from_secs(60));
    let late = now() + Duration::from_secs(61);
    assert_eq!(reason(cmd(r#"{"location":"c"}"#, late)), Reason::Expired);
    let far = r#"{"not_after":"2028-01-01T00:00:00Z"}"#;
    let within = now() + Duration::from_secs(3599);
    assert!(cmd(far, within).is_ok());
    assert_eq!(
        reason(cmd(far, now() + Duration::from_secs(3601))),
        Reason::Expired,
        "capped at issued_at + 1h"
    );
}

#[test]
fn older_entries_are_stale_equal_ones_are_redeliveries() {
    let (key, trust) = setup(false);
    let at = |t: SystemTime| {
        let e = sign(&key, TOPIC, br#"{"released":true}"#, t, Duration::ZERO).unwrap();
        trust.verify(TOPIC, e.as_bytes(), Kind::State, t).unwrap()
    };
    let held = Some(now());
    assert!(check_newer(held, &at(now())).is_ok());
    assert!(check_newer(held, &at(now() + Duration::from_secs(1))).is_ok());
    let old = check_newer(held, &at(now() - Duration::from_secs(1))).unwrap_err();
    assert_eq!(old.reason, Reason::Stale);
    assert!(check_newer(None, &at(now())).is_ok());
}

#[test]
fn allow_unsigned_takes_both_and_still_checks_signed_ones() {
    let (key, trust) = setup(true);
    let v = trust
        .verify(TOPIC, br#"{"released":true}"#, Kind::State, now())
        .unwrap();
    assert_eq!(v.signed, None);
    let elsewhere = signed(&key, "itad/s1/release/B2", r#"{"released":true}"#);
    assert_eq!(
        reason(trust.verify(TOPIC, elsewhere.as_bytes(), Kind::State, now())),
        Reason::WrongTopic
    );
    assert!(!Trust::from_config(None).required());
}

proptest::proptest! {
    /// Whatever anyone publishes: no panic, and nothing passes unsigned
    /// while signatures are required.
    #[test]
    fn any_payload_is_verified_or_refused(
        payload in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
    ) {
        crate::fuzzing::trust_envelope(&payload);
    }
}
