//! Wiring: a supervisor that owns the long-lived part of the pipeline, and a
//! front that a reload restarts.
//!
//! ```text
//!  front (front.rs): restarted by a reload  |  supervisor: as long as the process
//!                                           |
//!  readers -> presence -> rules ------------+---> spool ---> uplink <-> broker
//!         \-> monitor --- alarms -----------+--/            ^  ^  |
//!                     \-- reader states ----+---------------/   |  v
//!                                           |  clock watcher    |  command dispatcher
//!                                           |  (alarms: spool)  |  -> status: uplink
//!                                           |  health ----------/  -> inventory: presence
//!                                           |                      -> reload: supervisor
//!  rules --- leave attempts ---> gate task (release control, GPIO) -> spool
//! ```
//!
//! The supervisor holds the spool, the uplink and its bus, the control
//! client (the bus's subscriptions, on a session the broker keeps), the
//! command dispatcher, the health task and the clock watcher, the GPIO pins, the
//! retained-topic store and the cage gates' task (the locks must not open
//! or close because of a reload), and the senders the front feeds them
//! through (`front::Shared`). A reload (the `reload`
//! command or SIGHUP) re-reads the configuration file; if it is valid and
//! changes only what the front is built from (`reload.rs`), the front is
//! stopped in order, which delivers everything it decided to the spool, and
//! a new one is started from the new file. The spool's input never closes on
//! the way and the uplink stays connected: no offline status, no reconnect.
//!
//! Shutdown cascades down the data flow: the front is stopped (readers
//! cancelled; when the last one is gone, presence sees its input close and
//! ends, then the rules and the monitor); the supervisor's own producers
//! stop; the spool's input closes, which tells the uplink to deliver what is
//! left, publish the offline status and disconnect; the spool then makes its
//! last deletions durable. Nothing in flight is dropped on the way.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use futures_util::FutureExt;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::audit::key::KeyError;
use crate::audit::{Checkpoints, DeviceKey};
use crate::bus::Bus;
use crate::command::{Commands, Reply};
use crate::config::{self, Config};
use crate::custody::{Alarm, Body, Draft, Saved};
use crate::gpio;
use crate::health;
use crate::metrics::Metrics;
use crate::panics::off_thread;
use crate::presence;
use crate::release;
use crate::retained::Retained;
use crate::rules;
use crate::sink::control;
use crate::sink::mqtt::{self, Reporting};
use crate::watchdog::{self, Notifier, Watchdog};
use crate::{clock, spool, trust};

mod front;
mod reload;

use front::{Front, Handover, Shared};

