//! USB HID (keyboard-wedge) scanners end to end: the real `custodyd` binary,
//! a real Mosquitto, and a scanner that is either missing (runs anywhere) or
//! a virtual keyboard made through `/dev/uinput` (where the machine has it:
//! skipped, saying so, where it does not).

use std::time::Duration;

use crate::common::*;
use evdev::KeyCode;

const GS1_SCAN: &str = "]C10112345678901231\u{1d}10ABC";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_hid_scanner_is_down_and_retried_while_the_other_readers_work() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let serial = Pty::open();
    let mut daemon = Daemon::new();
    let missing = daemon.dir().join("usb-Datalogic_Scanner-event-kbd");
    daemon.spawn(
        gateway_config(&broker.url(), &daemon.data_dir())
            .station_with_scanner(serial.path())
            .station_with_hid_scanner(hid_scanner(&missing).reopen_max(ms(100))),
    );
    wait_reader(&sub, "station1-scan", "up").await;
    wait_reader(&sub, "station2-hid", "down").await;

    serial.write(b"ASSET-0042\r").await;
    sub.wait_for(
        |m| !transitions(m, "scanned", "ASSET-0042").is_empty(),
        PATIENCE,
    )
    .await;

    // Something that is not an input device appears at the path: the retry
    // loop finds it, says why it cannot use it, and keeps the reader down.
    std::os::unix::fs::symlink("/dev/null", &missing).unwrap();
    wait_until(PATIENCE, "the daemon to try the new device", || {
        daemon.log().contains("not an input event device")
    })
    .await;
    // Retried every 100 ms meanwhile, but each problem is logged once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = daemon.log();
    let hid_warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("station2-hid") && l.contains("cannot open reader"))
        .collect();
    assert_eq!(hid_warnings.len(), 2, "{hid_warnings:#?}");
    assert!(
        hid_warnings[0].contains("No such file"),
        "{}",
        hid_warnings[0]
    );
    let status = sub
        .messages()
        .into_iter()
        .rev()
        .find(|m| m.topic == format!("{GW}/status"))
        .unwrap()
        .json();
    assert_eq!(status["readers"]["station2-hid"]["state"], "down");
    assert_eq!(status["readers"]["station1-scan"]["state"], "up");
    assert!(daemon.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_keyboard_scans_through_the_real_device_and_survives_a_replug() {
    let mut scanner = match VirtualScanner::plug_in() {
        Ok(scanner) => scanner,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let mut daemon = Daemon::new();
    daemon.spawn(
        gateway_config(&broker.url(), &daemon.data_dir())
            .station_with_hid_scanner(hid_scanner(scanner.path()).reopen_max(ms(200))),
    );
    wait_reader(&sub, "station2-hid", "up").await;
    assert!(
        !scanner.can_grab(),
        "the daemon holds the device exclusively"
    );

    scanner.type_scan("AB/1#+", KeyCode::KEY_ENTER);
    scanner.type_scan(GS1_SCAN, KeyCode::KEY_ENTER);
    let msgs = sub.wait_for(|m| custody(m).len() == 2, PATIENCE).await;
    let events = custody(&msgs);
    assert_eq!(events[0]["asset"]["id"], "AB/1#+");
    assert_eq!(events[0]["asset"]["source"], "barcode");
    assert_eq!(events[0]["transition"], "scanned");
    assert_eq!(events[0]["reader"], "station2-hid");
    assert_eq!(events[0]["location"], "scan-station-2");
    assert_eq!(events[1]["asset"]["raw"], GS1_SCAN);

    // Unplugged: down, and no descriptor of the old device kept open.
    let old = scanner.node().display().to_string();
    scanner.unplug();
    wait_reader(&sub, "station2-hid", "down").await;
    let fds = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid())).unwrap();
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        // A removed node reads as "/dev/input/eventN (deleted)".
        let target = target.display().to_string();
        assert!(
            target != old && !target.starts_with(&format!("{old} ")),
            "the daemon still holds {target} as fd {:?}",
            fd.file_name()
        );
    }

    // Plugged back at the same path: reopened, grabbed again, scanning.
    scanner.replug().expect("replug the virtual scanner");
    wait_reader(&sub, "station2-hid", "up").await;
    assert!(!scanner.can_grab(), "grabbed again after the replug");
    scanner.type_scan("ASSET-7", KeyCode::KEY_ENTER);
    sub.wait_for(
        |m| !transitions(m, "scanned", "ASSET-7").is_empty(),
        PATIENCE,
    )
    .await;
    assert_eq!(
        daemon.log().matches("reader down").count(),
        1,
        "logged once per state change"
    );
}
