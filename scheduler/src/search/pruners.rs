//! Pruners, following Optuna's semantics so that settings carry over:
//!
//! * percentile (and median = 50th): prune when the trial's best value so far is worse than the
//!   given percentile of the completed trials' values at the same step;
//! * threshold: prune a value outside `[lower, upper]` (or NaN);
//! * ASHA: rungs at `min_resource · η^(s + k)`; at each rung a trial goes on only if its value
//!   is in the top 1/η of all values recorded at that rung (asynchronous: no waiting);
//! * Hyperband: trials are spread over brackets `s = 0 … ⌊log_η(R/r)⌋`, each an ASHA with early
//!   stopping rate `s` that compares trials of its bracket only;
//! * paired: a one-sided Wilcoxon signed-rank test of the trial against the incumbent on the
//!   steps both reported (walk-forward folds), so one bad period does not end a good trial.
//!
//! Pruners hold no state: every verdict is a function of the trials' records, so a restarted
//! scheduler judges exactly as before.
use super::Pruner;
use mlt_protocol::records::{TrialRecord, TrialState};
use mlt_protocol::spec::{
    AshaSpec, Direction, HyperbandSpec, PairedSpec, PercentileSpec, ThresholdSpec,
};

/// The first value of a trial at `step`.
fn at(t: &TrialRecord, step: u64) -> Option<f64> {
    t.intermediate.get(&step).and_then(|v| v.first().copied())
}

/// Optuna's `_is_first_in_interval_step`: is `step` the first reported step of its interval?
fn first_in_interval(t: &TrialRecord, step: u64, warmup: u64, interval: u64) -> bool {
    let nearest_lower = (step - warmup) / interval * interval + warmup;
    let second_last = t.intermediate.keys().copied().filter(|s| *s < step).max();
    second_last.is_none_or(|s| s < nearest_lower)
}

/// Whether a report at `step` is judged: after the warm-up, first in its interval.
fn judged_at(t: &TrialRecord, step: u64, warmup: u64, interval: u64) -> bool {
    step >= warmup && first_in_interval(t, step, warmup, interval)
}

