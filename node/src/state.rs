//! The node's state machine: what it does with each frame from the scheduler and each event
//! from its workers, as plain functions over [`State`], an [`Outbox`] and the [`Slots`] that
//! run trials. The loops in `node.rs` drive it; the tests below drive it without sockets.
use crate::config::NodeConfig;
use crate::datasets::{Cache, Fetch, Progress};
use crate::objective::StopFlag;
use mlt_protocol::ids::{NodeId, SlotId, TrialKey};
use mlt_protocol::messages::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tokio::time::Instant;

/// Where the node's messages go: the connection's outbox, or a test's recorder.
pub trait Outbox {
    /// Queues one message for the scheduler.
    fn send(&self, msg: &FromNode);
}

impl Outbox for mlt_net::Outbox {
    fn send(&self, msg: &FromNode) {
        if let Err(e) = mlt_net::Outbox::send(self, msg) {
            tracing::error!("cannot encode a message: {e}");
        }
    }
}

/// The worker slots: they run the trials the node starts.
pub trait Slots: Send {
    /// How many slots there are (numbered from 0).
    fn count(&self) -> usize;
    /// Runs `assign` on `slot`; it stops when `stop` is raised.
    fn run(&self, slot: SlotId, assign: AssignMsg, stop: StopFlag);
    /// Stops the slots (the node is exiting).
    fn stop(&self) {}
}

/// Events from workers to the node loop.
pub enum NodeEvent {
    /// An intermediate value; the verdict goes back on `reply`.
    Report {
        /// Trial.
        key: TrialKey,
        /// Step.
        step: u64,
        /// Values.
        values: Vec<f64>,
        /// Where the verdict goes.
        reply: std::sync::mpsc::SyncSender<Verdict>,
    },
    /// A trial ended.
    Done {
        /// Trial.
        key: TrialKey,
        /// Slot it ran on.
        slot: SlotId,
        /// Outcome.
        outcome: Outcome,
        /// Where and how it ran.
        run: Option<Box<mlt_protocol::lineage::RunRecord>>,
    },
}

/// What the node knows between frames: its slots and the trials on them, results the
/// scheduler has not acknowledged, datasets being fetched and the trials waiting for them.
pub(crate) struct State {
    pub(crate) id: NodeId,
    pub(crate) cfg: NodeConfig,
    pub(crate) workers: Box<dyn Slots>,
    pub(crate) free: BTreeSet<SlotId>,
    pub(crate) running: HashMap<TrialKey, (SlotId, StopFlag)>,
    pub(crate) verdicts: HashMap<TrialKey, std::sync::mpsc::SyncSender<Verdict>>,
    pub(crate) unacked: BTreeMap<TrialKey, FromNode>,
    pub(crate) draining: Option<Instant>,
    pub(crate) released: bool,
    pub(crate) cache: Cache,
    pub(crate) fetches: HashMap<String, Fetch>,
    /// Assigned trials waiting for datasets (the hashes still missing).
    pub(crate) parked: Vec<(Box<AssignMsg>, Vec<String>)>,
}

impl State {
    /// A node's state before its first connection: every slot free, nothing running.
    pub(crate) fn new(id: NodeId, cfg: NodeConfig, workers: Box<dyn Slots>) -> Self {
        let free = cfg.slots.iter().map(|s| s.slot).collect();
        let cache = Cache::new(cfg.cache_dir.clone());
        State {
            id,
            cfg,
            workers,
            free,
            running: HashMap::new(),
            verdicts: HashMap::new(),
            unacked: BTreeMap::new(),
            draining: None,
            released: false,
            cache,
            fetches: HashMap::new(),
            parked: Vec::new(),
        }
    }

    /// A connection is up: register with the trials this node still holds (running, or
    /// finished and unacknowledged), send the unacknowledged results again, resume cut-off
    /// dataset fetches, then ask for work for every free slot (or say it is draining).
    pub(crate) fn on_connected(&self, out: &dyn Outbox) {
        let mut held: Vec<(TrialKey, SlotId)> =
            self.running.iter().map(|(k, (s, _))| (*k, *s)).collect();
        held.extend(self.unacked.keys().map(|k| (*k, SlotId(u32::MAX))));
        out.send(&FromNode::Register(RegisterMsg {
            node: self.id,
            slots: self.cfg.slots.clone(),
            running: held,
        }));
        for m in self.unacked.values() {
            out.send(m);
        }
        for f in self.fetches.values() {
            out.send(&FromNode::FetchDataset(FetchDatasetMsg {
                sha256: f.sha256.clone(),
                offset: f.received,
            }));
        }
        if self.draining.is_some() {
            out.send(&FromNode::Draining);
        } else {
            for slot in &self.free {
                out.send(&FromNode::RequestWork(RequestWorkMsg { slot: *slot }));
            }
        }
    }

