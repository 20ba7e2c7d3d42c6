//! UHF and HID readers, and their lines in the summary.

use super::*;
use crate::decode::ChafonVariant;

#[test]
fn the_summary_lists_the_topics_the_gateway_uses() {
    let summary = ok(BASE).summary();
    for line in ["alarm    ", "health   ", "checkpoint ", "commands "] {
        assert!(summary.contains(line), "{line}: {summary}");
    }
    for line in ["pass     ", "release  ", "manifest "] {
        assert!(!summary.contains(line), "{line}: {summary}");
    }
}

#[test]
fn the_summary_gives_a_hid_scanner_no_baud_rate() {
    let summary = ok(&with_hid("")).summary();
    assert!(
        summary.contains("/dev/input/by-id/usb-Honeywell_1900-event-kbd\n"),
        "{summary}"
    );
}

#[test]
fn uhf_readers_take_protocol_defaults() {
    let config = ok(&uhf("uhf-a0", ""));
    let a0 = &config.readers[1];
    assert_eq!(a0.baud(), 115_200);
    assert_eq!(a0.mode(), ReadMode::Presence);
    assert_eq!(a0.antennas(), [1]);
    assert_eq!(a0.address(), 0xFF);
    assert_eq!(a0.reply_timeout(), Duration::from_secs(1));
    assert_eq!((a0.session, a0.target), (None, None));
    let config = ok(&uhf("chafon", ""));
    let chafon = &config.readers[1];
    assert_eq!(chafon.baud(), 57_600);
    assert_eq!(chafon.chafon_variant(), ChafonVariant::Reader288);
    assert_eq!(config.readers[0].baud(), 9600);
    let config = ok(&uhf(
        "chafon",
        "baud = 115200\nantennas = [4, 1]\naddress = 0\nsession = 2\ntarget = \"B\"\n\
         reply_timeout = \"300ms\"\nchafon_variant = \"288\"",
    ));
    let chafon = &config.readers[1];
    assert_eq!((chafon.baud(), chafon.antennas()), (115_200, &[4, 1][..]));
    assert_eq!((chafon.address(), chafon.session), (0, Some(2)));
    assert_eq!(chafon.target, Some(Target::B));
    assert_eq!(chafon.reply_timeout(), Duration::from_millis(300));
    let summary = config.summary();
    assert!(
        summary.contains("/dev/ttyUSB0, 9600 baud\n")
            && summary.contains("/dev/ttyUSB1, 115200 baud, antennas [4, 1]"),
        "{summary}"
    );
    assert_eq!(
        ok(&uhf("chafon", "chafon_variant = \"18\"")).readers[1].chafon_variant(),
        ChafonVariant::Reader18
    );
}

#[test]
fn uhf_keys_are_errors_on_other_protocols() {
    for key in [
        "antennas = [1]",
        "address = 1",
        "session = 1",
        "target = \"A\"",
        "reply_timeout = \"1s\"",
        "chafon_variant = \"288\"",
    ] {
        let name = key.split_once(' ').unwrap().0;
        let message = assert_error(&with(key), &format!("readers[0] (door1-em).{name}"));
        assert!(message.contains("only applies to"), "{message}");
    }
    assert_error(
        &uhf("uhf-a0", "chafon_variant = \"18\""),
        "readers[1] (uhf1).chafon_variant",
    );
}

#[test]
fn uhf_values_are_checked() {
    let at = |field: &str| format!("readers[1] (uhf1).{field}");
    ok(&uhf("uhf-a0", "antennas = [1, 2, 3, 4, 5, 6, 7, 8]"));
    for bad in ["[]", "[0]", "[9]", "[1, 1]"] {
        assert_error(
            &uhf("uhf-a0", &format!("antennas = {bad}")),
            &at("antennas"),
        );
    }
    assert_error(&uhf("chafon", "antennas = [5]"), &at("antennas"));
    assert_error(&uhf("uhf-a0", "session = 4"), &at("session"));
    assert_error(
        &uhf("uhf-a0", "reply_timeout = \"0s\""),
        &at("reply_timeout"),
    );
    assert_error(&uhf("uhf-a0", "target = \"C\""), &at("target"));
    assert_error(
        &uhf("chafon", "chafon_variant = \"86\""),
        &at("chafon_variant"),
    );
    let reader18 = "chafon_variant = \"18\"\n";
    for extra in ["antennas = [2]", "session = 1", "target = \"B\""] {
        let name = extra.split_once(' ').unwrap().0;
        assert_error(&uhf("chafon", &format!("{reader18}{extra}")), &at(name));
    }
}

