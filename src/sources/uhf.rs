//! Driving the command/reply UHF readers (`uhf-a0`, `chafon`).
//!
//! Unlike the 125 kHz readers and scanners, these read only while asked:
//! each inventory command runs one round and the reader then waits for the
//! next. So while the port is open, custodyd sends rounds back to back,
//! cycling the configured antennas, and turns the tag records into reads.
//!
//! - `uhf-a0` (R2000/E710): Reset, then per antenna Set Work Antenna (0x74)
//!   and one Real-time Inventory (0x89), or Customized Session Inventory
//!   (0x8B) when `session` or `target` is set. Fast Switch (0x8A) is not
//!   used: 0x74 plus a round works alike on 4- and 8-port firmware, whereas
//!   0x8A's 8-port layout differs and its round-end layout is disputed
//!   (the vendor's R2000 demo, `ProcessInventoryReal`); per-antenna rounds also make each error reply name its
//!   antenna. With one antenna, 0x74 is sent only after a reset.
//! - `chafon`: Get Reader Info, then per antenna one inventory (0x01) in
//!   answer mode, reading answer frames while their status says more follow.
//!
//! Error replies (an antenna missing, ...) are counted and logged once per
//! antenna state change, never fatal; the failing antennas are shown on the
//! status topic. A command unanswered for
//! `reply_timeout` makes the driver recover: an A0 reader is reset, a Chafon
//! reader (whose protocol has no reset) is asked for its info. If that gets
//! no answer either, the session ends as lost, and the reopen loop reports the
//! reader down and reopens the port with backoff.

use std::convert::Infallible;
use std::io;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{sleep_until, Duration, Instant};
use tokio_serial::{SerialPortBuilderExt, SerialStream};
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{run_with_reopen, Downstream, DropReport, Ended};
use crate::bus::ReaderState;
use crate::config::{ReaderConfig, Target, UhfProtocol};
use crate::decode::{
    A0Codec, A0Command, A0Event, A0Message, ChafonCodec, ChafonCommand, ChafonEvent, ChafonMessage,
    ChafonVariant, DropReason, Inventory288, RawRead,
};

/// How long an R2000 module is left to reboot after a Reset, which it does
/// not answer; anything it sends meanwhile is discarded.
const RESET_SETTLE: Duration = Duration::from_millis(500);
/// A0 status byte of a successful setter.
const A0_SUCCESS: u8 = 0x10;
/// One A0 round per inventory command.
const A0_REPEAT: u8 = 1;
/// Chafon 288 inventory: Q 4 (16 slots) suits the handful of tags in a door
/// at once; each round is limited to 500 ms (ScanTime in 100 ms units) so
/// the antennas take turns quickly.
const CHAFON_Q: u8 = 4;
const CHAFON_SCAN_TIME: u8 = 5;
const CHAFON_SCAN_UNIT: Duration = Duration::from_millis(100);
/// Chafon inventory command byte, echoed by its answers, and the status of
/// success; any other status without a tag list is an error reply.
const CHAFON_INVENTORY: u8 = 0x01;
const CHAFON_OK: u8 = 0x00;
const CHAFON_ANTENNA_ERROR: u8 = 0xF8;
/// "No tag operable": some firmware answers an inventory that found nothing
/// with this status instead of an empty tag list (the Chafon "UHFReader18 User's Manual", unverified);
/// either way the antenna works.
const CHAFON_NO_TAG: u8 = 0xFB;

/// A serial reader that reads only while asked.
pub struct UhfReader {
    pub config: ReaderConfig,
    /// The reader's `protocol`.
    pub protocol: UhfProtocol,
    pub link: Downstream,
}

impl UhfReader {
    pub async fn run(self, cancel: CancellationToken) {
        let config = &self.config;
        let path = config.path.display().to_string();
        run_with_reopen(
            &self.link,
            &config.path,
            config.reopen_max,
            &cancel,
            || tokio_serial::new(&path, config.baud()).open_native_async(),
            |port| drive(&self, port, &cancel),
        )
        .await
    }
}

