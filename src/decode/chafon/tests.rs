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