/// Runs the daemon on `config`, read from `config_file` (which a reload
/// reads again), until `shutdown` completes, then stops it in order.
pub async fn run(
    config_file: PathBuf,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // SIGHUP's default action ends the process: take it over before anything.
    let mut hangups = signal(SignalKind::hangup()).context("installing a SIGHUP handler")?;
    crate::panics::watch();
    if let Some(file) = clock::test_override() {
        warn!(
            "clock state read from {} ({}) instead of the kernel: a test seam, not for production",
            file.display(),
            clock::TEST_STATE_ENV
        );
    }
    let naming = config.naming();
    let data_dir = &config.gateway.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("gateway.data_dir {}", data_dir.display()))?;
    // One GPIO backend, shared by every task that owns pins; none without
    // pins. The gates' outputs are claimed and driven locked before the
    // spool (whose recovery can take a while) or the broker: after a crash
    // the lock relay may still be energised.
    let pins = match config.uses_gpio() {
        true => Some(gpio::open(&config.gpio).context("[gpio]")?),
        false => None,
    };
    let claimed = release::claim(&config, pins.as_ref()).context("release control")?;
    if claimed.is_some() {
        let age = health::process::age().map_or("?".into(), |a| format!("{a:?}"));
        info!("cage gates claimed and locked {age} after the process started");
    }
    // A device key that cannot be read stops the start: it is never replaced.
    let existing = match DeviceKey::load(data_dir) {
        Err(KeyError::Missing(_)) => None,
        loaded => Some(loaded?),
    };
    let opened = spool::open(data_dir.clone()).await?;
    // What the front saved with its events: the field and the open read
    // windows as they were when the daemon last stopped, however it did.
    let (opened, saved) = off_thread(move || {
        let saved = opened.store.saved();
        (opened, saved)
    })
    .await;
    let saved = saved.unwrap_or_else(|e| {
        error!("the state saved in the spool cannot be read; the field, read windows and stations start from nothing: {e}");
        Saved::new()
    });
    let (device_key, key_alarm) = match existing {
        Some(key) => (key, None),
        None => {
            let key = DeviceKey::create(data_dir)?;
            let alarm = (opened.next_seq > 1).then(|| key_replaced(&naming, &key, &opened));
            (key, alarm)
        }
    };
    let checkpoints = Checkpoints::new(
        device_key,
        &naming.site,
        &naming.gateway,
        config.audit.checkpoint_interval,
    );
    let mut watchdog = Watchdog::default();
    let (drafts, spool_reader, spool_task) = spool::spawn(
        opened,
        data_dir.clone(),
        naming.clone(),
        config.spool.clone(),
        watchdog.stage("spool"),
    )
    .await?;
    if let Some(alarm) = key_alarm {
        let _ = drafts.send(alarm).await;
    }
    let metrics = Arc::new(Metrics::default());
    // The supervisor's own tasks, stopped before the spool's input closes.
    let background = CancellationToken::new();
    let gateway: Arc<str> = naming.gateway.as_str().into();
    let untrusted_message = move |detail| {
        let alarm = Alarm {
            kind: trust::alarm::KIND,
            asset: None,
            detail,
        };
        Draft::new(gateway.clone(), SystemTime::now(), Body::Alarm(alarm))
    };
    let (alarms, untrusted) = trust::Alarms::spawn(
        untrusted_message,
        drafts.clone(),
        metrics.untrusted_messages.clone(),
        background.clone(),
    );
    let guard = trust::Guard {
        trust: trust::Trust::from_config(config.trust.as_ref()),
        alarms,
    };

    // Command handlers and bus subscriptions are registered before the
    // dispatcher and the uplink start; each goes to the task that owns what
    // it is about.
    let mut bus = Bus::new();
    let mut commands = Commands::new();
    let status_requests = commands.register("status");
    let mut reloads = commands.register("reload");
    // Local copies of retained topics, for every task that keeps one; read
    // before the broker is reachable.
    let retained = Retained::at(data_dir);
    let gates = release::start(
        &config,
        claimed,
        &retained,
        &mut bus,
        &mut commands,
        drafts.clone(),
        &guard,
    )
    .context("release control")?;
    // The presence stage outlives each presence task: a reload hands it on.
    let mut handover = Handover {
        presence: presence::State::new(commands.register("inventory"), watchdog.stage("presence")),
        manifests: rules::manifest::subscribe(&config, &mut bus),
        saved,
    };
    // Signed commands run once: their ids are kept until they expire.
    let seen = match guard.trust.has_keys() {
        true => Some(trust::replay::Seen::open(&retained).context("command ids")?),
        false => None,
    };
    let dispatcher = commands.spawn(naming.clone(), &mut bus, guard.clone(), seen);
    let health_topic = health::spawn(
        naming.clone(),
        config.gateway.health_interval,
        health::Sources {
            metrics: metrics.clone(),
            spool: spool_reader.committed.clone(),
            max_bytes: config.spool.max_bytes.0,
            clock_synced: clock::is_synced,
        },
        bus.publisher(),
        background.clone(),
    );
    let clock = tokio::spawn(health::clock::watch(
        clock::is_synced,
        naming.gateway.as_str().into(),
        drafts.clone(),
        background.clone(),
    ));

    // Its own connection, whose session the broker keeps while the gateway
    // is away; it ends after the front, so what arrives until then is handled.
    let (connected, uplink_up) = watch::channel(false);
    let (control, subscribed) = control::spawn(&config, &mut bus, uplink_up, background.clone())?;
    let (states, states_in) = mpsc::channel(64);
    let (readers, configured) = watch::channel(reader_names(&config));
    let reporting = Reporting {
        readers: configured,
        status_requests,
        metrics: metrics.clone(),
        checkpoints,
        control: subscribed,
        connected,
    };
    let uplink = mqtt::spawn(
        &config,
        naming,
        spool_reader,
        states_in,
        bus,
        reporting,
        watchdog.stage("uplink"),
    )
    .await?;

    let shared = Shared {
        drafts,
        states,
        metrics,
        pins: pins.clone(),
        retained,
        attempts: gates.attempts,
        guard,
    };
    // Right before the readers start: the departure timeouts of what was
    // in the field run from here.
    handover.presence.engine.restore(
        &handover.saved,
        |location| departure_timeout(&config, location),
        presence::Clocks::now(),
    );
    let front = Front::start(&config, &shared, handover)?;
    info!(
        site = %config.gateway.site,
        gateway = %config.gateway.name,
        readers = config.readers.len(),
        "custodyd running"
    );
    // A first poll installs the signal handlers before READY=1: systemd may
    // stop the service as soon as it is ready.
    let mut shutdown = std::pin::pin!(shutdown);
    let requested = shutdown.as_mut().now_or_never().is_some();
    let mut supervisor = Supervisor {
        config_file,
        config,
        shared,
        readers,
        front: Some(front),
        systemd: watchdog::ready(watchdog),
    };

    // A task that panicked (or cannot go on) leaves the daemon half alive: end the process
    // (tasks are dropped, which drives every gate output safe; the spool is
    // crash-safe) so that systemd restarts it.
    let mut panic_check = tokio::time::interval(PANIC_CHECK);
    if !requested {
        loop {
            tokio::select! {
                _ = shutdown.as_mut() => break,
                _ = panic_check.tick() => if crate::panics::is_broken() {
                    anyhow::bail!("a task panicked or failed (see above); exiting so that custodyd is restarted");
                },
                Some(()) = hangups.recv() => {
                    // The outcome is logged; there is no one else to tell.
                    let _ = supervisor.reload("SIGHUP").await?;
                }
                Some(request) = reloads.recv() => {
                    let reply = supervisor.reload("reload command").await?;
                    let _ = request.reply.send(reply);
                }
            }
        }
    }

    let Supervisor {
        front,
        shared,
        systemd,
        ..
    } = supervisor;
    systemd.stopping().await;
    info!("shutting down: stopping readers, delivering what is in flight");
    if let Some(front) = front {
        front.stop().await?;
    }
    background.cancel();
    health_topic.await.context("health task")?;
    clock.await.context("clock watcher")?;
    untrusted.await.context("untrusted_message alarms")?;
    control.await.context("control client")?;
    // The gate task ends (locking every gate) once the last hand-off to it
    // is gone, which is the one in `shared`.
    drop(shared);
    if let Some(gates) = gates.task {
        gates.await.context("release control task")?;
    }
    uplink.await.context("uplink task")?;
    dispatcher.await.context("command dispatcher")?;
    spool_task.await.context("spool task")?;
    if let Some(pins) = &pins {
        // Every task that owned an output has ended: all are inactive now.
        pins.close().await;
    }
    info!("stopped");
    Ok(())
}