/// Drives the reader on `port` until the session ends.
async fn drive(reader: &UhfReader, port: SerialStream, cancel: &CancellationToken) -> Ended {
    let ended = match reader.protocol {
        UhfProtocol::Chafon => {
            let variant = reader.config.chafon_variant();
            let codec = ChafonCodec::new(variant, reader.config.address());
            ChafonDriver {
                session: Session::new(reader, port, codec, cancel),
                variant,
            }
            .run()
            .await
        }
        UhfProtocol::A0 => {
            let codec = A0Codec::new(reader.config.address());
            A0Driver {
                session: Session::new(reader, port, codec, cancel),
                work_antenna: None,
            }
            .run()
            .await
        }
    };
    match ended {
        Err(ended) => ended,
        Ok(never) => match never {},
    }
}

/// The framed port plus what both drivers keep per session.
struct Session<'a, C> {
    frames: Framed<SerialStream, C>,
    reader: &'a UhfReader,
    cancel: &'a CancellationToken,
    drops: DropReport,
    faults: Faults,
    /// A recovery (reset or probe) was sent and nothing has answered since:
    /// the next unanswered command means the reader is lost.
    recovering: bool,
    /// At a door with read windows: read only while `true`.
    reading: Option<watch::Receiver<bool>>,
}

impl<'a, C> Session<'a, C> {
    fn new(
        reader: &'a UhfReader,
        port: SerialStream,
        codec: C,
        cancel: &'a CancellationToken,
    ) -> Self {
        Session {
            frames: Framed::new(port, codec),
            reader,
            cancel,
            drops: DropReport::default(),
            faults: Faults::default(),
            recovering: false,
            reading: reader.link.reading.clone(),
        }
    }

    /// At a door with read windows, waits until one is open: between
    /// windows the reader idles, sent nothing.
    async fn wait_for_window(&mut self) -> Result<(), Ended> {
        let Some(reading) = &mut self.reading else {
            return Ok(());
        };
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Ended::Cancelled),
            open = reading.wait_for(|open| *open) => open.map(drop).map_err(|_| Ended::PipelineClosed),
        }
    }

    fn name(&self) -> &str {
        &self.reader.link.info.name
    }

    fn reply_timeout(&self) -> Duration {
        self.reader.config.reply_timeout()
    }

    async fn send<T>(&mut self, command: T) -> Result<(), Ended>
    where
        C: Encoder<T, Error = io::Error>,
    {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Ended::Cancelled),
            sent = self.frames.send(command) => sent.map_err(|e| Ended::Lost(e.to_string())),
        }
    }

    /// The next decoded item, or `None` if nothing arrives by `deadline`.
    /// Cancel-safe: a frame half-read stays in the `Framed` buffer.
    async fn next_before<E>(&mut self, deadline: Instant) -> Result<Option<E>, Ended>
    where
        C: Decoder<Item = E, Error = io::Error>,
    {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Ended::Cancelled),
            _ = sleep_until(deadline) => Ok(None),
            item = self.frames.next() => match item {
                Some(Ok(item)) => Ok(Some(item)),
                Some(Err(e)) => Err(Ended::Lost(e.to_string())),
                None => Err(Ended::Lost("device closed".into())),
            },
        }
    }

    /// The next message, counting dropped frames; any message proves the
    /// reader answers. `None` once `deadline` passes: the caller then sends
    /// `recovery`, unless the last recovery, or the first command of the
    /// session, went unanswered too, which ends the session as lost.
    async fn next_message<E: ReaderEvent>(
        &mut self,
        deadline: Instant,
        recovery: &str,
    ) -> Result<Option<E::Message>, Ended>
    where
        C: Decoder<Item = E, Error = io::Error>,
    {
        loop {
            match self.next_before(deadline).await? {
                Some(event) => match event.message() {
                    Ok(message) => {
                        self.recovering = false;
                        return Ok(Some(message));
                    }
                    Err(reason) => self.dropped(reason),
                },
                None if self.recovering => {
                    return Err(Ended::Lost(format!(
                        "no answer within {:?}, even after {recovery}",
                        self.reply_timeout()
                    )))
                }
                None => {
                    warn!(reader = %self.name(), "no answer within {:?}; {recovery}", self.reply_timeout());
                    return Ok(None);
                }
            }
        }
    }

    /// Every antenna failed a whole cycle: waits a `reply_timeout` before
    /// the next, so a reader that answers errors at once is not polled in a
    /// tight loop.
    async fn idle(&self) -> Result<(), Ended> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Ended::Cancelled),
            _ = tokio::time::sleep(self.reply_timeout()) => Ok(()),
        }
    }

    async fn deliver(&self, raw: RawRead) -> Result<(), Ended> {
        self.reader.link.deliver_read(&raw).await
    }

    fn dropped(&mut self, reason: DropReason) {
        self.reader.link.dropped(&mut self.drops, reason);
    }

    async fn failed(&mut self, antenna: u8, code: u8, meaning: &str) {
        self.reader.link.metrics.error_reply();
        if self
            .faults
            .failed(&self.reader.link.info.name, antenna, code, meaning)
        {
            self.report_health().await;
        }
    }

    async fn answered(&mut self, antenna: u8) {
        if self.faults.answered(&self.reader.link.info.name, antenna) {
            self.report_health().await;
        }
    }

    /// The failing antennas go to the status topic; the reopen loop's
    /// report of the reader going down clears them.
    async fn report_health(&self) {
        let _ = self
            .reader
            .link
            .states
            .send(ReaderState {
                reader: self.reader.link.info.name.clone(),
                up: true,
                failing_antennas: self.faults.failing(),
            })
            .await;
    }
}

