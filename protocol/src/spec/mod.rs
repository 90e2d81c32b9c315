//! The search spec's types: what a researcher's TOML file (DESIGN §10, docs/spec.md) says,
//! validated. The objective's part travels in every assignment. Parsing and validation live in
//! the mlt-spec crate.
mod search;

use crate::records::{ParamValue, Params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub use search::*;

/// A validated spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// `[study]`.
    pub study: StudySpec,
    /// `[sampler]`.
    pub sampler: SamplerSpec,
    /// `[pruner]`.
    pub pruner: PrunerSpec,
    /// `[resources]`.
    pub resources: ResourceSpec,
    /// `[space]`.
    pub space: SearchSpace,
    /// `[objective]`.
    pub objective: ObjectiveSpec,
    /// `[[enqueue]]`: parameter sets to evaluate first, in order (missing ones are sampled).
    pub enqueue: Vec<Params>,
    /// `[[constraint]]`: bounds on reported metrics; a trial that breaks one is infeasible.
    pub constraints: Vec<ConstraintSpec>,
}

/// One `[[constraint]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConstraintSpec {
    /// The metric it bounds.
    pub metric: String,
    /// Feasible when the metric is at least this.
    pub min: Option<f64>,
    /// Feasible when the metric is at most this.
    pub max: Option<f64>,
}

impl ConstraintSpec {
    /// The constraint value for a metric value: ≤ 0 when satisfied, else how far off it is.
    pub fn value(&self, m: f64) -> f64 {
        if m.is_nan() {
            return f64::INFINITY;
        }
        let below = self.min.map_or(f64::NEG_INFINITY, |lo| lo - m);
        let above = self.max.map_or(f64::NEG_INFINITY, |hi| m - hi);
        below.max(above)
    }
}

/// Whether an objective is minimised or maximised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Smaller is better.
    Minimize,
    /// Larger is better.
    Maximize,
}

impl Direction {
    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }

    /// `v` as a loss (smaller is better): negated for a maximised objective.
    pub fn loss(self, v: f64) -> f64 {
        match self {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        }
    }

    /// `minimize` or `maximize`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }
}

/// `[study]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudySpec {
    /// Name; made unique by the scheduler.
    pub name: String,
    /// One per objective.
    pub directions: Vec<Direction>,
    /// Names of the objectives (metrics), one per direction.
    pub objectives: Vec<String>,
    /// Budget, counted per study across all nodes.
    pub n_trials: u64,
    /// At most this many trials run at once.
    pub max_concurrent: Option<u32>,
    /// Seed of the sampler.
    pub seed: u64,
    /// How many times a trial whose node vanished is retried before it is Lost.
    pub max_attempts: u32,
    /// Seed the study with the finished trials of the study of this name.
    pub warm_start: Option<String>,
}

/// `[resources]`: what one trial needs from a worker slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSpec {
    /// CPU cores.
    pub cpus: u32,
    /// GPUs.
    pub gpus: u32,
}

/// A parameter's distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Distribution {
    /// A float in `[low, high]`, log-uniform when `log`, on a grid of `step` when given.
    Float {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Log scale.
        log: bool,
        /// Grid step.
        step: Option<f64>,
    },
    /// An integer in `[low, high]`.
    Int {
        /// Lower bound.
        low: i64,
        /// Upper bound.
        high: i64,
        /// Log scale.
        log: bool,
        /// Grid step (1 by default).
        step: i64,
    },
    /// One of the choices.
    Categorical {
        /// The choices.
        choices: Vec<ParamValue>,
    },
    /// Always this value.
    Fixed {
        /// The value.
        value: ParamValue,
    },
}

/// One parameter of the space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Name.
    pub name: String,
    /// Distribution.
    pub dist: Distribution,
    /// Active only when each named parent takes one of the given values.
    pub when: Vec<(String, Vec<ParamValue>)>,
}

/// The search space, ordered so that every parent comes before its children.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// The parameters.
    pub params: Vec<ParamSpec>,
}

