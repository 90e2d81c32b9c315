//! The Session actor: one per accepted connection. A reader task decodes frames and posts
//! them here; a frame that does not decode closes the connection (the scheduler goes on).
use super::close;
use crate::registry::RegistryMsg;
use crate::study::StudyMsg;
use crate::supervisor::{Shared, SupervisorMsg};
use mlt_net::frames::{FrameReader, NetError};
use mlt_net::Outbox;
use mlt_protocol::codec;
use mlt_protocol::handshake::{Hello, Role};
use mlt_protocol::ids::{NodeId, StudyId};
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
    /// Uploads started on this connection (they name their staging keys).
    uploads: u64,
}

/// A dataset upload in progress on this connection.
struct Upload {
    sha256: String,
    /// Where its chunks wait until their hash is checked: `sha@session-n`.
    staging: String,
    name: String,
    total: u64,
    received: u64,
    hasher: sha2::Sha256,
}

/// The largest dataset a client may upload.
pub const MAX_DATASET_BYTES: u64 = 16 << 30;

/// The most trials in one page of `trials`.
pub const MAX_PAGE: u32 = 2000;

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
            uploads: 0,
        })
    }

    async fn post_stop(
        &self,
        _me: ActorRef<SessionMsg>,
        st: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        st.reader.abort();
        st.conn.close(0u32.into(), b"session ended");
        // An upload the client abandoned leaves nothing behind.
        if let Some(up) = st.upload.take() {
            let _ = st.shared.store.finish_upload(&up.staging, None);
        }
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

/// Where a node's frame goes: the Registry, a Study (`S`: its handle), straight back to the
/// node (for a study this scheduler does not run), or the store (a dataset chunk).
pub(crate) enum Route<S> {
    /// To the Registry.
    Registry(RegistryMsg),
    /// To a Study.
    Study(S, StudyMsg),
    /// Answered at once.
    Reply(ToNode),
    /// A chunk of a stored dataset.
    Fetch(FetchDatasetMsg),
}

/// Who is on the other end of a node session.
pub(crate) struct Peer<'a> {
    /// The node's id from its Hello (the one that counts).
    pub node: NodeId,
    /// Its name.
    pub name: &'a str,
    /// The session's id.
    pub session: u64,
    /// Where answers to it go.
    pub outbox: &'a Outbox,
}

/// The route of a node's frame; `study` finds a running study's handle.
pub(crate) fn route<S>(peer: &Peer, m: FromNode, study: impl Fn(StudyId) -> Option<S>) -> Route<S> {
    let node = peer.node;
    let out = || peer.outbox.clone();
    match m {
        FromNode::Register(r) => {
            if r.node != node {
                tracing::warn!(
                    session = peer.session,
                    "node id in Register differs from the Hello; using the Hello's"
                );
            }
            Route::Registry(RegistryMsg::NodeUp {
                node,
                name: peer.name.to_string(),
                slots: r.slots,
                running: r.running,
                session: peer.session,
                outbox: out(),
            })
        }
        FromNode::RequestWork(r) => {
            Route::Registry(RegistryMsg::RequestWork(node, r.slot, Instant::now()))
        }
        FromNode::Report(r) => match study(r.key.study) {
            Some(s) => Route::Study(s, StudyMsg::Report(node, r, out())),
            None => Route::Reply(ToNode::Verdict(VerdictMsg {
                key: r.key,
                step: r.step,
                verdict: Verdict::Stale,
            })),
        },
        FromNode::Finish(f) => match study(f.key.study) {
            Some(s) => Route::Study(s, StudyMsg::Finish(node, f, out())),
            None => Route::Reply(ToNode::Ack(AckMsg { key: f.key })),
        },
        FromNode::Release(r) => match study(r.key.study) {
            Some(s) => Route::Study(s, StudyMsg::Release(node, r.key, out())),
            None => Route::Reply(ToNode::Ack(AckMsg { key: r.key })),
        },
        FromNode::Heartbeat(h) => Route::Registry(RegistryMsg::Beat(node, h.running)),
        FromNode::Draining => {
            tracing::info!(%node, name = %peer.name, "node is draining");
            Route::Registry(RegistryMsg::Draining(node))
        }
        FromNode::FetchDataset(f) => Route::Fetch(f),
    }
}

