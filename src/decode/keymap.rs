//! USB HID barcode scanners ("keyboard wedges"): Linux evdev key events into
//! scans, through a US keymap.
//!
//! A keyboard wedge types each code as key presses and ends it with a suffix
//! key (Enter by default, Tab on some). Upper case comes as Shift held around
//! the key; the GS1 field separator (GS, 0x1D) comes as Ctrl+] on most
//! scanners (Datalogic's Product Reference Guide, "Control Character Emulation"). Everything here is pure: the reader task
//! (`sources::hid`) reads raw `input_event` structs, [`parse_events`] splits
//! them, [`KeyDecoder::feed`] turns them into reads, and the task calls
//! [`KeyDecoder::flush`] when a scan has gone quiet without its end key.
//!
//! The scanner's keyboard layout must be US (its factory default): the map
//! goes from key positions to characters, so a scanner set to another layout
//! types other keys for the same code.

use super::{Decoded, DropReason, RawRead, Source};
use serde::Deserialize;

/// The GS1 field separator (FNC1 in the symbol), as scanners transmit it.
pub const GS: &str = "\u{1d}";

/// `kind = "hid"`: which key ends a scan. It must match the suffix the
/// scanner is programmed to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndOn {
    Enter,
    Tab,
    EnterOrTab,
}

impl EndOn {
    /// As spelled in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            EndOn::Enter => "enter",
            EndOn::Tab => "tab",
            EndOn::EnterOrTab => "enter_or_tab",
        }
    }
}

/// `input_event.type` values (linux/input-event-codes.h).
pub const EV_SYN: u16 = 0;
pub const EV_KEY: u16 = 1;
pub const EV_MSC: u16 = 4;

/// One `struct input_event`, without its timestamp: the scan's timing is
/// the reader task's (tokio) clock, which tests can pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    pub type_: u16,
    pub code: u16,
    /// For `EV_KEY`: 0 release, 1 press, 2 autorepeat.
    pub value: i32,
}

/// How the kernel lays out `struct input_event` for the reading process: a
/// `struct timeval` of two `long`s (seconds, microseconds), then type, code
/// and value, in host byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLayout {
    /// 64-bit userspace: 24 bytes.
    Bits64,
    /// 32-bit userspace (e.g. armhf Raspberry Pi OS): 16 bytes. The kernel
    /// uses `long`s here even where libc's `time_t` is 64-bit.
    Bits32,
}

impl EventLayout {
    /// This process's layout: the kernel picks it by the reader's `long`.
    pub const NATIVE: EventLayout = if std::mem::size_of::<std::ffi::c_long>() == 8 {
        EventLayout::Bits64
    } else {
        EventLayout::Bits32
    };

    /// Bytes per event.
    pub const fn size(self) -> usize {
        match self {
            EventLayout::Bits64 => 24,
            EventLayout::Bits32 => 16,
        }
    }
}

/// The events in `bytes`, whole structs only. A read of an evdev node
/// returns whole structs, so a trailing fragment can only be garbage; it is
/// ignored.
pub fn parse_events(bytes: &[u8], layout: EventLayout) -> impl Iterator<Item = InputEvent> + '_ {
    let time = layout.size() - 8;
    bytes.chunks_exact(layout.size()).map(move |e| {
        let e = &e[time..];
        InputEvent {
            type_: u16::from_ne_bytes([e[0], e[1]]),
            code: u16::from_ne_bytes([e[2], e[3]]),
            value: i32::from_ne_bytes([e[4], e[5], e[6], e[7]]),
        }
    })
}

// Key codes (linux/input-event-codes.h).
const KEY_TAB: u16 = 15;
const KEY_RIGHTBRACE: u16 = 27;
const KEY_ENTER: u16 = 28;
const KEY_LEFTCTRL: u16 = 29;
const KEY_LEFTSHIFT: u16 = 42;
const KEY_RIGHTSHIFT: u16 = 54;
const KEY_LEFTALT: u16 = 56;
const KEY_CAPSLOCK: u16 = 58;
const KEY_KPENTER: u16 = 96;
const KEY_RIGHTCTRL: u16 = 97;
const KEY_RIGHTALT: u16 = 100;

