//! Search: samplers decide the next trial's parameters, pruners decide when to stop a trial.
//! Both see every finished and in-flight trial of the study.
//!
//! ```text
//! random.rs  independent sampling honouring log, step, int, categorical and `when`
//! median.rs  Optuna's median rule
//! ```
mod median;
mod random;

pub use median::MedianPruner;
pub use random::RandomSampler;

use mlt_protocol::ids::TrialId;
use mlt_protocol::records::{Params, TrialRecord};
use mlt_protocol::spec::{Direction, PrunerSpec, SamplerSpec, SearchSpace, Spec};

/// Chooses parameters.
pub trait Sampler: Send {
    /// Parameters for trial `number`, given all trials so far (finished and running).
    fn sample(&mut self, space: &SearchSpace, number: TrialId, trials: &[TrialRecord]) -> Params;
}

/// Decides whether a running trial should stop.
pub trait Pruner: Send {
    /// `Some(reason)` to prune `trial`, which just reported at `step`.
    fn prune(
        &self,
        trial: &TrialRecord,
        step: u64,
        trials: &[TrialRecord],
        direction: Direction,
    ) -> Option<String>;
}

/// The sampler a spec asks for.
pub fn sampler_for(spec: &Spec) -> Box<dyn Sampler> {
    match spec.sampler {
        SamplerSpec::Random => Box::new(RandomSampler::new(spec.study.seed)),
    }
}

/// The pruner a spec asks for.
pub fn pruner_for(spec: &Spec) -> Option<Box<dyn Pruner>> {
    match &spec.pruner {
        PrunerSpec::None => None,
        PrunerSpec::Median(m) => Some(Box::new(MedianPruner::new(m.clone()))),
    }
}
