//! The tree-structured Parzen estimator (Bergstra et al. 2011; Watanabe 2023 for the choices
//! that matter), following Optuna's `TPESampler` defaults so that results carry over:
//!
//! * trials are split into a good set (the best `min(ceil(γ·n), γ_max)`) and the rest; pruned
//!   trials rank after complete ones (deeper first), infeasible ones after those (smaller
//!   violation first), running ones count as bad with `constant_liar`;
//! * a kernel density l(x) over the good set and g(x) over the rest, each with a uniform prior
//!   component; univariate bandwidths from neighbour gaps, multivariate ones from Scott's rule,
//!   both clipped to [range / min(100, n + 1), range]; older trials get less weight once there
//!   are more than 25;
//! * `n_ei_candidates` draws from l, the one with the largest l(x)/g(x) wins;
//! * several objectives: the good set is filled by non-dominated rank, the last rank by
//!   hypervolume contribution, and good trials are weighted by their contribution (MOTPE).
//!
//! The cost of one suggestion is dominated by evaluating g at the candidates. Kernels are kept
//! sorted by centre with running maxima of their bandwidths, so each evaluation visits only the
//! kernels within 6 bandwidths of the point, widening to 8 when the bound on what it skips
//! could exceed 1e-6 of the density (see `Kde1::log_pdf`).
#![allow(clippy::needless_range_loop)] // index loops read best in the linear algebra
use super::mo;
use super::space::{assemble, line, normal, searchable, Encoded, Line};
use super::special::{log_norm_mass, norm_cdf};
use super::{trial_rng, Ask, Sampler, Suggestion};
use mlt_protocol::records::{Params, TrialState};
use mlt_protocol::spec::{SearchSpace, TpeSpec};
use rand::Rng;
use std::collections::BTreeMap;

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
const WINDOW: f64 = 8.0;
const WINDOW_NARROW: f64 = 6.0;
/// Bandwidths around a point whose kernels make the lower bound of a density.
const WINDOW_LOWER: f64 = 2.0;
const EPS: f64 = 1e-12;

/// The TPE sampler.
pub struct TpeSampler {
    cfg: TpeSpec,
    seed: u64,
    enc: Encoded,
    groups: Option<Vec<Vec<usize>>>,
    /// Per continuous column: (value, trial) of every trial that has it, by value.
    sorted: Vec<Vec<(f64, u32)>>,
    sorted_upto: usize,
}

impl TpeSampler {
    /// From the spec's settings and the study seed.
    pub fn new(cfg: TpeSpec, seed: u64) -> Self {
        Self {
            cfg,
            seed,
            enc: Encoded::default(),
            groups: None,
            sorted: Vec::new(),
            sorted_upto: 0,
        }
    }
}

/// Optuna's weights: flat for the newest 25 observations, a linear ramp from 1/n for older.
pub fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

/// The good and bad trials (indices into the trials), each sorted by trial number, and the
/// good trials' weights when several objectives set them.
#[derive(Debug, PartialEq)]
pub struct Split {
    /// Good.
    pub below: Vec<usize>,
    /// Bad (including running trials under `constant_liar`).
    pub above: Vec<usize>,
    /// MOTPE weights of `below` (same order), if any.
    pub below_weights: Option<Vec<f64>>,
    /// Per trial: 0 = not used, 1 = good, 2 = bad.
    pub mask: Vec<u8>,
    /// Per bad trial: its age rank among the bad trials.
    pub rank: Vec<u32>,
}