    pub(crate) fn send(&self, out: Option<&dyn Outbox>, msg: &FromNode) {
        if let Some(o) = out {
            o.send(msg);
        }
    }

    pub(crate) fn on_event(&mut self, ev: NodeEvent, out: Option<&dyn Outbox>) {
        match ev {
            NodeEvent::Report {
                key,
                step,
                values,
                reply,
            } => match out {
                Some(o) if self.running.contains_key(&key) => {
                    self.verdicts.insert(key, reply);
                    self.send(Some(o), &FromNode::Report(ReportMsg { key, step, values }));
                }
                _ => {
                    // No scheduler to ask: carry on; the result is sent when it is back.
                    let _ = reply.send(Verdict::Continue);
                }
            },
            NodeEvent::Done {
                key,
                slot,
                outcome,
                run,
            } => {
                self.verdicts.remove(&key);
                let released = self
                    .unacked
                    .get(&key)
                    .is_some_and(|m| matches!(m, FromNode::Release(_)));
                if self.running.remove(&key).is_some() && !released {
                    let msg = FromNode::Finish(FinishMsg { key, outcome, run });
                    self.send(out, &msg);
                    self.unacked.insert(key, msg);
                }
                self.free.insert(slot);
                if self.draining.is_none() {
                    self.send(out, &FromNode::RequestWork(RequestWorkMsg { slot }));
                }
            }
        }
    }

    pub(crate) fn on_frame(&mut self, m: ToNode, out: &dyn Outbox) {
        match m {
            ToNode::Assign(a) => {
                let key = a.key;
                let slot = a.slot;
                if self.draining.is_some()
                    || !self.free.remove(&slot)
                    || slot.0 as usize >= self.workers.count()
                {
                    let msg = FromNode::Release(ReleaseMsg { key });
                    self.send(Some(out), &msg);
                    self.unacked.insert(key, msg);
                    return;
                }
                let flag = StopFlag::default();
                self.running.insert(key, (slot, flag));
                tracing::debug!(%key, %slot, "assigned");
                // What this node's operator does not allow fails at once, saying why.
                if let Some(why) = self.cfg.refuses(&a) {
                    tracing::warn!(%key, "refused: {why}");
                    let outcome = mlt_protocol::messages::Outcome::Failed(why);
                    let ev = NodeEvent::Done {
                        key,
                        slot,
                        outcome,
                        run: None,
                    };
                    self.on_event(ev, Some(out));
                    return;
                }
                let missing = self.cache.missing(&a);
                if missing.is_empty() {
                    self.start(a);
                    return;
                }
                for sha in &missing {
                    if !self.fetches.contains_key(sha) {
                        tracing::info!(%sha, "fetching a dataset from the scheduler");
                        self.fetches
                            .insert(sha.clone(), Fetch::new(&self.cache, sha));
                        self.send(
                            Some(out),
                            &FromNode::FetchDataset(FetchDatasetMsg {
                                sha256: sha.clone(),
                                offset: 0,
                            }),
                        );
                    }
                }
                self.parked.push((Box::new(a), missing));
            }
            ToNode::DatasetChunk(c) => self.on_chunk(c, out),
            ToNode::Verdict(v) => {
                if v.verdict != Verdict::Continue {
                    if let Some((_, flag)) = self.running.get(&v.key) {
                        flag.raise();
                    }
                }
                if let Some(tx) = self.verdicts.remove(&v.key) {
                    let _ = tx.send(v.verdict);
                }
            }
            ToNode::Stop(s) => {
                tracing::info!(key = %s.key, reason = ?s.reason, "stopping trial");
                if let Some((_, flag)) = self.running.get(&s.key) {
                    flag.raise();
                }
            }
            ToNode::Ack(a) => {
                self.unacked.remove(&a.key);
            }
        }
    }

