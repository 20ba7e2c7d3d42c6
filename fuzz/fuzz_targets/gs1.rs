//! Any scanned text parses without panicking; valid GS1 data survives the
//! round trip through its fallback element string, and maps to an EPC URI
//! (or not) without panicking.

#![no_main]

use custodyd::identity::gs1::{
    element_string, parse, to_epc_uri, without_symbology_id, CompanyPrefixes,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = without_symbology_id(&text);
    let Ok(Some(elements)) = parse(&text) else {
        return;
    };
    assert!(!elements.is_empty());
    // The bracketed form cannot carry a "(" inside a value.
    if elements.iter().all(|(_, value)| !value.contains('(')) {
        assert_eq!(
            parse(&element_string(&elements)),
            Ok(Some(elements.clone()))
        );
    }
    // Prefixes of every length the partition tables allow, so every
    // company-prefix boundary is reachable.
    let prefixes = CompanyPrefixes::new([
        "061414",
        "0614141",
        "06141411",
        "061414112",
        "0614141123",
        "06141411234",
        "061414112345",
        "4012345",
    ])
    .unwrap();
    if let Some(uri) = to_epc_uri(&elements, &prefixes) {
        assert!(uri.starts_with("urn:epc:id:"), "{uri}");
    }
});