#[test]
fn hid_readers_take_the_documented_defaults() {
    let config = ok(&with_hid(""));
    let hid = &config.readers[1];
    assert_eq!(hid.kind, ReaderKind::Hid);
    assert_eq!(hid.protocol, None);
    assert_eq!(hid.mode(), ReadMode::Scan);
    assert_eq!(hid.end_on(), EndOn::Enter);
    assert_eq!(hid.gs_substitute(), "\u{1d}");
    assert_eq!(hid.scan_timeout(), Duration::from_millis(500));
    assert_eq!(hid.max_len, 128);
    assert_eq!(hid.input_name(), "hid");

    let config = ok(&with_hid(
        "end_on = \"enter_or_tab\"\ngs_substitute = \"|\"\nscan_timeout = \"1s\"\nmode = \"presence\"",
    ));
    let hid = &config.readers[1];
    assert_eq!(hid.end_on(), EndOn::EnterOrTab);
    assert_eq!(hid.gs_substitute(), "|");
    assert_eq!(hid.scan_timeout(), Duration::from_secs(1));
    assert_eq!(hid.mode(), ReadMode::Presence);
}

#[test]
fn serial_keys_are_errors_on_hid_readers_and_say_what_to_use() {
    let errs = errors(&with_hid(
        "protocol = \"ascii-line\"\nbaud = 9600\nterminator = \"cr\"\nprefix = \"x\"",
    ));
    let label = "readers[1] (scan1-hid)";
    let message = error_at(&errs, &format!("{label}.protocol"));
    assert!(message.contains("kind = \"hid\""), "{message}");
    error_at(&errs, &format!("{label}.baud"));
    let message = error_at(&errs, &format!("{label}.terminator"));
    assert!(message.contains("end_on"), "{message}");
    // prefix only applies to ascii-line, which a HID reader is not.
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn hid_keys_are_errors_on_serial_readers() {
    let errs = errors(&with(
        "end_on = \"tab\"\ngs_substitute = \"|\"\nscan_timeout = \"1s\"",
    ));
    for key in ["end_on", "gs_substitute", "scan_timeout"] {
        let message = error_at(&errs, &format!("readers[0] (door1-em).{key}"));
        assert!(message.contains("kind = \"hid\""), "{message}");
    }
}

#[test]
fn serial_readers_need_a_protocol() {
    let message = assert_error(
        &BASE.replace("protocol = \"em4100\"\n", ""),
        "readers[0] (door1-em).protocol",
    );
    assert!(
        message.contains("em4100") && message.contains("hid"),
        "{message}"
    );
    // `kind = "serial"` is the default, and may be spelled out.
    ok(&with("kind = \"serial\""));
}

#[test]
fn hid_values_are_checked() {
    let label = "readers[1] (scan1-hid)";
    assert_error(
        &with_hid("scan_timeout = \"0s\""),
        &format!("{label}.scan_timeout"),
    );
    assert_error(
        &with_hid("gs_substitute = \"\""),
        &format!("{label}.gs_substitute"),
    );
    assert_error(&with_hid("max_len = 0"), &format!("{label}.max_len"));
    let message = assert_error(&with_hid("end_on = \"cr\""), &format!("{label}.end_on"));
    assert!(message.contains("enter_or_tab"), "{message}");
    let toml = with_hid("").replace("\"hid\"", "\"usb\"");
    let message = assert_error(&toml, &format!("{label}.kind"));
    assert!(message.contains("serial, hid"), "{message}");
}

#[test]
fn each_protocol_is_read_by_the_loop_made_for_it() {
    use super::{ProtocolKind as K, StreamingProtocol as S, UhfProtocol as U};
    for (protocol, kind) in [
        (Protocol::Em4100, K::Streaming(S::Em4100)),
        (Protocol::AsciiLine, K::Streaming(S::AsciiLine)),
        (Protocol::UhfA0, K::CommandReply(U::A0)),
        (Protocol::Chafon, K::CommandReply(U::Chafon)),
    ] {
        assert_eq!(protocol.kind(), kind, "{}", protocol.as_str());
        assert_eq!(protocol.is_uhf(), matches!(kind, K::CommandReply(_)));
    }
}
