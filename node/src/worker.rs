//! The Worker actor: one per slot. It runs one trial at a time on a blocking thread and
//! reports through the node's event channel; a report waits for the scheduler's verdict.
use crate::objective::{self, StopFlag, TrialContext};
use crate::state::NodeEvent;
use mlt_protocol::ids::{SlotId, TrialKey};
use mlt_protocol::lineage::{DatasetUse, FoldRun, RunRecord};
use mlt_protocol::messages::{AssignMsg, RunKind, Verdict};
use mlt_protocol::spec::ObjectiveSpec;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// How long a report waits for its verdict before carrying on (the scheduler may be away).
pub const VERDICT_WAIT: Duration = Duration::from_secs(30);

/// Messages to a Worker.
pub enum WorkerMsg {
    /// Run this trial; stop when the flag is raised.
    Run(Box<AssignMsg>, StopFlag),
}

/// The actor.
pub struct Worker;

/// What every trial's lineage says of the node it ran on.
#[derive(Clone, Debug)]
pub struct Host {
    /// The node's name.
    pub name: String,
    /// Its CPU model.
    pub cpu: String,
    /// Its logical cores.
    pub cores: u32,
}

impl Host {
    /// This machine, under the node's `name`.
    pub fn detect(name: &str) -> Host {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        Host {
            name: name.to_string(),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        }
    }
}

/// Its state.
pub struct WorkerState {
    slot: SlotId,
    cpus: u32,
    gpu: Option<u32>,
    events: UnboundedSender<NodeEvent>,
    host: Arc<Host>,
}

struct Ctx {
    key: TrialKey,
    cpus: u32,
    gpu: Option<u32>,
    events: UnboundedSender<NodeEvent>,
    stop: StopFlag,
    datasets: Vec<DatasetUse>,
    folds: Vec<FoldRun>,
}

/// The model's seed a walk-forward trial uses (its number; a hold-out evaluation's source's).
fn model_seed(a: &AssignMsg) -> Option<u64> {
    match (&a.objective, a.run) {
        (ObjectiveSpec::WalkForward(_), RunKind::Search) => Some(a.key.trial.0),
        (ObjectiveSpec::WalkForward(_), RunKind::Holdout { source }) => Some(source),
        _ => None,
    }
}

impl TrialContext for Ctx {
    fn report(&mut self, step: u64, values: Vec<f64>) -> Verdict {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self
            .events
            .send(NodeEvent::Report {
                key: self.key,
                step,
                values,
                reply: tx,
            })
            .is_err()
        {
            return Verdict::Stale;
        }
        rx.recv_timeout(VERDICT_WAIT).unwrap_or(Verdict::Continue)
    }

    fn stopped(&self) -> bool {
        self.stop.is_raised()
    }

    fn threads(&self) -> u32 {
        self.cpus.max(1)
    }

    fn gpu(&self) -> Option<u32> {
        self.gpu
    }

    fn dataset(&mut self, d: DatasetUse) {
        self.datasets.push(d);
    }

    fn fold(&mut self, f: FoldRun) {
        self.folds.push(f);
    }
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = (
        SlotId,
        u32,
        Option<u32>,
        UnboundedSender<NodeEvent>,
        Arc<Host>,
    );

    async fn pre_start(
        &self,
        _me: ActorRef<WorkerMsg>,
        (slot, cpus, gpu, events, host): Self::Arguments,
    ) -> Result<WorkerState, ActorProcessingErr> {
        Ok(WorkerState {
            slot,
            cpus,
            gpu,
            events,
            host,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        st: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Run(assign, stop) => {
                let events = st.events.clone();
                let slot = st.slot;
                let (cpus, gpu) = (st.cpus, st.gpu);
                let host = st.host.clone();
                tokio::task::spawn_blocking(move || {
                    let key = assign.key;
                    let span = tracing::info_span!("trial", study = %assign.study_name, trial = %key.trial, attempt = key.attempt);
                    let _g = span.enter();
                    let mut ctx = Ctx {
                        key,
                        cpus,
                        gpu,
                        events: events.clone(),
                        stop,
                        datasets: Vec::new(),
                        folds: Vec::new(),
                    };
                    let (wall, cpu) = (
                        std::time::Instant::now(),
                        mlt_eval::context::process_cpu_seconds(),
                    );
                    let outcome = objective::run(&assign, &mut ctx);
                    tracing::debug!(?outcome, "trial ended");
                    let run = RunRecord {
                        node: host.name.clone(),
                        cpu: host.cpu.clone(),
                        cores: host.cores,
                        gpu,
                        threads: cpus.max(1),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        commit: env!("MLT_GIT_COMMIT").to_string(),
                        model_seed: model_seed(&assign),
                        datasets: ctx.datasets,
                        folds: ctx.folds,
                        wall_s: wall.elapsed().as_secs_f64(),
                        cpu_s: mlt_eval::context::process_cpu_seconds() - cpu,
                    };
                    let _ = events.send(NodeEvent::Done {
                        key,
                        slot,
                        outcome,
                        run: Some(Box::new(run)),
                    });
                });
            }
        }
        Ok(())
    }
}

impl crate::state::Slots for Vec<ActorRef<WorkerMsg>> {
    fn count(&self) -> usize {
        self.len()
    }

    fn run(&self, slot: SlotId, assign: AssignMsg, stop: StopFlag) {
        if let Some(w) = self.get(slot.0 as usize) {
            let _ = w.cast(WorkerMsg::Run(Box::new(assign), stop));
        }
    }

    fn stop(&self) {
        for w in self {
            w.stop(None);
        }
    }
}
