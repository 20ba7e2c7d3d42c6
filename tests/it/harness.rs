//! Self-test of the integration-test harness in `tests/it/common`: if these
//! fail, the other integration tests cannot be trusted.

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use crate::common::{
    check_delivery, publish, wait_until, Message, Mosquitto, Pty, Subscriber, PATIENCE,
};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{SerialPortBuilderExt, SerialStream};

fn has(topic: &'static str, text: &'static str) -> impl Fn(&[Message]) -> bool {
    move |msgs| msgs.iter().any(|m| m.topic == topic && m.text() == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_survives_broker_kill_and_restart_on_same_port() {
    let mut broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "harness/#").await;

    publish(&broker.url(), "other/x", "outside the filter", false).await;
    publish(&broker.url(), "harness/a", r#"{"n":1}"#, false).await;
    let got = sub.wait_for(has("harness/a", r#"{"n":1}"#), PATIENCE).await;
    assert_eq!(
        got.len(),
        1,
        "only the filter's topics are recorded: {got:?}"
    );
    assert_eq!(got[0].json()["n"], 1);
    assert!(!got[0].retain);

    let port = broker.port();
    let epoch = sub.epoch();
    broker.kill();
    // Restarted right away: the killed broker's connections are still in
    // TIME_WAIT on this port.
    broker.restart().await;
    assert_eq!(broker.port(), port, "restart must keep the port");
    sub.wait_resubscribed(epoch, PATIENCE).await;

    publish(&broker.url(), "harness/b", "two", false).await;
    sub.wait_for(has("harness/b", "two"), PATIENCE).await;
}

/// Subscribers see the retain flag only on replays of stored messages; tests
/// of the daemon's retained status rely on telling the two apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_flagged_only_when_replayed() {
    let mut broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "harness/#").await;
    publish(&broker.url(), "harness/status", "online", true).await;
    let live = sub
        .wait_for(has("harness/status", "online"), PATIENCE)
        .await;
    assert!(!live[0].retain, "live delivery is not a replay: {live:?}");

    let late = Subscriber::connect(&broker.url(), "harness/#").await;
    let replayed = late
        .wait_for(has("harness/status", "online"), PATIENCE)
        .await;
    assert!(replayed[0].retain, "replay must be flagged: {replayed:?}");

    broker.stop().await;
    assert!(broker.log().contains("terminating"), "{}", broker.log());
}

/// The fault tests restart the broker under a subscriber that must not miss
/// anything: a persistent broker keeps a persistent subscriber's queue
/// across the subscriber's absence and a broker stop and restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_subscriber_gets_what_was_published_while_it_and_the_broker_were_away() {
    let mut broker = Mosquitto::start_persistent().await;
    let id = "harness-persistent";
    drop(Subscriber::connect_persistent(&broker.url(), "harness/#", id).await);
    publish(&broker.url(), "harness/queued", "while away", false).await;
    broker.stop().await;
    broker.restart().await;
    let sub = Subscriber::connect_persistent(&broker.url(), "harness/#", id).await;
    sub.wait_for(has("harness/queued", "while away"), PATIENCE)
        .await;
}

/// A custody event as the daemon publishes it, reduced to what the
/// delivery check reads.
fn event(seq: u64, event_id: &str) -> Message {
    Message {
        topic: "itad/s/g/custody/loc".into(),
        payload: format!(r#"{{"event_id":"{event_id}","seq":{seq},"asset":{{"id":"A{seq}"}}}}"#)
            .into_bytes(),
        retain: false,
    }
}

#[test]
fn check_delivery_counts_re_deliveries_and_ignores_other_topics() {
    let status = Message {
        topic: "itad/s/g/status".into(),
        payload: b"{}".to_vec(),
        retain: true,
    };
    let report = check_delivery(&[
        event(1, "E1"),
        event(2, "E2"),
        status,
        event(1, "E1"),
        event(3, "E3"),
    ]);
    assert_eq!((report.max_seq, report.duplicates), (3, 1));
    assert_eq!(report.first_delivery_order, [1, 2, 3]);
    assert_eq!(report.assets, ["A1", "A2", "A3"]);
    assert!(report.first_deliveries_in_order());
}

#[test]
#[should_panic(expected = "events missing: 2 of 1..=4 never arrived:  2..=3")]
fn check_delivery_names_a_gap() {
    check_delivery(&[event(1, "E1"), event(4, "E4")]);
}

#[test]
#[should_panic(expected = "seq 2 was delivered as two different events, E2 and X2")]
fn check_delivery_rejects_a_seq_with_two_event_ids() {
    check_delivery(&[event(1, "E1"), event(2, "E2"), event(2, "X2")]);
}

#[test]
#[should_panic(expected = "event E1 was delivered with two seqs, 1 and 2")]
fn check_delivery_rejects_an_event_id_with_two_seqs() {
    check_delivery(&[event(1, "E1"), event(2, "E1")]);
}

#[test]
#[should_panic(expected = "seq 1 (E1) was re-delivered with a different payload")]
fn check_delivery_rejects_a_re_delivery_that_differs() {
    let mut changed = event(1, "E1");
    changed.payload.extend_from_slice(b" ");
    check_delivery(&[event(1, "E1"), changed]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assert_quiet_for_passes_on_silence_and_fails_on_a_message() {
    let broker = Mosquitto::start().await;
    let sub = Subscriber::connect(&broker.url(), "harness/#").await;
    sub.assert_quiet_for(Duration::from_millis(500), |_| true)
        .await;

    // Keep publishing until the assertion is over: whatever the scheduling,
    // some of these land inside its window, and it must notice.
    let url = broker.url();
    let noisy = tokio::spawn(async move {
        loop {
            publish(&url, "harness/noise", "x", false).await;
        }
    });
    let outcome = std::panic::AssertUnwindSafe(
        sub.assert_quiet_for(Duration::from_secs(2), |m| m.topic == "harness/noise"),
    )
    .catch_unwind()
    .await;
    noisy.abort();
    assert!(
        outcome.is_err(),
        "assert_quiet_for missed messages in its window"
    );
    // A filter that matches none of them still passes.
    sub.assert_quiet_for(Duration::from_millis(500), |m| m.topic == "harness/other")
        .await;
}

/// Opens the pty's path the way custodyd opens a serial reader.
fn open_serial(pty: &Pty) -> SerialStream {
    tokio_serial::new(pty.path().to_str().unwrap(), 9600)
        .open_native_async()
        .unwrap_or_else(|e| panic!("open {}: {e}", pty.path().display()))
}

/// Reads until `n` bytes arrived (or panics after PATIENCE).
async fn read_exactly(port: &mut SerialStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(PATIENCE, port.read_exact(&mut buf))
        .await
        .expect("serial read timed out")
        .expect("serial read failed");
    buf
}

#[tokio::test]
async fn pty_passes_bytes_both_ways_unchanged() {
    let pty = Pty::open();
    let mut port = open_serial(&pty);

    // CR, LF, ^C and high bytes would be translated, eaten or echoed by a
    // cooked tty; raw mode passes them through.
    let frame = b"\x02\r0A00123456\n\x03\xff\x00";
    pty.write(frame).await;
    assert_eq!(read_exactly(&mut port, frame.len()).await, frame);

    port.write_all(b"\xa0\x04\x01\x89\r\n").await.unwrap();
    // Exactly the command: no echo of the frame above precedes it.
    assert_eq!(pty.read_available(PATIENCE).await, b"\xa0\x04\x01\x89\r\n");
    assert!(pty
        .read_available(Duration::from_millis(50))
        .await
        .is_empty());
}

/// Documents the answer to "what if the reader talks before the daemon has
/// the port open?": the bytes wait in the slave's input queue (the harness
/// keeps the slave open, and opening does not flush it) and the first read
/// gets them. Tests still wait for the daemon to report the reader `up`
/// before writing, so they do not depend on this.
#[tokio::test]
async fn pty_bytes_written_before_the_port_is_opened_are_delivered() {
    let pty = Pty::open();
    pty.write(b"early").await;
    let mut port = open_serial(&pty);
    pty.write(b"late").await;
    assert_eq!(read_exactly(&mut port, 9).await, b"earlylate");
}

/// Unplugging hangs the open port up the way a USB serial disconnect does:
/// reads return EOF (Ok(0), not an error, and again on every read), writes
/// fail with EIO, and the path is gone until the reader is plugged back in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_unplug_hangs_up_and_replug_serves_the_same_path() {
    let mut pty = Pty::open();
    let mut port = open_serial(&pty);
    pty.write(b"one").await;
    assert_eq!(read_exactly(&mut port, 3).await, b"one");

    // Usually a read is already waiting when the cable goes; either way the
    // outcome is the same.
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        let got = port.read(&mut buf).await.map_err(|e| e.raw_os_error());
        (got, port)
    });
    pty.unplug();
    let (got, mut port) = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("a read pending at unplug must return")
        .unwrap();
    assert_eq!(got, Ok(0), "read on an unplugged port");
    let mut buf = [0u8; 16];
    assert_eq!(port.read(&mut buf).await.unwrap(), 0, "EOF again");
    let write = port
        .write_all(b"x")
        .await
        .expect_err("write on an unplugged port");
    assert_eq!(write.raw_os_error(), Some(libc::EIO));
    let reopen = tokio_serial::new(pty.path().to_str().unwrap(), 9600)
        .open_native_async()
        .expect_err("open while unplugged");
    assert_eq!(
        reopen.kind(),
        tokio_serial::ErrorKind::Io(std::io::ErrorKind::NotFound)
    );
    drop(port);

    pty.replug();
    assert_eq!(std::fs::read_link(pty.path()).unwrap(), pty.slave_path());
    let mut port = open_serial(&pty);
    pty.write(b"two").await;
    assert_eq!(read_exactly(&mut port, 3).await, b"two");
}

/// tokio-serial opens ports exclusively (TIOCEXCL). A process that dies
/// without closing cleanly leaves the flag set here, because the harness
/// holds the slave open; `release_exclusive` clears it as a real device's
/// last close would. (Root may open anyway, so only the flag is checked.)
#[tokio::test]
async fn pty_exclusive_flag_survives_a_crash_until_released() {
    let pty = Pty::open();
    assert!(!pty.is_exclusive());
    let port = tokio_serial::new(pty.path().to_str().unwrap(), 9600)
        .open_native()
        .unwrap();
    assert!(pty.is_exclusive());
    // Close the fd without serialport's Drop (which would clear the flag),
    // as a SIGKILL would.
    // SAFETY: `into_raw_fd` gave up ownership of this open fd, so it is ours to close.
    drop(unsafe { OwnedFd::from_raw_fd(port.into_raw_fd()) });
    assert!(pty.is_exclusive(), "nothing cleared it");
    pty.release_exclusive();
    assert!(!pty.is_exclusive());

    let port = open_serial(&pty);
    assert!(pty.is_exclusive());
    drop(port);
    assert!(!pty.is_exclusive(), "a clean close clears it");
}

#[tokio::test]
async fn wait_until_waits_for_a_condition_and_gives_up_after_its_deadline() {
    let started = std::time::Instant::now();
    let later = started + Duration::from_millis(200);
    wait_until(PATIENCE, "200 ms have passed", || {
        std::time::Instant::now() >= later
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(200));

    let gave_up =
        std::panic::AssertUnwindSafe(wait_until(Duration::from_millis(100), "never", || false))
            .catch_unwind()
            .await;
    assert!(gave_up.is_err(), "wait_until must panic at its deadline");
}
