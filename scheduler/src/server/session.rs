//! The Session actor: one per accepted connection. A reader task decodes frames and posts
//! them here; a frame that does not decode closes the connection (the scheduler goes on).
use super::listener::close;
use crate::registry::RegistryMsg;
use crate::study::StudyMsg;
use crate::supervisor::{Shared, SupervisorMsg};
use mlt_net::frames::{FrameReader, NetError};
use mlt_net::Outbox;
use mlt_protocol::codec;
use mlt_protocol::handshake::{Hello, Role};
use mlt_protocol::ids::NodeId;
use mlt_protocol::messages::*;
use mlt_protocol::records::StatusReport;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// The actor.
pub struct Session;

/// Start-up arguments.
pub struct SessionArgs {
    /// Session id.
    pub id: u64,
    /// The connection.
    pub conn: quinn::Connection,
    /// Control stream, receive side.
    pub reader: FrameReader,
    /// Control stream, send side.
    pub outbox: Outbox,
    /// The accepted Hello.
    pub hello: Hello,
    /// Shared handles.
    pub shared: Arc<Shared>,
}

/// Messages, posted by the reader task.
pub enum SessionMsg {
    /// A node's frame.
    Node(FromNode),
    /// A client's frame.
    Client(FromClient),
    /// The connection ended.
    Closed,
}

/// State.
pub struct SessionState {
    id: u64,
    role: Role,
    node: NodeId,
    name: String,
    outbox: Outbox,
    shared: Arc<Shared>,
    reader: tokio::task::JoinHandle<()>,
    conn: quinn::Connection,
}

async fn read_loop(
    mut reader: FrameReader,
    role: Role,
    me: ActorRef<SessionMsg>,
    conn: quinn::Connection,
    shared: Arc<Shared>,
) {
    loop {
        let msg = match reader.recv_payload().await {
            Ok(Some(p)) => match role {
                Role::Node => codec::decode::<FromNode>(&p).map(SessionMsg::Node),
                Role::Client => codec::decode::<FromClient>(&p).map(SessionMsg::Client),
            }
            .map_err(NetError::from),
            Ok(None) => break,
            Err(e) => Err(e),
        };
        match msg {
            Ok(m) => {
                if me.cast(m).is_err() {
                    break;
                }
            }
            Err(e @ (NetError::Codec(_) | NetError::Truncated)) => {
                shared.metrics.bad_frames.fetch_add(1, Relaxed);
                tracing::warn!(peer = %conn.remote_address(), "closing the connection: {e}");
                conn.close(close::BAD_FRAME.into(), e.to_string().as_bytes());
                break;
            }
            Err(e) => {
                tracing::debug!(peer = %conn.remote_address(), "session ended: {e}");
                break;
            }
        }
    }
    let _ = me.cast(SessionMsg::Closed);
}

impl Actor for Session {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        me: ActorRef<SessionMsg>,
        a: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let reader = tokio::spawn(read_loop(
            a.reader,
            a.hello.role,
            me,
            a.conn.clone(),
            a.shared.clone(),
        ));
        Ok(SessionState {
            id: a.id,
            role: a.hello.role,
            node: a.hello.node.unwrap_or_default(),
            name: a.hello.name,
            outbox: a.outbox,
            shared: a.shared,
            reader,
            conn: a.conn,
        })
    }

    async fn post_stop(
        &self,
        _me: ActorRef<SessionMsg>,
        st: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        st.reader.abort();
        st.conn.close(0u32.into(), b"session ended");
        if st.role == Role::Node {
            let _ = st.shared.registry.cast(RegistryMsg::NodeDown {
                node: st.node,
                session: st.id,
            });
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<SessionMsg>,
        msg: SessionMsg,
        st: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Node(m) => on_node(st, m),
            SessionMsg::Client(m) => {
                let reply = on_client(st, m).await;
                st.outbox.send(&reply)?;
            }
            SessionMsg::Closed => me.stop(None),
        }
        Ok(())
    }
}

