use proptest::prelude::*;

use super::*;
use crate::decode::testutil::{barcode as read, decode_chunked, is_subsequence, reads};
use DropReason::{Malformed, TooLong};

const TERMINATORS: [Terminator; 4] = [
    Terminator::Cr,
    Terminator::Lf,
    Terminator::Crlf,
    Terminator::Etx,
];

fn codec(terminator: Terminator) -> AsciiLineCodec {
    AsciiLineCodec::new(terminator, None, None, 32, Source::Barcode)
}

/// A barcode codec of lines up to 32 bytes with a `prefix` and `suffix`.
fn with_affixes(terminator: Terminator, prefix: &str, suffix: &str) -> AsciiLineCodec {
    AsciiLineCodec::new(
        terminator,
        Some(prefix.into()),
        Some(suffix.into()),
        32,
        Source::Barcode,
    )
}

fn dropped(reason: DropReason) -> Decoded {
    Decoded::Dropped(reason)
}

fn decode_all(codec: &mut AsciiLineCodec, input: &[u8]) -> Vec<Decoded> {
    decode_chunked(codec, input, &[]).0
}

fn terminator_bytes(terminator: Terminator) -> &'static [u8] {
    match terminator {
        Terminator::Cr => b"\r",
        Terminator::Lf => b"\n",
        Terminator::Crlf => b"\r\n",
        Terminator::Etx => b"\x03",
    }
}

#[test]
fn each_terminator_ends_a_line() {
    for terminator in TERMINATORS {
        let end = terminator_bytes(terminator);
        let input = [b"ASSET-1".as_slice(), end, b"ASSET-2", end].concat();
        assert_eq!(
            decode_all(&mut codec(terminator), &input),
            [read("ASSET-1"), read("ASSET-2")],
            "{terminator:?}"
        );
    }
}

#[test]
fn cr_lf_and_crlf_modes_accept_each_others_line_ends() {
    for terminator in [Terminator::Cr, Terminator::Lf, Terminator::Crlf] {
        let input = b"\nA\r\nB\rC\n\n\rD\r";
        assert_eq!(
            decode_all(&mut codec(terminator), input),
            [read("A"), read("B"), read("C"), read("D")],
            "{terminator:?}"
        );
    }
}

#[test]
fn etx_mode_strips_stx_and_the_record_suffix_before_it() {
    let input = b"\x02A\x03\r\n\x02B\x03C\x03";
    assert_eq!(
        decode_all(&mut codec(Terminator::Etx), input),
        [read("A"), read("B"), read("C")]
    );
}

#[test]
fn cr_lf_and_crlf_modes_strip_stx_and_etx_framing() {
    for terminator in [Terminator::Cr, Terminator::Lf, Terminator::Crlf] {
        let end = terminator_bytes(terminator);
        let input = [
            b"\x02A\x03".as_slice(),
            end,
            b"\x02B",
            end,
            b"C\x03",
            end,
            b"\x02\x03",
            end,
            b"D",
            end,
        ]
        .concat();
        assert_eq!(
            decode_all(&mut codec(terminator), &input),
            [read("A"), read("B"), read("C"), read("D")],
            "{terminator:?}"
        );
    }
}

#[test]
fn stx_and_etx_inside_the_data_are_not_framing() {
    for terminator in [Terminator::Cr, Terminator::Lf, Terminator::Crlf] {
        let end = terminator_bytes(terminator);
        let input = [b"A\x03B".as_slice(), end, b"\x02\x02A", end].concat();
        assert_eq!(
            decode_all(&mut codec(terminator), &input),
            [dropped(Malformed), dropped(Malformed)],
            "{terminator:?}"
        );
    }
}

