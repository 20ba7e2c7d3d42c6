//! Shared driver for the decoder fuzz targets.

use std::io;

use custodyd::decode::testutil;
use tokio_util::codec::Decoder;

/// Splits the fuzz input into chunk sizes and the bytes to decode: the first
/// byte says how many size bytes follow (1–8), each giving a chunk of 1–64
/// bytes, cycled. The fuzzer thereby explores how reads split the stream as
/// well as its content.
pub fn split_input(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return (vec![1], data);
    };
    let count = (usize::from(count) % 8 + 1).min(rest.len());
    let (sizes, bytes) = rest.split_at(count);
    let sizes = sizes.iter().map(|&b| usize::from(b) % 64 + 1).collect();
    (sizes, bytes)
}

/// Decodes `bytes` fed in chunks of `sizes`, then ends the stream (through
/// the codec tests' own driver), checking that the codec never kept more
/// than `bound` bytes while waiting for more input. Generic over the item
/// so that codecs with richer events than `Decoded` share it.
pub fn decode_chunked<C>(codec: &mut C, bytes: &[u8], sizes: &[usize], bound: usize) -> Vec<C::Item>
where
    C: Decoder<Error = io::Error>,
{
    let (items, most_buffered) = testutil::decode_chunked(codec, bytes, sizes);
    assert!(most_buffered <= bound, "{most_buffered} bytes buffered, bound {bound}");
    items
}