impl SearchSpace {
    /// Whether `p` is active given the parameters decided so far.
    pub fn is_active(p: &ParamSpec, decided: &Params) -> bool {
        p.when
            .iter()
            .all(|(parent, values)| decided.get(parent).is_some_and(|v| values.contains(v)))
    }
}

/// Analytic test functions of the `benchmark` objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BenchFunction {
    /// Branin on x0 ∈ [-5, 10], x1 ∈ [0, 15]; minimum 0.397887.
    Branin,
    /// Hartmann-6 on x0..x5 ∈ [0, 1]; minimum -3.32237.
    Hartmann6,
    /// Rosenbrock on x0..x(n-1); minimum 0.
    Rosenbrock,
    /// Styblinski-Tang on x0..x(n-1) ∈ [-5, 5]; minimum -39.16617 n.
    StyblinskiTang,
    /// A mixed problem: float `x`, int `n`, categorical `kind` and `y` active when kind = "a".
    Mixed,
}

impl BenchFunction {
    /// Parses the spec name.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "branin" => Self::Branin,
            "hartmann6" => Self::Hartmann6,
            "rosenbrock" => Self::Rosenbrock,
            "styblinski_tang" => Self::StyblinskiTang,
            "mixed" => Self::Mixed,
            _ => return None,
        })
    }
}

/// `[objective]` with `kind = "benchmark"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkSpec {
    /// The function.
    pub function: BenchFunction,
    /// Intermediate values reported per trial.
    pub steps: u32,
    /// Simulated cost per step.
    pub step_seconds: f64,
    /// Relative noise of the intermediate values.
    pub noise: f64,
}

/// `[objective]` with `kind = "command"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// The trial fails when the program runs longer.
    pub timeout_seconds: Option<f64>,
}

/// `[objective]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ObjectiveSpec {
    /// An analytic test function.
    Benchmark(BenchmarkSpec),
    /// The researcher's own program.
    Command(CommandSpec),
    /// Walk-forward evaluation of a model on market data.
    WalkForward(Box<WalkForwardSpec>),
}

/// Where a walk-forward study's bars come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// The seeded synthetic market (instrument i uses seed + i).
    Synthetic {
        /// Business days.
        days: u32,
        /// Seed.
        seed: u64,
        /// Strength of its predictable component.
        strength: f64,
        /// Instruments.
        instruments: u32,
    },
    /// CSV files of daily bars, one per instrument (relative paths are taken from the spec's
    /// folder); the dates all of them have are used.
    Files {
        /// Paths.
        paths: Vec<String>,
        /// Scale prices by adj close / close.
        adjusted: bool,
    },
    /// Files uploaded to the scheduler (`data = "sha256:<hex>/<name>"`, as `submit` writes
    /// it): nodes fetch them over QUIC and cache them by hash.
    Datasets {
        /// The files, one per instrument.
        files: Vec<DatasetRef>,
        /// Scale prices by adj close / close.
        adjusted: bool,
    },
}

impl DataSource {
    /// Whether prices are scaled by adjusted close / close (never for the synthetic market).
    pub fn adjusted(&self) -> bool {
        match self {
            DataSource::Files { adjusted, .. } | DataSource::Datasets { adjusted, .. } => *adjusted,
            DataSource::Synthetic { .. } => false,
        }
    }
}

/// A file uploaded to the scheduler, by content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// SHA-256 of its contents, lower-case hex.
    pub sha256: String,
    /// The name it was uploaded as.
    pub name: String,
}

impl DatasetRef {
    /// Reads `sha256:<64 hex>/<name>` (the name may be empty).
    pub fn parse(s: &str) -> Option<DatasetRef> {
        let rest = s.strip_prefix("sha256:")?;
        let (hex, name) = rest.split_once('/').unwrap_or((rest, ""));
        let ok = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| DatasetRef {
            sha256: hex.to_string(),
            name: name.to_string(),
        })
    }

    /// The spec form, `sha256:<hex>/<name>`.
    pub fn to_spec(&self) -> String {
        format!("sha256:{}/{}", self.sha256, self.name)
    }
}

