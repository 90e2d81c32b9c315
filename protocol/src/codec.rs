//! Framing: every frame is a little-endian `u32` payload length followed by one postcard-encoded
//! message. Frames longer than the negotiated maximum are refused before any allocation, and no
//! byte sequence makes decoding panic.
//!
//! ```text
//! +----------------+------------------------------+
//! | len: u32 (LE)  | postcard(message), len bytes |
//! +----------------+------------------------------+
//! ```
use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// Default hard limit on one frame's payload (16 MiB). Large payloads travel on their own
/// streams, never as one control frame.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be encoded or decoded. All of these are fatal for the connection.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The announced or encoded payload is larger than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The payload is not a valid message of the expected type.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    /// The payload decoded but left bytes unread.
    #[error("malformed frame: {0} trailing bytes")]
    Trailing(usize),
}

/// Appends one frame holding `msg` to `out`.
pub fn encode_into<T: Serialize>(msg: &T, max: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    let encoded = postcard::to_extend(msg, std::mem::take(out));
    *out = encoded?;
    let len = out.len() - start - HEADER_LEN;
    if len > max {
        out.truncate(start);
        return Err(CodecError::TooLarge { len, max });
    }
    out[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Encodes `msg` as one frame.
pub fn encode<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    encode_into(msg, max, &mut out)?;
    Ok(out)
}

/// Reads the payload length from a frame header, refusing lengths above `max`.
pub fn frame_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, CodecError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > max {
        return Err(CodecError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes one payload (without its header). Trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let (msg, rest) = postcard::take_from_bytes::<T>(payload)?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    Ok(msg)
}

/// Incremental decoder over a byte stream: push bytes as they arrive, take whole frames.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    max: usize,
}

impl FrameBuffer {
    /// An empty buffer that refuses frames longer than `max`.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Takes the next whole frame's payload, if one is complete.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let header: [u8; HEADER_LEN] = self.buf[..HEADER_LEN].try_into().expect("4 bytes");
        let len = frame_len(header, self.max)?;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(payload))
    }

    /// Decodes the next whole frame as a `T`.
    pub fn next_msg<T: DeserializeOwned>(&mut self) -> Result<Option<T>, CodecError> {
        match self.next_payload()? {
            Some(p) => decode(&p).map(Some),
            None => Ok(None),
        }
    }
}
