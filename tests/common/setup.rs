//! Configuration snippets, topic names and frames shared by the tests, so
//! each test states only what is particular to it.

use std::path::Path;

use super::{Message, Subscriber, PATIENCE};

/// Topic prefix of the gateway that [`gateway_config`] configures.
pub const GW: &str = "itad/test-site/gw-1";

/// `[gateway]` and `[mqtt]` with fast reconnects, so outages end quickly.
pub fn gateway_config(url: &str, data_dir: &Path) -> String {
    format!(
        r#"
[gateway]
site = "test-site"
name = "gw-1"
data_dir = "{}"

[mqtt]
url = "{url}"
keep_alive = "2s"
reconnect_min = "50ms"
reconnect_max = "500ms"
"#,
        data_dir.display()
    )
}

/// `dock-door-1`, a door from the yard to receiving; `extra` adds keys.
pub fn dock_door(departure_timeout: &str, extra: &str) -> String {
    format!(
        r#"
[[locations]]
name = "dock-door-1"
kind = "dock_door"
outside_zone = "yard"
inside_zone = "receiving"
departure_timeout = "{departure_timeout}"
{extra}
"#
    )
}

/// A dock door with an EM4100 reader on `path`.
pub fn door_with_em4100(path: &Path, departure_timeout: &str) -> String {
    dock_door(departure_timeout, "")
        + &format!(
            r#"
[[readers]]
name = "door1-em"
location = "dock-door-1"
path = "{}"
protocol = "em4100"
"#,
            path.display()
        )
}

/// A scan station with a line-oriented barcode scanner on `path`.
pub fn station_with_scanner(path: &Path) -> String {
    format!(
        r#"
[[locations]]
name = "scan-station-1"
kind = "scan_station"

[[readers]]
name = "station1-scan"
location = "scan-station-1"
path = "{}"
protocol = "ascii-line"
mode = "scan"
terminator = "cr"
"#,
        path.display()
    )
}

/// A scan station with a USB keyboard-wedge scanner on `path`; `extra` adds
/// keys to the reader (`reopen_max = "200ms"`, ...).
pub fn station_with_hid_scanner(path: &Path, extra: &str) -> String {
    format!(
        r#"
[[locations]]
name = "scan-station-2"
kind = "scan_station"

[[readers]]
name = "station2-hid"
location = "scan-station-2"
kind = "hid"
path = "{}"
{extra}
"#,
        path.display()
    )
}

pub use custodyd::demo::em4100_frame;

/// Custody events among `msgs`, as JSON.
pub fn custody(msgs: &[Message]) -> Vec<serde_json::Value> {
    msgs.iter()
        .filter(|m| m.topic.starts_with(&format!("{GW}/custody/")))
        .map(|m| m.json())
        .collect()
}

/// Custody events of one transition for one asset id.
pub fn transitions(msgs: &[Message], transition: &str, asset: &str) -> Vec<serde_json::Value> {
    custody(msgs)
        .into_iter()
        .filter(|e| e["transition"] == transition && e["asset"]["id"] == asset)
        .collect()
}

/// Waits until the latest status message has `reader` in `state`.
pub async fn wait_reader(sub: &Subscriber, reader: &str, state: &str) {
    wait_reader_status(sub, reader, |r| r["state"] == state).await;
}

/// Waits until `reader`'s entry in the latest status message satisfies
/// `cond`.
pub async fn wait_reader_status(
    sub: &Subscriber,
    reader: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) {
    let topic = format!("{GW}/status");
    sub.wait_for(
        |msgs| {
            msgs.iter()
                .rev()
                .find(|m| m.topic == topic)
                .is_some_and(|m| cond(&m.json()["readers"][reader]))
        },
        PATIENCE,
    )
    .await;
}

/// Waits for the `n`th (1-based) pass summary of `location`; returns it and
/// every message so far.
pub async fn pass_summary(
    sub: &Subscriber,
    location: &str,
    n: usize,
) -> (serde_json::Value, Vec<Message>) {
    let topic = format!("{GW}/pass/{location}");
    let msgs = sub
        .wait_for(
            |m| m.iter().filter(|m| m.topic == topic).count() >= n,
            PATIENCE,
        )
        .await;
    let pass = msgs.iter().filter(|m| m.topic == topic).nth(n - 1);
    (pass.expect("counted").json(), msgs)
}
