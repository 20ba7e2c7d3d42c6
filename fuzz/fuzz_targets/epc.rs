//! Any EPC bank contents decode without panicking, to a pure-identity URI
//! or to exactly the raw URI of the input.

#![no_main]

use std::fmt::Write;

use custodyd::identity::epc::{decode_epc, EpcId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|epc: &[u8]| {
    match decode_epc(epc) {
        EpcId::Pure(uri) => assert!(uri.starts_with("urn:epc:id:"), "{uri}"),
        EpcId::Raw(uri) => {
            let mut expected = format!("urn:epc:raw:{}.x", epc.len() * 8);
            for b in epc {
                write!(expected, "{b:02X}").unwrap();
            }
            assert_eq!(uri, expected);
        }
    }
});
