//! The station context through the real rules task, under tokio's paused
//! clock.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::*;
use crate::config::{ReadMode, ReaderConfig};
use crate::custody::{Custody, Transition};
use crate::decode::Source;
use crate::identity::{Identity, Rejected};
use crate::presence::{ReaderInfo, Sighting};
use crate::retained::Update;

const MIN: Duration = Duration::from_secs(60);

fn config(extra: &str) -> Config {
    let toml = format!(
        r#"
[gateway]
site = "s"
name = "g"

[[locations]]
name = "scan-1"
kind = "scan_station"
operator_timeout = "30m"

[[locations]]
name = "door-1"
kind = "dock_door"
outside_zone = "yard"
inside_zone = "receiving"

[[readers]]
name = "scan1-bc"
location = "scan-1"
path = "/dev/ttyUSB0"
protocol = "ascii-line"

[[readers]]
name = "scan1-badge"
location = "scan-1"
path = "/dev/ttyUSB1"
protocol = "em4100"
role = "badge"

[[readers]]
name = "door1-bc"
location = "door-1"
path = "/dev/ttyUSB2"
protocol = "ascii-line"
{extra}
"#
    );
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    crate::config::load(file.path()).unwrap_or_else(|e| panic!("{e}"))
}

/// Drives the real task; `scan` and `badge` feed it as presence and a badge
/// reader would.
struct Harness {
    config: Config,
    /// The saved contexts; the directory lives as long as the harness.
    table: Table,
    _dir: tempfile::TempDir,
    drafts: mpsc::Sender<Sighting>,
    badges: mpsc::Sender<Observation>,
    out: mpsc::Receiver<Draft>,
}

impl Harness {
    fn start(config: Config) -> Self {
        Self::restored(config, &HashMap::new())
    }

    /// Started on a store holding `saved` (by location name).
    fn restored(config: Config, saved: &HashMap<String, Saved>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let retained = Retained::at(dir.path());
        let table = retained.table(TABLE).unwrap();
        let json: Vec<(&str, Vec<u8>)> = saved
            .iter()
            .map(|(name, s)| (name.as_str(), serde_json::to_vec(s).unwrap()))
            .collect();
        table
            .apply(json.iter().map(|(name, j)| (*name, Update::Put(j))))
            .unwrap();
        let stations = Stations::new(&config, &retained).unwrap();
        let (drafts, drafts_rx) = mpsc::channel(64);
        let (badges, badges_rx) = mpsc::channel(64);
        let (out_tx, out) = mpsc::channel(64);
        let metrics = crate::metrics::Metrics::default();
        let portals = crate::rules::portal::Portals::new(&config, None, &metrics).unwrap();
        let no_gates = crate::release::Attempts::default();
        let manifests =
            crate::rules::manifest::Manifests::new(&config, &retained, None, Default::default())
                .unwrap();
        let state = crate::rules::State {
            portals,
            stations,
            manifests,
            attempts: no_gates,
            saved: Vec::new(),
        };
        let task = crate::rules::run(drafts_rx, badges_rx, out_tx, state);
        tokio::spawn(task);
        Harness {
            config,
            table,
            _dir: dir,
            drafts,
            badges,
            out,
        }
    }

    fn reader(&self, name: &str) -> Arc<ReaderInfo> {
        reader_info(&self.config, name)
    }

    /// A scan by `reader` as presence passes it on (already deduplicated).
    async fn scan(&self, reader: &str, text: &str) {
        let info = self.reader(reader);
        let asset = Identity::default()
            .resolve(&crate::decode::RawRead {
                data: text.into(),
                source: Source::Barcode,
                antenna: None,
                rssi_dbm: None,
            })
            .unwrap();
        let now = SystemTime::now();
        let custody = Custody {
            transition: Transition::Scanned,
            asset,
            reader: info.name.clone(),
            reads: 1,
            first_seen: now,
            last_seen: now,
            antennas: vec![],
            rssi_max: None,
            context: Context::default(),
            crossing: None,
        };
        let draft = Draft::new(info.location.clone(), now, Body::Custody(custody));
        self.drafts.send(draft.into()).await.unwrap();
    }

