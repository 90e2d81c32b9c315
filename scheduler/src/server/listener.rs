//! The Listener actor: owns the QUIC endpoint and accepts connections. Each connection's
//! handshake runs in its own task, so a slow or hostile peer delays nobody.
use super::session::{Session, SessionArgs};
use crate::supervisor::Shared;
use mlt_net::frames::{FrameReader, FrameWriter};
use mlt_protocol::codec;
use mlt_protocol::handshake::{AcceptedMsg, Hello, Refusal, RefusedMsg, Role, Welcome};
use mlt_protocol::PROTOCOL_VERSION;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The actor.
pub struct Listener;

/// Start-up arguments.
pub struct ListenerArgs {
    /// The bound endpoint.
    pub endpoint: quinn::Endpoint,
    /// Shared handles.
    pub shared: Arc<Shared>,
}

/// Messages: none from outside; the accept loop runs as a task tied to the actor.
pub enum ListenerMsg {}

/// State: the accept task, aborted when the actor stops.
pub struct ListenerState {
    task: tokio::task::JoinHandle<()>,
    endpoint: quinn::Endpoint,
}

static SESSIONS: AtomicU64 = AtomicU64::new(1);

impl Actor for Listener {
    type Msg = ListenerMsg;
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(
        &self,
        me: ActorRef<ListenerMsg>,
        a: ListenerArgs,
    ) -> Result<ListenerState, ActorProcessingErr> {
        let endpoint = a.endpoint.clone();
        let shared = a.shared;
        let cell = me.get_cell();
        let task = tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let shared = shared.clone();
                let cell = cell.clone();
                tokio::spawn(async move {
                    if let Err(e) = accept(incoming, shared, cell).await {
                        tracing::debug!("connection not established: {e}");
                    }
                });
            }
        });
        Ok(ListenerState {
            task,
            endpoint: a.endpoint,
        })
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<ListenerMsg>,
        evt: ractor::SupervisionEvent,
        _st: &mut ListenerState,
    ) -> Result<(), ActorProcessingErr> {
        // Sessions end whenever a peer goes away: that is normal, and never stops the listener.
        if let ractor::SupervisionEvent::ActorFailed(cell, err) = evt {
            tracing::warn!(session = ?cell.get_id(), "session failed: {err}");
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<ListenerMsg>,
        st: &mut ListenerState,
    ) -> Result<(), ActorProcessingErr> {
        st.task.abort();
        st.endpoint.close(0u32.into(), b"scheduler stopping");
        Ok(())
    }
}

/// Close codes sent to peers.
pub mod close {
    /// Handshake refused.
    pub const REFUSED: u32 = 1;
    /// A frame did not decode or was too large.
    pub const BAD_FRAME: u32 = 2;
}

async fn refuse(
    writer: &mut FrameWriter,
    conn: &quinn::Connection,
    shared: &Shared,
    reason: Refusal,
    message: String,
) {
    shared.metrics.refused.fetch_add(1, Relaxed);
    tracing::warn!(peer = %conn.remote_address(), ?reason, "refused: {message}");
    let _ = writer
        .send(&Welcome::Refused(RefusedMsg {
            reason,
            protocol_version: PROTOCOL_VERSION,
            message: message.clone(),
        }))
        .await;
    // Let the refusal reach the peer before closing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.close(close::REFUSED.into(), message.as_bytes());
}

async fn accept(
    incoming: quinn::Incoming,
    shared: Arc<Shared>,
    listener: ractor::ActorCell,
) -> anyhow::Result<()> {
    let conn = incoming.await?;
    let (send, recv) = tokio::time::timeout(Duration::from_secs(10), conn.accept_bi()).await??;
    let max = shared.config.max_frame;
    let mut writer = FrameWriter::new(send, max);
    let mut reader = FrameReader::new(recv, max);
    // The version is the first field of any Hello: read it before decoding the rest, so a
    // peer of another version gets a clear answer whatever its Hello looks like.
    let first = tokio::time::timeout(Duration::from_secs(10), reader.recv_payload()).await?;
    let Ok(Some(payload)) = first else {
        shared.metrics.bad_frames.fetch_add(1, Relaxed);
        refuse(
            &mut writer,
            &conn,
            &shared,
            Refusal::Malformed,
            "the first frame must be a Hello".into(),
        )
        .await;
        return Ok(());
    };
    let version = postcard::take_from_bytes::<u32>(&payload)
        .ok()
        .map(|(v, _)| v);
    if let Some(v) = version.filter(|v| *v != PROTOCOL_VERSION) {
        let msg = format!(
            "protocol version {v} is not supported; this scheduler speaks version {PROTOCOL_VERSION} (run the same mlt-cluster release on every machine)"
        );
        refuse(&mut writer, &conn, &shared, Refusal::Version, msg).await;
        return Ok(());
    }
    let Ok(hello) = codec::decode::<Hello>(&payload) else {
        shared.metrics.bad_frames.fetch_add(1, Relaxed);
        refuse(
            &mut writer,
            &conn,
            &shared,
            Refusal::Malformed,
            "malformed Hello".into(),
        )
        .await;
        return Ok(());
    };
    let granted = shared.identity.role_of(&hello.secret);
    match granted {
        None => {
            let msg = format!("invalid token for {} `{}`: use the token printed by `mlt-cluster scheduler` (DIR/join-token or DIR/client-token)", hello.role, hello.name);
            refuse(&mut writer, &conn, &shared, Refusal::BadToken, msg).await;
            return Ok(());
        }
        Some(role) if role != hello.role => {
            let msg = format!("a {role} token cannot be used as a {}: {}", hello.role, match role {
                Role::Node => "submitting, cancelling and inspecting studies need the client token (DIR/client-token)",
                Role::Client => "nodes join with the join token (DIR/join-token)",
            });
            refuse(&mut writer, &conn, &shared, Refusal::WrongRole, msg).await;
            return Ok(());
        }
        Some(_) => {}
    }
    if hello.role == Role::Node && hello.node.is_none() {
        refuse(
            &mut writer,
            &conn,
            &shared,
            Refusal::Malformed,
            "a node's Hello must carry its node id".into(),
        )
        .await;
        return Ok(());
    }
    writer
        .send(&Welcome::Accepted(AcceptedMsg {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            heartbeat_ms: shared.config.heartbeat.as_millis() as u32,
            lease_ms: shared.config.lease.as_millis() as u32,
            max_frame: max as u32,
        }))
        .await?;
    let id = SESSIONS.fetch_add(1, Relaxed);
    tracing::info!(peer = %conn.remote_address(), role = %hello.role, name = %hello.name, session = id, "accepted");
    let args = SessionArgs {
        id,
        conn,
        reader,
        outbox: writer.into_outbox(),
        hello,
        shared,
    };
    Actor::spawn_linked(None, Session, args, listener).await?;
    Ok(())
}
