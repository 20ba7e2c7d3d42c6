#![no_main]

use custodyd::audit::verify::verify;
use libfuzzer_sys::fuzz_target;

// A capture file as `custodyd verify` reads it: anything an auditor may be
// handed. Signatures will not verify under this key; what is fuzzed is the
// parsing, the chain and checkpoint bookkeeping and the report.
fuzz_target!(|data: &[u8]| {
    let captures = [("fuzz".to_string(), data.to_vec())];
    if let Ok(report) = verify(&captures, &[7; 32], None) {
        let _ = report.to_string();
    }
});
