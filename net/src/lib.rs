//! mlt-net: the transport shared by the scheduler, the nodes and the clients.
//!
//! ```text
//! tls     rustls configs for QUIC: TLS 1.3 only, ALPN mlt/1, server pinned by fingerprint
//! frames  FrameReader / FrameWriter over quinn streams, and a batching writer task (Outbox)
//! client  connect + Hello/Welcome handshake, with fatal and retryable errors kept apart
//! ```
#![deny(unsafe_code)]

pub mod client;
pub mod frames;
pub mod tls;

pub use client::{connect, connect_on, ClientSession, ConnectError};
pub use frames::{FrameReader, FrameWriter, NetError, Outbox};
