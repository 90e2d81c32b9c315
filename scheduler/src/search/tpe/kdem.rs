//! The product-kernel estimator of multivariate TPE, as Optuna 5.0 builds it: every
//! observation is a kernel over all the group's dimensions at once, and each dimension's
//! bandwidth is the one univariate TPE would give that observation (the larger gap to its
//! neighbours in that dimension, clipped) — not one bandwidth per dimension from Scott's rule,
//! which over-smooths as soon as the good trials cluster (the cause of our old multivariate
//! TPE trailing Optuna 5's, docs/benchmarks.md).
//!
//! Int and stepped dimensions are discrete, as in Optuna: a candidate is rounded to the grid
//! and a kernel's density there is its mass over the grid point's cell. Categorical
//! dimensions use Optuna's kernel (prior_weight / n_kernels on every choice, +1 on the
//! observed one).
//!
//! The density is evaluated exhaustively (every kernel, every candidate) with the kernels
//! stored dimension by dimension, so the sums over kernels vectorise.
use super::{sample_probs, EPS, LN_SQRT_2PI};
use crate::search::space::{decode, encode, line, Line};
use crate::search::special::{exp_neg, log_norm_mass, norm_cdf, trunc_normal};
use mlt_protocol::spec::{Distribution, TpeSpec};
use rand::Rng;

/// How one dimension of a group enters the joint density.
#[derive(Clone, Debug)]
pub(super) struct Dim {
    pub line: Line,
    /// The parameter's distribution (for the grid of int and stepped dimensions).
    pub dist: Distribution,
}

impl Dim {
    /// The dimension of a parameter with distribution `dist`.
    pub fn of(dist: &Distribution) -> Self {
        Self {
            line: line(dist),
            dist: dist.clone(),
        }
    }

    /// Whether the dimension is a grid (int, or float with a step).
    fn discrete(&self) -> bool {
        matches!(
            self.dist,
            Distribution::Int { .. } | Distribution::Float { step: Some(_), .. }
        )
    }

    /// A point of the line moved onto the grid (discrete dimensions).
    fn snap(&self, x: f64) -> f64 {
        encode(&self.dist, &decode(&self.dist, x)).unwrap_or(x)
    }

    /// The cell of grid point `x` on the line: `[left, right]`.
    fn cell(&self, x: f64) -> (f64, f64) {
        match self.dist {
            Distribution::Int { log: true, .. } => {
                let v = x.exp().round();
                ((v - 0.5).max(0.5).ln(), (v + 0.5).ln())
            }
            Distribution::Int { step, .. } => (x - step as f64 / 2.0, x + step as f64 / 2.0),
            Distribution::Float { step: Some(s), .. } => (x - s / 2.0, x + s / 2.0),
            _ => (x, x),
        }
    }
}

/// Per dimension, what the kernels hold.
enum Col {
    /// Continuous: centres and inverse bandwidths (the normalisation is in `logc`).
    Cont {
        mu: Vec<f64>,
        inv: Vec<f64>,
    },
    /// Discrete: the distinct (centre, bandwidth) pairs and each kernel's pair.
    Grid {
        uniq: Vec<(f64, f64)>,
        which: Vec<u32>,
    },
    /// Categorical: each kernel's observed choice (`u32::MAX` for the prior), and the log
    /// probabilities of an observation's own choice, of another, and the prior's.
    Cat {
        obs: Vec<u32>,
        hit: f64,
        miss: f64,
        prior: f64,
        n: usize,
    },
    Fixed,
}

/// A product-kernel mixture over several dimensions, the prior component last.
pub(super) struct Kdem {
    dims: Vec<Dim>,
    cols: Vec<Col>,
    /// Per kernel: log weight − the continuous and discrete dimensions' log normalisers.
    logc: Vec<f64>,
    /// Per dimension: each kernel's centre and bandwidth (for draws).
    mus: Vec<Vec<f64>>,
    sigmas: Vec<Vec<f64>>,
    cum: Vec<f64>,
    /// The first continuous dimension, and its observations' kernels by value with their
    /// centres: where to find a candidate's near kernels for a lower bound of the density.
    near: Option<(usize, Vec<u32>, Vec<f64>)>,
}

