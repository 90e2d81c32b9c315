//! CMA-ES (Hansen's (μ/μ_w, λ) rank-μ and rank-one update, active by default) over the unit
//! cube of the numeric, always-active parameters. Categorical and conditional parameters are
//! chosen by a univariate TPE that learns from every trial (`independent = "tpe"`, the
//! default) or drawn at random as Optuna does (`independent = "random"`). Integer and stepped parameters live on their widened line and are rounded when
//! decoded; their marginal step size is kept above a fraction of one grid cell (a simple form
//! of CMA-ES with margin) so the search never freezes on a plateau.
//!
//! Trials are tagged with their generation. A generation is told to the strategy once
//! `popsize` of its trials are complete (the first ones by number); trials asked before that
//! are sampled from the same distribution. The state is never stored: it is replayed from the
//! tagged trials, so a restarted scheduler continues the same run.
//!
//! Restarts: when a run converges (step size or spread of recent best values below tolerance,
//! or an ill-conditioned covariance), IPOP starts again from a random mean with the population
//! multiplied by `inc_popsize`; BIPOP alternates such large runs with small ones of random
//! size and step size, spending the evaluation budget evenly between the two regimes.
#![allow(clippy::needless_range_loop)] // index loops read best in the linear algebra
use super::linalg::sym_eigen;
use super::space::{assemble, from_unit_cols, line, normal, to_unit, Line};
use super::tpe::TpeSampler;
use super::{trial_rng, Ask, Sampler, Suggestion};
use mlt_protocol::records::{Params, TrialRecord, TrialState};
use mlt_protocol::spec::{CmaEsSpec, Direction, Independent, Restart, SearchSpace, TpeSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One CMA-ES run's state.
#[derive(Clone, Debug)]
struct Run {
    n: usize,
    lambda: usize,
    weights: Vec<f64>,
    mu_eff: f64,
    cc: f64,
    cs: f64,
    c1: f64,
    cmu: f64,
    ds: f64,
    chi_n: f64,
    mean: Vec<f64>,
    sigma: f64,
    sigma0: f64,
    c: Vec<f64>,
    b: Vec<f64>,
    d: Vec<f64>,
    pc: Vec<f64>,
    ps: Vec<f64>,
    g: u32,
    best_hist: Vec<f64>,
    min_std: Vec<f64>,
}

impl Run {
    /// A run at `mean` with step size `sigma` and population `lambda`. `active`: the worse
    /// half of each generation gets negative recombination weights in the rank-μ update
    /// (active CMA-ES, Hansen 2016 §3.5: the default of pycma and of the `cmaes` package
    /// behind Optuna's sampler); otherwise only the better half counts (Hansen 2001).
    fn new(mean: Vec<f64>, sigma: f64, lambda: usize, min_std: Vec<f64>, active: bool) -> Self {
        let n = mean.len();
        let nf = n as f64;
        let mu = lambda / 2;
        let raw: Vec<f64> = (0..lambda)
            .map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - ((i + 1) as f64).ln())
            .collect();
        let eff = |w: &[f64]| w.iter().sum::<f64>().powi(2) / w.iter().map(|x| x * x).sum::<f64>();
        let mu_eff = eff(&raw[..mu]);
        let pos: f64 = raw.iter().filter(|w| **w > 0.0).sum();
        let c1 = 2.0 / ((nf + 1.3).powi(2) + mu_eff);
        let cmu = (1.0 - c1 - 1e-8)
            .min(2.0 * (mu_eff - 2.0 + 1.0 / mu_eff) / ((nf + 2.0).powi(2) + mu_eff));
        let neg: f64 = raw.iter().filter(|w| **w < 0.0).map(|w| -w).sum();
        // The negative weights' total, bounded so that C stays positive definite (eq. 50–53).
        let alpha = if active && neg > 0.0 {
            let mu_eff_minus = eff(&raw[mu..]);
            (1.0 + c1 / cmu)
                .min(1.0 + 2.0 * mu_eff_minus / (mu_eff + 2.0))
                .min((1.0 - c1 - cmu) / (nf * cmu))
                .max(0.0)
        } else {
            0.0
        };
        let weights: Vec<f64> = raw
            .iter()
            .map(|&w| if w >= 0.0 { w / pos } else { alpha * w / neg })
            .collect();
        let cc = (4.0 + mu_eff / nf) / (nf + 4.0 + 2.0 * mu_eff / nf);
        let cs = (mu_eff + 2.0) / (nf + mu_eff + 5.0);
        let ds = 1.0 + 2.0 * (((mu_eff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let mut c = vec![0.0; n * n];
        let mut b = vec![0.0; n * n];
        for i in 0..n {
            c[i * n + i] = 1.0;
            b[i * n + i] = 1.0;
        }
        Self {
            n,
            lambda,
            weights,
            mu_eff,
            cc,
            cs,
            c1,
            cmu,
            ds,
            chi_n,
            mean,
            sigma,
            sigma0: sigma,
            c,
            b,
            d: vec![1.0; n],
            pc: vec![0.0; n],
            ps: vec![0.0; n],
            g: 0,
            best_hist: Vec::new(),
            min_std,
        }
    }

    /// A candidate in the unit cube (resampled until inside, then clipped).
    fn draw(&self, rng: &mut impl Rng) -> Vec<f64> {
        self.draw_from(None, rng)
    }

    /// [`Run::draw`] whose first try is the step `first` (then fresh draws from `rng`).
    fn draw_from(&self, mut first: Option<Vec<f64>>, rng: &mut impl Rng) -> Vec<f64> {
        let n = self.n;
        let mut x = vec![0.0; n];
        for _ in 0..100 {
            let z: Vec<f64> = first
                .take()
                .unwrap_or_else(|| (0..n).map(|_| normal(rng)).collect());
            for i in 0..n {
                let y: f64 = (0..n).map(|k| self.b[i * n + k] * self.d[k] * z[k]).sum();
                x[i] = self.mean[i] + self.sigma * y;
            }
            if x.iter().all(|v| (0.0..=1.0).contains(v)) {
                return x;
            }
        }
        x.iter().map(|v| v.clamp(0.0, 1.0)).collect()
    }

    /// Tells the generation's solutions (unit cube) with their losses.
    fn tell(&mut self, mut sol: Vec<(Vec<f64>, f64)>) {
        let n = self.n;
        sol.sort_by(|a, b| a.1.total_cmp(&b.1));
        self.best_hist.push(sol[0].1);
        let ys: Vec<Vec<f64>> = sol
            .iter()
            .map(|(x, _)| (0..n).map(|i| (x[i] - self.mean[i]) / self.sigma).collect())
            .collect();
        let mut yw = vec![0.0; n];
        for (w, y) in self.weights.iter().zip(&ys).filter(|(w, _)| **w > 0.0) {
            for i in 0..n {
                yw[i] += w * y[i];
            }
        }
        // Rank-μ weights: a negative weight is scaled by n / |C^{-1/2} y|² (eq. 46), so a bad
        // step far out along a long axis does not shrink that axis more than a short one.
        let w_rank: Vec<f64> = self
            .weights
            .iter()
            .zip(&ys)
            .map(|(&w, y)| {
                if w >= 0.0 {
                    return w;
                }
                let m2: f64 = (0..n)
                    .map(|k| {
                        let v = (0..n).map(|i| self.b[i * n + k] * y[i]).sum::<f64>() / self.d[k];
                        v * v
                    })
                    .sum();
                w * n as f64 / (m2 + 1e-8)
            })
            .collect();
        let w_sum: f64 = self.weights.iter().sum();
        for i in 0..n {
            self.mean[i] += self.sigma * yw[i];
        }
        // C^{-1/2} y_w = B D^{-1} Bᵀ y_w
        let bty: Vec<f64> = (0..n)
            .map(|k| (0..n).map(|i| self.b[i * n + k] * yw[i]).sum::<f64>() / self.d[k])
            .collect();
        let cinv_y: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|k| self.b[i * n + k] * bty[k]).sum())
            .collect();
        let a = (self.cs * (2.0 - self.cs) * self.mu_eff).sqrt();
        for i in 0..n {
            self.ps[i] = (1.0 - self.cs) * self.ps[i] + a * cinv_y[i];
        }
        let ps_norm = self.ps.iter().map(|x| x * x).sum::<f64>().sqrt();
        self.g += 1;
        let denom = (1.0 - (1.0 - self.cs).powi(2 * self.g as i32)).sqrt();
        let h = ps_norm / denom < (1.4 + 2.0 / (n as f64 + 1.0)) * self.chi_n;
        let hs = if h { 1.0 } else { 0.0 };
        let ac = (self.cc * (2.0 - self.cc) * self.mu_eff).sqrt();
        for i in 0..n {
            self.pc[i] = (1.0 - self.cc) * self.pc[i] + hs * ac * yw[i];
        }
        let decay =
            1.0 - self.c1 - self.cmu * w_sum + (1.0 - hs) * self.c1 * self.cc * (2.0 - self.cc);
        for i in 0..n {
            for j in 0..n {
                let mut rank_mu = 0.0;
                for (w, y) in w_rank.iter().zip(&ys) {
                    rank_mu += w * y[i] * y[j];
                }
                self.c[i * n + j] = decay * self.c[i * n + j]
                    + self.c1 * self.pc[i] * self.pc[j]
                    + self.cmu * rank_mu;
            }
        }
        self.sigma *= ((self.cs / self.ds) * (ps_norm / self.chi_n - 1.0))
            .min(1.0)
            .exp();
        self.sigma = self.sigma.clamp(1e-300, 1e3);
        // Margin: keep every integer coordinate's marginal std above its floor.
        for i in 0..n {
            let s = self.sigma * self.c[i * n + i].sqrt();
            if self.min_std[i] > 0.0 && s < self.min_std[i] {
                let f = self.min_std[i] / s;
                for k in 0..n {
                    self.c[i * n + k] *= f;
                    self.c[k * n + i] *= f;
                }
            }
        }
        let (w, v) = sym_eigen(&self.c, n);
        self.d = w.iter().map(|x| x.max(1e-20).sqrt()).collect();
        self.b = v;
    }

    /// Whether the run has converged (cmaes' TolX, TolFun, ConditionCov).
    fn converged(&self) -> bool {
        let n = self.n;
        let dmax = self.d.iter().copied().fold(0.0, f64::max);
        let dmin = self.d.iter().copied().fold(f64::INFINITY, f64::min);
        if dmax * dmax / dmin.max(1e-300).powi(2) > 1e14 {
            return true;
        }
        let tolx = 1e-12 * self.sigma0;
        if (0..n).all(|i| {
            self.sigma * self.c[i * n + i].sqrt() < tolx && self.sigma * self.pc[i].abs() < tolx
        }) {
            return true;
        }
        let hist = 10 + (30.0 * n as f64 / self.lambda as f64).ceil() as usize;
        if self.best_hist.len() >= hist {
            let recent = &self.best_hist[self.best_hist.len() - hist..];
            let hi = recent.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lo = recent.iter().copied().fold(f64::INFINITY, f64::min);
            if hi - lo < 1e-12 {
                return true;
            }
        }
        false
    }
}

/// The CMA-ES sampler.
pub struct CmaEsSampler {
    cfg: CmaEsSpec,
    seed: u64,
    cols: Vec<usize>,
    // Replay state.
    run: Option<Run>,
    next_gen: u32,
    restarts: u32,
    large_restarts: u32,
    evals_large: u64,
    evals_small: u64,
    lambda0: usize,
    large_lambda: usize,
    seen: usize,
    /// The sampler of the parameters outside `cols` (`independent = "tpe"`).
    others: Option<TpeSampler>,
}

impl CmaEsSampler {
    /// From the spec's settings.
    pub fn new(cfg: CmaEsSpec, seed: u64) -> Self {
        Self {
            cfg,
            seed,
            cols: Vec::new(),
            run: None,
            next_gen: 0,
            restarts: 0,
            large_restarts: 0,
            evals_large: 0,
            evals_small: 0,
            lambda0: 0,
            large_lambda: 0,
            seen: 0,
            others: None,
        }
    }

    fn min_std(&self, space: &SearchSpace) -> Vec<f64> {
        self.cols
            .iter()
            .map(|&j| {
                let p = &space.params[j];
                match (line(&p.dist), &p.dist) {
                    (Line::Cont { lo, hi }, d) if hi > lo => {
                        let cells = match d {
                            mlt_protocol::spec::Distribution::Int { .. }
                            | mlt_protocol::spec::Distribution::Float { step: Some(_), .. } => {
                                Some(((hi - lo) / cell(d)).round().max(1.0))
                            }
                            _ => None,
                        };
                        cells.map_or(0.0, |c| 0.2 / c)
                    }
                    _ => 0.0,
                }
            })
            .collect()
    }

    fn start(&mut self, space: &SearchSpace) {
        let n = self.cols.len();
        self.lambda0 = self
            .cfg
            .popsize
            .map_or(4 + (3.0 * (n as f64).ln()).floor() as usize, |p| p as usize)
            .max(2);
        self.large_lambda = self.lambda0;
        let mean = vec![0.5; n];
        self.run = Some(Run::new(
            mean,
            self.cfg.sigma0,
            self.lambda0,
            self.min_std(space),
            self.cfg.active,
        ));
    }

    fn restart(&mut self, space: &SearchSpace) {
        let n = self.cols.len();
        self.restarts += 1;
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ (0xC3A5_u64 << 32) ^ self.restarts as u64);
        let mean: Vec<f64> = (0..n).map(|_| rng.random()).collect();
        let (lambda, sigma) = match self.cfg.restart {
            Restart::None => return,
            Restart::Ipop => {
                self.large_restarts += 1;
                let l = self.lambda0 * (self.cfg.inc_popsize as usize).pow(self.large_restarts);
                (l, self.cfg.sigma0)
            }
            Restart::Bipop => {
                if self.evals_large <= self.evals_small {
                    self.large_restarts += 1;
                    self.large_lambda =
                        self.lambda0 * (self.cfg.inc_popsize as usize).pow(self.large_restarts);
                    (self.large_lambda, self.cfg.sigma0)
                } else {
                    let u: f64 = rng.random();
                    let ratio = self.large_lambda as f64 / self.lambda0 as f64 / 2.0;
                    let l = (self.lambda0 as f64 * ratio.max(1.0).powf(u * u)).floor() as usize;
                    (
                        l.max(2),
                        self.cfg.sigma0 * 10f64.powf(-2.0 * rng.random::<f64>()),
                    )
                }
            }
        };
        self.run = Some(Run::new(
            mean,
            sigma,
            lambda,
            self.min_std(space),
            self.cfg.active,
        ));
    }

    /// Replays every generation that is complete in `trials`.
    fn catch_up(&mut self, space: &SearchSpace, dirs: &[Direction], trials: &[TrialRecord]) {
        if trials.len() < self.seen {
            *self = CmaEsSampler::new(self.cfg.clone(), self.seed);
        }
        self.seen = trials.len();
        if self.run.is_none() {
            return;
        }
        loop {
            let Some(run) = &self.run else {
                return;
            };
            let lambda = run.lambda;
            let members: Vec<(Vec<f64>, f64)> = trials
                .iter()
                .filter(|t| t.generation == Some(self.next_gen) && t.state == TrialState::Complete)
                .filter_map(|t| {
                    let loss = score(t, dirs)?;
                    let x = self
                        .cols
                        .iter()
                        .map(|&j| {
                            let p = &space.params[j];
                            t.params.get(&p.name).and_then(|v| to_unit(&p.dist, v))
                        })
                        .collect::<Option<Vec<f64>>>()?;
                    Some((x, loss))
                })
                .take(lambda)
                .collect();
            if members.len() < lambda {
                return;
            }
            let large = lambda >= self.large_lambda;
            if large {
                self.evals_large += lambda as u64;
            } else {
                self.evals_small += lambda as u64;
            }
            self.next_gen += 1;
            let run = self.run.as_mut().expect("checked");
            run.tell(members);
            if run.converged() && self.cfg.restart != Restart::None {
                self.restart(space);
            }
        }
    }
}

