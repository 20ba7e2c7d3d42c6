use super::*;
use crate::identity::gs1::{parse, to_epc_uri, CompanyPrefixes};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn pure(s: &str) -> EpcId {
    EpcId::Pure(s.to_string())
}

fn is_raw(epc: &[u8]) -> bool {
    matches!(decode_epc(epc), EpcId::Raw(_))
}

/// Test-side encoder: the fields MSB first, zero-padded to `bytes`.
fn encode(fields: &[(u64, usize)], bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes];
    let mut pos = 0;
    for &(value, width) in fields {
        for i in (0..width).rev() {
            if (value >> i) & 1 == 1 {
                out[pos / 8] |= 0x80 >> (pos % 8);
            }
            pos += 1;
        }
    }
    assert!(pos <= bytes * 8, "fields overflow the EPC");
    out
}

/// Seven-bit characters of `s`, as encoder fields.
fn chars7(s: &str) -> Vec<(u64, usize)> {
    s.bytes().map(|b| (u64::from(b), 7)).collect()
}

#[test]
fn reference_vectors() {
    let cases = [
        (
            "3074257BF7194E4000001A85",
            "urn:epc:id:sgtin:0614141.812345.6789",
        ),
        (
            "3154257BF4499602D2000000",
            "urn:epc:id:sscc:0614141.1234567890",
        ),
        (
            "33B4257BF40C0E4000000190",
            "urn:epc:id:grai:0614141.12345.400",
        ),
        (
            "3434257BF400000000BC6038",
            "urn:epc:id:giai:0614141.12345400",
        ),
    ];
    for (epc, uri) in cases {
        assert_eq!(decode_epc(&hex(epc)), pure(uri), "{epc}");
    }
}

#[test]
fn raw_form_keeps_every_bit() {
    let tid_like = hex("E2801170200013F3A4B90A2C");
    assert_eq!(
        decode_epc(&tid_like),
        EpcId::Raw("urn:epc:raw:96.xE2801170200013F3A4B90A2C".into())
    );
    assert_eq!(decode_epc(&[]).as_str(), "urn:epc:raw:0.x");
    assert_eq!(
        decode_epc(&[0; 12]).as_str(),
        "urn:epc:raw:96.x000000000000000000000000"
    );
    assert_eq!(decode_epc(&[0x30]).into_string(), "urn:epc:raw:8.x30");
}

#[test]
fn filter_does_not_change_identity() {
    for filter in 0..8 {
        let epc = encode(
            &[(0x34, 8), (filter, 3), (5, 3), (614141, 24), (12345400, 58)],
            12,
        );
        assert_eq!(decode_epc(&epc), pure("urn:epc:id:giai:0614141.12345400"));
    }
}

#[test]
fn every_partition_of_each_96_bit_scheme() {
    // (partition, company prefix, rest): company prefixes of 12..6 digits
    // with a leading zero to show the padding.
    let rows: [(u64, u64, &str); 7] = [
        (0, 12345678901, "012345678901"),
        (1, 1234567890, "01234567890"),
        (2, 123456789, "0123456789"),
        (3, 12345678, "012345678"),
        (4, 1234567, "01234567"),
        (5, 123456, "0123456"),
        (6, 12345, "012345"),
    ];
    for (p, cp, cp_str) in rows {
        let (cp_bits, cp_digits) = PARTITIONS[p as usize];
        // Item reference 7 (padded), serial 42.
        let sgtin = encode(
            &[
                (0x30, 8),
                (1, 3),
                (p, 3),
                (cp, cp_bits),
                (7, 44 - cp_bits),
                (42, 38),
            ],
            12,
        );
        let item = format!("{:0w$}", 7, w = 13 - cp_digits);
        assert_eq!(
            decode_epc(&sgtin),
            pure(&format!("urn:epc:id:sgtin:{cp_str}.{item}.42"))
        );

        let sscc = encode(
            &[(0x31, 8), (0, 3), (p, 3), (cp, cp_bits), (9, 58 - cp_bits)],
            12,
        );
        let serial_ref = format!("{:0w$}", 9, w = 17 - cp_digits);
        assert_eq!(
            decode_epc(&sscc),
            pure(&format!("urn:epc:id:sscc:{cp_str}.{serial_ref}"))
        );

        // GRAI asset type 0: empty for a 12-digit company prefix.
        let grai = encode(
            &[
                (0x33, 8),
                (0, 3),
                (p, 3),
                (cp, cp_bits),
                (0, 44 - cp_bits),
                (1, 38),
            ],
            12,
        );
        let asset_type = "0".repeat(12 - cp_digits);
        assert_eq!(
            decode_epc(&grai),
            pure(&format!("urn:epc:id:grai:{cp_str}.{asset_type}.1"))
        );

        // GIAI: the largest reference fits the partition's digit budget.
        let max_iar = (1u64 << (82 - cp_bits)) - 1;
        assert!(max_iar.to_string().len() <= 25 - cp_digits);
        let giai = encode(
            &[
                (0x34, 8),
                (0, 3),
                (p, 3),
                (cp, cp_bits),
                (max_iar, 82 - cp_bits),
            ],
            12,
        );
        assert_eq!(
            decode_epc(&giai),
            pure(&format!("urn:epc:id:giai:{cp_str}.{max_iar}"))
        );
    }
}

