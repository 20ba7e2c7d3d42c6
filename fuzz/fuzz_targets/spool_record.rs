//! Any bytes read back from the spool are a record (with the saves that
//! follow it) or refused without panicking; an accepted one encodes back
//! to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| custodyd::fuzzing::spool_record(data));
