use proptest::prelude::*;

use super::*;
use crate::decode::testutil::{decode_chunked, is_subsequence, junk, reads};
use DropReason::{Checksum, Garbage, Malformed};

/// Builds a frame for the 10 hex characters, computing the checksum.
fn frame(data: &str) -> Vec<u8> {
    let bytes: Vec<u8> = (0..5)
        .map(|i| u8::from_str_radix(&data[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let checksum = bytes.iter().fold(0, |acc, b| acc ^ b);
    let mut frame = vec![STX];
    frame.extend_from_slice(data.as_bytes());
    frame.extend_from_slice(format!("{checksum:02X}").as_bytes());
    frame.push(ETX);
    frame
}

fn read(data: &str) -> Decoded {
    Decoded::Read(RawRead {
        data: data.into(),
        source: Source::Rfid,
        antenna: None,
        rssi_dbm: None,
    })
}

fn dropped(reason: DropReason) -> Decoded {
    Decoded::Dropped(reason)
}

fn decode_all(input: &[u8]) -> Vec<Decoded> {
    decode_chunked(&mut Em4100Codec::new(), input, &[]).0
}

#[test]
fn reference_vectors() {
    let seeed = b"\x02\x36\x32\x45\x33\x30\x38\x36\x43\x45\x44\x30\x38\x03";
    assert_eq!(decode_all(seeed), [read("62E3086CED")]);
    let seeed2 = b"\x02\x30\x31\x30\x30\x30\x37\x33\x34\x45\x30\x44\x32\x03";
    assert_eq!(decode_all(seeed2), [read("01000734E0")]);
    assert_eq!(frame("62E3086CED"), seeed);
    assert_eq!(frame("01000734E0"), seeed2);
}

#[test]
fn lower_case_hex_is_accepted_and_reported_upper_case() {
    assert_eq!(decode_all(b"\x0262e3086ced08\x03"), [read("62E3086CED")]);
    assert_eq!(decode_all(b"\x0201000734e0d2\x03"), [read("01000734E0")]);
}

#[test]
fn frame_arriving_one_byte_at_a_time() {
    let mut codec = Em4100Codec::new();
    let mut buf = BytesMut::new();
    let frame = frame("62E3086CED");
    for &b in &frame[..FRAME_LEN - 1] {
        buf.extend_from_slice(&[b]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }
    buf.extend_from_slice(&[ETX]);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(read("62E3086CED")));
    assert!(buf.is_empty());
}

#[test]
fn several_frames_in_one_read() {
    let input = [
        frame("62E3086CED"),
        frame("01000734E0"),
        frame("62E3086CED"),
    ]
    .concat();
    assert_eq!(
        decode_all(&input),
        [read("62E3086CED"), read("01000734E0"), read("62E3086CED")]
    );
}

#[test]
fn garbage_before_and_between_frames_is_one_drop_per_run() {
    let input = [
        b"noise\x03".as_slice(),
        &frame("62E3086CED"),
        b"\xff\x00",
        &frame("01000734E0"),
    ]
    .concat();
    assert_eq!(
        decode_all(&input),
        [
            dropped(Garbage),
            read("62E3086CED"),
            dropped(Garbage),
            read("01000734E0")
        ]
    );
}

#[test]
fn garbage_run_split_across_reads_is_still_one_drop() {
    let input = [b"0123456789abcdef".as_slice(), &frame("62E3086CED")].concat();
    let (items, _) = decode_chunked(&mut Em4100Codec::new(), &input, &[1]);
    assert_eq!(items, [dropped(Garbage), read("62E3086CED")]);
}

#[test]
fn bad_checksum() {
    assert_eq!(decode_all(b"\x0262E3086CED09\x03"), [dropped(Checksum)]);
}

#[test]
fn missing_etx_and_bad_hex_are_malformed() {
    assert_eq!(decode_all(b"\x0262E3086CED08\x04"), [dropped(Malformed)]);
    assert_eq!(decode_all(b"\x0262E3086CEG08\x03"), [dropped(Malformed)]);
    assert_eq!(decode_all(b"\x02 62E3086CED0\x03"), [dropped(Malformed)]);
}

#[test]
fn truncated_frame_does_not_swallow_the_next_one() {
    // The reader lost bytes mid-frame; the next STX falls inside the 14
    // bytes read for the broken frame.
    let input = [b"\x0262E30".as_slice(), &frame("01000734E0")].concat();
    assert_eq!(decode_all(&input), [dropped(Malformed), read("01000734E0")]);
}

#[test]
fn malformed_frame_absorbs_junk_up_to_the_next_stx() {
    let input = [
        b"\x02this is not a frame at all".as_slice(),
        &frame("62E3086CED"),
    ]
    .concat();
    assert_eq!(decode_all(&input), [dropped(Malformed), read("62E3086CED")]);
    let (items, _) = decode_chunked(&mut Em4100Codec::new(), &input, &[3]);
    assert_eq!(items, [dropped(Malformed), read("62E3086CED")]);
}

#[test]
fn junk_after_a_bad_checksum_is_garbage() {
    let input = [b"\x0262E3086CED09\x03junk".as_slice(), &frame("62E3086CED")].concat();
    assert_eq!(
        decode_all(&input),
        [dropped(Checksum), dropped(Garbage), read("62E3086CED")]
    );
}

#[test]
fn stray_stx_runs_before_a_good_frame() {
    let input = [b"\x02\x02\x02".as_slice(), &frame("62E3086CED")].concat();
    assert_eq!(
        decode_all(&input),
        [
            dropped(Malformed),
            dropped(Malformed),
            dropped(Malformed),
            read("62E3086CED")
        ]
    );
}

#[test]
fn flood_of_garbage_then_a_frame_keeps_the_buffer_small() {
    // A reader on the wrong baud rate produces a steady stream of junk.
    let mut junk = junk(200_000);
    junk.extend_from_slice(&frame("01000734E0"));
    let (items, most_buffered) = decode_chunked(&mut Em4100Codec::new(), &junk, &[1, 7, 64, 4096]);
    assert_eq!(items.last(), Some(&read("01000734E0")));
    assert!(most_buffered < FRAME_LEN, "buffered {most_buffered} bytes");
}

#[test]
fn buffer_without_stx_is_cleared() {
    let mut codec = Em4100Codec::new();
    let mut buf = BytesMut::from(&b"no frame start here"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(dropped(Garbage)));
    assert!(buf.is_empty());
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
}

#[test]
fn partial_frame_at_end_of_stream_is_discarded_quietly() {
    let mut codec = Em4100Codec::new();
    let mut buf = BytesMut::from(&b"\x0262E308"[..]);
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
}

/// Bytes that exercise the framing: mostly STX, ETX and hex digits.
fn framing_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        2 => any::<u8>(),
        1 => Just(STX),
        1 => Just(ETX),
        4 => prop::sample::select(b"0123456789ABCDEFabcdef".to_vec()),
    ];
    prop::collection::vec(byte, 0..64)
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..20, 1..8)
}

