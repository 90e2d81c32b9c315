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
use mlt_protocol::records::{DatasetInfo, StatusReport};
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
    upload: Option<Upload>,
}

/// A dataset upload in progress on this connection.
struct Upload {
    sha256: String,
    name: String,
    total: u64,
    received: u64,
    hasher: sha2::Sha256,
}

/// The largest dataset a client may upload.
pub const MAX_DATASET_BYTES: u64 = 16 << 30;

/// Blocks in PBO's combinatorially symmetric cross-validation (Bailey et al. use 16).
pub const PBO_BLOCKS: u32 = 16;

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
            upload: None,
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
        FromNode::FetchDataset(f) => {
            let reply = dataset_chunk(&st.shared.store, &f);
            if reply.total == 0 {
                tracing::warn!(%node, sha256 = %f.sha256, offset = f.offset, "node asked for a dataset chunk this scheduler does not hold");
            }
            let _ = st.outbox.send(&ToNode::DatasetChunk(reply));
        }
    }
}

/// The chunk a node asked for, or an empty answer with `total` 0.
fn dataset_chunk(store: &crate::store::Store, f: &FetchDatasetMsg) -> DatasetChunkMsg {
    let none = DatasetChunkMsg {
        sha256: f.sha256.clone(),
        total: 0,
        offset: f.offset,
        bytes: Vec::new(),
    };
    let chunk = DATASET_CHUNK as u64;
    let Ok(Some(info)) = store.dataset(&f.sha256) else {
        return none;
    };
    if !f.offset.is_multiple_of(chunk) || f.offset >= info.bytes.max(1) {
        return none;
    }
    match store.dataset_chunk(&f.sha256, f.offset / chunk) {
        Ok(Some(bytes)) => DatasetChunkMsg {
            total: info.bytes,
            bytes,
            ..none
        },
        _ => none,
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn invalid(message: String) -> ToClient {
    ToClient::Error(ErrorMsg {
        kind: ErrorKind::InvalidSpec,
        message,
    })
}

/// One chunk of an upload: chunks arrive in order, each DATASET_CHUNK long but the last; the
/// last one is checked against the announced SHA-256 before the dataset is marked complete.
fn put_dataset(st: &mut SessionState, p: PutDatasetMsg) -> ToClient {
    use sha2::Digest;
    let chunk = DATASET_CHUNK as u64;
    if !is_sha256(&p.sha256) {
        return invalid("dataset upload: the SHA-256 must be 64 lower-case hex digits".into());
    }
    if p.total > MAX_DATASET_BYTES {
        return invalid(format!(
            "dataset `{}` is {} bytes; the limit is {MAX_DATASET_BYTES}",
            p.name, p.total
        ));
    }
    if p.offset == 0 {
        st.upload = Some(Upload {
            sha256: p.sha256.clone(),
            name: p
                .name
                .chars()
                .filter(|c| !c.is_control())
                .take(255)
                .collect(),
            total: p.total,
            received: 0,
            hasher: sha2::Sha256::new(),
        });
    }
    let Some(up) = st.upload.as_mut().filter(|u| u.sha256 == p.sha256) else {
        return invalid(format!(
            "dataset `{}`: chunk at {} without an upload started at 0",
            p.name, p.offset
        ));
    };
    let expected_len = (up.total - up.received).min(chunk);
    if p.offset != up.received || p.total != up.total || p.bytes.len() as u64 != expected_len {
        let msg = format!(
            "dataset `{}`: chunk at {} of {} bytes does not follow the {} bytes received (expected {expected_len} bytes)",
            up.name, p.offset, p.bytes.len(), up.received
        );
        st.upload = None;
        return invalid(msg);
    }
    if let Err(e) = st
        .shared
        .store
        .put_chunk(&up.sha256, up.received / chunk, &p.bytes)
    {
        st.upload = None;
        return internal(e);
    }
    up.hasher.update(&p.bytes);
    up.received += p.bytes.len() as u64;
    if up.received < up.total {
        return ToClient::DatasetProgress(up.received);
    }
    let up = st.upload.take().expect("checked above");
    let digest = hex::encode(up.hasher.finalize());
    if digest != up.sha256 {
        let _ = st.shared.store.finish_dataset(&up.sha256, None);
        return invalid(format!(
            "dataset `{}`: its contents hash to {digest}, not the announced {}",
            up.name, up.sha256
        ));
    }
    let info = DatasetInfo {
        sha256: up.sha256,
        name: up.name,
        bytes: up.total,
    };
    match st.shared.store.finish_dataset(&info.sha256, Some(&info)) {
        Ok(()) => {
            tracing::info!(name = %info.name, sha256 = %info.sha256, bytes = info.bytes, client = %st.name, "dataset stored");
            ToClient::Dataset(Some(info))
        }
        Err(e) => internal(e),
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
        FromClient::HasDataset(sha) => match shared.store.dataset(&sha) {
            Ok(d) => ToClient::Dataset(d),
            Err(e) => internal(e),
        },
        FromClient::PutDataset(p) => put_dataset(st, p),
        FromClient::Trials(r)
        | FromClient::Best(r)
        | FromClient::Cancel(r)
        | FromClient::Study(r)
        | FromClient::Overfitting(r)
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
        FromClient::StudySpec(r) if lookup(&r.study).is_none() => not_found(&r.study),
        FromClient::StudySpec(r) => {
            let actor = lookup(&r.study).expect("found");
            match ractor::call_t!(actor, StudyMsg::Summary, CALL_MS) {
                Ok(summary) => match shared.store.study(summary.id) {
                    Ok(Some(row)) => ToClient::StudySpec(SubmitMsg {
                        spec_toml: row.spec_toml,
                        source: row.source,
                        workdir: row.workdir,
                    }),
                    Ok(None) => not_found(&r.study),
                    Err(e) => internal(e),
                },
                Err(e) => internal(e),
            }
        }
        FromClient::Artifact(r) if lookup(&r.study).is_none() => not_found(&r.study),
        FromClient::Artifact(r) => {
            let actor = lookup(&r.study).expect("found");
            match ractor::call_t!(actor, StudyMsg::Summary, CALL_MS) {
                Ok(summary) => match shared
                    .store
                    .artifact(summary.id, mlt_protocol::ids::TrialId(r.trial))
                {
                    Ok(a) => ToClient::Artifact(a.map(Box::new)),
                    Err(e) => internal(e),
                },
                Err(e) => internal(e),
            }
        }
        FromClient::Overfitting(r) => {
            let actor = lookup(&r.study).expect("found");
            match ractor::call_t!(actor, StudyMsg::Summary, CALL_MS) {
                Ok(summary) => {
                    let store = shared.store.clone();
                    let job = tokio::task::spawn_blocking(move || {
                        store
                            .returns(summary.id)
                            .map(|r| crate::stats::study_pbo(&r, PBO_BLOCKS))
                    });
                    match job.await {
                        Ok(Ok(report)) => ToClient::Overfitting(report),
                        Ok(Err(e)) => internal(e),
                        Err(e) => internal(e),
                    }
                }
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
