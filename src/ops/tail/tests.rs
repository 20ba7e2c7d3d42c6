//! The line format, on payloads as the daemon publishes them (CONTRACT.md,
//! docs/contract.md) and on what else may appear under the same topics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const GW: &str = "itad/reno-1/dock-pi-03";

/// UTC+1, as a warehouse in Central Europe in November.
fn plus_one(_: i64) -> i64 {
    3600
}

const STYLE: Style = Style {
    show_gateway: false,
    utc_offset: plus_one,
};

/// 2026-11-22T09:20:00Z.
fn received() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_339_200)
}

fn render(topic: &str, payload: &str) -> String {
    line(topic, payload.as_bytes(), received(), &STYLE)
}

const DEPARTED: &str = r#"{"schema":"custodyd.custody.v1","event_id":"01JDZ4Q8M2W4H3V6X5R7K9T0AB","seq":42,
 "site":"reno-1","gateway":"dock-pi-03","location":"dock-door-1",
 "observed_at":"2026-11-22T09:14:03.120Z","clock_synced":true,
 "transition":"departed","from_zone":null,"to_zone":null,
 "asset":{"id":"62E3086CED","raw":"62E3086CED","source":"rfid"},
 "reader":"door1-em","reads":30,
 "first_seen":"2026-11-22T09:13:55.020Z","last_seen":"2026-11-22T09:13:58.120Z",
 "antennas":[],"rssi_max":null}"#;

#[test]
fn a_custody_event_shows_time_location_transition_asset_reader() {
    assert_eq!(
        render(&format!("{GW}/custody/dock-door-1"), DEPARTED),
        "2026-11-22 10:14:03  dock-door-1       departed  62E3086CED  reader door1-em"
    );
}

