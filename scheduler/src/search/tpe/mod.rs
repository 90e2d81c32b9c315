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
//!
//! ```text
//! split.rs  the good and bad trials, and the weights of old observations
//! kde1.rs   the one-dimensional estimator (univariate TPE) and the pick among candidates
//! kdem.rs   the product-kernel estimator over several dimensions (multivariate TPE)
//! mod.rs    the sampler: which parameters go together, candidates, the suggestion
//! ```
mod kde1;
mod kdem;
mod split;

pub use split::{default_weights, split, Split};

use super::space::{assemble, line, searchable, Encoded, Line};
use super::{trial_rng, Ask, Sampler, Suggestion};
use kde1::{best_candidate, cat_probs, Kde1};
use kdem::{Dim, Kdem};
use mlt_protocol::records::Params;
use mlt_protocol::spec::{SearchSpace, TpeSpec};
use rand::Rng;
use split::RampWeights;
use std::collections::BTreeMap;

pub(super) const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
pub(super) const WINDOW: f64 = 8.0;
pub(super) const WINDOW_NARROW: f64 = 6.0;
/// Bandwidths around a point whose kernels make the lower bound of a density.
pub(super) const WINDOW_LOWER: f64 = 2.0;
pub(super) const EPS: f64 = 1e-12;

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

/// Observations of parameter columns `cols` among `rows` (those with all of them set): the
/// positions in `rows` kept, and per column the values.
fn gather(enc: &Encoded, rows: &[usize], cols: &[usize]) -> (Vec<usize>, Vec<Vec<f64>>) {
    let kept: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, &r)| cols.iter().all(|&c| !enc.col(c)[r].is_nan()))
        .map(|(k, _)| k)
        .collect();
    let xs = cols
        .iter()
        .map(|&c| {
            let col = enc.col(c);
            kept.iter().map(|&k| col[rows[k]]).collect()
        })
        .collect();
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
        let (ka, above) = gather(&self.enc, &split.above, cols);
        let wb = weights_for(&kb, split.below_weights.as_deref());
        let wa = default_weights(ka.len());
        let dims: Vec<Dim> = cols
            .iter()
            .map(|&c| Dim::of(&a.space.params[c].dist))
            .collect();
        // The bad trials' order by value in each continuous dimension, read from the
        // columns' sorted caches (many trials: no sort per suggestion).
        let mut kernel = vec![u32::MAX; a.trials.len()];
        for (k, &p) in ka.iter().enumerate() {
            kernel[split.above[p]] = k as u32;
        }
        let orders: Vec<Vec<usize>> = cols
            .iter()
            .zip(&dims)
            .map(|(&c, d)| match d.line {
                Line::Cont { .. } => self.sorted[c]
                    .iter()
                    .filter_map(|(_, i)| {
                        let k = kernel[*i as usize];
                        (k != u32::MAX).then_some(k as usize)
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        let l = Kdem::new(&below, &wb, &dims, None, &self.cfg, true);
        let g = Kdem::new(&above, &wa, &dims, Some(&orders), &self.cfg, false);
        let xs: Vec<Vec<f64>> = (0..self.cfg.n_ei_candidates.max(1))
            .map(|_| l.draw(rng))
            .collect();
        let best = kdem::best_joint(&l, &g, &xs);
        for (k, &c) in cols.iter().enumerate() {
            let p = &a.space.params[c];
            out.insert(p.name.clone(), super::space::decode(&p.dist, xs[best][k]));
        }
    }
}

pub(super) fn sample_probs(p: &[f64], rng: &mut impl Rng) -> usize {
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
