//! Wiring: starts every stage of the pipeline and stops them in order.
//!
//! Shutdown cascades down the data flow: the readers are cancelled; when the
//! last one is gone, presence sees its input close and ends; that closes the
//! spool's input, which tells the uplink to deliver what is left, publish the
//! offline status and disconnect; the spool then makes its last deletions
//! durable. Nothing in flight is dropped on the way.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::command::Commands;
use crate::config::{Config, ReaderKind, ReaderRole};
use crate::gpio;
use crate::presence::{self, ReaderInfo};
use crate::release;
use crate::retained::Retained;
use crate::rules;
use crate::sink::{mqtt, Bus};
use crate::sources::hid::HidReader;
use crate::sources::monitor::{self, Watched};
use crate::sources::serial::SerialReader;
use crate::sources::ReaderLink;
use crate::spool;

/// Reads waiting for presence, at most: a burst of a few hundred ms from
/// every reader at once, after which readers wait (and their kernel buffers
/// hold the rest).
const READS_QUEUE: usize = 4096;

/// Runs the daemon until `shutdown` completes, then stops it in order.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let naming = config.naming();
    let data_dir = &config.gateway.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("gateway.data_dir {}", data_dir.display()))?;
    let opened = spool::recovery::open(data_dir)?;
    let (drafts, spool_reader, spool_task) = spool::spawn(
        opened,
        data_dir.clone(),
        naming.clone(),
        config.spool.clone(),
    )?;

    // One GPIO backend, shared by every task that owns pins; none without
    // pins. Opened before anything waits on the network, so gate outputs
    // are claimed (and driven safe) at once.
    let pins = match config.uses_gpio() {
        true => Some(gpio::open(&config.gpio).context("[gpio]")?),
        false => None,
    };

    let (states_out, states) = mpsc::channel(64);
    let mut bus = Bus::new();
    // Local copies of retained topics, for every task that keeps one; read
    // before the broker is reachable.
    let retained = Retained::at(data_dir);
    let mut commands = Commands::new();
    let gates = release::start(
        &config,
        pins.as_ref(),
        &retained,
        &mut bus,
        &mut commands,
        drafts.clone(),
    )
    .context("release control")?;
    let manifests =
        rules::manifest::Manifests::new(&config, &retained, &mut bus).context("manifests")?;
    let commands = commands.spawn(naming.clone(), &mut bus);
    let uplink = mqtt::spawn(&config, naming, spool_reader, states, bus).await?;

    let (states_tx, states_in) = mpsc::channel(64);
    let watched = config
        .readers
        .iter()
        .map(|r| {
            let location = Arc::from(r.location.as_str());
            (
                Arc::from(r.name.as_str()),
                Watched {
                    location,
                    offline_alarm_after: r.offline_alarm_after,
                },
            )
        })
        .collect();
    let monitor = tokio::spawn(monitor::run(watched, states_in, states_out, drafts.clone()));

    let (reads_tx, reads) = mpsc::channel(READS_QUEUE);
    let (decided, transitions) = mpsc::channel(READS_QUEUE);
    let presence = tokio::spawn(presence::run(reads, decided));
    let portals = rules::portal::Portals::new(&config, pins.as_ref()).context("read windows")?;
    let reading: Vec<_> = config.readers.iter().map(|r| portals.reading(r)).collect();
    // Badge reads skip presence (a badge is not an asset) and go to the
    // station context in the rules task.
    let (badges_tx, badges) = mpsc::channel(64);
    let stations = rules::station::Stations::new(&config, &retained).context("station context")?;
    let rules = tokio::spawn(rules::run(
        transitions,
        badges,
        drafts,
        portals,
        stations,
        manifests,
        gates.attempts,
    ));

    let cancel = CancellationToken::new();
    let readers = TaskTracker::new();
    let identity = Arc::new(config.identity());
    for (reader, reading) in config.readers.iter().zip(reading) {
        let link = ReaderLink {
            info: ReaderInfo::new(&config, reader),
            identity: identity.clone(),
            reads: match reader.role {
                ReaderRole::Asset => reads_tx.clone(),
                ReaderRole::Badge => badges_tx.clone(),
            },
            states: states_tx.clone(),
            reading,
        };
        let config = reader.clone();
        match (reader.kind, reader.protocol) {
            (ReaderKind::Serial, Some(protocol)) => readers.spawn(
                SerialReader {
                    config,
                    protocol,
                    link,
                }
                .run(cancel.clone()),
            ),
            (ReaderKind::Serial, None) => {
                anyhow::bail!("readers {}: serial reader without a protocol", reader.name)
            }
            (ReaderKind::Hid, _) => readers.spawn(HidReader { config, link }.run(cancel.clone())),
        };
    }
    readers.close();
    info!(
        site = %config.gateway.site,
        gateway = %config.gateway.name,
        readers = config.readers.len(),
        "custodyd running"
    );

    shutdown.await;
    info!("shutting down: stopping readers, delivering what is in flight");
    cancel.cancel();
    readers.wait().await;
    // Held until now so that a gateway with no reader (yet) keeps serving.
    drop((reads_tx, states_tx, badges_tx));
    presence.await.context("presence task")?;
    rules.await.context("custody rules task")?;
    if let Some(gates) = gates.task {
        gates.await.context("release control task")?;
    }
    monitor.await.context("reader monitor task")?;
    uplink.await.context("uplink task")?;
    commands.await.context("command dispatcher")?;
    spool_task.await.context("spool task")?;
    if let Some(pins) = &pins {
        // Every task that owned an output has ended: all are inactive now.
        pins.close().await;
    }
    info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn signals() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
