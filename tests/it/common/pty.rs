//! A pseudo-terminal standing in for a serial reader.
//!
//! The test holds the master side ("the reader"), the library's
//! [`AsyncSimPort`] as the demo uses it; the daemon opens the slave through a
//! stable symlink, as it would open `/dev/serial/by-id/...`.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use custodyd::demo::uhf::{Command, Line, ReaderSim};
use custodyd::demo::{AsyncSimPort, SimPort};
use tempfile::TempDir;

use super::{wait_until, PATIENCE};

nix::ioctl_none_bad!(tiocnxcl, libc::TIOCNXCL);
nix::ioctl_read_bad!(tiocgexcl, libc::TIOCGEXCL, libc::c_int);

/// A pty pair plus a symlink to its slave that survives unplug/replug.
pub struct Pty {
    /// Holds the symlink; removed with the Pty.
    _dir: TempDir,
    link: PathBuf,
    /// `None` while unplugged. Its slave is held open, never read: while
    /// any slave fd is open the master does not see a hangup (EIO) between
    /// the daemon closing and reopening the port, and bytes written to the
    /// master wait in the slave's input queue.
    pair: Option<AsyncSimPort>,
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
        self.pair().path()
    }

    /// Sends bytes as the reader would, all of them. Panics if they cannot
    /// all be queued within [`PATIENCE`]: the pty's buffers (some tens of
    /// KiB) are full because nobody reads the port.
    pub async fn write(&self, bytes: &[u8]) {
        match tokio::time::timeout(PATIENCE, self.pair().write(bytes)).await {
            Ok(written) => written.expect("write to pty master"),
            Err(_elapsed) => {
                let (n, link) = (bytes.len(), self.link.display());
                panic!("pty write of {n} bytes stuck for {PATIENCE:?}: is anyone reading {link}?");
            }
        }
    }

    /// Bytes the daemon wrote to the port (commands to the reader): waits
    /// up to `timeout` for the first, then returns everything already there.
    /// Empty if nothing came.
    pub async fn read_available(&self, timeout: Duration) -> Vec<u8> {
        self.pair()
            .read_available(timeout)
            .await
            .expect("read from pty master")
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
        unsafe { tiocnxcl(self.pair().slave().as_raw_fd()) }.expect("ioctl TIOCNXCL");
    }

    /// Whether someone holds the port exclusively (TIOCGEXCL).
    pub fn is_exclusive(&self) -> bool {
        let mut flag: libc::c_int = 0;
        // SAFETY: TIOCGEXCL writes one int through the pointer.
        unsafe { tiocgexcl(self.pair().slave().as_raw_fd(), &mut flag) }.expect("ioctl TIOCGEXCL");
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
        let pair = SimPort::open()
            .and_then(SimPort::into_async)
            .expect("open a pty");
        std::os::unix::fs::symlink(pair.path(), &self.link).expect("create pty symlink");
        self.pair = Some(pair);
    }

    fn pair(&self) -> &AsyncSimPort {
        self.pair
            .as_ref()
            .expect("the pty is unplugged; replug() it first")
    }
}

/// The line of a simulated UHF reader, which follows the pty through
/// unplug and replug.
impl Line for Pty {
    async fn read_available(&self, timeout: Duration) -> io::Result<Vec<u8>> {
        Ok(Pty::read_available(self, timeout).await)
    }

    async fn write(&self, bytes: &[u8]) -> io::Result<()> {
        Pty::write(self, bytes).await;
        Ok(())
    }
}

/// Waits until the commands `sim` has received so far satisfy `cond`.
pub async fn wait_commands(sim: &ReaderSim, what: &str, cond: impl Fn(&[Command]) -> bool) {
    wait_until(PATIENCE, what, || cond(&sim.commands())).await;
}
