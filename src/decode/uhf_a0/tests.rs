use proptest::prelude::*;

use super::*;
use crate::decode::testutil::{decode_chunked, junk};
use DropReason::{Checksum, Garbage, Malformed};

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// A frame from address 01 with the check byte computed.
fn frame(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![HEAD, data.len() as u8 + 3, 0x01, cmd];
    frame.extend_from_slice(data);
    let sum = frame.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    frame.push(sum.wrapping_neg());
    frame
}

/// A 0x89 tag record with an EPC of whole words and a PC to match.
fn tag_frame(freq_ant: u8, epc: &[u8], rssi: u8) -> Vec<u8> {
    let pc = ((epc.len() / 2) as u16) << 11;
    let mut data = vec![freq_ant];
    data.extend_from_slice(&pc.to_be_bytes());
    data.extend_from_slice(epc);
    data.push(rssi);
    frame(CMD_REAL_TIME_INVENTORY, &data)
}

fn decode_all(input: &[u8]) -> Vec<A0Event> {
    decode_chunked(&mut A0Codec::new(1), input, &[]).0
}

fn message(m: A0Message) -> A0Event {
    A0Event::Message(m)
}

fn dropped(reason: DropReason) -> A0Event {
    A0Event::Dropped(reason)
}

fn encode(address: u8, command: A0Command) -> Vec<u8> {
    let mut buf = BytesMut::new();
    A0Codec::new(address).encode(command, &mut buf).unwrap();
    buf.to_vec()
}

const SGTIN: &str = "30 74 25 7B F7 19 4E 40 00 00 1A 85";

fn sgtin_tag() -> TagRecord {
    TagRecord {
        epc: hex(SGTIN),
        pc: 0x3000,
        antenna: 1,
        rssi_dbm: -70,
        freq_khz: Some(902_000),
    }
}

#[test]
fn host_command_frames_of_reference_2_2() {
    use A0Command::*;
    let cases = [
        (0x01, Reset, "A0 03 01 70 EC"),
        (0xFF, Reset, "A0 03 FF 70 EE"),
        (0x01, GetFirmware, "A0 03 01 72 EA"),
        (0x01, SetWorkAntenna(0), "A0 04 01 74 00 E7"),
        (0x01, SetWorkAntenna(1), "A0 04 01 74 01 E6"),
        (0x01, GetWorkAntenna, "A0 03 01 75 E7"),
        (0x01, RealTimeInventory { repeat: 1 }, "A0 04 01 89 01 D1"),
        (
            0x01,
            RealTimeInventory { repeat: 0xFF },
            "A0 04 01 89 FF D3",
        ),
        (
            0xFF,
            RealTimeInventory { repeat: 0xFF },
            "A0 04 FF 89 FF D5",
        ),
        (
            0x01,
            SessionInventory {
                session: 1,
                target: 0,
                repeat: 1,
            },
            "A0 06 01 8B 01 00 01 CC",
        ),
        (
            0x01,
            FastSwitchInventory {
                antennas: [(0, 1), (1, 1), (2, 1), (3, 1)],
                interval_ms: 0,
                repeat: 1,
            },
            "A0 0D 01 8A 00 01 01 01 02 01 03 01 00 01 BD",
        ),
    ];
    for (address, command, wire) in cases {
        assert_eq!(encode(address, command.clone()), hex(wire), "{command:?}");
    }
}

#[test]
fn encoded_commands_append_to_what_is_queued() {
    let mut codec = A0Codec::new(1);
    let mut buf = BytesMut::new();
    codec
        .encode(A0Command::SetWorkAntenna(0), &mut buf)
        .unwrap();
    codec
        .encode(A0Command::RealTimeInventory { repeat: 1 }, &mut buf)
        .unwrap();
    assert_eq!(buf.to_vec(), hex("A0 04 01 74 00 E7 A0 04 01 89 01 D1"));
}

