//! What a running evaluation sees of whoever runs it: a place to report each step's values
//! (and learn whether to stop), a stop flag, and the slot's threads and GPU. A node's worker
//! implements it over its connection; tests and benchmarks implement it in a few lines.
use mlt_protocol::messages::Verdict;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a running trial can do: report intermediate values and see whether it must stop.
pub trait TrialContext {
    /// Reports `values` at `step` and returns the scheduler's verdict.
    fn report(&mut self, step: u64, values: Vec<f64>) -> Verdict;
    /// Whether the trial must stop now (pruned, cancelled, stale, node draining).
    fn stopped(&self) -> bool;
    /// Threads the trial may use (its worker slot's CPUs).
    fn threads(&self) -> u32 {
        1
    }
    /// The worker slot's GPU, if it has one.
    fn gpu(&self) -> Option<u32> {
        None
    }
}

/// A shared stop flag.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Raises the flag.
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it is raised.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
