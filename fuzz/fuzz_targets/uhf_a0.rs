#![no_main]

use custodyd::decode::{A0Codec, A0Event, A0Message, A0_MAX_FRAME};
use custodyd_fuzz::{decode_chunked, split_input};
use libfuzzer_sys::fuzz_target;

/// Most bytes the codec may hold between reads: one frame less its last byte.
const BOUND: usize = A0_MAX_FRAME - 1;

fuzz_target!(|data: &[u8]| {
    let (sizes, bytes) = split_input(data);
    let split = decode_chunked(&mut A0Codec::new(1), bytes, &sizes, BOUND);
    let whole = decode_chunked(&mut A0Codec::new(1), bytes, &[bytes.len().max(1)], BOUND);
    assert_eq!(split, whole, "result depends on how the input was split");
    for item in &split {
        if let A0Event::Message(A0Message::Tag(tag)) = item {
            assert_eq!(tag.epc.len(), usize::from((tag.pc >> 11) & 0x1F) * 2);
            assert!((1..=8).contains(&tag.antenna));
            assert!((-129..=-2).contains(&tag.rssi_dbm));
            assert!(tag
                .freq_khz
                .is_none_or(|f| (865_000..=928_000).contains(&f)));
        }
    }
});
