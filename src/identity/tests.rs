use super::*;

fn read(data: &str, source: Source) -> RawRead {
    RawRead {
        data: data.into(),
        source,
        antenna: None,
        rssi_dbm: None,
    }
}

fn identity() -> Identity {
    Identity::new(gs1::CompanyPrefixes::new(["0614141"]).unwrap())
}

#[test]
fn the_tag_and_the_label_of_one_asset_are_one_asset() {
    let tag = identity()
        .resolve(&read("3434257BF400000000BC6038", Source::Rfid))
        .unwrap();
    let label = identity()
        .resolve(&read("]d28004061414112345400", Source::Barcode))
        .unwrap();
    assert_eq!(&*tag.id, "urn:epc:id:giai:0614141.12345400");
    assert_eq!(tag.id, label.id);
    assert_eq!(&*label.raw, "]d28004061414112345400");
    let sgtin = identity()
        .resolve(&read("3074257BF7194E4000001A85", Source::Rfid))
        .unwrap();
    let human = identity()
        .resolve(&read("(01)80614141123458(21)6789", Source::Barcode))
        .unwrap();
    assert_eq!(sgtin.id, human.id);
}

#[test]
fn unknown_prefixes_non_gs1_epcs_cards_and_text_keep_raw_ids() {
    let plain = Identity::default();
    assert_eq!(
        &*plain
            .resolve(&read("]d28004061414112345400", Source::Barcode))
            .unwrap()
            .id,
        "(8004)061414112345400"
    );
    assert_eq!(
        &*plain.resolve(&read("62E3086CED", Source::Rfid)).unwrap().id,
        "62E3086CED"
    );
    assert_eq!(
        &*plain.resolve(&read("AB/1#+", Source::Barcode)).unwrap().id,
        "AB/1#+"
    );
    let tid = plain.resolve(&read("E2801160600002", Source::Rfid));
    assert!(tid.is_ok());
    assert_eq!(
        &*plain
            .resolve(&read("E28011606000", Source::Rfid))
            .unwrap()
            .id,
        "urn:epc:raw:48.xE28011606000"
    );
}

/// A scanner with AIM symbology identifiers enabled prefixes every scan
/// with how it was encoded (`]C0` Code 128, `]E0` EAN-13, `]d1` Data
/// Matrix...): the asset is the same with the prefix or without it, and
/// the prefix stays in `raw`. `]C1`/`]d2`/`]Q3`/`]e0` say GS1 data.
#[test]
fn an_aim_symbology_identifier_does_not_change_the_asset() {
    let plain = Identity::default();
    for (scan, id) in [
        ("]C0ASSET-0042", "ASSET-0042"),
        ("]E04006381333931", "4006381333931"),
        ("]d1HELLO", "HELLO"),
        ("]Q1https://example.com/x", "https://example.com/x"),
    ] {
        let with = plain.resolve(&read(scan, Source::Barcode)).unwrap();
        let without = plain.resolve(&read(id, Source::Barcode)).unwrap();
        assert_eq!(&*with.id, id, "{scan}");
        assert_eq!(with.id, without.id, "{scan}");
        assert_eq!(&*with.raw, scan);
    }
    for gs1 in [
        "]C18004061414112345400",
        "]Q38004061414112345400",
        "]e08004061414112345400",
    ] {
        let asset = identity().resolve(&read(gs1, Source::Barcode)).unwrap();
        assert_eq!(&*asset.id, "urn:epc:id:giai:0614141.12345400", "{gs1}");
    }
    // A tag's hex is never taken for a symbology identifier.
    let tag = plain.resolve(&read("]C0ASSET", Source::Rfid)).unwrap();
    assert_eq!(&*tag.id, "]C0ASSET");
}

#[test]
fn gs1_data_with_a_bad_check_digit_is_rejected() {
    let err = identity()
        .resolve(&read("]C100106141412345678909", Source::Barcode))
        .unwrap_err();
    assert!(err.reason.contains("GS1"), "{err}");
}
