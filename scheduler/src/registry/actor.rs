//! The Registry actor: owns [`RegistryCore`], the node sessions' outboxes and the Study
//! actors' addresses; checks leases on a timer.
use super::core::RegistryCore;
use crate::metrics::Metrics;
use crate::study::StudyMsg;
use mlt_net::Outbox;
use mlt_protocol::ids::{NodeId, SlotId, StudyId, TrialKey};
use mlt_protocol::messages::{SlotInfo, StopMsg, StopReason, ToNode};
use mlt_protocol::records::NodeSummary;
use mlt_protocol::spec::ResourceSpec;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages to the Registry.
pub enum RegistryMsg {
    /// A study starts (or is restored).
    StudyAdded {
        /// Id.
        id: StudyId,
        /// Its actor.
        actor: ActorRef<StudyMsg>,
        /// What a trial needs.
        resources: ResourceSpec,
        /// Whether it has trials to hand out.
        has_work: bool,
        /// Trials running on nodes (restored after a restart).
        running: Vec<(NodeId, SlotId, TrialKey)>,
    },
    /// A study's work flag changed.
    StudyWork {
        /// Study.
        study: StudyId,
        /// Flag.
        has_work: bool,
    },
    /// A node registered on a session.
    NodeUp {
        /// Node.
        node: NodeId,
        /// Name.
        name: String,
        /// Slots.
        slots: Vec<SlotInfo>,
        /// Trials it still holds.
        running: Vec<(TrialKey, SlotId)>,
        /// Session id.
        session: u64,
        /// Session outbox.
        outbox: Outbox,
    },
    /// A node's session ended.
    NodeDown {
        /// Node.
        node: NodeId,
        /// Session id.
        session: u64,
    },
    /// Heartbeat, with the trials the node runs.
    Beat(NodeId, Vec<TrialKey>),
    /// The node takes no more work.
    Draining(NodeId),
    /// A free slot.
    RequestWork(NodeId, SlotId, Instant),
    /// A study handed a trial to a slot.
    Assigned {
        /// Study.
        study: StudyId,
        /// Node.
        node: NodeId,
        /// Slot.
        slot: SlotId,
        /// Trial.
        key: TrialKey,
    },
    /// A study had nothing for a slot.
    NoWork {
        /// Study.
        study: StudyId,
        /// Node.
        node: NodeId,
        /// Slot.
        slot: SlotId,
    },
    /// A trial ended.
    TrialEnded {
        /// Node.
        node: NodeId,
        /// Trial.
        key: TrialKey,
    },
    /// Stop these trials on their nodes (cancel).
    Stop(Vec<(NodeId, TrialKey)>),
    /// Lease check.
    Tick,
    /// Node listing.
    Nodes(RpcReplyPort<Vec<NodeSummary>>),
}

/// The actor.
pub struct RegistryActor;

/// Start-up arguments.
pub struct RegistryArgs {
    /// Lease duration.
    pub lease: Duration,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// State.
pub struct RegistryState {
    core: RegistryCore,
    studies: HashMap<StudyId, ActorRef<StudyMsg>>,
    outboxes: HashMap<NodeId, Outbox>,
    metrics: Arc<Metrics>,
}

impl RegistryState {
    fn dispatch(&mut self) {
        for ask in self.core.dispatch() {
            let (Some(actor), Some(outbox)) =
                (self.studies.get(&ask.study), self.outboxes.get(&ask.node))
            else {
                self.core
                    .no_work(ask.study, ask.node, ask.slot, ask.asked_at);
                continue;
            };
            let msg = StudyMsg::Ask {
                node: ask.node,
                slot: ask.slot,
                asked_at: ask.asked_at,
                outbox: outbox.clone(),
            };
            if actor.cast(msg).is_err() {
                self.core
                    .no_work(ask.study, ask.node, ask.slot, ask.asked_at);
            }
        }
    }

    fn stop(&self, node: NodeId, key: TrialKey, reason: StopReason) {
        if let Some(o) = self.outboxes.get(&node) {
            let _ = o.send(&ToNode::Stop(StopMsg { key, reason }));
        }
    }

