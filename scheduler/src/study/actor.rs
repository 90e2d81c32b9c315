//! The Study actor: one per study. It owns the [`StudyCore`], writes through the Store and
//! answers nodes only once what it answers about is durable (acks) or when durability does
//! not matter for correctness (pruning verdicts, whose state change is queued before them).
use super::core::{FinishResult, StudyCore};
use crate::metrics::Metrics;
use crate::now_ms;
use crate::registry::RegistryMsg;
use crate::store::StoreHandle;
use mlt_net::Outbox;
use mlt_protocol::ids::{NodeId, SlotId, TrialKey};
use mlt_protocol::messages::{
    AckMsg, AssignMsg, FinishMsg, ReportMsg, RunKind, ToNode, Verdict, VerdictMsg,
};
use mlt_protocol::records::{StudySummary, TrialRecord};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Messages to a Study.
pub enum StudyMsg {
    /// The registry offers a free slot.
    Ask {
        /// Node.
        node: NodeId,
        /// Slot.
        slot: SlotId,
        /// When the slot asked (for the latency figure).
        asked_at: Instant,
        /// The node's session.
        outbox: Outbox,
    },
    /// An intermediate value from a node.
    Report(NodeId, ReportMsg, Outbox),
    /// A trial ended on a node.
    Finish(NodeId, FinishMsg, Outbox),
    /// A draining node hands a trial back.
    Release(NodeId, TrialKey, Outbox),
    /// The registry saw the trial's lease expire.
    Expired(TrialKey),
    /// The trial's node does not run it (its own account, at registration or in heartbeats).
    Lost(TrialKey),
    /// Cancel the study.
    Cancel(RpcReplyPort<StudySummary>),
    /// Summary.
    Summary(RpcReplyPort<StudySummary>),
    /// All trials.
    Trials(RpcReplyPort<Vec<TrialRecord>>),
    /// Trials numbered `from` on, at most `limit`, and at most about `bytes` encoded.
    TrialPage {
        /// First number.
        from: u64,
        /// Most trials.
        limit: u32,
        /// Most bytes (postcard), the first trial always included.
        bytes: usize,
        /// The page.
        reply: RpcReplyPort<Vec<TrialRecord>>,
    },
    /// Best trials.
    Best(RpcReplyPort<Vec<TrialRecord>>),
    /// Set or remove tags, add a note (from the named client); answered once durable.
    Annotate(
        mlt_protocol::catalog::AnnotateMsg,
        String,
        RpcReplyPort<Result<mlt_protocol::catalog::Annotations, String>>,
    ),
    /// Tags and notes.
    Annotations(RpcReplyPort<mlt_protocol::catalog::Annotations>),
}

/// The actor.
pub struct StudyActor;

/// Start-up arguments and state.
pub struct StudyArgs {
    /// The study.
    pub core: StudyCore,
    /// Writes.
    pub store: StoreHandle,
    /// The registry.
    pub registry: ActorRef<RegistryMsg>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Frame size limit.
    pub max_frame: usize,
}

/// The actor's state.
pub struct StudyState {
    a: StudyArgs,
    told_has_work: bool,
}

impl StudyState {
    fn tell_work(&mut self) {
        let has = self.a.core.has_work();
        if has != self.told_has_work {
            self.told_has_work = has;
            let _ = self.a.registry.cast(RegistryMsg::StudyWork {
                study: self.a.core.id(),
                has_work: has,
            });
        }
    }

    fn ended(&self, node: NodeId, key: TrialKey) {
        let _ = self.a.registry.cast(RegistryMsg::TrialEnded { node, key });
    }
}

