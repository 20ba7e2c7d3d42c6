//! EM4100 / RDM6300 frames: `STX, 10 ASCII hex, 2 ASCII hex XOR, ETX`.
//!
//! The reader streams frames for as long as a tag is in the field, with no
//! length prefix and no escaping, so a frame start is only recognisable by its
//! STX. The one fact that makes resynchronisation reliable is that a valid
//! frame can never contain 0x02 after its STX (offsets 1–12 are hex digits and
//! 13 is ETX): a frame start found inside a rejected frame is always worth
//! trying, and a good frame can never be swallowed by whatever came before it.

use std::io;
use std::mem;

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::{Decoded, DropReason, RawRead, Source};

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const FRAME_LEN: usize = 14;
/// Version byte plus four data bytes, as hex characters.
const DATA_HEX_LEN: usize = 10;

#[derive(Debug, Default, Clone)]
pub struct Em4100Codec {
    /// The bytes being skipped belong to a run already reported (as garbage or
    /// as a malformed frame), so the rest of the run is dropped silently. This
    /// keeps the drop counts independent of how the serial driver happens to
    /// split the stream into reads.
    skipping: bool,
}

impl Em4100Codec {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Decoder for Em4100Codec {
    type Item = Decoded;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, io::Error> {
        loop {
            let start = src.iter().position(|&b| b == STX).unwrap_or(src.len());
            if start > 0 {
                src.advance(start);
                if !mem::replace(&mut self.skipping, true) {
                    return Ok(Some(Decoded::Dropped(DropReason::Garbage)));
                }
                continue;
            }
            if src.is_empty() {
                return Ok(None);
            }
            self.skipping = false;
            if src.len() < FRAME_LEN {
                src.reserve(FRAME_LEN - src.len());
                return Ok(None);
            }
            match parse_frame(&src[..FRAME_LEN]) {
                Ok(data) => {
                    src.advance(FRAME_LEN);
                    return Ok(Some(Decoded::Read(RawRead {
                        data,
                        source: Source::Rfid,
                        antenna: None,
                        rssi_dbm: None,
                    })));
                }
                Err(DropReason::Checksum) => {
                    src.advance(FRAME_LEN);
                    return Ok(Some(Decoded::Dropped(DropReason::Checksum)));
                }
                Err(reason) => {
                    // Not a frame after all: its STX was noise or the frame was
                    // cut short, so the next STX (perhaps inside these 14 bytes)
                    // may be a real frame start. Everything up to it is this
                    // one drop.
                    let next = src[1..]
                        .iter()
                        .position(|&b| b == STX)
                        .map_or(src.len(), |i| i + 1);
                    src.advance(next);
                    self.skipping = true;
                    return Ok(Some(Decoded::Dropped(reason)));
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, io::Error> {
        let item = self.decode(src)?;
        if item.is_none() {
            // A frame cut off by the end of the stream is incomplete, not
            // corrupt; the next stream starts afresh.
            src.clear();
            self.skipping = false;
        }
        Ok(item)
    }
}

/// Checks one 14-byte frame that starts with STX and returns its data as
/// upper-case hex. The open-source decoders only handle upper case, but
/// nothing in the format forbids lower case, and rejecting it would lose reads.
fn parse_frame(frame: &[u8]) -> Result<String, DropReason> {
    if frame[FRAME_LEN - 1] != ETX {
        return Err(DropReason::Malformed);
    }
    let hex = &frame[1..FRAME_LEN - 1];
    let mut bytes = [0u8; 6];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (hex_value(pair[0]).ok_or(DropReason::Malformed)? << 4)
            | hex_value(pair[1]).ok_or(DropReason::Malformed)?;
    }
    let (data, checksum) = bytes.split_at(5);
    if data.iter().fold(0, |acc, b| acc ^ b) != checksum[0] {
        return Err(DropReason::Checksum);
    }
    Ok(hex[..DATA_HEX_LEN]
        .iter()
        .map(|&c| c.to_ascii_uppercase() as char)
        .collect())
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests;
