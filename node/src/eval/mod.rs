//! The evaluation engine (DESIGN §8): data → features → labels → splits → model → backtest →
//! metrics. Built up part by part.
//!
//! ```text
//! metrics.rs   performance metrics with empyrical's conventions
//! splits.rs    time-series, walk-forward (purged) and combinatorial purged CV splits
//! ```
pub mod metrics;
pub mod splits;