/// The mass of N(mu, s) on [lo, hi] (mu inside, so at least a third): 1 (to below 1e-15)
/// when both bounds are more than 8 bandwidths away, as for most kernels, without an erfc.
fn trunc_mass(mu: f64, s: f64, lo: f64, hi: f64) -> f64 {
    match (mu - lo <= 8.0 * s, hi - mu <= 8.0 * s) {
        (false, false) => 1.0,
        // Near one bound only that side's tail is lost.
        (true, false) => norm_cdf((mu - lo) / s),
        (false, true) => norm_cdf((hi - mu) / s),
        (true, true) => log_norm_mass((lo - mu) / s, (hi - mu) / s).exp(),
    }
}

/// Optuna 5's bandwidths for one dimension: `order` lists the observations by value; each
/// gets the larger gap to its neighbours (the bounds at the ends; without
/// `consider_endpoints` the first and last see only their inner neighbour), clipped to
/// [range / min(100, n + 2), range].
pub(super) fn bandwidths(xs: &[f64], order: &[usize], lo: f64, hi: f64, cfg: &TpeSpec) -> Vec<f64> {
    let n = xs.len();
    let range = (hi - lo).max(EPS);
    let mut s = vec![0.0; n];
    let at = |k: usize| xs[order[k]].clamp(lo, hi);
    for k in 0..n {
        let left = if k == 0 { lo } else { at(k - 1) };
        let right = if k + 1 == n { hi } else { at(k + 1) };
        let x = at(k);
        s[order[k]] = (x - left).max(right - x);
    }
    if !cfg.consider_endpoints && n >= 2 {
        s[order[0]] = at(1) - at(0);
        s[order[n - 1]] = at(n - 1) - at(n - 2);
    }
    let min = if cfg.consider_magic_clip {
        range / (n as f64 + 2.0).min(100.0)
    } else {
        EPS
    };
    for x in &mut s {
        *x = x.clamp(min, range);
    }
    s
}

impl Kdem {
    /// From the observations (`obs[j][i]`: dimension j of observation i, on the internal
    /// lines), their weights, and per dimension the observations' order by value (`None`:
    /// sorted here).
    pub(crate) fn new(
        obs: &[Vec<f64>],
        weights: &[f64],
        dims: &[Dim],
        orders: Option<&[Vec<usize>]>,
        cfg: &TpeSpec,
        draws: bool,
    ) -> Self {
        let n = weights.len();
        let d = dims.len();
        // Optuna 5: the prior is always there (with weight 1 alone when nothing is observed).
        let prior_w = if n == 0 { 1.0 } else { cfg.prior_weight };
        let has_prior = prior_w > 0.0;
        let k = n + has_prior as usize;
        let mut w: Vec<f64> = weights.to_vec();
        if has_prior {
            w.push(prior_w);
        }
        let total: f64 = w.iter().sum();
        let mut logc: Vec<f64> = w.iter().map(|x| (x / total).max(1e-300).ln()).collect();
        let mut mus = vec![Vec::new(); d];
        let mut sigmas = vec![Vec::new(); d];
        let mut cols = Vec::with_capacity(d);
        let mut scale = vec![1.0; k];
        let mut near = None;
        let (mut folded, mut logc_shift) = (0, 0.0);
        let fold = |logc: &mut [f64], scale: &mut [f64]| {
            for (l, sc) in logc.iter_mut().zip(scale.iter_mut()) {
                *l -= sc.ln();
                *sc = 1.0;
            }
        };
        for (j, dim) in dims.iter().enumerate() {
            match dim.line {
                Line::Cont { lo, hi } => {
                    let xs: Vec<f64> = obs[j].iter().map(|o| o.clamp(lo, hi)).collect();
                    let own;
                    let order: &[usize] = match orders {
                        Some(o) => &o[j],
                        None => {
                            let mut o: Vec<usize> = (0..n).collect();
                            o.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
                            own = o;
                            &own
                        }
                    };
                    let mut s = bandwidths(&xs, order, lo, hi, cfg);
                    if near.is_none() && !dim.discrete() && !draws {
                        near = Some((
                            j,
                            order.iter().map(|&i| i as u32).collect(),
                            order.iter().map(|&i| xs[i]).collect(),
                        ));
                    }
                    let mut mu = xs;
                    if has_prior {
                        mu.push(0.5 * (lo + hi));
                        s.push(hi - lo);
                    }
                    // σ·Z per kernel, multiplied in over the dimensions, its log taken once
                    // every few dimensions (one ln per kernel instead of one per dimension).
                    let discrete = dim.discrete();
                    for ((sc, &m), &sg) in scale.iter_mut().zip(&mu).zip(&s) {
                        let z = trunc_mass(m, sg, lo, hi);
                        *sc *= if discrete { z } else { z * sg };
                    }
                    if !discrete {
                        logc_shift -= LN_SQRT_2PI;
                    }
                    folded += 1;
                    if folded == 8 {
                        fold(&mut logc, &mut scale);
                        folded = 0;
                    }
                    if draws {
                        mus[j] = mu.clone();
                        sigmas[j] = s.clone();
                    }
                    if discrete {
                        let mut pairs: Vec<(f64, f64)> =
                            mu.iter().copied().zip(s.iter().copied()).collect();
                        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                        pairs.dedup();
                        let which = mu
                            .iter()
                            .zip(&s)
                            .map(|(m, sg)| {
                                pairs.partition_point(|p| {
                                    p.0.total_cmp(m).then(p.1.total_cmp(sg)).is_lt()
                                }) as u32
                            })
                            .collect();
                        cols.push(Col::Grid { uniq: pairs, which });
                    } else {
                        let inv = s.iter().map(|x| 1.0 / x).collect();
                        cols.push(Col::Cont { mu, inv });
                    }
                }
                Line::Cat(nc) => {
                    let base = prior_w / k as f64;
                    let row_total = base * nc as f64 + 1.0;
                    let obs_c: Vec<u32> = (0..k)
                        .map(|i| {
                            if i < n {
                                (obs[j][i].max(0.0) as usize).min(nc - 1) as u32
                            } else {
                                u32::MAX
                            }
                        })
                        .collect();
                    cols.push(Col::Cat {
                        obs: obs_c,
                        hit: ((base + 1.0) / row_total).ln(),
                        miss: (base / row_total).max(1e-300).ln(),
                        prior: -(nc as f64).ln(),
                        n: nc,
                    });
                }
                Line::Fixed => cols.push(Col::Fixed),
            }
        }
        if folded > 0 {
            fold(&mut logc, &mut scale);
        }
        for l in &mut logc {
            *l += logc_shift;
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
            dims: dims.to_vec(),
            cols,
            logc,
            mus,
            sigmas,
            cum,
            near,
        }
    }