/// Splits the trials as described in the module docs; `None` before `n_startup_trials`.
pub fn split(cfg: &TpeSpec, a: &Ask) -> Option<Split> {
    let dirs = a.directions;
    let single = dirs.len() == 1;
    let mut feasible: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut feasible1: Vec<(f64, usize)> = Vec::new();
    let mut pruned: Vec<(usize, u64, f64)> = Vec::new();
    let mut infeasible: Vec<(usize, f64)> = Vec::new();
    let mut running: Vec<usize> = Vec::new();
    let sign = |k: usize, v: f64| dirs[k].loss(v);
    for (i, t) in a.trials.iter().enumerate() {
        match t.state {
            TrialState::Complete => {
                let v = mo::violation(t);
                if single {
                    let Some(x) = t.values.as_ref().and_then(|v| v.first().copied()) else {
                        continue;
                    };
                    if !x.is_finite() {
                        continue;
                    }
                    if v > 0.0 {
                        infeasible.push((i, v));
                    } else {
                        feasible1.push((sign(0, x), i));
                    }
                    continue;
                }
                let Some(l) = mo::losses(t, dirs) else {
                    continue;
                };
                if v > 0.0 {
                    infeasible.push((i, v));
                } else {
                    feasible.push((i, l));
                }
            }
            TrialState::Pruned => {
                let last = t
                    .intermediate
                    .iter()
                    .rev()
                    .find(|(_, v)| v.first().is_some_and(|x| !x.is_nan()));
                match last {
                    Some((step, v)) => pruned.push((i, *step, sign(0, v[0]))),
                    None => pruned.push((i, 0, f64::INFINITY)),
                }
            }
            TrialState::Running | TrialState::Waiting if cfg.constant_liar => running.push(i),
            _ => {}
        }
    }
    let n = feasible.len() + feasible1.len() + pruned.len() + infeasible.len();
    if n < cfg.n_startup_trials as usize || n == 0 {
        return None;
    }
    let n_below = ((cfg.gamma * n as f64).ceil() as usize)
        .min(cfg.gamma_max as usize)
        .max(1);
    pruned.sort_by(|x, y| y.1.cmp(&x.1).then(x.2.total_cmp(&y.2)).then(x.0.cmp(&y.0)));
    infeasible.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
    let (mut below, mut below_weights): (Vec<usize>, Option<Vec<f64>>);
    let mut rest: Vec<usize>;
    if single {
        // Only the good set needs ordering: select it, then sort it.
        let cmp = |x: &(f64, usize), y: &(f64, usize)| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1));
        if n_below < feasible1.len() {
            feasible1.select_nth_unstable_by(n_below, cmp);
            feasible1[..n_below].sort_by(cmp);
        } else {
            feasible1.sort_by(cmp);
        }
        let mut order = feasible1.iter().map(|x| x.1);
        below = order.by_ref().take(n_below).collect();
        let short = n_below - below.len();
        rest = order.collect();
        let mut tail = pruned
            .iter()
            .map(|x| x.0)
            .chain(infeasible.iter().map(|x| x.0));
        below.extend(tail.by_ref().take(short));
        rest.extend(tail);
        below_weights = None;
    } else {
        let pts: Vec<Vec<f64>> = feasible.iter().map(|x| x.1.clone()).collect();
        let mut chosen: Vec<usize> = Vec::new();
        for front in mo::nondominated_sort(&pts, None) {
            if chosen.len() + front.len() <= n_below {
                chosen.extend(front);
                continue;
            }
            // Fill the rest greedily by hypervolume contribution.
            let need = n_below - chosen.len();
            let fpts: Vec<Vec<f64>> = front.iter().map(|&k| pts[k].clone()).collect();
            let r = mo::reference_point(&fpts);
            let mut picked: Vec<usize> = Vec::new();
            for _ in 0..need {
                let base: Vec<Vec<f64>> = picked.iter().map(|&k| fpts[k].clone()).collect();
                let hv0 = mo::hypervolume(&base, &r);
                let best = (0..front.len())
                    .filter(|k| !picked.contains(k))
                    .map(|k| {
                        let mut with = base.clone();
                        with.push(fpts[k].clone());
                        (k, mo::hypervolume(&with, &r) - hv0)
                    })
                    .fold(None::<(usize, f64)>, |acc, x| match acc {
                        Some(a) if a.1 >= x.1 => Some(a),
                        _ => Some(x),
                    });
                if let Some((k, _)) = best {
                    picked.push(k);
                }
            }
            chosen.extend(picked.into_iter().map(|k| front[k]));
            break;
        }
        let chosen_set: std::collections::BTreeSet<usize> = chosen.iter().copied().collect();
        below = chosen.iter().map(|&k| feasible[k].0).collect();
        rest = (0..feasible.len())
            .filter(|k| !chosen_set.contains(k))
            .map(|k| feasible[k].0)
            .chain(pruned.iter().map(|x| x.0))
            .chain(infeasible.iter().map(|x| x.0))
            .collect();
        if below.len() < n_below {
            let more = n_below - below.len();
            let take = more.min(rest.len());
            below.extend(rest.drain(..take));
        }
        // Weights by hypervolume contribution among the good feasible points.
        let good: Vec<Vec<f64>> = chosen.iter().map(|&k| pts[k].clone()).collect();
        let mut w = vec![EPS; below.len()];
        if !good.is_empty() {
            let r = mo::reference_point(&good);
            let c = mo::contributions(&good, &r);
            let max = c.iter().copied().fold(0.0, f64::max);
            for (k, ck) in c.iter().enumerate() {
                w[k] = if max > 0.0 {
                    (ck / max).clamp(EPS, 1.0)
                } else {
                    1.0
                };
            }
        }
        let mut pairs: Vec<(usize, f64)> = below.iter().copied().zip(w).collect();
        pairs.sort_by_key(|p| p.0);
        below = pairs.iter().map(|p| p.0).collect();
        below_weights = Some(pairs.iter().map(|p| p.1).collect());
    }
    rest.extend(running);
    if below_weights.is_none() {
        below.sort_unstable();
    }
    below_weights = below_weights.filter(|w| w.len() == below.len());
    let mut mask = vec![0u8; a.trials.len()];
    for &i in &rest {
        mask[i] = 2;
    }
    for &i in &below {
        mask[i] = 1;
    }
    // Bad trials in number order (weights ramp with age).
    let above: Vec<usize> = (0..a.trials.len()).filter(|&i| mask[i] == 2).collect();
    let mut rank = vec![u32::MAX; a.trials.len()];
    for (r, &i) in above.iter().enumerate() {
        rank[i] = r as u32;
    }
    Some(Split {
        below,
        above,
        below_weights,
        mask,
        rank,
    })
}

/// [`default_weights`] without the vector: the weight of age rank `rank` (0 = oldest).
struct RampWeights {
    flat_from: usize,
    base: f64,
    slope: f64,
}

impl RampWeights {
    fn new(n: usize) -> Self {
        let ramp = n.saturating_sub(25);
        let base = 1.0 / n.max(1) as f64;
        let slope = if ramp > 1 {
            (1.0 - base) / (ramp - 1) as f64
        } else {
            0.0
        };
        Self {
            flat_from: if n < 25 { 0 } else { ramp },
            base,
            slope,
        }
    }

    #[inline]
    fn at(&self, rank: usize) -> f64 {
        if rank >= self.flat_from {
            1.0
        } else {
            self.base + self.slope * rank as f64
        }
    }
}

/// Kernels per block of the running bandwidth maxima.
const BLOCK: usize = 16;

/// A one-dimensional truncated-Gaussian mixture with a prior component, its kernels sorted
/// by centre. Densities are summed in linear space (the prior component keeps the sum far
/// from underflow) and the log taken once.
struct Kde1 {
    lo: f64,
    hi: f64,
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    inv: Vec<f64>,
    /// w / (total · σ · Z · √2π) per kernel.
    coef: Vec<f64>,
    coef_total: f64,
    cum: Vec<f64>,
    /// Per block of [`BLOCK`] kernels: the widest bandwidth in it or any block before it
    /// (`pre`), in it or any block after it (`suf`); bounds for the evaluation window.
    pre: Vec<f64>,
    suf: Vec<f64>,
    prior: Option<(f64, f64, f64)>,
}

