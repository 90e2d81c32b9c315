//! Records of studies, trials and nodes, as the scheduler stores them and as listings show
//! them (`--json` prints these with serde_json).
use crate::ids::{NodeId, SlotId, StudyId, TrialId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A parameter's value. In JSON and TOML it is the bare value (`0.1`, `3`, `"gbdt"`, `true`);
/// on the wire (postcard, which is not self-describing) it is tagged.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// A boolean categorical choice.
    Bool(bool),
    /// An integer parameter or choice.
    Int(i64),
    /// A float parameter or choice.
    Float(f64),
    /// A string choice.
    Str(String),
}

#[derive(Serialize, Deserialize)]
enum TaggedValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum BareValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Serialize for ParamValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.clone();
        if s.is_human_readable() {
            match v {
                ParamValue::Bool(b) => BareValue::Bool(b),
                ParamValue::Int(i) => BareValue::Int(i),
                ParamValue::Float(f) => BareValue::Float(f),
                ParamValue::Str(x) => BareValue::Str(x),
            }
            .serialize(s)
        } else {
            match v {
                ParamValue::Bool(b) => TaggedValue::Bool(b),
                ParamValue::Int(i) => TaggedValue::Int(i),
                ParamValue::Float(f) => TaggedValue::Float(f),
                ParamValue::Str(x) => TaggedValue::Str(x),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(if d.is_human_readable() {
            match BareValue::deserialize(d)? {
                BareValue::Bool(b) => ParamValue::Bool(b),
                BareValue::Int(i) => ParamValue::Int(i),
                BareValue::Float(f) => ParamValue::Float(f),
                BareValue::Str(x) => ParamValue::Str(x),
            }
        } else {
            match TaggedValue::deserialize(d)? {
                TaggedValue::Bool(b) => ParamValue::Bool(b),
                TaggedValue::Int(i) => ParamValue::Int(i),
                TaggedValue::Float(f) => ParamValue::Float(f),
                TaggedValue::Str(x) => ParamValue::Str(x),
            }
        })
    }
}

impl ParamValue {
    /// The value as a float, where it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            ParamValue::Bool(_) | ParamValue::Str(_) => None,
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => f.write_str(s),
        }
    }
}

/// Named metrics a trial reported with its result (Sharpe, max drawdown, …).
pub type Metrics = BTreeMap<String, f64>;

/// A trial's out-of-sample returns, one per day (days since 1970-01-01).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReturnSeries {
    /// Days since the Unix epoch.
    pub days: Vec<i64>,
    /// The strategy's return on each day.
    pub values: Vec<f64>,
}

/// A trial's out-of-sample trading, day by day: what `mlt-cluster returns` prints.
///
/// Row `i` is a decision at the close of `decided[i]`: the portfolio holds `positions[i]` (one
/// per instrument) from that close to the next, and earns `returns[i]` (after costs) on the
/// day `earned[i]`, the next bar's date (None past the end of the data, where nothing is
/// earned). `benchmark[i]` is what buy-and-hold of the traded instrument (or the equal-weight
/// universe) earned over the same day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DailySeries {
    /// Decision days (days since the Unix epoch).
    pub decided: Vec<i64>,
    /// The days the returns are earned on: the next bar's date.
    pub earned: Vec<Option<i64>>,
    /// The strategy's return, after costs.
    pub returns: Vec<f64>,
    /// The benchmark's return over the same day.
    pub benchmark: Vec<f64>,
    /// The instruments, in the order of each row of `positions`.
    pub instruments: Vec<String>,
    /// The positions held, one row per day, one column per instrument.
    pub positions: Vec<Vec<f64>>,
    /// These days broken down by fold, calendar year and market regime.
    pub stability: Stability,
}

