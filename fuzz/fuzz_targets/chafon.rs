#![no_main]

use custodyd::decode::{ChafonCodec, ChafonEvent, ChafonMessage, ChafonVariant, CHAFON_MAX_FRAME};
use custodyd_fuzz::{decode_chunked, split_input};
use libfuzzer_sys::fuzz_target;

/// Most bytes the codec may hold between reads: one frame less its last byte.
const BOUND: usize = CHAFON_MAX_FRAME - 1;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the answer layout; the rest is split as usual.
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let variant = if which & 1 == 0 {
        ChafonVariant::Reader18
    } else {
        ChafonVariant::Reader288
    };
    let (sizes, bytes) = split_input(data);
    let split = decode_chunked(&mut ChafonCodec::new(variant, 0), bytes, &sizes, BOUND);
    let whole = decode_chunked(
        &mut ChafonCodec::new(variant, 0),
        bytes,
        &[bytes.len().max(1)],
        BOUND,
    );
    assert_eq!(split, whole, "result depends on how the input was split");
    for item in &split {
        if let ChafonEvent::Message(ChafonMessage::Inventory {
            status,
            antenna,
            tags,
            more,
        }) = item
        {
            assert!((0x01..=0x04).contains(status));
            assert_eq!(*more, *status == 0x03);
            for tag in tags {
                assert!(tag.epc.len() <= 0x7F);
                assert_eq!(tag.antenna, *antenna);
                assert_eq!(tag.rssi.is_some(), variant == ChafonVariant::Reader288);
                if variant == ChafonVariant::Reader18 {
                    assert_eq!(tag.antenna, None);
                }
            }
        }
    }
});