impl Actor for StudyActor {
    type Msg = StudyMsg;
    type State = StudyState;
    type Arguments = StudyArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<StudyMsg>,
        a: StudyArgs,
    ) -> Result<StudyState, ActorProcessingErr> {
        let has = a.core.has_work();
        Ok(StudyState {
            a,
            told_has_work: has,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<StudyMsg>,
        msg: StudyMsg,
        st: &mut StudyState,
    ) -> Result<(), ActorProcessingErr> {
        let now = now_ms();
        let mut ops = Vec::new();
        match msg {
            StudyMsg::Ask {
                node,
                slot,
                asked_at,
                outbox,
            } => {
                let study = st.a.core.id();
                // A model fit can take long (GP: O(n³)); keep it off the async workers' backs.
                let asked = if st.a.core.sampling_is_slow() {
                    tokio::task::block_in_place(|| st.a.core.ask(node, slot, now, &mut ops))
                } else {
                    st.a.core.ask(node, slot, now, &mut ops)
                };
                match asked {
                    None => {
                        let _ =
                            st.a.registry
                                .cast(RegistryMsg::NoWork { study, node, slot });
                        st.told_has_work = false;
                    }
                    Some(key) => {
                        let t = &st.a.core.trials[key.trial.0 as usize];
                        let objective = st.a.core.spec.objective.clone();
                        let run = match t.origin {
                            mlt_protocol::records::TrialOrigin::Holdout(source) => {
                                RunKind::Holdout { source }
                            }
                            _ => RunKind::Search,
                        };
                        let assign = ToNode::Assign(AssignMsg {
                            key,
                            slot,
                            study_name: st.a.core.row.name.clone(),
                            params: t.params.clone(),
                            objective,
                            workdir: st.a.core.row.workdir.clone(),
                            run,
                        });
                        let frame = mlt_protocol::codec::encode(&assign, st.a.max_frame)?;
                        let metrics = st.a.metrics.clone();
                        // The trial is durable before the node hears of it: after a crash the
                        // node's reports always find their trial.
                        st.a.store.write(
                            ops,
                            Some(Box::new(move || {
                                outbox.send_frame(frame);
                                metrics.record_assign(asked_at.elapsed());
                            })),
                        );
                        let _ = st.a.registry.cast(RegistryMsg::Assigned {
                            study,
                            node,
                            slot,
                            key,
                        });
                        st.tell_work();
                    }
                }
                return Ok(());
            }
            StudyMsg::Report(node, r, outbox) => {
                let verdict =
                    st.a.core
                        .report(node, r.key, r.step, r.values, now, &mut ops);
                match verdict {
                    Verdict::Stale => {
                        st.a.metrics.stale.fetch_add(1, Relaxed);
                    }
                    Verdict::Prune => st.ended(node, r.key),
                    Verdict::Continue => {}
                }
                st.a.store.write(ops, None);
                outbox.send(&ToNode::Verdict(VerdictMsg {
                    key: r.key,
                    step: r.step,
                    verdict,
                }))?;
            }
            StudyMsg::Finish(node, f, outbox) => {
                let key = f.key;
                // The lineage of the trial's current attempt, also when the trial had already
                // ended (a prune verdict ends it before the node's last word).
                let current = st.a.core.trials.get(key.trial.0 as usize).is_some_and(|t| {
                    t.attempt == key.attempt && (t.node == Some(node) || t.state.is_finished())
                });
                if let (Some(run), true) = (f.run, current) {
                    ops.push(crate::store::StoreOp::Run(key.study, key.trial, run));
                }
                match st.a.core.finish(node, key, f.outcome, now, &mut ops) {
                    FinishResult::Recorded => {
                        st.a.metrics.finished.fetch_add(1, Relaxed);
                        st.ended(node, key);
                    }
                    FinishResult::Ignored => {
                        st.a.metrics.stale.fetch_add(1, Relaxed);
                    }
                }
                let ack =
                    mlt_protocol::codec::encode(&ToNode::Ack(AckMsg { key }), st.a.max_frame)?;
                st.a.store
                    .write(ops, Some(Box::new(move || outbox.send_frame(ack))));
            }
            StudyMsg::Release(node, key, outbox) => {
                if st
                    .a
                    .core
                    .requeue(key, "handed back by a draining node", now, &mut ops)
                {
                    st.ended(node, key);
                }
                let ack =
                    mlt_protocol::codec::encode(&ToNode::Ack(AckMsg { key }), st.a.max_frame)?;
                st.a.store
                    .write(ops, Some(Box::new(move || outbox.send_frame(ack))));
            }
            StudyMsg::Expired(key) => {
                st.a.core
                    .requeue(key, "node lost (lease expired)", now, &mut ops);
                st.a.store.write(ops, None);
            }
            StudyMsg::Lost(key) => {
                st.a.core.requeue(
                    key,
                    "not running on its node (the assignment never reached it)",
                    now,
                    &mut ops,
                );
                st.a.store.write(ops, None);
            }
            StudyMsg::Cancel(reply) => {
                let stopped = st.a.core.cancel(now, &mut ops);
                let _ = st.a.registry.cast(RegistryMsg::Stop(stopped));
                let summary = st.a.core.summary();
                st.a.store
                    .write(ops, Some(Box::new(move || drop(reply.send(summary)))));
            }
            StudyMsg::Summary(reply) => {
                let _ = reply.send(st.a.core.summary());
            }
            StudyMsg::TrialPage {
                from,
                limit,
                bytes,
                reply,
            } => {
                let mut page = Vec::new();
                let mut size = 0;
                for t in
                    st.a.core
                        .trials
                        .iter()
                        .skip(from as usize)
                        .take(limit as usize)
                {
                    let n = postcard::experimental::serialized_size(t).unwrap_or(0);
                    if !page.is_empty() && size + n > bytes {
                        break;
                    }
                    size += n;
                    page.push(t.clone());
                }
                let _ = reply.send(page);
            }
            StudyMsg::Trials(reply) => {
                let _ = reply.send(st.a.core.trials.clone());
            }
            StudyMsg::Best(reply) => {
                let _ = reply.send(st.a.core.best());
            }
            StudyMsg::Annotate(m, by, reply) => match st.a.core.annotate(&m, &by, now, &mut ops) {
                Ok(a) => {
                    let a = a.clone();
                    st.a.store
                        .write(ops, Some(Box::new(move || drop(reply.send(Ok(a))))));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            StudyMsg::Annotations(reply) => {
                let _ = reply.send(st.a.core.annotations.clone());
            }
        }
        st.tell_work();
        Ok(())
    }
}
