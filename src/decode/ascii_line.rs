//! One tag or barcode per line.
//! (Skeleton: filled in by the decoder work.)

use std::io;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::{Decoded, Source};
use crate::config::Terminator;

#[derive(Debug)]
pub struct AsciiLineCodec {
    terminator: Terminator,
    prefix: Option<String>,
    suffix: Option<String>,
    max_len: usize,
    source: Source,
}

impl AsciiLineCodec {
    pub fn new(
        terminator: Terminator,
        prefix: Option<String>,
        suffix: Option<String>,
        max_len: usize,
        source: Source,
    ) -> Self {
        AsciiLineCodec {
            terminator,
            prefix,
            suffix,
            max_len,
            source,
        }
    }
}

impl Decoder for AsciiLineCodec {
    type Item = Decoded;
    type Error = io::Error;

    fn decode(&mut self, _src: &mut BytesMut) -> Result<Option<Decoded>, io::Error> {
        let _ = (
            &self.terminator,
            &self.prefix,
            &self.suffix,
            self.max_len,
            self.source,
        );
        todo!()
    }
}