    /// A draw: a kernel by weight, then each dimension from it (discrete ones on the grid).
    pub(crate) fn draw(&self, rng: &mut impl Rng) -> Vec<f64> {
        let u: f64 = rng.random();
        let i = self
            .cum
            .partition_point(|c| *c < u)
            .min(self.logc.len() - 1);
        self.dims
            .iter()
            .zip(&self.cols)
            .enumerate()
            .map(|(j, (dim, col))| match (dim.line, col) {
                (Line::Cont { lo, hi }, _) => {
                    let x = trunc_normal(self.mus[j][i], self.sigmas[j][i], lo, hi, rng);
                    if dim.discrete() {
                        dim.snap(x)
                    } else {
                        x
                    }
                }
                (Line::Cat(nc), Col::Cat { obs, hit, miss, .. }) => {
                    let p: Vec<f64> = if obs[i] == u32::MAX {
                        vec![1.0; nc]
                    } else {
                        (0..nc)
                            .map(|c| if c as u32 == obs[i] { hit } else { miss }.exp())
                            .collect()
                    };
                    sample_probs(&p, rng) as f64
                }
                _ => 0.0,
            })
            .collect()
    }

    /// log density at each of `xs`, every kernel summed.
    pub(crate) fn log_pdf_many(&self, xs: &[Vec<f64>]) -> Vec<f64> {
        let mut t = vec![0.0; self.logc.len()];
        let mut grid = Vec::new();
        xs.iter()
            .map(|x| self.log_pdf_into(x, &mut t, &mut grid))
            .collect()
    }

    /// log density at `x` (every kernel), with scratch buffers.
    fn log_pdf_into(&self, x: &[f64], t: &mut [f64], grid: &mut Vec<f64>) -> f64 {
        t.copy_from_slice(&self.logc);
        self.add_terms(x, t, None, grid);
        log_sum_exp(t)
    }