impl Kde1 {
    /// From observations sorted by value, with their weights; `draws`: whether candidates
    /// are drawn from it (the good trials' estimator), else it is only evaluated.
    fn new(sorted: &[(f64, f64)], lo: f64, hi: f64, cfg: &TpeSpec, draws: bool) -> Self {
        let range = (hi - lo).max(EPS);
        let n = sorted.len();
        let prior_w = if n == 0 { 1.0 } else { cfg.prior_weight };
        let has_prior = prior_w > 0.0;
        let mid = 0.5 * (lo + hi);
        let mus: Vec<f64> = sorted.iter().map(|x| x.0.clamp(lo, hi)).collect();
        let minsigma = if cfg.consider_magic_clip {
            range / (1.0 + (n + has_prior as usize) as f64).min(100.0)
        } else {
            EPS
        };
        // Bandwidth: the larger gap to a neighbour in the sequence with the prior's centre
        // merged in (as Optuna does), the bounds standing in at the ends.
        let p = mus.partition_point(|m| *m < mid);
        let left_of = |k: usize| {
            if k == p {
                mid
            } else if k == 0 {
                lo
            } else {
                mus[k - 1]
            }
        };
        let right_of = |k: usize| {
            if k + 1 == p {
                mid
            } else if k + 1 == n {
                if p == n {
                    mid
                } else {
                    hi
                }
            } else {
                mus[k + 1]
            }
        };
        let mut sigmas = vec![0.0; n];
        if n >= 3 {
            for (sg, w) in sigmas[1..n - 1].iter_mut().zip(mus.windows(3)) {
                *sg = (w[1] - w[0]).max(w[2] - w[1]);
            }
        }
        // The few kernels next to the prior's centre or the bounds.
        let mut fix = |k: usize| {
            if k < n {
                sigmas[k] = (mus[k] - left_of(k)).max(right_of(k) - mus[k]);
            }
        };
        fix(0);
        fix(n.wrapping_sub(1));
        fix(p.wrapping_sub(1));
        fix(p);
        if !cfg.consider_endpoints && n >= 1 {
            // The first and last of the merged sequence see only their inner neighbour.
            if p > 0 {
                sigmas[0] = right_of(0) - mus[0];
            }
            if p < n {
                sigmas[n - 1] = mus[n - 1] - left_of(n - 1);
            }
        }
        let total: f64 =
            sorted.iter().map(|x| x.1).sum::<f64>() + if has_prior { prior_w } else { 0.0 };
        let inv_sqrt_2pi = (-LN_SQRT_2PI).exp();
        let z = |mu: f64, s: f64| {
            // Interior kernels lose nothing to the bounds; near one bound only that side's
            // tail is computed.
            let (near_lo, near_hi) = (mu - lo <= 6.0 * s, hi - mu <= 6.0 * s);
            match (near_lo, near_hi) {
                (false, false) => 1.0,
                (true, false) => norm_cdf((mu - lo) / s).max(1e-300),
                (false, true) => norm_cdf((hi - mu) / s).max(1e-300),
                (true, true) => (norm_cdf((hi - mu) / s) - norm_cdf((lo - mu) / s)).max(1e-300),
            }
        };
        let scale = inv_sqrt_2pi / total;
        // Branch-free passes that vectorise (the bad trials' estimator has ~n kernels at every
        // suggestion), then the few kernels near a bound get their truncation mass.
        for sg in &mut sigmas {
            *sg = sg.clamp(minsigma, range);
        }
        let inv: Vec<f64> = sigmas.iter().map(|sg| 1.0 / sg).collect();
        let mut coef: Vec<f64> = sorted
            .iter()
            .zip(&inv)
            .map(|(o, iv)| o.1 * scale * iv)
            .collect();
        // Beyond 6 bandwidths from both bounds the lost mass is below 1e-9; the kernels within
        // 6 of the widest bandwidth of a bound are the only ones to check (mus are sorted).
        let widest = sigmas.iter().copied().fold(0.0, f64::max);
        let near_lo = mus.partition_point(|m| m - lo <= 6.0 * widest);
        let near_hi = mus.partition_point(|m| hi - m > 6.0 * widest).max(near_lo);
        for i in (0..near_lo).chain(near_hi..n) {
            let (mu, sg) = (mus[i], sigmas[i]);
            if mu - lo <= 6.0 * sg || hi - mu <= 6.0 * sg {
                coef[i] /= z(mu, sg);
            }
        }
        let cum = if draws {
            let inv_total = 1.0 / total;
            let mut acc = 0.0;
            let mut cum: Vec<f64> = sorted
                .iter()
                .map(|o| {
                    acc += o.1 * inv_total;
                    acc
                })
                .collect();
            if has_prior {
                cum.push(1.0);
            }
            cum
        } else {
            Vec::new()
        };
        // Running maxima of the bandwidths by blocks: each block's maximum (independent, so
        // they vectorise), then the running maximum over the blocks from either end.
        let block_max: Vec<f64> = sigmas
            .chunks(BLOCK)
            .map(|b| b.iter().copied().fold(0.0, f64::max))
            .collect();
        let mut mx = 0.0f64;
        let pre: Vec<f64> = block_max
            .iter()
            .map(|&b| {
                mx = mx.max(b);
                mx
            })
            .collect();
        mx = 0.0;
        let mut suf: Vec<f64> = block_max
            .iter()
            .rev()
            .map(|&b| {
                mx = mx.max(b);
                mx
            })
            .collect();
        suf.reverse();
        let prior = has_prior.then(|| (mid, range, prior_w * scale / (range * z(mid, range))));
        Self {
            lo,
            hi,
            mus,
            sigmas,
            inv,
            coef_total: coef.iter().sum(),
            coef,
            cum,
            pre,
            suf,
            prior,
        }
    }