    async fn badge(&self, card: &str) {
        let reader = self.reader("scan1-badge");
        assert_eq!(reader.mode, ReadMode::Presence);
        let obs = Observation {
            reader,
            asset: Ok(Asset {
                id: card.into(),
                raw: card.into(),
                source: Source::Rfid,
            }),
            antenna: None,
            rssi_dbm: None,
            wall: SystemTime::now(),
        };
        self.badges.send(obs).await.unwrap();
    }

    async fn next(&mut self) -> Draft {
        self.out.recv().await.expect("rules task ended")
    }

    /// Lets the task run, then checks it made nothing.
    async fn assert_nothing(&mut self) {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        if let Ok(d) = self.out.try_recv() {
            panic!("unexpected {d:?}");
        }
    }

    async fn change(&mut self) -> (Change, Context, Draft) {
        let d = self.next().await;
        match &d.body {
            Body::Context(c) => (c.change, c.context.clone(), d.clone()),
            other => panic!("expected a context change, got {other:?}"),
        }
    }

    async fn custody(&mut self) -> Custody {
        match self.next().await.body {
            Body::Custody(c) => c,
            other => panic!("expected custody, got {other:?}"),
        }
    }

    async fn alarm(&mut self) -> Alarm {
        match self.next().await.body {
            Body::Alarm(a) => a,
            other => panic!("expected an alarm, got {other:?}"),
        }
    }
}

fn reader_info(config: &Config, name: &str) -> Arc<ReaderInfo> {
    let reader: &ReaderConfig = config.readers.iter().find(|r| r.name == name).unwrap();
    ReaderInfo::new(config, reader)
}

fn ctx(operator: Option<&str>, action: Option<&str>, container: Option<&str>) -> Context {
    Context {
        operator: operator.map(Arc::from),
        action: action.map(Arc::from),
        container: container.map(Arc::from),
    }
}

