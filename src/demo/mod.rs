//! `custodyd demo`: the whole pipeline with no hardware and no setup.
//!
//! Simulated readers on pseudo-terminals are fed real protocol frames (a card
//! held at a door, cards passing, a corrupted frame, a pallet of tagged
//! laptops through a UHF portal that answers the daemon's commands, a scan
//! fired twice); the
//! daemon runs exactly as in production from a generated configuration file;
//! an embedded MQTT broker on loopback (unless `--broker` names one) carries
//! the events to a subscriber that prints every message it receives.

use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use crate::config::builder::{ConfigBuilder, Location, Mqtt, Reader};
use crate::config::{self, MqttVersion, Protocol, ReadMode, Terminator};

#[cfg(feature = "embedded-broker")]
mod broker;
pub mod cage;
mod central;
mod port;
mod portal;
pub mod station;
pub mod uhf;

pub use port::{em4100_frame, AsyncSimPort, SimPort};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Use this broker (e.g. mqtt://127.0.0.1:1883) instead of the embedded one.
    #[arg(long)]
    broker: Option<String>,
    /// Stop after this long (e.g. `30s`, `2m`); without it, run until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

const SITE: &str = "demo-site";
const GATEWAY: &str = "demo-pi";
const DOOR: &str = "dock-door-1";
const STATION: &str = "scan-station-1";
/// In the data dir: the simulated GPIO of the gate scenes.
const GPIO_SOCKET: &str = "gpio.sock";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    // The embedded broker (rumqttd) is given an MQTT 3.1.1 listener only.
    let (url, protocol) = match args.broker {
        Some(url) => (url, MqttVersion::V5),
        None => (embedded_broker()?, MqttVersion::V311),
    };
    let data_dir = std::env::temp_dir().join(format!("custodyd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let result = run_in(&url, protocol, &data_dir, args.duration).await;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

#[cfg(feature = "embedded-broker")]
use broker::start_embedded as embedded_broker;

/// A production build carries no broker (the `embedded-broker` feature is off
/// in the package), so the demo needs a real one.
#[cfg(not(feature = "embedded-broker"))]
fn embedded_broker() -> anyhow::Result<String> {
    anyhow::bail!(
        "this build has no embedded broker (feature `embedded-broker`): \
         run the demo with --broker mqtt://HOST:PORT"
    )
}

async fn run_in(
    url: &str,
    protocol: MqttVersion,
    data_dir: &std::path::Path,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let door =
        SimPort::open().context("opening a pseudo-terminal for the simulated door reader")?;
    let station = SimPort::open().context("opening a pseudo-terminal for the simulated scanner")?;
    let station_scene = station::Scene::open().context("opening the simulated badge reader")?;
    let cage = cage::CageScene::open(data_dir)?;
    let portal = portal::PortalScene::open(cage.gpio_socket())?;
    let config_path = data_dir.join("custodyd.toml");
    let central = central::Central::new(
        config::MqttConfig {
            url: url.to_string(),
            ..Default::default()
        }
        .broker()
        .map_err(anyhow::Error::msg)?,
    )?;
    let config = demo_config(url, protocol, data_dir, door.path(), station.path());
    let config = station_scene.configure(portal.configure(cage.configure(config)));
    std::fs::write(&config_path, central.configure(config).to_string())?;
    let config =
        config::load(&config_path).map_err(|e| anyhow::anyhow!("demo configuration: {e}"))?;
    println!(
        "demo: broker {url}; configuration {}",
        config_path.display()
    );
    // The daemon finds this key in its data dir and signs with it.
    let key = crate::audit::DeviceKey::load_or_create(data_dir)?.public_base64();
    let verify = format!(
        "demo: the custody log below is signed by this run's device key; to check it, save this output \
         (custodyd demo > demo.txt) and run: custodyd verify --key {key} demo.txt"
    );
    println!("{verify}");

    let (ready_tx, ready) = watch::channel(false);
    let printer = tokio::spawn(print_messages(
        config.mqtt.broker().map_err(anyhow::Error::msg)?,
        ready_tx,
    ));

    let pickup = tokio::spawn(station::pickup(central.clone(), ready.clone()));
    let cage = tokio::spawn(cage.play(central, ready.clone()));
    let portal = tokio::spawn(portal.play(ready.clone()));
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(crate::daemon::run(
        config_path,
        config,
        stop.clone().cancelled_owned(),
    ));
    let scenes = tokio::spawn(play(door, station, station_scene, ready));

    match duration {
        Some(d) => tokio::select! { _ = sleep(d) => {}, _ = crate::signals::stop() => {} },
        None => crate::signals::stop().await,
    }
    stop.cancel();
    let result = daemon.await.context("daemon task")?;
    scenes.abort();
    cage.abort();
    portal.abort();
    pickup.abort();
    // Give the subscriber a moment to print the offline status.
    sleep(Duration::from_millis(300)).await;
    printer.abort();
    println!("{verify}");
    result
}

/// The gateway, its broker and the door and station every scene shares.
fn demo_config(
    url: &str,
    protocol: MqttVersion,
    data_dir: &std::path::Path,
    door: &std::path::Path,
    station: &std::path::Path,
) -> ConfigBuilder {
    ConfigBuilder::new(SITE, GATEWAY, data_dir)
        .mqtt(
            Mqtt::new(url)
                .protocol(protocol)
                .keep_alive(Duration::from_secs(5)),
        )
        .company_prefixes(&["0614141"])
        .checkpoint_interval(Duration::from_secs(5))
        .gpio_sim(&data_dir.join(GPIO_SOCKET))
        .location(
            Location::dock_door(DOOR, "yard", "receiving")
                .departure_timeout(Duration::from_secs(2)),
        )
        .location(Location::scan_station(STATION))
        .reader(Reader::serial("door1-em", DOOR, door, Protocol::Em4100))
        .reader(
            Reader::serial("station1-scan", STATION, station, Protocol::AsciiLine)
                .mode(ReadMode::Scan)
                .terminator(Terminator::Cr),
        )
}

/// Prints every message the broker delivers under this gateway's topics, and
/// flags `ready` once the status says every reader is up.
async fn print_messages(broker: config::Broker, ready: watch::Sender<bool>) {
    let mut options = MqttOptions::new(format!("{GATEWAY}-demo-printer"), broker.host, broker.port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let filter = format!("itad/{SITE}/{GATEWAY}/#");
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client.subscribe(&filter, QoS::AtLeastOnce).await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let payload = String::from_utf8_lossy(&p.payload);
                println!("{} {}", p.topic, payload);
                if p.topic.ends_with("/status") && all_readers_up(&payload) {
                    ready.send_replace(true);
                }
            }
            Ok(_) => {}
            Err(_) => sleep(Duration::from_millis(250)).await,
        }
    }
}

fn all_readers_up(status: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(status) else {
        return false;
    };
    v["readers"]
        .as_object()
        .is_some_and(|r| !r.is_empty() && r.values().all(|s| s["state"] == "up"))
}

/// The scenes, played in a loop until the demo ends.
async fn play(
    mut door: SimPort,
    mut station: SimPort,
    mut station_scene: station::Scene,
    mut ready: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let _ = ready.wait_for(|r| *r).await;
    loop {
        println!(
            "demo: a card is held at {DOOR} for 3 s (30 frames: expect one arrived, then departed)"
        );
        for _ in 0..30 {
            door.write(&em4100_frame("62E3086CED"))?;
            sleep(Duration::from_millis(100)).await;
        }
        println!("demo: a corrupted frame (bad checksum: expect nothing)");
        let mut bad = em4100_frame("0F00AB12CD");
        bad[12] ^= 0x01;
        door.write(&bad)?;

        println!("demo: three cards pass {DOOR} together");
        for _ in 0..5 {
            for card in ["01000734E0", "0A0B0C0D0E", "1122334455"] {
                door.write(&em4100_frame(card))?;
            }
            sleep(Duration::from_millis(100)).await;
        }

        println!("demo: barcode AB/1#+ scanned at {STATION}, the scanner double-fires (expect one scanned)");
        station.write(b"AB/1#+\r")?;
        sleep(Duration::from_millis(300)).await;
        station.write(b"AB/1#+\r")?;
        println!("demo: a GS1-128 asset label scanned (GIAI: its id is the EPC URI its RFID tag would have)");
        station.write(b"]C18004061414112345400\r")?;
        station_scene.play(&mut station).await?;

        sleep(Duration::from_secs(4)).await;
    }
}