/// A decoded frame of either protocol: a message, or a frame dropped.
trait ReaderEvent {
    type Message;
    fn message(self) -> Result<Self::Message, DropReason>;
}

impl ReaderEvent for A0Event {
    type Message = A0Message;
    fn message(self) -> Result<A0Message, DropReason> {
        match self {
            A0Event::Message(message) => Ok(message),
            A0Event::Dropped(reason) => Err(reason),
        }
    }
}

impl ReaderEvent for ChafonEvent {
    type Message = ChafonMessage;
    fn message(self) -> Result<ChafonMessage, DropReason> {
        match self {
            ChafonEvent::Message(message) => Ok(message),
            ChafonEvent::Dropped(reason) => Err(reason),
        }
    }
}

/// Error replies per antenna: each one counted, logged when an antenna's
/// state changes (a missing antenna is not re-logged every round).
#[derive(Default)]
struct Faults {
    /// The last error code per 1-based antenna, `None` while it works.
    failing: [Option<u8>; 8],
    total: u64,
}

impl Faults {
    /// Returns whether the antenna's state changed.
    fn failed(&mut self, reader: &str, antenna: u8, code: u8, meaning: &str) -> bool {
        self.total += 1;
        let slot = &mut self.failing[usize::from(antenna - 1)];
        let changed = slot.replace(code) != Some(code);
        if changed {
            warn!(
                reader,
                antenna,
                "antenna {antenna}: {meaning} (error 0x{code:02X}); inventorying the other \
                 antennas, {} error replies since the port was opened",
                self.total
            );
        }
        changed
    }

    /// Returns whether the antenna's state changed.
    fn answered(&mut self, reader: &str, antenna: u8) -> bool {
        let changed = self.failing[usize::from(antenna - 1)].take().is_some();
        if changed {
            info!(reader, antenna, "antenna {antenna} inventories again");
        }
        changed
    }

    fn failing(&self) -> Vec<u8> {
        (1..)
            .zip(&self.failing)
            .filter_map(|(antenna, code)| code.map(|_| antenna))
            .collect()
    }
}

struct A0Driver<'a> {
    session: Session<'a, A0Codec>,
    /// Set by a successful 0x74; a reset forgets it.
    work_antenna: Option<u8>,
}