#[tokio::test(start_paused = true)]
async fn a_held_badge_is_one_tap_and_the_same_badge_again_signs_out() {
    let mut h = Harness::start(config(""));
    // A card held for a second: ten reads, one sign-in.
    for _ in 0..10 {
        h.badge("62E3086CED").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (change, context, draft) = h.change().await;
    assert_eq!(change, Change::SignedIn);
    assert_eq!(context, ctx(Some("62E3086CED"), None, None));
    assert_eq!(&*draft.location, "scan-1");
    h.assert_nothing().await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    h.badge("62E3086CED").await;
    let (change, context, _) = h.change().await;
    assert_eq!((change, context), (Change::SignedOut, Context::default()));
}

#[tokio::test(start_paused = true)]
async fn another_badge_takes_over_and_unknown_badges_are_refused() {
    let mut h = Harness::start(config(
        "[operators]\n\"62e3086ced\" = \"op-ann\"\n\"0A0B0C0D0E\" = \"op-bob\"\n",
    ));
    h.badge("62E3086CED").await;
    assert_eq!(h.change().await.1.operator.as_deref(), Some("op-ann"));
    h.badge("0A0B0C0D0E").await;
    let (change, context, _) = h.change().await;
    assert_eq!(
        (change, context.operator.as_deref()),
        (Change::SignedIn, Some("op-bob"))
    );

    h.badge("1122334455").await;
    let a = h.alarm().await;
    assert_eq!(a.kind, "unknown_badge");
    assert!(a.detail.contains("1122334455"), "{}", a.detail);
    // Bob is still signed in: his scans carry him.
    h.scan("scan1-bc", "LAPTOP-1").await;
    assert_eq!(
        h.custody().await.context.operator.as_deref(),
        Some("op-bob")
    );
}

#[tokio::test(start_paused = true)]
async fn inactivity_signs_the_operator_out_and_scans_postpone_it() {
    let mut h = Harness::start(config(""));
    h.badge("62E3086CED").await;
    h.change().await;
    tokio::time::sleep(20 * MIN).await;
    h.scan("scan1-bc", "LAPTOP-1").await;
    let scanned_at = h.custody().await.first_seen;
    // 30 min after the sign-in, but only 10 after the scan.
    tokio::time::sleep(10 * MIN + Duration::from_secs(1)).await;
    h.assert_nothing().await;
    tokio::time::sleep(20 * MIN).await;
    let (change, context, draft) = h.change().await;
    assert_eq!((change, context), (Change::TimedOut, Context::default()));
    assert_eq!(
        draft.observed_at,
        scanned_at + 30 * MIN,
        "dated when it ran out"
    );
    match &draft.body {
        Body::Context(c) => assert!(c.reader.is_none()),
        other => panic!("{other:?}"),
    }
    // Signed out: the next scan carries nobody.
    h.scan("scan1-bc", "LAPTOP-2").await;
    assert_eq!(h.custody().await.context, Context::default());
}

#[tokio::test(start_paused = true)]
async fn actions_and_containers_are_set_stamped_cleared_and_refused() {
    let mut h = Harness::start(config("[station]\ncontainer_prefixes = [\"GAY-\"]\n"));
    h.badge("62E3086CED").await;
    h.change().await;

    h.scan("scan1-bc", "act:Wiped").await;
    let (change, context, _) = h.change().await;
    assert_eq!(change, Change::ActionSet);
    assert_eq!(context.action.as_deref(), Some("wiped"), "as configured");
    // The same action again is no change.
    h.scan("scan1-bc", "ACT:WIPED").await;
    h.assert_nothing().await;

    h.scan("scan1-bc", "]C100106141412345678908").await;
    let (change, context, _) = h.change().await;
    assert_eq!(change, Change::ContainerSet);
    assert_eq!(context.container.as_deref(), Some("(00)106141412345678908"));

    h.scan("scan1-bc", "LAPTOP-1").await;
    let c = h.custody().await;
    assert_eq!(&*c.asset.id, "LAPTOP-1");
    assert_eq!(
        c.context,
        ctx(
            Some("62E3086CED"),
            Some("wiped"),
            Some("(00)106141412345678908")
        )
    );

    h.scan("scan1-bc", "ACT:MELTED").await;
    let a = h.alarm().await;
    assert_eq!((a.kind, a.asset.is_none()), ("unknown_action", true));
    assert!(
        a.detail.contains("MELTED") && a.detail.contains("wiped"),
        "{}",
        a.detail
    );
    h.scan("scan1-bc", "gay-0042").await;
    let (change, context, _) = h.change().await;
    assert_eq!(change, Change::ContainerSet);
    assert_eq!(
        context.action.as_deref(),
        Some("wiped"),
        "unchanged by the refusal"
    );
    assert_eq!(context.container.as_deref(), Some("gay-0042"));

    h.scan("scan1-bc", "ACT:CLEAR").await;
    let (change, context, _) = h.change().await;
    assert_eq!(
        (change, context),
        (Change::Cleared, ctx(Some("62E3086CED"), None, None))
    );
    h.scan("scan1-bc", "ACT:CLEAR").await;
    h.assert_nothing().await;
    h.scan("scan1-bc", "LAPTOP-2").await;
    assert_eq!(
        h.custody().await.context,
        ctx(Some("62E3086CED"), None, None)
    );
}

#[tokio::test(start_paused = true)]
async fn require_operator_refuses_scans_and_commands_until_someone_signs_in() {
    let mut config = config("");
    config.locations[0].require_operator = Some(true);
    let mut h = Harness::start(config);
    h.scan("scan1-bc", "LAPTOP-1").await;
    let a = h.alarm().await;
    assert_eq!(a.kind, "operator_required");
    assert_eq!(a.asset.as_ref().map(|a| &*a.id), Some("LAPTOP-1"));
    h.scan("scan1-bc", "ACT:WIPED").await;
    let a = h.alarm().await;
    assert_eq!((a.kind, a.asset.is_none()), ("operator_required", true));
    h.badge("62E3086CED").await;
    h.change().await;
    h.scan("scan1-bc", "LAPTOP-1").await;
    assert_eq!(&*h.custody().await.asset.id, "LAPTOP-1");
}

#[tokio::test(start_paused = true)]
async fn other_locations_and_transitions_pass_through_untouched() {
    let mut h = Harness::start(config(""));
    h.badge("62E3086CED").await;
    h.change().await;
    h.scan("door1-bc", "ACT:WIPED").await;
    let c = h.custody().await;
    assert_eq!((&*c.asset.id, c.context), ("ACT:WIPED", Context::default()));

    let info = h.reader("scan1-bc");
    let mut draft = Draft::new(
        info.location.clone(),
        SystemTime::now(),
        Body::Alarm(Alarm {
            kind: "invalid_scan",
            asset: None,
            detail: "x".into(),
        }),
    );
    h.drafts.send(draft.clone().into()).await.unwrap();
    assert_eq!(h.next().await, draft);
    draft.body = Body::Custody(Custody {
        transition: Transition::Arrived,
        asset: Asset {
            id: "ACT:WIPED".into(),
            raw: "ACT:WIPED".into(),
            source: Source::Rfid,
        },
        reader: info.name.clone(),
        reads: 1,
        first_seen: SystemTime::now(),
        last_seen: SystemTime::now(),
        antennas: vec![],
        rssi_max: None,
        context: Context::default(),
        crossing: None,
    });
    h.drafts.send(draft.clone().into()).await.unwrap();
    assert_eq!(h.next().await, draft, "only scans are station commands");
}

#[tokio::test(start_paused = true)]
async fn a_rejected_badge_read_changes_nothing() {
    let mut h = Harness::start(config(""));
    let obs = Observation {
        reader: h.reader("scan1-badge"),
        asset: Err(Rejected {
            raw: "x".into(),
            reason: "bad".into(),
        }),
        antenna: None,
        rssi_dbm: None,
        wall: SystemTime::now(),
    };
    h.badges.send(obs).await.unwrap();
    h.assert_nothing().await;
}

#[tokio::test(start_paused = true)]
async fn a_restored_context_keeps_its_timeout_across_the_restart() {
    let wall = SystemTime::now();
    let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let signed_in = Saved {
        operator: Some("op-ann".into()),
        badge: Some("62E3086CED".into()),
        action: Some("wiped".into()),
        container: Some("GAY-1".into()),
        active_at_ms: ms(wall - 10 * MIN),
    };
    let saved = HashMap::from([("scan-1".to_string(), signed_in.clone())]);
    let mut h = Harness::restored(config(""), &saved);
    h.scan("scan1-bc", "LAPTOP-1").await;
    assert_eq!(
        h.custody().await.context,
        ctx(Some("op-ann"), Some("wiped"), Some("GAY-1"))
    );
    // The scan restarted the 30 minutes; the same badge still signs out.
    tokio::time::sleep(29 * MIN).await;
    h.assert_nothing().await;
    h.badge("62e3086ced").await;
    let (change, context, _) = h.change().await;
    assert_eq!(change, Change::SignedOut);
    assert_eq!(context, ctx(None, Some("wiped"), Some("GAY-1")));

    // Idle for 40 minutes while the daemon was down: signed out at start,
    // dated when the timeout ran out.
    let stale = Saved {
        active_at_ms: ms(wall - 40 * MIN),
        ..signed_in
    };
    let saved = HashMap::from([("scan-1".to_string(), stale)]);
    let mut h = Harness::restored(config(""), &saved);
    let (change, context, draft) = h.change().await;
    assert_eq!(
        (change, context),
        (Change::TimedOut, ctx(None, Some("wiped"), Some("GAY-1")))
    );
    let dated = draft
        .observed_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(dated, ms(wall - 10 * MIN));
    // Idle for 25: times out 5 minutes after the start.
    let idle = Saved {
        operator: Some("op-ann".into()),
        active_at_ms: ms(wall - 25 * MIN),
        ..Saved::default()
    };
    let saved = HashMap::from([("scan-1".to_string(), idle)]);
    let mut h = Harness::restored(config(""), &saved);
    tokio::time::sleep(5 * MIN - Duration::from_secs(1)).await;
    h.assert_nothing().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.change().await.0, Change::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn every_change_is_saved_before_it_is_published() {
    let mut h = Harness::start(config(""));
    let saved = |h: &Harness| -> Saved {
        serde_json::from_slice(&h.table.get("scan-1").unwrap().expect("saved")).unwrap()
    };
    h.badge("62e3086ced").await;
    h.change().await;
    let signed_in = saved(&h);
    assert_eq!(signed_in.operator.as_deref(), Some("62e3086ced"));
    assert_eq!(signed_in.badge.as_deref(), Some("62E3086CED"));
    h.scan("scan1-bc", "ACT:TESTED").await;
    h.change().await;
    assert_eq!(saved(&h).action.as_deref(), Some("tested"));
    // Activity moves the timeout on, so it is saved too.
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.scan("scan1-bc", "LAPTOP-1").await;
    h.custody().await;
    assert!(saved(&h).active_at_ms >= signed_in.active_at_ms);
    assert!(h.table.get("door-1").unwrap().is_none());
}