/// How often the supervisor looks for a panicked task.
const PANIC_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The running configuration and the front built from it.
struct Supervisor {
    config_file: PathBuf,
    config: Config,
    shared: Shared,
    /// The configured readers, for the status document.
    readers: watch::Sender<Vec<Arc<str>>>,
    /// `None` only while a reload swaps it.
    front: Option<Front>,
    /// Told when a reload starts and ends.
    systemd: Notifier,
}

impl Supervisor {
    /// Re-reads the configuration file and applies it if it is valid and
    /// changes nothing that needs a restart; otherwise keeps the running
    /// one and says why. `Err` only if the front could not be restarted
    /// (a task of it panicked), which ends the daemon.
    async fn reload(&mut self, trigger: &str) -> anyhow::Result<Reply> {
        let file = self.config_file.display();
        let config = match config::load(&self.config_file) {
            Ok(config) => config,
            Err(errors) => {
                let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                let errors = errors.join("; ");
                error!("reload ({trigger}) refused, keeping the running configuration: {file} is invalid: {errors}");
                return Ok(Err(format!(
                    "{file} is invalid, the running configuration is kept: {errors}"
                )));
            }
        };
        if let Some(refusal) = reload::needs_restart(&self.config, &config) {
            warn!("reload ({trigger}) refused: {refusal}");
            return Ok(Err(refusal));
        }
        info!("reload ({trigger}): restarting the readers with {file}");
        let front = self.front.take().expect("a front runs between reloads");
        self.systemd.reloading();
        let handover = front.stop().await?;
        let names = reader_names(&config);
        self.shared.metrics.retain_readers(&names);
        self.readers.send_replace(names.clone());
        self.front = Some(Front::start(&config, &self.shared, handover)?);
        self.systemd.reloaded();
        let readers: Vec<&str> = config.readers.iter().map(|r| r.name.as_str()).collect();
        let locations: Vec<&str> = config.locations.iter().map(|l| l.name.as_str()).collect();
        info!(
            readers = readers.len(),
            locations = locations.len(),
            "reloaded"
        );
        let reply = json!({ "readers": readers, "locations": locations });
        self.config = config;
        Ok(Ok(reply))
    }
}

/// The departure timeout of `location`, or the default for one no
/// longer configured.
fn departure_timeout(config: &Config, location: &str) -> std::time::Duration {
    config
        .locations
        .iter()
        .find(|l| l.name == location)
        .map_or_else(config::default_departure_timeout, |l| l.departure_timeout)
}

/// The device key was missing although this gateway's custody log has
/// events: a new key was made (a missing file cannot be told from a first
/// start otherwise), and the log itself says so, where central looks.
fn key_replaced(naming: &crate::topic::Naming, key: &DeviceKey, opened: &spool::Opened) -> Draft {
    error!(
        "the device key was missing from the data dir although the custody log has events up to seq {}; \
         made a new one: register it with central, or restore the old device.key",
        opened.next_seq - 1
    );
    let detail = format!(
        "The device key was missing although this gateway's custody log has events up to seq {}; a new key \
         was made, and checkpoints from now on are signed by {}: register it, or restore the old device.key \
         and restart.",
        opened.next_seq - 1,
        key.public_base64()
    );
    let body = Body::Alarm(Alarm {
        kind: "device_key_replaced",
        asset: None,
        detail,
    });
    Draft::new(naming.gateway.as_str().into(), SystemTime::now(), body)
}

fn reader_names(config: &Config) -> Vec<Arc<str>> {
    config
        .readers
        .iter()
        .map(|r| r.name.as_str().into())
        .collect()
}
