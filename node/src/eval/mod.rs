//! The evaluation engine (DESIGN §8): data → features → labels → splits → model → backtest →
//! metrics. Built up part by part.
//!
//! ```text
//! cache.rs     feature columns computed and guarded once per node, reused by later trials
//! data.rs      daily OHLCV bars from CSV, validated
//! ensemble.rs  several models on the same rows: voting, blending, dynamic weights
//! features.rs  the feature expression language and the look-ahead guard
//! backtest.rs  labels, positions from predictions, costs, turnover, direction scores
//! model.rs     the Model trait, the ridge baseline, models from settings and artifacts
//! predict.rs   predictions from a kept model on new bars
//! lstm.rs      an LSTM of feature sequences (burn; flex CPU, or CUDA with the `cuda` feature)
//! lgbm_staged.rs LightGBM boosted in stages (rounds as the pruning budget)
//! lgbm.rs      LightGBM (lightgbm3): early stopping on the training tail, importance, SHAP
//! metrics.rs   performance metrics with empyrical's conventions
//! synthetic.rs seeded synthetic market (regimes, GARCH, fat tails, a weak known edge)
//! splits.rs    time-series, walk-forward (purged) and combinatorial purged CV splits
//! ```
pub mod backtest;
pub mod cache;
pub mod data;
pub mod ensemble;
pub mod features;
pub mod lgbm;
pub mod lgbm_staged;
pub mod lstm;
pub mod metrics;
pub mod model;
pub mod predict;
pub mod splits;
pub mod synthetic;