/// The US keymap: (unshifted, shifted) character by key code. Letters are
/// listed in lower case; caps lock and shift decide their case.
fn us_key(code: u16) -> Option<(char, char)> {
    const DIGITS: &[u8; 10] = b"1234567890";
    const DIGITS_SHIFTED: &[u8; 10] = b"!@#$%^&*()";
    let pair = |a: u8, b: u8| Some((char::from(a), char::from(b)));
    let letter = |row: &[u8], first: u16| {
        let c = row[usize::from(code - first)];
        pair(c, c.to_ascii_uppercase())
    };
    match code {
        2..=11 => {
            let i = usize::from(code - 2);
            pair(DIGITS[i], DIGITS_SHIFTED[i])
        }
        12 => pair(b'-', b'_'),
        13 => pair(b'=', b'+'),
        16..=25 => letter(b"qwertyuiop", 16),
        26 => pair(b'[', b'{'),
        27 => pair(b']', b'}'),
        30..=38 => letter(b"asdfghjkl", 30),
        39 => pair(b';', b':'),
        40 => pair(b'\'', b'"'),
        41 => pair(b'`', b'~'),
        43 => pair(b'\\', b'|'),
        44..=50 => letter(b"zxcvbnm", 44),
        51 => pair(b',', b'<'),
        52 => pair(b'.', b'>'),
        53 => pair(b'/', b'?'),
        57 => pair(b' ', b' '),
        // The keypad types the same with or without shift (num lock on, as
        // scanners assume).
        55 => pair(b'*', b'*'),
        71..=83 => {
            let c = b"789-456+1230."[usize::from(code - 71)];
            pair(c, c)
        }
        98 => pair(b'/', b'/'),
        _ => None,
    }
}

/// A modifier held, left and right key apart, so releasing one of two held
/// keys does not release the modifier.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    left: bool,
    right: bool,
}

impl Held {
    fn any(self) -> bool {
        self.left || self.right
    }

    fn set(&mut self, right: bool, down: bool) {
        *if right {
            &mut self.right
        } else {
            &mut self.left
        } = down;
    }
}

/// The scan being typed.
#[derive(Debug)]
struct Scan {
    text: String,
    /// Longest scan accepted, in bytes; bounds memory.
    max_len: usize,
    /// The scan is already lost (too long, or a key that cannot be data); it
    /// is dropped with this reason when it ends.
    spoiled: Option<DropReason>,
}

impl Scan {
    fn push(&mut self, text: &str) {
        if self.spoiled.is_some() {
            return;
        }
        if self.text.len() + text.len() > self.max_len {
            self.spoil(DropReason::TooLong);
        } else {
            self.text.push_str(text);
        }
    }

    fn spoil(&mut self, reason: DropReason) {
        self.spoiled.get_or_insert(reason);
        self.text.clear();
    }

    fn is_pending(&self) -> bool {
        !self.text.is_empty() || self.spoiled.is_some()
    }
}

/// Turns one scanner's key events into scans.
#[derive(Debug)]
pub struct KeyDecoder {
    end_on: EndOn,
    /// What Ctrl+] becomes.
    gs: String,
    source: Source,
    shift: Held,
    ctrl: Held,
    alt: Held,
    caps_lock: bool,
    scan: Scan,
}

impl KeyDecoder {
    pub fn new(end_on: EndOn, gs_substitute: &str, max_len: usize, source: Source) -> Self {
        KeyDecoder {
            end_on,
            gs: gs_substitute.to_owned(),
            source,
            shift: Held::default(),
            ctrl: Held::default(),
            alt: Held::default(),
            caps_lock: false,
            scan: Scan {
                text: String::new(),
                max_len,
                spoiled: None,
            },
        }
    }

