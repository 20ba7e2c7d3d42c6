use super::*;
use crate::audit::chain::{hash, hex};
use crate::audit::{checkpoint, DeviceKey};
use proptest::prelude::Just;

const GW: &str = "itad/s/g";

/// Payloads of a chain of `n` events, as the spool renders them (the
/// fields the chain needs; the rest is opaque to it).
fn chain(n: u64) -> Vec<Vec<u8>> {
    chain_of("g", n)
}

fn chain_of(gateway: &str, n: u64) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for seq in 1..=n {
        let prev = out.last().map(|p| hex(&hash(p)));
        out.push(event_of(gateway, seq, prev.as_deref()));
    }
    out
}

fn event(seq: u64, prev: Option<&str>) -> Vec<u8> {
    event_of("g", seq, prev)
}

fn event_of(gateway: &str, seq: u64, prev: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema": "custodyd.alarm.v1", "seq": seq, "prev": prev, "site": "s", "gateway": gateway,
        "location": "door", "detail": format!("event {seq}"),
    }))
    .unwrap()
}

fn capture(events: &[Vec<u8>], checkpoints: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for e in events {
        out += &format!("{GW}/alarm/door {}\n", String::from_utf8_lossy(e));
    }
    for c in checkpoints {
        out += &format!("{GW}/checkpoint {}\n", String::from_utf8_lossy(c));
    }
    out
}

fn signed(key: &DeviceKey, events: &[Vec<u8>], seq: u64) -> Vec<u8> {
    checkpoint::sign(key, "s", "g", seq, &hash(&events[seq as usize - 1]))
}

fn run(key: &DeviceKey, files: &[String]) -> Report {
    let captures: Vec<(String, Vec<u8>)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("f{i}"), f.clone().into_bytes()))
        .collect();
    verify(&captures, &key.public(), None).unwrap()
}

/// The `seq`s the problems start at.
fn named(report: &Report) -> Vec<u64> {
    let mut seqs: Vec<u64> = report
        .findings
        .problems
        .iter()
        .filter_map(|p| p.seqs.as_ref().map(|r| *r.start()))
        .collect();
    seqs.dedup();
    seqs
}

#[test]
fn an_intact_chain_with_its_checkpoint_verifies_in_any_order_and_with_redeliveries() {
    let key = DeviceKey::generate().unwrap();
    let events = chain(6);
    let cps = [signed(&key, &events, 3), signed(&key, &events, 5)];
    let mut lines: Vec<&str> = Vec::new();
    let text = capture(&events, &[]);
    lines.extend(text.lines().rev());
    lines.extend(text.lines().take(2)); // re-delivered
                                        // Checkpoints in the order they were published: a later one never signs less.
    let shuffled = lines.join("\n")
        + "\n"
        + &capture(&[], &cps)
        + "itad/s/g/status {\"state\":\"online\"}\nnoise\n";
    let report = run(&key, &[shuffled]);
    assert!(report.ok(), "{report}");
    assert_eq!(report.findings.chained, [1..=6]);
    assert_eq!(report.findings.checkpoints, [3, 5]);
    assert_eq!(report.findings.tail, Some(6..=6));
    assert_eq!(report.findings.copies, 2);
    assert!(report.to_string().contains("result      OK"), "{report}");
}

#[test]
fn an_altered_event_is_named() {
    let key = DeviceKey::generate().unwrap();
    let mut events = chain(6);
    let cp = signed(&key, &events, 6);
    events[2] = String::from_utf8(events[2].clone())
        .unwrap()
        .replace("event 3", "event X")
        .into_bytes();
    let report = run(&key, &[capture(&events, &[cp])]);
    assert_eq!(named(&report), [3], "{report}");
    assert!(!report.ok());
}

#[test]
fn a_removed_event_is_a_gap_and_a_cut_off_tail_contradicts_the_checkpoint() {
    let key = DeviceKey::generate().unwrap();
    let events = chain(6);
    let cp = signed(&key, &events, 6);
    let mut gappy = events.clone();
    gappy.remove(3);
    let report = run(&key, &[capture(&gappy, std::slice::from_ref(&cp))]);
    assert_eq!(named(&report), [4], "{report}");
    assert!(report.to_string().contains("seq 4: missing"), "{report}");

    let report = run(&key, &[capture(&events[..4], &[cp])]);
    assert_eq!(named(&report), [5], "{report}");
    assert!(
        report.to_string().contains("seq 5..=6: signed by"),
        "{report}"
    );
}

#[test]
fn an_inserted_or_reordered_event_breaks_the_chain_where_it_happened() {
    let key = DeviceKey::generate().unwrap();
    let events = chain(5);
    // Inserted at seq 3, linked to seq 2, everything after renumbered.
    let mut inserted = events[..2].to_vec();
    inserted.push(event(3, Some(&hex(&hash(&events[1])))));
    for e in &events[2..] {
        let mut v: serde_json::Value = serde_json::from_slice(e).unwrap();
        v["seq"] = (v["seq"].as_u64().unwrap() + 1).into();
        inserted.push(serde_json::to_vec(&v).unwrap());
    }
    let report = run(&key, &[capture(&inserted, &[])]);
    assert_eq!(named(&report)[0], 3, "{report}");

    // Events 3 and 4 swap places (their seqs).
    let mut swapped = events.clone();
    for (i, seq) in [(2, 4), (3, 3)] {
        let mut v: serde_json::Value = serde_json::from_slice(&events[i]).unwrap();
        v["seq"] = seq.into();
        swapped[i] = serde_json::to_vec(&v).unwrap();
    }
    let report = run(&key, &[capture(&swapped, &[])]);
    assert_eq!(named(&report), [2, 3, 4], "{report}");
}

