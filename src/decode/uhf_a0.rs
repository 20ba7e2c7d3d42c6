//! The "UHF RFID Reader Serial Interface Protocol" of Impinj R2000 / E710
//! modules (Yanzeo/Invelion YR9xx, Rodinbell, CZS, Chafon CF-RU6403…):
//! `A0 | Len | Addr | Cmd | Data | Check`.
//!
//! Unlike the streaming 125 kHz readers this is a command/reply protocol: the
//! reader only reads while an inventory command runs and reports each round's
//! end, so the reader task needs replies and round ends as well as tags.
//! [`A0Codec`] therefore decodes into [`A0Event`] rather than `Decoded`, and
//! encodes the [`A0Command`]s that drive the reader.
//!
//! Resynchronisation: 0xA0 also occurs inside data, and the one-byte check
//! accepts a random candidate one time in 256, so a rejected candidate only
//! ever costs its own header byte: the search resumes at the next 0xA0 after
//! it, even inside the rejected bytes. A good frame is then only lost when a
//! false frame that happens to pass the check overlaps it.
//!
//! The decoder judges a candidate only once all the bytes its Len claims have
//! arrived, so a corrupted Len can hold up to 256 bytes of later frames until
//! enough data follows; the reader task keeps the stream moving by re-sending
//! a command when a reply is overdue.

use std::io;
use std::mem;

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::hex::upper_hex;
use super::{DropReason, RawRead, Source};

const HEAD: u8 = 0xA0;
/// Addr, Cmd and Check with no data: anything shorter cannot be a frame.
const MIN_LEN: u8 = 3;
/// Head, Len and the largest Len.
pub const A0_MAX_FRAME: usize = 2 + u8::MAX as usize;

const CMD_RESET: u8 = 0x70;
const CMD_GET_FIRMWARE: u8 = 0x72;
const CMD_SET_WORK_ANTENNA: u8 = 0x74;
const CMD_GET_WORK_ANTENNA: u8 = 0x75;
const CMD_REAL_TIME_INVENTORY: u8 = 0x89;
const CMD_FAST_SWITCH_INVENTORY: u8 = 0x8A;
const CMD_SESSION_INVENTORY: u8 = 0x8B;

/// Data lengths that classify replies to the inventory commands (reference
/// 2.3, after the vendor demo's `ProcessInventoryReal` / `ProcessFastSwitch`).
const ERROR_DATA_LEN: usize = 1;
const ANTENNA_FAULT_DATA_LEN: usize = 2;
const ROUND_END_DATA_LEN: usize = 7;
/// FreqAnt, PC and RSSI around an empty EPC.
const TAG_MIN_DATA_LEN: usize = 4;
/// Phase, reported after RSSI when the host asked for it.
const PHASE_LEN: usize = 2;
/// The standard regions' channel table: 865.0–868.0 MHz (ETSI) then
/// 902.0–928.0 MHz (FCC), in 0.5 MHz steps. A higher index can only come
/// from a user-defined region, whose start and spacing the frame does not
/// carry.
const FIRST_FCC_CHANNEL: u8 = 7;
const LAST_TABLE_CHANNEL: u8 = 59;

/// Decodes reader frames into [`A0Event`]s and encodes [`A0Command`]s for the
/// reader at `address`.
#[derive(Debug)]
pub struct A0Codec {
    address: u8,
    /// The bytes being skipped belong to a run already reported (as garbage or
    /// as a rejected frame), so the rest of the run is dropped silently. This
    /// keeps drop counts independent of how the stream was split into reads.
    skipping: bool,
}

