use proptest::prelude::*;

use super::GS;
use super::*;
use crate::decode::testutil::key::{KEY_1, KEY_3, KEY_A, KEY_B, KEY_C, KEY_EQUAL, KEY_SLASH};
use crate::decode::testutil::{barcode as read, input_event, Recording};

const MSC_SCAN: u16 = 4;

/// A recording of 24-byte structs, as a 64-bit process reads them.
fn rec() -> Recording {
    Recording::new(EventLayout::Bits64)
}

fn struct64(sec: i64, usec: i64, type_: u16, code: u16, value: i32) -> Vec<u8> {
    input_event(EventLayout::Bits64, (sec, usec), type_, code, value)
}

fn decoder(end_on: EndOn) -> KeyDecoder {
    KeyDecoder::new(end_on, GS, 32, Source::Barcode)
}

/// What a decoder with the defaults (Enter, GS) makes of `r`.
fn scans(r: &Recording) -> Vec<Decoded> {
    decode(&mut decoder(EndOn::Enter), &r.bytes)
}

fn decode(d: &mut KeyDecoder, bytes: &[u8]) -> Vec<Decoded> {
    parse_events(bytes, EventLayout::Bits64)
        .filter_map(|e| d.feed(&e))
        .collect()
}

#[test]
fn the_kernel_layout_is_parsed_field_by_field() {
    assert_eq!(EventLayout::Bits64.size(), 24);
    assert_eq!(EventLayout::Bits32.size(), 16);
    assert_eq!(
        EventLayout::NATIVE.size(),
        16 + 2 * std::mem::size_of::<std::ffi::c_long>() - 8
    );
    let mut bytes = struct64(-1, 999_999, EV_KEY, KEY_A, 1);
    bytes.extend(struct64(0, 0, EV_SYN, 0, 0));
    assert_eq!(
        parse_events(&bytes, EventLayout::Bits64).collect::<Vec<_>>(),
        [
            InputEvent {
                type_: EV_KEY,
                code: KEY_A,
                value: 1
            },
            InputEvent {
                type_: EV_SYN,
                code: 0,
                value: 0
            },
        ]
    );
    let bytes = input_event(EventLayout::Bits32, (7, 8), EV_MSC, MSC_SCAN, -458_752);
    assert_eq!(
        parse_events(&bytes, EventLayout::Bits32).collect::<Vec<_>>(),
        [InputEvent {
            type_: EV_MSC,
            code: MSC_SCAN,
            value: -458_752
        }]
    );
    // A fragment of a struct is not an event.
    assert_eq!(parse_events(&bytes[..15], EventLayout::Bits32).count(), 0);
}

/// `A` pressed, byte by byte as the kernel writes it for a 64-bit
/// little-endian process (x86_64, arm64).
#[cfg(target_endian = "little")]
#[test]
fn a_captured_little_endian_struct_decodes() {
    let bytes: [u8; 24] = [
        0x5b, 0x2c, 0x51, 0x69, 0, 0, 0, 0, // tv_sec
        0x40, 0xe2, 0x01, 0, 0, 0, 0, 0, // tv_usec 123456
        0x01, 0x00, // EV_KEY
        0x1e, 0x00, // KEY_A
        0x01, 0x00, 0x00, 0x00, // press
    ];
    assert_eq!(
        parse_events(&bytes, EventLayout::Bits64).next(),
        Some(InputEvent {
            type_: EV_KEY,
            code: KEY_A,
            value: 1
        })
    );
}

#[test]
fn lower_case_letters_and_digits() {
    let r = rec()
        .taps(&[KEY_A, KEY_B, KEY_C, KEY_1, KEY_3])
        .tap(KEY_ENTER);
    assert_eq!(scans(&r), [read("abc13")]);
}

#[test]
fn shift_makes_upper_case_and_symbols() {
    // `AB/1#+` as a wedge types it: Shift around each upper-case key.
    let r = rec()
        .with(KEY_LEFTSHIFT, KEY_A)
        .with(KEY_RIGHTSHIFT, KEY_B)
        .tap(KEY_SLASH)
        .tap(KEY_1)
        .with(KEY_LEFTSHIFT, KEY_3)
        .with(KEY_LEFTSHIFT, KEY_EQUAL)
        .tap(KEY_ENTER);
    assert_eq!(scans(&r), [read("AB/1#+")]);
}

#[test]
fn one_shift_released_while_the_other_is_held_still_shifts() {
    let r = rec()
        .key(KEY_LEFTSHIFT, 1)
        .key(KEY_RIGHTSHIFT, 1)
        .key(KEY_LEFTSHIFT, 0)
        .tap(KEY_A)
        .key(KEY_RIGHTSHIFT, 0)
        .tap(KEY_A)
        .tap(KEY_ENTER);
    assert_eq!(scans(&r), [read("Aa")]);
}