/// Some of a trial's out-of-sample days (a fold, a year, a regime) and how it did on them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    /// Which: the fold's number from 1, the year, `calm`/`normal`/`volatile`, `up`/`down`.
    pub label: String,
    /// Days.
    pub days: u64,
    /// Annualised Sharpe ratio of their returns.
    pub sharpe: f64,
    /// Their compounded return.
    pub total_return: f64,
    /// The share of days with a position that made money (NaN: never in the market).
    pub hit_rate: f64,
    /// Spearman's correlation of the predictions and the realised forward returns over the
    /// label's horizon (the information coefficient; NaN with fewer than 3 pairs).
    pub ic: f64,
}

/// Robustness of a trial's out-of-sample trading: per fold (walk-forward fold, CPCV group,
/// Monte Carlo window), per calendar year of the day a return is earned, per terciles of the
/// benchmark's trailing 63-day volatility, and per sign of its trailing 63-day return.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    /// Per fold, in order.
    pub folds: Vec<Slice>,
    /// Per calendar year.
    pub years: Vec<Slice>,
    /// `calm`, `normal`, `volatile`.
    pub volatility: Vec<Slice>,
    /// `up`, `down`.
    pub trend: Vec<Slice>,
}

impl DailySeries {
    /// Whether every column has one entry per day.
    pub fn is_consistent(&self) -> bool {
        let n = self.decided.len();
        self.earned.len() == n
            && self.returns.len() == n
            && self.benchmark.len() == n
            && self.positions.len() == n
            && self
                .positions
                .iter()
                .all(|p| p.len() == self.instruments.len())
    }

    /// The returns by decision day (the series PBO compares across trials).
    pub fn by_decision_day(&self) -> ReturnSeries {
        ReturnSeries {
            days: self.decided.clone(),
            values: self.returns.clone(),
        }
    }
}

/// The data a hold-out evaluation was tested on: the content hash of the whole dataset (every
/// instrument's dates and prices, after alignment) and the hold-out's first and last day. The
/// store's hold-out ledger counts evaluations per window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HoldoutWindow {
    /// SHA-256 of the aligned bars, hex.
    pub data: String,
    /// The hold-out's first day (days since the Unix epoch).
    pub first: i64,
    /// Its last day.
    pub last: i64,
}

impl HoldoutWindow {
    /// The ledger's key: `data:first:last`.
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.data, self.first, self.last)
    }

    /// The window of a ledger key.
    pub fn from_key(key: &str) -> Option<HoldoutWindow> {
        let mut parts = key.rsplitn(3, ':');
        let last = parts.next()?.parse().ok()?;
        let first = parts.next()?.parse().ok()?;
        Some(HoldoutWindow {
            data: parts.next()?.to_string(),
            first,
            last,
        })
    }
}

/// What a backup of the store wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupReport {
    /// The copy.
    pub path: String,
    /// Rows copied, every table together.
    pub rows: u64,
    /// The copy's size in bytes.
    pub bytes: u64,
}

/// How often a hold-out has been looked at: the store's ledger for one window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerCount {
    /// The data and window.
    pub window: HoldoutWindow,
    /// Hold-out evaluations on it, of every study in the store.
    pub evaluations: u64,
    /// The studies they belong to.
    pub studies: u64,
    /// Those of the study asked about.
    pub this_study: u64,
    /// Their trial numbers (each a hold-out evaluation of its own).
    pub trials: Vec<u64>,
    /// The variance of their Sharpe ratios per period (ddof 1; 0 with one).
    pub sharpe_variance: f64,
}

/// A model fitted by a trial (on its last fold), with what is needed to use it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// `lightgbm` (LightGBM's model text), `lstm` (JSON with burn's record) or `ridge` (JSON).
    pub format: String,
    /// The model itself (text for both formats).
    pub model: String,
    /// The features, in the model's column order: name and expression, with the trial's
    /// parameters substituted.
    pub features: Vec<(String, String)>,
    /// Whether it predicts the probability of "up" (else the forward return).
    pub classify: bool,
    /// Label horizon (days).
    pub horizon: u32,
    /// Prices were scaled by adj close / close.
    pub adjusted: bool,
    /// First and last training day (days since 1970-01-01).
    pub trained: (i64, i64),
    /// Boosting rounds (LightGBM) or epochs (LSTM) kept after early stopping.
    pub rounds: Option<u32>,
    /// Days per input sequence (the LSTM); 1 for models of one day's features.
    pub lookback: u32,
    /// Per feature: total gain, split count and mean |SHAP contribution| on the rows the fold
    /// tested (empty for models without them).
    pub importance: Vec<FeatureImportance>,
}

