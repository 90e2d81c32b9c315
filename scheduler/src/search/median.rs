//! The median pruner (Optuna's `MedianPruner`): prune a trial whose best intermediate value so
//! far is worse than the median of the completed trials' values at the same step.
use super::Pruner;
use mlt_protocol::records::{TrialRecord, TrialState};
use mlt_protocol::spec::{Direction, MedianSpec};

/// Median rule with start-up trials, warm-up steps and an interval.
pub struct MedianPruner {
    cfg: MedianSpec,
}

impl MedianPruner {
    /// From the spec's settings.
    pub fn new(cfg: MedianSpec) -> Self {
        Self { cfg }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

impl Pruner for MedianPruner {
    fn prune(
        &self,
        trial: &TrialRecord,
        step: u64,
        trials: &[TrialRecord],
        direction: Direction,
    ) -> Option<String> {
        let completed: Vec<&TrialRecord> = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .collect();
        if completed.len() < self.cfg.n_startup_trials as usize || step < self.cfg.n_warmup_steps {
            return None;
        }
        if (step - self.cfg.n_warmup_steps) % self.cfg.interval_steps != 0 {
            return None;
        }
        let at_step: Vec<f64> = completed
            .iter()
            .filter_map(|t| t.intermediate.get(&step).and_then(|v| v.first().copied()))
            .filter(|v| !v.is_nan())
            .collect();
        if at_step.len() < self.cfg.n_min_trials.max(1) as usize {
            return None;
        }
        let best = trial
            .intermediate
            .range(..=step)
            .filter_map(|(_, v)| v.first().copied())
            .filter(|v| !v.is_nan())
            .reduce(|a, b| if direction.better(a, b) { a } else { b })?;
        let m = median(at_step.clone());
        direction.better(m, best).then(|| {
            format!("best intermediate value {best} up to step {step} is worse than the median {m} of {} completed trials", at_step.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::ids::{StudyId, TrialId};
    use std::collections::BTreeMap;

    fn t(n: u64, state: TrialState, curve: &[f64]) -> TrialRecord {
        TrialRecord {
            study: StudyId(1),
            number: TrialId(n),
            state,
            attempt: 1,
            values: None,
            params: BTreeMap::new(),
            intermediate: curve
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u64 + 1, vec![*v]))
                .collect(),
            node: None,
            slot: None,
            message: None,
            created_ms: 0,
            started_ms: None,
            finished_ms: None,
        }
    }

    fn pruner(startup: u32, warmup: u64, interval: u64) -> MedianPruner {
        MedianPruner::new(MedianSpec {
            n_startup_trials: startup,
            n_warmup_steps: warmup,
            interval_steps: interval,
            n_min_trials: 1,
        })
    }

    #[test]
    fn prunes_worse_than_median_only_after_startup_and_warmup() {
        let done: Vec<TrialRecord> = [[1.0, 0.5], [2.0, 1.0], [3.0, 1.5]]
            .iter()
            .enumerate()
            .map(|(i, c)| t(i as u64, TrialState::Complete, c))
            .collect();
        let bad = t(9, TrialState::Running, &[5.0, 4.0]);
        let good = t(10, TrialState::Running, &[1.5, 0.9]);
        let p = pruner(3, 0, 1);
        // Median at step 2 is 1.0: bad (best 4.0) is pruned, good (best 0.9) is not.
        assert!(p
            .prune(&bad, 2, &done, Direction::Minimize)
            .unwrap()
            .contains("median 1"));
        assert!(p.prune(&good, 2, &done, Direction::Minimize).is_none());
        // Maximising flips the verdicts.
        assert!(p.prune(&bad, 2, &done, Direction::Maximize).is_none());
        assert!(p.prune(&good, 2, &done, Direction::Maximize).is_none());
        let low = t(11, TrialState::Running, &[0.2, 0.1]);
        assert!(p.prune(&low, 2, &done, Direction::Maximize).is_some());
        // Not enough completed trials yet.
        assert!(pruner(4, 0, 1)
            .prune(&bad, 2, &done, Direction::Minimize)
            .is_none());
        // Still warming up.
        assert!(pruner(3, 3, 1)
            .prune(&bad, 2, &done, Direction::Minimize)
            .is_none());
        // Off the interval: steps 1, 3, 5 … are checked with interval 2 from warm-up 1.
        assert!(pruner(3, 1, 2)
            .prune(&bad, 2, &done, Direction::Minimize)
            .is_none());
        assert!(pruner(3, 1, 2)
            .prune(&bad, 1, &done, Direction::Minimize)
            .is_some());
        // Running and pruned trials do not count towards the median.
        let mut others = done.clone();
        others.push(t(4, TrialState::Running, &[0.0, 0.0]));
        assert!(p.prune(&good, 2, &others, Direction::Minimize).is_none());
    }
}
