//! The one-dimensional Parzen estimator of univariate TPE, its categorical counterpart, and
//! the pick of the best candidate.
use super::{EPS, LN_SQRT_2PI, WINDOW, WINDOW_LOWER, WINDOW_NARROW};
use crate::search::special::{exp_neg, norm_cdf, trunc_normal};
use mlt_protocol::spec::TpeSpec;
use rand::Rng;

/// Kernels per block of the running bandwidth maxima.
pub(super) const BLOCK: usize = 16;

/// A one-dimensional truncated-Gaussian mixture with a prior component, its kernels sorted
/// by centre. Densities are summed in linear space (the prior component keeps the sum far
/// from underflow) and the log taken once.
pub(super) struct Kde1 {
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
    pub(crate) fn new(sorted: &[(f64, f64)], lo: f64, hi: f64, cfg: &TpeSpec, draws: bool) -> Self {
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
    pub(crate) fn draw(&self, rng: &mut impl Rng) -> f64 {
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
    pub(crate) fn kernel_sum(&self, x: f64, from: usize, to: usize) -> f64 {
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
    pub(crate) fn log_pdf_lower(&self, x: f64) -> f64 {
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
    pub(crate) fn window(&self, x: f64, w: f64) -> (usize, usize) {
        let n = self.mus.len();
        let p = self.mus.partition_point(|m| *m < x);
        (
            first_true(0, p, |j| x - self.mus[j] <= w * self.pre[j / BLOCK]),
            first_true(p, n, |j| self.mus[j] - x > w * self.suf[j / BLOCK]),
        )
    }

    pub(crate) fn log_pdf(&self, x: f64) -> f64 {
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
pub(super) fn best_candidate(l: &Kde1, g: &Kde1, n: usize, none: f64, rng: &mut impl Rng) -> f64 {
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
pub(super) fn first_true(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
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

/// Categorical estimator: the mixture collapses to one probability vector.
pub(super) fn cat_probs(
    obs: &[f64],
    weights: &[f64],
    n_choices: usize,
    prior_weight: f64,
) -> Vec<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::space::normal;
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
