use super::*;
use proptest::prelude::*;

fn elements(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(ai, value)| (ai.to_string(), value.to_string()))
        .collect()
}

fn ok(text: &str) -> Vec<(String, String)> {
    match parse(text) {
        Ok(Some(elements)) => elements,
        other => panic!("{text:?}: {other:?}"),
    }
}

fn prefixes() -> CompanyPrefixes {
    CompanyPrefixes::new(["0614141", "4012345"]).unwrap()
}

fn uri(text: &str) -> Option<String> {
    to_epc_uri(&ok(text), &prefixes())
}

#[test]
fn gs1_syntax_engine_scan_strings() {
    let expected = elements(&[
        ("01", "12312312312333"),
        ("10", "ABC123"),
        ("99", "TESTING"),
    ]);
    assert_eq!(ok("]d2011231231231233310ABC123\x1D99TESTING"), expected);
    assert_eq!(ok("]Q3011231231231233310ABC123\x1D99TESTING"), expected);
    assert_eq!(
        ok("]e0011231231231233310ABC123\x1D99TESTING\x1D98COMPOSITE\x1D97XYZ"),
        elements(&[
            ("01", "12312312312333"),
            ("10", "ABC123"),
            ("99", "TESTING"),
            ("98", "COMPOSITE"),
            ("97", "XYZ"),
        ])
    );
}

#[test]
fn reference_scan_strings() {
    assert_eq!(
        ok("]C10109501101020917310300012310ABC123\x1D21XYZ987"),
        elements(&[
            ("01", "09501101020917"),
            ("3103", "000123"),
            ("10", "ABC123"),
            ("21", "XYZ987"),
        ])
    );
    assert_eq!(
        ok("]C100106141412345678908"),
        elements(&[("00", "106141412345678908")])
    );
    assert_eq!(
        ok("]d28004061414112345400"),
        elements(&[("8004", "061414112345400")])
    );
    assert_eq!(
        ok("]C1800300614141123452400"),
        elements(&[("8003", "00614141123452400")])
    );
    // 414 has a predefined length, so 254 follows without a GS.
    assert_eq!(
        ok("]C14140614141000005254A1"),
        elements(&[("414", "0614141000005"), ("254", "A1")])
    );
    assert_eq!(
        ok("]Q3010950110102091721SN123\x1D17261231"),
        elements(&[("01", "09501101020917"), ("21", "SN123"), ("17", "261231")])
    );
}

#[test]
fn check_digit_examples() {
    assert_eq!(check_digit("10614141234567890"), '8');
    assert_eq!(check_digit("0950110102091"), '7');
    assert_eq!(check_digit("061414112345"), '2');
    assert_eq!(check_digit("061414100000"), '5');
    // validateParity's cases, as keys of each length.
    assert_eq!(check_digit("2401234567890"), '5');
    assert_eq!(check_digit("211223378965"), '7');
    assert_eq!(check_digit("41600033610"), '8');
    assert_eq!(check_digit("0234568"), '0');
    ok("]C10124012345678905");
    ok("]C14142112233789657");
    ok("]C10100416000336108");
    ok("]C10100000002345680");
}

#[test]
fn bad_check_digits_are_errors() {
    let cases = [
        ("]C10124012345678909", "01", '9', '5'),
        ("]C14142112233789658", "414", '8', '7'),
        ("]C100106141412345678909", "00", '9', '8'),
        ("]C1800300614141123453400", "8003", '3', '2'),
        ("(01)09501101020918(21)XYZ987", "01", '8', '7'),
        ("]C10209501101020918", "02", '8', '7'),
        ("]C14100614141000006", "410", '6', '5'),
    ];
    for (text, ai, found, expected) in cases {
        let err = parse(text).unwrap_err();
        assert_eq!(
            err,
            Gs1Error::CheckDigit {
                ai: ai.into(),
                found,
                expected
            },
            "{text:?}"
        );
        assert!(err.to_string().contains(&format!("({ai})")), "{err}");
    }
}

