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
//! kernels within 8 bandwidths of the point (the rest contribute less than e^-32 each).
#![allow(clippy::needless_range_loop)] // index loops read best in the linear algebra
use super::mo;
use super::space::{assemble, line, normal, searchable, Encoded, Line};
use super::special::log_norm_mass;
use super::{trial_rng, Ask, Sampler, Suggestion};
use mlt_protocol::records::{Params, TrialState};
use mlt_protocol::spec::{SearchSpace, TpeSpec};
use rand::Rng;
use std::collections::BTreeMap;

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
const WINDOW: f64 = 8.0;
const EPS: f64 = 1e-12;

/// The TPE sampler.
pub struct TpeSampler {
    cfg: TpeSpec,
    seed: u64,
    enc: Encoded,
    groups: Option<Vec<Vec<usize>>>,
}

impl TpeSampler {
    /// From the spec's settings and the study seed.
    pub fn new(cfg: TpeSpec, seed: u64) -> Self {
        Self {
            cfg,
            seed,
            enc: Encoded::default(),
            groups: None,
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
}

/// Splits the trials as described in the module docs; `None` before `n_startup_trials`.
pub fn split(cfg: &TpeSpec, a: &Ask) -> Option<Split> {
    let dirs = a.directions;
    let mut feasible: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut pruned: Vec<(usize, u64, f64)> = Vec::new();
    let mut infeasible: Vec<(usize, f64)> = Vec::new();
    let mut running: Vec<usize> = Vec::new();
    let sign = |k: usize, v: f64| match dirs[k] {
        mlt_protocol::spec::Direction::Minimize => v,
        mlt_protocol::spec::Direction::Maximize => -v,
    };
    for (i, t) in a.trials.iter().enumerate() {
        match t.state {
            TrialState::Complete => {
                let Some(l) = mo::losses(t, dirs) else {
                    continue;
                };
                let v = mo::violation(t);
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
    let n = feasible.len() + pruned.len() + infeasible.len();
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
    if dirs.len() == 1 {
        feasible.sort_by(|x, y| x.1[0].total_cmp(&y.1[0]).then(x.0.cmp(&y.0)));
        let order: Vec<usize> = feasible
            .iter()
            .map(|x| x.0)
            .chain(pruned.iter().map(|x| x.0))
            .chain(infeasible.iter().map(|x| x.0))
            .collect();
        below = order[..n_below].to_vec();
        rest = order[n_below..].to_vec();
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
    rest.sort_unstable();
    if below_weights.is_none() {
        below.sort_unstable();
    }
    below_weights = below_weights.filter(|w| w.len() == below.len());
    Some(Split {
        below,
        above: rest,
        below_weights,
    })
}

/// A one-dimensional truncated-Gaussian mixture with a prior component.
struct Kde1 {
    lo: f64,
    hi: f64,
    // Sampling: component centres, bandwidths and cumulative weights (prior last).
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    cum: Vec<f64>,
    // Evaluation: kernels sorted by centre (prior apart).
    smu: Vec<f64>,
    sinv: Vec<f64>,
    sc: Vec<f64>,
    pre: Vec<f64>,
    suf: Vec<f64>,
    prior: Option<(f64, f64, f64)>,
}

impl Kde1 {
    fn new(
        obs: &[f64],
        weights: &[f64],
        lo: f64,
        hi: f64,
        cfg: &TpeSpec,
        multivariate_sigma: Option<f64>,
    ) -> Self {
        let range = (hi - lo).max(EPS);
        let n = obs.len();
        let prior_w = if n == 0 { 1.0 } else { cfg.prior_weight };
        let has_prior = prior_w > 0.0;
        let mid = 0.5 * (lo + hi);
        let mut sigmas = match multivariate_sigma {
            Some(s) => vec![s; n],
            None => {
                // Gaps to the neighbours, the prior's centre among them.
                let mut idx: Vec<usize> = (0..=n).collect();
                let at = |i: usize| if i < n { obs[i] } else { mid };
                idx.sort_by(|&a, &b| at(a).total_cmp(&at(b)));
                let sorted: Vec<f64> = idx.iter().map(|&i| at(i)).collect();
                let m = sorted.len();
                let mut s = vec![0.0; n + 1];
                for (k, &i) in idx.iter().enumerate() {
                    let left = if k == 0 { lo } else { sorted[k - 1] };
                    let right = if k + 1 == m { hi } else { sorted[k + 1] };
                    let mut sig = (sorted[k] - left).max(right - sorted[k]);
                    if !cfg.consider_endpoints && m >= 2 {
                        if k == 0 {
                            sig = sorted[1] - sorted[0];
                        } else if k + 1 == m {
                            sig = sorted[m - 1] - sorted[m - 2];
                        }
                    }
                    s[i] = sig;
                }
                s.truncate(n);
                s
            }
        };
        let minsigma = if cfg.consider_magic_clip {
            range / (1.0 + (n + has_prior as usize) as f64).min(100.0)
        } else {
            EPS
        };
        for s in &mut sigmas {
            *s = s.clamp(minsigma, range);
        }
        let mut mus: Vec<f64> = obs.iter().map(|x| x.clamp(lo, hi)).collect();
        let mut w: Vec<f64> = weights.to_vec();
        if has_prior {
            mus.push(mid);
            sigmas.push(range);
            w.push(prior_w);
        }
        let total: f64 = w.iter().sum();
        let mut acc = 0.0;
        let cum: Vec<f64> = w
            .iter()
            .map(|x| {
                acc += x / total;
                acc
            })
            .collect();
        let c = |mu: f64, s: f64, wi: f64| {
            (wi / total).max(1e-300).ln()
                - s.ln()
                - LN_SQRT_2PI
                - log_norm_mass((lo - mu) / s, (hi - mu) / s)
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
        let smu: Vec<f64> = order.iter().map(|&i| mus[i]).collect();
        let sinv: Vec<f64> = order.iter().map(|&i| 1.0 / sigmas[i]).collect();
        let sc: Vec<f64> = order.iter().map(|&i| c(mus[i], sigmas[i], w[i])).collect();
        let mut pre = vec![0.0; n];
        let mut suf = vec![0.0; n];
        let mut m = 0.0f64;
        for k in 0..n {
            m = m.max(sigmas[order[k]]);
            pre[k] = m;
        }
        m = 0.0;
        for k in (0..n).rev() {
            m = m.max(sigmas[order[k]]);
            suf[k] = m;
        }
        let prior = has_prior.then(|| (mid, 1.0 / range, c(mid, range, prior_w)));
        Self {
            lo,
            hi,
            mus,
            sigmas,
            cum,
            smu,
            sinv,
            sc,
            pre,
            suf,
            prior,
        }
    }

    fn component(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cum.partition_point(|c| *c < u).min(self.cum.len() - 1)
    }

    fn draw_from(&self, i: usize, rng: &mut impl Rng) -> f64 {
        trunc_normal(self.mus[i], self.sigmas[i], self.lo, self.hi, rng)
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let mut acc = LogSumExp::default();
        if let Some((mu, inv, c)) = self.prior {
            let d = (x - mu) * inv;
            acc.add(c - 0.5 * d * d);
        }
        let n = self.smu.len();
        let p = self.smu.partition_point(|m| *m < x);
        let mut j = p;
        while j > 0 {
            j -= 1;
            if x - self.smu[j] > WINDOW * self.pre[j] {
                break;
            }
            let d = (x - self.smu[j]) * self.sinv[j];
            acc.add(self.sc[j] - 0.5 * d * d);
        }
        let mut j = p;
        while j < n {
            if self.smu[j] - x > WINDOW * self.suf[j] {
                break;
            }
            let d = (x - self.smu[j]) * self.sinv[j];
            acc.add(self.sc[j] - 0.5 * d * d);
            j += 1;
        }
        acc.value()
    }
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
        let row = enc.row(r);
        if cols.iter().all(|&c| !row[c].is_nan()) {
            kept.push(k);
            xs.push(cols.iter().map(|&c| row[c]).collect());
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
        let (kb, below) = gather(&self.enc, &split.below, &[col]);
        let (_, above) = gather(&self.enc, &split.above, &[col]);
        let wb = weights_for(&kb, split.below_weights.as_deref());
        let wa = default_weights(above.len());
        let b: Vec<f64> = below.iter().map(|r| r[0]).collect();
        let g: Vec<f64> = above.iter().map(|r| r[0]).collect();
        let n_cand = self.cfg.n_ei_candidates as usize;
        let x = match line(&p.dist) {
            Line::Cont { lo, hi } => {
                let l = Kde1::new(&b, &wb, lo, hi, &self.cfg, None);
                let gk = Kde1::new(&g, &wa, lo, hi, &self.cfg, None);
                let mut best = (f64::NEG_INFINITY, 0.5 * (lo + hi));
                for _ in 0..n_cand {
                    let i = l.component(rng);
                    let x = l.draw_from(i, rng);
                    let s = l.log_pdf(x) - gk.log_pdf(x);
                    if s > best.0 {
                        best = (s, x);
                    }
                }
                best.1
            }
            Line::Cat(n) => {
                let l = cat_probs(&b, &wb, n, self.cfg.prior_weight);
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
    fn sample(&mut self, a: &Ask) -> Suggestion {
        self.enc.update(a.space, a.trials);
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
