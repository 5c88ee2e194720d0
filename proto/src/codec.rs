//! The protobuf codec every Warden service uses.
//!
//! It is tonic's prost codec with two differences that matter to callers: a request that
//! is not valid protobuf, or that is larger than [`MAX_REQUEST_BYTES`], is answered with
//! `INVALID_ARGUMENT` and a message saying which, instead of `INTERNAL` or a transport
//! error. (Messages larger than the transport limit configured on the server, 8 MiB by
//! default, are refused by tonic itself with `RESOURCE_EXHAUSTED` before they reach this
//! codec.)

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Largest encoded message the decoder accepts: 1 MiB.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Prost codec with `INVALID_ARGUMENT` for malformed or oversized messages.
#[derive(Debug)]
pub struct WardenCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for WardenCodec<T, U> {
    fn default() -> Self {
        Self {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for WardenCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = WardenDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        WardenDecoder {
            inner: self.inner.decoder(),
        }
    }
}

/// Decoder half of [`WardenCodec`].
#[derive(Debug)]
pub struct WardenDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: Message + Default> Decoder for WardenDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use bytes_len::Remaining;
        let len = buf.remaining_len();
        if len > MAX_REQUEST_BYTES {
            return Err(Status::invalid_argument(format!(
                "message is {len} bytes; the limit is {MAX_REQUEST_BYTES} bytes"
            )));
        }
        self.inner.decode(buf).map_err(|status| {
            Status::invalid_argument(format!("malformed protobuf message: {}", status.message()))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}

mod bytes_len {
    use tonic::codec::DecodeBuf;

    /// `DecodeBuf` implements `bytes::Buf`; this names the one method needed without
    /// a direct dependency on `bytes`.
    pub(super) trait Remaining {
        fn remaining_len(&self) -> usize;
    }

    impl Remaining for DecodeBuf<'_> {
        fn remaining_len(&self) -> usize {
            prost::bytes::Buf::remaining(self)
        }
    }
}
