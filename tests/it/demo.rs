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
        played("a pallet of 3 laptops comes to"),
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
    // The dock door's laptops arrive by their EPC URIs, one arrival per
    // pass though both antennas and many rounds read them.
    for uri in [
        "urn:epc:id:sgtin:0614141.812345.6789",
        "urn:epc:id:sgtin:0614141.812345.6791",
    ] {
        let arrived: Vec<_> = events
            .iter()
            .filter(|e| e["transition"] == "arrived" && e["asset"]["id"] == uri)
            .collect();
        assert!(
            (1..=pallets).contains(&arrived.len()),
            "{uri} arrives once per pass: {stdout}"
        );
        assert_eq!(arrived[0]["reader"], "door2-uhf");
        assert_eq!(arrived[0]["asset"]["source"], "rfid");
        assert!(arrived[0]["rssi_max"].is_number(), "{stdout}");
    }
    let scanned = count("scanned", "AB/1#+");
    assert!(
        (1..=scans).contains(&scanned),
        "a double fire is one scan: {stdout}"
    );
    station_scene(&stdout);
    pickup_scene(&stdout, played("central closes pickup") >= 1);
    // The cage gate: the laptop central has not released is refused, the
    // one it has is let out (when the demo ran long enough to get to it).
    assert!(played("central says not released") >= 1, "{stdout}");
    assert!(
        stdout.contains(r#""kind":"release_denied""#) && stdout.contains("gpio: cage-1 red on"),
        "{stdout}"
    );
    if played("released (expect the lock open") >= 1 {
        assert!(stdout.contains("gpio: cage-1 lock OPEN"), "{stdout}");
    }
    // The dock door's read window: three laptops moved in as one pass.
    if played("the pallet is in receiving") >= 1 {
        let pass = stdout
            .lines()
            .find_map(|l| l.strip_prefix("itad/demo-site/demo-pi/pass/dock-door-2 "))
            .map(|p| serde_json::from_str::<serde_json::Value>(p).expect("JSON payload"));
        if let Some(pass) = pass {
            assert_eq!(pass["counts"]["moved"], 3, "{pass}");
            let moved = events
                .iter()
                .filter(|e| e["transition"] == "moved" && e["pass_id"] == pass["pass_id"])
                .count();
            assert_eq!(moved, 3, "{stdout}");
        }
    }
    assert!(
        stdout.contains(r#""state":"offline""#),
        "offline status at the end: {stdout}"
    );
    verify_as_printed(&stdout);
}

/// The demo says how to check its own custody log; done as it says, its
/// output verifies.
fn verify_as_printed(stdout: &str) {
    let command = stdout
        .lines()
        .find_map(|l| l.split_once("and run: custodyd verify --key "))
        .expect("the demo prints the verify command")
        .1;
    let key = command.split_whitespace().next().expect("the key");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.txt");
    std::fs::write(&file, stdout).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_custodyd"))
        .args(["verify", "--key", key])
        .arg(&file)
        .output()
        .expect("run custodyd verify");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("result      OK"), "{report}");
}

/// The operator at the scan station: signed in by badge, never custody
/// herself, and on every laptop she wiped.
fn station_scene(stdout: &str) {
    let events = |kind: &str| -> Vec<serde_json::Value> {
        let prefix = format!("itad/demo-site/demo-pi/{kind}/scan-station-1 ");
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|payload| serde_json::from_str(payload).expect("JSON payload"))
            .collect()
    };
    let contexts = events("context");
    assert!(
        contexts
            .iter()
            .any(|e| e["change"] == "signed_in" && e["operator"] == "op-ann"),
        "{stdout}"
    );
    let wiped: Vec<_> = events("custody")
        .into_iter()
        .filter(|e| e["asset"]["id"] == "urn:epc:id:giai:0614141.LT0001")
        .collect();
    assert!(!wiped.is_empty(), "{stdout}");
    for e in &wiped {
        assert_eq!(
            (&e["operator"], &e["action"], &e["container"]),
            (&"op-ann".into(), &"wiped".into(), &"GAY-0042".into()),
            "{e}"
        );
    }
    assert!(
        !stdout.contains(r#""id":"0C00F1A2B3""#),
        "a badge became an asset: {stdout}"
    );
}

/// The pickup at dock-door-2: the pallet's pass summary reconciled with the
/// fourth laptop missing, and an alarm once central has closed it.
fn pickup_scene(stdout: &str, closed: bool) {
    let passes: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("itad/demo-site/demo-pi/pass/dock-door-2 "))
        .map(|payload| serde_json::from_str(payload).expect("JSON payload"))
        .collect();
    let first = passes
        .first()
        .unwrap_or_else(|| panic!("no pass: {stdout}"));
    let manifest = &first["manifest"];
    assert_eq!(manifest["pickup_id"], "PU-DEMO-0001", "{first}");
    assert_eq!(manifest["received"].as_array().unwrap().len(), 3, "{first}");
    assert_eq!(
        manifest["missing"],
        serde_json::json!(["urn:epc:id:sgtin:0614141.812345.6792"]),
        "{first}"
    );
    if closed {
        assert!(stdout.contains(r#""kind":"manifest_mismatch""#), "{stdout}");
    }
}
