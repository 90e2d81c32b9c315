//! mlt-eval: the evaluation engine (DESIGN §8), a library first. It runs without a node, a
//! socket or a store: the node's `walk_forward` objective, the CLI (`stats`, `predict`,
//! `ensemble`), the benchmarks and the prediction server are thin callers of it.
//!
//! The stages, in the order a trial goes through them:
//!
//! ```text
//! data.rs        daily OHLCV bars from CSV or Parquet, validated
//! synthetic.rs   the seeded synthetic market (regimes, GARCH, fat tails, a weak known edge)
//! universe.rs    a data source's instruments, aligned on their common dates
//! cache.rs       bars and guarded feature columns kept on a node for later trials
//! features.rs    the feature expression language, `$parameters`, the look-ahead guard
//! labels.rs      forward returns and their direction over a horizon
//! splits.rs      purged walk-forward and combinatorial purged CV splits
//! models/        the Model trait, settings, ridge, LightGBM, the LSTM, ensembles
//! combine.rs     dynamic weights and stacking, shared by every kind of ensemble
//! backtest.rs    positions from predictions, costs, turnover, direction scores
//! metrics.rs     performance metrics with empyrical's conventions; moments
//! selection.rs   PSR, DSR, minimum track record, PBO (CSCV) over a study's trials
//! special.rs     the normal distribution's CDF, quantile and logarithms
//! pipeline/      the walk-forward trial (orchestrator, folds, trader, study ensembles)
//! drift.rs       PSI and the two-sample KS test (exact, as SciPy) for monitoring
//! ab.rs          A/B comparison of two served versions from the prediction log
//! predict.rs     predictions from a kept model on new bars
//! stream.rs      the same features one bar at a time, for real-time serving
//! context.rs     TrialContext: how a running evaluation reports a step and learns to stop
//! ```
//!
//! Features: `lightgbm` (lightgbm3, builds LightGBM's C++), `lstm` (burn on its flex CPU
//! backend), `cuda` (burn's CUDA backend for the LSTM). Without them the crate has the ridge
//! baseline, ensembles of what is built, and everything else.
#![deny(unsafe_code)]

pub mod ab;
pub mod backtest;
pub mod cache;
pub mod combine;
pub mod context;
pub mod curves;
pub mod data;
pub mod drift;
pub mod features;
pub mod labels;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod predict;
pub mod selection;
pub mod special;
pub mod splits;
pub mod stream;
pub mod synthetic;
pub mod universe;

pub use context::{StopFlag, TrialContext};
pub use pipeline::{
    adjusted_levels, check as check_walk_forward, ensemble_of_trials, refit, run_walk_forward,
    run_walk_forward_timed, validation_split, Timings, Trial, TrialEnsemble,
};
pub use universe::load;
