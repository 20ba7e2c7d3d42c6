#![no_main]

use custodyd::decode::Terminator;
use custodyd::decode::{AsciiLineCodec, Decoded, Source};
use custodyd_fuzz::{decode_chunked, split_input};
use libfuzzer_sys::fuzz_target;

const TERMINATORS: [Terminator; 4] = [
    Terminator::Cr,
    Terminator::Lf,
    Terminator::Crlf,
    Terminator::Etx,
];

fuzz_target!(|data: &[u8]| {
    // Two configuration bytes, then the chunk sizes and the stream.
    let [config, max_len, data @ ..] = data else {
        return;
    };
    let terminator = TERMINATORS[usize::from(config & 3)];
    // Affixes that hold a framing byte (STX, ETX) too, as configurations
    // from before custodyd stripped the framing itself do.
    let framed = config & 16 != 0;
    let prefix = (config & 4 != 0).then(|| if framed { "\x02]C1" } else { "]C1" }.to_owned());
    let suffix = (config & 8 != 0).then(|| if framed { "#\x03" } else { "#" }.to_owned());
    let max_len = usize::from(*max_len % 64);
    let new = || {
        AsciiLineCodec::new(
            terminator,
            prefix.clone(),
            suffix.clone(),
            max_len,
            Source::Barcode,
        )
    };

    let (sizes, bytes) = split_input(data);
    let split = decode_chunked(&mut new(), bytes, &sizes, max_len);
    let whole = decode_chunked(&mut new(), bytes, &[bytes.len().max(1)], max_len);
    assert_eq!(split, whole, "result depends on how the input was split");
    for item in &split {
        if let Decoded::Read(read) = item {
            assert!(!read.data.is_empty() && read.data.len() <= max_len);
            assert!(!read.data.chars().any(|c| c.is_control() && c != '\x1d'));
        }
    }
});