    /// A draw: a kernel by weight, then its truncated normal.
    fn draw(&self, rng: &mut impl Rng) -> f64 {
        debug_assert!(!self.cum.is_empty(), "built with `draws`");
        if self.cum.is_empty() {
            return trunc_normal(
                0.5 * (self.lo + self.hi),
                self.hi - self.lo,
                self.lo,
                self.hi,
                rng,
            );
        }
        let u: f64 = rng.random();
        let i = self.cum.partition_point(|c| *c < u).min(self.cum.len() - 1);
        let (mu, s) = match (i < self.mus.len(), self.prior) {
            (true, _) => (self.mus[i], self.sigmas[i]),
            (false, Some((mu, s, _))) => (mu, s),
            (false, None) => (
                self.mus[self.mus.len() - 1],
                self.sigmas[self.mus.len() - 1],
            ),
        };
        trunc_normal(mu, s, self.lo, self.hi, rng)
    }

    /// Σ coef · e^(−d²/2) over kernels `from..to`.
    fn kernel_sum(&self, x: f64, from: usize, to: usize) -> f64 {
        if from >= to {
            return 0.0;
        }
        // Eight independent sums in fixed-size chunks: the loop vectorises.
        let (mu, inv, c) = (
            &self.mus[from..to],
            &self.inv[from..to],
            &self.coef[from..to],
        );
        let mut acc = [0.0f64; 8];
        let mut it_mu = mu.chunks_exact(8);
        let mut it_inv = inv.chunks_exact(8);
        let mut it_c = c.chunks_exact(8);
        for ((m8, i8), c8) in (&mut it_mu).zip(&mut it_inv).zip(&mut it_c) {
            for l in 0..8 {
                let d = (x - m8[l]) * i8[l];
                acc[l] += c8[l] * exp_neg(0.5 * d * d);
            }
        }
        for ((m, i), c) in it_mu
            .remainder()
            .iter()
            .zip(it_inv.remainder())
            .zip(it_c.remainder())
        {
            let d = (x - m) * i;
            acc[0] += c * exp_neg(0.5 * d * d);
        }
        ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
    }

    /// A lower bound of `log_pdf(x)`: the prior and the kernels within 2 (running-max)
    /// bandwidths of x only.
    fn log_pdf_lower(&self, x: f64) -> f64 {
        let mut sum = 0.0;
        if let Some((mu, s, c)) = self.prior {
            let d = (x - mu) / s;
            sum += c * exp_neg(0.5 * d * d);
        }
        let (from, to) = self.window(x, WINDOW_LOWER);
        sum += self.kernel_sum(x, from, to);
        sum.max(1e-300).ln()
    }

    /// The kernels whose centre is within `w` running-max bandwidths of x: `from..to`.
    fn window(&self, x: f64, w: f64) -> (usize, usize) {
        let n = self.mus.len();
        let p = self.mus.partition_point(|m| *m < x);
        (
            first_true(0, p, |j| x - self.mus[j] <= w * self.pre[j / BLOCK]),
            first_true(p, n, |j| self.mus[j] - x > w * self.suf[j / BLOCK]),
        )
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let mut sum = 0.0;
        if let Some((mu, s, c)) = self.prior {
            let d = (x - mu) / s;
            sum += c * exp_neg(0.5 * d * d);
        }
        // The window: kernels whose centre is within 6 (running-max) bandwidths of x; each
        // kernel outside contributes at most e^-18 of its coefficient. When that bound could
        // matter (relative error above 1e-6), the window widens to 8 bandwidths (e^-32).
        let n = self.mus.len();
        let p = self.mus.partition_point(|m| *m < x);
        let window = |w: f64| {
            (
                first_true(0, p, |j| x - self.mus[j] <= w * self.pre[j / BLOCK]),
                first_true(p, n, |j| self.mus[j] - x > w * self.suf[j / BLOCK]),
            )
        };
        let (from, to) = window(WINDOW_NARROW);
        sum += self.kernel_sum(x, from, to);
        let skipped_bound = (-0.5 * WINDOW_NARROW * WINDOW_NARROW).exp() * self.coef_total;
        if skipped_bound > 1e-6 * sum {
            let (from8, to8) = window(WINDOW);
            sum += self.kernel_sum(x, from8, from) + self.kernel_sum(x, to, to8);
        }
        sum.max(1e-300).ln()
    }
}

/// The candidate (of `n` drawn from `l`) with the highest log l(x) − log g(x), the first one
/// drawn among equals; `none` when there is no candidate.
///
/// Evaluating g is the bulk of a suggestion with many trials, so candidates are taken in
/// decreasing l(x), and g is evaluated in full only where a lower bound of it (the kernels
/// within 2 bandwidths) leaves the candidate a chance to beat the best so far. The answer is
/// the one evaluating every candidate in full gives.
fn best_candidate(l: &Kde1, g: &Kde1, n: usize, none: f64, rng: &mut impl Rng) -> f64 {
    let xs: Vec<f64> = (0..n).map(|_| l.draw(rng)).collect();
    let ls: Vec<f64> = xs.iter().map(|&x| l.log_pdf(x)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| ls[b].total_cmp(&ls[a]).then(a.cmp(&b)));
    // (score, candidate index); ties go to the earlier drawn candidate.
    let mut best: Option<(f64, usize)> = None;
    for i in order {
        if let Some((b, _)) = best {
            // A lower bound of g and a margin for rounding: the bound's sum is a subset of the
            // full sum's terms, added in another order.
            let upper = ls[i] - g.log_pdf_lower(xs[i]);
            if upper < b - 1e-9 * (1.0 + b.abs()) {
                continue;
            }
        }
        let s = ls[i] - g.log_pdf(xs[i]);
        let better = match best {
            None => true,
            Some((b, j)) => s > b || (s == b && i < j),
        };
        if better {
            best = Some((s, i));
        }
    }
    best.map_or(none, |(_, i)| xs[i])
}