#[test]
fn parentheses_form() {
    assert_eq!(
        ok("(8004)0614141ABC123"),
        elements(&[("8004", "0614141ABC123")])
    );
    assert_eq!(
        ok("(01)09501101020917(21)XYZ987"),
        elements(&[("01", "09501101020917"), ("21", "XYZ987")])
    );
    assert_eq!(
        ok("(01)09501101020917(3103)000123(10)ABC123(21)XYZ987"),
        ok("]C10109501101020917310300012310ABC123\x1D21XYZ987")
    );
    assert_eq!(
        parse("(01)0950110102091721XYZ987"),
        Err(Gs1Error::WrongLength {
            ai: "01".into(),
            len: 22,
            expected: 14
        })
    );
    assert_eq!(
        parse("(17)9(90)217"),
        Err(Gs1Error::WrongLength {
            ai: "17".into(),
            len: 1,
            expected: 6
        })
    );
    assert_eq!(parse("(10)(21)A"), Err(Gs1Error::Empty { ai: "10".into() }));
    assert_eq!(
        parse("(21)A(1)B"),
        Err(Gs1Error::NotAnAi {
            found: "(1)B".into()
        })
    );
    // A space is not in the GS1 character set.
    assert_eq!(
        parse("(21)A B"),
        Err(Gs1Error::BadCharacter {
            ai: "21".into(),
            ch: ' '
        })
    );
}

#[test]
fn plain_text_is_not_guessed() {
    for text in [
        "AB/1#+",
        "ASSET-0042",
        "0112345678901231",
        "8004061414112345400",
        "(spare) laptop",
        "(555)123-4567",
        "(212)555-1234",
        "(1)A",
        "(",
        "()",
        "",
        "]",
        "]C",
        "]1C1",
        "\x1D0112345678901231",
    ] {
        assert_eq!(parse(text), Ok(None), "{text:?}");
    }
}

#[test]
fn non_gs1_symbology_ids_are_plain_text() {
    for (text, plain) in [
        ("]C0ASSET-0042", "ASSET-0042"),
        ("]d1HELLO", "HELLO"),
        ("]Q1https://example.com/x", "https://example.com/x"),
        ("]E04006381333931", "4006381333931"),
        ("]E412345670", "12345670"),
        ("]A0(01)09501101020917", "(01)09501101020917"),
        ("]c1011231231231233", "011231231231233"),
    ] {
        assert_eq!(parse(text), Ok(None), "{text:?}");
        assert_eq!(without_symbology_id(text), plain);
    }
    assert_eq!(without_symbology_id("ASSET-0042"), "ASSET-0042");
    assert_eq!(without_symbology_id("]C1"), "");
}

#[test]
fn separators() {
    let expected = elements(&[("10", "ABC"), ("21", "XYZ")]);
    // A trailing GS, and a GS after a predefined-length element.
    assert_eq!(ok("]C110ABC\x1D21XYZ\x1D"), expected);
    assert_eq!(
        ok("]C10109501101020917\x1D21XYZ"),
        elements(&[("01", "09501101020917"), ("21", "XYZ")])
    );
    // Leading or doubled GS: no AI where one must start.
    assert_eq!(
        parse("]C1\x1D10ABC"),
        Err(Gs1Error::NotAnAi {
            found: "\x1D10ABC".into()
        })
    );
    assert!(matches!(
        parse("]C110ABC\x1D\x1D21XYZ"),
        Err(Gs1Error::NotAnAi { .. })
    ));
    assert!(matches!(
        parse("]C110ABC\x1D\x1D"),
        Err(Gs1Error::NotAnAi { .. })
    ));
    // Inside a predefined-length value: truncated.
    assert_eq!(
        parse("]C10109501\x1D101020917"),
        Err(Gs1Error::WrongLength {
            ai: "01".into(),
            len: 5,
            expected: 14
        })
    );
    // Inside an AI.
    assert!(matches!(
        parse("]C180\x1D04ABC"),
        Err(Gs1Error::NotAnAi { .. })
    ));
    // Without a GS a variable-length value runs to the end.
    assert_eq!(ok("]C110ABC21XYZ"), elements(&[("10", "ABC21XYZ")]));
}

