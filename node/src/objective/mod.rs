//! Objectives: what one trial runs on a worker's blocking thread.
//!
//! ```text
//! benchmark.rs  analytic test functions with a synthetic learning curve
//! command.rs    the researcher's program: params on stdin and in MLT_PARAM_*, results on stdout
//! walk_forward.rs  features → purged walk-forward or CPCV splits → model (ridge, LightGBM) →
//!               positions with costs → metrics, returns and the last fold's model
//! ```
mod benchmark;
mod command;
mod walk_forward;

pub use benchmark::{evaluate, run_benchmark};
pub use command::run_command;
pub use walk_forward::{
    check as check_walk_forward, ensemble_of_trials, load, run_walk_forward,
    run_walk_forward_timed, validation_split, Timings, TrialEnsemble,
};

use mlt_protocol::messages::{AssignMsg, Outcome, Verdict};
use mlt_protocol::spec::ObjectiveSpec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a running trial can do: report intermediate values and see whether it must stop.
pub trait TrialContext {
    /// Reports `values` at `step` and returns the scheduler's verdict.
    fn report(&mut self, step: u64, values: Vec<f64>) -> Verdict;
    /// Whether the trial must stop now (pruned, cancelled, stale, node draining).
    fn stopped(&self) -> bool;
    /// Threads the trial may use (its worker slot's CPUs).
    fn threads(&self) -> u32 {
        1
    }
    /// The worker slot's GPU, if it has one.
    fn gpu(&self) -> Option<u32> {
        None
    }
}

/// A shared stop flag.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Raises the flag.
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it is raised.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs the trial's objective to its outcome.
pub fn run(assign: &AssignMsg, ctx: &mut dyn TrialContext) -> Outcome {
    match &assign.objective {
        ObjectiveSpec::Benchmark(b) => run_benchmark(b, &assign.params, ctx),
        ObjectiveSpec::Command(c) => run_command(c, assign, ctx),
        ObjectiveSpec::WalkForward(w) => run_walk_forward(w, assign, ctx),
    }
}
