//! `[sampler]` and `[pruner]`: which search method a study uses and its settings. Every
//! default follows Optuna's, so that a researcher moving a study over gets the same behaviour.
use serde::{Deserialize, Serialize};

/// `[sampler]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SamplerSpec {
    /// Independent uniform sampling (log-uniform for `log` parameters).
    Random,
    /// Every point of a grid, each handed out once.
    Grid(GridSpec),
    /// Scrambled Sobol points (quasi-Monte Carlo).
    Qmc(QmcSpec),
    /// Tree-structured Parzen estimator.
    Tpe(TpeSpec),
    /// CMA-ES with optional IPOP/BIPOP restarts.
    CmaEs(CmaEsSpec),
    /// NSGA-II (multi-objective, constraint-dominance).
    Nsga2(Nsga2Spec),
    /// A generational genetic algorithm for mixed and categorical single-objective spaces.
    Ga(GaSpec),
    /// Gaussian-process Bayesian optimisation.
    Gp(GpSpec),
}

impl SamplerSpec {
    /// The spec's name for the sampler.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Grid(_) => "grid",
            Self::Qmc(_) => "qmc",
            Self::Tpe(_) => "tpe",
            Self::CmaEs(_) => "cmaes",
            Self::Nsga2(_) => "nsga2",
            Self::Ga(_) => "ga",
            Self::Gp(_) => "gp",
        }
    }
}

/// Grid search settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    /// Points per continuous float parameter (evenly spaced, log-spaced for `log`). Int,
    /// stepped float and categorical parameters are enumerated in full.
    pub points: u32,
}

/// Sobol settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QmcSpec {
    /// Owen-style scrambling seeded by the study seed (digital shift + random linear scramble).
    pub scramble: bool,
}

/// TPE settings; `Default` is what `[sampler] kind = "tpe"` gives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TpeSpec {
    /// Random trials before the model is used.
    pub n_startup_trials: u32,
    /// Candidates drawn from l(x) per suggestion; the best l(x)/g(x) wins.
    pub n_ei_candidates: u32,
    /// Fraction of trials in the "good" set: min(ceil(gamma · n), gamma_max).
    pub gamma: f64,
    /// Upper bound of the good set.
    pub gamma_max: u32,
    /// Weight of the prior (uniform) component.
    pub prior_weight: f64,
    /// Bandwidths at the ends also see the distance to the bounds.
    pub consider_endpoints: bool,
    /// Clip bandwidths to [range / min(100, n + 1), range].
    pub consider_magic_clip: bool,
    /// Joint (product-kernel) density over all parameters instead of one per parameter.
    pub multivariate: bool,
    /// With `multivariate`, model each group of parameters that are active together apart.
    pub group: bool,
    /// Running trials count as bad results, so parallel workers spread out.
    pub constant_liar: bool,
}

impl Default for TpeSpec {
    fn default() -> Self {
        Self {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            gamma: 0.1,
            gamma_max: 25,
            prior_weight: 1.0,
            consider_endpoints: false,
            consider_magic_clip: true,
            multivariate: true,
            group: false,
            constant_liar: true,
        }
    }
}

/// How CMA-ES restarts once a run has converged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restart {
    /// Never.
    None,
    /// Doubling the population each time (IPOP).
    Ipop,
    /// Alternating large and small populations (BIPOP).
    Bipop,
}

/// CMA-ES settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CmaEsSpec {
    /// Random trials before the first generation.
    pub n_startup_trials: u32,
    /// Initial step size in the unit cube (default 1/6).
    pub sigma0: f64,
    /// Population size (default 4 + ⌊3 ln d⌋).
    pub popsize: Option<u32>,
    /// Restart strategy.
    pub restart: Restart,
    /// Population growth factor per IPOP restart.
    pub inc_popsize: u32,
    /// Active CMA-ES: the worse half of each generation gets negative weights in the
    /// covariance update (default true).
    pub active: bool,
    /// How the parameters CMA-ES does not model (categorical, conditional) are chosen.
    pub independent: Independent,
    /// A generation's steps are drawn together and made orthogonal (default true).
    pub orthogonal: bool,
}

/// The sampler for the parameters a joint sampler leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Independent {
    /// Uniformly at random (Optuna's default).
    Random,
    /// Univariate TPE with its default settings, learning from every trial.
    Tpe,
}

