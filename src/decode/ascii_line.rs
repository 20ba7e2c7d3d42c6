//! One tag or barcode per line.
//!
//! Serial and CDC-ACM scanners, and RFID readers in "keyboard" output mode,
//! send the data followed by a record suffix chosen in the device's menu
//! (CR by default on most scanners), optionally wrapped in STX/ETX and
//! user-configured prefix/suffix text: `STX prefix data suffix ETX CR`. A
//! technician often cannot tell which of CR, LF or CRLF a device sends, so in
//! those modes any of them ends a line and the empty lines that CRLF
//! produces are ignored. A leading STX and a trailing ETX are framing in
//! every mode, stripped when present; a configured `prefix` or `suffix` that
//! itself holds them (written before custodyd stripped them) still matches.

use std::io;
use std::mem;

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::{Decoded, DropReason, RawRead, Source};
use serde::{Deserialize, Serialize};

/// What ends a line, as the configuration names it (`terminator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Terminator {
    Cr,
    Lf,
    Crlf,
    Etx,
}

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const LF: u8 = b'\n';
const CR: u8 = b'\r';
/// GS1 barcodes separate variable-length fields with GS, so it is data.
const GS: char = '\x1d';

#[derive(Debug, Clone)]
pub struct AsciiLineCodec {
    terminator: Terminator,
    prefix: Option<String>,
    suffix: Option<String>,
    /// Longest line accepted, counting every byte before the terminator
    /// (STX and prefix/suffix included): it bounds memory, not the data.
    max_len: usize,
    source: Source,
    /// How much of the buffer is already known to hold no terminator, so bytes
    /// trickling in one at a time are not searched again on every call.
    scanned: usize,
    /// Inside a line already reported as too long: its bytes are thrown away
    /// as they arrive, up to the next terminator, instead of being buffered.
    discarding: bool,
}

impl AsciiLineCodec {
    pub fn new(
        terminator: Terminator,
        prefix: Option<String>,
        suffix: Option<String>,
        max_len: usize,
        source: Source,
    ) -> Self {
        AsciiLineCodec {
            terminator,
            prefix,
            suffix,
            max_len,
            source,
            scanned: 0,
            discarding: false,
        }
    }

    fn is_terminator(&self, b: u8) -> bool {
        match self.terminator {
            Terminator::Cr | Terminator::Lf | Terminator::Crlf => b == CR || b == LF,
            Terminator::Etx => b == ETX,
        }
    }

    /// Turns one line (without its terminator) into a read; `None` for a line
    /// with nothing in it.
    fn parse_line(&self, mut line: &[u8]) -> Option<Decoded> {
        if self.terminator == Terminator::Etx {
            // A record suffix the scanner appends after ETX lands at the start
            // of the next line, ahead of its optional STX.
            while let [CR | LF, rest @ ..] = line {
                line = rest;
            }
        }
        let line = strip_framed(line, self.prefix.as_deref(), |l, p| l.strip_prefix(p), STX);
        let line = strip_framed(line, self.suffix.as_deref(), |l, s| l.strip_suffix(s), ETX);
        if line.is_empty() {
            return None;
        }
        let malformed = Some(Decoded::Dropped(DropReason::Malformed));
        let Ok(text) = std::str::from_utf8(line) else {
            return malformed;
        };
        if text.chars().any(|c| c.is_control() && c != GS) {
            return malformed;
        }
        Some(Decoded::Read(RawRead {
            data: text.to_owned(),
            source: self.source,
            antenna: None,
            rssi_dbm: None,
        }))
    }
}

/// `line` without its framing byte (STX at the start, ETX at the end) and
/// then without `affix` (the configured prefix or suffix), each where
/// present; `strip` takes bytes off the end in question. An affix that
/// includes the framing byte matches the line as read.
fn strip_framed<'a>(
    line: &'a [u8],
    affix: Option<&str>,
    strip: impl Fn(&'a [u8], &[u8]) -> Option<&'a [u8]>,
    framing: u8,
) -> &'a [u8] {
    let unframed = strip(line, &[framing]).unwrap_or(line);
    let Some(affix) = affix.map(str::as_bytes) else {
        return unframed;
    };
    strip(unframed, affix)
        .or_else(|| strip(line, affix))
        .unwrap_or(unframed)
}

impl Decoder for AsciiLineCodec {
    type Item = Decoded;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, io::Error> {
        loop {
            let from = self.scanned.min(src.len());
            let end = src[from..]
                .iter()
                .position(|&b| self.is_terminator(b))
                .map(|i| from + i);
            let Some(end) = end else {
                if self.discarding {
                    src.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                if src.len() > self.max_len {
                    src.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Ok(Some(Decoded::Dropped(DropReason::TooLong)));
                }
                self.scanned = src.len();
                return Ok(None);
            };
            let item = if mem::replace(&mut self.discarding, false) {
                // The tail of a line already reported as too long.
                None
            } else if end > self.max_len {
                Some(Decoded::Dropped(DropReason::TooLong))
            } else {
                self.parse_line(&src[..end])
            };
            src.advance(end + 1);
            self.scanned = 0;
            if item.is_some() {
                return Ok(item);
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, io::Error> {
        let item = self.decode(src)?;
        if item.is_none() {
            // An unterminated line may be a scan cut short by the unplug; it
            // is not trusted, and the next stream starts afresh.
            src.clear();
            self.scanned = 0;
            self.discarding = false;
        }
        Ok(item)
    }
}

#[cfg(test)]
mod tests;
