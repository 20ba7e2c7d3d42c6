//! Any command request is accepted or refused with a reason, without
//! panicking; its body is also tried as an `unlock`, whose accepted
//! requests keep to their bounds.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| custodyd::fuzzing::command(data));