#[test]
fn invalid_gs1_data() {
    assert_eq!(parse("]C1"), Err(Gs1Error::NoData));
    assert_eq!(
        parse("]C1550123"),
        Err(Gs1Error::UnknownAi {
            prefix: "55".into()
        })
    );
    assert_eq!(
        parse("]C101095011010"),
        Err(Gs1Error::WrongLength {
            ai: "01".into(),
            len: 9,
            expected: 14
        })
    );
    assert_eq!(
        parse("]C10109501101020917310"),
        Err(Gs1Error::NotAnAi {
            found: "310".into()
        })
    );
    assert_eq!(
        parse("]C10109501A01020917"),
        Err(Gs1Error::NotNumeric { ai: "01".into() })
    );
    assert_eq!(
        parse("]C121\x1D10A"),
        Err(Gs1Error::Empty { ai: "21".into() })
    );
    assert_eq!(
        parse("]C121ABCDEFGHIJKLMNOPQRSTU"),
        Err(Gs1Error::TooLong {
            ai: "21".into(),
            len: 21,
            max: 20
        })
    );
    assert_eq!(
        parse("]d28004A#B"),
        Err(Gs1Error::BadCharacter {
            ai: "8004".into(),
            ch: '#'
        })
    );
    assert_eq!(
        parse("]d2800401é"),
        Err(Gs1Error::BadCharacter {
            ai: "8004".into(),
            ch: 'é'
        })
    );
    assert_eq!(
        parse("]C101é"),
        Err(Gs1Error::WrongLength {
            ai: "01".into(),
            len: 1,
            expected: 14
        })
    );
    assert!(matches!(
        parse("]C10109501101020é1700"),
        Err(Gs1Error::BadCharacter { .. })
    ));
    for grai in ["]C18003061414112345", "]C1800310614141123452400"] {
        assert!(
            matches!(parse(grai), Err(Gs1Error::Invalid { ref ai, .. }) if ai == "8003"),
            "{grai}"
        );
    }
    let message = parse("]C1800310614141123452400").unwrap_err().to_string();
    assert!(message.starts_with("(8003) "), "{message}");
}

