//! The Chafon "UHFReader18 / UHFReader288 / UHFReader86" protocol (CF-RU5102,
//! CF-MU9xx…): `Len | Adr | reCmd | Status | Data | CRC16 (LSB, MSB)`.
//!
//! The reader answers commands and nothing else: an inventory command gets
//! one or more answer frames (status 0x03 while more follow), so the reader
//! task needs the status and replies as well as tags. [`ChafonCodec`]
//! decodes into [`ChafonEvent`] and encodes [`ChafonCommand`]s.
//!
//! The two inventory answer layouts cannot be told apart from the bytes, so
//! the codec is built for one [`ChafonVariant`]; a reader's type byte in
//! [`ReaderInfo`] says which.
//!
//! Resynchronisation: frames have no header byte, so any byte may be a
//! length. After a rejected candidate the search moves on by one byte, which
//! finds a frame wherever it starts; a random candidate passes the CRC-16 one
//! time in 65536. A run of rejected candidates is one drop, however long.
//! As with the 0xA0 protocol, a candidate is judged once all the bytes its
//! length claims have arrived, so a corrupted length byte can hold back up
//! to 255 bytes until more data arrives: the reader task re-sends its
//! command when an answer is overdue.

use std::io;
use std::mem;

use bytes::{Buf, BufMut, BytesMut};
use serde::Deserialize;
use tokio_util::codec::{Decoder, Encoder};

use super::hex::upper_hex;
use super::{DropReason, RawRead, Source};

/// Adr, reCmd, Status and the CRC: anything shorter cannot be an answer.
const MIN_LEN: u8 = 5;
/// Len and the largest Len.
pub const CHAFON_MAX_FRAME: usize = 1 + u8::MAX as usize;
const CRC_LEN: usize = 2;

const CMD_INVENTORY: u8 = 0x01;
const CMD_GET_READER_INFO: u8 = 0x21;

const STATUS_OK: u8 = 0x00;
/// Inventory statuses whose answers carry tags: complete, timeout, more
/// frames follow, memory exceeded.
const STATUS_MORE_FRAMES: u8 = 0x03;
const INVENTORY_STATUSES: std::ops::RangeInclusive<u8> = 0x01..=0x04;

/// EPCLen bit 7: the block is EPC followed by TID (FastID).
const FAST_ID: u8 = 0x80;
/// The UHFReader288 inventory's Ant parameter: 0x80 plus the 0-based antenna.
const ANT_PARAM_BASE: u8 = 0x80;
const MAX_ANTENNAS: u8 = 4;
/// The UHFReader288 QValue byte keeps flags above the Q value (statistics,
/// strategy, FastID), which the encoder never sets.
const MAX_Q: u8 = 15;
/// MaskMem = EPC, MaskAdr = 0, MaskLen = 0: no mask.
const NO_MASK: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// Version (2), type, protocols, max and min frequency, power, scan time.
const READER_INFO_MIN_LEN: usize = 8;

/// Which inventory answer layout the reader sends: the bytes cannot tell
/// them apart, so it is configured (`chafon_variant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ChafonVariant {
    /// `Num {EPCLen EPC}×Num`: no antenna, no RSSI (UHFReader18).
    #[serde(rename = "18")]
    Reader18,
    /// `Ant Num {EPCLen EPC RSSI}×Num`: UHFReader288, UHFReader86 and the
    /// fixed readers.
    #[serde(rename = "288")]
    Reader288,
}

impl ChafonVariant {
    /// The variant for the type byte of [`ReaderInfo`]: 0x09 UHFReader18,
    /// 0x0C UHFReader288M, 0x0F/0x10 UHFReader86 (wabson/chafon-rfid
    /// `ReaderType`; the 86 there parses 288-style answers).
    pub fn for_reader_type(reader_type: u8) -> Option<Self> {
        match reader_type {
            0x09 => Some(ChafonVariant::Reader18),
            0x0C | 0x0F | 0x10 => Some(ChafonVariant::Reader288),
            _ => None,
        }
    }
}

/// Decodes answers into [`ChafonEvent`]s and encodes [`ChafonCommand`]s for
/// the reader at `address`.
#[derive(Debug)]
pub struct ChafonCodec {
    variant: ChafonVariant,
    address: u8,
    /// Inside a run of rejected candidates that has been reported already.
    skipping: bool,
}