    /// Hands a trial whose data is here to its slot's worker.
    fn start(&mut self, a: AssignMsg) {
        let Some((slot, flag)) = self.running.get(&a.key) else {
            return;
        };
        let a = self.cache.localise(a);
        self.workers.run(*slot, a, flag.clone());
    }

    /// A dataset chunk: write it, ask for the next one, or start the trials that waited.
    fn on_chunk(&mut self, c: DatasetChunkMsg, out: &dyn Outbox) {
        let Some(f) = self.fetches.get_mut(&c.sha256) else {
            return;
        };
        let sha = c.sha256.clone();
        let result = match f.chunk(&self.cache, &c) {
            Ok(Progress::Next(offset)) => {
                self.send(
                    Some(out),
                    &FromNode::FetchDataset(FetchDatasetMsg {
                        sha256: sha,
                        offset,
                    }),
                );
                return;
            }
            Ok(Progress::Done) => {
                tracing::info!(%sha, bytes = c.total, "dataset cached");
                self.fetches.remove(&sha);
                Ok(())
            }
            Err(e) => {
                tracing::error!("{e}");
                if let Some(f) = self.fetches.remove(&sha) {
                    f.abandon();
                }
                Err(e)
            }
        };
        let parked = std::mem::take(&mut self.parked);
        for (a, mut missing) in parked {
            if !missing.contains(&sha) {
                self.parked.push((a, missing));
                continue;
            }
            match &result {
                Err(e) => {
                    if let Some((slot, _)) = self.running.get(&a.key) {
                        let ev = NodeEvent::Done {
                            key: a.key,
                            slot: *slot,
                            outcome: Outcome::Failed(e.clone()),
                            run: None,
                        };
                        self.on_event(ev, Some(out));
                    }
                }
                Ok(()) => {
                    missing.retain(|m| *m != sha);
                    if missing.is_empty() {
                        self.start(*a);
                    } else {
                        self.parked.push((a, missing));
                    }
                }
            }
        }
    }

    /// Hands back every running trial (drain timeout reached).
    pub(crate) fn release_all(&mut self, out: Option<&dyn Outbox>) {
        self.released = true;
        let keys: Vec<TrialKey> = self.running.keys().copied().collect();
        for key in keys {
            tracing::warn!(%key, "drain timeout: handing the trial back");
            if let Some((_, flag)) = self.running.get(&key) {
                flag.raise();
            }
            let msg = FromNode::Release(ReleaseMsg { key });
            self.send(out, &msg);
            self.unacked.insert(key, msg);
        }
    }

    pub(crate) fn finished_draining(&self) -> bool {
        self.draining.is_some() && self.running.is_empty() && self.unacked.is_empty()
    }