#[test]
fn worked_tag_record() {
    let wire = hex("A0 13 01 89 1C 30 00 30 74 25 7B F7 19 4E 40 00 00 1A 85 3B BB");
    assert_eq!(decode_all(&wire), [message(A0Message::Tag(sgtin_tag()))]);
    assert_eq!(wire, tag_frame(0x1C, &hex(SGTIN), 0x3B));
}

#[test]
fn tag_record_becomes_a_raw_read() {
    assert_eq!(
        RawRead::from(sgtin_tag()),
        RawRead {
            data: "3074257BF7194E4000001A85".into(),
            source: Source::Rfid,
            antenna: Some(1),
            rssi_dbm: Some(-70.0),
        }
    );
}

#[test]
fn antenna_frequency_and_rssi_fields() {
    let epc = [0x11, 0x22];
    let tag = |freq_ant, rssi| match decode_all(&tag_frame(freq_ant, &epc, rssi)).as_slice() {
        [A0Event::Message(A0Message::Tag(tag))] => tag.clone(),
        other => panic!("{other:?}"),
    };
    // Channel 0, antenna bits 3: the fourth port.
    let t = tag(0x03, 0x7F);
    assert_eq!((t.antenna, t.freq_khz, t.rssi_dbm), (4, Some(865_000), -2));
    let t = tag(6 << 2, 0x00);
    assert_eq!(
        (t.antenna, t.freq_khz, t.rssi_dbm),
        (1, Some(868_000), -129)
    );
    let t = tag(59 << 2 | 1, 0x3B);
    assert_eq!((t.antenna, t.freq_khz), (2, Some(928_000)));
    // Beyond the channel table: a user-defined region.
    assert_eq!(tag(60 << 2, 0x3B).freq_khz, None);
}

#[test]
fn rssi_high_bit_selects_the_upper_four_ports_of_an_8_port_reader() {
    let tag =
        |freq_ant, rssi| match decode_all(&tag_frame(freq_ant, &[0xAB, 0xCD], rssi)).as_slice() {
            [A0Event::Message(A0Message::Tag(tag))] => (tag.antenna, tag.rssi_dbm),
            other => panic!("{other:?}"),
        };
    assert_eq!(tag(0x1C, 0xBB), (5, -70));
    assert_eq!(tag(0x1F, 0xBB), (8, -70));
    assert_eq!(tag(0x1F, 0x3B), (4, -70));
}

#[test]
fn round_end_of_0x89() {
    assert_eq!(
        decode_all(&hex("A0 0A 01 89 00 00 32 00 00 00 01 99")),
        [message(A0Message::RoundEnd {
            antenna: Some(1),
            read_rate: 50,
            total_reads: 1,
        })]
    );
}

#[test]
fn round_end_of_0x8b_and_an_antenna_byte_that_is_not_one() {
    assert_eq!(
        decode_all(&frame(CMD_SESSION_INVENTORY, &[3, 0x01, 0x00, 0, 1, 0, 0])),
        [message(A0Message::RoundEnd {
            antenna: Some(4),
            read_rate: 256,
            total_reads: 65536,
        })]
    );
    assert_eq!(
        decode_all(&frame(CMD_REAL_TIME_INVENTORY, &[0xFF, 0, 0, 0, 0, 0, 0])),
        [message(A0Message::RoundEnd {
            antenna: None,
            read_rate: 0,
            total_reads: 0,
        })]
    );
}

#[test]
fn round_end_of_0x8a_keeps_its_raw_bytes() {
    assert_eq!(
        decode_all(&hex("A0 0A 01 8A 00 00 05 00 00 01 F4 D1")),
        [message(A0Message::FastSwitchEnd {
            total_reads: 5,
            duration_ms: 500,
            raw: [0x00, 0x00, 0x05, 0x00, 0x00, 0x01, 0xF4],
        })]
    );
}

#[test]
fn antenna_fault_during_fast_switch() {
    assert_eq!(
        decode_all(&hex("A0 05 01 8A 01 22 AD")),
        [message(A0Message::AntennaFault {
            antenna: Some(2),
            code: 0x22,
        })]
    );
}