#[test]
fn partition_seven_is_raw() {
    for header in [0x30, 0x31, 0x33, 0x34] {
        let epc = encode(&[(header, 8), (0, 3), (7, 3), (1, 20)], 12);
        assert!(is_raw(&epc), "{header:02X}");
    }
    let giai202 = encode(&[(0x38, 8), (0, 3), (7, 3), (1, 20)], 26);
    assert!(is_raw(&giai202));
}

#[test]
fn fields_too_large_for_the_partition_are_raw() {
    // Company prefix 10^12 in 40 bits (P=0) and 10^6 in 20 bits (P=6).
    let cp_p0 = encode(&[(0x34, 8), (0, 3), (0, 3), (1_000_000_000_000, 40)], 12);
    assert!(is_raw(&cp_p0));
    let cp_p6 = encode(&[(0x34, 8), (0, 3), (6, 3), (1_000_000, 20)], 12);
    assert!(is_raw(&cp_p6));
    // The same with the largest valid value decodes.
    let ok_p6 = encode(&[(0x34, 8), (0, 3), (6, 3), (999_999, 20), (1, 62)], 12);
    assert_eq!(decode_epc(&ok_p6), pure("urn:epc:id:giai:999999.1"));
    // SGTIN P=0: a one-digit item reference of 10.
    let item = encode(&[(0x30, 8), (0, 3), (0, 3), (1, 40), (10, 4), (1, 38)], 12);
    assert!(is_raw(&item));
    // SSCC P=5: serial reference of 10^10 in 34 bits.
    let sscc = encode(
        &[
            (0x31, 8),
            (0, 3),
            (5, 3),
            (614141, 24),
            (10_000_000_000, 34),
        ],
        12,
    );
    assert!(is_raw(&sscc));
    // GRAI P=0: asset type has no digits, so anything but 0 is invalid.
    let grai = encode(&[(0x33, 8), (0, 3), (0, 3), (1, 40), (1, 4), (1, 38)], 12);
    assert!(is_raw(&grai));
}

#[test]
fn sscc_reserved_bits_must_be_zero() {
    let mut epc = hex("3154257BF4499602D2000000");
    epc[11] = 1;
    assert!(is_raw(&epc));
}

#[test]
fn wrong_lengths_are_raw() {
    let sgtin = hex("3074257BF7194E4000001A85");
    for len in 0..sgtin.len() {
        assert!(is_raw(&sgtin[..len]), "truncated to {len}");
    }
    let mut long = sgtin.clone();
    long.extend([0, 0]);
    assert!(is_raw(&long), "a word of zeros too many");
    let giai = encode(
        &[
            (0x38, 8),
            (0, 3),
            (5, 3),
            (614141, 24),
            (u64::from(b'A'), 7),
        ],
        26,
    );
    assert!(!is_raw(&giai));
    assert!(is_raw(&giai[..24]));
    assert!(is_raw(
        &sgtin[..12]
            .iter()
            .chain(&[0u8; 14])
            .copied()
            .collect::<Vec<_>>()
    ));
}

#[test]
fn unknown_headers_are_raw() {
    for header in [0x00, 0x2F, 0x32, 0x35, 0x39, 0x3A, 0xE2, 0xFF] {
        let mut epc = hex("3434257BF400000000BC6038");
        epc[0] = header;
        assert!(is_raw(&epc), "{header:02X}");
    }
}