/// Member `k` of a generation's `lambda` standard normal steps in `n` dimensions, drawn
/// together and orthogonalised in blocks of `n` (each keeping its own length), so that a
/// generation explores distinct directions (Wang, Emmerich & Bäck 2014).
fn orthogonal_step(seed: u64, n: usize, lambda: usize, k: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let block = k / n;
    // The earlier blocks' draws only advance the stream.
    for _ in 0..block * n * n {
        normal(&mut rng);
    }
    let size = n.min(lambda - block * n);
    let zs: Vec<Vec<f64>> = (0..size)
        .map(|_| (0..n).map(|_| normal(&mut rng)).collect())
        .collect();
    // Gram–Schmidt up to member k: each vector depends only on the ones before it.
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let mut step = Vec::new();
    for z in zs.iter().take(k % n + 1) {
        let len = z.iter().map(|v| v * v).sum::<f64>().sqrt();
        let mut v = z.clone();
        for q in &basis {
            let dot: f64 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            for (vi, qi) in v.iter_mut().zip(q) {
                *vi -= dot * qi;
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        let q: Vec<f64> = v.iter().map(|x| x / norm).collect();
        step = q.iter().map(|x| x * len).collect();
        basis.push(q);
    }
    step
}

/// A grid cell's width on the internal line.
fn cell(d: &mlt_protocol::spec::Distribution) -> f64 {
    match d {
        mlt_protocol::spec::Distribution::Int {
            step, log: false, ..
        } => *step as f64,
        mlt_protocol::spec::Distribution::Int {
            low,
            high,
            log: true,
            ..
        } => {
            // On the log line the cells shrink; use the narrowest (at the top).
            ((*high as f64 + 0.5) / (*high as f64 - 0.5).max(0.5))
                .ln()
                .max(1e-9)
                .min(((*low as f64 + 0.5) / (*low as f64 - 0.5).max(0.5)).ln())
        }
        mlt_protocol::spec::Distribution::Float { step: Some(s), .. } => *s,
        _ => 1.0,
    }
}

/// Single-objective loss (minimised), feasible trials only.
fn score(t: &TrialRecord, dirs: &[Direction]) -> Option<f64> {
    let v = *t.values.as_ref()?.first()?;
    if !v.is_finite() || super::mo::violation(t) > 0.0 {
        // An infeasible or non-finite result ranks last but still counts.
        return Some(f64::MAX);
    }
    Some(dirs[0].loss(v))
}

impl Sampler for CmaEsSampler {
    fn sample(&mut self, a: &Ask) -> Suggestion {
        if self.cols.is_empty() {
            self.cols = (0..a.space.params.len())
                .filter(|&j| {
                    let p = &a.space.params[j];
                    p.when.is_empty() && matches!(line(&p.dist), Line::Cont { .. })
                })
                .collect();
        }
        let mut rng = trial_rng(self.seed, a.number);
        // What TPE proposes for the parameters CMA-ES leaves out (all of them during start-up).
        let others = self.others_proposal(a);
        let startup_done = a
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .count()
            >= self.cfg.n_startup_trials as usize;
        if self.cols.is_empty() || !startup_done {
            return Suggestion {
                params: assemble(a.space, None, &others, &mut rng),
                generation: None,
            };
        }
        if self.run.is_none() {
            self.start(a.space);
        }
        self.catch_up(a.space, a.directions, a.trials);
        let run = self.run.as_ref().expect("started");
        let x = if self.cfg.orthogonal {
            let gen = self.next_gen;
            let k = a
                .trials
                .iter()
                .filter(|t| t.generation == Some(gen))
                .count();
            let z = (k < run.lambda).then(|| {
                orthogonal_step(
                    self.seed ^ ((gen as u64) << 20) ^ 0x0A7B,
                    run.n,
                    run.lambda,
                    k,
                )
            });
            run.draw_from(z, &mut rng)
        } else {
            run.draw(&mut rng)
        };
        let mut s = from_unit_cols(a, &self.cols, &x, Some(self.next_gen), &mut rng);
        if !others.is_empty() {
            // CMA-ES's coordinates first, then TPE's choices for whatever is active.
            let mut proposal: Params = self
                .cols
                .iter()
                .filter_map(|&j| {
                    let name = &a.space.params[j].name;
                    Some((name.clone(), s.params.get(name)?.clone()))
                })
                .collect();
            for (k, v) in others {
                proposal.entry(k).or_insert(v);
            }
            s.params = assemble(a.space, None, &proposal, &mut rng);
        }
        s
    }
}

impl CmaEsSampler {
    /// TPE's proposal for the parameters outside `cols`: empty unless `independent = "tpe"`
    /// and the space has such parameters.
    fn others_proposal(&mut self, a: &Ask) -> Params {
        if self.cfg.independent != Independent::Tpe || self.cols.len() == a.space.params.len() {
            return Params::new();
        }
        let seed = self.seed ^ 0x7E5E_0F0C_A1E5_u64;
        let tpe = self.others.get_or_insert_with(|| {
            // Univariate TPE (8 candidates) for each parameter CMA-ES leaves out: what the
            // held-out problems chose for it (docs/benchmarks.md), whatever TPE's own
            // default is.
            let cfg = TpeSpec {
                multivariate: false,
                n_ei_candidates: 8,
                constant_liar: false,
                ..TpeSpec::default()
            };
            TpeSampler::new(cfg, seed)
        });
        let cols = &self.cols;
        let mut p = tpe.sample(a).params;
        p.retain(|k, _| !cols.iter().any(|&j| a.space.params[j].name == *k));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::Run;

    /// Dimension, population, weights, c1, cmu, μ_eff.
    type Reference = (usize, usize, &'static [f64], f64, f64, f64);

    /// The recombination weights and learning rates of the `cmaes` package (0.13.1, the one
    /// behind Optuna's sampler) for three dimensions and population sizes, printed by
    /// `CMA(mean=np.zeros(n), sigma=1.0, population_size=λ)`.
    #[test]
    fn active_weights_and_rates_match_the_reference_implementation() {
        let cases: [Reference; 3] = [
            (
                2,
                6,
                &[
                    0.6370425712412168,
                    0.28457025743803294,
                    0.07838717132075033,
                    -0.28638378259655295,
                    -0.7649580940851276,
                    -1.1559817781589212,
                ],
                0.1548153998964136,
                0.057859085071916304,
                2.0286114646100617,
            ),
            (
                10,
                10,
                &[
                    0.45627264690340597,
                    0.2707530970017852,
                    0.1622311171586698,
                    0.08523354710016448,
                    0.025509591835974777,
                    -0.08532086250759853,
                    -0.236476601148097,
                    -0.36741365771166457,
                    -0.4829083267842344,
                    -0.5862218287788353,
                ],
                0.015283824524751714,
                0.02015428276120838,
                3.1672992814107026,
            ),
            (
                6,
                9,
                &[
                    0.4937383774843409,
                    0.2810968324806433,
                    0.15670950255807004,
                    0.06845528747694568,
                    0.0,
                    -0.23110816440549842,
                    -0.42650733323224577,
                    -0.5957697922778267,
                    -0.745069862150622,
                ],
                0.03563118207139872,
                0.0356863119967521,
                2.8406104297170534,
            ),
        ];
        for (n, lambda, weights, c1, cmu, mu_eff) in cases {
            let r = Run::new(vec![0.5; n], 0.2, lambda, vec![0.0; n], true);
            assert_eq!(r.weights.len(), lambda);
            for (a, b) in r.weights.iter().zip(weights) {
                assert!((a - b).abs() < 1e-12, "n={n} λ={lambda}: {a} vs {b}");
            }
            assert!((r.c1 - c1).abs() < 1e-12 && (r.cmu - cmu).abs() < 1e-12);
            assert!((r.mu_eff - mu_eff).abs() < 1e-12);
            // Without `active` the worse half does not count at all.
            let p = Run::new(vec![0.5; n], 0.2, lambda, vec![0.0; n], false);
            assert!(p.weights[lambda / 2..].iter().all(|w| *w == 0.0));
            assert!((p.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn a_generations_steps_are_orthogonal_in_blocks_of_the_dimension() {
        let (n, lambda) = (4, 7);
        let steps: Vec<Vec<f64>> = (0..lambda)
            .map(|k| super::orthogonal_step(11, n, lambda, k))
            .collect();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        for i in 0..lambda {
            assert!(dot(&steps[i], &steps[i]) > 1e-6);
            for j in 0..i {
                let same_block = i / n == j / n;
                let c = dot(&steps[i], &steps[j]).abs();
                if same_block {
                    assert!(c < 1e-9, "steps {i} and {j}: {c}");
                } else {
                    assert!(
                        c > 1e-6,
                        "steps {i} and {j} of different blocks are independent"
                    );
                }
            }
        }
        // The same seed gives the same steps; another seed others.
        assert_eq!(steps[5], super::orthogonal_step(11, n, lambda, 5));
        assert_ne!(steps[5], super::orthogonal_step(12, n, lambda, 5));
    }

    /// Negative updates never break the covariance: after many generations on a narrow
    /// valley its eigenvalues stay positive and the run still closes in on the minimum.
    #[test]
    fn the_active_update_keeps_the_covariance_positive_definite() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 4;
        let f = |x: &[f64]| {
            (0..n)
                .map(|i| 1e3f64.powf(i as f64 / 3.0) * (x[i] - 0.3).powi(2))
                .sum::<f64>()
        };
        let mut r = Run::new(vec![0.5; n], 0.2, 8, vec![0.0; n], true);
        for _ in 0..150 {
            let sol: Vec<(Vec<f64>, f64)> = (0..r.lambda)
                .map(|_| {
                    let x = r.draw(&mut rng);
                    let v = f(&x);
                    (x, v)
                })
                .collect();
            r.tell(sol);
            let (eig, _) = super::sym_eigen(&r.c, n);
            assert!(eig.iter().all(|e| *e > 0.0 && e.is_finite()), "{eig:?}");
        }
        assert!(f(&r.mean) < 1e-8, "{}", f(&r.mean));
    }
}