/// The first index in `lo..hi` where the monotone `pred` (false … false true … true) holds.
fn first_true(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// e^(−y) for y ≥ 0, to a relative error below 2e-7 (2^k times a degree-6 polynomial for
/// e^f on |f| ≤ ln2/2); about four times faster than libm's `exp`, which dominated the cost of
/// evaluating g at 10,000 trials.
#[inline]
fn exp_neg(y: f64) -> f64 {
    // Branch-free so that the kernel loops vectorise: y is clamped (e^-700 is 0 for our sums).
    #[allow(clippy::manual_clamp)] // max/min compile to branch-free minsd/maxsd
    let y = y.max(0.0).min(700.0);
    let t = -y * std::f64::consts::LOG2_E;
    // Round to nearest by the 1.5·2⁵² trick (libm's `round` is a call on baseline x86-64).
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let k = (t + MAGIC) - MAGIC;
    let f = (t - k) * std::f64::consts::LN_2;
    // e^f for |f| ≤ ln2/2 by its Taylor series to f⁶/6! (remainder below 1.3e-7 relative).
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    // 2^k from k + 1023 held in the low mantissa bits of 2^52 + k + 1023.
    const TWO52: f64 = 4_503_599_627_370_496.0;
    f64::from_bits((k + (TWO52 + 1023.0)).to_bits() << 52) * p
}

/// A running log-sum-exp.
#[derive(Default)]
struct LogSumExp {
    m: f64,
    s: f64,
    any: bool,
}

impl LogSumExp {
    #[inline]
    fn add(&mut self, t: f64) {
        if !self.any {
            self.m = t;
            self.s = 1.0;
            self.any = true;
        } else if t > self.m {
            self.s = self.s * (self.m - t).exp() + 1.0;
            self.m = t;
        } else {
            self.s += (t - self.m).exp();
        }
    }

    fn value(&self) -> f64 {
        if self.any {
            self.m + self.s.ln()
        } else {
            f64::NEG_INFINITY
        }
    }
}

/// A draw from N(mu, sigma) truncated to [lo, hi].
pub fn trunc_normal(mu: f64, sigma: f64, lo: f64, hi: f64, rng: &mut impl Rng) -> f64 {
    if hi <= lo {
        return lo;
    }
    for _ in 0..64 {
        let x = mu + sigma * normal(rng);
        if (lo..=hi).contains(&x) {
            return x;
        }
    }
    // Far-off mass: fall back to inverse-CDF sampling.
    use super::special::{norm_cdf, norm_ppf};
    let a = norm_cdf((lo - mu) / sigma);
    let b = norm_cdf((hi - mu) / sigma);
    let u: f64 = rng.random();
    (mu + sigma * norm_ppf(a + u * (b - a))).clamp(lo, hi)
}

/// Categorical estimator: the mixture collapses to one probability vector.
fn cat_probs(obs: &[f64], weights: &[f64], n_choices: usize, prior_weight: f64) -> Vec<f64> {
    let n = obs.len();
    if n == 0 {
        return vec![1.0 / n_choices as f64; n_choices];
    }
    let has_prior = prior_weight > 0.0;
    let n_kernels = n + has_prior as usize;
    let mut w: Vec<f64> = weights.to_vec();
    if has_prior {
        w.push(prior_weight);
    }
    let total: f64 = w.iter().sum();
    let mut p = vec![0.0; n_choices];
    // Each kernel: prior_weight / n_kernels on every choice, +1 on its observation, normalised.
    let base = prior_weight / n_kernels as f64;
    let row_total = base * n_choices as f64 + 1.0;
    for (k, wk) in w.iter().enumerate() {
        let wk = wk / total;
        if k < n {
            let c = (obs[k] as usize).min(n_choices - 1);
            for (j, pj) in p.iter_mut().enumerate() {
                let r = if j == c { base + 1.0 } else { base };
                *pj += wk * r / row_total;
            }
        } else {
            for pj in p.iter_mut() {
                *pj += wk / n_choices as f64;
            }
        }
    }
    p
}

/// Observations of parameter columns `cols` among `trials` (rows with all of them set).
fn gather(enc: &Encoded, rows: &[usize], cols: &[usize]) -> (Vec<usize>, Vec<Vec<f64>>) {
    let mut kept = Vec::new();
    let mut xs = Vec::new();
    for (k, &r) in rows.iter().enumerate() {
        if cols.iter().all(|&c| !enc.col(c)[r].is_nan()) {
            kept.push(k);
            xs.push(cols.iter().map(|&c| enc.col(c)[r]).collect());
        }
    }
    (kept, xs)
}

fn weights_for(kept: &[usize], explicit: Option<&[f64]>) -> Vec<f64> {
    match explicit {
        Some(w) => kept.iter().map(|&k| w[k]).collect(),
        None => default_weights(kept.len()),
    }
}

/// Groups of parameter columns modelled jointly: params active under the same conditions.
fn groups(space: &SearchSpace, group: bool) -> Vec<Vec<usize>> {
    let mut sig: Vec<String> = Vec::new();
    for p in &space.params {
        let mut s: Vec<String> = p.when.iter().map(|w| format!("{w:?}")).collect();
        for (parent, _) in &p.when {
            if let Some(k) = space.params.iter().position(|q| &q.name == parent) {
                if k < sig.len() {
                    s.push(sig[k].clone());
                }
            }
        }
        s.sort();
        sig.push(s.join("|"));
    }
    let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (j, p) in space.params.iter().enumerate() {
        if searchable(p) {
            by.entry(sig[j].as_str()).or_default().push(j);
        }
    }
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (s, cols) in by {
        if group || s.is_empty() {
            out.push(cols);
        } else {
            out.extend(cols.into_iter().map(|c| vec![c]));
        }
    }
    out.sort();
    out
}

impl TpeSampler {
    fn univariate(
        &self,
        a: &Ask,
        split: &Split,
        col: usize,
        rng: &mut impl Rng,
    ) -> Option<mlt_protocol::records::ParamValue> {
        let p = &a.space.params[col];
        let n_cand = self.cfg.n_ei_candidates as usize;
        // Good trials: few, gathered and sorted here.
        let mut below: Vec<(f64, f64)> = Vec::new();
        let mut kept = Vec::new();
        for (k, &i) in split.below.iter().enumerate() {
            let x = self.enc.col(col)[i];
            if !x.is_nan() {
                kept.push(k);
                below.push((x, 0.0));
            }
        }
        let wb = weights_for(&kept, split.below_weights.as_deref());
        for (b, w) in below.iter_mut().zip(wb) {
            b.1 = w;
        }
        // Bad trials: many, read in value order from the column's sorted cache, weighted by
        // their age rank among the bad trials that have this parameter.
        let column = self.enc.col(col);
        let n_above = split.above.iter().filter(|&&i| !column[i].is_nan()).count();
        let x = match line(&p.dist) {
            Line::Cont { lo, hi } => {
                below.sort_by(|x, y| x.0.total_cmp(&y.0));
                // Age ranks among the bad trials that have this parameter: the split's ranks
                // when all of them do (unconditional parameters), else counted here.
                let own;
                let rank: &[u32] = if n_above == split.above.len() {
                    &split.rank
                } else {
                    let mut r = vec![u32::MAX; a.trials.len()];
                    let mut k = 0u32;
                    for &i in &split.above {
                        if !column[i].is_nan() {
                            r[i] = k;
                            k += 1;
                        }
                    }
                    own = r;
                    &own
                };
                let ramp = RampWeights::new(n_above);
                let above: Vec<(f64, f64)> = self.sorted[col]
                    .iter()
                    .filter(|(_, i)| split.mask.get(*i as usize) == Some(&2))
                    .map(|(x, i)| (*x, ramp.at(rank[*i as usize] as usize)))
                    .collect();
                let l = Kde1::new(&below, lo, hi, &self.cfg, true);
                let gk = Kde1::new(&above, lo, hi, &self.cfg, false);
                best_candidate(&l, &gk, n_cand, 0.5 * (lo + hi), rng)
            }
            Line::Cat(n) => {
                let b: Vec<f64> = below.iter().map(|x| x.0).collect();
                let wbv: Vec<f64> = below.iter().map(|x| x.1).collect();
                let g: Vec<f64> = split
                    .above
                    .iter()
                    .map(|&i| self.enc.col(col)[i])
                    .filter(|x| !x.is_nan())
                    .collect();
                let wa = default_weights(g.len());
                let l = cat_probs(&b, &wbv, n, self.cfg.prior_weight);
                let g = cat_probs(&g, &wa, n, self.cfg.prior_weight);
                let mut best = (f64::NEG_INFINITY, 0usize);
                for _ in 0..n_cand {
                    let c = sample_probs(&l, rng);
                    let s = l[c].max(1e-300).ln() - g[c].max(1e-300).ln();
                    if s > best.0 {
                        best = (s, c);
                    }
                }
                best.1 as f64
            }
            Line::Fixed => return None,
        };
        Some(super::space::decode(&p.dist, x))
    }

    /// Keeps each continuous column's values sorted (insertion for a few new trials, a full
    /// sort after a large load).
    fn update_sorted(&mut self, space: &SearchSpace, n_trials: usize) {
        if self.sorted.len() != space.params.len() || n_trials < self.sorted_upto {
            self.sorted = vec![Vec::new(); space.params.len()];
            self.sorted_upto = 0;
        }
        let new = n_trials - self.sorted_upto;
        for (j, p) in space.params.iter().enumerate() {
            if !matches!(line(&p.dist), Line::Cont { .. }) {
                continue;
            }
            let col = &mut self.sorted[j];
            let bulk = new > 64 && new * 4 > col.len();
            for i in self.sorted_upto..n_trials {
                let x = self.enc.col(j)[i];
                if x.is_nan() {
                    continue;
                }
                if bulk {
                    col.push((x, i as u32));
                } else {
                    let at = col.partition_point(|(v, k)| (*v, *k) < (x, i as u32));
                    col.insert(at, (x, i as u32));
                }
            }
            if bulk {
                col.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            }
        }
        self.sorted_upto = n_trials;
    }

    fn joint(&self, a: &Ask, split: &Split, cols: &[usize], rng: &mut impl Rng, out: &mut Params) {
        let (kb, below) = gather(&self.enc, &split.below, cols);
        let (_, above) = gather(&self.enc, &split.above, cols);
        let wb = weights_for(&kb, split.below_weights.as_deref());
        let wa = default_weights(above.len());
        let lines: Vec<Line> = cols
            .iter()
            .map(|&c| line(&a.space.params[c].dist))
            .collect();
        let l = Kdem::new(&below, &wb, &lines, &self.cfg);
        let g = Kdem::new(&above, &wa, &lines, &self.cfg);
        let mut best: (f64, Vec<f64>) = (f64::NEG_INFINITY, Vec::new());
        for _ in 0..self.cfg.n_ei_candidates {
            let x = l.draw(rng);
            let s = l.log_pdf(&x) - g.log_pdf(&x);
            if s > best.0 || best.1.is_empty() {
                best = (s, x);
            }
        }
        for (k, &c) in cols.iter().enumerate() {
            let p = &a.space.params[c];
            out.insert(p.name.clone(), super::space::decode(&p.dist, best.1[k]));
        }
    }
}

fn sample_probs(p: &[f64], rng: &mut impl Rng) -> usize {
    let u: f64 = rng.random::<f64>() * p.iter().sum::<f64>();
    let mut acc = 0.0;
    for (i, x) in p.iter().enumerate() {
        acc += x;
        if u < acc {
            return i;
        }
    }
    p.len() - 1
}

/// A product-kernel mixture over several dimensions (multivariate TPE).
struct Kdem {
    lines: Vec<Line>,
    n: usize,
    // Per component (prior last): centres (NaN for categorical dims), categorical log-probs.
    mus: Vec<Vec<f64>>,
    cat_logp: Vec<Vec<Vec<f64>>>,
    sigmas: Vec<Vec<f64>>,
    logc: Vec<f64>,
    cum: Vec<f64>,
}

impl Kdem {
    fn new(obs: &[Vec<f64>], weights: &[f64], lines: &[Line], cfg: &TpeSpec) -> Self {
        let n = obs.len();
        let d = lines.len();
        let prior_w = if n == 0 { 1.0 } else { cfg.prior_weight };
        let has_prior = prior_w > 0.0;
        let k = n + has_prior as usize;
        let mut w: Vec<f64> = weights.to_vec();
        if has_prior {
            w.push(prior_w);
        }
        let total: f64 = w.iter().sum();
        let mut mus = vec![vec![f64::NAN; d]; k];
        let mut sigmas = vec![vec![1.0; d]; k];
        let mut cat_logp: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); d]; k];
        let mut logc: Vec<f64> = w.iter().map(|x| (x / total).max(1e-300).ln()).collect();
        for (j, ln) in lines.iter().enumerate() {
            match *ln {
                Line::Cont { lo, hi } => {
                    let range = (hi - lo).max(EPS);
                    let s = 0.2 * (n.max(1) as f64).powf(-1.0 / (d as f64 + 4.0)) * range;
                    let minsigma = if cfg.consider_magic_clip {
                        range / (1.0 + k as f64).min(100.0)
                    } else {
                        EPS
                    };
                    let s = s.clamp(minsigma, range);
                    for i in 0..k {
                        let (mu, sig) = if i < n {
                            (obs[i][j].clamp(lo, hi), s)
                        } else {
                            (0.5 * (lo + hi), range)
                        };
                        mus[i][j] = mu;
                        sigmas[i][j] = sig;
                        logc[i] += -sig.ln()
                            - LN_SQRT_2PI
                            - log_norm_mass((lo - mu) / sig, (hi - mu) / sig);
                    }
                }
                Line::Cat(nc) => {
                    let base = prior_w / k as f64;
                    let row_total = base * nc as f64 + 1.0;
                    for i in 0..k {
                        let row: Vec<f64> = if i < n {
                            let c = (obs[i][j] as usize).min(nc - 1);
                            (0..nc)
                                .map(|x| {
                                    ((if x == c { base + 1.0 } else { base }) / row_total).ln()
                                })
                                .collect()
                        } else {
                            vec![-(nc as f64).ln(); nc]
                        };
                        cat_logp[i][j] = row;
                    }
                }
                Line::Fixed => {}
            }
        }
        let mut acc = 0.0;
        let cum = w
            .iter()
            .map(|x| {
                acc += x / total;
                acc
            })
            .collect();
        Self {
            lines: lines.to_vec(),
            n: k,
            mus,
            cat_logp,
            sigmas,
            logc,
            cum,
        }
    }

    fn draw(&self, rng: &mut impl Rng) -> Vec<f64> {
        let u: f64 = rng.random();
        let i = self.cum.partition_point(|c| *c < u).min(self.n - 1);
        self.lines
            .iter()
            .enumerate()
            .map(|(j, ln)| match *ln {
                Line::Cont { lo, hi } => {
                    trunc_normal(self.mus[i][j], self.sigmas[i][j], lo, hi, rng)
                }
                Line::Cat(_) => {
                    let p: Vec<f64> = self.cat_logp[i][j].iter().map(|x| x.exp()).collect();
                    sample_probs(&p, rng) as f64
                }
                Line::Fixed => 0.0,
            })
            .collect()
    }

    fn log_pdf(&self, x: &[f64]) -> f64 {
        let mut acc = LogSumExp::default();
        for i in 0..self.n {
            let mut t = self.logc[i];
            for (j, ln) in self.lines.iter().enumerate() {
                match ln {
                    Line::Cont { .. } => {
                        let z = (x[j] - self.mus[i][j]) / self.sigmas[i][j];
                        t -= 0.5 * z * z;
                    }
                    Line::Cat(nc) => {
                        let c = (x[j] as usize).min(nc - 1);
                        t += self.cat_logp[i][j][c];
                    }
                    Line::Fixed => {}
                }
            }
            acc.add(t);
        }
        acc.value()
    }
}

