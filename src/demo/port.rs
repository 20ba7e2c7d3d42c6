//! A simulated serial reader: a pseudo-terminal pair. The daemon opens the
//! slave side exactly as it opens a `/dev/ttyUSB0`; the simulator writes real
//! protocol frames into the master side ([`SimPort`]) and, for a reader that
//! answers commands, reads what the daemon sends ([`AsyncSimPort`]).
//!
//! Shared by `custodyd demo`, the integration tests' `Pty` and the load
//! harness, so all three feed the daemon through the same kind of line.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, PtyMaster};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A pty pair whose master is written with blocking writes: for a reader
/// that only talks (an RDM6300, a serial scanner), fed from a plain thread
/// or a task.
pub struct SimPort {
    master: PtyMaster,
    /// Held open so the pty stays up while the daemon reopens it and bytes
    /// written meanwhile wait in its input queue; never read here, or it
    /// would steal the daemon's bytes.
    slave: OwnedFd,
    path: PathBuf,
}

impl SimPort {
    /// Opened with posix_openpt + open rather than openpty(3) so both fds
    /// are O_CLOEXEC from the start: the demo, the tests and the load
    /// harness spawn processes, and an inherited master would keep a
    /// "closed" pty alive in some unrelated mosquitto or custodyd, so closing
    /// it would not hang the reader up.
    pub fn open() -> io::Result<SimPort> {
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let master = posix_openpt(flags)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let path = PathBuf::from(ptsname_r(&master)?);
        let slave = open(&path, flags, Mode::empty())?;
        // Raw: no echo back into the master, no CR/LF translation, no line
        // buffering, so bytes pass as a serial line's would.
        let mut termios = tcgetattr(&slave)?;
        cfmakeraw(&mut termios);
        tcsetattr(&slave, SetArg::TCSANOW, &termios)?;
        Ok(SimPort {
            master,
            slave,
            path,
        })
    }

    /// The device path to put in a reader's `path`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes all of `bytes`, blocking while the pty's buffer is full.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        (&self.master).write_all(bytes)
    }

    /// The same pty with a non-blocking master registered with tokio, for a
    /// reader that also reads what the daemon sends. Needs a tokio runtime.
    pub fn into_async(self) -> io::Result<AsyncSimPort> {
        let flags = OFlag::from_bits_retain(fcntl(&self.master, FcntlArg::F_GETFL)?);
        fcntl(&self.master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: PtyMaster owns its fd and always returns that same fd; it
        // is closed only when the AsyncFd, its sole owner, is dropped.
        let master = unsafe {
            AsyncFd::register_with_interest(self.master, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(io::Error::from)?;
        Ok(AsyncSimPort {
            master,
            slave: self.slave,
            path: self.path,
        })
    }
}

/// A pty pair whose master is read and written asynchronously: the line of
/// a simulated reader that answers commands ([`super::uhf::ReaderSim`]).
pub struct AsyncSimPort {
    master: AsyncFd<PtyMaster>,
    slave: OwnedFd,
    path: PathBuf,
}

impl AsyncSimPort {
    /// The device path to put in a reader's `path` (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The slave side as the simulator holds it open: for ioctls on the port
    /// the daemon opens (its exclusive flag, say).
    pub fn slave(&self) -> BorrowedFd<'_> {
        self.slave.as_fd()
    }

    /// Sends all of `bytes` as the reader would, waiting while the pty's
    /// buffer is full (nobody reads the port).
    pub async fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let mut ready = self.master.writable().await?;
            match ready.try_io(|m| (&mut m.get_ref()).write(rest)) {
                Ok(n) => rest = &rest[n?..],
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Bytes the daemon wrote to the port (commands to the reader): waits up
    /// to `timeout` for the first, then returns everything already there.
    /// Empty if nothing came.
    pub async fn read_available(&self, timeout: Duration) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut ready = if out.is_empty() {
                match tokio::time::timeout_at(deadline, self.master.readable()).await {
                    Ok(ready) => ready?,
                    Err(_elapsed) => return Ok(out),
                }
            } else {
                // Got something: take only what is already there.
                match futures_util::FutureExt::now_or_never(self.master.readable()) {
                    Some(ready) => ready?,
                    None => return Ok(out),
                }
            };
            match ready.try_io(|m| (&mut m.get_ref()).read(&mut buf)) {
                Ok(Ok(0)) => return Ok(out),
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => return Err(e),
                // Readiness was stale; try_io cleared it, so the next
                // readable() waits for real data.
                Err(_would_block) => {}
            }
        }
    }
}

/// An RDM6300 frame for 10 hex characters of EM4100 data, with its XOR checksum.
pub fn em4100_frame(data_hex: &str) -> Vec<u8> {
    let checksum = (0..5)
        .map(|i| u8::from_str_radix(&data_hex[2 * i..2 * i + 2], 16).expect("10 hex characters"))
        .fold(0, |acc, b| acc ^ b);
    let mut frame = vec![0x02];
    frame.extend_from_slice(data_hex.as_bytes());
    frame.extend_from_slice(format!("{checksum:02X}").as_bytes());
    frame.push(0x03);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn em4100_frames_match_the_reference_vectors() {
        assert_eq!(
            em4100_frame("62E3086CED"),
            [0x02, 0x36, 0x32, 0x45, 0x33, 0x30, 0x38, 0x36, 0x43, 0x45, 0x44, 0x30, 0x38, 0x03]
        );
        assert_eq!(&em4100_frame("01000734E0")[11..13], b"D2");
    }
}