/// `[objective]` with `kind = "walk_forward"`. Feature expressions may use `$name` for a
/// trial parameter; `alpha` and `threshold` are taken from the trial's parameters of those
/// names when the space has them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WalkForwardSpec {
    /// The bars.
    pub data: DataSource,
    /// Feature name → expression.
    pub features: Vec<(String, String)>,
    /// What is predicted.
    pub label: LabelSpec,
    /// How the data is cut into training and test windows, and the hold-out.
    pub windows: WindowSpec,
    /// The model and how it is fitted.
    pub model: ModelSpec,
    /// How predictions become positions and what trading them costs.
    pub trading: TradingSpec,
    /// What a trial reports, and when.
    pub report: ReportSpec,
}

/// `objective.horizon` and `objective.label`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelSpec {
    /// Forward return over this many days.
    pub horizon: u32,
    /// Classify the direction of the forward return (1 up, 0 otherwise) instead of
    /// regressing it; predictions are then probabilities of "up".
    pub classify: bool,
}

/// `objective.train`, `test`, `step`, `expanding`, `splits`, `holdout`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Training window (days).
    pub train: u32,
    /// Test window (days).
    pub test: u32,
    /// Days between folds.
    pub step: u32,
    /// Grow the training window from the start instead of rolling it.
    pub expanding: bool,
    /// How the search period is split.
    pub splits: Splits,
    /// Days at the end of the data that the search never sees (0: none).
    pub holdout: u32,
    /// How many of the best trials are evaluated on the hold-out when the search ends.
    pub holdout_top: u32,
}

/// `objective.model` and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Which model.
    pub kind: ModelKind,
    /// Its fixed settings (`[objective.lightgbm]`, `[objective.lstm]`; an ensemble's as
    /// `member.name`), by the names of mlt-spec's setting tables; a trial parameter of the
    /// same name (or alias) overrides one.
    pub settings: BTreeMap<String, f64>,
    /// Ridge penalty.
    pub alpha: f64,
    /// With `kind = ensemble`: its members and how they are combined.
    pub ensemble: Option<EnsembleSpec>,
    /// Share of each training window, cut from its end, held back for early stopping (never
    /// from the test window; purged by the horizon from the rows before it). 0: none.
    pub validation: f64,
    /// Boosting rounds without improvement on the validation tail before training stops
    /// (0: no early stopping).
    pub early_stopping: u32,
    /// Features LightGBM treats as categorical (their values are taken as integer codes).
    pub categorical: Vec<String>,
}

/// `objective.sizing`, `threshold`, `long_only`, `cost_bps`, `slippage_bps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradingSpec {
    /// How predictions become positions.
    pub sizing: Sizing,
    /// Dead band of `threshold` sizing (in units of the predicted return).
    pub threshold: f64,
    /// No short positions.
    pub long_only: bool,
    /// Cost per unit traded, basis points.
    pub cost_bps: f64,
    /// Slippage per unit traded, basis points.
    pub slippage_bps: f64,
}

/// What a walk-forward trial reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportSpec {
    /// The metrics reported as the trial's values, one per study direction (`value` =
    /// `sharpe`); filled from `study.objectives`.
    pub objectives: Vec<String>,
    /// Intermediate reports: the objectives on all out-of-sample returns so far (`false`,
    /// the default) or on the latest fold alone (`true`, for the paired pruner).
    pub per_fold: bool,
    /// The pruning budget: after each epoch of every fold's LSTM (`budget = "epochs"`) or each
    /// stage of boosting rounds of every fold's LightGBM (`budget = "rounds"`) instead of after
    /// each fold.
    pub budget_epochs: bool,
}