#[test]
fn a_move_shows_its_zones_and_an_unsynced_clock_is_flagged() {
    let moved = DEPARTED
        .replace(r#""transition":"departed""#, r#""transition":"moved""#)
        .replace(r#""from_zone":null"#, r#""from_zone":"yard""#)
        .replace(r#""to_zone":null"#, r#""to_zone":"cage-a""#)
        .replace(r#""clock_synced":true"#, r#""clock_synced":false"#);
    assert_eq!(
        render(&format!("{GW}/custody/dock-door-1"), &moved),
        "2026-11-22 10:14:03  dock-door-1       moved     62E3086CED  yard -> cage-a  \
         reader door1-em  (gateway clock not synchronised)"
    );
}

#[test]
fn alarms_show_their_kind_asset_and_detail() {
    let offline = r#"{"schema":"custodyd.alarm.v1","event_id":"01JDZ4Q8M2W4H3V6X5R7K9T0AC",
        "seq":43,"site":"reno-1","gateway":"dock-pi-03","location":"dock-door-1",
        "observed_at":"2026-11-22T09:15:00.000Z","clock_synced":true,
        "kind":"reader_offline","asset":null,
        "detail":"reader door1-em has been down for 30s."}"#;
    assert_eq!(
        render(&format!("{GW}/alarm/dock-door-1"), offline),
        "2026-11-22 10:15:00  dock-door-1       ALARM     reader_offline: \
         reader door1-em has been down for 30s."
    );
    let invalid = offline.replace("reader_offline", "invalid_scan").replace(
        r#""asset":null"#,
        r#""asset":{"id":"(01)12345678901231","raw":"]C10112345678901231","source":"barcode"}"#,
    );
    assert!(
        render(&format!("{GW}/alarm/dock-door-1"), &invalid)
            .contains("ALARM     invalid_scan (01)12345678901231: reader"),
        "{}",
        render(&format!("{GW}/alarm/dock-door-1"), &invalid)
    );
}

#[test]
fn status_is_summarised_at_the_time_it_arrived() {
    let online = r#"{"schema":"custodyd.status.v1","state":"online","version":"0.1.0",
        "started_at":"2026-11-22T08:00:00.000Z",
        "readers":{"door1-em":{"state":"up"},"dock-uhf":{"state":"up","failing_antennas":[2]},
                   "station1-scan":{"state":"down"}},
        "spool":{"dropped":0}}"#;
    assert_eq!(
        render(&format!("{GW}/status"), online),
        "2026-11-22 10:20:00  dock-pi-03        status    online, readers dock-uhf up \
         (failing antennas 2), door1-em up, station1-scan down"
    );
    let will = r#"{"schema":"custodyd.status.v1","state":"offline"}"#;
    assert_eq!(
        render(&format!("{GW}/status"), will),
        "2026-11-22 10:20:00  dock-pi-03        status    offline"
    );
    let dropped = online.replace(r#""dropped":0"#, r#""dropped":7"#);
    assert!(render(&format!("{GW}/status"), &dropped).ends_with(", spool dropped 7"));
}

#[test]
fn health_and_unknown_schemas_are_flattened_to_key_values() {
    let health = r#"{"schema":"custodyd.health.v1","readers":{"door1-em":{"state":"up"}},
        "spool":{"depth":3,"bytes":1590},"mqtt":{"connected":true,"reconnects":1}}"#;
    assert_eq!(
        render(&format!("{GW}/health"), health),
        "2026-11-22 10:20:00  dock-pi-03        health    readers door1-em up  \
         mqtt.connected=true mqtt.reconnects=1 spool.bytes=1590 spool.depth=3"
    );
    // As src/command.rs replies.
    let reply = r#"{"schema":"custodyd.cmd-reply.v1","id":"r-17","command":"ping","ok":true,
        "result":{"version":"0.1.0"}}"#;
    assert_eq!(
        render(&format!("{GW}/cmd-reply/ping"), reply),
        "2026-11-22 10:20:00  dock-pi-03        cmd-reply ping  command=ping id=r-17 ok=true \
         result.version=0.1.0"
    );
}

#[test]
fn raw_payloads_cannot_drive_the_terminal() {
    // A clear-screen, a cursor move, a bell, a carriage return, a bidi
    // override and bytes that are not UTF-8.
    let mut evil = b"\x1b[2J\x1b[H\x07ok\rfake line \xe2\x80\xae".to_vec();
    evil.extend_from_slice(&[0xff, 0xfe, b'\n']);
    let shown = line(&format!("{GW}/context/x"), &evil, received(), &STYLE);
    assert!(
        shown.chars().all(|c| !c.is_control() && c != '\u{202e}'),
        "{shown:?}"
    );
    assert!(shown.contains(r"\u{1b}[2J"), "{shown}");
    assert!(shown.contains(r"\u{202e}"), "{shown}");

    // The same inside the fields of a well-formed event.
    let sneaky = DEPARTED.replace(r#""id":"62E3086CED""#, r#""id":"A\u001b]0;pwned\u0007B""#);
    let shown = render(&format!("{GW}/custody/dock-door-1"), &sneaky);
    assert!(shown.chars().all(|c| !c.is_control()), "{shown:?}");
    assert!(shown.contains(r"A\u{1b}]0;pwned\u{7}B"), "{shown}");
}

#[test]
fn long_payloads_are_cut() {
    let long = "x".repeat(5000);
    let shown = render(&format!("{GW}/pass/dock-door-1"), &long);
    assert!(shown.len() < 400 && shown.ends_with('…'), "{shown}");
}

#[test]
fn several_gateways_are_told_apart() {
    let style = Style {
        show_gateway: true,
        utc_offset: |_| 0,
    };
    let shown = line(
        &format!("{GW}/custody/dock-door-1"),
        DEPARTED.as_bytes(),
        received(),
        &style,
    );
    assert!(
        shown.starts_with("2026-11-22 09:14:03  dock-pi-03/dock-door-1  departed"),
        "{shown}"
    );
}

#[test]
fn location_filter_reads_the_payload() {
    assert_eq!(location_of(DEPARTED.as_bytes()), "dock-door-1");
    assert_eq!(location_of(b"not json"), "");
}
