//! The front of the pipeline: readers, the reader monitor, presence and the
//! custody rules (portals and their read windows, station context,
//! manifests). Everything in it is built from `[[locations]]`, `[[readers]]`,
//! `[identity]`, `[station]` and `[operators]`, so a reload stops the front
//! and starts a new one from the new file, while the spool, the uplink and
//! the cage gates behind it run on. Station context and pickup progress are
//! saved in the retained store as they change, so the new front's rules
//! take them up from there.
//!
//! Adding a stage to the front: spawn it in [`Front::start`] next to what
//! feeds it, and await it in [`Front::stop`] after what feeds it, so stopping
//! still cascades down the data flow and everything in flight reaches the
//! spool. What must outlive a reload goes in [`Handover`]: state that would
//! otherwise be rebuilt wrong (presence's assets in the field, and its
//! systemd watchdog stage, which would end with the task), and the
//! receivers of bus subscriptions and command handlers, which can only be
//! registered before the uplink and the dispatcher start. The supervisor
//! creates them once; each front hands them to the next.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Inbound;
use crate::bus::ReaderState;
use crate::config::{Config, Protocol, ProtocolKind, ReaderKind, ReaderRole};
use crate::custody::{Draft, Saved};
use crate::gpio::Pins;
use crate::metrics::Metrics;
use crate::presence::{self, Observation, ReaderInfo};
use crate::release::Attempts;
use crate::retained::Retained;
use crate::rules::{self, manifest, portal::Portals, station::Stations};
use crate::sources::hid::HidReader;
use crate::sources::monitor::{self, Watched};
use crate::sources::serial::StreamingReader;
use crate::sources::uhf::UhfReader;
use crate::sources::Downstream;
use crate::trust::Guard;

/// Reads waiting for presence, at most: a burst of a few hundred ms from
/// every reader at once, after which readers wait (and their kernel buffers
/// hold the rest).
const READS_QUEUE: usize = 4096;

/// Where a front delivers, owned by the supervisor and kept across reloads.
pub struct Shared {
    /// Into the spool.
    pub drafts: mpsc::Sender<Draft>,
    /// Reader states, to the uplink's status document.
    pub states: mpsc::Sender<ReaderState>,
    pub metrics: Arc<Metrics>,
    /// The pins, when some location uses them: read-window and beam
    /// sensors are claimed by each front (and released when it stops).
    pub pins: Option<Pins>,
    pub retained: Retained,
    /// The hand-off to the cage gates, which outlive fronts.
    pub attempts: Attempts,
    /// Checks pickup manifests (signed control messages).
    pub guard: Guard,
}

/// What one front hands to the next (see the module doc).
pub struct Handover {
    pub presence: presence::State,
    /// The manifest subscription, `None` at a gateway without dock doors
    /// with read windows.
    pub manifests: Option<mpsc::Receiver<Inbound>>,
    /// What the spool saved when the daemon last ran, for the first
    /// front (see `custody::Save`); empty after it.
    pub saved: Saved,
}

/// A running front.
pub struct Front {
    cancel: CancellationToken,
    readers: TaskTracker,
    /// Held until [`Front::stop`] so that a gateway with no reader (yet)
    /// keeps serving.
    reads: mpsc::Sender<Observation>,
    badges: mpsc::Sender<Observation>,
    states: mpsc::Sender<ReaderState>,
    presence: JoinHandle<presence::State>,
    rules: JoinHandle<Option<mpsc::Receiver<Inbound>>>,
    monitor: JoinHandle<()>,
}

impl Front {
    /// Starts the front `config` describes (validated: every serial reader
    /// has a protocol).
    pub fn start(
        config: &Config,
        shared: &Shared,
        mut handover: Handover,
    ) -> anyhow::Result<Front> {
        let (states, states_in) = mpsc::channel(64);
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
        let monitor = tokio::spawn(monitor::run(
            watched,
            states_in,
            shared.states.clone(),
            shared.drafts.clone(),
        ));

        let (reads, reads_in) = mpsc::channel(READS_QUEUE);
        let (decided, transitions) = mpsc::channel(READS_QUEUE);
        handover.presence.locations = config
            .locations
            .iter()
            .map(|l| l.name.as_str().into())
            .collect();
        let presence = tokio::spawn(presence::run(handover.presence, reads_in, decided));
        let portals =
            Portals::new(config, shared.pins.as_ref(), &shared.metrics).context("read windows")?;
        let reading: Vec<_> = config.readers.iter().map(|r| portals.reading(r)).collect();
        // Badge reads skip presence (a badge is not an asset) and go to the
        // station context in the rules task.
        let (badges, badges_in) = mpsc::channel(64);
        let stations = Stations::new(config, &shared.retained).context("station context")?;
        let manifests = manifest::Manifests::new(
            config,
            &shared.retained,
            handover.manifests,
            shared.guard.clone(),
        )
        .context("manifests")?;
        let rules = tokio::spawn(rules::run(
            transitions,
            badges_in,
            shared.drafts.clone(),
            rules::State {
                portals,
                stations,
                manifests,
                attempts: shared.attempts.for_config(config),
                saved: std::mem::take(&mut handover.saved),
            },
        ));

        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let identity = Arc::new(config.identity());
        for (reader, reading) in config.readers.iter().zip(reading) {
            let info = ReaderInfo::new(config, reader);
            let link = Downstream {
                metrics: shared.metrics.reader(&info.name),
                info,
                identity: identity.clone(),
                reads: match reader.role {
                    ReaderRole::Asset => reads.clone(),
                    ReaderRole::Badge => badges.clone(),
                },
                states: states.clone(),
                reading,
            };
            let config = reader.clone();
            match (reader.kind, reader.protocol.map(Protocol::kind)) {
                (ReaderKind::Serial, Some(ProtocolKind::Streaming(protocol))) => tracker.spawn(
                    StreamingReader {
                        config,
                        protocol,
                        link,
                    }
                    .run(cancel.clone()),
                ),
                (ReaderKind::Serial, Some(ProtocolKind::CommandReply(protocol))) => tracker.spawn(
                    UhfReader {
                        config,
                        protocol,
                        link,
                    }
                    .run(cancel.clone()),
                ),
                (ReaderKind::Serial, None) => {
                    anyhow::bail!("readers {}: serial reader without a protocol", reader.name)
                }
                (ReaderKind::Hid, _) => {
                    tracker.spawn(HidReader { config, link }.run(cancel.clone()))
                }
            };
        }
        tracker.close();
        Ok(Front {
            cancel,
            readers: tracker,
            reads,
            badges,
            states,
            presence,
            rules,
            monitor,
        })
    }

    /// Stops the front down the data flow: the readers are cancelled; when
    /// the last one is gone presence sees its input close, hands on what it
    /// decided and ends, then the rules (closing open read windows and
    /// releasing their sensors' pins), then the monitor. Everything they
    /// decided is in the spool's channel when this returns.
    pub async fn stop(self) -> anyhow::Result<Handover> {
        let Front {
            cancel,
            readers,
            reads,
            badges,
            states,
            presence,
            rules,
            monitor,
        } = self;
        cancel.cancel();
        readers.wait().await;
        drop((reads, badges, states));
        let presence = presence.await.context("presence task")?;
        let manifests = rules.await.context("custody rules task")?;
        monitor.await.context("reader monitor task")?;
        Ok(Handover {
            presence,
            manifests,
            saved: Saved::new(),
        })
    }
}
