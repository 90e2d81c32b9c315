//! A trial's lineage: where and how it ran, as its node saw it, sent with its result and kept
//! with the trial (`mlt-cluster trial STUDY N`).
use serde::{Deserialize, Serialize};

/// Where and how one attempt of a trial ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The node's name.
    pub node: String,
    /// The node's CPU model (from /proc/cpuinfo; empty where unknown).
    pub cpu: String,
    /// Logical cores of the node's machine.
    pub cores: u32,
    /// The GPU the trial ran on (its index on the node), if any.
    pub gpu: Option<u32>,
    /// Threads the trial was given (its worker slot's CPUs).
    pub threads: u32,
    /// The node binary's version.
    pub version: String,
    /// The git commit the node binary was built from (`unknown` outside a git checkout; with
    /// `+dirty` when the tree had changes).
    pub commit: String,
    /// The model's seed (walk-forward: the trial's number, or the evaluated trial's for a
    /// hold-out evaluation).
    pub model_seed: Option<u64>,
    /// The data files the trial read.
    pub datasets: Vec<DatasetUse>,
    /// Each fold's windows, time and training curve (walk-forward).
    pub folds: Vec<FoldRun>,
    /// Wall seconds of the whole trial on the node.
    pub wall_s: f64,
    /// CPU seconds of the node's process over the trial (all its threads: with several slots
    /// busy it includes their trials too).
    pub cpu_s: f64,
}

/// One data file a trial read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetUse {
    /// The instrument or file name.
    pub name: String,
    /// SHA-256 of the file's bytes (lower-case hex), or of the generator's settings for the
    /// synthetic market.
    pub sha256: String,
    /// First and last day of its bars (days since 1970-01-01).
    pub first_day: i64,
    /// Last day.
    pub last_day: i64,
    /// Bars.
    pub rows: u64,
}

/// One fold of a walk-forward trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldRun {
    /// 1, 2, …
    pub fold: u32,
    /// First and last training day (days since 1970-01-01).
    pub train: (i64, i64),
    /// First and last test day.
    pub test: (i64, i64),
    /// Wall seconds (fit, predict and trade).
    pub wall_s: f64,
    /// CPU seconds of the node's process meanwhile.
    pub cpu_s: f64,
    /// The model's training curve, for models trained in rounds or epochs.
    pub curve: Option<Curve>,
}

/// Why training stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// All rounds or epochs ran.
    Limit,
    /// The validation loss had not improved for the early-stopping patience.
    EarlyStopping,
    /// The trial was stopped (pruned, cancelled) during training.
    Interrupted,
}

/// A model's loss per boosting round (LightGBM) or epoch (LSTM), on its training rows and on
/// the validation tail held back from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The loss: `l2`, `binary_logloss` (LightGBM's), `mse` (the LSTM's).
    pub metric: String,
    /// `round` or `epoch`.
    pub unit: String,
    /// Rounds or epochs between points (LightGBM's curve keeps at most 100 points).
    pub every: u32,
    /// Training loss at each point (after `every`, 2·`every`, … rounds or epochs).
    pub train: Vec<f64>,
    /// Validation loss at each point (empty without a validation tail).
    pub valid: Vec<f64>,
    /// The point kept (1-based; round or epoch `best`·`every`): the best on validation.
    pub best: u32,
    /// Why training stopped.
    pub stopped: Stopped,
}
