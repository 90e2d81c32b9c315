//! The Store actor: the only writer. Writes queue in its mailbox; the first one schedules a
//! `Flush` behind everything already queued, so one durable transaction carries every write
//! that arrived meanwhile (group commit). Actions that must wait for durability (acks to nodes,
//! replies to clients) run after the commit.
use super::db::Store;
use super::schema::StoreOp;
use crate::metrics::Metrics;
use crate::store::StoreError;
use mlt_protocol::ids::StudyId;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
use std::sync::Arc;

/// Runs after the batch holding its writes is durable.
pub type AfterCommit = Box<dyn FnOnce() + Send>;

/// Messages to the Store actor.
pub enum StoreMsg {
    /// Writes, and what to do once they are durable.
    Write(Vec<StoreOp>, Option<AfterCommit>),
    /// Commit everything pending.
    Flush,
}

/// A cheap handle for sending writes.
#[derive(Clone)]
pub struct StoreHandle {
    actor: ActorRef<StoreMsg>,
    /// The store, for reads.
    pub store: Store,
}

impl StoreHandle {
    /// Queues writes; `after` runs once they are durable.
    pub fn write(&self, ops: Vec<StoreOp>, after: Option<AfterCommit>) {
        if ops.is_empty() {
            if let Some(f) = after {
                f();
            }
            return;
        }
        if let Err(e) = self.actor.cast(StoreMsg::Write(ops, after)) {
            tracing::error!("store actor is gone: {e}");
        }
    }

    /// Wraps a running store actor.
    pub fn new(actor: ActorRef<StoreMsg>, store: Store) -> Self {
        Self { actor, store }
    }
}

/// The actor.
pub struct StoreActor;

/// Its state.
pub struct StoreState {
    store: Store,
    durable: bool,
    seq: HashMap<StudyId, u64>,
    pending: Vec<StoreOp>,
    after: Vec<AfterCommit>,
    flush_scheduled: bool,
    metrics: Arc<Metrics>,
}

/// Start-up arguments.
pub struct StoreArgs {
    /// The open store.
    pub store: Store,
    /// fsync on commit.
    pub durable: bool,
    /// Next event sequence per study (from `load`).
    pub seq: HashMap<StudyId, u64>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl Actor for StoreActor {
    type Msg = StoreMsg;
    type State = StoreState;
    type Arguments = StoreArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<StoreMsg>,
        a: StoreArgs,
    ) -> Result<StoreState, ActorProcessingErr> {
        Ok(StoreState {
            store: a.store,
            durable: a.durable,
            seq: a.seq,
            pending: Vec::new(),
            after: Vec::new(),
            flush_scheduled: false,
            metrics: a.metrics,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<StoreMsg>,
        msg: StoreMsg,
        st: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StoreMsg::Write(ops, after) => {
                st.pending.extend(ops);
                st.after.extend(after);
                if !st.flush_scheduled {
                    st.flush_scheduled = true;
                    me.cast(StoreMsg::Flush)?;
                }
            }
            StoreMsg::Flush => {
                st.flush_scheduled = false;
                let ops = std::mem::take(&mut st.pending);
                let store = st.store.clone();
                let durable = st.durable;
                let seq = &mut st.seq;
                // A commit blocks on fsync: keep it off the async workers' hot loop.
                let result = tokio::task::block_in_place(|| store.apply(&ops, seq, durable));
                if let Err(e) = result {
                    // Nothing after this batch may be acknowledged: stop, and let the
                    // supervisor take the scheduler down (a restart recovers from the store).
                    let e = StoreError::Redb(format!(
                        "writing {} failed ({e}); nothing unacknowledged was kept: fix the cause (free space on a full disk) and start the scheduler again, it resumes from the last commit",
                        store.path().display()
                    ));
                    tracing::error!("{e}");
                    return Err(Box::new(e));
                }
                st.metrics
                    .commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for f in st.after.drain(..) {
                    f();
                }
            }
        }
        Ok(())
    }
}

/// Arguments for spawning the Store actor.
pub fn actor_args(
    store: Store,
    durable: bool,
    seq: HashMap<StudyId, u64>,
    metrics: Arc<Metrics>,
) -> StoreArgs {
    StoreArgs {
        store,
        durable,
        seq,
        metrics,
    }
}
