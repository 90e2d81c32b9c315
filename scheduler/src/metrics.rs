//! Counters and the assignment-latency histogram, shared by all actors.
use mlt_protocol::records::SchedulerMetrics;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Log-spaced buckets: 8 per power of two, from 1 µs to ~1000 s.
const BUCKETS: usize = 8 * 30;

/// Live counters.
#[derive(Debug)]
pub struct Metrics {
    /// Trials assigned.
    pub assigned: AtomicU64,
    /// Results recorded.
    pub finished: AtomicU64,
    /// Handshakes refused.
    pub refused: AtomicU64,
    /// Connections closed for a bad frame.
    pub bad_frames: AtomicU64,
    /// Stale reports.
    pub stale: AtomicU64,
    /// Leases expired.
    pub leases_expired: AtomicU64,
    /// Trials a node said it does not run, put back in the queue.
    pub reconciled: AtomicU64,
    /// Store commits.
    pub commits: AtomicU64,
    latency: Mutex<Vec<u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            assigned: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            leases_expired: AtomicU64::new(0),
            reconciled: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            latency: Mutex::new(vec![0; BUCKETS]),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    let us = us.max(1) as f64;
    ((us.log2() * 8.0) as usize).min(BUCKETS - 1)
}

fn bucket_value(b: usize) -> u64 {
    2f64.powf((b as f64 + 0.5) / 8.0) as u64
}

impl Metrics {
    /// Records one assignment latency.
    pub fn record_assign(&self, d: Duration) {
        self.assigned.fetch_add(1, Relaxed);
        let b = bucket_of(d.as_micros() as u64);
        self.latency.lock().expect("metrics lock")[b] += 1;
    }

    /// The `q` quantile of assignment latency in µs (bucket midpoint, ±5 %).
    pub fn assign_quantile_us(&self, q: f64) -> u64 {
        let h = self.latency.lock().expect("metrics lock");
        let total: u64 = h.iter().sum();
        if total == 0 {
            return 0;
        }
        let target = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in h.iter().enumerate() {
            seen += n;
            if seen >= target {
                return bucket_value(b);
            }
        }
        bucket_value(BUCKETS - 1)
    }

    /// A snapshot for `status`.
    pub fn snapshot(&self) -> SchedulerMetrics {
        SchedulerMetrics {
            assigned: self.assigned.load(Relaxed),
            finished: self.finished.load(Relaxed),
            refused: self.refused.load(Relaxed),
            bad_frames: self.bad_frames.load(Relaxed),
            stale: self.stale.load(Relaxed),
            leases_expired: self.leases_expired.load(Relaxed),
            reconciled: self.reconciled.load(Relaxed),
            commits: self.commits.load(Relaxed),
            assign_p50_us: self.assign_quantile_us(0.5),
            assign_p99_us: self.assign_quantile_us(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_land_within_a_bucket() {
        let m = Metrics::default();
        for us in 1..=1000u64 {
            m.record_assign(Duration::from_micros(us));
        }
        let p50 = m.assign_quantile_us(0.5) as f64;
        let p99 = m.assign_quantile_us(0.99) as f64;
        assert!((p50 / 500.0 - 1.0).abs() < 0.1, "{p50}");
        assert!((p99 / 990.0 - 1.0).abs() < 0.1, "{p99}");
        assert_eq!(m.snapshot().assigned, 1000);
    }
}