impl A0Codec {
    /// `address` is the reader's RS-485 address (0–254), or 0xFF to address
    /// whatever reader is on the port. Replies are decoded whatever their
    /// address: one reader per port is the deployment this daemon supports.
    pub fn new(address: u8) -> Self {
        A0Codec {
            address,
            skipping: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum A0Event {
    Message(A0Message),
    Dropped(DropReason),
}

/// One frame from the reader.
#[derive(Debug, Clone, PartialEq)]
pub enum A0Message {
    /// A tag seen during an inventory round (0x89, 0x8B or 0x8A).
    Tag(TagRecord),
    /// A 0x89 or 0x8B round finished; send the next inventory command.
    RoundEnd {
        /// 1-based; `None` if the byte is not an antenna number (0–7).
        antenna: Option<u8>,
        /// Tags per second.
        read_rate: u16,
        total_reads: u32,
    },
    /// A 0x8A round finished. Its layout is disputed: the
    /// vendor demo reads `TotalRead(3) Duration_ms(4)`, which is what the
    /// fields hold, while node-r2k parses it like [`A0Message::RoundEnd`].
    /// `raw` keeps the seven data bytes so a field log can settle it.
    FastSwitchEnd {
        total_reads: u32,
        duration_ms: u32,
        raw: [u8; 7],
    },
    /// 0x8A found a fault on one antenna; the round carries on.
    AntennaFault {
        /// 1-based; `None` if the byte is not an antenna number (0–7).
        antenna: Option<u8>,
        /// 0x22 is "antenna missing" (node-r2k's `CommandErrorBase`).
        code: u8,
    },
    /// An inventory command failed, e.g. 0x22 when the work antenna is not
    /// connected. Codes: node-r2k's `CommandErrorBase`.
    Error { cmd: u8, code: u8 },
    /// The reply to any other command, its data uninterpreted: one status
    /// byte (0x10 success) for setters, the value for getters.
    Reply { cmd: u8, data: Vec<u8> },
}

/// One tag record of an inventory round.
#[derive(Debug, Clone, PartialEq)]
pub struct TagRecord {
    /// As long as the PC word says; extra bytes in the record are not EPC.
    pub epc: Vec<u8>,
    pub pc: u16,
    /// 1-based, 1–8: the two antenna bits of FreqAnt plus 4 when the RSSI
    /// byte's top bit (8-port readers) is set.
    pub antenna: u8,
    /// `(RSSI & 0x7F) - 129`, as node-r2k and the vendor demo compute it;
    /// not checked against the vendor's RSSI table.
    pub rssi_dbm: i16,
    /// The channel's frequency in the standard regions' table; `None` for an
    /// index beyond it. A reader set to a user-defined region numbers its
    /// channels from its own start frequency, which the frame does not carry,
    /// so for such a reader this value is wrong even when it is `Some`.
    pub freq_khz: Option<u32>,
}

impl From<TagRecord> for RawRead {
    fn from(tag: TagRecord) -> Self {
        RawRead {
            data: upper_hex(&tag.epc),
            source: Source::Rfid,
            antenna: Some(tag.antenna),
            rssi_dbm: Some(f32::from(tag.rssi_dbm)),
        }
    }
}

impl Decoder for A0Codec {
    type Item = A0Event;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<A0Event>, io::Error> {
        loop {
            let start = src.iter().position(|&b| b == HEAD).unwrap_or(src.len());
            if start > 0 {
                src.advance(start);
                if !mem::replace(&mut self.skipping, true) {
                    return Ok(Some(A0Event::Dropped(DropReason::Garbage)));
                }
                continue;
            }
            let Some(&len) = src.get(1) else {
                return Ok(None);
            };
            if len < MIN_LEN {
                return Ok(Some(self.reject(src, DropReason::Malformed)));
            }
            let frame_len = usize::from(len) + 2;
            if src.len() < frame_len {
                src.reserve(frame_len - src.len());
                return Ok(None);
            }
            if src[..frame_len]
                .iter()
                .fold(0u8, |sum, &b| sum.wrapping_add(b))
                != 0
            {
                return Ok(Some(self.reject(src, DropReason::Checksum)));
            }
            self.skipping = false;
            let frame = src.split_to(frame_len);
            return Ok(Some(classify(frame[3], &frame[4..frame_len - 1])));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<A0Event>, io::Error> {
        super::decode_eof_resyncing(self, src, |c| &mut c.skipping)
    }
}

impl A0Codec {
    /// Gives up on the candidate frame at the start of `src`: only its header
    /// byte is consumed, since the next frame may start anywhere after it.
    fn reject(&mut self, src: &mut BytesMut, reason: DropReason) -> A0Event {
        src.advance(1);
        self.skipping = true;
        A0Event::Dropped(reason)
    }
}

/// Interprets a frame whose check byte matched.
fn classify(cmd: u8, data: &[u8]) -> A0Event {
    let message = match (cmd, data.len()) {
        (
            CMD_REAL_TIME_INVENTORY | CMD_SESSION_INVENTORY | CMD_FAST_SWITCH_INVENTORY,
            ERROR_DATA_LEN,
        ) => A0Message::Error { cmd, code: data[0] },
        (CMD_FAST_SWITCH_INVENTORY, ANTENNA_FAULT_DATA_LEN) => A0Message::AntennaFault {
            antenna: antenna_number(data[0]),
            code: data[1],
        },
        (CMD_REAL_TIME_INVENTORY | CMD_SESSION_INVENTORY, ROUND_END_DATA_LEN) => {
            A0Message::RoundEnd {
                antenna: antenna_number(data[0]),
                read_rate: u16::from_be_bytes([data[1], data[2]]),
                total_reads: u32::from_be_bytes([data[3], data[4], data[5], data[6]]),
            }
        }
        (CMD_FAST_SWITCH_INVENTORY, ROUND_END_DATA_LEN) => {
            let mut raw = [0; ROUND_END_DATA_LEN];
            raw.copy_from_slice(data);
            A0Message::FastSwitchEnd {
                total_reads: u32::from_be_bytes([0, data[0], data[1], data[2]]),
                duration_ms: u32::from_be_bytes([data[3], data[4], data[5], data[6]]),
                raw,
            }
        }
        (CMD_REAL_TIME_INVENTORY | CMD_SESSION_INVENTORY | CMD_FAST_SWITCH_INVENTORY, _) => {
            match tag_record(data) {
                Some(tag) => A0Message::Tag(tag),
                None => return A0Event::Dropped(DropReason::Malformed),
            }
        }
        _ => A0Message::Reply {
            cmd,
            data: data.to_vec(),
        },
    };
    A0Event::Message(message)
}

/// `FreqAnt | PC(2) | EPC | RSSI [| Phase(2)]`; `None` if the record holds
/// fewer EPC bytes than its PC word claims.
///
/// Where RSSI sits is decided from the PC length: exactly two bytes beyond a
/// minimal record are taken as phase (documented for 0x8B with Phase set and
/// 8-port 0x8A), otherwise RSSI is the last byte, as the vendor demo reads
/// it, and any surplus before it is EPC bytes the PC does not cover.
fn tag_record(data: &[u8]) -> Option<TagRecord> {
    if data.len() < TAG_MIN_DATA_LEN {
        return None;
    }
    let freq_ant = data[0];
    let pc = u16::from_be_bytes([data[1], data[2]]);
    let rest = &data[3..];
    let epc_len = usize::from((pc >> 11) & 0x1F) * 2;
    let rssi_at = if rest.len() == epc_len + 1 + PHASE_LEN {
        epc_len
    } else {
        rest.len() - 1
    };
    if rssi_at < epc_len {
        return None;
    }
    let rssi = rest[rssi_at];
    let high_bank = if rssi & 0x80 != 0 { 4 } else { 0 };
    let channel = freq_ant >> 2;
    Some(TagRecord {
        epc: rest[..epc_len].to_vec(),
        pc,
        antenna: (freq_ant & 0x03) + 1 + high_bank,
        rssi_dbm: i16::from(rssi & 0x7F) - 129,
        freq_khz: channel_khz(channel),
    })
}

/// The vendor demo's `GetFreqString` for the standard regions.
fn channel_khz(channel: u8) -> Option<u32> {
    match channel {
        0..FIRST_FCC_CHANNEL => Some(865_000 + 500 * u32::from(channel)),
        FIRST_FCC_CHANNEL..=LAST_TABLE_CHANNEL => {
            Some(902_000 + 500 * u32::from(channel - FIRST_FCC_CHANNEL))
        }
        _ => None,
    }
}

/// 0-based antenna ids run 0–3, or 0–7 on 8-port readers (the "UHF RFID
/// Reader Serial Interface Protocol", command 0x74).
fn antenna_number(id: u8) -> Option<u8> {
    (id < 8).then(|| id + 1)
}

/// Commands the reader task sends. Antenna ids are 0-based, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum A0Command {
    /// No reply on success: the reader reboots.
    Reset,
    GetFirmware,
    /// 0–3, or 0–7 on 8-port readers; the reader answers 0x10 on success.
    SetWorkAntenna(u8),
    GetWorkAntenna,
    /// One round on the work antenna. `repeat` 0xFF asks for the shortest
    /// round (per the SDK).
    RealTimeInventory {
        repeat: u8,
    },
    /// Like [`A0Command::RealTimeInventory`] with an explicit session (0–3)
    /// and target (0 = A, 1 = B). The optional fields of later firmware (SL,
    /// Phase, PowerSave) are not sent.
    SessionInventory {
        session: u8,
        target: u8,
        repeat: u8,
    },
    /// One round over four antenna slots, each `(id, stay)`; an id above 3
    /// disables its slot. This is the 4-port layout: 8-port firmware takes
    /// eight slots plus session fields, not supported here.
    FastSwitchInventory {
        antennas: [(u8, u8); 4],
        interval_ms: u8,
        repeat: u8,
    },
}

impl A0Command {
    /// The command byte, which the reply echoes: how the reader task matches
    /// a [`A0Message::Reply`] or [`A0Message::Error`] to what it sent.
    pub fn code(&self) -> u8 {
        match self {
            A0Command::Reset => CMD_RESET,
            A0Command::GetFirmware => CMD_GET_FIRMWARE,
            A0Command::SetWorkAntenna(_) => CMD_SET_WORK_ANTENNA,
            A0Command::GetWorkAntenna => CMD_GET_WORK_ANTENNA,
            A0Command::RealTimeInventory { .. } => CMD_REAL_TIME_INVENTORY,
            A0Command::SessionInventory { .. } => CMD_SESSION_INVENTORY,
            A0Command::FastSwitchInventory { .. } => CMD_FAST_SWITCH_INVENTORY,
        }
    }
}

impl Encoder<A0Command> for A0Codec {
    type Error = io::Error;

    fn encode(&mut self, command: A0Command, dst: &mut BytesMut) -> Result<(), io::Error> {
        let start = dst.len();
        // Len is patched in once the data is written.
        dst.put_slice(&[HEAD, 0, self.address, command.code()]);
        match command {
            A0Command::Reset | A0Command::GetFirmware | A0Command::GetWorkAntenna => {}
            A0Command::SetWorkAntenna(id) => dst.put_u8(id),
            A0Command::RealTimeInventory { repeat } => dst.put_u8(repeat),
            A0Command::SessionInventory {
                session,
                target,
                repeat,
            } => dst.put_slice(&[session, target, repeat]),
            A0Command::FastSwitchInventory {
                antennas,
                interval_ms,
                repeat,
            } => {
                for (id, stay) in antennas {
                    dst.put_slice(&[id, stay]);
                }
                dst.put_slice(&[interval_ms, repeat]);
            }
        }
        // Addr through Check; no command comes near 255 bytes.
        dst[start + 1] = (dst.len() - start - 1) as u8;
        let sum = dst[start..].iter().fold(0u8, |sum, &b| sum.wrapping_add(b));
        dst.put_u8(sum.wrapping_neg());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
