//! The `walk_forward` objective: a thin adapter from an assignment to mlt-eval's pipeline.
use mlt_eval::{Trial, TrialContext};
use mlt_protocol::messages::{AssignMsg, Outcome, RunKind};
use mlt_protocol::spec::WalkForwardSpec;

/// Runs one walk-forward trial of `assign` (the model's seed is the trial's number, or for a
/// hold-out evaluation the number of the trial it evaluates).
pub fn run_walk_forward(
    spec: &WalkForwardSpec,
    assign: &AssignMsg,
    ctx: &mut dyn TrialContext,
) -> Outcome {
    let (seed, holdout) = match assign.run {
        RunKind::Search => (assign.key.trial.0, false),
        RunKind::Holdout { source } => (source, true),
    };
    let trial = Trial {
        params: &assign.params,
        workdir: assign.workdir.as_deref(),
        seed,
        holdout,
    };
    mlt_eval::run_walk_forward(spec, &trial, ctx)
}
