//! The Listener actor: owns the QUIC endpoint and accepts connections. Each connection's
//! handshake runs in its own task, so a slow or hostile peer delays nobody.
use super::close;
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

/// The largest first frame (the Hello) read before the peer is authenticated.
pub const HELLO_MAX: usize = 16 << 10;
/// Handshakes in progress at once, all peers together; more are refused.
pub const MAX_HANDSHAKES: usize = 256;
/// Handshakes in progress at once from one IP address.
pub const MAX_HANDSHAKES_PER_IP: u32 = 64;
/// From the first packet to an admitted Hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Handshakes in progress, all together and per source address.
#[derive(Default)]
struct Pending {
    by_ip: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>,
}

/// A place among the handshakes in progress, given back when dropped.
struct Permit {
    pending: Arc<Pending>,
    ip: std::net::IpAddr,
}

impl Pending {
    fn enter(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<Permit> {
        let mut m = self.by_ip.lock().expect("pending lock");
        let total: u32 = m.values().sum();
        let here = m.entry(ip).or_default();
        if total as usize >= MAX_HANDSHAKES || *here >= MAX_HANDSHAKES_PER_IP {
            return None;
        }
        *here += 1;
        Some(Permit {
            pending: self.clone(),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut m = self.pending.by_ip.lock().expect("pending lock");
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

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
        let pending = Arc::new(Pending::default());
        let task = tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                // Address validation first (a Retry round trip): a spoofed source address
                // gets no state here, and cannot use up another address's handshakes.
                if !incoming.remote_address_validated() {
                    let _ = incoming.retry();
                    continue;
                }
                let Some(permit) = pending.enter(incoming.remote_address().ip()) else {
                    shared.metrics.refused.fetch_add(1, Relaxed);
                    tracing::debug!(peer = %incoming.remote_address(), "too many handshakes in progress; refused");
                    incoming.refuse();
                    continue;
                };
                let shared = shared.clone();
                let cell = cell.clone();
                tokio::spawn(async move {
                    if let Err(e) = accept(incoming, shared, cell, permit).await {
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
        // Let every peer hear the close (at most 2 s): nodes reconnect at once instead of
        // waiting for a timeout.
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), st.endpoint.wait_idle()).await;
        Ok(())
    }
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
    // The refusal reaches the peer before the connection closes.
    writer.finish(Duration::from_secs(2)).await;
    conn.close(close::REFUSED.into(), message.as_bytes());
}

/// A peer's name as logs and listings show it: control characters escaped (a newline becomes
/// `\n`), at most 64 characters.
pub fn printable_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().take(64) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a handshake was refused: the reason sent to the peer, its message, and whether the
/// first frame itself was unreadable (counted as a bad frame).
#[derive(Debug, PartialEq)]
pub struct Refused {
    /// The reason the peer is told.
    pub reason: Refusal,
    /// What the peer is told, in words.
    pub message: String,
    /// The first frame was not a readable Hello.
    pub bad_frame: bool,
}

/// The handshake's decision on a connection's first frame (`None`: the stream ended or did
/// not carry a frame), with `role_of` telling which role a secret grants. The version is the
/// first field of any Hello and is read before the rest, so a peer of another version gets a
/// clear answer whatever its Hello looks like.
pub fn admit(
    payload: Option<&[u8]>,
    role_of: impl Fn(&str) -> Option<Role>,
) -> Result<Hello, Refused> {
    let no = |reason, message: String, bad_frame| Refused {
        reason,
        message,
        bad_frame,
    };
    let Some(payload) = payload else {
        return Err(no(
            Refusal::Malformed,
            "the first frame must be a Hello".into(),
            true,
        ));
    };
    let version = postcard::take_from_bytes::<u32>(payload)
        .ok()
        .map(|(v, _)| v);
    if let Some(v) = version.filter(|v| *v != PROTOCOL_VERSION) {
        let msg = format!(
            "protocol version {v} is not supported; this scheduler speaks version {PROTOCOL_VERSION} (run the same mlt-cluster release on every machine)"
        );
        return Err(no(Refusal::Version, msg, false));
    }
    let Ok(mut hello) = codec::decode::<Hello>(payload) else {
        return Err(no(Refusal::Malformed, "malformed Hello".into(), true));
    };
    // A peer's name goes into logs and listings: no line breaks or escapes to forge lines with.
    hello.name = printable_name(&hello.name);
    match role_of(&hello.secret) {
        None => {
            let msg = format!("invalid token for {} `{}`: use the token printed by `mlt-cluster scheduler` (DIR/join-token or DIR/client-token)", hello.role, hello.name);
            return Err(no(Refusal::BadToken, msg, false));
        }
        Some(role) if role != hello.role => {
            let msg = format!("a {role} token cannot be used as a {}: {}", hello.role, match role {
                Role::Node => "submitting, cancelling and inspecting studies need the client token (DIR/client-token)",
                Role::Client => "nodes join with the join token (DIR/join-token)",
            });
            return Err(no(Refusal::WrongRole, msg, false));
        }
        Some(_) => {}
    }
    if hello.role == Role::Node && hello.node.is_none() {
        return Err(no(
            Refusal::Malformed,
            "a node's Hello must carry its node id".into(),
            false,
        ));
    }
    Ok(hello)
}

async fn accept(
    incoming: quinn::Incoming,
    shared: Arc<Shared>,
    listener: ractor::ActorCell,
    permit: Permit,
) -> anyhow::Result<()> {
    // Before the token is checked: one stream, a Hello of at most HELLO_MAX bytes, and
    // HANDSHAKE_TIMEOUT for all of it.
    let handshake = async {
        let conn = incoming.await?;
        let (send, recv) = conn.accept_bi().await?;
        let mut reader = FrameReader::new(recv, HELLO_MAX);
        let first = reader.recv_payload().await;
        anyhow::Ok((conn, send, reader, first))
    };
    let (conn, send, mut reader, first) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await??;
    let max = shared.config.max_frame;
    let mut writer = FrameWriter::new(send, max);
    let payload = first.ok().flatten();
    let hello = match admit(payload.as_deref(), |secret| shared.identity.role_of(secret)) {
        Ok(hello) => hello,
        Err(no) => {
            if no.bad_frame {
                shared.metrics.bad_frames.fetch_add(1, Relaxed);
            }
            refuse(&mut writer, &conn, &shared, no.reason, no.message).await;
            return Ok(());
        }
    };
    writer
        .send(&Welcome::Accepted(AcceptedMsg {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            heartbeat_ms: shared.config.heartbeat.as_millis() as u32,
            lease_ms: shared.config.lease.as_millis() as u32,
            max_frame: max as u32,
        }))
        .await?;
    drop(permit);
    reader.set_max(max);
    let id = SESSIONS.fetch_add(1, Relaxed);
    tracing::info!(peer = %conn.remote_address(), role = %hello.role, name = %hello.name, session = id, "accepted");
    // A peer that stops reading is cut off once four frames' worth wait for it.
    let outbox = writer.into_bounded_outbox(conn.clone(), 4 * max);
    let args = SessionArgs {
        id,
        conn,
        reader,
        outbox,
        hello,
        shared,
    };
    Actor::spawn_linked(None, Session, args, listener).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::ids::NodeId;

    fn hello(role: Role, secret: &str, node: Option<NodeId>) -> Vec<u8> {
        let h = Hello {
            protocol_version: PROTOCOL_VERSION,
            role,
            secret: secret.into(),
            name: "peer".into(),
            node,
        };
        let frame = codec::encode(&h, 1 << 16).unwrap();
        frame[codec::HEADER_LEN..].to_vec()
    }

    /// The node secret grants Node, the client secret Client.
    fn roles(secret: &str) -> Option<Role> {
        match secret {
            "n" => Some(Role::Node),
            "c" => Some(Role::Client),
            _ => None,
        }
    }

    #[test]
    fn a_peers_name_cannot_forge_log_lines() {
        let forged = "n1\n2026-12-07T00:00:00Z  INFO accepted role=client\r\u{1b}[2J";
        let shown = printable_name(forged);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(shown.starts_with("n1\\n2026"), "{shown}");
        assert_eq!(printable_name(&"x".repeat(500)).len(), 64);
        let mut h = Hello {
            protocol_version: PROTOCOL_VERSION,
            role: Role::Client,
            secret: "c".into(),
            name: forged.into(),
            node: None,
        };
        let frame = codec::encode(&h, 1 << 16).unwrap();
        let got = admit(Some(&frame[codec::HEADER_LEN..]), roles).unwrap();
        h.name = shown;
        assert_eq!(got.name, h.name);
    }

    #[test]
    fn the_handshake_admits_the_right_token_for_the_right_role() {
        let h = admit(Some(&hello(Role::Node, "n", Some(NodeId(4)))), roles).unwrap();
        assert_eq!((h.role, h.node), (Role::Node, Some(NodeId(4))));
        let h = admit(Some(&hello(Role::Client, "c", None)), roles).unwrap();
        assert_eq!(h.role, Role::Client);
    }

    #[test]
    fn the_handshake_refuses_with_a_reason_the_peer_can_act_on() {
        let refused = |p: Option<&[u8]>| admit(p, roles).unwrap_err();
        let r = refused(None);
        assert_eq!((r.reason, r.bad_frame), (Refusal::Malformed, true));
        let r = refused(Some(&[0xff, 0xff, 0xff, 0xff, 0x0f]));
        assert_eq!(r.reason, Refusal::Version);
        assert!(
            r.message.contains(&format!("version {PROTOCOL_VERSION}")),
            "{}",
            r.message
        );
        let mut other = hello(Role::Node, "n", Some(NodeId(1)));
        other[0] = (PROTOCOL_VERSION + 1) as u8;
        let r = refused(Some(&other));
        assert_eq!((r.reason, r.bad_frame), (Refusal::Version, false));
        let mut truncated = hello(Role::Node, "n", Some(NodeId(1)));
        truncated.truncate(3);
        let r = refused(Some(&truncated));
        assert_eq!((r.reason, r.bad_frame), (Refusal::Malformed, true));
        let r = refused(Some(&hello(Role::Node, "wrong", Some(NodeId(1)))));
        assert_eq!(r.reason, Refusal::BadToken);
        assert!(r.message.contains("join-token"), "{}", r.message);
        let r = refused(Some(&hello(Role::Client, "n", None)));
        assert_eq!(r.reason, Refusal::WrongRole);
        assert!(r.message.contains("client token"), "{}", r.message);
        let r = refused(Some(&hello(Role::Node, "c", Some(NodeId(1)))));
        assert_eq!(r.reason, Refusal::WrongRole);
        let r = refused(Some(&hello(Role::Node, "n", None)));
        assert_eq!((r.reason, r.bad_frame), (Refusal::Malformed, false));
        assert!(r.message.contains("node id"), "{}", r.message);
    }
}
