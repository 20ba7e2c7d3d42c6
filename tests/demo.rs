//! `custodyd demo`, the README's first command, as a newcomer runs it: no
//! hardware, no broker, and the events of its scenes on stdout.
//!
//! The scenes take about 10 s a round (the UHF pallet's departure last):
//! the demo runs 14 s here so the first round is whole on a loaded machine.

use std::process::Command;

#[test]
fn the_demo_shows_arrivals_departures_uhf_tags_and_one_scan_per_double_fire() {
    let out = Command::new(env!("CARGO_BIN_EXE_custodyd"))
        .args(["demo", "--duration", "14s"])
        .output()
        .expect("run custodyd demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with("itad/demo-site/demo-pi/custody/"))
        .map(|l| {
            serde_json::from_str(l.split_once(' ').expect("topic and payload").1)
                .expect("JSON payload")
        })
        .collect();
    let count = |transition: &str, id: &str| {
        events
            .iter()
            .filter(|e| e["transition"] == transition && e["asset"]["id"] == id)
            .count()
    };
    // The scenes loop: compare with how often each was played (narrated).
    let played = |scene: &str| {
        stdout
            .lines()
            .filter(|l| l.starts_with("demo: ") && l.contains(scene))
            .count()
    };
    let (held, pallets, scans) = (
        played("is held"),
        played("UHF portal"),
        played("double-fires"),
    );
    assert!(held >= 1 && pallets >= 1 && scans >= 1, "{stdout}");
    let arrived = count("arrived", "62E3086CED");
    assert!(
        (1..=held).contains(&arrived),
        "one arrival per hold, not per frame: {stdout}"
    );
    assert!(count("departed", "62E3086CED") >= 1, "{stdout}");
    assert_eq!(
        count("arrived", "0F00AB12CD"),
        0,
        "the corrupted frame is dropped: {stdout}"
    );
    // The portal's laptops arrive by their EPC URIs, one arrival per pass
    // though both antennas and many rounds read them.
    for uri in [
        "urn:epc:id:giai:0614141.12345400",
        "urn:epc:id:sgtin:0614141.812345.6789",
    ] {
        let arrived: Vec<_> = events
            .iter()
            .filter(|e| e["transition"] == "arrived" && e["asset"]["id"] == uri)
            .collect();
        assert!(
            (1..=pallets).contains(&arrived.len()),
            "{uri} arrives once per pass: {stdout}"
        );
        assert_eq!(arrived[0]["reader"], "door1-uhf");
        assert_eq!(arrived[0]["asset"]["source"], "rfid");
        assert!(arrived[0]["rssi_max"].is_number(), "{stdout}");
    }
    let scanned = count("scanned", "AB/1#+");
    assert!(
        (1..=scans).contains(&scanned),
        "a double fire is one scan: {stdout}"
    );
    assert!(
        stdout.contains(r#""state":"offline""#),
        "offline status at the end: {stdout}"
    );
}