impl ChafonCodec {
    /// `address` is the reader's address (0x00 by default), or 0xFF to
    /// address whatever reader is on the port. Answers are decoded whatever
    /// their address: one reader per port.
    pub fn new(variant: ChafonVariant, address: u8) -> Self {
        ChafonCodec {
            variant,
            address,
            skipping: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChafonEvent {
    Message(ChafonMessage),
    Dropped(DropReason),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChafonMessage {
    /// An inventory answer with status 0x01 (complete), 0x02 (timeout),
    /// 0x03 (more frames follow) or 0x04 (memory exceeded). Any other
    /// inventory status, such as 0xF8 (antenna error), comes as a
    /// [`ChafonMessage::Reply`] with `cmd` 0x01, since its data is not a tag
    /// list.
    Inventory {
        status: u8,
        /// 1-based; `None` for UHFReader18 answers and for an Ant byte that
        /// is not one of the four documented single bits.
        antenna: Option<u8>,
        tags: Vec<ChafonTag>,
        /// Status 0x03: wait for the next frame before sending a command.
        more: bool,
    },
    /// The answer to Get Reader Info.
    ReaderInfo(ReaderInfo),
    /// Any other answer, uninterpreted; status 0x00 means success.
    Reply { cmd: u8, status: u8, data: Vec<u8> },
}

/// Get Reader Info's answer. Only the leading fields are interpreted
/// (layout from wabson/chafon-rfid `ReaderInfoFrame`); the rest differs
/// between models.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderInfo {
    /// Major, minor.
    pub firmware: (u8, u8),
    /// See [`ChafonVariant::for_reader_type`].
    pub reader_type: u8,
    /// The whole data field, for the log.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChafonTag {
    /// The EPC; for a FastID block the EPC followed by the TID.
    pub epc: Vec<u8>,
    /// The reader sent EPC+TID (EPCLen bit 7). Where the EPC ends is not in
    /// the answer (it has no PC word), so the whole block stays in `epc` and
    /// reads as a different id from the same tag read without FastID. The
    /// encoder never asks for FastID.
    pub fast_id: bool,
    /// 1-based, from the frame's Ant bitmask (UHFReader288 answers only).
    pub antenna: Option<u8>,
    /// The raw RSSI byte of UHFReader288 answers. No dBm mapping is
    /// documented, so none is applied.
    pub rssi: Option<u8>,
}

impl From<ChafonTag> for RawRead {
    fn from(tag: ChafonTag) -> Self {
        RawRead {
            data: upper_hex(&tag.epc),
            source: Source::Rfid,
            antenna: tag.antenna,
            rssi_dbm: None,
        }
    }
}

impl Decoder for ChafonCodec {
    type Item = ChafonEvent;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ChafonEvent>, io::Error> {
        loop {
            let Some(&len) = src.first() else {
                return Ok(None);
            };
            if len < MIN_LEN {
                // Cannot even start an answer: noise, not a damaged frame.
                if let Some(drop) = self.reject(src, DropReason::Garbage) {
                    return Ok(Some(drop));
                }
                continue;
            }
            let frame_len = usize::from(len) + 1;
            if src.len() < frame_len {
                src.reserve(frame_len - src.len());
                return Ok(None);
            }
            let (body, crc) = src[..frame_len].split_at(frame_len - CRC_LEN);
            if crc16_mcrf4xx(body) != u16::from_le_bytes([crc[0], crc[1]]) {
                if let Some(drop) = self.reject(src, DropReason::Checksum) {
                    return Ok(Some(drop));
                }
                continue;
            }
            self.skipping = false;
            let frame = src.split_to(frame_len);
            return Ok(Some(self.classify(
                frame[2],
                frame[3],
                &frame[4..frame_len - CRC_LEN],
            )));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<ChafonEvent>, io::Error> {
        super::decode_eof_resyncing(self, src, |c| &mut c.skipping)
    }
}

impl ChafonCodec {
    /// Moves past the first byte, a rejected candidate; reports `reason` if
    /// it starts a run of rejections.
    fn reject(&mut self, src: &mut BytesMut, reason: DropReason) -> Option<ChafonEvent> {
        src.advance(1);
        (!mem::replace(&mut self.skipping, true)).then_some(ChafonEvent::Dropped(reason))
    }

    /// Interprets an answer whose CRC matched.
    fn classify(&self, cmd: u8, status: u8, data: &[u8]) -> ChafonEvent {
        let message = match cmd {
            CMD_INVENTORY if INVENTORY_STATUSES.contains(&status) => {
                match self.inventory(status, data) {
                    Some(message) => message,
                    None => return ChafonEvent::Dropped(DropReason::Malformed),
                }
            }
            CMD_GET_READER_INFO if status == STATUS_OK && data.len() >= READER_INFO_MIN_LEN => {
                ChafonMessage::ReaderInfo(ReaderInfo {
                    firmware: (data[0], data[1]),
                    reader_type: data[2],
                    data: data.to_vec(),
                })
            }
            _ => ChafonMessage::Reply {
                cmd,
                status,
                data: data.to_vec(),
            },
        };
        ChafonEvent::Message(message)
    }

    /// Parses the tag list; `None` unless it fills the data exactly.
    fn inventory(&self, status: u8, data: &[u8]) -> Option<ChafonMessage> {
        let (antenna, mut rest) = match self.variant {
            ChafonVariant::Reader18 => (None, data),
            ChafonVariant::Reader288 => {
                let (&ant, rest) = data.split_first()?;
                (antenna_number(ant), rest)
            }
        };
        let (&count, tail) = rest.split_first()?;
        rest = tail;
        let mut tags = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (&len_byte, tail) = rest.split_first()?;
            let epc_len = usize::from(len_byte & !FAST_ID);
            let epc = tail.get(..epc_len)?.to_vec();
            rest = &tail[epc_len..];
            let rssi = match self.variant {
                ChafonVariant::Reader18 => None,
                ChafonVariant::Reader288 => {
                    let (&rssi, tail) = rest.split_first()?;
                    rest = tail;
                    Some(rssi)
                }
            };
            tags.push(ChafonTag {
                epc,
                fast_id: len_byte & FAST_ID != 0,
                antenna,
                rssi,
            });
        }
        rest.is_empty().then_some(ChafonMessage::Inventory {
            status,
            antenna,
            tags,
            more: status == STATUS_MORE_FRAMES,
        })
    }
}

/// The Ant bitmask of an answer: 1, 2, 4, 8 for antennas 1–4
/// (wabson/chafon-rfid `_translate_antenna_num`; SID UR-series manual).
fn antenna_number(mask: u8) -> Option<u8> {
    match mask {
        0x01 => Some(1),
        0x02 => Some(2),
        0x04 => Some(3),
        0x08 => Some(4),
        _ => None,
    }
}

/// CRC-16/MCRF4XX: reflected polynomial 0x8408, init 0xFFFF, no final XOR.
/// Public for the reader simulator of the integration tests.
pub fn crc16_mcrf4xx(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0xFFFF, |mut crc, &b| {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
        }
        crc
    })
}

/// Commands the reader task sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChafonCommand {
    /// UHFReader18 inventory, no parameters; answered 18-style.
    Inventory18,
    /// UHFReader288 inventory; answered 288-style.
    Inventory288(Inventory288),
    GetReaderInfo,
}

/// The UHFReader288 inventory parameters, without a mask: the mask data's
/// layout is not in the reference, so the encoder always sends "no mask".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory288 {
    /// 0–15.
    pub q: u8,
    /// 0–3, or 0xFF for the reader's "smart" session.
    pub session: u8,
    /// 0 = A, 1 = B.
    pub target: u8,
    /// 1–4.
    pub antenna: u8,
    /// In units of 100 ms.
    pub scan_time: u8,
}

