//! USB HID barcode scanners ("keyboard wedges") through Linux evdev.
//!
//! The input device (`/dev/input/by-id/...-event-kbd`, stable across
//! re-plugging) is opened non-blocking and grabbed with `EVIOCGRAB`, so scans
//! reach only this daemon and never type into a console login or whatever
//! else would have keyboard focus. Raw `input_event` structs are read through
//! tokio's `AsyncFd` and turned into scans by the pure
//! [`KeyDecoder`](crate::decode::keymap::KeyDecoder); reading the structs
//! here rather than through the evdev crate keeps the daemon on the parser
//! that is tested and fuzzed, and needs only two ioctls. An unplugged scanner
//! fails the read (`ENODEV`); the device is then closed, which also releases
//! the grab, and reopened by path once it is back.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nix::errno::Errno;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{run_with_reopen, Downstream, DropReport, Ended};
use crate::config::ReaderConfig;
use crate::decode::keymap::{parse_events, EventLayout, KeyDecoder};

// EVIOCGRAB = _IOW('E', 0x90, int): 1 grabs, 0 releases (linux/input.h).
nix::ioctl_write_int!(eviocgrab, b'E', 0x90);
// EVIOCGNAME(len) = _IOC(_IOC_READ, 'E', 0x06, len): the device's name.
nix::ioctl_read_buf!(eviocgname, b'E', 0x06, u8);

/// Events read at once, at most. Each key change is three events (MSC_SCAN,
/// the key, SYN_REPORT), so a 20-character scan is some 250 of them,
/// arriving over a few reads.
const READ_EVENTS: usize = 64;

pub struct HidReader {
    pub config: ReaderConfig,
    pub link: Downstream,
}

impl HidReader {
    pub async fn run(self, cancel: CancellationToken) {
        let config = &self.config;
        let name = &self.link.info.name;
        run_with_reopen(
            &self.link,
            &config.path,
            config.reopen_max,
            &cancel,
            || {
                EventDevice::open(&config.path).inspect(
                    |device| info!(reader = %name, input = %device.name, "input device grabbed"),
                )
            },
            |device| {
                // A fresh decoder per session: keys held on a device that was
                // unplugged are not held on the one plugged in.
                let keys = KeyDecoder::new(
                    config.end_on(),
                    config.gs_substitute(),
                    config.max_len,
                    config.source(),
                );
                read_scans(&self.link, device, keys, config.scan_timeout(), &cancel)
            },
        )
        .await
    }
}

/// One session with a scanner: reads events from `device` until it fails,
/// decodes them with `keys` and delivers the scans. A scan still open
/// `scan_timeout` after the last input is flushed (dropped and counted, see
/// [`KeyDecoder::flush`]); the deadline is tokio time, so tests can pause it.
async fn read_scans<R: AsyncRead + Unpin>(
    link: &Downstream,
    mut device: R,
    mut keys: KeyDecoder,
    scan_timeout: Duration,
    cancel: &CancellationToken,
) -> Ended {
    let layout = EventLayout::NATIVE;
    let mut buf = vec![0; layout.size() * READ_EVENTS];
    let mut drops = DropReport::default();
    let mut deadline: Option<Instant> = None;
    let mut decoded = Vec::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ended::Cancelled,
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                deadline = None;
                decoded.extend(keys.flush());
            }
            read = device.read(&mut buf) => match read {
                Ok(0) => return Ended::Lost("device closed".into()),
                Ok(n) => {
                    decoded.extend(parse_events(&buf[..n], layout).filter_map(|e| keys.feed(&e)));
                    deadline = keys.is_pending().then(|| Instant::now() + scan_timeout);
                }
                Err(e) => return Ended::Lost(e.to_string()),
            },
        }
        for item in decoded.drain(..) {
            if let Err(ended) = link.deliver(item, &mut drops).await {
                return ended;
            }
        }
    }
}

/// Why an input device could not be opened and grabbed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} (the daemon needs to be in the \"input\" group)")]
    Denied(io::Error),
    #[error("{0}")]
    Open(io::Error),
    #[error("not an input event device (EVIOCGRAB: {0})")]
    NotInput(Errno),
    #[error("grabbed by another program (EVIOCGRAB: EBUSY)")]
    Busy,
    #[error("cannot grab: {0}")]
    Grab(Errno),
}

/// An evdev node, open non-blocking and grabbed. Dropping it closes the
/// file, which ends the grab.
pub struct EventDevice {
    fd: AsyncFd<File>,
    /// What the device calls itself, for the log.
    pub name: String,
}

