//! Any control message under `[trust]` is verified or refused with a
//! reason, without panicking, and nothing unsigned or forged passes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| custodyd::fuzzing::trust_envelope(data));
