use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::decode::Source;

proptest::proptest! {
    /// Whatever a reader delivers (any text as the asset, any RSSI,
    /// any antennas, any time): the event renders, as JSON that reads
    /// back to what went in.
    #[test]
    fn any_read_renders_and_reads_back(
        id in "\\PC{0,80}",
        raw in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
        rssi in proptest::option::of(proptest::num::f32::ANY),
        antennas in proptest::collection::vec(proptest::num::u8::ANY, 0..8),
        ms in proptest::num::u64::ANY,
    ) {
        let t = UNIX_EPOCH.checked_add(Duration::from_millis(ms)).unwrap_or(UNIX_EPOCH);
        let raw = String::from_utf8_lossy(&raw);
        let asset = Asset { id: id.as_str().into(), raw: raw.as_ref().into(), source: Source::Rfid };
        let draft = Draft::new(
            "door".into(),
            t,
            Body::Custody(Custody {
                transition: Transition::Arrived,
                asset,
                reader: "r".into(),
                reads: 1,
                first_seen: t,
                last_seen: t,
                antennas: antennas.clone(),
                rssi_max: rssi,
                context: Context::default(),
                crossing: None,
            }),
        );
        let naming = Naming { root: "r".into(), site: "s".into(), gateway: "g".into() };
        let v: serde_json::Value = serde_json::from_slice(&draft.render(&naming, "S", 1, None)).unwrap();
        proptest::prop_assert_eq!(v["asset"]["id"].as_str(), Some(id.as_str()));
        proptest::prop_assert_eq!(v["asset"]["raw"].as_str(), Some(raw.as_ref()));
        proptest::prop_assert_eq!(v["antennas"].as_array().map(Vec::len), Some(antennas.len()));
        let observed = rfc3339(t);
        proptest::prop_assert_eq!(v["observed_at"].as_str(), Some(observed.as_str()));
    }
}

#[test]
fn custody_json_has_every_contract_field() {
    let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let asset = Asset {
        id: "AB/1#+".into(),
        raw: "AB/1#+".into(),
        source: Source::Barcode,
    };
    let draft = Draft::new(
        "dock-door-1".into(),
        t,
        Body::Custody(Custody {
            transition: Transition::Scanned,
            asset,
            reader: "door1-scan".into(),
            reads: 1,
            first_seen: t,
            last_seen: t,
            antennas: vec![],
            rssi_max: None,
            context: Context::default(),
            crossing: None,
        }),
    );
    let naming = Naming {
        root: "itad".into(),
        site: "reno-1".into(),
        gateway: "gw".into(),
    };
    let v: serde_json::Value =
        serde_json::from_slice(&draft.render(&naming, "S", 7, None)).unwrap();
    assert_eq!(v["schema"], CUSTODY_SCHEMA);
    assert_eq!((&v["stream"], &v["seq"]), (&"S".into(), &7.into()));
    assert_eq!(v["event_id"].as_str().unwrap().len(), 26);
    assert_eq!(v["observed_at"], "2023-11-14T22:13:20.123Z");
    assert_eq!(v["asset"]["id"], "AB/1#+");
    assert_eq!(v["asset"]["source"], "barcode");
    assert_eq!(v["transition"], "scanned");
    assert!(v["from_zone"].is_null() && v["rssi_max"].is_null());
    for key in ["operator", "action", "container"] {
        assert!(
            v[key].is_null(),
            "{key} must be present and null outside a station"
        );
    }
    let obj = v.as_object().unwrap();
    assert!(obj.contains_key("operator") && obj.contains_key("container"));
    assert!(obj.contains_key("prev") && v["prev"].is_null(), "{v}");
    let linked = draft.render(&naming, "S", 8, Some("ab12"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&linked).unwrap()["prev"],
        "ab12"
    );
    for key in [
        "site",
        "gateway",
        "location",
        "clock_synced",
        "reader",
        "reads",
        "first_seen",
        "last_seen",
        "antennas",
    ] {
        assert!(!v[key].is_null(), "{key} missing");
    }
    assert_eq!(draft.topic(&naming), "itad/reno-1/gw/custody/dock-door-1");
}
