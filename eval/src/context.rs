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
    /// A data file the trial read (its lineage).
    fn dataset(&mut self, _d: mlt_protocol::lineage::DatasetUse) {}
    /// A fold ended: its windows, time and training curve (its lineage).
    fn fold(&mut self, _f: mlt_protocol::lineage::FoldRun) {}
}

/// CPU seconds this process has used so far, all threads (0 where it cannot be read):
/// `/proc/self/stat`'s user and system time, in Linux's USER_HZ ticks of 10 ms.
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indices 11 and 12 after the name.
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
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