impl Default for Inventory288 {
    /// The defaults of wabson/chafon-rfid's `G2InventoryCommand`: Q 15,
    /// session S0, target A, antenna 1, 2 s.
    fn default() -> Self {
        Inventory288 {
            q: 15,
            session: 0,
            target: 0,
            antenna: 1,
            scan_time: 0x14,
        }
    }
}

impl Encoder<ChafonCommand> for ChafonCodec {
    type Error = io::Error;

    /// Refuses, with `InvalidInput`, an inventory command of the other
    /// variant (its answer would be misread) and parameters that do not fit
    /// their fields.
    fn encode(&mut self, command: ChafonCommand, dst: &mut BytesMut) -> Result<(), io::Error> {
        let invalid = |what: &'static str| io::Error::new(io::ErrorKind::InvalidInput, what);
        let (cmd, data) = match command {
            ChafonCommand::Inventory18 => {
                if self.variant != ChafonVariant::Reader18 {
                    return Err(invalid("UHFReader18 inventory on a UHFReader288 codec"));
                }
                (CMD_INVENTORY, Vec::new())
            }
            ChafonCommand::Inventory288(p) => {
                if self.variant != ChafonVariant::Reader288 {
                    return Err(invalid("UHFReader288 inventory on a UHFReader18 codec"));
                }
                if p.q > MAX_Q {
                    return Err(invalid("Q value above 15"));
                }
                if !(1..=MAX_ANTENNAS).contains(&p.antenna) {
                    return Err(invalid("antenna outside 1-4"));
                }
                let mut data = vec![p.q, p.session];
                data.extend_from_slice(&NO_MASK);
                data.extend_from_slice(&[p.target, ANT_PARAM_BASE + p.antenna - 1, p.scan_time]);
                (CMD_INVENTORY, data)
            }
            ChafonCommand::GetReaderInfo => (CMD_GET_READER_INFO, Vec::new()),
        };
        let start = dst.len();
        // Len counts the bytes after it: Adr, Cmd, data and the CRC.
        dst.put_slice(&[(2 + data.len() + CRC_LEN) as u8, self.address, cmd]);
        dst.put_slice(&data);
        let crc = crc16_mcrf4xx(&dst[start..]);
        dst.put_slice(&crc.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