#[test]
fn caps_lock_inverts_letters_only_and_shift_inverts_it_back() {
    let r = rec()
        .tap(KEY_CAPSLOCK)
        .taps(&[KEY_A, KEY_1])
        .with(KEY_LEFTSHIFT, KEY_B)
        .with(KEY_LEFTSHIFT, KEY_1)
        .tap(KEY_ENTER)
        .tap(KEY_CAPSLOCK)
        .tap(KEY_C)
        .tap(KEY_ENTER);
    assert_eq!(scans(&r), [read("A1b!"), read("c")]);
}

#[test]
fn ctrl_right_brace_is_the_gs1_separator_or_its_substitute() {
    // ]C1 0112345678901231 GS 10ABC: a GS1-128 with a variable-length
    // lot after the GTIN, as a Datalogic-style wedge types it.
    let digits = |r: Recording, s: &str| {
        s.bytes().fold(r, |r, b| {
            let code = match b {
                b'0' => 11,
                b'1'..=b'9' => u16::from(b - b'1') + 2,
                _ => unreachable!(),
            };
            r.tap(code)
        })
    };
    let r = rec()
        .tap(KEY_RIGHTBRACE)
        .with(KEY_LEFTSHIFT, KEY_C)
        .tap(KEY_1);
    let r = digits(r, "0112345678901231").with(KEY_LEFTCTRL, KEY_RIGHTBRACE);
    let r = digits(r, "10")
        .with(KEY_LEFTSHIFT, KEY_A)
        .with(KEY_LEFTSHIFT, KEY_B)
        .with(KEY_LEFTSHIFT, KEY_C)
        .tap(KEY_ENTER);
    assert_eq!(scans(&r), [read("]C10112345678901231\u{1d}10ABC")]);
    let mut substituted = KeyDecoder::new(EndOn::Enter, "|", 32, Source::Barcode);
    assert_eq!(
        decode(&mut substituted, &r.bytes),
        [read("]C10112345678901231|10ABC")]
    );
    // Right Ctrl too.
    let r = rec()
        .with(KEY_RIGHTCTRL, KEY_RIGHTBRACE)
        .tap(KEY_A)
        .tap(KEY_ENTER);
    assert_eq!(scans(&r), [read("\u{1d}a")]);
}

#[test]
fn other_control_keys_drop_the_scan_rather_than_publish_it_without_them() {
    let r = rec()
        .tap(KEY_A)
        .with(KEY_LEFTCTRL, KEY_B)
        .tap(KEY_C)
        .tap(KEY_ENTER)
        .with(KEY_LEFTALT, 82) // Alt+KP0
        .tap(KEY_ENTER)
        .tap(KEY_A)
        .tap(KEY_ENTER);
    assert_eq!(
        scans(&r),
        [
            Decoded::Dropped(DropReason::Malformed),
            Decoded::Dropped(DropReason::Malformed),
            read("a")
        ]
    );
}

#[test]
fn end_on_chooses_which_key_ends_a_scan() {
    let r = rec()
        .tap(KEY_A)
        .tap(KEY_TAB)
        .tap(KEY_B)
        .tap(KEY_ENTER)
        .tap(KEY_C)
        .tap(KEY_KPENTER);
    assert_eq!(decode(&mut decoder(EndOn::Tab), &r.bytes), [read("a")]);
    assert_eq!(scans(&r), [read("ab"), read("c")]);
    assert_eq!(
        decode(&mut decoder(EndOn::EnterOrTab), &r.bytes),
        [read("a"), read("b"), read("c")]
    );
}

#[test]
fn keypad_digits_type_digits() {
    let r = rec().taps(&[79, 80, 81, 82, 83, 74]).tap(KEY_ENTER);
    assert_eq!(scans(&r), [read("1230.-")]);
}

#[test]
fn autorepeat_types_again_but_does_not_retoggle_caps_lock() {
    let r = rec()
        .key(KEY_A, 1)
        .key(KEY_A, 2)
        .key(KEY_A, 2)
        .key(KEY_A, 0)
        .key(KEY_CAPSLOCK, 1)
        .key(KEY_CAPSLOCK, 2)
        .key(KEY_CAPSLOCK, 0)
        .tap(KEY_B)
        .tap(KEY_ENTER);
    assert_eq!(scans(&r), [read("aaaB")]);
}

#[test]
fn empty_scans_are_ignored() {
    let r = rec()
        .tap(KEY_ENTER)
        .tap(KEY_ENTER)
        .tap(KEY_A)
        .tap(KEY_ENTER)
        .tap(KEY_ENTER);
    assert_eq!(scans(&r), [read("a")]);
}

#[test]
fn a_scan_split_across_reads_decodes_as_one() {
    let r = rec()
        .with(KEY_LEFTSHIFT, KEY_A)
        .taps(&[KEY_SLASH, KEY_1])
        .tap(KEY_ENTER);
    let size = EventLayout::Bits64.size();
    let mut d = decoder(EndOn::Enter);
    // The kernel hands over whatever whole events are queued: one read
    // may end between Shift down and the key, or inside the scan.
    let mut items = Vec::new();
    for chunk in r.bytes.chunks(size * 4) {
        items.extend(decode(&mut d, chunk));
    }
    assert_eq!(items, [read("A/1")]);
}