impl WalkForwardSpec {
    /// A spec with the defaults a `[objective]` table gets for every key it leaves out
    /// (ridge, 504-day training and 63-day test windows, 1-day horizon, sign sizing, 1 bp of
    /// cost and of slippage, Sharpe as the objective).
    pub fn new(data: DataSource, features: Vec<(String, String)>) -> Self {
        Self {
            data,
            features,
            label: LabelSpec {
                horizon: 1,
                classify: false,
            },
            windows: WindowSpec {
                train: 504,
                test: 63,
                step: 63,
                expanding: false,
                splits: Splits::WalkForward,
                holdout: 0,
                holdout_top: 5,
            },
            model: ModelSpec {
                kind: ModelKind::Ridge,
                settings: BTreeMap::new(),
                alpha: 1.0,
                ensemble: None,
                validation: 0.0,
                early_stopping: 20,
                categorical: Vec::new(),
            },
            trading: TradingSpec {
                sizing: Sizing::Sign,
                threshold: 0.0,
                long_only: false,
                cost_bps: 1.0,
                slippage_bps: 1.0,
            },
            report: ReportSpec {
                objectives: vec!["sharpe".into()],
                per_fold: false,
                budget_epochs: false,
            },
        }
    }
}

/// Names a closed set of choices in specs, on the command line and in JSON: every name is
/// known, and an unknown one is an error (never a fallback).
macro_rules! named {
    ($(#[$doc:meta])* $ty:ident { $($(#[$vdoc:meta])* $variant:ident = $name:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $ty {
            $($(#[$vdoc])* $variant),+
        }

        impl $ty {
            /// Every choice, in the order the docs list them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// Its name in specs, on the command line and in JSON.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// The choice `name` names.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|c| c.name() == name)
            }

            /// The names, comma-separated (for error messages).
            pub fn names() -> String {
                Self::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::from_name(s).ok_or_else(|| format!("`{s}` is not one of {}", Self::names()))
            }
        }
    };
}

named! {
    /// A walk-forward objective's model (`objective.model`) or an ensemble's member.
    ModelKind {
        /// Ridge regression (the baseline).
        Ridge = "ridge",
        /// LightGBM (gradient-boosted trees).
        Lightgbm = "lightgbm",
        /// An LSTM of feature sequences.
        Lstm = "lstm",
        /// Several models on the same rows (`[objective.ensemble]`).
        Ensemble = "ensemble",
    }
}

/// The spec's default model.
impl Default for ModelKind {
    fn default() -> Self {
        ModelKind::Ridge
    }
}

named! {
    /// How predictions become positions (`objective.sizing`).
    Sizing {
        /// Long when the prediction says up, short when down.
        Sign = "sign",
        /// Flat inside a dead band of `threshold` around zero (or one half).
        Threshold = "threshold",
        /// A position in [-1, 1] from the probability of up (2p − 1).
        Probability = "probability",
    }
}

named! {
    /// How an ensemble's members are combined.
    EnsembleMethod {
        /// Fixed weights (equal by default).
        Voting = "voting",
        /// Least-squares weights of the label on the members' predictions.
        Blending = "blending",
        /// Weights from each member's recent skill.
        Dynamic = "dynamic",
        /// A ridge meta-model on the members' out-of-fold predictions.
        Stacking = "stacking",
    }
}

/// `[objective.ensemble]`: several models fitted on the same rows, their predictions combined.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnsembleSpec {
    /// How the members' predictions are combined.
    pub method: EnsembleMethod,
    /// Member models: ridge, LightGBM, the LSTM (each at most once; not an ensemble).
    pub members: Vec<ModelKind>,
    /// Voting weights, one per member (equal when empty).
    pub weights: Vec<f64>,
}

/// How a walk-forward study splits its search period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Splits {
    /// Rolling or expanding windows (`train`, `test`, `step`), purged by the horizon.
    WalkForward,
    /// Combinatorial purged cross-validation: every choice of `test_groups` of `groups`
    /// contiguous groups is a split; the splits form C(N−1, k−1) backtest paths.
    Cpcv {
        /// Groups N.
        groups: u32,
        /// Test groups k per split.
        test_groups: u32,
        /// Days dropped from training after each test block (beyond the purge).
        embargo: u32,
    },
    /// Monte Carlo cross-validation: `windows` test windows of `test` days at seeded random
    /// positions, each trained on every other day (purged, embargoed as CPCV's blocks).
    MonteCarlo {
        /// Test windows.
        windows: u32,
        /// Days dropped from training after each test window (beyond the purge).
        embargo: u32,
        /// Seed of the windows' positions (every trial of the study gets the same).
        seed: u64,
    },
}