#[test]
fn inventory_errors() {
    assert_eq!(
        decode_all(&hex("A0 04 01 89 22 B0")),
        [message(A0Message::Error {
            cmd: 0x89,
            code: 0x22
        })]
    );
    for cmd in [CMD_SESSION_INVENTORY, CMD_FAST_SWITCH_INVENTORY] {
        assert_eq!(
            decode_all(&frame(cmd, &[0x31])),
            [message(A0Message::Error { cmd, code: 0x31 })]
        );
    }
}

#[test]
fn replies_to_other_commands() {
    assert_eq!(
        decode_all(&hex("A0 04 01 74 10 D7")),
        [message(A0Message::Reply {
            cmd: 0x74,
            data: vec![0x10],
        })]
    );
    // Reset answers nothing on success; a failure is a status reply.
    let reset_failed = frame(CMD_RESET, &[0x11]);
    assert_eq!(reset_failed, hex("A0 04 01 70 11 DA"));
    assert_eq!(
        decode_all(&reset_failed),
        [message(A0Message::Reply {
            cmd: A0Command::Reset.code(),
            data: vec![0x11],
        })]
    );
    assert_eq!(
        decode_all(&frame(CMD_GET_FIRMWARE, &[0x08, 0x01])),
        [message(A0Message::Reply {
            cmd: 0x72,
            data: vec![0x08, 0x01],
        })]
    );
}