#[test]
fn sgtin_198_alphanumeric_serial_is_uri_escaped() {
    let mut fields = vec![(0x36, 8), (3, 3), (5, 3), (614141, 24), (812345, 20)];
    fields.extend(chars7("A/B%c?1\"&<>!"));
    let epc = encode(&fields, 26);
    assert_eq!(
        decode_epc(&epc),
        pure("urn:epc:id:sgtin:0614141.812345.A%2FB%25c%3F1%22%26%3C%3E!")
    );
}

#[test]
fn sgtin_198_serial_of_twenty_characters() {
    let serial = "ABCDEFGHIJKLMNOPQRST";
    let mut fields = vec![(0x36, 8), (0, 3), (5, 3), (614141, 24), (812345, 20)];
    fields.extend(chars7(serial));
    let epc = encode(&fields, 26);
    assert_eq!(
        decode_epc(&epc),
        pure(&format!("urn:epc:id:sgtin:0614141.812345.{serial}"))
    );
}

#[test]
fn grai_170_and_giai_202() {
    let mut grai = vec![(0x37, 8), (0, 3), (5, 3), (614141, 24), (12345, 20)];
    grai.extend(chars7("A-400"));
    assert_eq!(
        decode_epc(&encode(&grai, 22)),
        pure("urn:epc:id:grai:0614141.12345.A-400")
    );

    // GIAI-202 keeps leading zeros that GIAI-96 cannot encode.
    let mut giai = vec![(0x38, 8), (1, 3), (5, 3), (614141, 24)];
    giai.extend(chars7("0012345400"));
    assert_eq!(
        decode_epc(&encode(&giai, 26)),
        pure("urn:epc:id:giai:0614141.0012345400")
    );

    // P=0: 18 characters at most (12 + 18 = 30).
    let mut max = vec![(0x38, 8), (0, 3), (0, 3), (1, 40)];
    max.extend(chars7(&"Z".repeat(18)));
    assert!(!is_raw(&encode(&max, 26)));
    max.extend(chars7("Z"));
    assert!(is_raw(&encode(&max, 26)));
}

#[test]
fn invalid_strings_are_raw() {
    let head = [(0x36, 8), (0, 3), (5, 3), (614141, 24), (812345, 20)];
    let with = |serial: &[(u64, usize)]| {
        let mut fields = head.to_vec();
        fields.extend_from_slice(serial);
        encode(&fields, 26)
    };
    // Empty serial.
    assert!(is_raw(&with(&[])));
    // A character after the terminating zero.
    assert!(is_raw(&with(&[(65, 7), (0, 7), (66, 7)])));
    // Characters outside the GS1 set: space, '#', DEL, a control.
    for c in [b' ', b'#', 0x7F, 0x1D] {
        assert!(is_raw(&with(&[(u64::from(c), 7)])), "{c:#x}");
    }
    // Non-zero padding after the 198 bits.
    let mut epc = with(&chars7("1"));
    epc[25] = 1;
    assert!(is_raw(&epc));
}

#[test]
fn uri_escape_covers_the_gs1_set() {
    let cset82 =
        "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
    assert_eq!(cset82.len(), 82);
    assert_eq!(
        uri_escape(cset82).unwrap(),
        "!%22%25%26'()*+,-.%2F0123456789:;%3C=%3E%3FABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
    );
    for bad in [
        " ", "#", "$", "@", "[", "\\", "]", "^", "`", "{", "|", "}", "~", "é", "\x1D",
    ] {
        assert_eq!(uri_escape(bad), None, "{bad:?}");
    }
}

/// GS1 mod-10 check digit, computed independently of `gs1`.
fn gs1_check(body: &str) -> u32 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10
}