proptest! {
    #[test]
    fn any_input_split_anywhere_decodes_the_same_in_bounded_memory(
        input in prop_oneof![prop::collection::vec(any::<u8>(), 0..512), framing_bytes()],
        sizes in chunk_sizes(),
    ) {
        let whole = decode_all(&input);
        let (split, most_buffered) = decode_chunked(&mut Em4100Codec::new(), &input, &sizes);
        prop_assert!(most_buffered < FRAME_LEN);
        prop_assert_eq!(split, whole);
    }

    /// No garbage, however it ends, can cost a good frame: a valid frame
    /// never contains 0x02 after its STX, so a frame start inside a
    /// rejected frame is always retried.
    #[test]
    fn good_frames_survive_any_garbage_around_them(
        parts in prop::collection::vec((framing_bytes(), any::<[u8; 5]>()), 1..6),
        trailing in framing_bytes(),
        sizes in chunk_sizes(),
    ) {
        let mut input = Vec::new();
        let mut wanted = Vec::new();
        for (garbage, data) in &parts {
            let data: String = data.iter().map(|b| format!("{b:02X}")).collect();
            input.extend_from_slice(garbage);
            input.extend_from_slice(&frame(&data));
            wanted.push(data);
        }
        input.extend_from_slice(&trailing);
        let (items, _) = decode_chunked(&mut Em4100Codec::new(), &input, &sizes);
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let seen = reads(&items);
        prop_assert!(is_subsequence(&wanted, &seen), "wanted {:?}, decoded {:?}", wanted, seen);
    }
}