#[test]
fn epc_uris_match_the_tag_vectors() {
    assert_eq!(
        uri("]d28004061414112345400").as_deref(),
        Some("urn:epc:id:giai:0614141.12345400")
    );
    assert_eq!(
        uri("]C100106141412345678908").as_deref(),
        Some("urn:epc:id:sscc:0614141.1234567890")
    );
    assert_eq!(
        uri("]C1800300614141123452400").as_deref(),
        Some("urn:epc:id:grai:0614141.12345.400")
    );
    assert_eq!(
        uri("(01)80614141123458(21)6789").as_deref(),
        Some("urn:epc:id:sgtin:0614141.812345.6789")
    );
    let vectors = [
        ("3434257BF400000000BC6038", "]d28004061414112345400"),
        ("3154257BF4499602D2000000", "]C100106141412345678908"),
        ("33B4257BF40C0E4000000190", "]C1800300614141123452400"),
        ("3074257BF7194E4000001A85", "(01)80614141123458(21)6789"),
    ];
    for (tag, barcode) in vectors {
        let bytes: Vec<u8> = (0..24)
            .step_by(2)
            .map(|i| u8::from_str_radix(&tag[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            uri(barcode).as_deref(),
            Some(super::super::epc::decode_epc(&bytes).as_str())
        );
    }
}

#[test]
fn epc_uris_escape_and_need_a_known_prefix() {
    assert_eq!(
        uri("(8004)0614141A/B%1").as_deref(),
        Some("urn:epc:id:giai:0614141.A%2FB%251")
    );
    assert_eq!(
        uri("]C10104012345123456\x1D21S&N").as_deref(),
        Some("urn:epc:id:sgtin:4012345.012345.S%26N")
    );
    // Unknown company prefix, GTIN without serial, GRAI without serial,
    // a GIAI that is only a company prefix, no key at all.
    for text in [
        "(8004)0999999123",
        "(01)80614141123458",
        "]C1800300614141123452",
        "(8004)0614141",
        "(10)ABC",
    ] {
        assert_eq!(uri(text), None, "{text}");
    }
    // GIAI takes precedence over GTIN + serial.
    assert_eq!(
        uri("(01)80614141123458(21)6789(8004)061414112345400").as_deref(),
        Some("urn:epc:id:giai:0614141.12345400")
    );
}

#[test]
fn longest_company_prefix_wins() {
    let both = CompanyPrefixes::new(["061414", "0614141"]).unwrap();
    assert_eq!(
        to_epc_uri(&ok("]d28004061414112345400"), &both).as_deref(),
        Some("urn:epc:id:giai:0614141.12345400")
    );
    let short = CompanyPrefixes::new(["061414"]).unwrap();
    assert_eq!(
        to_epc_uri(&ok("]d28004061414112345400"), &short).as_deref(),
        Some("urn:epc:id:giai:061414.112345400")
    );
    // A 12-digit prefix leaves the SGTIN only its indicator and the
    // GRAI an empty asset type, as partition 0 encodes them.
    let long = CompanyPrefixes::new(["061414112345"]).unwrap();
    assert_eq!(
        to_epc_uri(&ok("(01)80614141123458(21)1"), &long).as_deref(),
        Some("urn:epc:id:sgtin:061414112345.8.1")
    );
    assert_eq!(
        to_epc_uri(&ok("(8003)00614141123452X"), &long).as_deref(),
        Some("urn:epc:id:grai:061414112345..X")
    );
}

#[test]
fn company_prefixes_are_validated() {
    for bad in ["12345", "1234567890123", "06141A1", ""] {
        assert_eq!(
            CompanyPrefixes::new([bad]),
            Err(CompanyPrefixError(bad.to_string()))
        );
    }
    assert_eq!(
        CompanyPrefixes::new(Vec::<String>::new()),
        Ok(CompanyPrefixes::default())
    );
}

#[test]
fn to_epc_uri_tolerates_hand_built_elements() {
    let cps = prefixes();
    for pairs in [
        vec![("00", "1061414")],
        vec![("00", "10614141234567890é")],
        vec![("01", "8061414112345"), ("21", "1")],
        vec![("8003", "006141411234")],
        vec![("8003", "0061414112345é")],
        vec![("8004", "0614141 X")],
        vec![("8004", "")],
    ] {
        assert_eq!(to_epc_uri(&elements(&pairs), &cps), None, "{pairs:?}");
    }
}

#[test]
fn element_string_is_the_fallback_id() {
    let scanned = ok("]C10109501101020917310300012310ABC123\x1D21XYZ987");
    assert_eq!(
        element_string(&scanned),
        "(01)09501101020917(3103)000123(10)ABC123(21)XYZ987"
    );
    assert_eq!(ok(&element_string(&scanned)), scanned);
    assert_eq!(element_string(&[]), "");
}

proptest! {
    #[test]
    fn any_text_parses_without_panic(text in any::<String>()) {
        let _ = parse(&text);
        let _ = without_symbology_id(&text);
    }

    /// Text built from the pieces GS1 data is made of, to reach deep
    /// into the parser rather than stop at the first character.
    #[test]
    fn gs1_shaped_text(
        id in prop::sample::select(vec!["]C1", "]d2", "]Q3", "]e0", "]C0", ""]),
        body in proptest::collection::vec(
            prop::sample::select(vec![
                "0", "1", "2", "3", "4", "7", "8", "9", "00", "01", "21", "8003", "8004",
                "414", "\x1D", "(", ")", "A", "%", "é", "(01)", "(21)", "(8004)",
            ]),
            0..40,
        ),
    ) {
        let text = format!("{id}{}", body.concat());
        if let Ok(Some(elements)) = parse(&text) {
            prop_assert!(!elements.is_empty());
            // The fallback id parses back to the same elements when no
            // value holds a "(" (the one thing the bracketed form
            // cannot carry).
            if elements.iter().all(|(_, v)| !v.contains('(')) {
                prop_assert_eq!(parse(&element_string(&elements)), Ok(Some(elements.clone())));
            }
            let _ = to_epc_uri(&elements, &prefixes());
        }
    }
}
