//! Helpers shared by the decoder tests: a chunked-decode driver for the
//! codecs, and raw `input_event` recordings for the HID keymap.

use std::io;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::keymap::{EventLayout, EV_KEY, EV_MSC, EV_SYN};
use super::{Decoded, RawRead, Source};

/// Feeds `input` to `codec` in chunks of the given sizes (cycled), the way a
/// serial port hands over whatever bytes have arrived, then signals end of
/// stream. Returns everything decoded and the most the codec kept buffered
/// while waiting for more input, which is the memory a reader can pin.
pub fn decode_chunked<C>(codec: &mut C, input: &[u8], sizes: &[usize]) -> (Vec<C::Item>, usize)
where
    C: Decoder<Error = io::Error>,
{
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut most_buffered = 0;
    let mut sizes = sizes.iter().copied().filter(|&n| n > 0).cycle();
    let mut rest = input;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(item) = codec.decode(&mut buf).expect("decoders never fail") {
            items.push(item);
        }
        most_buffered = most_buffered.max(buf.len());
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("decoders never fail") {
        items.push(item);
    }
    assert!(buf.is_empty(), "decode_eof must leave nothing behind");
    (items, most_buffered)
}

/// A barcode read of `data`, as a scanner's decoder makes it.
/// `n` bytes of deterministic junk (xorshift), like a reader on the wrong
/// baud rate produces, for the codecs' flood tests.
pub fn junk(n: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

pub fn barcode(data: &str) -> Decoded {
    Decoded::Read(RawRead {
        data: data.into(),
        source: Source::Barcode,
        antenna: None,
        rssi_dbm: None,
    })
}

/// The data of every read, in order.
pub fn reads(items: &[Decoded]) -> Vec<&str> {
    items
        .iter()
        .filter_map(|item| match item {
            Decoded::Read(read) => Some(read.data.as_str()),
            Decoded::Dropped(_) => None,
        })
        .collect()
}

/// Whether `wanted` appears in `seen` in order, possibly with other items between.
pub fn is_subsequence<T: PartialEq>(wanted: &[T], seen: &[T]) -> bool {
    let mut seen = seen.iter();
    wanted.iter().all(|w| seen.any(|s| s == w))
}

/// Key codes the keymap tests type (linux/input-event-codes.h).
pub mod key {
    pub const KEY_1: u16 = 2;
    pub const KEY_3: u16 = 4;
    pub const KEY_EQUAL: u16 = 13;
    pub const KEY_ENTER: u16 = 28;
    pub const KEY_A: u16 = 30;
    pub const KEY_C: u16 = 46;
    pub const KEY_B: u16 = 48;
    pub const KEY_SLASH: u16 = 53;
}

/// One `struct input_event` as the kernel writes it for a process of
/// `layout`: tv_sec and tv_usec as `long`s (so truncated to 32 bits for
/// [`EventLayout::Bits32`]), then type u16, code u16, value i32, in host
/// byte order.
pub fn input_event(
    layout: EventLayout,
    (sec, usec): (i64, i64),
    type_: u16,
    code: u16,
    value: i32,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(layout.size());
    match layout {
        EventLayout::Bits64 => {
            b.extend_from_slice(&sec.to_ne_bytes());
            b.extend_from_slice(&usec.to_ne_bytes());
        }
        EventLayout::Bits32 => {
            b.extend_from_slice(&(sec as i32).to_ne_bytes());
            b.extend_from_slice(&(usec as i32).to_ne_bytes());
        }
    }
    b.extend_from_slice(&type_.to_ne_bytes());
    b.extend_from_slice(&code.to_ne_bytes());
    b.extend_from_slice(&value.to_ne_bytes());
    b
}

/// Records what a keyboard wedge sends, as raw structs with advancing
/// timestamps: every key change is preceded by MSC_SCAN (the HID usage) and
/// followed by SYN_REPORT, as real keyboards do.
pub struct Recording {
    pub layout: EventLayout,
    pub bytes: Vec<u8>,
    usec: i64,
}

impl Recording {
    pub fn new(layout: EventLayout) -> Self {
        Recording {
            layout,
            bytes: Vec::new(),
            usec: 0,
        }
    }

    /// A key event: `value` 1 press, 0 release, 2 autorepeat.
    pub fn key(mut self, code: u16, value: i32) -> Self {
        const MSC_SCAN: u16 = 4;
        self.usec += 1000;
        let time = (1_767_000_000, self.usec);
        for (type_, code, value) in [
            (EV_MSC, MSC_SCAN, 0x70000 + i32::from(code)),
            (EV_KEY, code, value),
            (EV_SYN, 0, 0),
        ] {
            let event = input_event(self.layout, time, type_, code, value);
            self.bytes.extend(event);
        }
        self
    }

    pub fn tap(self, code: u16) -> Self {
        self.key(code, 1).key(code, 0)
    }

    pub fn taps(self, codes: &[u16]) -> Self {
        codes.iter().fold(self, |r, &c| r.tap(c))
    }

    /// `code` typed with `modifier` held around it.
    pub fn with(self, modifier: u16, code: u16) -> Self {
        self.key(modifier, 1).tap(code).key(modifier, 0)
    }
}