#[test]
fn checkpoints_of_another_key_forks_and_rollbacks_fail() {
    let key = DeviceKey::generate().unwrap();
    let events = chain(4);
    let other = DeviceKey::generate().unwrap();
    let report = run(&key, &[capture(&events, &[signed(&other, &events, 4)])]);
    assert_eq!(named(&report), [4], "{report}");
    assert!(
        report.to_string().contains("no signature by key s/g"),
        "{report}"
    );

    // Another history, signed by the right key: a fork.
    let forged = chain(4)
        .into_iter()
        .map(|e| {
            String::from_utf8(e)
                .unwrap()
                .replace("event", "evt")
                .into_bytes()
        })
        .collect::<Vec<_>>();
    let fork = signed(&key, &forged, 4);
    let report = run(&key, &[capture(&events, &[signed(&key, &events, 4), fork])]);
    assert!(named(&report).contains(&4), "{report}");
    assert!(report.to_string().contains("fork"), "{report}");

    let report = run(
        &key,
        &[capture(
            &events,
            &[signed(&key, &events, 4), signed(&key, &events, 2)],
        )],
    );
    assert_eq!(named(&report), [2], "{report}");
    assert!(report.to_string().contains("rollback"), "{report}");
}

#[test]
fn a_new_chain_in_the_middle_and_unreadable_events_are_problems() {
    let key = DeviceKey::generate().unwrap();
    let mut events = chain(3);
    events.push(event(4, None));
    let mut text = capture(&events, &[]);
    text += "itad/s/g/custody/door {not json\nitad/s/g/checkpoint {}\n";
    let report = run(&key, &[text]);
    assert_eq!(named(&report), [4], "{report}");
    assert_eq!(report.findings.problems.len(), 3, "{report}");
}

#[test]
fn an_event_copied_to_another_location_topic_is_named() {
    let key = DeviceKey::generate().unwrap();
    let events = chain(3);
    let text = capture(&events, &[]).replacen("/alarm/door ", "/alarm/cage ", 2);
    let report = run(&key, &[text]);
    assert_eq!(named(&report), [1, 2], "{report}");
    assert!(
        report.to_string().contains("published for location cage"),
        "{report}"
    );
}

#[test]
fn a_status_announcing_another_key_is_a_note() {
    let key = DeviceKey::generate().unwrap();
    let other = DeviceKey::generate().unwrap();
    let status =
        |k: &DeviceKey| format!("{GW}/status {{\"device_key\":\"{}\"}}\n", k.public_base64());
    let text = status(&key) + &capture(&chain(2), &[]) + &status(&other);
    let report = run(&key, &[text]);
    assert!(report.ok(), "{report}");
    assert_eq!(report.findings.notes.len(), 1, "{report}");
    assert!(
        report.findings.notes[0].contains(&other.public_base64()),
        "{report}"
    );
}

#[test]
fn several_gateways_need_a_choice_and_a_wrong_key_is_refused() {
    let key = DeviceKey::generate().unwrap();
    let events = chain(2);
    let text = capture(&events, &[]) + &capture(&chain_of("h", 2), &[]).replace(GW, "itad/s/h");
    let captures = [("c".to_string(), text.into_bytes())];
    assert!(matches!(
        verify(&captures, &key.public(), None),
        Err(VerifyError::Gateways(_))
    ));
    let report = verify(&captures, &key.public(), Some("s/h")).unwrap();
    assert_eq!(report.gateway, "itad/s/h");
    assert!(report.ok(), "{report}");
    assert!(matches!(
        verify(&captures, &key.public(), Some("s/x")),
        Err(VerifyError::Nothing(_))
    ));
}

proptest::proptest! {
    /// No capture makes verify panic: extreme seqs, junk prevs, checkpoints
    /// with any numbers, lines cut anywhere.
    #[test]
    fn any_capture_gives_a_report_not_a_panic(
        items in proptest::collection::vec(
            (0u8..4, proptest::prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(u64::MAX - 1), 0u64..8],
             proptest::option::of("[0-9a-f]{64}|[^\"]{0,8}"), 0usize..200),
            0..24),
    ) {
        let key = DeviceKey::generate().unwrap();
        let mut text = String::new();
        for (kind, seq, prev, cut) in items {
            let line = match kind {
                0 => format!("{GW}/alarm/door {}", String::from_utf8_lossy(&event(seq, prev.as_deref()))),
                1 => format!("{GW}/checkpoint {}", String::from_utf8_lossy(
                    &checkpoint::sign(&key, "s", "g", seq, &hash(&seq.to_be_bytes())))),
                2 => format!("{GW}/checkpoint {{\"schema\":\"custodyd.checkpoint.v1\",\"seq\":{seq},\"head\":\"{}\",\"note\":\"x\\n\\n\"}}",
                    prev.unwrap_or_default()),
                _ => format!("{GW}/custody/x {{\"seq\":{seq},\"prev\":null}}"),
            };
            let cut = line.char_indices().map(|(i, _)| i).find(|i| *i >= cut).unwrap_or(line.len());
            text += &line[..cut];
            text.push('\n');
        }
        let captures = [("c".to_string(), text.into_bytes())];
        if let Ok(report) = verify(&captures, &key.public(), None) {
            let _ = report.to_string();
        }
    }
}
