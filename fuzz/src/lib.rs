//! Shared driver for the decoder fuzz targets.

use std::fmt::Debug;
use std::io;

use bytes::BytesMut;
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

/// Decodes `bytes` fed in chunks of `sizes`, then ends the stream, checking
/// that the codec never fails, keeps at most `bound` bytes while waiting for
/// more input, and consumes everything at end of stream. Generic over the
/// item so that codecs with richer events than `Decoded` share it.
pub fn decode_chunked<C>(codec: &mut C, bytes: &[u8], sizes: &[usize], bound: usize) -> Vec<C::Item>
where
    C: Decoder<Error = io::Error>,
    C::Item: Debug,
{
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut sizes = sizes.iter().copied().cycle();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(item) = codec.decode(&mut buf).expect("decoders never fail") {
            items.push(item);
        }
        assert!(
            buf.len() <= bound,
            "{} bytes buffered, bound {bound}",
            buf.len()
        );
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("decoders never fail") {
        items.push(item);
    }
    assert!(buf.is_empty(), "bytes left after end of stream");
    items
}
