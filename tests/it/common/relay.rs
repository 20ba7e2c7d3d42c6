//! A TCP relay between the daemon and the broker that the test can cut.
//!
//! Killing the broker also disconnects the test's own subscriber, and which of
//! the two reconnects first is a race. Cutting only the daemon's link keeps
//! the observer connected throughout, so "nothing lost" is checked by a
//! subscriber that never missed a moment. The black-hole mode is a pulled
//! cable: no FIN, no RST, bytes simply stop moving in both directions.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connections are relayed to the broker.
    Forward,
    /// Connections are accepted and closed at once; existing ones are closed.
    Refuse,
    /// Connections stay open but nothing moves either way, until the mode
    /// changes again (then they are closed, as a long-dead link would be).
    Blackhole,
}

pub struct Relay {
    port: u16,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port and relays to `127.0.0.1:target`.
    pub async fn start(target: u16, mode: Mode) -> Relay {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let (tx, rx) = watch::channel(mode);
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, target));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, target, rx.clone()));
            }
        });
        Relay {
            port,
            mode: tx,
            task,
        }
    }

    /// The URL the daemon should use.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let initial = *mode.borrow_and_update();
    match initial {
        Mode::Refuse => return,
        Mode::Blackhole => {
            let _ = mode.changed().await;
            return;
        }
        Mode::Forward => {}
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.split();
    let (mut from_server, mut to_server) = server.split();
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        tokio::select! {
            changed = mode.changed() => {
                let now = *mode.borrow_and_update();
                if changed.is_err() || now == Mode::Refuse {
                    return;
                }
                if now == Mode::Blackhole {
                    // Hold both sockets open and silent until told otherwise.
                    let _ = mode.changed().await;
                    return;
                }
            }
            n = from_client.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if to_server.write_all(&up[..n]).await.is_err() { return },
            },
            n = from_server.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if to_client.write_all(&down[..n]).await.is_err() { return },
            },
        }
    }
}
