//! The test site's configuration (built with `custodyd::config::builder`),
//! topic names and frames shared by the tests, so each test states only what
//! is particular to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use custodyd::config::builder::{
    duration, ConfigBuilder, Gate, InputPin, Keys, Location, Mqtt, Reader, Window,
};
pub use custodyd::config::{
    ActiveLevel, ByteSize, Protocol, Pull, ReadMode, Side, Terminator, UnknownAsset,
};

use super::{publish, Daemon, Kind, Message, Mosquitto, Pty, ReaderSim, Subscriber, PATIENCE};

/// Topic prefix of the gateway that [`gateway_config`] configures.
pub const GW: &str = "itad/test-site/gw-1";

/// The test gateway on the broker at `url`, with fast reconnects so outages
/// end quickly.
pub fn gateway_config(url: &str, data_dir: &Path) -> ConfigBuilder {
    let mqtt = Mqtt::new(url)
        .keep_alive(Duration::from_secs(2))
        .reconnect(Duration::from_millis(50), Duration::from_millis(500));
    ConfigBuilder::new("test-site", "gw-1", data_dir).mqtt(mqtt)
}

/// `dock-door-1`, a door from the yard to receiving.
pub fn dock_door(departure_timeout: Duration) -> Location {
    Location::dock_door("dock-door-1", "yard", "receiving").departure_timeout(departure_timeout)
}

/// `door1-em`, an EM4100 reader at `dock-door-1` on `path`.
pub fn door_em4100(path: &Path) -> Reader {
    Reader::serial("door1-em", "dock-door-1", path, Protocol::Em4100)
}

/// `door1-uhf`, a UHF reader at `dock-door-1` on `path`.
pub fn door_uhf(path: &Path, protocol: Protocol) -> Reader {
    Reader::serial("door1-uhf", "dock-door-1", path, protocol)
}

/// `station2-hid`, a USB keyboard-wedge scanner at `scan-station-2` on `path`.
pub fn hid_scanner(path: &Path) -> Reader {
    Reader::hid("station2-hid", "scan-station-2", path)
}

/// The commonest rig: a broker, a subscriber to everything under `itad/`,
/// and the test gateway with one EM4100 reader at `dock-door-1`, returned
/// once the reader is up.
pub struct EmDoor {
    pub broker: Mosquitto,
    pub sub: Subscriber,
    pub door: Pty,
    pub daemon: Daemon,
}

impl EmDoor {
    pub async fn start(departure_timeout: Duration) -> EmDoor {
        let broker = Mosquitto::start().await;
        let sub = Subscriber::connect(&broker.url(), "itad/#").await;
        let door = Pty::open();
        let mut daemon = Daemon::new();
        daemon.spawn(
            gateway_config(&broker.url(), &daemon.data_dir())
                .door_with_em4100(door.path(), departure_timeout),
        );
        wait_reader(&sub, "door1-em", "up").await;
        EmDoor {
            broker,
            sub,
            door,
            daemon,
        }
    }
}

/// The shapes most tests are made of, added to a configuration.
pub trait TestSite: Sized {
    /// `dock-door-1` with [`door_em4100`] on `path`.
    fn door_with_em4100(self, path: &Path, departure_timeout: Duration) -> Self;
    /// `scan-station-1` with `station1-scan`, a line-oriented barcode
    /// scanner on `path`.
    fn station_with_scanner(self, path: &Path) -> Self;
    /// `scan-station-2` with `scanner` ([`hid_scanner`] and its keys).
    fn station_with_hid_scanner(self, scanner: Reader) -> Self;
    /// `[gpio]` on the simulator at `socket`, with a short debounce.
    fn sim_gpio(self, socket: &Path) -> Self;
}

impl TestSite for ConfigBuilder {
    fn door_with_em4100(self, path: &Path, departure_timeout: Duration) -> Self {
        self.location(dock_door(departure_timeout))
            .reader(door_em4100(path))
    }

    fn station_with_scanner(self, path: &Path) -> Self {
        self.location(Location::scan_station("scan-station-1"))
            .reader(station_scanner(path))
    }

    fn station_with_hid_scanner(self, scanner: Reader) -> Self {
        self.location(Location::scan_station("scan-station-2"))
            .reader(scanner)
    }

    fn sim_gpio(self, socket: &Path) -> Self {
        self.gpio_sim(socket)
            .gpio_debounce(Duration::from_millis(10))
    }
}

/// `station1-scan`, the line scanner of [`TestSite::station_with_scanner`].
pub fn station_scanner(path: &Path) -> Reader {
    Reader::serial("station1-scan", "scan-station-1", path, Protocol::AsciiLine)
        .mode(ReadMode::Scan)
        .terminator(Terminator::Cr)
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
    pub broker: Mosquitto,
    pub sub: Subscriber,
    pub sim: ReaderSim,
    pub daemon: Daemon,
    /// The reader's device.
    pub path: PathBuf,
}

impl UhfDoor {
    /// `config` builds the configuration, given the broker's URL, the
    /// daemon (for its directories) and the reader's path.
    pub async fn start(
        kind: Kind,
        config: impl FnOnce(&str, &Daemon, &Path) -> ConfigBuilder,
    ) -> Self {
        let broker = Mosquitto::start().await;
        let sub = Subscriber::connect(&broker.url(), "itad/#").await;
        let pty = Arc::new(Pty::open());
        let sim = ReaderSim::start_recording(kind, pty.clone());
        let mut daemon = Daemon::new();
        daemon.spawn(config(&broker.url(), &daemon, pty.path()));
        wait_reader(&sub, "door1-uhf", "up").await;
        UhfDoor {
            broker,
            sub,
            sim,
            daemon,
            path: pty.path().to_path_buf(),
        }
    }
}