impl Sampler for TpeSampler {
    fn is_slow(&self, n_trials: usize) -> bool {
        n_trials >= 1000
    }

    fn sample(&mut self, a: &Ask) -> Suggestion {
        self.enc.update(a.space, a.trials);
        self.update_sorted(a.space, a.trials.len());
        let mut rng = trial_rng(self.seed, a.number);
        let mut proposal = Params::new();
        if let Some(split) = split(&self.cfg, a) {
            if self.cfg.multivariate {
                let groups = self
                    .groups
                    .get_or_insert_with(|| groups(a.space, self.cfg.group))
                    .clone();
                for cols in &groups {
                    if cols.len() == 1 {
                        if let Some(v) = self.univariate(a, &split, cols[0], &mut rng) {
                            proposal.insert(a.space.params[cols[0]].name.clone(), v);
                        }
                    } else {
                        self.joint(a, &split, cols, &mut rng, &mut proposal);
                    }
                }
            } else {
                for (j, p) in a.space.params.iter().enumerate() {
                    if searchable(p) {
                        if let Some(v) = self.univariate(a, &split, j, &mut rng) {
                            proposal.insert(p.name.clone(), v);
                        }
                    }
                }
            }
        }
        Suggestion {
            params: assemble(a.space, None, &proposal, &mut rng),
            generation: None,
        }
    }
}

