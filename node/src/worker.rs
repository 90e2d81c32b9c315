//! The Worker actor: one per slot. It runs one trial at a time on a blocking thread and
//! reports through the node's event channel; a report waits for the scheduler's verdict.
use crate::objective::{self, StopFlag, TrialContext};
use crate::state::NodeEvent;
use mlt_protocol::ids::{SlotId, TrialKey};
use mlt_protocol::messages::{AssignMsg, Verdict};
use ractor::{Actor, ActorProcessingErr, ActorRef};
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

/// Its state.
pub struct WorkerState {
    slot: SlotId,
    cpus: u32,
    gpu: Option<u32>,
    events: UnboundedSender<NodeEvent>,
}

struct Ctx {
    key: TrialKey,
    cpus: u32,
    gpu: Option<u32>,
    events: UnboundedSender<NodeEvent>,
    stop: StopFlag,
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
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = (SlotId, u32, Option<u32>, UnboundedSender<NodeEvent>);

    async fn pre_start(
        &self,
        _me: ActorRef<WorkerMsg>,
        (slot, cpus, gpu, events): Self::Arguments,
    ) -> Result<WorkerState, ActorProcessingErr> {
        Ok(WorkerState {
            slot,
            cpus,
            gpu,
            events,
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
                    };
                    let outcome = objective::run(&assign, &mut ctx);
                    tracing::debug!(?outcome, "trial ended");
                    let _ = events.send(NodeEvent::Done { key, slot, outcome });
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