/// How much a model relies on one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    /// Feature name.
    pub feature: String,
    /// Total gain of its splits.
    pub gain: f64,
    /// Number of splits on it.
    pub split: f64,
    /// Mean absolute SHAP contribution (LightGBM's pred_contrib).
    pub shap: f64,
}

/// The Probability of Backtest Overfitting of a study (CSCV over its trials' returns).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverfitReport {
    /// Share of splits whose in-sample best trial ranks at or below the median out of sample.
    pub pbo: f64,
    /// Trials in the matrix (complete, with returns).
    pub strategies: u64,
    /// Days they all have.
    pub observations: u64,
    /// Blocks the days were cut into.
    pub blocks: u32,
    /// Splits evaluated: C(blocks, blocks/2).
    pub combinations: u64,
    /// How often the in-sample best was each trial (trial number, count), most often first.
    pub chosen: Vec<(TrialId, u64)>,
}

/// A dataset held by the scheduler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// File name it was uploaded as.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// A trial's parameters, by name. Inactive conditional parameters are absent.
pub type Params = BTreeMap<String, ParamValue>;

/// Where a trial is in its lifecycle (DESIGN §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Sampled or re-queued, not running.
    Waiting,
    /// Running on a worker slot under a lease.
    Running,
    /// Finished with values.
    Complete,
    /// Stopped early by the pruner.
    Pruned,
    /// The objective raised, or the study was cancelled while it ran.
    Failed,
    /// Its node vanished more often than `max_attempts` allows.
    Lost,
}

impl TrialState {
    /// Whether the trial has ended for good.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Complete | TrialState::Pruned | TrialState::Failed | TrialState::Lost
        )
    }

    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Waiting => "waiting",
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
            TrialState::Lost => "lost",
        }
    }
}

impl fmt::Display for TrialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One trial, as stored and listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// The study.
    pub study: StudyId,
    /// The trial's number in the study.
    pub number: TrialId,
    /// Lifecycle state.
    pub state: TrialState,
    /// Current attempt (1 = first).
    pub attempt: u32,
    /// Final objective values (the last reported values for a pruned trial).
    pub values: Option<Vec<f64>>,
    /// Parameters.
    pub params: Params,
    /// Intermediate values by step.
    pub intermediate: BTreeMap<u64, Vec<f64>>,
    /// Node that runs or ran the current attempt.
    pub node: Option<NodeId>,
    /// Slot on that node.
    pub slot: Option<SlotId>,
    /// Error text of a failed trial (the tail of stderr for `command`), or the prune reason.
    pub message: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When the current attempt started.
    pub started_ms: Option<u64>,
    /// When the trial finished.
    pub finished_ms: Option<u64>,
    /// Where its parameters came from.
    pub origin: TrialOrigin,
    /// The sampler's generation (CMA-ES, NSGA-II, GA), when it works in generations.
    pub generation: Option<u32>,
    /// Constraint values of a finished trial: ≤ 0 is satisfied, > 0 is the violation.
    pub constraints: Option<Vec<f64>>,
    /// Metrics reported with the result.
    pub metrics: Metrics,
}

/// Where a trial's parameters came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialOrigin {
    /// The study's sampler.
    #[default]
    Sampler,
    /// An `[[enqueue]]` entry of the spec (its index).
    Enqueued(u32),
    /// Copied, finished, from another study (`warm_start`): its name and trial number.
    WarmStart(String, u64),
    /// The evaluation of a finished trial (its number) on the hold-out period, when the
    /// search is over. Not part of the search: no sampler, pruner or `best` sees it.
    Holdout(u64),
}

