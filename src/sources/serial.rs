//! Serial readers (`/dev/ttyUSB*`, `/dev/ttyACM*`, or their stable
//! `/dev/serial/by-id/...` names).
//!
//! A reader that streams its reads unasked (`em4100`, `ascii-line`) is read
//! the way a USB-serial adapter's latency timer hands bytes over: while it is
//! quiet its port waits in the reactor for the first byte; once bytes flow,
//! the port is taken out of the reactor and read every [`POLL_EVERY`], on a
//! grid shared by all readers, until a poll finds nothing. Read one frame at
//! a time, a reader at a thousand frames a second cost a reactor wake-up, a
//! task wake-up and two `read`s (the second finding nothing) per frame, most
//! of the daemon's CPU; polled, it costs one `read` per reader and one
//! wake-up for all readers every [`POLL_EVERY`], and frames arriving between
//! polls wake nothing (docs/performance.md). The price is at most
//! [`POLL_EVERY`] of latency.
//!
//! The command/reply UHF readers are driven by `sources::uhf` instead.

use std::io::{self, Read};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::BytesMut;
use mio_serial::SerialStream;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::{run_with_reopen, Downstream, DropReport, Ended};
use crate::config::{ReaderConfig, StreamingProtocol};
use crate::decode::{AsciiLineCodec, Decoded, Em4100Codec, ReaderCodec};

/// How often a streaming reader with bytes flowing is read: the most its
/// reads are delayed, against a p99 target of 25 ms from frame to broker.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// Bytes asked for per `read`. A reader at 9,600 baud delivers under
/// 1 KiB/s, so one call takes everything that arrived since the last poll.
const READ_CHUNK: usize = 1024;

/// A serial reader that streams its reads unasked.
pub struct StreamingReader {
    pub config: ReaderConfig,
    /// The reader's `protocol`.
    pub protocol: StreamingProtocol,
    pub link: Downstream,
}

impl StreamingReader {
    pub async fn run(self, cancel: CancellationToken) {
        let config = &self.config;
        let path = config.path.display().to_string();
        let codec = streaming_codec(self.protocol, config);
        run_with_reopen(
            &self.link,
            &config.path,
            config.reopen_max,
            &cancel,
            || SerialStream::open(&tokio_serial::new(&path, config.baud())),
            |port| self.stream(port, codec.clone(), &cancel),
        )
        .await
    }

    /// Reads a streaming reader's port until the session ends: waits for
    /// bytes, then polls until a poll finds none, and over again.
    async fn stream(
        &self,
        mut port: SerialStream,
        codec: ReaderCodec,
        cancel: &CancellationToken,
    ) -> Ended {
        let mut decoder = StreamDecoder {
            codec,
            buf: BytesMut::new(),
            drops: DropReport::default(),
        };
        loop {
            port = match until_readable(port, cancel).await {
                Ok(port) => port,
                Err(ended) => return ended,
            };
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ended::Cancelled,
                    _ = tokio::time::sleep_until(next_poll(Instant::now())) => {}
                }
                match decoder.read(&port, &self.link).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(ended) => return ended,
                }
            }
        }
    }
}

/// Waits in the reactor until `port` has bytes (or has hung up), and takes
/// it out again.
async fn until_readable(
    port: SerialStream,
    cancel: &CancellationToken,
) -> Result<SerialStream, Ended> {
    // SAFETY: the SerialStream owns its fd, keeps it open until dropped and
    // always returns that same fd; it is dropped only after `into_inner`
    // (or the AsyncFd's drop) has taken it out of the reactor.
    let port = unsafe { AsyncFd::register_with_interest(port, Interest::READABLE) }
        .map_err(|e| Ended::Lost(e.to_string()))?;
    let ready = tokio::select! {
        _ = cancel.cancelled() => return Err(Ended::Cancelled),
        ready = port.readable() => ready.map(|_| ()),
    };
    ready.map_err(|e| Ended::Lost(e.to_string()))?;
    Ok(port.into_inner())
}

/// The next point of the poll grid after `now`. One grid for all readers,
/// so readers with traffic are polled together, on one wake-up.
fn next_poll(now: Instant) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| now);
    let period = POLL_EVERY.as_nanos();
    let polls = (now - epoch).as_nanos() / period + 1;
    epoch + Duration::from_nanos(u64::try_from(polls * period).unwrap_or(u64::MAX))
}

/// A streaming reader's decoder state, kept across polls.
struct StreamDecoder {
    codec: ReaderCodec,
    /// Bytes read and not yet decoded: the start of a frame cut by a poll.
    buf: BytesMut,
    drops: DropReport,
}

impl StreamDecoder {
    /// Reads everything waiting on `port` and hands its reads on. `Ok(false)`
    /// if nothing was waiting; `Err` when the port is gone or presence is.
    async fn read(&mut self, port: &SerialStream, link: &Downstream) -> Result<bool, Ended> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut got = false;
        let eof = loop {
            match (&*port).read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => {
                    got = true;
                    self.buf.extend_from_slice(&chunk[..n]);
                    // A short read took all there was: no read to find that out.
                    if n < chunk.len() {
                        break false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) => return Err(Ended::Lost(e.to_string())),
            }
        };
        while let Some(item) = self.next(eof)? {
            link.deliver(item, &mut self.drops).await?;
        }
        if eof {
            return Err(Ended::Lost("device closed".into()));
        }
        Ok(got)
    }

    /// The next decoded item; at end of stream, the last whole ones.
    fn next(&mut self, eof: bool) -> Result<Option<Decoded>, Ended> {
        let item = if eof {
            self.codec.decode_eof(&mut self.buf)
        } else {
            self.codec.decode(&mut self.buf)
        };
        item.map_err(|e| Ended::Lost(e.to_string()))
    }
}

/// The codec of a reader that streams its reads unasked.
fn streaming_codec(protocol: StreamingProtocol, reader: &ReaderConfig) -> ReaderCodec {
    match protocol {
        StreamingProtocol::Em4100 => ReaderCodec::Em4100(Em4100Codec::new()),
        StreamingProtocol::AsciiLine => ReaderCodec::AsciiLine(AsciiLineCodec::new(
            reader.terminator(),
            reader.prefix.clone(),
            reader.suffix.clone(),
            reader.max_len,
            reader.source(),
        )),
    }
}
