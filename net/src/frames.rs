//! Framed messages over quinn streams (the one place framing happens), and the batching
//! writer task every session uses to send.
use mlt_protocol::codec::{self, CodecError, HEADER_LEN};
use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;
use tokio::sync::mpsc;

/// Transport errors after the connection is up.
#[derive(Debug, Error)]
pub enum NetError {
    /// A frame could not be encoded or decoded; the connection must close.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// Reading failed.
    #[error("read failed: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed.
    #[error("write failed: {0}")]
    Write(#[from] quinn::WriteError),
    /// The connection is gone.
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
}

/// Reads frames from a receive stream.
pub struct FrameReader {
    recv: quinn::RecvStream,
    max: usize,
    buf: Vec<u8>,
}

impl FrameReader {
    /// Wraps a stream; frames above `max` bytes are refused.
    pub fn new(recv: quinn::RecvStream, max: usize) -> Self {
        Self {
            recv,
            max,
            buf: Vec::new(),
        }
    }

    /// The next message; `None` when the peer finished the stream cleanly between frames.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, NetError> {
        if !self.fill().await? {
            return Ok(None);
        }
        Ok(Some(codec::decode(&self.buf)?))
    }

    /// The next frame's payload, undecoded.
    pub async fn recv_payload(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        Ok(self.fill().await?.then(|| self.buf.clone()))
    }

    async fn fill(&mut self) -> Result<bool, NetError> {
        let mut header = [0u8; HEADER_LEN];
        match self.recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(false),
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(NetError::Truncated),
            Err(quinn::ReadExactError::ReadError(e)) => return Err(e.into()),
        }
        let len = codec::frame_len(header, self.max)?;
        self.buf.resize(len, 0);
        match self.recv.read_exact(&mut self.buf).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(NetError::Truncated),
            Err(quinn::ReadExactError::ReadError(e)) => return Err(e.into()),
        }
        Ok(true)
    }
}

/// Writes frames to a send stream.
pub struct FrameWriter {
    send: quinn::SendStream,
    max: usize,
    buf: Vec<u8>,
}

impl FrameWriter {
    /// Wraps a stream; messages above `max` bytes are refused.
    pub fn new(send: quinn::SendStream, max: usize) -> Self {
        Self {
            send,
            max,
            buf: Vec::new(),
        }
    }

    /// Sends one message.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), NetError> {
        self.buf.clear();
        codec::encode_into(msg, self.max, &mut self.buf)?;
        self.send.write_all(&self.buf).await?;
        Ok(())
    }

    /// The underlying stream (for tests that must send raw bytes).
    pub fn into_inner(self) -> quinn::SendStream {
        self.send
    }

    /// Hands the stream to a batching writer task.
    pub fn into_outbox(self) -> Outbox {
        Outbox::spawn(self.send, self.max)
    }
}

/// A cheap, clonable handle that queues messages for one stream. A task drains the queue
/// and writes every queued frame with one write, so bursts cost one syscall.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    max: usize,
}

impl Outbox {
    fn spawn(mut send: quinn::SendStream, max: usize) -> Outbox {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(4096);
            while let Some(first) = rx.recv().await {
                batch.clear();
                batch.extend_from_slice(&first);
                while batch.len() < 256 * 1024 {
                    match rx.try_recv() {
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if send.write_all(&batch).await.is_err() {
                    break;
                }
            }
            let _ = send.finish();
        });
        Outbox { tx, max }
    }

    /// Encodes and queues one message. Fails only when the message is too large; a closed
    /// connection drops messages silently (its session is ending anyway).
    pub fn send<T: Serialize>(&self, msg: &T) -> Result<(), CodecError> {
        let frame = codec::encode(msg, self.max)?;
        let _ = self.tx.send(frame);
        Ok(())
    }

    /// Queues an already encoded frame.
    pub fn send_frame(&self, frame: Vec<u8>) {
        let _ = self.tx.send(frame);
    }

    /// Whether the writer task has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