    /// Adds each dimension's log term at `x` to the kernels' `t`: every kernel in order, or
    /// the kernels listed in `kernels` (`t[k]` for `kernels[k]`).
    fn add_terms(&self, x: &[f64], t: &mut [f64], kernels: Option<&[u32]>, grid: &mut Vec<f64>) {
        // Every column holds one entry per kernel: said once, so that the loop over all
        // kernels indexes without bounds checks.
        let t = match kernels {
            None => &mut t[..self.logc.len()],
            Some(_) => t,
        };
        for (j, col) in self.cols.iter().enumerate() {
            let xj = x[j];
            match col {
                Col::Cont { mu, inv } => {
                    let (mu, inv) = (&mu[..self.logc.len()], &inv[..self.logc.len()]);
                    add(t, kernels, |i| {
                        let z = (xj - mu[i]) * inv[i];
                        -0.5 * z * z
                    })
                }
                Col::Grid { uniq, which } => {
                    let (left, right) = self.dims[j].cell(xj);
                    grid.clear();
                    grid.extend(
                        uniq.iter()
                            .map(|(m, s)| log_norm_mass((left - m) / s, (right - m) / s)),
                    );
                    add(t, kernels, |i| grid[which[i] as usize]);
                }
                Col::Cat {
                    obs,
                    hit,
                    miss,
                    prior,
                    n,
                } => {
                    let c = (xj.max(0.0) as usize).min(n - 1) as u32;
                    add(t, kernels, |i| cat_term(obs[i], c, *hit, *miss, *prior));
                }
                Col::Fixed => {}
            }
        }
    }

    /// A lower bound of the log density at `x`: the prior and the `m` observations nearest
    /// to `x` by rank in the first continuous dimension (every kernel when there is none).
    /// Every kernel's term is positive, so any subset's sum is below the whole.
    fn log_pdf_lower(&self, x: &[f64], m: usize, grid: &mut Vec<f64>) -> f64 {
        let Some((j0, by_value, centres)) = &self.near else {
            let mut t = vec![0.0; self.logc.len()];
            return self.log_pdf_into(x, &mut t, grid);
        };
        let p = centres.partition_point(|c| *c < x[*j0]);
        let from = p.saturating_sub(m / 2);
        let to = (from + m).min(by_value.len());
        let mut kernels: Vec<u32> = by_value[from..to].to_vec();
        if self.logc.len() > by_value.len() {
            kernels.push(by_value.len() as u32); // the prior, last
        }
        let mut t: Vec<f64> = kernels.iter().map(|&i| self.logc[i as usize]).collect();
        self.add_terms(x, &mut t, Some(&kernels), grid);
        log_sum_exp(&t)
    }

    /// Kernels in the whole mixture.
    pub(crate) fn len(&self) -> usize {
        self.logc.len()
    }
}

/// `t[k] += term(kernel k)` over every kernel, or over the listed ones.
#[inline]
fn add(t: &mut [f64], kernels: Option<&[u32]>, term: impl Fn(usize) -> f64) {
    match kernels {
        None => {
            for (i, ti) in t.iter_mut().enumerate() {
                *ti += term(i);
            }
        }
        Some(ks) => {
            for (ti, &i) in t.iter_mut().zip(ks) {
                *ti += term(i as usize);
            }
        }
    }
}

#[inline]
fn cat_term(o: u32, c: u32, hit: f64, miss: f64, prior: f64) -> f64 {
    if o == c {
        hit
    } else if o == u32::MAX {
        prior
    } else {
        miss
    }
}

fn log_sum_exp(t: &[f64]) -> f64 {
    let m = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    let s: f64 = t.iter().map(|ti| exp_neg(m - ti)).sum();
    m + s.ln()
}