fn on_node(st: &mut SessionState, m: FromNode) {
    let peer = Peer {
        node: st.node,
        name: &st.name,
        session: st.id,
        outbox: &st.outbox,
    };
    match route(&peer, m, |id| st.shared.directory.study(id)) {
        Route::Registry(m) => {
            let _ = st.shared.registry.cast(m);
        }
        Route::Study(s, m) => {
            let _ = s.cast(m);
        }
        Route::Reply(m) => {
            let _ = st.outbox.send(&m);
        }
        Route::Fetch(f) => {
            let reply = dataset_chunk(&st.shared.store, &f);
            if reply.total == 0 {
                tracing::warn!(node = %st.node, sha256 = %f.sha256, offset = f.offset, "node asked for a dataset chunk this scheduler does not hold");
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
        // Content the scheduler holds complete is never uploaded (nor overwritten) again.
        match st.shared.store.dataset(&p.sha256) {
            Ok(Some(info)) => return ToClient::Dataset(Some(info)),
            Ok(None) => {}
            Err(e) => return internal(e),
        }
        // A new upload replaces one left unfinished on this connection.
        if let Some(old) = st.upload.take() {
            let _ = st.shared.store.finish_upload(&old.staging, None);
        }
        st.uploads += 1;
        st.upload = Some(Upload {
            staging: format!("{}@{}-{}", p.sha256, st.id, st.uploads),
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
        let staging = up.staging.clone();
        st.upload = None;
        let _ = st.shared.store.finish_upload(&staging, None);
        return invalid(msg);
    }
    if let Err(e) = st
        .shared
        .store
        .put_chunk(&up.staging, up.received / chunk, &p.bytes)
    {
        let staging = up.staging.clone();
        st.upload = None;
        let _ = st.shared.store.finish_upload(&staging, None);
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
        let _ = st.shared.store.finish_upload(&up.staging, None);
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
    match st.shared.store.finish_upload(&up.staging, Some(&info)) {
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
        FromClient::Backup(path) => {
            tracing::info!(client = %st.name, %path, "backup");
            let store = shared.store.clone();
            let out = std::path::PathBuf::from(path);
            match tokio::task::spawn_blocking(move || store.backup_to(&out)).await {
                Ok(Ok(r)) => ToClient::Backup(r),
                Ok(Err(e)) => internal(e),
                Err(e) => internal(e),
            }
        }
        FromClient::Trials(p) if lookup(&p.study).is_none() => not_found(&p.study),
        FromClient::Best(r)
        | FromClient::Cancel(r)
        | FromClient::Study(r)
        | FromClient::Overfitting(r)
        | FromClient::Ledger(r)
            if lookup(&r.study).is_none() =>
        {
            not_found(&r.study)
        }
        FromClient::Trials(p) => {
            let actor = lookup(&p.study).expect("found");
            // Half a frame: the page and its envelope always fit.
            let bytes = shared.config.max_frame / 2;
            let (from, limit) = (p.from, p.limit.min(MAX_PAGE));
            match ractor::call_t!(
                actor,
                |reply| StudyMsg::TrialPage {
                    from,
                    limit,
                    bytes,
                    reply
                },
                CALL_MS
            ) {
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
                        notes: Vec::new(),
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
        FromClient::Daily(r) if lookup(&r.study).is_none() => not_found(&r.study),
        FromClient::Daily(r) => {
            let actor = lookup(&r.study).expect("found");
            match ractor::call_t!(actor, StudyMsg::Summary, CALL_MS) {
                Ok(summary) => match shared
                    .store
                    .daily(summary.id, mlt_protocol::ids::TrialId(r.trial))
                {
                    Ok(d) => ToClient::Daily(d.map(Box::new)),
                    Err(e) => internal(e),
                },
                Err(e) => internal(e),
            }
        }
        FromClient::Registry(req) => {
            tracing::info!(client = %st.name, request = registry_what(&req), "registry");
            let by = st.name.clone();
            match ractor::call_t!(
                shared.models,
                |reply| crate::models::ModelsMsg::Request(req, by, reply),
                CALL_MS
            ) {
                Ok(Ok(r)) => ToClient::Registry(r),
                Ok(Err(message)) => ToClient::Error(ErrorMsg {
                    kind: ErrorKind::BadRequest,
                    message,
                }),
                Err(e) => internal(e),
            }
        }
        FromClient::Serving(req) => {
            let by = st.name.clone();
            match ractor::call_t!(
                shared.models,
                |reply| crate::models::ModelsMsg::Serving(req, by, reply),
                CALL_MS
            ) {
                Ok(Ok(r)) => ToClient::Serving(r),
                Ok(Err(message)) => ToClient::Error(ErrorMsg {
                    kind: ErrorKind::BadRequest,
                    message,
                }),
                Err(e) => internal(e),
            }
        }
        FromClient::Lineage(r) => match lookup(&r.study) {
            None => not_found(&r.study),
            Some(actor) => match ractor::call_t!(actor, StudyMsg::Summary, CALL_MS) {
                Ok(summary) => match shared
                    .store
                    .run(summary.id, mlt_protocol::ids::TrialId(r.trial))
                {
                    Ok(d) => ToClient::Lineage(d.map(Box::new)),
                    Err(e) => internal(e),
                },
                Err(e) => internal(e),
            },
        },
        FromClient::Ledger(r) => {
            let actor = lookup(&r.study).expect("found");
            match ractor::call_t!(actor, StudyMsg::Summary, CALL_MS) {
                Ok(summary) => match shared.store.ledger(summary.id) {
                    Ok(l) => ToClient::Ledger(l),
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
                            .map(|r| mlt_eval::selection::study_pbo(&r, PBO_BLOCKS))
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
        FromClient::Annotate(m) => match lookup(&m.study) {
            None => not_found(&m.study),
            Some(actor) => {
                tracing::info!(study = %m.study, trial = ?m.trial, client = %st.name, "annotate");
                let by = st.name.clone();
                match ractor::call_t!(actor, |reply| StudyMsg::Annotate(m, by, reply), CALL_MS) {
                    Ok(Ok(a)) => ToClient::Annotations(a),
                    Ok(Err(message)) => ToClient::Error(ErrorMsg {
                        kind: ErrorKind::BadRequest,
                        message,
                    }),
                    Err(e) => internal(e),
                }
            }
        },
        FromClient::Annotations(r) => match lookup(&r.study) {
            None => not_found(&r.study),
            Some(actor) => match ractor::call_t!(actor, StudyMsg::Annotations, CALL_MS) {
                Ok(a) => ToClient::Annotations(a),
                Err(e) => internal(e),
            },
        },
        FromClient::Cancel(r) => {
            tracing::info!(study = %r.study, client = %st.name, "cancel");
            match ractor::call_t!(lookup(&r.study).expect("found"), StudyMsg::Cancel, CALL_MS) {
                Ok(s) => ToClient::Cancelled(s),
                Err(e) => internal(e),
            }
        }
    }
}

/// A registry request's kind, for the log.
fn registry_what(r: &mlt_protocol::models::RegistryRequest) -> &'static str {
    use mlt_protocol::models::RegistryRequest as R;
    match r {
        R::Register(..) => "register",
        R::Stage { .. } => "stage",
        R::Rollback { .. } => "rollback",
        R::Gates { .. } => "gates",
        R::List => "list",
        R::Show { .. } => "show",
        R::History(_) => "history",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::ids::{SlotId, TrialId, TrialKey};

    fn key(study: u64) -> TrialKey {
        TrialKey {
            study: StudyId(study),
            trial: TrialId(3),
            attempt: 1,
        }
    }

    /// Routes `m` from node 7 on a scheduler that runs study 1 only.
    fn routed(m: FromNode) -> Route<StudyId> {
        let (outbox, _frames) = Outbox::detached(1 << 20);
        let peer = Peer {
            node: NodeId(7),
            name: "n7",
            session: 11,
            outbox: &outbox,
        };
        route(&peer, m, |id| (id == StudyId(1)).then_some(id))
    }

    #[test]
    fn a_node_registers_under_its_hello_id_and_its_beats_reach_the_registry() {
        let r = routed(FromNode::Register(RegisterMsg {
            node: NodeId(99),
            slots: vec![SlotInfo {
                slot: SlotId(0),
                cpus: 2,
                gpus: vec![1],
            }],
            running: vec![(key(1), SlotId(0))],
        }));
        let Route::Registry(RegistryMsg::NodeUp {
            node,
            name,
            slots,
            running,
            session,
            ..
        }) = r
        else {
            panic!("not a NodeUp")
        };
        assert_eq!((node, name.as_str(), session), (NodeId(7), "n7", 11));
        assert_eq!((slots.len(), running), (1, vec![(key(1), SlotId(0))]));
        let beat = routed(FromNode::Heartbeat(HeartbeatMsg {
            running: vec![key(1)],
        }));
        // The node's account of its trials reaches the registry with the beat.
        assert!(matches!(
            beat,
            Route::Registry(RegistryMsg::Beat(NodeId(7), ref held)) if *held == vec![key(1)]
        ));
        let ask = routed(FromNode::RequestWork(RequestWorkMsg { slot: SlotId(2) }));
        assert!(matches!(
            ask,
            Route::Registry(RegistryMsg::RequestWork(NodeId(7), SlotId(2), _))
        ));
        let drain = routed(FromNode::Draining);
        assert!(matches!(
            drain,
            Route::Registry(RegistryMsg::Draining(NodeId(7)))
        ));
    }

    #[test]
    fn results_reach_their_study_and_are_answered_at_once_for_an_unknown_one() {
        let report = |study| {
            FromNode::Report(ReportMsg {
                key: key(study),
                step: 2,
                values: vec![1.0],
            })
        };
        assert!(matches!(
            routed(report(1)),
            Route::Study(StudyId(1), StudyMsg::Report(NodeId(7), _, _))
        ));
        let Route::Reply(ToNode::Verdict(v)) = routed(report(5)) else {
            panic!("an unknown study's report is answered")
        };
        assert_eq!((v.key, v.step, v.verdict), (key(5), 2, Verdict::Stale));
        let finish = |study| {
            FromNode::Finish(FinishMsg {
                key: key(study),
                outcome: Outcome::Pruned,
                run: None,
            })
        };
        assert!(matches!(
            routed(finish(1)),
            Route::Study(StudyId(1), StudyMsg::Finish(NodeId(7), _, _))
        ));
        let Route::Reply(ToNode::Ack(a)) = routed(finish(5)) else {
            panic!("an unknown study's result is acknowledged, or the node keeps it for ever")
        };
        assert_eq!(a.key, key(5));
        let release = |study| FromNode::Release(ReleaseMsg { key: key(study) });
        assert!(matches!(
            routed(release(1)),
            Route::Study(StudyId(1), StudyMsg::Release(NodeId(7), _, _))
        ));
        assert!(matches!(routed(release(5)), Route::Reply(ToNode::Ack(_))));
        let fetch = FromNode::FetchDataset(FetchDatasetMsg {
            sha256: "ab".into(),
            offset: 0,
        });
        assert!(matches!(routed(fetch), Route::Fetch(f) if f.sha256 == "ab"));
    }
}