impl A0Driver<'_> {
    async fn run(mut self) -> Result<Infallible, Ended> {
        self.reset().await?;
        let config = &self.session.reader.config;
        let antennas = config.antennas().to_vec();
        let inventory = match (config.session, config.target) {
            (None, None) => A0Command::RealTimeInventory { repeat: A0_REPEAT },
            (session, target) => A0Command::SessionInventory {
                session: session.unwrap_or(0),
                target: u8::from(target == Some(Target::B)),
                repeat: A0_REPEAT,
            },
        };
        loop {
            let mut any_answered = false;
            for &antenna in &antennas {
                self.session.wait_for_window().await?;
                if self.work_antenna != Some(antenna) && !self.set_antenna(antenna).await? {
                    continue;
                }
                any_answered |= self.round(antenna, inventory.clone()).await?;
            }
            if !any_answered {
                self.session.idle().await?;
            }
        }
    }

    /// Sends Reset and discards whatever arrives while the module reboots.
    async fn reset(&mut self) -> Result<(), Ended> {
        self.session.send(A0Command::Reset).await?;
        self.session.recovering = true;
        self.work_antenna = None;
        let settled = Instant::now() + RESET_SETTLE;
        while let Some(event) = self.session.next_before(settled).await? {
            if let A0Event::Message(A0Message::Reply { cmd, data }) = event {
                if cmd == A0Command::Reset.code() {
                    warn!(reader = %self.session.name(), "reset refused: {data:02X?}");
                }
            }
        }
        Ok(())
    }

    /// The next message, or `None` once `deadline` passes (after which the
    /// reader has been reset).
    async fn next_message(&mut self, deadline: Instant) -> Result<Option<A0Message>, Ended> {
        let message = self
            .session
            .next_message(deadline, "resetting the reader")
            .await?;
        if message.is_none() {
            self.reset().await?;
        }
        Ok(message)
    }

    /// 0x74; `true` if the reader switched.
    async fn set_antenna(&mut self, antenna: u8) -> Result<bool, Ended> {
        let command = A0Command::SetWorkAntenna(antenna - 1);
        let code = command.code();
        self.session.send(command).await?;
        let deadline = Instant::now() + self.session.reply_timeout();
        loop {
            match self.next_message(deadline).await? {
                None => return Ok(false),
                Some(A0Message::Reply { cmd, data }) if cmd == code => {
                    let status = data.first().copied().unwrap_or_default();
                    if status == A0_SUCCESS {
                        self.work_antenna = Some(antenna);
                        return Ok(true);
                    }
                    self.session
                        .failed(antenna, status, a0_error_meaning(status))
                        .await;
                    return Ok(false);
                }
                Some(other) => self.unexpected(&other),
            }
        }
    }

    /// One inventory round on the work antenna: tags until the round's end
    /// (`true`) or an error reply. The deadline runs from the last frame, so
    /// a round with many tags may take longer than `reply_timeout`.
    async fn round(&mut self, antenna: u8, inventory: A0Command) -> Result<bool, Ended> {
        let code = inventory.code();
        self.session.send(inventory).await?;
        let mut deadline = Instant::now() + self.session.reply_timeout();
        loop {
            match self.next_message(deadline).await? {
                None => return Ok(false),
                Some(A0Message::Tag(tag)) => self.session.deliver(tag.into()).await?,
                Some(A0Message::RoundEnd {
                    read_rate,
                    total_reads,
                    ..
                }) => {
                    self.session.answered(antenna).await;
                    debug!(reader = %self.session.name(), antenna, read_rate, total_reads, "round ended");
                    return Ok(true);
                }
                Some(A0Message::Error { cmd, code: error }) if cmd == code => {
                    self.session
                        .failed(antenna, error, a0_error_meaning(error))
                        .await;
                    return Ok(false);
                }
                Some(other) => self.unexpected(&other),
            }
            deadline = Instant::now() + self.session.reply_timeout();
        }
    }

    /// Say a late reply to a command already given up on.
    fn unexpected(&self, message: &A0Message) {
        debug!(reader = %self.session.name(), ?message, "ignored: not an answer to the pending command");
    }
}

