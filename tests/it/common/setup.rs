//! Configuration snippets, topic names and frames shared by the tests, so
//! each test states only what is particular to it.

use std::path::Path;
use std::sync::Arc;

use super::{publish, Daemon, Kind, Message, Mosquitto, Pty, ReaderSim, Subscriber, PATIENCE};

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

/// `events` with each `event_id` once: what a crash re-delivered (at
/// least once) counted as the one event it is.
pub fn once_each(mut events: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let mut seen = std::collections::HashSet::new();
    events.retain(|e| seen.insert(e["event_id"].to_string()));
    events
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
    sub.wait_for(
        |msgs| latest_status(msgs).is_some_and(|s| cond(&s["readers"][reader])),
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

/// The latest status document among `msgs`.
pub fn latest_status(msgs: &[Message]) -> Option<serde_json::Value> {
    let topic = format!("{GW}/status");
    msgs.iter()
        .rev()
        .find(|m| m.topic == topic)
        .map(Message::json)
}

/// Waits until `asset` has departed and no more custody comes for half a
/// second; checks it arrived and departed once. Returns every message and
/// the `departed` event.
pub async fn one_visit(sub: &Subscriber, asset: &str) -> (Vec<Message>, serde_json::Value) {
    sub.wait_for(|m| !transitions(m, "departed", asset).is_empty(), PATIENCE)
        .await;
    sub.assert_quiet_for(std::time::Duration::from_millis(500), |m| {
        m.topic.contains("/custody/")
    })
    .await;
    let msgs = sub.messages();
    let arrived = transitions(&msgs, "arrived", asset);
    let mut departed = transitions(&msgs, "departed", asset);
    assert_eq!(
        (arrived.len(), departed.len()),
        (1, 1),
        "{:#?}",
        custody(&msgs)
    );
    (msgs, departed.remove(0))
}

/// Sends `body` to the gateway's `cmd/{command}` and returns the reply
/// that carries `id` (`sub` must be subscribed to the replies).
pub async fn ask(
    broker: &Mosquitto,
    sub: &Subscriber,
    command: &str,
    body: &str,
    id: &str,
) -> serde_json::Value {
    publish(&broker.url(), &format!("{GW}/cmd/{command}"), body, false).await;
    let topic = format!("{GW}/cmd-reply/{command}");
    let is_reply = |m: &Message| m.topic == topic && m.json()["id"] == id;
    sub.wait_for(|msgs| msgs.iter().any(is_reply), PATIENCE)
        .await;
    sub.messages().into_iter().find(is_reply).unwrap().json()
}

/// A door whose UHF reader `door1-uhf` is a simulated one (recording the
/// commands it gets), read by the daemon, with the reader up.
pub struct UhfDoor {
    pub _broker: Mosquitto,
    pub sub: Subscriber,
    pub sim: ReaderSim,
    pub daemon: Daemon,
    /// The configuration file's text.
    pub config: String,
}

impl UhfDoor {
    /// `config` writes the configuration file's text, given the broker's
    /// URL, the daemon (for its directories) and the reader's path.
    pub async fn start(kind: Kind, config: impl FnOnce(&str, &Daemon, &Path) -> String) -> Self {
        let broker = Mosquitto::start().await;
        let sub = Subscriber::connect(&broker.url(), "itad/#").await;
        let pty = Arc::new(Pty::open());
        let sim = ReaderSim::start_recording(kind, pty.clone());
        let mut daemon = Daemon::new();
        let config = config(&broker.url(), &daemon, pty.path());
        daemon.spawn(&config);
        wait_reader(&sub, "door1-uhf", "up").await;
        UhfDoor {
            _broker: broker,
            sub,
            sim,
            daemon,
            config,
        }
    }
}
