//! Any pickup manifest payload is a manifest or refused without panicking;
//! an accepted one has a pickup id and lists each asset once.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| custodyd::fuzzing::manifest(data));