/// numpy's default (linear) percentile of sorted values.
pub fn percentile_of(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let pos = p / 100.0 * (n - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Percentile (and median) pruner.
pub struct PercentilePruner {
    cfg: PercentileSpec,
}

impl PercentilePruner {
    /// From the spec's settings.
    pub fn new(cfg: PercentileSpec) -> Self {
        Self { cfg }
    }
}

impl Pruner for PercentilePruner {
    fn prune(
        &self,
        trial: &TrialRecord,
        step: u64,
        trials: &[TrialRecord],
        direction: Direction,
    ) -> Option<String> {
        let c = &self.cfg;
        if !judged_at(trial, step, c.n_warmup_steps, c.interval_steps) {
            return None;
        }
        let completed = trials.iter().filter(|t| t.state == TrialState::Complete);
        let n_completed = completed.clone().count();
        if n_completed < c.n_startup_trials as usize {
            return None;
        }
        let mut at_step: Vec<f64> = completed
            .filter_map(|t| at(t, step))
            .filter(|v| !v.is_nan())
            .collect();
        if at_step.len() < c.n_min_trials.max(1) as usize {
            return None;
        }
        let mut best: Option<f64> = None;
        for v in trial
            .intermediate
            .range(..=step)
            .filter_map(|(_, v)| v.first())
        {
            if v.is_nan() {
                continue;
            }
            best = Some(match best {
                Some(b) if !direction.better(*v, b) => b,
                _ => *v,
            });
        }
        let Some(best) = best else {
            return Some(format!("every intermediate value up to step {step} is NaN"));
        };
        at_step.sort_by(f64::total_cmp);
        let p = match direction {
            Direction::Minimize => c.percentile,
            Direction::Maximize => 100.0 - c.percentile,
        };
        let q = percentile_of(&at_step, p);
        direction.better(q, best).then(|| {
            let what = if c.percentile == 50.0 {
                "the median".to_string()
            } else {
                format!("the {}th percentile", c.percentile)
            };
            format!(
                "best intermediate value {best} up to step {step} is worse than {what} {q} of {} completed trials at that step",
                at_step.len()
            )
        })
    }
}

/// Threshold pruner.
pub struct ThresholdPruner {
    cfg: ThresholdSpec,
}

impl ThresholdPruner {
    /// From the spec's settings.
    pub fn new(cfg: ThresholdSpec) -> Self {
        Self { cfg }
    }
}

impl Pruner for ThresholdPruner {
    fn prune(
        &self,
        trial: &TrialRecord,
        step: u64,
        _trials: &[TrialRecord],
        _direction: Direction,
    ) -> Option<String> {
        let c = &self.cfg;
        if !judged_at(trial, step, c.n_warmup_steps, c.interval_steps) {
            return None;
        }
        let v = at(trial, step)?;
        if v.is_nan() {
            return Some(format!("value at step {step} is NaN"));
        }
        if let Some(l) = c.lower.filter(|l| v < *l) {
            return Some(format!(
                "value {v} at step {step} is below the lower threshold {l}"
            ));
        }
        if let Some(u) = c.upper.filter(|u| v > *u) {
            return Some(format!(
                "value {v} at step {step} is above the upper threshold {u}"
            ));
        }
        None
    }
}

/// The value a trial recorded for a rung at `promotion_step`: its value at the first step it
/// reported at or after it.
fn rung_value(t: &TrialRecord, promotion_step: u64) -> Option<f64> {
    t.intermediate
        .range(promotion_step..)
        .next()
        .and_then(|(_, v)| v.first().copied())
}

/// Optuna's `_is_trial_promotable_to_next_rung`.
pub fn promotable(value: f64, competing: &mut [f64], eta: u64, direction: Direction) -> bool {
    let n = competing.len();
    if n <= 1 {
        return true;
    }
    let top = ((n as u64 / eta) as usize).max(1);
    competing.sort_by(f64::total_cmp);
    match direction {
        Direction::Maximize => value >= competing[n - top],
        Direction::Minimize => value <= competing[top - 1],
    }
}

/// The rungs of one successive-halving run.
#[derive(Clone, Copy)]
struct Rungs {
    min_resource: u64,
    eta: u64,
    rate: u32,
    bootstrap: u32,
}

/// The shared successive-halving rule; `peers` decides which trials compete.
fn successive_halving(
    trial: &TrialRecord,
    step: u64,
    trials: &[TrialRecord],
    direction: Direction,
    rungs: &Rungs,
    peers: &dyn Fn(&TrialRecord) -> bool,
) -> Option<String> {
    let Rungs {
        min_resource,
        eta,
        rate,
        bootstrap,
    } = *rungs;
    let value = at(trial, step)?;
    let previous = trial
        .intermediate
        .range(..step)
        .next_back()
        .map(|(s, _)| *s);
    let mut k: u32 = 0;
    loop {
        let promotion = eta
            .checked_pow(rate + k)
            .and_then(|p| p.checked_mul(min_resource))?;
        if step < promotion {
            return None;
        }
        // Rungs passed at an earlier report were judged then.
        if previous.is_some_and(|p| p >= promotion) {
            k += 1;
            continue;
        }
        if value.is_nan() {
            return Some(format!("value at step {step} is NaN"));
        }
        let mut competing: Vec<f64> = trials
            .iter()
            .filter(|t| t.number != trial.number && peers(t))
            .filter_map(|t| rung_value(t, promotion))
            .filter(|v| !v.is_nan())
            .collect();
        competing.push(value);
        if competing.len() <= bootstrap as usize {
            return Some(format!(
                "only {} trials reached rung {k} (step {promotion}); bootstrap_count is {bootstrap}",
                competing.len()
            ));
        }
        let n = competing.len();
        if !promotable(value, &mut competing, eta, direction) {
            let top = ((n as u64 / eta) as usize).max(1);
            return Some(format!(
                "value {value} at rung {k} (step {promotion}) is not in the top {top} of {n} trials at that rung"
            ));
        }
        k += 1;
    }
}

/// Asynchronous successive halving.
pub struct AshaPruner {
    cfg: AshaSpec,
}

impl AshaPruner {
    /// From the spec's settings.
    pub fn new(cfg: AshaSpec) -> Self {
        Self { cfg }
    }
}

impl Pruner for AshaPruner {
    fn prune(
        &self,
        trial: &TrialRecord,
        step: u64,
        trials: &[TrialRecord],
        direction: Direction,
    ) -> Option<String> {
        let c = &self.cfg;
        successive_halving(
            trial,
            step,
            trials,
            direction,
            &Rungs {
                min_resource: c.min_resource,
                eta: c.reduction_factor,
                rate: c.min_early_stopping_rate,
                bootstrap: c.bootstrap_count,
            },
            &|_| true,
        )
    }
}

/// Hyperband over ASHA brackets.
pub struct HyperbandPruner {
    cfg: HyperbandSpec,
    seed: u64,
}

impl HyperbandPruner {
    /// From the spec's settings.
    pub fn new(cfg: HyperbandSpec, seed: u64) -> Self {
        Self { cfg, seed }
    }

    /// Number of brackets: ⌊log_η(R / r)⌋ + 1.
    pub fn n_brackets(&self, max_resource: u64) -> u32 {
        let mut n = 0;
        let mut r = self.cfg.min_resource;
        while r <= max_resource {
            n += 1;
            match r.checked_mul(self.cfg.reduction_factor) {
                Some(x) => r = x,
                None => break,
            }
        }
        n.max(1)
    }

    /// Trial budget of each bracket (Optuna's `_calculate_trial_allocation_budget`): bracket
    /// `i` gets ⌈B · η^s / (s + 1)⌉ with s = B − 1 − i.
    pub fn budgets(&self, max_resource: u64) -> Vec<u64> {
        let b = self.n_brackets(max_resource) as u64;
        (0..b)
            .map(|i| {
                let s = b - 1 - i;
                let num = b * self.cfg.reduction_factor.pow(s as u32);
                num.div_ceil(s + 1)
            })
            .collect()
    }

    /// The bracket of trial `number`, drawn in proportion to the budgets.
    pub fn bracket(&self, number: u64, max_resource: u64) -> u32 {
        self.bracket_in(number, &self.budgets(max_resource))
    }

    /// [`HyperbandPruner::bracket`] with the budgets already computed.
    fn bracket_in(&self, number: u64, budgets: &[u64]) -> u32 {
        let total: u64 = budgets.iter().sum();
        let mut h = number ^ self.seed.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        let mut n = h % total;
        for (i, b) in budgets.iter().enumerate() {
            if n < *b {
                return i as u32;
            }
            n -= b;
        }
        budgets.len() as u32 - 1
    }

    fn max_resource(&self, trials: &[TrialRecord]) -> Option<u64> {
        self.cfg.max_resource.or_else(|| {
            // "auto": the last step of the first trial to complete.
            trials
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .min_by_key(|t| (t.finished_ms, t.number))
                .and_then(|t| t.intermediate.keys().next_back().copied())
        })
    }
}

impl Pruner for HyperbandPruner {
    fn prune(
        &self,
        trial: &TrialRecord,
        step: u64,
        trials: &[TrialRecord],
        direction: Direction,
    ) -> Option<String> {
        let max_resource = self.max_resource(trials)?.max(self.cfg.min_resource);
        let budgets = self.budgets(max_resource);
        let bracket = self.bracket_in(trial.number.0, &budgets);
        let reason = successive_halving(
            trial,
            step,
            trials,
            direction,
            &Rungs {
                min_resource: self.cfg.min_resource,
                eta: self.cfg.reduction_factor,
                rate: bracket,
                bootstrap: 0,
            },
            &|t| self.bracket_in(t.number.0, &budgets) == bracket,
        )?;
        Some(format!("bracket {bracket}: {reason}"))
    }
}

/// Paired pruner: one-sided Wilcoxon signed-rank test against the incumbent.
pub struct PairedPruner {
    cfg: PairedSpec,
}

impl PairedPruner {
    /// From the spec's settings.
    pub fn new(cfg: PairedSpec) -> Self {
        Self { cfg }
    }
}

fn first(t: &TrialRecord) -> f64 {
    t.values
        .as_ref()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

/// One-sided p-value of the Wilcoxon signed-rank test that the differences `d` are shifted
/// above zero (zeros dropped; exact without ties for up to 50 differences, else the normal
/// approximation with tie and continuity corrections). Returns (p, W+, n used).
pub fn wilcoxon_greater(d: &[f64]) -> Option<(f64, f64, usize)> {
    let mut nz: Vec<f64> = d
        .iter()
        .copied()
        .filter(|x| *x != 0.0 && !x.is_nan())
        .collect();
    let n = nz.len();
    if n == 0 {
        return None;
    }
    nz.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Average ranks of |d|.
    let mut ranks = vec![0.0; n];
    let mut ties = false;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && nz[j + 1].abs() == nz[i].abs() {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for rk in &mut ranks[i..=j] {
            *rk = r;
        }
        let t = (j - i + 1) as f64;
        if t > 1.0 {
            ties = true;
            tie_term += t * t * t - t;
        }
        i = j + 1;
    }
    let w: f64 = nz
        .iter()
        .zip(&ranks)
        .filter(|(x, _)| **x > 0.0)
        .map(|(_, r)| r)
        .sum();
    let nf = n as f64;
    let p = if !ties && n <= 50 {
        // Exact null distribution of W+: counts of subsets of {1..n} by sum.
        let max = n * (n + 1) / 2;
        let mut counts = vec![0f64; max + 1];
        counts[0] = 1.0;
        for k in 1..=n {
            for s in (k..=max).rev() {
                counts[s] += counts[s - k];
            }
        }
        let total: f64 = counts.iter().sum();
        let from = w.round() as usize;
        counts[from.min(max)..].iter().sum::<f64>() / total
    } else {
        let mean = nf * (nf + 1.0) / 4.0;
        let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
        if var <= 0.0 {
            return None;
        }
        let z = (w - mean - 0.5) / var.sqrt();
        1.0 - super::special::norm_cdf(z)
    };
    Some((p, w, n))
}

impl Pruner for PairedPruner {
    fn prune(
        &self,
        trial: &TrialRecord,
        step: u64,
        trials: &[TrialRecord],
        direction: Direction,
    ) -> Option<String> {
        let completed: Vec<&TrialRecord> = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete && t.values.is_some())
            .collect();
        if completed.len() < self.cfg.n_startup_trials as usize {
            return None;
        }
        let incumbent = completed
            .iter()
            .filter(|t| !t.intermediate.is_empty())
            .copied()
            .reduce(|a, b| {
                if direction.better(first(b), first(a)) {
                    b
                } else {
                    a
                }
            })?;
        let mut diffs = Vec::new();
        for (s, v) in trial.intermediate.range(..=step) {
            if let (Some(x), Some(y)) = (v.first(), at(incumbent, *s)) {
                // Positive = the trial is worse on this step.
                diffs.push(match direction {
                    Direction::Minimize => x - y,
                    Direction::Maximize => y - x,
                });
            }
        }
        if diffs.len() < self.cfg.min_steps as usize {
            return None;
        }
        if diffs.iter().any(|d| d.is_nan()) {
            return Some(format!("a value up to step {step} is NaN"));
        }
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        if mean <= 0.0 {
            return None;
        }
        let (p, w, n) = wilcoxon_greater(&diffs)?;
        (p < self.cfg.alpha).then(|| {
            format!(
                "worse than the incumbent (trial {}) on {} shared steps: Wilcoxon W+ = {w}, one-sided p = {p:.4} < {}",
                incumbent.number.0, n, self.cfg.alpha
            )
        })
    }
}

#[cfg(test)]
mod tests;