proptest! {
    /// The tag and the barcode of one asset resolve to one id, for every
    /// scheme and partition: the point of both modules.
    #[test]
    fn tag_and_barcode_agree(
        p in 0usize..7,
        cp_seed: u64,
        ref_seed: u64,
        serial in 0u64..1 << 38,
        filter in 0u64..8,
        text in "[!\"%-?A-Z_a-z]{1,16}",
    ) {
        let (cp_bits, cp_digits) = PARTITIONS[p];
        let cp = cp_seed % 10u64.pow(cp_digits as u32);
        let cp_str = format!("{cp:0cp_digits$}");
        let prefixes = CompanyPrefixes::new([&cp_str]).unwrap();
        let barcode = |scan: String| to_epc_uri(&parse(&scan).unwrap().unwrap(), &prefixes);
        let tag = |fields: &[(u64, usize)], bytes| Some(decode_epc(&encode(fields, bytes)).into_string());
        let head = |header| [(header, 8), (filter, 3), (p as u64, 3), (cp, cp_bits)];
        let with = |header, rest: &[(u64, usize)]| [&head(header)[..], rest].concat();

        // SGTIN: GTIN-14 = indicator + CP + item reference + check digit.
        let item_digits = 13 - cp_digits;
        let item = ref_seed % 10u64.pow(item_digits as u32);
        let item_str = format!("{item:0item_digits$}");
        let body = format!("{}{cp_str}{}", &item_str[..1], &item_str[1..]);
        let gtin = format!("{body}{}", gs1_check(&body));
        prop_assert_eq!(
            tag(&with(0x30, &[(item, 44 - cp_bits), (serial, 38)]), 12),
            barcode(format!("]C101{gtin}21{serial}"))
        );
        let mut sgtin198 = with(0x36, &[(item, 44 - cp_bits)]);
        sgtin198.extend(chars7(&text));
        prop_assert_eq!(tag(&sgtin198, 26), barcode(format!("]C101{gtin}21{text}")));

        // SSCC = extension + CP + serial reference + check digit.
        let sr_digits = 17 - cp_digits;
        let sr = ref_seed % 10u64.pow(sr_digits as u32);
        let sr_str = format!("{sr:0sr_digits$}");
        let body = format!("{}{cp_str}{}", &sr_str[..1], &sr_str[1..]);
        prop_assert_eq!(
            tag(&with(0x31, &[(sr, 58 - cp_bits)]), 12),
            barcode(format!("]C100{body}{}", gs1_check(&body)))
        );

        // GRAI element = 0 + CP + asset type + check digit + serial.
        let at_digits = 12 - cp_digits;
        let at = ref_seed % 10u64.pow(at_digits as u32);
        let at_str = if at_digits == 0 { String::new() } else { format!("{at:0at_digits$}") };
        let body = format!("{cp_str}{at_str}");
        let grai = format!("0{body}{}", gs1_check(&body));
        prop_assert_eq!(
            tag(&with(0x33, &[(at, 44 - cp_bits), (serial, 38)]), 12),
            barcode(format!("]C18003{grai}{serial}"))
        );
        let mut grai170 = with(0x37, &[(at, 44 - cp_bits)]);
        grai170.extend(chars7(&text));
        prop_assert_eq!(tag(&grai170, 22), barcode(format!("]C18003{grai}{text}")));

        // GIAI = CP + IAR.
        let iar = ref_seed % (1 << (82 - cp_bits));
        prop_assert_eq!(
            tag(&with(0x34, &[(iar, 82 - cp_bits)]), 12),
            barcode(format!("]d28004{cp_str}{iar}"))
        );
        let mut giai202 = with(0x38, &[]);
        giai202.extend(chars7(&text));
        prop_assert_eq!(tag(&giai202, 26), barcode(format!("]d28004{cp_str}{text}")));
    }
}

proptest! {
    #[test]
    fn any_bytes_decode_without_panic(epc in proptest::collection::vec(any::<u8>(), 0..40)) {
        let id = decode_epc(&epc);
        let s = id.as_str();
        prop_assert!(s.starts_with("urn:epc:id:") || s.starts_with("urn:epc:raw:"));
        prop_assert!(s.len() <= 64 + epc.len() * 2);
    }

    #[test]
    fn known_headers_with_any_body(
        header in prop::sample::select(vec![0x30u8, 0x31, 0x33, 0x34, 0x36, 0x37, 0x38]),
        body in proptest::collection::vec(any::<u8>(), 25),
        len in prop::sample::select(vec![12usize, 22, 26]),
    ) {
        let mut epc = vec![header];
        epc.extend_from_slice(&body[..len - 1]);
        let raw_prefix = format!("urn:epc:raw:{}.x", len * 8);
        match decode_epc(&epc) {
            EpcId::Pure(uri) => prop_assert!(uri.starts_with("urn:epc:id:")),
            EpcId::Raw(uri) => prop_assert!(uri.starts_with(&raw_prefix)),
        }
    }
}