#[test]
fn epc_is_trimmed_to_the_pc_length() {
    // PC claims 2 words, the record carries 4 before RSSI. (Exactly one
    // extra word would be read as phase after RSSI.)
    let mut data = vec![0x1C, 0x10, 0x00];
    data.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    data.push(0x3B);
    match decode_all(&frame(CMD_REAL_TIME_INVENTORY, &data)).as_slice() {
        [A0Event::Message(A0Message::Tag(tag))] => {
            assert_eq!((tag.epc.as_slice(), tag.pc), (&[1, 2, 3, 4][..], 0x1000));
            assert_eq!(tag.rssi_dbm, -70);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn phase_bytes_after_rssi_are_tolerated() {
    let mut data = vec![0x1C, 0x30, 0x00];
    data.extend_from_slice(&hex(SGTIN));
    data.extend_from_slice(&[0x3B, 0x12, 0x34]);
    for cmd in [CMD_SESSION_INVENTORY, CMD_FAST_SWITCH_INVENTORY] {
        assert_eq!(
            decode_all(&frame(cmd, &data)),
            [message(A0Message::Tag(sgtin_tag()))]
        );
    }
}

#[test]
fn record_shorter_than_its_pc_claims_is_malformed() {
    // PC claims 6 words, the record carries 5.
    let mut data = vec![0x1C, 0x30, 0x00];
    data.extend_from_slice(&hex(SGTIN)[..10]);
    data.push(0x3B);
    assert_eq!(
        decode_all(&frame(CMD_REAL_TIME_INVENTORY, &data)),
        [dropped(Malformed)]
    );
    // Too short for FreqAnt, PC and RSSI.
    for data in [&[][..], &[0x1C, 0x30], &[0x1C, 0x30, 0x00]] {
        assert_eq!(
            decode_all(&frame(CMD_REAL_TIME_INVENTORY, data)),
            [dropped(Malformed)]
        );
    }
}

#[test]
fn empty_epc_is_reported_as_the_reader_sent_it() {
    match decode_all(&tag_frame(0x1C, &[], 0x3B)).as_slice() {
        [A0Event::Message(A0Message::Tag(tag))] => assert!(tag.epc.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_byte_inside_data_is_just_data() {
    let epc = hex("A0 A0 A0 04 01 89 22 B0 A0 A0 A0 A0");
    let wire = tag_frame(0x1C, &epc, 0xA0);
    let tag = match decode_all(&wire).as_slice() {
        [A0Event::Message(A0Message::Tag(tag))] => tag.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!((tag.epc, tag.antenna), (epc, 5));
}

#[test]
fn frame_arriving_one_byte_at_a_time() {
    let mut codec = A0Codec::new(1);
    let mut buf = BytesMut::new();
    let wire = tag_frame(0x1C, &hex(SGTIN), 0x3B);
    for &b in &wire[..wire.len() - 1] {
        buf.extend_from_slice(&[b]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }
    buf.extend_from_slice(&wire[wire.len() - 1..]);
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(message(A0Message::Tag(sgtin_tag())))
    );
    assert!(buf.is_empty());
}

#[test]
fn a_round_split_across_reads() {
    let input = [
        tag_frame(0x1C, &hex(SGTIN), 0x3B),
        tag_frame(0x1D, &[0xE2, 0x00], 0x40),
        hex("A0 0A 01 89 00 00 32 00 00 00 01 99"),
    ]
    .concat();
    for sizes in [&[1][..], &[2, 3], &[7], &[20, 1]] {
        let (items, _) = decode_chunked(&mut A0Codec::new(1), &input, sizes);
        assert_eq!(items, decode_all(&input));
        assert_eq!(items.len(), 3);
        assert!(matches!(
            items[2],
            A0Event::Message(A0Message::RoundEnd { .. })
        ));
    }
}

#[test]
fn garbage_before_and_between_frames_is_one_drop_per_run() {
    let tag = tag_frame(0x1C, &hex(SGTIN), 0x3B);
    let input = [&b"noise"[..], &tag, &[0xFF, 0x00], &tag, b"end"].concat();
    let got = message(A0Message::Tag(sgtin_tag()));
    assert_eq!(
        decode_all(&input),
        [
            dropped(Garbage),
            got.clone(),
            dropped(Garbage),
            got,
            dropped(Garbage)
        ]
    );
    let (items, _) = decode_chunked(&mut A0Codec::new(1), &input, &[1]);
    assert_eq!(items, decode_all(&input));
}

#[test]
fn bad_check_byte_resyncs_on_the_next_header() {
    let mut bad = tag_frame(0x1C, &hex(SGTIN), 0x3B);
    *bad.last_mut().unwrap() ^= 0x01;
    let input = [bad, hex("A0 04 01 89 22 B0")].concat();
    assert_eq!(
        decode_all(&input),
        [
            dropped(Checksum),
            message(A0Message::Error {
                cmd: 0x89,
                code: 0x22
            })
        ]
    );
}

#[test]
fn false_header_claiming_a_long_frame_does_not_swallow_the_next_one() {
    // A stray 0xA0 whose "length" covers the real frame behind it.
    let input = [
        &[0xA0, 0x30, 0x55][..],
        &hex("A0 0A 01 89 00 00 32 00 00 00 01 99"),
    ]
    .concat();
    let round_end = message(A0Message::RoundEnd {
        antenna: Some(1),
        read_rate: 50,
        total_reads: 1,
    });
    // Not enough bytes ever arrive for the false frame: at end of stream
    // it is given up quietly and the real frame inside it found.
    assert_eq!(decode_all(&input), vec![round_end.clone()]);
    // Enough bytes arrive to judge it: it fails its check and the search
    // resumes right after its header.
    let padded = [input.clone(), vec![0x00; 0x30]].concat();
    assert_eq!(
        decode_all(&padded),
        [dropped(Checksum), round_end, dropped(Garbage)]
    );
}

#[test]
fn impossible_length_is_malformed() {
    let input = [
        &[0xA0, 0x02, 0x01, 0xA0, 0x00][..],
        &hex("A0 04 01 89 22 B0"),
    ]
    .concat();
    assert_eq!(
        decode_all(&input),
        [
            dropped(Malformed),
            dropped(Malformed),
            message(A0Message::Error {
                cmd: 0x89,
                code: 0x22
            })
        ]
    );
}

#[test]
fn flood_of_garbage_then_a_frame_keeps_the_buffer_bounded() {
    // A reader on the wrong baud rate produces a steady stream of junk.
    let mut junk = junk(200_000);
    junk.extend_from_slice(&hex("A0 04 01 89 22 B0"));
    let (items, most_buffered) = decode_chunked(&mut A0Codec::new(1), &junk, &[1, 7, 64, 4096]);
    assert_eq!(
        items.last(),
        Some(&message(A0Message::Error {
            cmd: 0x89,
            code: 0x22
        }))
    );
    assert!(most_buffered < A0_MAX_FRAME, "buffered {most_buffered}");
    // Junk without a header byte is a single drop, however it arrives.
    let run = vec![0x55; 10_000];
    let (items, most_buffered) = decode_chunked(&mut A0Codec::new(1), &run, &[1, 999]);
    assert_eq!((items, most_buffered), (vec![dropped(Garbage)], 0));
}

#[test]
fn partial_frame_at_end_of_stream_is_discarded_quietly() {
    let mut codec = A0Codec::new(1);
    let mut buf = BytesMut::from(&hex("A0 13 01 89 1C 30 00")[..]);
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
}

/// Bytes that exercise the framing: headers, small lengths and the
/// inventory command bytes.
fn framing_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => any::<u8>(),
        2 => Just(HEAD),
        2 => 0u8..16,
        1 => prop::sample::select(vec![0x89, 0x8A, 0x8B, 0x74]),
    ];
    prop::collection::vec(byte, 0..96)
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..40, 1..8)
}

/// Whether some position other than `planted` starts a complete frame
/// whose check byte matches: the one way garbage can pass for a frame.
fn false_frame_in(input: &[u8], planted: &[usize]) -> bool {
    (0..input.len()).any(|at| {
        let rest = &input[at..];
        !planted.contains(&at)
            && rest.len() >= 2
            && rest[0] == HEAD
            && rest[1] >= MIN_LEN
            && rest.len() >= usize::from(rest[1]) + 2
            && rest[..usize::from(rest[1]) + 2]
                .iter()
                .fold(0u8, |s, &b| s.wrapping_add(b))
                == 0
    })
}

proptest! {
    #[test]
    fn any_input_split_anywhere_decodes_the_same_in_bounded_memory(
        input in prop_oneof![prop::collection::vec(any::<u8>(), 0..1024), framing_bytes()],
        sizes in chunk_sizes(),
    ) {
        let whole = decode_all(&input);
        let (split, most_buffered) = decode_chunked(&mut A0Codec::new(1), &input, &sizes);
        prop_assert!(most_buffered < A0_MAX_FRAME);
        prop_assert_eq!(split, whole);
    }

    /// Unless the garbage happens to hold a frame of its own that passes
    /// the one-byte check (about one candidate in 256), every good frame
    /// after it is decoded, and nothing else is.
    #[test]
    fn good_frames_survive_garbage_that_holds_no_frame(
        parts in prop::collection::vec(
            (framing_bytes(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..32), any::<u8>()),
            1..5,
        ),
        trailing in framing_bytes(),
        sizes in chunk_sizes(),
    ) {
        let mut input = Vec::new();
        let mut planted = Vec::new();
        let mut wanted = Vec::new();
        for (garbage, freq_ant, epc, rssi) in &parts {
            let epc = &epc[..epc.len() / 2 * 2];
            input.extend_from_slice(garbage);
            planted.push(input.len());
            input.extend_from_slice(&tag_frame(*freq_ant, epc, *rssi));
            wanted.push(epc.to_vec());
        }
        input.extend_from_slice(&trailing);
        let (items, _) = decode_chunked(&mut A0Codec::new(1), &input, &sizes);
        let seen: Vec<Vec<u8>> = items
            .iter()
            .filter_map(|item| match item {
                A0Event::Message(A0Message::Tag(tag)) => Some(tag.epc.clone()),
                A0Event::Message(_) => Some(b"not a tag".to_vec()),
                A0Event::Dropped(_) => None,
            })
            .collect();
        if !false_frame_in(&input, &planted) {
            prop_assert_eq!(seen, wanted);
        }
    }
}