/// The candidate with the largest log l(x) − log g(x), the first drawn among equals.
///
/// With many bad trials, evaluating g is the bulk of a suggestion. Candidates are taken in
/// decreasing l(x); once one score is known, a candidate is evaluated in full only where a
/// lower bound of g (its nearest kernels, [`Kdem::log_pdf_lower`]) leaves it a chance to beat
/// it. The answer is the one evaluating every candidate in full gives.
pub(super) fn best_joint(l: &Kdem, g: &Kdem, xs: &[Vec<f64>]) -> usize {
    let ls = l.log_pdf_many(xs);
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| ls[b].total_cmp(&ls[a]).then(a.cmp(&b)));
    let mut t = vec![0.0; g.len()];
    let mut grid = Vec::new();
    // A window worth bounding with: a few percent of the kernels, at least 64.
    let m = (g.len() / 16).max(64);
    let pruning = g.near.is_some() && g.len() > 4 * m;
    let mut best: Option<(f64, usize)> = None;
    for i in order {
        if let (Some((b, _)), true) = (best, pruning) {
            let upper = ls[i] - g.log_pdf_lower(&xs[i], m, &mut grid);
            if upper < b - 1e-9 * (1.0 + b.abs()) {
                continue;
            }
        }
        let s = ls[i] - g.log_pdf_into(&xs[i], &mut t, &mut grid);
        let better = match best {
            None => true,
            Some((b, j)) => s > b || (s == b && i < j),
        };
        if better {
            best = Some((s, i));
        }
    }
    best.map_or(0, |(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::tpe::default_weights;
    use mlt_protocol::records::ParamValue;
    use rand::SeedableRng;

    fn cfg() -> TpeSpec {
        TpeSpec {
            multivariate: true,
            ..TpeSpec::default()
        }
    }

    fn space(name: &str) -> Vec<(&'static str, Distribution)> {
        let float = |low, high, log, step| Distribution::Float {
            low,
            high,
            log,
            step,
        };
        let int = |low, high, log| Distribution::Int {
            low,
            high,
            log,
            step: 1,
        };
        match name {
            "cont2" => vec![
                ("a", float(-5.0, 10.0, false, None)),
                ("b", float(0.0, 1.0, false, None)),
            ],
            "log_int_cat" => vec![
                ("lr", float(1e-5, 1.0, true, None)),
                ("n", int(0, 10, false)),
                (
                    "k",
                    Distribution::Categorical {
                        choices: ["x", "y", "z", "w"]
                            .iter()
                            .map(|c| ParamValue::Str(c.to_string()))
                            .collect(),
                    },
                ),
            ],
            "step_logint" => vec![
                ("d", float(0.0, 0.7, false, Some(0.05))),
                ("w", int(16, 1024, true)),
            ],
            "one" => vec![("a", float(-5.0, 10.0, false, None))],
            other => panic!("unknown space {other}"),
        }
    }

    /// Optuna's internal value (raw number, or a choice's index) on our internal line.
    fn to_line(dist: &Distribution, v: f64) -> f64 {
        match dist {
            Distribution::Categorical { .. } => v,
            Distribution::Int { .. } => encode(dist, &ParamValue::Int(v.round() as i64)).unwrap(),
            _ => encode(dist, &ParamValue::Float(v)).unwrap(),
        }
    }

    /// The log densities Optuna 5.0.0's `_ParzenEstimator` gives (bench/optuna/parzen_vectors.py):
    /// bandwidths, truncation, discrete cells, categorical kernels and weights all agree.
    #[test]
    fn matches_optuna_5s_parzen_estimator() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("parzen_optuna5.json")).unwrap();
        assert_eq!(v["optuna"], "5.0.0");
        let mut checked = 0;
        for case in v["cases"].as_array().unwrap() {
            let sp = space(case["space"].as_str().unwrap());
            let dims: Vec<Dim> = sp.iter().map(|(_, d)| Dim::of(d)).collect();
            let column = |key: &str, name: &str, dist: &Distribution| -> Vec<f64> {
                case[key][name]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| to_line(dist, x.as_f64().unwrap()))
                    .collect()
            };
            let rows = |key: &str| -> Vec<Vec<f64>> {
                let cols: Vec<Vec<f64>> = sp.iter().map(|(n, d)| column(key, n, d)).collect();
                (0..cols[0].len())
                    .map(|i| cols.iter().map(|c| c[i]).collect())
                    .collect()
            };
            let obs: Vec<Vec<f64>> = sp.iter().map(|(n, d)| column("obs", n, d)).collect();
            let n_obs = obs[0].len();
            let kde = Kdem::new(&obs, &default_weights(n_obs), &dims, None, &cfg(), false);
            let ours = kde.log_pdf_many(&rows("points"));
            for (o, t) in ours.iter().zip(case["log_pdf"].as_array().unwrap()) {
                let t = t.as_f64().unwrap();
                assert!(
                    (o - t).abs() < 1e-6 * (1.0 + t.abs()),
                    "{} with {} observations: ours {o}, Optuna {t}",
                    case["space"],
                    n_obs
                );
                checked += 1;
            }
        }
        assert!(checked >= 150, "{checked}");
    }

    /// Draws come from the mixture: discrete dimensions land on the grid, and the share of
    /// draws in a cell matches the density's mass there.
    #[test]
    fn draws_follow_the_density() {
        let sp = space("log_int_cat");
        let dims: Vec<Dim> = sp.iter().map(|(_, d)| Dim::of(d)).collect();
        let obs = vec![
            vec![(1e-3f64).ln(), (2e-3f64).ln(), (0.1f64).ln()],
            vec![3.0, 4.0, 8.0],
            vec![1.0, 1.0, 2.0],
        ];
        let kde = Kdem::new(&obs, &[1.0; 3], &dims, None, &cfg(), true);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let n = 20_000;
        let mut hits = 0;
        for _ in 0..n {
            let x = kde.draw(&mut rng);
            assert_eq!(x[1], x[1].round(), "int dimension off the grid: {}", x[1]);
            assert!((0.0..=3.0).contains(&x[2]));
            if x[1] == 3.0 && x[2] == 1.0 {
                hits += 1;
            }
        }
        // The probability of (n = 3, k = y) by summing the density over lr's line.
        let (lo, hi) = ((1e-5f64).ln(), 0.0);
        let steps = 4000;
        let h = (hi - lo) / steps as f64;
        let pts: Vec<Vec<f64>> = (0..steps)
            .map(|i| vec![lo + (i as f64 + 0.5) * h, 3.0, 1.0])
            .collect();
        let p: f64 = kde.log_pdf_many(&pts).iter().map(|l| l.exp() * h).sum();
        let share = hits as f64 / n as f64;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!((share - p).abs() < 5.0 * se, "share {share}, density {p}");
    }

    /// The pruned pick among candidates is the exhaustive one, over many random mixtures.
    #[test]
    fn the_pruned_pick_is_the_exhaustive_one() {
        let sp = [
            (
                "a",
                Distribution::Float {
                    low: -5.0,
                    high: 5.0,
                    log: false,
                    step: None,
                },
            ),
            (
                "b",
                Distribution::Float {
                    low: 1e-4,
                    high: 1.0,
                    log: true,
                    step: None,
                },
            ),
            (
                "n",
                Distribution::Int {
                    low: 0,
                    high: 12,
                    log: false,
                    step: 1,
                },
            ),
            (
                "k",
                Distribution::Categorical {
                    choices: (0..4).map(ParamValue::Int).collect(),
                },
            ),
        ];
        let dims: Vec<Dim> = sp.iter().map(|(_, d)| Dim::of(d)).collect();
        let mut pruned_any = false;
        for seed in 0..40u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let draw_obs = |n: usize, rng: &mut rand::rngs::StdRng, tight: bool| -> Vec<Vec<f64>> {
                dims.iter()
                    .map(|d| {
                        (0..n)
                            .map(|_| {
                                let v = crate::search::space::draw(&d.dist, rng);
                                let x = encode(&d.dist, &v).unwrap();
                                if tight {
                                    // The good trials cluster.
                                    match d.line {
                                        Line::Cont { lo, hi } => {
                                            let c = lo + 0.3 * (hi - lo);
                                            let x = c + 0.1 * (x - c);
                                            if d.discrete() {
                                                d.snap(x)
                                            } else {
                                                x
                                            }
                                        }
                                        _ => x,
                                    }
                                } else {
                                    x
                                }
                            })
                            .collect()
                    })
                    .collect()
            };
            let below = draw_obs(20, &mut rng, true);
            let above = draw_obs(3000, &mut rng, false);
            let l = Kdem::new(&below, &[1.0; 20], &dims, None, &cfg(), true);
            let g = Kdem::new(&above, &default_weights(3000), &dims, None, &cfg(), false);
            let xs: Vec<Vec<f64>> = (0..24).map(|_| l.draw(&mut rng)).collect();
            let (ls, gs) = (l.log_pdf_many(&xs), g.log_pdf_many(&xs));
            let mut want = 0;
            for i in 1..xs.len() {
                if ls[i] - gs[i] > ls[want] - gs[want] {
                    want = i;
                }
            }
            assert_eq!(best_joint(&l, &g, &xs), want, "seed {seed}");
            // Whether the bound skipped anything: the lower bound must be below the whole.
            let mut grid = Vec::new();
            for x in &xs {
                let lower = g.log_pdf_lower(x, 187, &mut grid);
                let full = g.log_pdf_many(std::slice::from_ref(x))[0];
                assert!(lower <= full + 1e-9, "{lower} > {full}");
                pruned_any |= lower > full - 1.0;
            }
        }
        assert!(pruned_any, "the window never came near the whole density");
    }
}
