//! Simulated pins behind a Unix stream socket (`[gpio] backend = "sim"`),
//! so that tests running the real daemon binary, and `demo`, can drive its
//! inputs and watch its outputs from another process.
//!
//! The protocol is lines of text, levels as electrical levels (what a meter
//! on the pin would show, before any `active_low`):
//!
//! - client to daemon: `set <pin> <0|1>` drives an input (a pin not claimed
//!   yet keeps the level for when it is; an unset input reads its pull);
//! - daemon to client: `out <pin> <0|1>` for every claimed output on
//!   connect, then for every claim and every change; `err <sentence>` for a
//!   line it cannot use.
//!
//! Every connected client gets every `out` line. [`SimClient`] is the other
//! end.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::{Driver, Gpio, GpioError, RawInput};
use crate::config::Pull;

/// `out` lines queued per client; a client further behind is sent the
/// whole state again (levels are states, so nothing is lost by skipping).
const CHANGES_QUEUE: usize = 1024;

/// The simulated pins and the socket that shows them.
pub struct SimGpio {
    shared: Arc<Shared>,
    path: PathBuf,
    cancel: CancellationToken,
    connections: TaskTracker,
}

struct Shared {
    state: Mutex<State>,
    /// `out` lines for every connected client.
    changes: broadcast::Sender<String>,
}

#[derive(Default)]
struct State {
    outputs: BTreeMap<u8, bool>,
    inputs: HashMap<u8, watch::Sender<bool>>,
    /// Levels clients set, claimed or not.
    driven: HashMap<u8, bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an output level and tells the clients if it changed (or the
    /// pin was just claimed). Sent under the lock, so a client connecting
    /// meanwhile gets either the old state and this line, or the new state.
    fn write(&self, pin: u8, high: bool, claim: bool) {
        let mut state = self.lock();
        if state.outputs.insert(pin, high) != Some(high) || claim {
            let _ = self.changes.send(line("out", pin, high));
        }
    }

    /// Applies one client line.
    fn apply(&self, text: &str) -> Result<(), String> {
        match parse(text) {
            Some(("set", pin, high)) => {
                let mut state = self.lock();
                if state.outputs.contains_key(&pin) {
                    return Err(format!("GPIO {pin} is an output"));
                }
                state.driven.insert(pin, high);
                if let Some(input) = state.inputs.get(&pin) {
                    input.send_replace(high);
                }
                Ok(())
            }
            _ => Err(format!("expected \"set <pin> <0|1>\", got {text:?}")),
        }
    }
}

/// `verb pin level` as sent on the socket.
fn line(verb: &str, pin: u8, high: bool) -> String {
    format!("{verb} {pin} {}\n", u8::from(high))
}

/// A `verb pin level` line, either way.
fn parse(text: &str) -> Option<(&str, u8, bool)> {
    let mut words = text.split_whitespace();
    let verb = words.next()?;
    let pin = words.next()?.parse().ok()?;
    let high = match words.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    words.next().is_none().then_some((verb, pin, high))
}

impl SimGpio {
    /// Listens on `path` (replacing a socket left there by an earlier run).
    /// Needs a tokio runtime.
    pub fn bind(path: &Path) -> Result<Self, GpioError> {
        let open_error = |e: io::Error| GpioError::Open {
            backend: "sim",
            detail: format!("{}: {e}", path.display()),
        };
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(open_error(e)),
            _ => {}
        }
        let listener = UnixListener::bind(path).map_err(open_error)?;
        let (changes, _) = broadcast::channel(CHANGES_QUEUE);
        let sim = SimGpio {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changes,
            }),
            path: path.to_owned(),
            cancel: CancellationToken::new(),
            connections: TaskTracker::new(),
        };
        tokio::spawn(accept(
            listener,
            sim.shared.clone(),
            sim.cancel.clone(),
            sim.connections.clone(),
        ));
        Ok(sim)
    }
}