    pub(crate) fn unverdict_all(&mut self) {
        for (_, tx) in self.verdicts.drain() {
            let _ = tx.send(Verdict::Continue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::codec;
    use mlt_protocol::handshake::Role;
    use mlt_protocol::ids::{StudyId, TrialId};
    use mlt_protocol::spec::{BenchFunction, BenchmarkSpec, DataSource, DatasetRef, ObjectiveSpec};
    use mlt_protocol::token::Token;
    use sha2::{Digest, Sha256};
    use std::cell::RefCell;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// The messages the node sent, each round-tripped through the codec on the way.
    #[derive(Default)]
    struct Sent(RefCell<Vec<FromNode>>);

    impl Outbox for Sent {
        fn send(&self, msg: &FromNode) {
            let frame = codec::encode(msg, 1 << 20).expect("encodes");
            let back = codec::decode(&frame[codec::HEADER_LEN..]).expect("decodes");
            self.0.borrow_mut().push(back);
        }
    }

    impl Sent {
        fn take(&self) -> Vec<FromNode> {
            std::mem::take(&mut *self.0.borrow_mut())
        }
    }

    /// Trials handed to slots.
    type Started = Arc<Mutex<Vec<(SlotId, AssignMsg, StopFlag)>>>;

    struct FakeSlots(usize, Started);

    impl Slots for FakeSlots {
        fn count(&self) -> usize {
            self.0
        }
        fn run(&self, slot: SlotId, assign: AssignMsg, stop: StopFlag) {
            self.1.lock().unwrap().push((slot, assign, stop));
        }
    }

    fn node(slots: u32, cache: &std::path::Path) -> (State, Started) {
        let cfg = NodeConfig {
            scheduler: "127.0.0.1:7340".into(),
            token: Token {
                role: Role::Node,
                fingerprint: [7; 32],
                secret: "ab".repeat(32),
            },
            name: "n1".into(),
            slots: (0..slots)
                .map(|s| SlotInfo {
                    slot: SlotId(s),
                    cpus: 1,
                    gpus: Vec::new(),
                })
                .collect(),
            reconnect_max: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(60),
            cache_dir: cache.to_path_buf(),
            allow_command: false,
            data_root: None,
        };
        let started = Started::default();
        let slots = FakeSlots(slots as usize, started.clone());
        (State::new(NodeId(9), cfg, Box::new(slots)), started)
    }

    fn key(trial: u64) -> TrialKey {
        TrialKey {
            study: StudyId(1),
            trial: TrialId(trial),
            attempt: 1,
        }
    }

    fn assign(trial: u64, slot: u32) -> AssignMsg {
        AssignMsg {
            key: key(trial),
            slot: SlotId(slot),
            study_name: "s".into(),
            params: Default::default(),
            objective: ObjectiveSpec::Benchmark(BenchmarkSpec {
                function: BenchFunction::Branin,
                steps: 1,
                step_seconds: 0.0,
                noise: 0.0,
            }),
            workdir: None,
            run: Default::default(),
        }
    }

    /// Trial `trial` on slot 0: a walk-forward study of an uploaded dataset.
    fn on_dataset(trial: u64, sha: &str) -> AssignMsg {
        let mut a = assign(trial, 0);
        let data = DataSource::Datasets {
            files: vec![DatasetRef {
                sha256: sha.to_string(),
                name: "bars.csv".into(),
            }],
            adjusted: false,
        };
        a.objective = ObjectiveSpec::WalkForward(Box::new(
            mlt_protocol::spec::WalkForwardSpec::new(data, Vec::new()),
        ));
        a
    }

    fn done(trial: u64, slot: u32) -> NodeEvent {
        NodeEvent::Done {
            key: key(trial),
            slot: SlotId(slot),
            outcome: Outcome::Failed("x".into()),
            run: None,
        }
    }

    fn request(slot: u32) -> FromNode {
        FromNode::RequestWork(RequestWorkMsg { slot: SlotId(slot) })
    }

    #[test]
    fn what_the_operator_did_not_allow_fails_at_once_saying_how_to_allow_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, started) = node(1, dir.path());
        let out = Sent::default();
        // A program of the submitter's choice: refused without --allow-command.
        let mut cmd = assign(1, 0);
        cmd.objective = ObjectiveSpec::Command(mlt_protocol::spec::CommandSpec {
            command: vec!["sh".into(), "-c".into(), "cat /etc/shadow".into()],
            env: Default::default(),
            timeout_seconds: None,
        });
        st.on_frame(ToNode::Assign(cmd.clone()), &out);
        let sent = out.take();
        let FromNode::Finish(f) = &sent[0] else {
            panic!("{sent:?}")
        };
        let Outcome::Failed(why) = &f.outcome else {
            panic!("{f:?}")
        };
        assert!(why.contains("--allow-command"), "{why}");
        // Nothing ran, and the slot asks for work again.
        assert!(started.lock().unwrap().is_empty());
        assert_eq!(sent[1], request(0));
        // A file of the node's own disk: refused without a data root, and outside it.
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("bars.csv"), "date,close\n").unwrap();
        std::fs::write(dir.path().join("secret.csv"), "date,close\n").unwrap();
        let files = |path: &str| {
            let mut a = assign(2, 0);
            a.objective =
                ObjectiveSpec::WalkForward(Box::new(mlt_protocol::spec::WalkForwardSpec::new(
                    DataSource::Files {
                        paths: vec![path.to_string()],
                        adjusted: false,
                    },
                    Vec::new(),
                )));
            a.workdir = Some(data.display().to_string());
            a
        };
        let why = st.cfg.refuses(&files("bars.csv")).unwrap();
        assert!(why.contains("--data-root"), "{why}");
        st.cfg.data_root = Some(data.clone());
        assert_eq!(st.cfg.refuses(&files("bars.csv")), None);
        // `..` and absolute paths are resolved before they are judged.
        let why = st.cfg.refuses(&files("../secret.csv")).unwrap();
        assert!(why.contains("outside"), "{why}");
        let why = st
            .cfg
            .refuses(&files(&dir.path().join("secret.csv").display().to_string()))
            .unwrap();
        assert!(why.contains("outside"), "{why}");
        // Allowed, a command runs.
        st.cfg.allow_command = true;
        assert_eq!(st.cfg.refuses(&cmd), None);
    }

