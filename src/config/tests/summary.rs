//! The summary and secrecy.

use super::*;

#[test]
fn summary_shows_the_topics_and_never_the_password() {
    let toml = with(
        "[mqtt]\nurl = \"mqtts://broker.lan\"\nusername = \"custodyd\"\npassword = \"hunter2\"",
    );
    let config = ok(&toml);
    let summary = config.summary();
    for expected in [
        "reno-1",
        "dock-pi-03",
        "broker.lan:8883 (TLS, system CAs)",
        "itad/reno-1/dock-pi-03/status",
        "itad/reno-1/dock-pi-03/custody/+",
        "door1",
        "dock_door",
        "between yard (outside) and receiving (inside)",
        "door1-em",
        "em4100",
        "presence",
        "/dev/ttyUSB0",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} missing:\n{summary}"
        );
    }
    assert!(!summary.contains("hunter2"), "{summary}");
    assert!(!format!("{config:?}").contains("hunter2"));
}