#[test]
fn framing_is_stripped_outside_the_prefix_and_suffix() {
    for terminator in TERMINATORS {
        let mut codec = with_affixes(terminator, "]C1", "#END");
        let etx = if terminator == Terminator::Etx {
            ""
        } else {
            "\x03"
        };
        let end = String::from_utf8(terminator_bytes(terminator).to_vec()).unwrap();
        let input = format!("\x02]C1ABC#END{etx}{end}\x02]C1DEF{end}GHI#END{etx}{end}");
        assert_eq!(
            decode_all(&mut codec, input.as_bytes()),
            [read("ABC"), read("DEF"), read("GHI")],
            "{terminator:?}"
        );
    }
}

/// Before STX/ETX were stripped in CR/LF modes, a scanner's framing was
/// configured as part of `prefix`/`suffix`; such a configuration still
/// works, whether or not the framing byte is also sent around it.
#[test]
fn a_prefix_or_suffix_that_holds_the_framing_byte_still_matches() {
    let mut codec = with_affixes(Terminator::Cr, "\x02P", "S\x03");
    let input = b"\x02PABCS\x03\r\x02\x02PDEFS\x03\x03\r";
    assert_eq!(decode_all(&mut codec, input), [read("ABC"), read("DEF")]);
}

#[test]
fn etx_mode_does_not_split_on_cr_or_lf_inside_a_line() {
    assert_eq!(
        decode_all(&mut codec(Terminator::Etx), b"\x02A\rB\x03"),
        [dropped(Malformed)]
    );
}

#[test]
fn line_arriving_one_byte_at_a_time() {
    let mut codec = codec(Terminator::Crlf);
    let mut buf = BytesMut::new();
    for &b in b"SN12345\r" {
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[b]);
    }
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(read("SN12345")));
    buf.extend_from_slice(b"\n");
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
}

#[test]
fn prefix_and_suffix_are_stripped_only_when_present() {
    let mut codec = with_affixes(Terminator::Cr, "]C1", "#END");
    let input = b"]C1ABC#END\r]C1ABC\rABC#END\rABC\r";
    assert_eq!(
        decode_all(&mut codec, input),
        [read("ABC"), read("ABC"), read("ABC"), read("ABC")]
    );
}

#[test]
fn lines_empty_after_stripping_are_ignored() {
    let mut codec = with_affixes(Terminator::Etx, "P", "S");
    assert_eq!(
        decode_all(&mut codec, b"\x03\x02\x03PS\x03\r\n\x03X\x03"),
        [read("X")]
    );
}

#[test]
fn overlong_line_is_dropped_once_and_the_next_line_decodes() {
    let long = [vec![b'9'; 100], b"\rGOOD\r".to_vec()].concat();
    for sizes in [&[][..], &[1], &[5, 33]] {
        let (items, most_buffered) = decode_chunked(&mut codec(Terminator::Cr), &long, sizes);
        assert_eq!(items, [dropped(TooLong), read("GOOD")], "chunks {sizes:?}");
        assert!(
            most_buffered <= 32 || sizes.is_empty(),
            "buffered {most_buffered} bytes"
        );
    }
}

#[test]
fn line_of_exactly_max_len_is_accepted() {
    let line = "X".repeat(32);
    let input = format!("{line}\r{line}Y\r");
    assert_eq!(
        decode_all(&mut codec(Terminator::Cr), input.as_bytes()),
        [read(&line), dropped(TooLong)]
    );
}

#[test]
fn barcode_punctuation_passes_intact() {
    assert_eq!(
        decode_all(&mut codec(Terminator::Cr), b"AB/1#+\r"),
        [read("AB/1#+")]
    );
}

#[test]
fn gs1_group_separator_is_kept() {
    let gs1 = "0109501101020917171905081010ABC\x1d21XYZ";
    let mut codec = AsciiLineCodec::new(Terminator::Cr, None, None, 64, Source::Barcode);
    assert_eq!(
        decode_all(&mut codec, format!("{gs1}\r").as_bytes()),
        [read(gs1)]
    );
}

