//! Framed messages over quinn streams (the one place framing happens), and the batching
//! writer task every session uses to send.
use mlt_protocol::codec::{self, CodecError, HEADER_LEN};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

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

    /// Changes the largest frame accepted from now on (a small one before the peer is
    /// authenticated, the configured one after).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
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
        // The buffer grows with what arrives, not with what the header announces: a peer that
        // announces 16 MiB and sends nothing costs nothing.
        self.buf.clear();
        while self.buf.len() < len {
            match self.recv.read_chunk(len - self.buf.len(), true).await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk.bytes),
                Ok(None) => return Err(NetError::Truncated),
                Err(e) => return Err(e.into()),
            }
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
        Outbox::spawn(self.send, self.max, None)
    }

    /// [`FrameWriter::into_outbox`] for a peer that may stop reading: once more than `cap`
    /// bytes wait for it, `conn` is closed (code 3, `TOO_SLOW`) instead of queueing more.
    pub fn into_bounded_outbox(self, conn: quinn::Connection, cap: usize) -> Outbox {
        Outbox::spawn(self.send, self.max, Some((conn, cap)))
    }

    /// Finishes the stream and waits, up to `timeout`, until the peer has acknowledged every
    /// byte written (or stopped the stream): closing the connection after this loses nothing
    /// that was sent.
    pub async fn finish(&mut self, timeout: Duration) {
        finish(&mut self.send, timeout).await;
    }
}

/// Finishes `send` and waits up to `timeout` for the peer's acknowledgement of all its data.
async fn finish(send: &mut quinn::SendStream, timeout: Duration) {
    if send.finish().is_ok() {
        let _ = tokio::time::timeout(timeout, send.stopped()).await;
    }
}

/// What the writer task is asked to do.
#[derive(Debug)]
enum Queued {
    /// Write this frame.
    Frame(Vec<u8>),
    /// Write everything queued before, finish the stream, wait (up to the duration) for the
    /// peer's acknowledgement, then answer.
    Finish(Duration, oneshot::Sender<()>),
}

/// A cheap, clonable handle that queues messages for one stream. A task drains the queue
/// and writes every queued frame with one write, so bursts cost one syscall.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Queued>,
    max: usize,
    /// Bytes queued and not yet written, and the most allowed with the connection to close
    /// past it (None: unbounded, for the node's own connection).
    bound: Option<(Arc<AtomicUsize>, usize, quinn::Connection)>,
}

/// Application close code of a connection whose peer stopped reading.
pub const TOO_SLOW: u32 = 3;

impl Outbox {
    fn spawn(
        mut send: quinn::SendStream,
        max: usize,
        cap: Option<(quinn::Connection, usize)>,
    ) -> Outbox {
        let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
        let bound = cap.map(|(conn, cap)| (Arc::new(AtomicUsize::new(0)), cap, conn));
        let queued = bound.as_ref().map(|(q, _, _)| q.clone());
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(4096);
            let mut finish_after = None;
            while let Some(first) = rx.recv().await {
                batch.clear();
                let mut next = Some(first);
                while let Some(item) = next.take() {
                    match item {
                        Queued::Frame(f) => {
                            if let Some(q) = &queued {
                                q.fetch_sub(f.len(), Ordering::Relaxed);
                            }
                            batch.extend_from_slice(&f)
                        }
                        Queued::Finish(t, done) => {
                            finish_after = Some((t, done));
                            break;
                        }
                    }
                    if batch.len() < 256 * 1024 {
                        next = rx.try_recv().ok();
                    }
                }
                if !batch.is_empty() && send.write_all(&batch).await.is_err() {
                    break;
                }
                if let Some((t, done)) = finish_after.take() {
                    finish(&mut send, t).await;
                    let _ = done.send(());
                    return;
                }
            }
            let _ = send.finish();
        });
        Outbox { tx, max, bound }
    }

    /// An outbox with no stream behind it: every frame it is given comes out of the returned
    /// receiver (for tests of the logic that sends, without sockets).
    pub fn detached(max: usize) -> (Outbox, mpsc::UnboundedReceiver<Vec<u8>>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
        let (frames_tx, frames) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            while let Some(q) = rx.blocking_recv() {
                match q {
                    Queued::Frame(f) => {
                        let _ = frames_tx.send(f);
                    }
                    Queued::Finish(_, done) => {
                        let _ = done.send(());
                        return;
                    }
                }
            }
        });
        (
            Outbox {
                tx,
                max,
                bound: None,
            },
            frames,
        )
    }

    /// Writes everything queued, finishes the stream and waits, up to `timeout`, until the
    /// peer has acknowledged it all. Later messages are dropped.
    pub async fn finish(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Queued::Finish(timeout, done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Encodes and queues one message. Fails only when the message is too large; a closed
    /// connection drops messages silently (its session is ending anyway).
    pub fn send<T: Serialize>(&self, msg: &T) -> Result<(), CodecError> {
        let frame = codec::encode(msg, self.max)?;
        self.send_frame(frame);
        Ok(())
    }

    /// Queues an already encoded frame (or, past the bound, closes the connection: a peer
    /// that does not read its messages must not make the sender keep them all).
    pub fn send_frame(&self, frame: Vec<u8>) {
        if let Some((queued, cap, conn)) = &self.bound {
            let now = queued.fetch_add(frame.len(), Ordering::Relaxed) + frame.len();
            if now > *cap {
                queued.fetch_sub(frame.len(), Ordering::Relaxed);
                conn.close(TOO_SLOW.into(), b"the peer does not read its messages");
                return;
            }
        }
        let _ = self.tx.send(Queued::Frame(frame));
    }

    /// Whether the writer task has stopped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
