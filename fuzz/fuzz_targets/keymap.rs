#![no_main]

use custodyd::config::{EndOn, GS};
use custodyd::decode::keymap::{parse_events, EventLayout, KeyDecoder};
use custodyd::decode::{Decoded, Source};
use libfuzzer_sys::fuzz_target;

const END_ON: [EndOn; 3] = [EndOn::Enter, EndOn::Tab, EndOn::EnterOrTab];

fuzz_target!(|data: &[u8]| {
    // Two configuration bytes, then raw `input_event` structs.
    let [config, max_len, data @ ..] = data else {
        return;
    };
    let end_on = END_ON[usize::from(config % 3)];
    let layout = if config & 4 != 0 {
        EventLayout::Bits32
    } else {
        EventLayout::Bits64
    };
    let gs = if config & 8 != 0 { "<GS>" } else { GS };
    let max_len = usize::from(*max_len % 64);
    let mut keys = KeyDecoder::new(end_on, gs, max_len, Source::Barcode);
    for event in parse_events(data, layout) {
        if let Some(Decoded::Read(read)) = keys.feed(&event) {
            assert!(!read.data.is_empty() && read.data.len() <= max_len);
            assert!(read
                .data
                .chars()
                .all(|c| c == '\u{1d}' || (' '..='~').contains(&c)));
        }
        assert!(keys.buffered() <= max_len);
    }
    keys.flush();
    assert!(!keys.is_pending() && keys.buffered() == 0);
});