fn on_node(st: &mut SessionState, m: FromNode) {
    let registry = &st.shared.registry;
    let node = st.node;
    let study = |id| st.shared.directory.study(id);
    match m {
        FromNode::Register(r) => {
            if r.node != node {
                tracing::warn!(
                    session = st.id,
                    "node id in Register differs from the Hello; using the Hello's"
                );
            }
            let _ = registry.cast(RegistryMsg::NodeUp {
                node,
                name: st.name.clone(),
                slots: r.slots,
                running: r.running,
                session: st.id,
                outbox: st.outbox.clone(),
            });
        }
        FromNode::RequestWork(r) => {
            let _ = registry.cast(RegistryMsg::RequestWork(node, r.slot, Instant::now()));
        }
        FromNode::Report(r) => match study(r.key.study) {
            Some(s) => {
                let _ = s.cast(StudyMsg::Report(node, r, st.outbox.clone()));
            }
            None => {
                let _ = st.outbox.send(&ToNode::Verdict(VerdictMsg {
                    key: r.key,
                    step: r.step,
                    verdict: Verdict::Stale,
                }));
            }
        },
        FromNode::Finish(f) => match study(f.key.study) {
            Some(s) => {
                let _ = s.cast(StudyMsg::Finish(node, f, st.outbox.clone()));
            }
            None => {
                let _ = st.outbox.send(&ToNode::Ack(AckMsg { key: f.key }));
            }
        },
        FromNode::Release(r) => match study(r.key.study) {
            Some(s) => {
                let _ = s.cast(StudyMsg::Release(node, r.key, st.outbox.clone()));
            }
            None => {
                let _ = st.outbox.send(&ToNode::Ack(AckMsg { key: r.key }));
            }
        },
        FromNode::Heartbeat(_) => {
            let _ = registry.cast(RegistryMsg::Beat(node));
        }
        FromNode::Draining => {
            tracing::info!(%node, name = %st.name, "node is draining");
            let _ = registry.cast(RegistryMsg::Draining(node));
        }
    }
}

const CALL_MS: u64 = 10_000;

fn not_found(name: &str) -> ToClient {
    ToClient::Error(ErrorMsg {
        kind: ErrorKind::NotFound,
        message: format!("no study named `{name}` (see `mlt-cluster status`)"),
    })
}

fn internal(e: impl std::fmt::Display) -> ToClient {
    ToClient::Error(ErrorMsg {
        kind: ErrorKind::Internal,
        message: format!("scheduler error: {e}"),
    })
}

async fn on_client(st: &mut SessionState, m: FromClient) -> ToClient {
    let shared = &st.shared;
    let lookup = |name: &str| shared.directory.find(name);
    match m {
        FromClient::Submit(s) => {
            let r = ractor::call_t!(shared.supervisor(), SupervisorMsg::CreateStudy, CALL_MS, s);
            match r {
                Ok(Ok(sub)) => ToClient::Submitted(sub),
                Ok(Err(e)) => ToClient::Error(e),
                Err(e) => internal(e),
            }
        }
        FromClient::Status => {
            let nodes =
                ractor::call_t!(shared.registry, RegistryMsg::Nodes, CALL_MS).unwrap_or_default();
            let mut studies = Vec::new();
            for actor in shared.directory.all() {
                if let Ok(s) = ractor::call_t!(actor, StudyMsg::Summary, CALL_MS) {
                    studies.push(s);
                }
            }
            studies.sort_by_key(|s| s.id);
            ToClient::Status(StatusReport {
                version: env!("CARGO_PKG_VERSION").to_string(),
                studies,
                nodes,
                metrics: shared.metrics.snapshot(),
            })
        }
        FromClient::Trials(r)
        | FromClient::Best(r)
        | FromClient::Cancel(r)
        | FromClient::Study(r)
            if lookup(&r.study).is_none() =>
        {
            not_found(&r.study)
        }
        FromClient::Trials(r) => {
            match ractor::call_t!(lookup(&r.study).expect("found"), StudyMsg::Trials, CALL_MS) {
                Ok(t) => ToClient::Trials(t),
                Err(e) => internal(e),
            }
        }
        FromClient::Best(r) => {
            match ractor::call_t!(lookup(&r.study).expect("found"), StudyMsg::Best, CALL_MS) {
                Ok(t) => ToClient::Best(t),
                Err(e) => internal(e),
            }
        }
        FromClient::Study(r) => {
            match ractor::call_t!(lookup(&r.study).expect("found"), StudyMsg::Summary, CALL_MS) {
                Ok(s) => ToClient::Study(s),
                Err(e) => internal(e),
            }
        }
        FromClient::Cancel(r) => {
            tracing::info!(study = %r.study, client = %st.name, "cancel");
            match ractor::call_t!(lookup(&r.study).expect("found"), StudyMsg::Cancel, CALL_MS) {
                Ok(s) => ToClient::Cancelled(s),
                Err(e) => internal(e),
            }
        }
    }
}
