//! Search: samplers decide the next trial's parameters, pruners decide when to stop a trial.
//! Both see every trial of the study (finished and in flight). A sampler's suggestion for trial
//! `n` depends only on the study seed, `n` and the trials it is shown, so the same seed and the
//! same order of results give the same suggestions, and a restarted scheduler continues where
//! it stopped.
//!
//! ```text
//! space.rs     internal lines (log, half-step widening, categorical index), unit cube, draws
//! special.rs   normal CDF / quantile (mlt-eval's), fast exp, log-sum-exp, truncated normal
//! mo.rs        dominance, non-dominated sort, crowding distance, hypervolume
//! random.rs    independent uniform sampling (the random sampler)
//! grid.rs      exhaustive grid, each point once
//! qmc.rs       scrambled Sobol
//! tpe/         TPE: univariate, multivariate, grouped, constant liar, MOTPE, constraints
//! cmaes.rs     CMA-ES with IPOP/BIPOP restarts
//! nsga2.rs     NSGA-II and a genetic algorithm
//! gp.rs        GP-BO: Matérn-5/2, marginal likelihood, log-EI
//! linalg.rs    the small dense linear algebra CMA-ES and GP need
//! pruners.rs   percentile/median, threshold, ASHA, Hyperband, paired Wilcoxon
//! ```
mod cmaes;
mod gp;
mod grid;
mod linalg;
pub mod mo;
mod nsga2;
mod pruners;
mod qmc;
mod random;
mod sobol_table;
pub mod space;
pub mod special;
mod tpe;

pub use cmaes::CmaEsSampler;
pub use gp::GpSampler;
pub use grid::GridSampler;
pub use nsga2::{GaSampler, Nsga2Sampler};
pub use pruners::{AshaPruner, HyperbandPruner, PairedPruner, PercentilePruner, ThresholdPruner};
pub use qmc::QmcSampler;
pub use random::RandomSampler;
pub use tpe::TpeSampler;

use mlt_protocol::ids::TrialId;
use mlt_protocol::records::{Params, TrialRecord};
use mlt_protocol::spec::{Direction, PrunerSpec, SamplerSpec, SearchSpace, Spec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a sampler is shown when asked for a trial.
pub struct Ask<'a> {
    /// The space.
    pub space: &'a SearchSpace,
    /// One direction per objective.
    pub directions: &'a [Direction],
    /// The number the new trial will get.
    pub number: TrialId,
    /// Every trial so far, indexed by number.
    pub trials: &'a [TrialRecord],
}

/// A sampler's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Suggestion {
    /// The trial's parameters (active ones only).
    pub params: Params,
    /// The generation it belongs to, for samplers that work in generations.
    pub generation: Option<u32>,
}

/// Chooses parameters.
pub trait Sampler: Send {
    /// Parameters for trial `ask.number`.
    fn sample(&mut self, ask: &Ask) -> Suggestion;

    /// Whether a suggestion over `n_trials` trials may take more than a millisecond or so
    /// (the study actor then runs it off the async worker threads).
    fn is_slow(&self, _n_trials: usize) -> bool {
        false
    }
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

/// The generator of trial `number`: independent of the order in which workers asked.
pub fn trial_rng(seed: u64, number: TrialId) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ number.0.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The sampler a spec asks for.
pub fn sampler_for(spec: &Spec) -> Box<dyn Sampler> {
    let seed = spec.study.seed;
    match &spec.sampler {
        SamplerSpec::Random => Box::new(RandomSampler::new(seed)),
        SamplerSpec::Grid(g) => Box::new(GridSampler::new(g.clone(), seed)),
        SamplerSpec::Qmc(q) => Box::new(QmcSampler::new(q.clone(), seed)),
        SamplerSpec::Tpe(t) => Box::new(TpeSampler::new(t.clone(), seed)),
        SamplerSpec::CmaEs(c) => Box::new(CmaEsSampler::new(c.clone(), seed)),
        SamplerSpec::Nsga2(n) => Box::new(Nsga2Sampler::new(n.clone(), seed)),
        SamplerSpec::Ga(g) => Box::new(GaSampler::new(g.clone(), seed)),
        SamplerSpec::Gp(g) => Box::new(GpSampler::new(g.clone(), seed)),
    }
}

/// The pruner a spec asks for.
pub fn pruner_for(spec: &Spec) -> Option<Box<dyn Pruner>> {
    Some(match &spec.pruner {
        PrunerSpec::None => return None,
        PrunerSpec::Median(m) | PrunerSpec::Percentile(m) => {
            Box::new(PercentilePruner::new(m.clone()))
        }
        PrunerSpec::Threshold(t) => Box::new(ThresholdPruner::new(t.clone())),
        PrunerSpec::Asha(a) => Box::new(AshaPruner::new(a.clone())),
        PrunerSpec::Hyperband(h) => Box::new(HyperbandPruner::new(h.clone(), spec.study.seed)),
        PrunerSpec::Paired(p) => Box::new(PairedPruner::new(p.clone())),
    })
}

#[cfg(test)]
pub(crate) mod tests;
