//! The node: connects to the scheduler, registers its slots, runs what it is assigned, and
//! keeps going through scheduler restarts. Results not yet acknowledged are kept and sent
//! again after a reconnect; the scheduler records each exactly once.
use crate::datasets::{Cache, Fetch, Progress};
use crate::objective::StopFlag;
use crate::worker::{Worker, WorkerMsg};
use mlt_net::{connect, ClientSession, Outbox};
use mlt_protocol::handshake::{Hello, Role};
use mlt_protocol::ids::{NodeId, SlotId, TrialKey};
use mlt_protocol::messages::*;
use mlt_protocol::token::Token;
use ractor::{Actor, ActorRef};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Scheduler address, `host:port`.
    pub scheduler: String,
    /// The join token.
    pub token: Token,
    /// Name shown in listings.
    pub name: String,
    /// The slots.
    pub slots: Vec<SlotInfo>,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// On SIGTERM, how long running trials may take before they are handed back.
    pub drain_timeout: Duration,
    /// Where uploaded datasets are cached, by SHA-256.
    pub cache_dir: std::path::PathBuf,
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
    },
}

struct State {
    id: NodeId,
    cfg: NodeConfig,
    workers: Vec<ActorRef<WorkerMsg>>,
    free: BTreeSet<SlotId>,
    running: HashMap<TrialKey, (SlotId, StopFlag)>,
    verdicts: HashMap<TrialKey, std::sync::mpsc::SyncSender<Verdict>>,
    unacked: BTreeMap<TrialKey, FromNode>,
    draining: Option<Instant>,
    released: bool,
    cache: Cache,
    fetches: HashMap<String, Fetch>,
    /// Assigned trials waiting for datasets (the hashes still missing).
    parked: Vec<(Box<AssignMsg>, Vec<String>)>,
}

enum Exit {
    Done,
    Lost(String),
}

impl State {
    fn send(&self, out: Option<&Outbox>, msg: &FromNode) {
        if let Some(o) = out {
            if let Err(e) = o.send(msg) {
                tracing::error!("cannot encode a message: {e}");
            }
        }
    }