impl Gpio for SimGpio {
    fn output(&self, pin: u8, high: bool) -> Result<Box<dyn Driver>, GpioError> {
        if self.shared.lock().inputs.contains_key(&pin) {
            return Err(GpioError::Pin {
                pin,
                detail: "already claimed as an input".into(),
            });
        }
        self.shared.write(pin, high, true);
        Ok(Box::new(SimOutput {
            pin,
            shared: self.shared.clone(),
        }))
    }

    fn input(&self, pin: u8, pull: Pull) -> Result<RawInput, GpioError> {
        let mut state = self.shared.lock();
        if state.outputs.contains_key(&pin) || state.inputs.contains_key(&pin) {
            return Err(GpioError::Pin {
                pin,
                detail: "already claimed".into(),
            });
        }
        let level = state.driven.get(&pin).copied().unwrap_or(pull == Pull::Up);
        let (tx, levels) = watch::channel(level);
        state.inputs.insert(pin, tx);
        Ok(RawInput {
            levels,
            hold: Box::new(InputClaim {
                pin,
                shared: self.shared.clone(),
            }),
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.cancel.cancel();
            self.connections.close();
            self.connections.wait().await;
            let _ = std::fs::remove_file(&self.path);
        })
    }
}

impl Drop for SimGpio {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

struct SimOutput {
    pin: u8,
    shared: Arc<Shared>,
}

impl Driver for SimOutput {
    fn write(&mut self, high: bool) {
        self.shared.write(self.pin, high, false);
    }
}

/// A claimed input. Dropped, the pin is free again, for the front a
/// reload starts.
struct InputClaim {
    pin: u8,
    shared: Arc<Shared>,
}

impl Drop for InputClaim {
    fn drop(&mut self) {
        self.shared.lock().inputs.remove(&self.pin);
    }
}

async fn accept(
    listener: UnixListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, shared.clone(), cancel.clone()));
                }
                Err(e) => {
                    warn!("simulated GPIO: accept failed: {e}");
                    return;
                }
            },
        }
    }
}