impl EventDevice {
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => OpenError::Denied(e),
                _ => OpenError::Open(e),
            })?;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` stays open (owned by `file`) across the ioctl.
        unsafe { eviocgrab(fd, 1) }.map_err(|e| match e {
            Errno::EBUSY => OpenError::Busy,
            Errno::ENOTTY | Errno::EINVAL => OpenError::NotInput(e),
            e => OpenError::Grab(e),
        })?;
        let mut name = [0u8; 256];
        // SAFETY: `fd` is still open, and EVIOCGNAME writes at most
        // `name.len()` bytes into `name`.
        let name = match unsafe { eviocgname(fd, &mut name) } {
            Ok(len) => {
                let len = usize::try_from(len).unwrap_or(0).min(name.len());
                let name = &name[..len];
                let name = name.split(|&b| b == 0).next().unwrap_or(name);
                String::from_utf8_lossy(name).into_owned()
            }
            Err(e) => format!("(no name: {e})"),
        };
        // SAFETY: a `File` always reports the fd it owns, and closes it only
        // when dropped, which the AsyncFd (its sole owner) does last.
        let fd =
            unsafe { AsyncFd::register(file) }.map_err(|e| OpenError::Open(e.into_parts().1))?;
        Ok(EventDevice { fd, name })
    }
}

impl AsyncRead for EventDevice {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match ready.try_io(|file| (&mut file.get_ref()).read(unfilled)) {
                Ok(result) => {
                    let n = result?;
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::AsyncWriteExt;
    use tokio::sync::mpsc;

    use super::*;
    use crate::config::ReadMode;
    use crate::decode::testutil::key::{KEY_A, KEY_B, KEY_C, KEY_ENTER};
    use crate::decode::testutil::Recording;
    use crate::decode::{EndOn, Source, GS};
    use crate::presence::{Observation, ReaderInfo};

    const TIMEOUT: Duration = Duration::from_millis(500);

    #[test]
    fn the_grab_ioctl_is_the_kernels() {
        let request = nix::request_code_write!(b'E', 0x90, std::mem::size_of::<libc::c_int>());
        assert_eq!(request as u32, 0x4004_4590);
        let request = nix::request_code_read!(b'E', 0x06, 256);
        assert_eq!(request as u32, 0x8100_4506);
    }

    #[test]
    fn opening_something_that_is_not_an_input_device_says_so() {
        let missing = EventDevice::open(Path::new("/dev/input/by-id/no-such-scanner"));
        let err = missing.err().expect("a missing device does not open");
        assert!(matches!(&err, OpenError::Open(e) if e.kind() == io::ErrorKind::NotFound));
        let err = EventDevice::open(Path::new("/dev/null"))
            .err()
            .expect("/dev/null is not an input device");
        assert!(matches!(err, OpenError::NotInput(_)), "{err}");
        assert!(err.to_string().contains("not an input event device"));
    }

    fn link() -> (Downstream, mpsc::Receiver<Observation>) {
        let (reads, rx) = mpsc::channel(16);
        let (states, _) = mpsc::channel(16);
        let info = Arc::new(ReaderInfo {
            name: "station1-hid".into(),
            location: "scan-1".into(),
            mode: ReadMode::Scan,
            rescan_window: Duration::from_secs(2),
            departure_timeout: Duration::from_secs(5),
            sides: Default::default(),
        });
        (
            Downstream {
                info,
                identity: Default::default(),
                reads,
                states,
                reading: None,
                metrics: Default::default(),
            },
            rx,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_scan_left_open_for_the_timeout_is_dropped_not_joined_to_the_next() {
        let (link, mut reads) = link();
        let (mut scanner, device) = tokio::io::duplex(4096);
        let keys = KeyDecoder::new(EndOn::Enter, GS, 64, Source::Barcode);
        let cancel = CancellationToken::new();
        let session =
            tokio::spawn(async move { read_scans(&link, device, keys, TIMEOUT, &cancel).await });
        let mut type_keys = async |keys: &[u16]| {
            let r = Recording::new(EventLayout::NATIVE).taps(keys);
            scanner.write_all(&r.bytes).await.unwrap();
        };

        // A pause shorter than the timeout is part of the scan.
        type_keys(&[KEY_A, KEY_B]).await;
        tokio::time::sleep(TIMEOUT - Duration::from_millis(1)).await;
        type_keys(&[KEY_C, KEY_ENTER]).await;
        assert_eq!(&*reads.recv().await.unwrap().asset.unwrap().id, "abc");

        // A longer one ends it without a read.
        type_keys(&[KEY_A, KEY_B]).await;
        tokio::time::sleep(TIMEOUT + Duration::from_millis(1)).await;
        type_keys(&[KEY_C, KEY_ENTER]).await;
        let asset = reads.recv().await.unwrap().asset.unwrap();
        assert_eq!(&*asset.id, "c");
        assert_eq!(asset.source, Source::Barcode);

        drop(scanner);
        let ended = session.await.unwrap();
        assert!(matches!(ended, Ended::Lost(ref why) if why == "device closed"));
    }
}
