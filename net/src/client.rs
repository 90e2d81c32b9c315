//! Connecting to the scheduler: QUIC with the pinned certificate, then `Hello` → `Welcome`.
use crate::frames::{FrameReader, FrameWriter, NetError};
use crate::tls;
use mlt_protocol::codec::DEFAULT_MAX_FRAME;
use mlt_protocol::handshake::{AcceptedMsg, Hello, Refusal, Welcome};
use mlt_protocol::token::Token;
use mlt_protocol::PROTOCOL_VERSION;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// Why connecting failed. [`ConnectError::is_fatal`] tells whether retrying can help.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The address did not resolve. Fatal.
    #[error("cannot resolve scheduler address `{0}`")]
    Resolve(String),
    /// No answer or the connection failed. Retryable: the scheduler may be starting.
    #[error("cannot reach the scheduler at {addr}: {reason}")]
    Unreachable {
        /// Address tried.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// The server's certificate is not the one the token pins. Fatal.
    #[error(
        "the scheduler at {addr} presented certificate {seen}, but the token pins {pinned}: \
         this is not the scheduler that issued the token (or its certificate was regenerated)"
    )]
    Fingerprint {
        /// Address tried.
        addr: String,
        /// Fingerprint seen.
        seen: String,
        /// Fingerprint pinned.
        pinned: String,
    },
    /// The scheduler refused the handshake. Fatal.
    #[error("the scheduler refused this {role}: {message}")]
    Refused {
        /// Why.
        reason: Refusal,
        /// Role asked for.
        role: String,
        /// The scheduler's sentence.
        message: String,
    },
    /// The connection broke during the handshake. Retryable.
    #[error("handshake with the scheduler failed: {0}")]
    Handshake(#[from] NetError),
    /// Local set-up failed (socket, TLS). Fatal.
    #[error("local network set-up failed: {0}")]
    Local(String),
}

impl ConnectError {
    /// Whether retrying the same connection can never succeed.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            ConnectError::Unreachable { .. } | ConnectError::Handshake(_)
        )
    }
}

/// An accepted connection, ready for the role's messages.
pub struct ClientSession {
    /// Keeps the socket alive.
    pub endpoint: quinn::Endpoint,
    /// The connection.
    pub conn: quinn::Connection,
    /// Frames to the scheduler.
    pub writer: FrameWriter,
    /// Frames from the scheduler.
    pub reader: FrameReader,
    /// What the scheduler said.
    pub accepted: AcceptedMsg,
}

/// Resolves `host:port`.
pub async fn resolve(addr: &str) -> Result<SocketAddr, ConnectError> {
    let mut addrs = tokio::net::lookup_host(addr)
        .await
        .map_err(|_| ConnectError::Resolve(addr.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| ConnectError::Resolve(addr.to_string()))
}

/// Connects to `addr` with `token`, sends `hello` (its secret and role are set from the token;
/// a `protocol_version` of 0 means this build's) and waits for the scheduler's answer.
pub async fn connect(
    addr: &str,
    token: &Token,
    hello: Hello,
    timeout: Duration,
) -> Result<ClientSession, ConnectError> {
    let sock = resolve(addr).await?;
    let bind: SocketAddr = if sock.is_ipv6() {
        "[::]:0".parse().expect("addr")
    } else {
        "0.0.0.0:0".parse().expect("addr")
    };
    let endpoint = quinn::Endpoint::client(bind).map_err(|e| ConnectError::Local(e.to_string()))?;
    connect_on(endpoint, addr, token, hello, timeout).await
}

/// As [`connect`], on an existing client endpoint (many connections may share one socket).
pub async fn connect_on(
    endpoint: quinn::Endpoint,
    addr: &str,
    token: &Token,
    mut hello: Hello,
    timeout: Duration,
) -> Result<ClientSession, ConnectError> {
    let sock = resolve(addr).await?;
    let (cfg, verifier) = tls::client_config(token.fingerprint, Duration::from_secs(20))
        .map_err(|e| ConnectError::Local(e.to_string()))?;
    let unreachable = |reason: String| ConnectError::Unreachable {
        addr: addr.to_string(),
        reason,
    };
    let connecting = endpoint
        .connect_with(cfg, sock, "mlt-scheduler")
        .map_err(|e| ConnectError::Local(e.to_string()))?;
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => return Err(unreachable("no answer".into())),
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            if let Some(seen) = verifier.mismatch.lock().expect("verifier lock").take() {
                return Err(ConnectError::Fingerprint {
                    addr: addr.to_string(),
                    seen,
                    pinned: hex::encode(token.fingerprint),
                });
            }
            return Err(unreachable(e.to_string()));
        }
    };
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut writer = FrameWriter::new(send, DEFAULT_MAX_FRAME);
    let mut reader = FrameReader::new(recv, DEFAULT_MAX_FRAME);
    if hello.protocol_version == 0 {
        hello.protocol_version = PROTOCOL_VERSION;
    }
    hello.role = token.role;
    hello.secret = token.secret.clone();
    let role = hello.role.to_string();
    writer.send(&hello).await?;
    let welcome = match tokio::time::timeout(timeout, reader.recv::<Welcome>()).await {
        Err(_) => return Err(unreachable("no answer to the handshake".into())),
        Ok(r) => r?,
    };
    match welcome {
        Some(Welcome::Accepted(accepted)) => Ok(ClientSession {
            endpoint,
            conn,
            writer,
            reader,
            accepted,
        }),
        Some(Welcome::Refused(r)) => Err(ConnectError::Refused {
            reason: r.reason,
            role,
            message: r.message,
        }),
        None => Err(ConnectError::Handshake(NetError::Truncated)),
    }
}