/// The commonest error codes (node-r2k's `CommandErrorBase`), for the log.
fn a0_error_meaning(code: u8) -> &'static str {
    match code {
        0x11 => "command failed",
        0x22 => "antenna missing",
        0x31 => "tag inventory error",
        0x41 => "invalid parameter",
        0x47 => "antenna id out of range",
        0x53 => "no response from the RF chip",
        _ => "error reply",
    }
}

struct ChafonDriver<'a> {
    session: Session<'a, ChafonCodec>,
    variant: ChafonVariant,
}

impl ChafonDriver<'_> {
    async fn run(mut self) -> Result<Infallible, Ended> {
        self.probe().await?;
        let antennas = self.session.reader.config.antennas().to_vec();
        loop {
            let mut any_answered = false;
            for &antenna in &antennas {
                self.session.wait_for_window().await?;
                any_answered |= self.inventory(antenna).await?;
            }
            if !any_answered {
                self.session.idle().await?;
            }
        }
    }

    /// Get Reader Info: logs what answers; lost if nothing does.
    async fn probe(&mut self) -> Result<(), Ended> {
        self.session.send(ChafonCommand::GetReaderInfo).await?;
        self.session.recovering = true;
        let deadline = Instant::now() + self.session.reply_timeout();
        loop {
            match self.next_message(deadline).await? {
                None => return Ok(()),
                Some(ChafonMessage::ReaderInfo(info)) => {
                    let detected = ChafonVariant::for_reader_type(info.reader_type);
                    if detected.is_some_and(|v| v != self.variant) {
                        warn!(reader = %self.session.name(), "the reader says it is a {detected:?}, not the configured {:?}: check chafon_variant", self.variant);
                    }
                    info!(reader = %self.session.name(), firmware = ?info.firmware, reader_type = info.reader_type, "chafon reader answers");
                    return Ok(());
                }
                Some(_) => {}
            }
        }
    }

    /// The next message, or `None` once `deadline` passes (after which the
    /// reader has been probed).
    async fn next_message(&mut self, deadline: Instant) -> Result<Option<ChafonMessage>, Ended> {
        let message = self
            .session
            .next_message(deadline, "asking for the reader's info")
            .await?;
        if message.is_none() {
            Box::pin(self.probe()).await?;
        }
        Ok(message)
    }

    /// One inventory on `antenna`, reading answer frames until one says it
    /// is the last (`true`) or an error reply.
    async fn inventory(&mut self, antenna: u8) -> Result<bool, Ended> {
        let config = &self.session.reader.config;
        let command = match self.variant {
            ChafonVariant::Reader18 => ChafonCommand::Inventory18,
            ChafonVariant::Reader288 => ChafonCommand::Inventory288(Inventory288 {
                q: CHAFON_Q,
                session: config.session.unwrap_or(0),
                target: u8::from(config.target == Some(Target::B)),
                antenna,
                scan_time: CHAFON_SCAN_TIME,
            }),
        };
        self.session.send(command).await?;
        let scan = CHAFON_SCAN_UNIT * u32::from(CHAFON_SCAN_TIME);
        let mut deadline = Instant::now() + scan + self.session.reply_timeout();
        loop {
            match self.next_message(deadline).await? {
                None => return Ok(false),
                Some(ChafonMessage::Inventory { tags, more, .. }) => {
                    self.session.answered(antenna).await;
                    for tag in tags {
                        self.session.deliver(tag.into()).await?;
                    }
                    if !more {
                        return Ok(true);
                    }
                }
                Some(ChafonMessage::Reply { cmd, status, .. })
                    if cmd == CHAFON_INVENTORY && status == CHAFON_NO_TAG =>
                {
                    self.session.answered(antenna).await;
                    return Ok(true);
                }
                Some(ChafonMessage::Reply { cmd, status, .. })
                    if cmd == CHAFON_INVENTORY && status != CHAFON_OK =>
                {
                    let meaning = match status {
                        CHAFON_ANTENNA_ERROR => "antenna error",
                        _ => "error reply",
                    };
                    self.session.failed(antenna, status, meaning).await;
                    return Ok(false);
                }
                Some(_) => {}
            }
            deadline = Instant::now() + self.session.reply_timeout();
        }
    }
}