    fn on_event(&mut self, ev: NodeEvent, out: Option<&Outbox>) {
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
            NodeEvent::Done { key, slot, outcome } => {
                self.verdicts.remove(&key);
                let released = self
                    .unacked
                    .get(&key)
                    .is_some_and(|m| matches!(m, FromNode::Release(_)));
                if self.running.remove(&key).is_some() && !released {
                    let msg = FromNode::Finish(FinishMsg { key, outcome });
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

    fn on_frame(&mut self, m: ToNode, out: &Outbox) {
        match m {
            ToNode::Assign(a) => {
                let key = a.key;
                let slot = a.slot;
                if self.draining.is_some()
                    || !self.free.remove(&slot)
                    || slot.0 as usize >= self.workers.len()
                {
                    let msg = FromNode::Release(ReleaseMsg { key });
                    self.send(Some(out), &msg);
                    self.unacked.insert(key, msg);
                    return;
                }
                let flag = StopFlag::default();
                self.running.insert(key, (slot, flag));
                tracing::debug!(%key, %slot, "assigned");
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
        let _ = self.workers[slot.0 as usize].cast(WorkerMsg::Run(Box::new(a), flag.clone()));
    }

    /// A dataset chunk: write it, ask for the next one, or start the trials that waited.
    fn on_chunk(&mut self, c: DatasetChunkMsg, out: &Outbox) {
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
    fn release_all(&mut self, out: Option<&Outbox>) {
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

    fn finished_draining(&self) -> bool {
        self.draining.is_some() && self.running.is_empty() && self.unacked.is_empty()
    }

    fn unverdict_all(&mut self) {
        for (_, tx) in self.verdicts.drain() {
            let _ = tx.send(Verdict::Continue);
        }
    }
}

type Shutdown<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send)>;

/// Runs a node until `shutdown` completes and its work is finished or handed back.
pub async fn run_node(
    cfg: NodeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let id = NodeId(rand::random());
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for s in &cfg.slots {
        let (w, _) = Actor::spawn(
            None,
            Worker,
            (s.slot, s.cpus, s.gpus.first().copied(), events_tx.clone()),
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting a worker: {e}"))?;
        workers.push(w);
    }
    let free = cfg.slots.iter().map(|s| s.slot).collect();
    let cfg_cache = cfg.cache_dir.clone();
    let mut st = State {
        id,
        cfg,
        workers,
        free,
        running: HashMap::new(),
        verdicts: HashMap::new(),
        unacked: BTreeMap::new(),
        draining: None,
        released: false,
        cache: Cache::new(cfg_cache),
        fetches: HashMap::new(),
        parked: Vec::new(),
    };
    tracing::info!(node = %id, slots = st.cfg.slots.len(), scheduler = %st.cfg.scheduler, "node starting");
    let mut shutdown: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shutdown);
    let mut backoff = Duration::from_millis(100);
    let result = loop {
        if st.finished_draining() {
            break Ok(());
        }
        let hello = Hello {
            protocol_version: 0,
            role: Role::Node,
            secret: String::new(),
            name: st.cfg.name.clone(),
            node: Some(id),
        };
        let (addr, token) = (st.cfg.scheduler.clone(), st.cfg.token.clone());
        let attempt = async move { connect(&addr, &token, hello, Duration::from_secs(5)).await };
        let session = match offline(&mut st, &mut events, shutdown.as_mut(), attempt).await {
            None => break Ok(()),
            Some(Ok(s)) => s,
            Some(Err(e)) if e.is_fatal() => break Err(anyhow::Error::new(e)),
            Some(Err(e)) => {
                tracing::warn!("{e}; retrying in {} ms", backoff.as_millis());
                let wait = tokio::time::sleep(backoff);
                if offline(&mut st, &mut events, shutdown.as_mut(), wait)
                    .await
                    .is_none()
                {
                    break Ok(());
                }
                backoff = (backoff * 2).min(st.cfg.reconnect_max);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        match online(&mut st, &mut events, shutdown.as_mut(), session).await {
            Exit::Done => break Ok(()),
            Exit::Lost(why) => {
                tracing::warn!("lost the scheduler ({why}); reconnecting");
                st.unverdict_all();
            }
        }
    };
    for w in &st.workers {
        w.stop(None);
    }
    result
}

/// Waits for `fut` while no scheduler is connected: reports carry on without a verdict,
/// results are kept for later. `None` when the node should exit (drained).
async fn offline<T>(
    st: &mut State,
    events: &mut mpsc::UnboundedReceiver<NodeEvent>,
    mut shutdown: Shutdown<'_>,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(fut);
    loop {
        let deadline = st.draining.filter(|_| !st.released);
        tokio::select! {
            r = &mut fut => return Some(r),
            Some(ev) = events.recv() => st.on_event(ev, None),
            _ = &mut shutdown, if st.draining.is_none() => {
                st.draining = Some(Instant::now() + st.cfg.drain_timeout);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => st.release_all(None),
        }
        let drain_over = st.draining.is_some_and(|d| Instant::now() >= d);
        if st.draining.is_some() && st.running.is_empty() && (st.unacked.is_empty() || drain_over) {
            return None;
        }
    }
}

async fn online(
    st: &mut State,
    events: &mut mpsc::UnboundedReceiver<NodeEvent>,
    mut shutdown: Shutdown<'_>,
    session: ClientSession,
) -> Exit {
    let ClientSession {
        endpoint,
        conn,
        writer,
        mut reader,
        accepted,
    } = session;
    let out = writer.into_outbox();
    let mut held: Vec<(TrialKey, SlotId)> = st.running.iter().map(|(k, (s, _))| (*k, *s)).collect();
    held.extend(st.unacked.keys().map(|k| (*k, SlotId(u32::MAX))));
    st.send(
        Some(&out),
        &FromNode::Register(RegisterMsg {
            node: st.id,
            slots: st.cfg.slots.clone(),
            running: held,
        }),
    );
    for m in st.unacked.values() {
        st.send(Some(&out), m);
    }
    // Fetches cut off by the lost connection go on where they stopped.
    for f in st.fetches.values() {
        st.send(
            Some(&out),
            &FromNode::FetchDataset(FetchDatasetMsg {
                sha256: f.sha256.clone(),
                offset: f.received,
            }),
        );
    }
    if st.draining.is_some() {
        st.send(Some(&out), &FromNode::Draining);
    } else {
        for slot in st.free.clone() {
            st.send(Some(&out), &FromNode::RequestWork(RequestWorkMsg { slot }));
        }
    }
    tracing::info!(scheduler = %conn.remote_address(), "connected");
    let mut beat =
        tokio::time::interval(Duration::from_millis(accepted.heartbeat_ms.max(50) as u64));
    let exit = loop {
        let deadline = st.draining.filter(|_| !st.released);
        tokio::select! {
            frame = reader.recv::<ToNode>() => match frame {
                Ok(Some(m)) => st.on_frame(m, &out),
                Ok(None) => break Exit::Lost("the scheduler closed the connection".into()),
                Err(e) => break Exit::Lost(e.to_string()),
            },
            Some(ev) = events.recv() => st.on_event(ev, Some(&out)),
            _ = beat.tick() => {
                let running = st.running.keys().copied().collect();
                st.send(Some(&out), &FromNode::Heartbeat(HeartbeatMsg { running }));
            }
            _ = &mut shutdown, if st.draining.is_none() => {
                tracing::info!("stopping: no new work; finishing {} running trials", st.running.len());
                st.draining = Some(Instant::now() + st.cfg.drain_timeout);
                st.send(Some(&out), &FromNode::Draining);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => st.release_all(Some(&out)),
        }
        if st.finished_draining() {
            break Exit::Done;
        }
    };
    if matches!(exit, Exit::Done) {
        // Let the queued frames leave before closing.
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.close(0u32.into(), b"node stopping");
        endpoint.wait_idle().await;
    }
    exit
}
