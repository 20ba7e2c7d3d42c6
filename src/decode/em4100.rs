//! EM4100 / RDM6300 frames: `STX, 10 ASCII hex, 2 ASCII hex XOR, ETX`.
//! (Skeleton: filled in by the decoder work.)

use std::io;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::Decoded;

#[derive(Debug, Default)]
pub struct Em4100Codec {}

impl Em4100Codec {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Decoder for Em4100Codec {
    type Item = Decoded;
    type Error = io::Error;

    fn decode(&mut self, _src: &mut BytesMut) -> Result<Option<Decoded>, io::Error> {
        todo!()
    }
}
