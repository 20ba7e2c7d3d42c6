//! Demo scenes of the chain-of-custody context.
//!
//! At the scan station an operator badges in, selects an action and a
//! gaylord, and wipes a batch of laptops; every scan carries who, what and
//! where into, and each change of that context is an event of its own.
//!
//! At the portal scene's dock door, central publishes a pickup of four
//! laptops; the pallet brings three, so the pass summary reconciles one as
//! missing, and when central closes the pickup a `manifest_mismatch` says so.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::time::sleep;

use super::central::Central;
use super::portal::{DOOR, PALLET};
use super::{em4100_frame, SimPort, SITE, STATION};
use crate::config::builder::{ConfigBuilder, Reader};
use crate::config::{Protocol, ReaderRole};
use crate::decode::{RawRead, Source};
use crate::identity::Identity;

/// The operator's EM4100 badge, and who it belongs to.
const BADGE: &str = "0C00F1A2B3";
const OPERATOR: &str = "op-ann";
const GAYLORD: &str = "GAY-0042";
/// GIAI asset labels (GS1-128, AI 8004) of the laptops.
const LAPTOPS: [&str; 4] = [
    "]C180040614141LT0001",
    "]C180040614141LT0002",
    "]C180040614141LT0003",
    "]C180040614141LT0004",
];

/// An EM4100 badge reader `name` on `path` at station `location`; reads of
/// one badge closer than `rescan_window` are one tap. The scene and the
/// tests use it.
pub fn badge_reader(name: &str, location: &str, path: &Path, rescan_window: Duration) -> Reader {
    Reader::serial(name, location, path, Protocol::Em4100)
        .role(ReaderRole::Badge)
        .rescan_window(rescan_window)
}

/// The scene and the badge reader it plays on.
pub struct Scene {
    badges: SimPort,
}

impl Scene {
    pub fn open() -> std::io::Result<Scene> {
        Ok(Scene {
            badges: SimPort::open()?,
        })
    }

    /// Adds the scene to the demo configuration: the station's badge
    /// reader, the container labels and the operator table.
    pub fn configure(&self, config: ConfigBuilder) -> ConfigBuilder {
        let badges = self.badges.path();
        config
            .reader(badge_reader(
                "station1-badge",
                STATION,
                badges,
                Duration::from_millis(500),
            ))
            .container_prefixes(&["GAY-"])
            .operator(BADGE, OPERATOR)
    }

    /// Plays the scene once, scanning on the station's `scanner`.
    pub async fn play(&mut self, scanner: &mut SimPort) -> anyhow::Result<()> {
        sleep(Duration::from_millis(500)).await;
        println!("demo: {OPERATOR} badges in at {STATION} (expect context signed_in, no custody)");
        self.tap().await?;
        println!(
            "demo: she scans ACT:WIPED and gaylord {GAYLORD}, then wipes {} laptops \
             (each scanned event carries operator, action and container)",
            LAPTOPS.len()
        );
        for code in ["ACT:WIPED", GAYLORD].into_iter().chain(LAPTOPS) {
            scanner.write(format!("{code}\r").as_bytes())?;
            sleep(Duration::from_millis(200)).await;
        }
        println!("demo: ACT:CLEAR, and she badges out (expect context cleared, then signed_out)");
        scanner.write(b"ACT:CLEAR\r")?;
        sleep(Duration::from_millis(600)).await;
        self.tap().await
    }

    /// A badge held to the reader for a moment: a few frames.
    async fn tap(&mut self) -> anyhow::Result<()> {
        for _ in 0..3 {
            self.badges.write(&em4100_frame(BADGE))?;
            sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// A fourth laptop of the pickup, which the pallet does not bring.
const LEFT_BEHIND: &str = "3074257BF7194E4000001A88";
const PICKUP: &str = "PU-DEMO-0001";

/// Central publishes the pickup before the first pallet reaches the door,
/// and closes it once the pallet is through.
pub(super) async fn pickup(
    central: Central,
    mut ready: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let _ = ready.wait_for(|r| *r).await;
    let expected: Vec<String> = PALLET
        .iter()
        .chain([&LEFT_BEHIND])
        .map(|epc| {
            let read = RawRead {
                data: epc.to_string(),
                source: Source::Rfid,
                antenna: None,
                rssi_dbm: None,
            };
            let asset = Identity::default().resolve(&read).expect("an EPC resolves");
            asset.id.to_string()
        })
        .collect();
    let topic = format!("itad/{SITE}/manifest/{DOOR}");
    println!(
        "demo: central expects pickup {PICKUP} at {DOOR}: {} laptops; the pallet brings {} \
         (expect its pass summary to reconcile them: one missing)",
        expected.len(),
        PALLET.len()
    );
    let open = json!({"pickup_id": PICKUP, "expected": expected});
    central
        .publish_retained(&[(topic.clone(), open.to_string())])
        .await?;
    sleep(Duration::from_secs(7)).await;
    println!("demo: central closes pickup {PICKUP} (expect a manifest_mismatch alarm: 1 missing)");
    let closed = json!({"pickup_id": PICKUP, "expected": expected, "closed": true});
    central
        .publish_retained(&[(topic, closed.to_string())])
        .await
}