    /// Acts on a node's account of its trials: what it does not run goes back to the queue,
    /// what it runs unknown to us is stopped there.
    fn reconciled(&mut self, node: NodeId, r: super::core::Reconciled) {
        for key in r.lost {
            tracing::warn!(%node, %key, "the node does not run this trial; it goes back to the queue");
            self.metrics.reconciled.fetch_add(1, Relaxed);
            if let Some(s) = self.studies.get(&key.study) {
                let _ = s.cast(StudyMsg::Lost(key));
            }
        }
        for key in r.stale {
            tracing::info!(%node, %key, "the node runs a trial the scheduler does not hold there; stopping it");
            self.stop(node, key, StopReason::Stale);
        }
    }

    fn expire(&mut self, key: TrialKey) {
        self.metrics.leases_expired.fetch_add(1, Relaxed);
        if let Some(s) = self.studies.get(&key.study) {
            let _ = s.cast(StudyMsg::Expired(key));
        }
    }
}

impl Actor for RegistryActor {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        me: ActorRef<RegistryMsg>,
        a: RegistryArgs,
    ) -> Result<RegistryState, ActorProcessingErr> {
        let period = (a.lease / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
        me.send_interval(period, || RegistryMsg::Tick);
        Ok(RegistryState {
            core: RegistryCore::new(a.lease),
            studies: HashMap::new(),
            outboxes: HashMap::new(),
            metrics: a.metrics,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        st: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::StudyAdded {
                id,
                actor,
                resources,
                has_work,
                running,
            } => {
                st.core.add_study(id, resources, has_work);
                st.studies.insert(id, actor);
                let now = Instant::now();
                for (node, slot, key) in running {
                    st.core.adopt(node, slot, key, now);
                }
            }
            RegistryMsg::StudyWork { study, has_work } => st.core.study_work(study, has_work),
            RegistryMsg::NodeUp {
                node,
                name,
                slots,
                running,
                session,
                outbox,
            } => {
                tracing::info!(%node, %name, slots = slots.len(), holding = running.len(), "node registered");
                let r = st
                    .core
                    .node_up(node, name, slots, &running, session, Instant::now());
                st.outboxes.insert(node, outbox);
                st.reconciled(node, r);
            }
            RegistryMsg::NodeDown { node, session } => {
                st.core.node_down(node, session);
                if st.core.nodes.get(&node).is_none_or(|n| n.session == 0) {
                    st.outboxes.remove(&node);
                }
            }
            RegistryMsg::Beat(node, running) => {
                let r = st.core.beat(node, &running, Instant::now());
                st.reconciled(node, r);
            }
            RegistryMsg::Draining(node) => st.core.drain(node),
            RegistryMsg::RequestWork(node, slot, at) => st.core.request(node, slot, at),
            RegistryMsg::Assigned {
                study,
                node,
                slot,
                key,
            } => {
                if !st.core.assigned(study, node, slot, key) {
                    st.expire(key);
                }
            }
            RegistryMsg::NoWork { study, node, slot } => {
                st.core.no_work(study, node, slot, Instant::now())
            }
            RegistryMsg::TrialEnded { node, key } => st.core.ended(node, key),
            RegistryMsg::Stop(list) => {
                for (node, key) in list {
                    st.stop(node, key, StopReason::Cancelled);
                    st.core.ended(node, key);
                }
            }
            RegistryMsg::Tick => {
                for key in st.core.expire(Instant::now()) {
                    tracing::warn!(%key, "lease expired; trial goes back to the queue");
                    st.expire(key);
                }
                let live: Vec<NodeId> = st
                    .outboxes
                    .keys()
                    .copied()
                    .filter(|n| !st.core.nodes.contains_key(n))
                    .collect();
                for n in live {
                    st.outboxes.remove(&n);
                }
            }
            RegistryMsg::Nodes(reply) => {
                let _ = reply.send(st.core.summaries(Instant::now()));
            }
        }
        st.dispatch();
        Ok(())
    }
}
