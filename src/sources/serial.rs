//! Serial readers (`/dev/ttyUSB*`, `/dev/ttyACM*`, or their stable
//! `/dev/serial/by-id/...` names) through tokio-serial.

use futures_util::StreamExt;
use tokio_serial::SerialPortBuilderExt;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::{run_with_reopen, DropReport, Ended, ReaderLink};
use crate::config::{Protocol, ReaderConfig};
use crate::decode::ReaderCodec;

/// Initial read buffer of a reader. tokio-serial zero-fills all of the
/// buffer's spare room on every read (including the one that finds nothing),
/// so FramedRead's default of 8 KiB meant 16 KiB of memset per frame at one
/// frame per read. A serial reader at 9,600 baud delivers under 1 KiB/s; the
/// buffer still grows if more arrives at once.
const READ_BUFFER: usize = 256;

pub struct SerialReader {
    pub config: ReaderConfig,
    /// The reader's `protocol`, required for serial readers.
    pub protocol: Protocol,
    pub link: ReaderLink,
}

impl SerialReader {
    pub async fn run(self, cancel: CancellationToken) {
        let path = self.config.path.display().to_string();
        run_with_reopen(
            &self.link,
            &self.config.path,
            self.config.reopen_max,
            &cancel,
            || tokio_serial::new(&path, self.config.baud()).open_native_async(),
            |port| self.session(port, &cancel),
        )
        .await
    }

    /// UHF hook: command/reply readers are driven by `sources::uhf`; the
    /// others stream and are only read.
    async fn session(&self, port: tokio_serial::SerialStream, cancel: &CancellationToken) -> Ended {
        match ReaderCodec::new(self.protocol, &self.config) {
            Some(codec) => self.read_frames(port, codec, cancel).await,
            None => super::uhf::drive(self, port, cancel).await,
        }
    }

    async fn read_frames(
        &self,
        port: tokio_serial::SerialStream,
        codec: ReaderCodec,
        cancel: &CancellationToken,
    ) -> Ended {
        let mut frames = FramedRead::with_capacity(port, codec, READ_BUFFER);
        let mut drops = DropReport::default();
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return Ended::Cancelled,
                item = frames.next() => item,
            };
            match item {
                Some(Ok(decoded)) => {
                    if let Err(ended) = self.link.deliver(decoded, &mut drops).await {
                        return ended;
                    }
                }
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                None => return Ended::Lost("device closed".into()),
            }
        }
    }
}