/// How two parents are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Crossover {
    /// Each gene from either parent.
    Uniform,
    /// Simulated binary crossover for numeric genes (uniform for categorical ones).
    Sbx,
}

/// NSGA-II settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nsga2Spec {
    /// Trials per generation.
    pub population_size: u32,
    /// Per-gene mutation probability (default 1 / number of parameters).
    pub mutation_prob: Option<f64>,
    /// Probability that a child is bred by crossover rather than copied.
    pub crossover_prob: f64,
    /// Uniform crossover: chance of taking each gene from the second parent.
    pub swapping_prob: f64,
    /// Crossover operator.
    pub crossover: Crossover,
}

/// Genetic algorithm settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GaSpec {
    /// Trials per generation.
    pub population_size: u32,
    /// Per-gene mutation probability (default 1 / number of parameters).
    pub mutation_prob: Option<f64>,
    /// Probability that a child is bred by crossover rather than copied.
    pub crossover_prob: f64,
    /// Contestants per tournament.
    pub tournament_size: u32,
    /// Best trials carried into the next generation unchanged.
    pub elite: u32,
}

/// GP-BO settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpSpec {
    /// Random (Sobol) trials before the model is used.
    pub n_startup_trials: u32,
    /// Random candidates scored by the acquisition before local refinement.
    pub n_candidates: u32,
}

/// `[pruner]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PrunerSpec {
    /// Never prunes.
    None,
    /// Optuna's median rule (the 50th percentile).
    Median(PercentileSpec),
    /// Prune below a percentile of the completed trials at the same step.
    Percentile(PercentileSpec),
    /// Prune outside fixed bounds.
    Threshold(ThresholdSpec),
    /// Asynchronous successive halving.
    Asha(AshaSpec),
    /// Hyperband: brackets of ASHA with different aggressiveness.
    Hyperband(HyperbandSpec),
    /// Paired comparison with the incumbent on the same steps (walk-forward folds).
    Paired(PairedSpec),
}

impl PrunerSpec {
    /// The spec's name for the pruner.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Median(_) => "median",
            Self::Percentile(_) => "percentile",
            Self::Threshold(_) => "threshold",
            Self::Asha(_) => "asha",
            Self::Hyperband(_) => "hyperband",
            Self::Paired(_) => "paired",
        }
    }
}

/// Settings of the median and percentile pruners (Optuna's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PercentileSpec {
    /// Percentile of the completed trials' values at the step, 0–100 (median: 50). For a
    /// maximised objective it is taken from the top, as Optuna does.
    pub percentile: f64,
    /// No pruning until this many trials have finished.
    pub n_startup_trials: u32,
    /// No pruning before this step of a trial.
    pub n_warmup_steps: u64,
    /// Check only every this many steps (after the warm-up).
    pub interval_steps: u64,
    /// At least this many trials must have reported at the step.
    pub n_min_trials: u32,
}

/// The median pruner's settings (the percentile pruner at 50).
pub type MedianSpec = PercentileSpec;

/// Settings of the threshold pruner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdSpec {
    /// Prune a value below this.
    pub lower: Option<f64>,
    /// Prune a value above this.
    pub upper: Option<f64>,
    /// No pruning before this step.
    pub n_warmup_steps: u64,
    /// Check only every this many steps (after the warm-up).
    pub interval_steps: u64,
}

/// Settings of asynchronous successive halving.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AshaSpec {
    /// Steps of the first rung.
    pub min_resource: u64,
    /// η: one in η trials is promoted at each rung.
    pub reduction_factor: u64,
    /// s: the first rung is at `min_resource · η^s`.
    pub min_early_stopping_rate: u32,
    /// A trial is pruned while fewer than this many trials reached its rung.
    pub bootstrap_count: u32,
}

/// Settings of Hyperband.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HyperbandSpec {
    /// Steps of the smallest budget.
    pub min_resource: u64,
    /// Steps of a full trial; `None` = the last step of the first trial to complete.
    pub max_resource: Option<u64>,
    /// η.
    pub reduction_factor: u64,
}

/// Settings of the paired pruner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedSpec {
    /// Prune when the one-sided Wilcoxon signed-rank p-value that the trial is worse than the
    /// incumbent on the shared steps falls below this.
    pub alpha: f64,
    /// Shared steps needed before a test is made.
    pub min_steps: u32,
    /// No pruning until this many trials have completed.
    pub n_startup_trials: u32,
}
