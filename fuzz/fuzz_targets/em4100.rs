#![no_main]

use custodyd::decode::{Decoded, Em4100Codec};
use custodyd_fuzz::{decode_chunked, split_input};
use libfuzzer_sys::fuzz_target;

/// Most bytes the codec may hold between reads: one frame less its last byte.
const BOUND: usize = 13;

fuzz_target!(|data: &[u8]| {
    let (sizes, bytes) = split_input(data);
    let split = decode_chunked(&mut Em4100Codec::new(), bytes, &sizes, BOUND);
    let whole = decode_chunked(&mut Em4100Codec::new(), bytes, &[bytes.len().max(1)], BOUND);
    assert_eq!(split, whole, "result depends on how the input was split");
    let upper_hex = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
    for item in &split {
        if let Decoded::Read(read) = item {
            assert!(read.data.len() == 10 && read.data.bytes().all(upper_hex));
        }
    }
});