    /// Feeds one event; a scan ended by it comes back as a read, or as a
    /// drop when it was too long or held a key that cannot be data. Events
    /// other than key presses, releases and repeats, and keys outside the
    /// map, are ignored.
    pub fn feed(&mut self, ev: &InputEvent) -> Option<Decoded> {
        if ev.type_ != EV_KEY {
            return None;
        }
        let down = match ev.value {
            0 => false,
            1 | 2 => true,
            _ => return None,
        };
        let (modifier, right) = match ev.code {
            KEY_LEFTSHIFT => (&mut self.shift, false),
            KEY_RIGHTSHIFT => (&mut self.shift, true),
            KEY_LEFTCTRL => (&mut self.ctrl, false),
            KEY_RIGHTCTRL => (&mut self.ctrl, true),
            KEY_LEFTALT => (&mut self.alt, false),
            KEY_RIGHTALT => (&mut self.alt, true),
            code if down => return self.press(code, ev.value == 2),
            _ => return None,
        };
        modifier.set(right, down);
        None
    }

    fn press(&mut self, code: u16, repeat: bool) -> Option<Decoded> {
        let ends = match code {
            KEY_ENTER | KEY_KPENTER => self.end_on != EndOn::Tab,
            KEY_TAB => self.end_on != EndOn::Enter,
            KEY_CAPSLOCK => {
                // A held key's repeats do not toggle it again.
                self.caps_lock ^= !repeat;
                return None;
            }
            _ => false,
        };
        if ends {
            return self.end();
        }
        // Unmapped keys (arrows, function keys, Backspace, and Enter or Tab
        // when they do not end a scan) carry no data.
        let (plain, shifted) = us_key(code)?;
        if self.ctrl.any() && code == KEY_RIGHTBRACE {
            self.scan.push(&self.gs);
        } else if self.ctrl.any() || self.alt.any() {
            // Another control character, or an Alt+keypad code: not data
            // this decoder can reproduce, and keeping the scan without it
            // could publish a wrong id.
            self.scan.spoil(DropReason::Malformed);
        } else {
            let upper = if plain.is_ascii_alphabetic() {
                self.shift.any() != self.caps_lock
            } else {
                self.shift.any()
            };
            let c = if upper { shifted } else { plain };
            self.scan.push(c.encode_utf8(&mut [0; 4]));
        }
        None
    }

    /// The end key: the scan as a read, its drop, or nothing for an empty
    /// scan (a scanner sending CR+LF as two keys, a repeated end key).
    fn end(&mut self) -> Option<Decoded> {
        if let Some(reason) = self.scan.spoiled.take() {
            return Some(Decoded::Dropped(reason));
        }
        if self.scan.text.is_empty() {
            return None;
        }
        Some(Decoded::Read(RawRead {
            data: std::mem::take(&mut self.scan.text),
            source: self.source,
            antenna: None,
            rssi_dbm: None,
        }))
    }

    /// Whether a scan has begun and not ended: the reader task runs the
    /// scan timeout only then.
    pub fn is_pending(&self) -> bool {
        self.scan.is_pending()
    }

    /// Ends a scan that never got its end key: dropped and counted as
    /// [`DropReason::Unterminated`], never published. A scan cut short (a
    /// lost end key, a scanner unplugged mid-code) is as likely a truncated
    /// code as a whole one, and a truncated id in a custody record names an
    /// asset that does not exist, while a missed scan is simply scanned
    /// again. A scanner whose suffix does not match `end_on` shows up as
    /// every scan counted here. Held modifiers stay held: their releases are
    /// still to come.
    pub fn flush(&mut self) -> Option<Decoded> {
        let pending = self.scan.is_pending();
        self.scan.text.clear();
        self.scan.spoiled = None;
        pending.then_some(Decoded::Dropped(DropReason::Unterminated))
    }

    /// Bytes held for the scan in progress (at most `max_len`).
    pub fn buffered(&self) -> usize {
        self.scan.text.len()
    }
}

#[cfg(test)]
mod tests;