/// One client: the outputs' state, then every change, until the client
/// leaves or the simulator closes (after sending what is queued).
async fn serve(stream: UnixStream, shared: Arc<Shared>, cancel: CancellationToken) {
    let (read, mut write) = stream.into_split();
    let (snapshot, mut changes) = {
        let state = shared.lock();
        (state.outputs.clone(), shared.changes.subscribe())
    };
    debug!("simulated GPIO: client connected");
    if send_state(&mut write, &snapshot).await.is_err() {
        return;
    }
    let mut lines = BufReader::new(read).lines();
    loop {
        let sent = tokio::select! {
            change = changes.recv() => match change {
                Ok(line) => write.write_all(line.as_bytes()).await,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let snapshot = shared.lock().outputs.clone();
                    send_state(&mut write, &snapshot).await
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            text = lines.next_line() => match text {
                Ok(Some(text)) => match shared.apply(&text) {
                    Ok(()) => Ok(()),
                    Err(e) => write.write_all(format!("err {e}\n").as_bytes()).await,
                },
                _ => break,
            },
            _ = cancel.cancelled() => {
                while let Ok(line) = changes.try_recv() {
                    if write.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
                break;
            }
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

async fn send_state(
    write: &mut (impl AsyncWrite + Unpin),
    outputs: &BTreeMap<u8, bool>,
) -> io::Result<()> {
    for (&pin, &high) in outputs {
        write.write_all(line("out", pin, high).as_bytes()).await?;
    }
    Ok(())
}

/// What a [`SimClient`] has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The last level of every output the daemon has claimed.
    pub outputs: BTreeMap<u8, bool>,
    /// Every `out` line, in order (the state sent on connect first): a
    /// pulse shows as its two lines even when it is over by now.
    pub log: Vec<(u8, bool)>,
    /// `err` lines.
    pub errors: Vec<String>,
    /// The daemon closed the connection (it stopped).
    pub closed: bool,
}

/// The client end of a [`SimGpio`] socket: drives inputs, records outputs.
pub struct SimClient {
    write: OwnedWriteHalf,
    seen: Arc<Mutex<Seen>>,
    /// Counts lines received (and the close), to wait on.
    events: watch::Receiver<usize>,
    reader: JoinHandle<()>,
}

impl SimClient {
    pub async fn connect(path: &Path) -> io::Result<SimClient> {
        let (read, write) = UnixStream::connect(path).await?.into_split();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (count, events) = watch::channel(0);
        let record = seen.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(text)) = lines.next_line().await {
                let mut seen = record.lock().unwrap_or_else(|p| p.into_inner());
                match parse(&text) {
                    Some(("out", pin, high)) => {
                        seen.outputs.insert(pin, high);
                        seen.log.push((pin, high));
                    }
                    _ => seen.errors.push(text),
                }
                drop(seen);
                count.send_modify(|n| *n += 1);
            }
            record.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
            count.send_modify(|n| *n += 1);
        });
        Ok(SimClient {
            write,
            seen,
            events,
            reader,
        })
    }

    /// Drives input `pin` to an electrical level.
    pub async fn set(&mut self, pin: u8, high: bool) -> io::Result<()> {
        self.write
            .write_all(line("set", pin, high).as_bytes())
            .await
    }

    /// A copy of everything seen so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until more than `events` lines (or the close) have arrived in
    /// all; returns the new count. Pass the count returned last time.
    pub async fn changed(&mut self, events: usize) -> usize {
        let _ = self.events.wait_for(|n| *n > events).await;
        let n = *self.events.borrow();
        n
    }
}

impl Drop for SimClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ActiveLevel, InputPinConfig};
    use crate::gpio::Pins;
    use std::time::Duration;

    async fn until(client: &mut SimClient, cond: impl Fn(&Seen) -> bool) -> Seen {
        let mut n = 0;
        loop {
            let seen = client.seen();
            if cond(&seen) {
                return seen;
            }
            assert!(!seen.closed, "closed before the condition held: {seen:?}");
            n = tokio::time::timeout(Duration::from_secs(10), client.changed(n))
                .await
                .expect("simulated GPIO went quiet");
        }
    }

    #[tokio::test]
    async fn clients_see_outputs_and_drive_inputs_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpio.sock");
        let sim = Arc::new(SimGpio::bind(&path).unwrap());
        let pins = Pins::new(sim.clone(), Duration::from_millis(1));
        let mut lock = pins.output(5, true).unwrap();

        let mut client = SimClient::connect(&path).await.unwrap();
        until(&mut client, |s| s.outputs.get(&5) == Some(&true)).await;
        lock.set(true);
        until(&mut client, |s| s.outputs.get(&5) == Some(&false)).await;

        // Set before the input is claimed: it reads that level, not its pull.
        client.set(26, false).await.unwrap();
        client.set(99, true).await.unwrap();
        client.set(5, true).await.unwrap();
        let seen = until(&mut client, |s| s.errors.len() == 1).await;
        assert!(seen.errors[0].contains("is an output"), "{seen:?}");
        let mut door = pins
            .input(&InputPinConfig {
                pin: 26,
                active: ActiveLevel::High,
                pull: Pull::Up,
                debounce: None,
            })
            .unwrap();
        assert!(!door.is_active());
        client.set(26, true).await.unwrap();
        let edge = tokio::time::timeout(Duration::from_secs(10), door.next())
            .await
            .unwrap()
            .unwrap();
        assert!(edge.active);

        drop(lock);
        sim.close().await;
        let seen = until(&mut client, |s| s.closed).await;
        assert_eq!(seen.log, [(5, true), (5, false), (5, true)]);
        assert!(!path.exists(), "the socket is removed on close");
    }

    #[test]
    fn lines_parse_strictly() {
        assert_eq!(parse("set 4 1"), Some(("set", 4, true)));
        assert_eq!(parse("out 27 0"), Some(("out", 27, false)));
        for bad in [
            "",
            "set",
            "set 4",
            "set 4 2",
            "set x 1",
            "set 4 1 extra",
            "set 300 1",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(line("out", 5, true), "out 5 1\n");
    }
}
