//! A pseudo-terminal standing in for a serial reader.
//!
//! The test holds the master side ("the reader"); the daemon opens the slave
//! through a stable symlink, as it would open `/dev/serial/by-id/...`.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::FutureExt;
use nix::fcntl::{open, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tempfile::TempDir;
use tokio::io::unix::AsyncFd;

use super::PATIENCE;

nix::ioctl_none_bad!(tiocnxcl, libc::TIOCNXCL);
nix::ioctl_read_bad!(tiocgexcl, libc::TIOCGEXCL, libc::c_int);

/// A pty pair plus a symlink to its slave that survives unplug/replug.
pub struct Pty {
    /// Holds the symlink; removed with the Pty.
    _dir: TempDir,
    link: PathBuf,
    /// `None` while unplugged.
    pair: Option<Pair>,
}

struct Pair {
    master: AsyncFd<PtyMaster>,
    /// Held open, never read: while any slave fd is open the master does not
    /// see a hangup (EIO) between the daemon closing and reopening the port,
    /// and bytes written to the master wait in the slave's input queue.
    slave: OwnedFd,
    slave_path: PathBuf,
}

impl Pty {
    /// A new pty with its symlink at `<tempdir>/ttyREADER0`. Needs a tokio
    /// runtime (the master is registered with it).
    pub fn open() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("custodyd-pty-")
            .tempdir()
            .expect("create pty tempdir");
        let link = dir.path().join("ttyREADER0");
        let mut pty = Pty {
            _dir: dir,
            link,
            pair: None,
        };
        pty.replug();
        pty
    }

    /// The stable device path to put in the daemon's config.
    pub fn path(&self) -> &Path {
        &self.link
    }

    /// The current `/dev/pts/N` behind [`Pty::path`]; changes on replug.
    pub fn slave_path(&self) -> &Path {
        &self.pair().slave_path
    }

    /// Sends bytes as the reader would, all of them. Panics if they cannot
    /// all be queued within [`PATIENCE`]: the pty's buffers (some tens of
    /// KiB) are full because nobody reads the port.
    pub async fn write(&self, bytes: &[u8]) {
        let master = &self.pair().master;
        let all = async {
            let mut rest = bytes;
            while !rest.is_empty() {
                let mut ready = master.writable().await.expect("pty master writable");
                match ready.try_io(|m| (&mut m.get_ref()).write(rest)) {
                    Ok(Ok(n)) => rest = &rest[n..],
                    Ok(Err(e)) => panic!("write to pty master: {e}"),
                    Err(_would_block) => continue,
                }
            }
        };
        if tokio::time::timeout(PATIENCE, all).await.is_err() {
            let (n, link) = (bytes.len(), self.link.display());
            panic!("pty write of {n} bytes stuck for {PATIENCE:?}: is anyone reading {link}?");
        }
    }

    /// Bytes the daemon wrote to the port (commands to the reader): waits
    /// up to `timeout` for the first, then returns everything already there.
    /// Empty if nothing came.
    pub async fn read_available(&self, timeout: Duration) -> Vec<u8> {
        let master = &self.pair().master;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let ready = if out.is_empty() {
                match tokio::time::timeout_at(deadline, master.readable()).await {
                    Ok(ready) => ready,
                    Err(_elapsed) => return out,
                }
            } else {
                // Got something: take only what is already there.
                match master.readable().now_or_never() {
                    Some(ready) => ready,
                    None => return out,
                }
            };
            let mut ready = ready.expect("pty master readable");
            match ready.try_io(|m| (&mut m.get_ref()).read(&mut buf)) {
                Ok(Ok(0)) => return out,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("read from pty master: {e}"),
                // Readiness was stale; try_io cleared it, so the next
                // readable() waits for real data.
                Err(_would_block) => {}
            }
        }
    }

    /// Forgets that the port was opened exclusively, as the kernel does when
    /// the last fd of a real serial device closes.
    ///
    /// custodyd opens ports with TIOCEXCL (tokio-serial's default). Here the
    /// harness's own slave fd keeps the tty alive, so after the daemon is
    /// SIGKILLed (no TIOCNXCL on the way out) the flag stays and a non-root
    /// reopen fails with EBUSY; root is exempt, so CI would not notice. Call
    /// this between [`Daemon::kill`] and [`Daemon::restart`].
    ///
    /// [`Daemon::kill`]: super::Daemon::kill
    /// [`Daemon::restart`]: super::Daemon::restart
    pub fn release_exclusive(&self) {
        // SAFETY: TIOCNXCL takes no argument; the fd is open and ours.
        unsafe { tiocnxcl(self.pair().slave.as_raw_fd()) }.expect("ioctl TIOCNXCL");
    }

    /// Whether someone holds the port exclusively (TIOCGEXCL).
    pub fn is_exclusive(&self) -> bool {
        let mut flag: libc::c_int = 0;
        // SAFETY: TIOCGEXCL writes one int through the pointer.
        unsafe { tiocgexcl(self.pair().slave.as_raw_fd(), &mut flag) }.expect("ioctl TIOCGEXCL");
        flag != 0
    }

    /// Pulls the cable: closes both ends, so the daemon's open port hangs up,
    /// and removes the symlink, so reopening fails with NotFound.
    pub fn unplug(&mut self) {
        self.pair = None;
        match std::fs::remove_file(&self.link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", self.link.display()),
        }
    }

    /// Plugs a new reader in at the same path: a new pty (the /dev/pts number
    /// may differ), the symlink re-pointed at it. Unplugs first if needed.
    pub fn replug(&mut self) {
        self.unplug();
        let pair = Pair::open();
        std::os::unix::fs::symlink(&pair.slave_path, &self.link).expect("create pty symlink");
        self.pair = Some(pair);
    }

    fn pair(&self) -> &Pair {
        self.pair
            .as_ref()
            .expect("the pty is unplugged; replug() it first")
    }
}

impl Pair {
    /// Opened with posix_openpt + open rather than openpty(3) so both fds are
    /// O_CLOEXEC from the start: the tests spawn processes from parallel
    /// threads, and an inherited master would keep a "closed" pty alive in
    /// some unrelated mosquitto or custodyd, so unplug would not hang up.
    fn open() -> Self {
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let master = posix_openpt(flags | OFlag::O_NONBLOCK).expect("posix_openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let slave_path = PathBuf::from(ptsname_r(&master).expect("ptsname_r"));
        let slave = open(&slave_path, flags, Mode::empty())
            .unwrap_or_else(|e| panic!("open {}: {e}", slave_path.display()));
        // Raw: no echo back to the master, no CR/LF translation, no line
        // buffering, so bytes pass through exactly as a serial line's would.
        let mut termios = tcgetattr(&slave).expect("tcgetattr on pty slave");
        cfmakeraw(&mut termios);
        tcsetattr(&slave, SetArg::TCSANOW, &termios).expect("tcsetattr raw on pty slave");
        // SAFETY: PtyMaster owns its fd and always returns that same fd; it
        // is closed only when the AsyncFd (its sole owner) is dropped.
        let master = unsafe { AsyncFd::register(master) }
            .unwrap_or_else(|e| panic!("register pty master with tokio: {e}"));
        Pair {
            master,
            slave,
            slave_path,
        }
    }
}