    #[test]
    fn connecting_registers_then_asks_for_work_for_every_free_slot() {
        let dir = tempfile::tempdir().unwrap();
        let (st, _) = node(2, dir.path());
        let out = Sent::default();
        st.on_connected(&out);
        let sent = out.take();
        let FromNode::Register(r) = &sent[0] else {
            panic!("{sent:?}")
        };
        assert_eq!((r.node, r.slots.len(), r.running.len()), (NodeId(9), 2, 0));
        assert_eq!(sent[1..], [request(0), request(1)]);
    }

    #[test]
    fn a_result_is_kept_and_sent_again_until_the_scheduler_acknowledges_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, started) = node(2, dir.path());
        let out = Sent::default();
        st.on_frame(ToNode::Assign(assign(5, 1)), &out);
        assert!(out.take().is_empty());
        let runs = started.lock().unwrap().clone();
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].0, runs[0].1.key), (SlotId(1), key(5)));
        // Only slot 0 is free now.
        st.on_connected(&out);
        let sent = out.take();
        let FromNode::Register(r) = &sent[0] else {
            panic!()
        };
        assert_eq!(r.running, vec![(key(5), SlotId(1))]);
        assert_eq!(sent[1..], [request(0)]);
        // The trial ends: its result goes out, the slot asks for more.
        st.on_event(done(5, 1), Some(&out));
        let finish = FromNode::Finish(FinishMsg {
            key: key(5),
            outcome: Outcome::Failed("x".into()),
            run: None,
        });
        assert_eq!(out.take(), [finish.clone(), request(1)]);
        // Lost before the acknowledgement: a reconnect registers it and sends it again.
        st.on_connected(&out);
        let sent = out.take();
        let FromNode::Register(r) = &sent[0] else {
            panic!()
        };
        assert_eq!(r.running, vec![(key(5), SlotId(u32::MAX))]);
        assert_eq!(sent[1], finish);
        // Acknowledged: forgotten.
        st.on_frame(ToNode::Ack(AckMsg { key: key(5) }), &out);
        st.on_connected(&out);
        assert_eq!(out.take()[1..], [request(0), request(1)]);
    }

    #[test]
    fn a_busy_unknown_or_draining_slot_hands_the_assignment_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, started) = node(1, dir.path());
        let out = Sent::default();
        st.on_frame(ToNode::Assign(assign(1, 0)), &out);
        st.on_frame(ToNode::Assign(assign(2, 0)), &out);
        st.on_frame(ToNode::Assign(assign(3, 7)), &out);
        let release = |t| FromNode::Release(ReleaseMsg { key: key(t) });
        assert_eq!(out.take(), [release(2), release(3)]);
        st.draining = Some(Instant::now());
        st.on_event(done(1, 0), Some(&out));
        // Draining: the result goes out, but the slot asks for nothing.
        assert!(matches!(out.take()[..], [FromNode::Finish(_)]));
        st.on_frame(ToNode::Assign(assign(4, 0)), &out);
        assert_eq!(out.take(), [release(4)]);
        assert_eq!(started.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_verdict_answers_the_waiting_report_and_a_prune_or_stop_raises_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, started) = node(2, dir.path());
        let out = Sent::default();
        st.on_frame(ToNode::Assign(assign(1, 0)), &out);
        st.on_frame(ToNode::Assign(assign(2, 1)), &out);
        let flag = |i: usize| started.lock().unwrap()[i].2.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let report = NodeEvent::Report {
            key: key(1),
            step: 3,
            values: vec![0.5],
            reply: tx,
        };
        st.on_event(report, Some(&out));
        assert_eq!(
            out.take(),
            [FromNode::Report(ReportMsg {
                key: key(1),
                step: 3,
                values: vec![0.5],
            })]
        );
        assert!(rx.try_recv().is_err(), "no verdict before the scheduler's");
        let verdict = |v| {
            ToNode::Verdict(VerdictMsg {
                key: key(1),
                step: 3,
                verdict: v,
            })
        };
        st.on_frame(verdict(Verdict::Prune), &out);
        assert_eq!(rx.try_recv(), Ok(Verdict::Prune));
        assert!(flag(0).is_raised() && !flag(1).is_raised());
        st.on_frame(
            ToNode::Stop(StopMsg {
                key: key(2),
                reason: StopReason::Cancelled,
            }),
            &out,
        );
        assert!(flag(1).is_raised());
        // With no scheduler, a report carries on at once.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let report = NodeEvent::Report {
            key: key(2),
            step: 1,
            values: vec![1.0],
            reply: tx,
        };
        st.on_event(report, None);
        assert_eq!(rx.try_recv(), Ok(Verdict::Continue));
    }

    #[test]
    fn a_trial_on_an_uploaded_dataset_waits_for_it_then_runs_on_the_cached_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, started) = node(1, dir.path());
        let out = Sent::default();
        let bytes = b"Date,Open,High,Low,Close\n2024-01-02,1,1,1,1\n".to_vec();
        let sha = hex::encode(Sha256::digest(&bytes));
        st.on_frame(ToNode::Assign(on_dataset(1, &sha)), &out);
        let fetch = |offset| {
            FromNode::FetchDataset(FetchDatasetMsg {
                sha256: sha.clone(),
                offset,
            })
        };
        assert_eq!(out.take(), [fetch(0)]);
        assert!(started.lock().unwrap().is_empty());
        // Cut off mid-fetch: a reconnect resumes where it stopped.
        let chunk = |offset: usize, end: usize| {
            ToNode::DatasetChunk(DatasetChunkMsg {
                sha256: sha.clone(),
                total: bytes.len() as u64,
                offset: offset as u64,
                bytes: bytes[offset..end].to_vec(),
            })
        };
        st.on_frame(chunk(0, 10), &out);
        assert_eq!(out.take(), [fetch(10)]);
        st.on_connected(&out);
        assert!(out.take().contains(&fetch(10)));
        st.on_frame(chunk(10, bytes.len()), &out);
        assert!(out.take().is_empty());
        let runs = started.lock().unwrap().clone();
        assert_eq!(runs.len(), 1);
        let ObjectiveSpec::WalkForward(wf) = &runs[0].1.objective else {
            panic!()
        };
        let DataSource::Files { paths, .. } = &wf.data else {
            panic!("{:?}", wf.data)
        };
        assert_eq!(std::fs::read(&paths[0]).unwrap(), bytes);
    }

    #[test]
    fn a_dataset_that_arrives_corrupt_fails_the_trial_waiting_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, started) = node(1, dir.path());
        let out = Sent::default();
        let sha = "0".repeat(64);
        st.on_frame(ToNode::Assign(on_dataset(1, &sha)), &out);
        out.take();
        st.on_frame(
            ToNode::DatasetChunk(DatasetChunkMsg {
                sha256: sha,
                total: 3,
                offset: 0,
                bytes: b"abc".to_vec(),
            }),
            &out,
        );
        let sent = out.take();
        let FromNode::Finish(FinishMsg {
            outcome: Outcome::Failed(why),
            ..
        }) = &sent[0]
        else {
            panic!("{sent:?}")
        };
        assert!(why.contains("hash to"), "{why}");
        assert_eq!(sent[1..], [request(0)]);
        assert!(started.lock().unwrap().is_empty());
    }

    #[test]
    fn the_drain_timeout_hands_back_every_running_trial() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, started) = node(2, dir.path());
        let out = Sent::default();
        st.on_frame(ToNode::Assign(assign(1, 0)), &out);
        st.on_frame(ToNode::Assign(assign(2, 1)), &out);
        st.draining = Some(Instant::now());
        assert!(!st.finished_draining());
        st.release_all(Some(&out));
        let mut sent = out.take();
        sent.sort_by_key(|m| format!("{m:?}"));
        let release = |t| FromNode::Release(ReleaseMsg { key: key(t) });
        assert_eq!(sent, [release(1), release(2)]);
        assert!(started
            .lock()
            .unwrap()
            .iter()
            .all(|(_, _, f)| f.is_raised()));
        // The workers end their trials; no result is sent for a handed-back trial.
        st.on_event(done(1, 0), Some(&out));
        st.on_event(done(2, 1), Some(&out));
        assert!(out.take().is_empty());
        st.on_frame(ToNode::Ack(AckMsg { key: key(1) }), &out);
        st.on_frame(ToNode::Ack(AckMsg { key: key(2) }), &out);
        assert!(st.finished_draining());
    }
}
