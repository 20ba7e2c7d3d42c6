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

/// Which inventory answer layout the reader sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChafonVariant {
    /// `Num {EPCLen EPC}×Num`: no antenna, no RSSI.
    Reader18,
    /// `Ant Num {EPCLen EPC RSSI}×Num`: UHFReader288, UHFReader86 and the
    /// fixed readers.
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
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::decode::testutil::{decode_chunked, junk};
    use ChafonVariant::{Reader18, Reader288};
    use DropReason::{Checksum, Garbage, Malformed};

    fn hex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// An answer from address 00 with the CRC computed.
    fn frame(cmd: u8, status: u8, data: &[u8]) -> Vec<u8> {
        let mut frame = vec![(3 + data.len() + CRC_LEN) as u8, 0x00, cmd, status];
        frame.extend_from_slice(data);
        let crc = crc16_mcrf4xx(&frame);
        frame.extend_from_slice(&crc.to_le_bytes());
        frame
    }

    /// A 288-style inventory answer on antenna 1 with the tags' RSSI 0x50.
    fn answer_288(status: u8, epcs: &[&[u8]]) -> Vec<u8> {
        let mut data = vec![0x01, epcs.len() as u8];
        for epc in epcs {
            data.push(epc.len() as u8);
            data.extend_from_slice(epc);
            data.push(0x50);
        }
        frame(CMD_INVENTORY, status, &data)
    }

    fn decode_all(variant: ChafonVariant, input: &[u8]) -> Vec<ChafonEvent> {
        decode_chunked(&mut ChafonCodec::new(variant, 0), input, &[]).0
    }

    fn encode(variant: ChafonVariant, address: u8, command: ChafonCommand) -> io::Result<Vec<u8>> {
        let mut buf = BytesMut::new();
        ChafonCodec::new(variant, address).encode(command, &mut buf)?;
        Ok(buf.to_vec())
    }

    fn message(m: ChafonMessage) -> ChafonEvent {
        ChafonEvent::Message(m)
    }

    fn dropped(reason: DropReason) -> ChafonEvent {
        ChafonEvent::Dropped(reason)
    }

    fn tag18(epc: &str) -> ChafonTag {
        ChafonTag {
            epc: hex(epc),
            fast_id: false,
            antenna: None,
            rssi: None,
        }
    }

    fn tag288(epc: &str, antenna: u8, rssi: u8) -> ChafonTag {
        ChafonTag {
            epc: hex(epc),
            fast_id: false,
            antenna: Some(antenna),
            rssi: Some(rssi),
        }
    }

    fn inventory(status: u8, antenna: Option<u8>, tags: Vec<ChafonTag>) -> ChafonEvent {
        message(ChafonMessage::Inventory {
            status,
            antenna,
            tags,
            more: status == 0x03,
        })
    }

    const EPC_0313: &str = "000000000000000000000313";
    const EPC_0314: &str = "000000000000000000000314";
    const SGTIN: &str = "3074257BF7194E4000001A85";

    #[test]
    fn crc_catalogue_check_value() {
        assert_eq!(crc16_mcrf4xx(b"123456789"), 0x6F91);
    }

    #[test]
    fn command_frames_of_reference_3() {
        assert_eq!(
            encode(Reader18, 0xFF, ChafonCommand::Inventory18).unwrap(),
            hex("04 FF 01 1B B4")
        );
        assert_eq!(
            encode(Reader18, 0x00, ChafonCommand::Inventory18).unwrap(),
            hex("04 00 01 DB 4B")
        );
        for variant in [Reader18, Reader288] {
            assert_eq!(
                encode(variant, 0xFF, ChafonCommand::GetReaderInfo).unwrap(),
                hex("04 FF 21 19 95")
            );
        }
        assert_eq!(
            encode(
                Reader288,
                0xFF,
                ChafonCommand::Inventory288(Inventory288::default())
            )
            .unwrap(),
            hex("0D FF 01 0F 00 01 00 00 00 00 80 14 C0 3A")
        );
    }

    #[test]
    fn inventory_288_parameters_land_in_their_fields() {
        let command = ChafonCommand::Inventory288(Inventory288 {
            q: 4,
            session: 1,
            target: 1,
            antenna: 4,
            scan_time: 0x0A,
        });
        let wire = encode(Reader288, 0x00, command).unwrap();
        assert_eq!(wire[..12], hex("0D 00 01 04 01 01 00 00 00 01 83 0A"));
        // The answer side of the same CRC: a correct frame checks out.
        let crc = crc16_mcrf4xx(&wire[..12]).to_le_bytes();
        assert_eq!(wire[12..], crc);
    }

    #[test]
    fn encoder_refuses_what_would_be_misread_or_cannot_be_sent() {
        let refused = |variant, command| {
            encode(variant, 0xFF, command).unwrap_err().kind() == io::ErrorKind::InvalidInput
        };
        let p = Inventory288::default();
        assert!(refused(Reader288, ChafonCommand::Inventory18));
        assert!(refused(Reader18, ChafonCommand::Inventory288(p.clone())));
        // A Q above 15 would set the statistics/strategy/FastID flags.
        let q = Inventory288 { q: 16, ..p.clone() };
        assert!(refused(Reader288, ChafonCommand::Inventory288(q)));
        for antenna in [0, 5] {
            let a = Inventory288 {
                antenna,
                ..p.clone()
            };
            assert!(refused(Reader288, ChafonCommand::Inventory288(a)));
        }
    }

    #[test]
    fn reader18_answers_of_reference_3() {
        let one = hex(&format!("13 00 01 03 01 0C {EPC_0313} 3F 39"));
        assert_eq!(one, frame(0x01, 0x03, &hex(&format!("01 0C {EPC_0313}"))));
        assert_eq!(
            decode_all(Reader18, &one),
            [inventory(0x03, None, vec![tag18(EPC_0313)])]
        );
        let two = hex(&format!("20 00 01 03 02 0C {EPC_0313} 0C {EPC_0314} 9A C9"));
        assert_eq!(
            decode_all(Reader18, &two),
            [inventory(
                0x03,
                None,
                vec![tag18(EPC_0313), tag18(EPC_0314)]
            )]
        );
        let sgtin = hex(&format!("13 00 01 01 01 0C {SGTIN} 93 82"));
        assert_eq!(
            decode_all(Reader18, &sgtin),
            [inventory(0x01, None, vec![tag18(SGTIN)])]
        );
    }

    #[test]
    fn reader288_answers_of_reference_3() {
        let one = hex(&format!("15 00 01 03 01 01 0C {EPC_0313} 6B B1 A5"));
        assert_eq!(
            decode_all(Reader288, &one),
            [inventory(0x03, Some(1), vec![tag288(EPC_0313, 1, 0x6B)])]
        );
        assert_eq!(
            decode_all(Reader288, &hex("07 00 01 01 01 00 1E 4B")),
            [inventory(0x01, Some(1), vec![])]
        );
        let sgtin = hex(&format!("15 00 01 01 01 01 0C {SGTIN} 5A 49 DE"));
        assert_eq!(
            decode_all(Reader288, &sgtin),
            [inventory(0x01, Some(1), vec![tag288(SGTIN, 1, 0x5A)])]
        );
    }

    #[test]
    fn reader_info_answer_of_reference_3() {
        let wire = hex("11 00 21 00 00 16 0C 03 4E 00 1E 0A 01 00 00 00 E6 51");
        let info = ReaderInfo {
            firmware: (0x00, 0x16),
            reader_type: 0x0C,
            data: hex("00 16 0C 03 4E 00 1E 0A 01 00 00 00"),
        };
        for variant in [Reader18, Reader288] {
            assert_eq!(
                decode_all(variant, &wire),
                [message(ChafonMessage::ReaderInfo(info.clone()))]
            );
        }
        assert_eq!(ChafonVariant::for_reader_type(0x0C), Some(Reader288));
        assert_eq!(ChafonVariant::for_reader_type(0x09), Some(Reader18));
        assert_eq!(ChafonVariant::for_reader_type(0x42), None);
    }

    #[test]
    fn tags_become_raw_reads_without_a_made_up_dbm() {
        assert_eq!(
            RawRead::from(tag288(SGTIN, 3, 0x5A)),
            RawRead {
                data: SGTIN.into(),
                source: Source::Rfid,
                antenna: Some(3),
                rssi_dbm: None,
            }
        );
        assert_eq!(RawRead::from(tag18(EPC_0313)).antenna, None);
    }

    #[test]
    fn antenna_bitmask() {
        for (mask, antenna) in [
            (0x01, Some(1)),
            (0x02, Some(2)),
            (0x04, Some(3)),
            (0x08, Some(4)),
            (0x03, None),
            (0x00, None),
        ] {
            let wire = frame(CMD_INVENTORY, 0x01, &[mask, 0x01, 0x02, 0xE2, 0x00, 0x40]);
            let tag = ChafonTag {
                epc: vec![0xE2, 0x00],
                fast_id: false,
                antenna,
                rssi: Some(0x40),
            };
            assert_eq!(
                decode_all(Reader288, &wire),
                [inventory(0x01, antenna, vec![tag])]
            );
        }
    }

    #[test]
    fn multi_frame_answer() {
        let input = [
            answer_288(0x03, &[&hex(EPC_0313), &hex(EPC_0314)]),
            answer_288(0x03, &[&hex(SGTIN)]),
            answer_288(0x01, &[]),
        ]
        .concat();
        let events = decode_all(Reader288, &input);
        let summary: Vec<(bool, usize)> = events
            .iter()
            .map(|e| match e {
                ChafonEvent::Message(ChafonMessage::Inventory { more, tags, .. }) => {
                    (*more, tags.len())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(summary, [(true, 2), (true, 1), (false, 0)]);
    }

    #[test]
    fn other_inventory_statuses_are_replies() {
        for status in [0xF8, 0xFB, 0x00] {
            assert_eq!(
                decode_all(Reader288, &frame(CMD_INVENTORY, status, &[0x01])),
                [message(ChafonMessage::Reply {
                    cmd: 0x01,
                    status,
                    data: vec![0x01],
                })]
            );
        }
        assert_eq!(
            decode_all(Reader18, &frame(0x24, 0x00, &[])),
            [message(ChafonMessage::Reply {
                cmd: 0x24,
                status: 0x00,
                data: vec![],
            })]
        );
        // Reader info that failed or is too short to read.
        assert_eq!(
            decode_all(Reader18, &frame(0x21, 0x00, &[0x00, 0x16])),
            [message(ChafonMessage::Reply {
                cmd: 0x21,
                status: 0x00,
                data: vec![0x00, 0x16],
            })]
        );
    }

    #[test]
    fn fast_id_block_is_kept_whole_and_flagged() {
        let block = hex(&format!("{SGTIN} E2801105200074CF085909D7"));
        let mut data = vec![0x01, 0x01, 0x80 | block.len() as u8];
        data.extend_from_slice(&block);
        data.push(0x5A);
        match decode_all(Reader288, &frame(CMD_INVENTORY, 0x01, &data)).as_slice() {
            [ChafonEvent::Message(ChafonMessage::Inventory { tags, .. })] => {
                assert_eq!(tags.len(), 1);
                assert!(tags[0].fast_id);
                assert_eq!(tags[0].epc, block);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tag_list_that_does_not_fill_the_data_exactly_is_malformed() {
        let cases: [&[u8]; 5] = [
            &[],                             // no Num
            &[0x02, 0x02, 0xE2, 0x00],       // Num 2, one tag
            &[0x01, 0x04, 0xE2, 0x00],       // EPC cut short
            &[0x01, 0x02, 0xE2, 0x00, 0x99], // a byte left over
            &[0x01, 0x82, 0xE2],             // FastID block cut short
        ];
        for data in cases {
            assert_eq!(
                decode_all(Reader18, &frame(CMD_INVENTORY, 0x01, data)),
                [dropped(Malformed)],
                "{data:02X?}"
            );
        }
        // 288 answers need the Ant byte and an RSSI per tag.
        for data in [&[0x01][..], &[0x01, 0x01, 0x02, 0xE2, 0x00]] {
            assert_eq!(
                decode_all(Reader288, &frame(CMD_INVENTORY, 0x01, data)),
                [dropped(Malformed)]
            );
        }
    }

    #[test]
    fn the_wrong_variant_cannot_read_an_answer() {
        let one_288 = hex(&format!("15 00 01 03 01 01 0C {EPC_0313} 6B B1 A5"));
        assert_eq!(decode_all(Reader18, &one_288), [dropped(Malformed)]);
        let one_18 = hex(&format!("13 00 01 03 01 0C {EPC_0313} 3F 39"));
        assert_eq!(decode_all(Reader288, &one_18), [dropped(Malformed)]);
    }

    #[test]
    fn answer_arriving_one_byte_at_a_time() {
        let wire = hex(&format!("15 00 01 01 01 01 0C {SGTIN} 5A 49 DE"));
        let mut codec = ChafonCodec::new(Reader288, 0);
        let mut buf = BytesMut::new();
        for &b in &wire[..wire.len() - 1] {
            buf.extend_from_slice(&[b]);
            assert_eq!(codec.decode(&mut buf).unwrap(), None);
        }
        buf.extend_from_slice(&wire[wire.len() - 1..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(inventory(0x01, Some(1), vec![tag288(SGTIN, 1, 0x5A)]))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn split_answers_decode_as_whole_ones() {
        let input = [
            answer_288(0x03, &[&hex(EPC_0313), &hex(EPC_0314)]),
            answer_288(0x01, &[&hex(SGTIN)]),
        ]
        .concat();
        let whole = decode_all(Reader288, &input);
        assert_eq!(whole.len(), 2);
        for sizes in [&[1][..], &[3, 5], &[17], &[30, 1]] {
            let (items, _) = decode_chunked(&mut ChafonCodec::new(Reader288, 0), &input, sizes);
            assert_eq!(items, whole);
        }
    }

    #[test]
    fn garbage_before_an_answer_is_one_drop() {
        let answer = hex("07 00 01 01 01 00 1E 4B");
        let no_tags = inventory(0x01, Some(1), vec![]);
        // Bytes too small to be a length.
        let input = [&[0x00, 0x01, 0x02, 0x03, 0x04][..], &answer].concat();
        assert_eq!(
            decode_all(Reader288, &input),
            [dropped(Garbage), no_tags.clone()]
        );
        // Bytes that could be lengths, whose frames fail their CRC once the
        // following traffic has arrived: the answers they held back are all
        // found.
        let input = [b"noise".to_vec(), answer.repeat(16)].concat();
        let mut wanted = vec![dropped(Checksum)];
        wanted.extend(vec![no_tags.clone(); 16]);
        assert_eq!(decode_all(Reader288, &input), wanted);
        // Between answers, each run is one drop.
        let input = [&answer[..], b"\x00junk", &answer, b"\x05\x06", &answer].concat();
        assert_eq!(
            decode_all(Reader288, &input),
            [
                no_tags.clone(),
                dropped(Garbage),
                no_tags.clone(),
                dropped(Checksum),
                no_tags
            ]
        );
    }

    #[test]
    fn bad_crc_is_one_drop_and_the_next_answer_is_found() {
        let mut bad = hex(&format!("15 00 01 03 01 01 0C {EPC_0313} 6B B1 A5"));
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        let input = [bad, hex("07 00 01 01 01 00 1E 4B")].concat();
        assert_eq!(
            decode_all(Reader288, &input),
            [dropped(Checksum), inventory(0x01, Some(1), vec![])]
        );
    }

    #[test]
    fn flood_of_garbage_then_an_answer_keeps_the_buffer_bounded() {
        let mut junk = junk(100_000);
        junk.extend_from_slice(&hex("07 00 01 01 01 00 1E 4B"));
        let (items, most_buffered) = decode_chunked(
            &mut ChafonCodec::new(Reader288, 0),
            &junk,
            &[1, 7, 64, 4096],
        );
        assert_eq!(items.last(), Some(&inventory(0x01, Some(1), vec![])));
        assert!(most_buffered < CHAFON_MAX_FRAME, "buffered {most_buffered}");
    }

    #[test]
    fn partial_answer_at_end_of_stream_is_discarded_quietly() {
        let mut codec = ChafonCodec::new(Reader18, 0);
        let mut buf = BytesMut::from(&hex("13 00 01 03 01 0C 00 00")[..]);
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    fn variant() -> impl Strategy<Value = ChafonVariant> {
        prop_oneof![Just(Reader18), Just(Reader288)]
    }

    /// Bytes that exercise the framing: plausible lengths, addresses and
    /// inventory statuses.
    fn framing_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => any::<u8>(),
            3 => 0u8..24,
            1 => Just(0xFF),
        ];
        prop::collection::vec(byte, 0..96)
    }

    fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(1usize..40, 1..8)
    }

    /// Whether some position other than `planted` starts a complete frame
    /// whose CRC matches: the one way garbage can pass for an answer.
    fn false_frame_in(input: &[u8], planted: &[usize]) -> bool {
        (0..input.len()).any(|at| {
            let rest = &input[at..];
            let frame_len = usize::from(rest[0]) + 1;
            !planted.contains(&at)
                && rest[0] >= MIN_LEN
                && rest.len() >= frame_len
                && crc16_mcrf4xx(&rest[..frame_len - CRC_LEN])
                    == u16::from_le_bytes([rest[frame_len - 2], rest[frame_len - 1]])
        })
    }

    proptest! {
        #[test]
        fn any_input_split_anywhere_decodes_the_same_in_bounded_memory(
            variant in variant(),
            input in prop_oneof![prop::collection::vec(any::<u8>(), 0..1024), framing_bytes()],
            sizes in chunk_sizes(),
        ) {
            let whole = decode_all(variant, &input);
            let (split, most_buffered) =
                decode_chunked(&mut ChafonCodec::new(variant, 0), &input, &sizes);
            prop_assert!(most_buffered < CHAFON_MAX_FRAME);
            prop_assert_eq!(split, whole);
        }

        /// Unless the garbage happens to hold a frame of its own that passes
        /// the CRC, every good answer after it is decoded, and nothing else.
        #[test]
        fn good_answers_survive_garbage_that_holds_no_frame(
            parts in prop::collection::vec(
                (framing_bytes(), prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..4)),
                1..5,
            ),
            trailing in framing_bytes(),
            sizes in chunk_sizes(),
        ) {
            let mut input = Vec::new();
            let mut planted = Vec::new();
            let mut wanted = Vec::new();
            for (garbage, epcs) in &parts {
                input.extend_from_slice(garbage);
                planted.push(input.len());
                let epcs: Vec<&[u8]> = epcs.iter().map(Vec::as_slice).collect();
                input.extend_from_slice(&answer_288(0x03, &epcs));
                wanted.push(epcs.iter().map(|e| e.to_vec()).collect::<Vec<_>>());
            }
            input.extend_from_slice(&trailing);
            let (items, _) = decode_chunked(&mut ChafonCodec::new(Reader288, 0), &input, &sizes);
            let seen: Vec<Vec<Vec<u8>>> = items
                .iter()
                .filter_map(|item| match item {
                    ChafonEvent::Message(ChafonMessage::Inventory { tags, .. }) => {
                        Some(tags.iter().map(|t| t.epc.clone()).collect())
                    }
                    ChafonEvent::Message(_) => Some(vec![b"not an inventory".to_vec()]),
                    ChafonEvent::Dropped(_) => None,
                })
                .collect();
            if !false_frame_in(&input, &planted) {
                prop_assert_eq!(seen, wanted);
            }
        }
    }
}
