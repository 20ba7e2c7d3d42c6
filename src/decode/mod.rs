//! Frame decoding: bytes from a reader into reads, one `tokio_util` codec per
//! serial protocol, and the keymap that turns a HID scanner's key events into
//! scans.
//!
//! Decoders never fail the stream: a bad frame is reported as
//! [`Decoded::Dropped`] so the reader task can count it, and the decoder
//! resynchronises on the next plausible frame start. A decoder never buffers
//! more than a small bound, whatever garbage arrives.

use std::io;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

mod ascii_line;
mod chafon;
mod em4100;
mod hex;
pub mod keymap;
/// The chunked-decode driver of the codec tests, also used by the fuzz targets.
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
mod uhf_a0;

pub use ascii_line::{AsciiLineCodec, Terminator};
pub use chafon::{
    crc16_mcrf4xx, ChafonCodec, ChafonCommand, ChafonEvent, ChafonMessage, ChafonTag,
    ChafonVariant, Inventory288, ReaderInfo, CHAFON_MAX_FRAME,
};
pub use em4100::Em4100Codec;
pub use keymap::{EndOn, GS};
pub use uhf_a0::{A0Codec, A0Command, A0Event, A0Message, TagRecord, A0_MAX_FRAME};

/// End of stream for a binary codec that resynchronises byte by byte:
/// decodes what is complete; a trailing candidate frame is cut off, not
/// corrupt, so it is skipped a byte at a time without being counted (a real
/// frame may start inside it). `skipping` is the codec's "inside a run of
/// rejected bytes" flag, which this leaves cleared.
fn decode_eof_resyncing<C: Decoder>(
    codec: &mut C,
    src: &mut BytesMut,
    skipping: fn(&mut C) -> &mut bool,
) -> Result<Option<C::Item>, C::Error> {
    loop {
        if let Some(item) = codec.decode(src)? {
            return Ok(Some(item));
        }
        if src.is_empty() {
            *skipping(codec) = false;
            return Ok(None);
        }
        bytes::Buf::advance(src, 1);
        *skipping(codec) = true;
    }
}

/// Where a read physically came from; carried into `asset.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Rfid,
    Barcode,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rfid => "rfid",
            Source::Barcode => "barcode",
        }
    }
}

/// One tag or barcode as the reader reported it, before identity resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRead {
    /// The data as read: upper-case hex for tags, the text for barcodes.
    pub data: String,
    pub source: Source,
    /// 1-based antenna, where the reader reports it.
    pub antenna: Option<u8>,
    /// Signal strength in dBm, where the reader reports it.
    pub rssi_dbm: Option<f32>,
}

/// Why a frame was thrown away; counted per reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Checksum or CRC did not match.
    Checksum,
    /// Framing was right but the content was not (bad hex, bad length).
    Malformed,
    /// A line or frame longer than allowed.
    TooLong,
    /// Bytes that could not start a frame, skipped while resynchronising.
    Garbage,
    /// A HID scan whose end key did not come within `scan_timeout`.
    Unterminated,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Checksum => "checksum",
            DropReason::Malformed => "malformed",
            DropReason::TooLong => "too_long",
            DropReason::Garbage => "garbage",
            DropReason::Unterminated => "unterminated",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Read(RawRead),
    Dropped(DropReason),
}

/// The codec for one reader that streams its reads unasked.
#[derive(Debug, Clone)]
pub enum ReaderCodec {
    Em4100(Em4100Codec),
    AsciiLine(AsciiLineCodec),
}

impl Decoder for ReaderCodec {
    type Item = Decoded;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, io::Error> {
        match self {
            ReaderCodec::Em4100(c) => c.decode(src),
            ReaderCodec::AsciiLine(c) => c.decode(src),
        }
    }

    /// Forwarded because the default treats leftover bytes at end of stream
    /// as an error, and an unplugged reader routinely leaves half a frame.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, io::Error> {
        match self {
            ReaderCodec::Em4100(c) => c.decode_eof(src),
            ReaderCodec::AsciiLine(c) => c.decode_eof(src),
        }
    }
}
