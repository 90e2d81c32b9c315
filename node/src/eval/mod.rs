//! The evaluation engine (DESIGN §8): data → features → labels → splits → model → backtest →
//! metrics. Built up part by part.
//!
//! ```text
//! data.rs      daily OHLCV bars from CSV, validated
//! metrics.rs   performance metrics with empyrical's conventions
//! splits.rs    time-series, walk-forward (purged) and combinatorial purged CV splits
//! ```
pub mod data;
pub mod metrics;
pub mod splits;