#[test]
fn an_overlong_scan_is_dropped_once_and_the_next_one_decodes() {
    let long = vec![KEY_A; 40];
    let r = rec().taps(&long).tap(KEY_ENTER).tap(KEY_B).tap(KEY_ENTER);
    let mut d = decoder(EndOn::Enter);
    let items = decode(&mut d, &r.bytes);
    assert_eq!(items, [Decoded::Dropped(DropReason::TooLong), read("b")]);
    // Exactly max_len fits.
    let r = rec().taps(&long[..32]).tap(KEY_ENTER);
    assert_eq!(decode(&mut d, &r.bytes), [read(&"a".repeat(32))]);
}

#[test]
fn flush_drops_an_unterminated_scan_and_counts_it() {
    let mut d = decoder(EndOn::Enter);
    assert_eq!(d.flush(), None, "nothing pending, nothing counted");
    let r = rec().key(KEY_LEFTSHIFT, 1).tap(KEY_A);
    assert!(decode(&mut d, &r.bytes).is_empty());
    assert!(d.is_pending());
    assert_eq!(d.flush(), Some(Decoded::Dropped(DropReason::Unterminated)));
    assert!(!d.is_pending());
    // Shift is still held until its release arrives.
    let r = rec().tap(KEY_B).key(KEY_LEFTSHIFT, 0).tap(KEY_ENTER);
    assert_eq!(decode(&mut d, &r.bytes), [read("B")]);
}

#[test]
fn garbage_values_and_unknown_codes_are_ignored() {
    let mut bytes = Vec::new();
    for (type_, code, value) in [
        (EV_KEY, 0xffff, 1), // beyond KEY_MAX
        (EV_KEY, 0, 1),      // KEY_RESERVED
        (EV_KEY, 103, 1),    // KEY_UP
        (EV_KEY, KEY_A, 3),  // no such key state
        (EV_KEY, KEY_A, -1), //
        (EV_KEY, KEY_A, i32::MIN),
        (0xffff, KEY_A, 1), // no such event type
        (EV_MSC, KEY_ENTER, 1),
        (2, KEY_ENTER, 1), // EV_REL
        (EV_KEY, KEY_LEFTSHIFT, 7),
    ] {
        bytes.extend(struct64(i64::MIN, -1, type_, code, value));
    }
    let r = rec().tap(KEY_B).tap(KEY_ENTER);
    bytes.extend(r.bytes);
    assert_eq!(decode(&mut decoder(EndOn::Enter), &bytes), [read("b")]);
}

#[test]
fn thirty_two_bit_structs_decode_the_same() {
    let r = rec().with(KEY_LEFTSHIFT, KEY_A).tap(KEY_B).tap(KEY_ENTER);
    let mut bytes = Vec::new();
    for e in parse_events(&r.bytes, EventLayout::Bits64) {
        bytes.extend(input_event(
            EventLayout::Bits32,
            (1, 2),
            e.type_,
            e.code,
            e.value,
        ));
    }
    let mut d = decoder(EndOn::Enter);
    let items: Vec<_> = parse_events(&bytes, EventLayout::Bits32)
        .filter_map(|e| d.feed(&e))
        .collect();
    assert_eq!(items, [read("Ab")]);
}

/// Events that reach the decoder's interesting states often: keys in
/// and around the map, modifiers, all key values.
fn plausible_event() -> impl Strategy<Value = InputEvent> {
    (
        prop_oneof![4 => Just(EV_KEY), 1 => 0u16..6],
        prop_oneof![4 => 0u16..110, 1 => any::<u16>()],
        prop_oneof![4 => 0i32..3, 1 => any::<i32>()],
    )
        .prop_map(|(type_, code, value)| InputEvent { type_, code, value })
}

fn check(d: &mut KeyDecoder, events: impl Iterator<Item = InputEvent>, max_len: usize) {
    for e in events {
        if let Some(Decoded::Read(r)) = d.feed(&e) {
            assert!(!r.data.is_empty() && r.data.len() <= max_len, "{r:?}");
            assert!(
                r.data
                    .chars()
                    .all(|c| c == '\u{1d}' || (' '..='~').contains(&c)),
                "{r:?}"
            );
        }
        assert!(d.buffered() <= max_len);
    }
    d.flush();
    assert!(!d.is_pending() && d.buffered() == 0);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        max_len in 0usize..64,
        bits32: bool,
    ) {
        let layout = if bits32 { EventLayout::Bits32 } else { EventLayout::Bits64 };
        let mut d = KeyDecoder::new(EndOn::EnterOrTab, GS, max_len, Source::Barcode);
        check(&mut d, parse_events(&bytes, layout), max_len);
    }

    #[test]
    fn arbitrary_key_sequences_never_panic_and_stay_bounded(
        events in prop::collection::vec(plausible_event(), 0..512),
        max_len in 0usize..64,
        end_on in prop::sample::select(vec![EndOn::Enter, EndOn::Tab, EndOn::EnterOrTab]),
    ) {
        let mut d = KeyDecoder::new(end_on, GS, max_len, Source::Barcode);
        check(&mut d, events.into_iter(), max_len);
    }
}