#[cfg(test)]
mod exp_tests {
    #[test]
    fn exp_neg_is_accurate() {
        let mut y = 0.0;
        while y < 60.0 {
            let (a, b) = (super::exp_neg(y), (-y).exp());
            assert!(((a - b) / b).abs() < 2e-7, "{y}: {a} vs {b}");
            y += 0.0137;
        }
        assert!(super::exp_neg(800.0) < 1e-300);
    }
}

#[cfg(test)]
mod kde_tests {
    use super::*;
    use rand::SeedableRng;

    /// Optuna's bandwidths, written the plain way: sort with the prior's centre, take the
    /// larger neighbour gap (bounds at the ends), fix the ends, clip.
    fn reference(obs: &[f64], lo: f64, hi: f64, endpoints: bool) -> Vec<f64> {
        let mid = 0.5 * (lo + hi);
        let mut with: Vec<f64> = obs.to_vec();
        with.push(mid);
        with.sort_by(f64::total_cmp);
        let m = with.len();
        let mut ext = vec![lo];
        ext.extend(&with);
        ext.push(hi);
        let mut s: Vec<f64> = (0..m)
            .map(|k| (ext[k + 1] - ext[k]).max(ext[k + 2] - ext[k + 1]))
            .collect();
        if !endpoints && m >= 2 {
            s[0] = ext[2] - ext[1];
            s[m - 1] = ext[m] - ext[m - 1];
        }
        let minsigma = (hi - lo) / (1.0 + m as f64).min(100.0);
        // Drop the prior's own entry (the first position holding `mid`).
        let at = with.iter().position(|x| *x == mid).unwrap();
        s.remove(at);
        s.iter().map(|x| x.clamp(minsigma, hi - lo)).collect()
    }

