//! Helpers shared by the codec tests.

use std::io;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::Decoded;

/// Feeds `input` to `codec` in chunks of the given sizes (cycled), the way a
/// serial port hands over whatever bytes have arrived, then signals end of
/// stream. Returns everything decoded and the most the codec kept buffered
/// while waiting for more input, which is the memory a reader can pin.
pub fn decode_chunked<C>(codec: &mut C, input: &[u8], sizes: &[usize]) -> (Vec<C::Item>, usize)
where
    C: Decoder<Error = io::Error>,
{
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut most_buffered = 0;
    let mut sizes = sizes.iter().copied().filter(|&n| n > 0).cycle();
    let mut rest = input;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(item) = codec.decode(&mut buf).expect("decoders never fail") {
            items.push(item);
        }
        most_buffered = most_buffered.max(buf.len());
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("decoders never fail") {
        items.push(item);
    }
    assert!(buf.is_empty(), "decode_eof must leave nothing behind");
    (items, most_buffered)
}

/// The data of every read, in order.
pub fn reads(items: &[Decoded]) -> Vec<&str> {
    items
        .iter()
        .filter_map(|item| match item {
            Decoded::Read(read) => Some(read.data.as_str()),
            Decoded::Dropped(_) => None,
        })
        .collect()
}

/// Whether `wanted` appears in `seen` in order, possibly with other items between.
pub fn is_subsequence<T: PartialEq>(wanted: &[T], seen: &[T]) -> bool {
    let mut seen = seen.iter();
    wanted.iter().all(|w| seen.any(|s| s == w))
}
