use super::*;

fn at(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap()
}

#[test]
fn payloads_parse_or_say_why_not() {
    let e = parse(
        br#"{"released":true,"reason":"wiped","expires_at":"2026-12-01T00:00:00Z","by":"x"}"#,
    )
    .unwrap();
    assert!(e.released);
    assert_eq!(e.reason.as_deref(), Some("wiped"));
    assert_eq!(e.expires_at, Some(at("2026-12-01T00:00:00Z")));
    assert_eq!(
        parse(br#"{"released":true,"expires_at":"2026-12-01T02:30:00.5+02:30"}"#)
            .unwrap()
            .expires_at,
        Some(at("2026-12-01T00:00:00.5Z"))
    );
    for bad in [
        &b"yes"[..],
        b"[]",
        b"{}",
        br#"{"released":"true"}"#,
        br#"{"released":true,"expires_at":"tomorrow"}"#,
        br#"{"released":true,"expires_at":"2026-12-01T00:00:00+25:00"}"#,
        br#"{"released":true,"reason":7}"#,
    ] {
        assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn topics_name_canonical_asset_keys_only() {
    let p = "itad/reno-1/release/";
    assert_eq!(
        key_of(p, "itad/reno-1/release/AB%2F1%23%2B"),
        Ok("AB%2F1%23%2B")
    );
    assert_eq!(
        key_of(p, "itad/reno-1/release/urn:epc:id:giai:0614141.1"),
        Ok("urn:epc:id:giai:0614141.1")
    );
    for bad in [
        "itad/reno-1/release/",
        "itad/reno-1/release/a/b",
        "itad/reno-2/release/a",
        "itad/reno-1/release/AB%2f1",
        "itad/reno-1/release/AB%2",
        "itad/reno-1/release/a b",
    ] {
        assert!(key_of(p, bad).is_err(), "{bad}");
    }
}

#[test]
fn expiry_is_judged_when_asked() {
    let stored = br#"{"released":true,"expires_at":"2026-12-01T00:00:00Z"}"#;
    let before = at("2026-11-30T23:59:59Z");
    assert!(matches!(
        standing(Some(stored), before),
        Standing::Released(_)
    ));
    let after = at("2026-12-01T00:00:00Z");
    assert!(matches!(
        standing(Some(stored), after),
        Standing::Expired(_)
    ));
    assert!(matches!(
        standing(Some(br#"{"released":false}"#), after),
        Standing::NotReleased(_)
    ));
    assert_eq!(standing(Some(b""), after), Standing::Revoked);
    assert_eq!(standing(None, after), Standing::Unknown);
}

/// Both panicked a task when rendered: the gate's denial quoting the
/// first, the spool rendering the grant that carried the second.
#[test]
fn expiries_an_offset_pushes_out_of_1970_to_9999_are_refused() {
    for text in ["1970-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"] {
        let payload = format!(r#"{{"released":true,"expires_at":"{text}"}}"#);
        let error = parse(payload.as_bytes()).unwrap_err();
        assert!(error.contains("outside 1970"), "{error}");
    }
    for text in ["1970-01-01T01:00:00+01:00", "9999-12-31T22:59:59-01:00"] {
        assert!(parse_rfc3339(text).is_ok(), "{text}");
    }
}

#[test]
fn an_expiry_with_a_multibyte_character_where_the_offset_would_start_is_refused() {
    // Six bytes from the end falls inside the "é".
    let error = parse("{\"released\":true,\"expires_at\":\"xéxxxxx\"}".as_bytes()).unwrap_err();
    assert!(error.contains("not an RFC 3339 time"), "{error}");
}

proptest::proptest! {
    /// Whatever central (or anyone able to publish) sends: no panic, and
    /// what is accepted stands as it says.
    #[test]
    fn any_message_is_an_entry_or_refused(
        payload in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        key in "\\PC{0,40}",
    ) {
        crate::fuzzing::release_policy(&payload, &key);
    }

    #[test]
    fn any_expiry_text_parses_or_is_refused(text in "\\PC{0,40}") {
        let _ = crate::timestamp::parse_rfc3339(&text);
    }

    /// Times near both ends of what RFC 3339 can write, with any
    /// offset: each is refused, or its grant renders and reads back.
    #[test]
    fn any_expiry_near_the_ends_of_time_is_refused_or_rendered(
        year in proptest::sample::select(vec![1969u32, 1970, 1971, 2026, 9998, 9999]),
        month in 1u32..=12,
        day in 1u32..=28,
        hour in 0u32..24,
        minute in 0u32..60,
        offset in "Z|[+-](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9]",
    ) {
        let payload = format!(
            r#"{{"released":true,"expires_at":"{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:59.999{offset}"}}"#
        );
        crate::fuzzing::release_policy(payload.as_bytes(), "AB-1");
    }
}