    /// Optuna's default TPE settings, endpoints as given.
    fn cfg(endpoints: bool) -> TpeSpec {
        TpeSpec {
            n_startup_trials: 0,
            n_ei_candidates: 24,
            gamma: 0.1,
            gamma_max: 25,
            prior_weight: 1.0,
            consider_endpoints: endpoints,
            consider_magic_clip: true,
            multivariate: false,
            group: false,
            constant_liar: false,
        }
    }

    #[test]
    fn the_best_candidate_is_the_one_a_full_evaluation_picks() {
        let cfg = cfg(false);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let sorted = |v: Vec<f64>| {
            let mut p: Vec<(f64, f64)> = v.into_iter().map(|x| (x, 1.0)).collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            p
        };
        let mut pruned_some = false;
        for case in 0..300 {
            let n_bad = [5, 50, 500, 2000][case % 4];
            let good: Vec<f64> = (0..25).map(|_| rng.random_range(4.0..6.0)).collect();
            let bad: Vec<f64> = (0..n_bad).map(|_| rng.random_range(0.0..10.0)).collect();
            let l = Kde1::new(&sorted(good), 0.0, 10.0, &cfg, true);
            let g = Kde1::new(&sorted(bad), 0.0, 10.0, &cfg, false);
            let seed: u64 = rng.random();
            let got = best_candidate(
                &l,
                &g,
                24,
                5.0,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            );
            // Every candidate in full, the first of equals kept.
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut want = (f64::NEG_INFINITY, 5.0);
            for _ in 0..24 {
                let x = l.draw(&mut r);
                let s = l.log_pdf(x) - g.log_pdf(x);
                if s > want.0 {
                    want = (s, x);
                }
                pruned_some |= l.log_pdf(x) - g.log_pdf_lower(x) < want.0;
            }
            assert_eq!(got, want.1, "case {case}");
        }
        assert!(pruned_some, "the bound never rules a candidate out");
        assert_eq!(
            best_candidate(
                &Kde1::new(&[], 0.0, 1.0, &cfg, true),
                &Kde1::new(&[], 0.0, 1.0, &cfg, false),
                0,
                0.5,
                &mut rng
            ),
            0.5
        );
    }

    #[test]
    fn windowed_densities_match_the_sum_over_every_kernel() {
        use crate::search::special::norm_cdf;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for case in 0..200 {
            let n = [3usize, 30, 300, 2000][case % 4];
            // Clustered values (most near 2, some spread), age-ramped weights.
            let mut pairs: Vec<(f64, f64)> = (0..n)
                .map(|i| {
                    let x = if rng.random::<f64>() < 0.7 {
                        (2.0 + 0.05 * normal(&mut rng)).clamp(0.0, 10.0)
                    } else {
                        rng.random_range(0.0..10.0)
                    };
                    (x, 0.1 + i as f64 / n as f64)
                })
                .collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let k = Kde1::new(&pairs, 0.0, 10.0, &cfg(case % 2 == 0), false);
            let total: f64 = pairs.iter().map(|p| p.1).sum::<f64>() + 1.0;
            let pdf = |x: f64, mu: f64, s: f64| {
                let z = norm_cdf((10.0 - mu) / s) - norm_cdf((0.0 - mu) / s);
                (-0.5 * ((x - mu) / s).powi(2)).exp()
                    / (s * (2.0 * std::f64::consts::PI).sqrt() * z)
            };
            for _ in 0..50 {
                let x = if rng.random::<f64>() < 0.5 {
                    2.0 + 0.2 * normal(&mut rng)
                } else {
                    rng.random_range(0.0..10.0)
                }
                .clamp(0.0, 10.0);
                let exact: f64 = pairs
                    .iter()
                    .zip(&k.sigmas)
                    .map(|(p, s)| p.1 * pdf(x, p.0, *s))
                    .sum::<f64>()
                    + pdf(x, 5.0, 10.0);
                let exact = (exact / total).ln();
                let got = k.log_pdf(x);
                assert!(
                    (got - exact).abs() < 1e-5,
                    "case {case} n {n} x {x}: {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn bandwidths_match_the_plain_definition() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for n in [1usize, 2, 3, 5, 17, 120] {
            for endpoints in [false, true] {
                for _ in 0..20 {
                    let mut obs: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..10.0)).collect();
                    obs.sort_by(f64::total_cmp);
                    let pairs: Vec<(f64, f64)> = obs.iter().map(|x| (*x, 1.0)).collect();
                    let cfg = cfg(endpoints);
                    let k = Kde1::new(&pairs, 0.0, 10.0, &cfg, true);
                    let want = reference(&obs, 0.0, 10.0, endpoints);
                    for (a, b) in k.sigmas.iter().zip(&want) {
                        assert!(
                            (a - b).abs() < 1e-12,
                            "n {n} endpoints {endpoints}: {:?} vs {want:?}",
                            k.sigmas
                        );
                    }
                    // The density integrates to one over the bounds.
                    let steps = 20_000;
                    let h = 10.0 / steps as f64;
                    let integral: f64 = (0..steps)
                        .map(|i| k.log_pdf((i as f64 + 0.5) * h).exp() * h)
                        .sum();
                    assert!((integral - 1.0).abs() < 2e-3, "n {n}: ∫ = {integral}");
                }
            }
        }
    }
}
