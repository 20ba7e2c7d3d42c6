//! Reloading the configuration of a running daemon, by the `reload` command
//! and by SIGHUP: readers come and go, an asset in the field stays present
//! across the reload (one `arrived`, one `departed` with every read), no
//! event is lost or duplicated (`seq` stays gap-free), the broker link is
//! kept, and an invalid file or one that changes what needs a restart is
//! refused with the old readers still working.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;

const CARD: &str = "62E3086CED";
const LABEL: &str = "ASSET-000123";

fn door_config(daemon: &Daemon, broker: &Mosquitto, door: &Pty) -> ConfigBuilder {
    gateway_config(&broker.url(), &daemon.data_dir()).door_with_em4100(door.path(), secs(2))
}

async fn start(broker: &Mosquitto, sub: &Subscriber, door: &Pty) -> Daemon {
    let mut daemon = Daemon::new();
    daemon.spawn(door_config(&daemon, broker, door));
    wait_reader(sub, "door1-em", "up").await;
    daemon
}

/// Holds the card at the door: a frame every 50 ms until `stop` is set.
/// Returns how many frames it wrote.
fn hold_card(
    door: Arc<Pty>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut frames = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            door.write(&em4100_frame(CARD)).await;
            frames += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        frames
    })
}

/// The broker link was never lost: one connection in the log, and no
/// offline status published.
fn assert_link_kept(daemon: &Daemon, msgs: &[Message]) {
    assert_eq!(daemon.log().matches("connected to broker").count(), 1);
    let offline = msgs
        .iter()
        .filter(|m| m.topic == format!("{GW}/status") && m.json()["state"] == "offline");
    assert_eq!(offline.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_command_adds_a_reader_and_keeps_what_is_in_the_field() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Arc::new(Pty::open());
    let station = Pty::open();
    let daemon = start(&broker, &sub, &door).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holding = hold_card(door.clone(), stop.clone());
    sub.wait_for(|m| !transitions(m, "arrived", CARD).is_empty(), PATIENCE)
        .await;

    // The card stays in the field while the readers are restarted.
    daemon
        .rewrite_config(door_config(&daemon, &broker, &door).station_with_scanner(station.path()));
    let reply = ask(&broker, &sub, "reload", r#"{"id":"r-1"}"#, "r-1").await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        reply["result"]["readers"],
        serde_json::json!(["door1-em", "station1-scan"])
    );
    wait_reader(&sub, "station1-scan", "up").await;
    wait_reader(&sub, "door1-em", "up").await;

    station.write(format!("{LABEL}\r").as_bytes()).await;
    sub.wait_for(|m| !transitions(m, "scanned", LABEL).is_empty(), PATIENCE)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let frames = holding.await.unwrap();

    let (msgs, departed) = one_visit(&sub, CARD).await;
    assert_eq!(
        departed["reads"], frames,
        "every frame written across the reload was read, and folded into one presence"
    );
    let scanned = &transitions(&msgs, "scanned", LABEL)[0];
    assert_eq!(scanned["reader"], "station1-scan");
    let report = check_delivery(&msgs);
    assert_eq!((report.max_seq, report.duplicates), (3, 0));
    assert_link_kept(&daemon, &msgs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_replacing_one_reader_by_another() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let station = Pty::open();
    let mut daemon = start(&broker, &sub, &door).await;

    daemon.rewrite_config(
        gateway_config(&broker.url(), &daemon.data_dir()).station_with_scanner(station.path()),
    );
    daemon.signal(Signal::SIGHUP);
    wait_until(PATIENCE, "the daemon to reload", || {
        daemon.log().contains("reloaded")
    })
    .await;
    wait_reader(&sub, "station1-scan", "up").await;
    sub.wait_for(
        |m| latest_status(m).is_some_and(|s| s["readers"].get("door1-em").is_none()),
        PATIENCE,
    )
    .await;
    assert!(!door.is_exclusive(), "the removed reader's port is closed");

    station.write(format!("{LABEL}\r").as_bytes()).await;
    sub.wait_for(|m| !transitions(m, "scanned", LABEL).is_empty(), PATIENCE)
        .await;
    assert!(daemon.is_running());
    let msgs = sub.messages();
    check_delivery(&msgs);
    assert_link_kept(&daemon, &msgs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_refused_and_the_running_readers_keep_working() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "itad/#").await;
    let door = Pty::open();
    let mut daemon = start(&broker, &sub, &door).await;
    let good = door_config(&daemon, &broker, &door).to_string();

    // Invalid: a reader at a location that does not exist.
    let invalid = good.clone()
        + r#"
[[readers]]
name = "door2-em"
location = "dock-9"
path = "/dev/ttyUSB7"
protocol = "em4100"
"#;
    daemon.rewrite_config(&invalid);
    let reply = ask(&broker, &sub, "reload", r#"{"id":"bad-1"}"#, "bad-1").await;
    assert_eq!(reply["ok"], false, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.contains("readers[1] (door2-em).location") && error.contains("dock-9"),
        "{error}"
    );
    assert!(error.contains("running configuration is kept"), "{error}");
    assert!(daemon
        .log()
        .contains("reload (reload command) refused, keeping the running configuration"));

    // The same file on SIGHUP: refused and logged, naming the key.
    daemon.signal(Signal::SIGHUP);
    wait_until(PATIENCE, "the SIGHUP reload to be refused", || {
        daemon.log().contains("reload (SIGHUP) refused")
    })
    .await;
    assert!(daemon.log().contains("readers[1] (door2-em).location"));

    // Valid, but a change only a restart applies.
    daemon.rewrite_config(good.replace("name = \"gw-1\"", "name = \"gw-2\""));
    let reply = ask(&broker, &sub, "reload", r#"{"id":"bad-2"}"#, "bad-2").await;
    assert_eq!(reply["ok"], false, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(
        error.contains("[gateway] changed") && error.contains("restart"),
        "{error}"
    );

    // The old reader never stopped.
    door.write(&em4100_frame(CARD)).await;
    sub.wait_for(|m| !transitions(m, "departed", CARD).is_empty(), PATIENCE)
        .await;
    let msgs = sub.messages();
    let report = check_delivery(&msgs);
    assert_eq!(report.max_seq, 2);
    assert_eq!(
        daemon.log().matches("reader up").count(),
        1,
        "not restarted"
    );
    assert_link_kept(&daemon, &msgs);
}
