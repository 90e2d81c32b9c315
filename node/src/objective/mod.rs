//! Objectives: what one trial runs on a worker's blocking thread.
//!
//! ```text
//! benchmark.rs     analytic test functions with a synthetic learning curve
//! command.rs       the researcher's program: params on stdin and in MLT_PARAM_*, results on stdout
//! walk_forward.rs  the adapter to mlt-eval's walk-forward pipeline
//! ```
mod benchmark;
mod command;
mod walk_forward;

pub use benchmark::{evaluate, run_benchmark};
pub use command::run_command;
pub use mlt_eval::{StopFlag, TrialContext};
pub use walk_forward::run_walk_forward;

use mlt_protocol::messages::{AssignMsg, Outcome};
use mlt_protocol::spec::ObjectiveSpec;

/// Runs the trial's objective to its outcome.
pub fn run(assign: &AssignMsg, ctx: &mut dyn TrialContext) -> Outcome {
    match &assign.objective {
        ObjectiveSpec::Benchmark(b) => run_benchmark(b, &assign.params, ctx),
        ObjectiveSpec::Command(c) => run_command(c, assign, ctx),
        ObjectiveSpec::WalkForward(w) => run_walk_forward(w, assign, ctx),
    }
}