#[test]
fn invalid_utf8_and_control_bytes_are_malformed() {
    let input = b"AB\xffCD\rAB\tCD\rAB\x00\rAB\x7f\rAB\xc2\x85\rcaf\xc3\xa9\r";
    assert_eq!(
        decode_all(&mut codec(Terminator::Cr), input),
        [
            dropped(Malformed),
            dropped(Malformed),
            dropped(Malformed),
            dropped(Malformed),
            dropped(Malformed),
            read("café"),
        ]
    );
}

#[test]
fn source_comes_from_the_reader_mode() {
    let mut codec = AsciiLineCodec::new(Terminator::Lf, None, None, 32, Source::Rfid);
    let items = decode_all(&mut codec, b"E2801160600002\n");
    assert!(matches!(
        &items[..],
        [Decoded::Read(RawRead {
            source: Source::Rfid,
            ..
        })]
    ));
}

#[test]
fn unterminated_line_at_end_of_stream_is_discarded_quietly() {
    let mut codec = codec(Terminator::Cr);
    let mut buf = BytesMut::from(&b"DONE\rHALF"[..]);
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), Some(read("DONE")));
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
}

fn any_terminator() -> impl Strategy<Value = Terminator> {
    prop::sample::select(TERMINATORS.to_vec())
}

fn affix() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[A-Z\\]\x02]{0,3}")
}

/// Bytes that exercise the framing: line ends, STX and printable text.
fn framing_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        1 => any::<u8>(),
        1 => prop::sample::select(vec![CR, LF, STX, ETX, 0x1d, b'A', b']']),
        4 => 0x20u8..0x7f,
    ];
    prop::collection::vec(byte, 0..128)
}

proptest! {
    #[test]
    fn any_input_split_anywhere_decodes_the_same_in_bounded_memory(
        terminator in any_terminator(),
        prefix in affix(),
        suffix in affix(),
        max_len in 0usize..40,
        input in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), framing_bytes()],
        sizes in prop::collection::vec(1usize..50, 1..8),
    ) {
        let new = || AsciiLineCodec::new(terminator, prefix.clone(), suffix.clone(), max_len, Source::Barcode);
        let whole = decode_all(&mut new(), &input);
        let (split, most_buffered) = decode_chunked(&mut new(), &input, &sizes);
        prop_assert!(most_buffered <= max_len, "buffered {} bytes", most_buffered);
        prop_assert_eq!(split, whole);
    }

    /// Whatever came before, a terminator resynchronises the decoder.
    #[test]
    fn good_lines_survive_any_garbage_before_them(
        terminator in any_terminator(),
        prefix in affix(),
        suffix in affix(),
        framed in any::<bool>(),
        parts in prop::collection::vec(
            (framing_bytes(), prop::collection::vec(prop_oneof![0x20u8..0x7f, Just(0x1d)], 1..32)),
            1..6,
        ),
        sizes in prop::collection::vec(1usize..50, 1..8),
    ) {
        let end = terminator_bytes(terminator);
        let mut input = Vec::new();
        let mut wanted = Vec::new();
        for (garbage, data) in &parts {
            input.extend_from_slice(garbage);
            input.extend_from_slice(end);
            if framed || terminator == Terminator::Etx {
                input.push(STX);
            }
            input.extend_from_slice(prefix.as_deref().unwrap_or("").as_bytes());
            input.extend_from_slice(data);
            input.extend_from_slice(suffix.as_deref().unwrap_or("").as_bytes());
            if framed && terminator != Terminator::Etx {
                input.push(ETX);
            }
            input.extend_from_slice(end);
            wanted.push(String::from_utf8(data.clone()).unwrap());
        }
        let mut codec = AsciiLineCodec::new(terminator, prefix.clone(), suffix.clone(), 64, Source::Barcode);
        let (items, _) = decode_chunked(&mut codec, &input, &sizes);
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let seen = reads(&items);
        prop_assert!(is_subsequence(&wanted, &seen), "wanted {:?}, decoded {:?}", wanted, seen);
    }
}