/// Where a study is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudyState {
    /// Trials are being handed out.
    Running,
    /// `n_trials` trials have finished.
    Complete,
    /// Cancelled by a user.
    Cancelled,
}

impl fmt::Display for StudyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StudyState::Running => "running",
            StudyState::Complete => "complete",
            StudyState::Cancelled => "cancelled",
        })
    }
}

/// Counts of a study's trials by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialCounts {
    /// Waiting.
    pub waiting: u64,
    /// Running.
    pub running: u64,
    /// Complete.
    pub complete: u64,
    /// Pruned.
    pub pruned: u64,
    /// Failed.
    pub failed: u64,
    /// Lost.
    pub lost: u64,
}

impl TrialCounts {
    /// Trials that have ended for good.
    pub fn finished(&self) -> u64 {
        self.complete + self.pruned + self.failed + self.lost
    }

    fn slot(&mut self, state: TrialState) -> &mut u64 {
        match state {
            TrialState::Waiting => &mut self.waiting,
            TrialState::Running => &mut self.running,
            TrialState::Complete => &mut self.complete,
            TrialState::Pruned => &mut self.pruned,
            TrialState::Failed => &mut self.failed,
            TrialState::Lost => &mut self.lost,
        }
    }

    /// Adds one trial in `state`.
    pub fn add(&mut self, state: TrialState) {
        *self.slot(state) += 1;
    }

    /// Moves one trial from `from` to `to`.
    pub fn moved(&mut self, from: TrialState, to: TrialState) {
        *self.slot(from) -= 1;
        *self.slot(to) += 1;
    }
}

/// A study in a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudySummary {
    /// Id.
    pub id: StudyId,
    /// Unique name.
    pub name: String,
    /// State.
    pub state: StudyState,
    /// Budget.
    pub n_trials: u64,
    /// The search's own trials by state (sampled or enqueued; not the hold-out evaluations, not
    /// the trials copied by a warm start).
    pub counts: TrialCounts,
    /// Best values so far (single objective), or None.
    pub best_value: Option<f64>,
    /// Number of the best trial.
    pub best_trial: Option<TrialId>,
    /// Objective directions, `minimize` or `maximize`.
    pub directions: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The hold-out evaluations queued after the search (not budget, not in `counts`).
    pub holdout_runs: u64,
    /// The trials a warm start copied from another study (not in `counts`).
    pub warm_started: u64,
    /// Problems found in the study's data when it was submitted, one line each.
    pub data_warnings: Vec<String>,
}

/// A node in a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    /// Id.
    pub id: NodeId,
    /// Name (host name).
    pub name: String,
    /// Slots.
    pub slots: u32,
    /// GPUs.
    pub gpus: u32,
    /// Trials running now.
    pub running: u32,
    /// Whether a session is connected now.
    pub connected: bool,
    /// Whether it stopped taking work.
    pub draining: bool,
    /// Milliseconds since its last heartbeat.
    pub last_heartbeat_ms: u64,
}

/// Scheduler counters and latency figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerMetrics {
    /// Trials handed to workers.
    pub assigned: u64,
    /// Trial results recorded.
    pub finished: u64,
    /// Connections refused at the handshake.
    pub refused: u64,
    /// Connections closed for a malformed or oversized frame.
    pub bad_frames: u64,
    /// Stale reports ignored.
    pub stale: u64,
    /// Leases that expired.
    pub leases_expired: u64,
    /// Trials a node said it does not run (at registration or in a heartbeat), re-queued.
    pub reconciled: u64,
    /// Durable store commits.
    pub commits: u64,
    /// Median time from a slot's request to its assignment being sent, in microseconds.
    pub assign_p50_us: u64,
    /// 99th percentile of the same.
    pub assign_p99_us: u64,
}

/// The answer to `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Scheduler version.
    pub version: String,
    /// Studies.
    pub studies: Vec<StudySummary>,
    /// Nodes.
    pub nodes: Vec<NodeSummary>,
    /// Counters.
    pub metrics: SchedulerMetrics,
}
