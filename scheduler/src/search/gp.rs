//! Gaussian-process Bayesian optimisation in the spirit of Optuna's `GPSampler`:
//!
//! * inputs: the unit cube of the always-active parameters (categorical ones compared by
//!   equality), other parameters drawn at random;
//! * model: zero-mean GP on standardised losses with an ARD Matérn-5/2 kernel plus noise; the
//!   inverse squared length scales, the kernel scale and the noise are fitted by maximising the
//!   marginal likelihood with Optuna's Gamma priors (L-BFGS on the log parameters with analytic
//!   gradients, from the same start every time, so suggestions are reproducible);
//! * acquisition: log expected improvement (Ament et al. 2023), computed stably far in the
//!   tail, maximised over random candidates and then refined locally around the best ones;
//! * the first `n_startup_trials` are scrambled-Sobol-like random points.
//!
//! Meant for studies of up to a few hundred trials: the fit costs O(n³) per suggestion, so
//! beyond 300 results only the best 300 are modelled.
#![allow(clippy::needless_range_loop)] // index loops read best in the linear algebra
use super::linalg::{cholesky, inverse_from_cholesky, solve_lower, solve_upper_t};
use super::space::{assemble, from_unit_cols, line, normal, to_unit, Line};
use super::special::norm_cdf;
use super::{trial_rng, Ask, Sampler, Suggestion};
use mlt_protocol::records::{Params, TrialState};
use mlt_protocol::spec::GpSpec;
use rand::Rng;

const SQRT5: f64 = 2.236_067_977_499_79;
const MIN_NOISE: f64 = 1e-6;
/// Most results the model is fitted to (the best ones when there are more).
const MAX_FIT: usize = 300;

/// The GP sampler.
pub struct GpSampler {
    cfg: GpSpec,
    seed: u64,
}

impl GpSampler {
    /// From the spec's settings.
    pub fn new(cfg: GpSpec, seed: u64) -> Self {
        Self { cfg, seed }
    }
}

/// A fitted GP.
pub struct Gp {
    x: Vec<Vec<f64>>,
    cat: Vec<bool>,
    lam: Vec<f64>,
    scale: f64,
    l: Vec<f64>,
    alpha: Vec<f64>,
}

fn sq_dist(a: &[f64], b: &[f64], lam: &[f64], cat: &[bool]) -> f64 {
    let mut r2 = 0.0;
    for d in 0..a.len() {
        let diff = if cat[d] {
            if (a[d] - b[d]).abs() > 1e-9 {
                1.0
            } else {
                0.0
            }
        } else {
            a[d] - b[d]
        };
        r2 += lam[d] * diff * diff;
    }
    r2
}

fn matern(r2: f64) -> f64 {
    let a = SQRT5 * r2.max(0.0).sqrt();
    (1.0 + a + a * a / 3.0) * (-a).exp()
}

/// d matern / d r².
fn matern_grad(r2: f64) -> f64 {
    let a = SQRT5 * r2.max(0.0).sqrt();
    -(5.0 / 6.0) * (1.0 + a) * (-a).exp()
}

/// log prior of Gamma(c, r) on x, and its derivative in log x.
fn gamma_prior(x: f64, c: f64, r: f64) -> (f64, f64) {
    ((c - 1.0) * x.ln() - r * x, (c - 1.0) - r * x)
}

/// −(log marginal likelihood + log prior) of the hyperparameters and its gradient, or
/// `None` when the kernel matrix is not positive definite.
fn neg_log_posterior(
    theta: &[f64],
    diffs: &[f64],
    y: &[f64],
    n: usize,
    d: usize,
) -> Option<(f64, Vec<f64>)> {
    let lam: Vec<f64> = theta[..d].iter().map(|t| t.exp()).collect();
    let scale = theta[d].exp();
    let noise = theta[d + 1].exp() + MIN_NOISE;
    let mut k = vec![0.0; n * n];
    let mut g2 = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..i {
            let dd = &diffs[(i * n + j) * d..(i * n + j + 1) * d];
            let r2: f64 = lam.iter().zip(dd).map(|(l, x)| l * x).sum();
            let kij = scale * matern(r2);
            k[i * n + j] = kij;
            k[j * n + i] = kij;
            let g = scale * matern_grad(r2);
            g2[i * n + j] = g;
            g2[j * n + i] = g;
        }
        k[i * n + i] = scale + noise;
        g2[i * n + i] = scale * matern_grad(0.0);
    }
    let l = cholesky(&k, n)?;
    let alpha = solve_upper_t(&l, n, &solve_lower(&l, n, y));
    let log_det: f64 = (0..n).map(|i| l[i * n + i].ln()).sum::<f64>() * 2.0;
    let fit: f64 = y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
    let mut lml = -0.5 * fit - 0.5 * log_det - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
    let kinv = inverse_from_cholesky(&l, n);
    let mut grad = vec![0.0; d + 2];
    for i in 0..n {
        for j in 0..n {
            let w = alpha[i] * alpha[j] - kinv[i * n + j];
            let g = 0.5 * w * g2[i * n + j];
            if i != j {
                let dd = &diffs[(i * n + j) * d..(i * n + j + 1) * d];
                for q in 0..d {
                    grad[q] += g * lam[q] * dd[q];
                }
            }
            let kij = k[i * n + j] - if i == j { noise } else { 0.0 };
            grad[d] += 0.5 * w * kij;
            if i == j {
                grad[d + 1] += 0.5 * w * (noise - MIN_NOISE);
            }
        }
    }
    for q in 0..d {
        let (v, g) = gamma_prior(lam[q], 2.0, 0.5);
        lml += v;
        grad[q] += g;
    }
    let (v, g) = gamma_prior(scale, 2.0, 1.0);
    lml += v;
    grad[d] += g;
    let (v, g) = gamma_prior(noise, 1.1, 30.0);
    lml += v;
    grad[d + 1] += g * (noise - MIN_NOISE) / noise;
    Some((-lml, grad.iter().map(|g| -g).collect()))
}

/// Limited-memory BFGS (memory 8) with a backtracking Armijo line search, parameters kept in
/// [−12, 12]. Deterministic: the same start gives the same optimum.
/// A function with its gradient (`None` outside its domain).
type Objective<'a> = &'a dyn Fn(&[f64]) -> Option<(f64, Vec<f64>)>;

fn lbfgs(f: Objective, mut x: Vec<f64>, max_iter: usize) -> Vec<f64> {
    let clip = |v: &mut Vec<f64>| v.iter_mut().for_each(|t| *t = t.clamp(-12.0, 12.0));
    let Some((mut fx, mut g)) = f(&x) else {
        return x;
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let mut mem: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    for _ in 0..max_iter {
        // Two-loop recursion: direction = −H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(mem.len());
        for (s, yv, rho) in mem.iter().rev() {
            let a = rho * dot(s, &q);
            for (qi, yi) in q.iter_mut().zip(yv) {
                *qi -= a * yi;
            }
            alphas.push(a);
        }
        let gamma = mem
            .last()
            .map_or(1.0 / dot(&g, &g).sqrt().max(1.0), |(s, yv, _)| {
                dot(s, yv) / dot(yv, yv)
            });
        for qi in q.iter_mut() {
            *qi *= gamma;
        }
        for ((s, yv, rho), a) in mem.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(yv, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (a - b) * si;
            }
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        if dot(&dir, &g) >= 0.0 {
            dir = g.iter().map(|v| -v).collect();
            mem.clear();
        }
        let slope = dot(&dir, &g);
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..30 {
            let mut xn: Vec<f64> = x.iter().zip(&dir).map(|(a, b)| a + step * b).collect();
            clip(&mut xn);
            if let Some((fnew, gnew)) = f(&xn) {
                if fnew <= fx + 1e-4 * step * slope {
                    accepted = Some((xn, fnew, gnew));
                    break;
                }
            }
            step *= 0.5;
        }
        let Some((xn, fnew, gnew)) = accepted else {
            break;
        };
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = gnew.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        if sy > 1e-12 {
            mem.push((s, yv, 1.0 / sy));
            if mem.len() > 8 {
                mem.remove(0);
            }
        }
        let done = (fx - fnew).abs() <= 1e-9 * fx.abs().max(1.0)
            || gnew.iter().map(|v| v.abs()).fold(0.0, f64::max) < 1e-5;
        x = xn;
        fx = fnew;
        g = gnew;
        if done {
            break;
        }
    }
    x
}

impl Gp {
    /// Fits the GP to `x` (unit cube) and standardised `y`.
    pub fn fit(x: Vec<Vec<f64>>, y: &[f64], cat: Vec<bool>) -> Option<Gp> {
        let n = x.len();
        let d = cat.len();
        // Squared per-dimension differences, flat: (i·n + j)·d + q.
        let mut diffs = vec![0.0; n * n * d];
        for i in 0..n {
            for j in 0..i {
                for q in 0..d {
                    let diff = if cat[q] {
                        ((x[i][q] - x[j][q]).abs() > 1e-9) as u8 as f64
                    } else {
                        x[i][q] - x[j][q]
                    };
                    diffs[(i * n + j) * d + q] = diff * diff;
                    diffs[(j * n + i) * d + q] = diff * diff;
                }
            }
        }
        // θ = (log λ_1..d, log scale, log(noise − MIN_NOISE)), from the same start every time.
        let mut theta0 = vec![0.0; d + 2];
        theta0[d + 1] = (1e-2f64).ln();
        let objective = |theta: &[f64]| neg_log_posterior(theta, &diffs, y, n, d);
        let theta = lbfgs(&objective, theta0, 60);
        let lam: Vec<f64> = theta[..d].iter().map(|t| t.exp()).collect();
        let scale = theta[d].exp();
        let noise = theta[d + 1].exp() + MIN_NOISE;
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                k[i * n + j] = scale * matern(sq_dist(&x[i], &x[j], &lam, &cat));
            }
            k[i * n + i] += noise;
        }
        let l = cholesky(&k, n)?;
        let alpha = solve_upper_t(&l, n, &solve_lower(&l, n, y));
        Some(Gp {
            x,
            cat,
            lam,
            scale,
            l,
            alpha,
        })
    }

    /// Posterior mean and standard deviation at `p`.
    pub fn predict(&self, p: &[f64]) -> (f64, f64) {
        let n = self.x.len();
        let kx: Vec<f64> = self
            .x
            .iter()
            .map(|xi| self.scale * matern(sq_dist(p, xi, &self.lam, &self.cat)))
            .collect();
        let mean: f64 = kx.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = solve_lower(&self.l, n, &kx);
        let var = (self.scale - v.iter().map(|x| x * x).sum::<f64>()).max(1e-12);
        (mean, var.sqrt())
    }
}

/// log EI for minimisation at standardised improvement z = (best − μ)/σ, plus log σ.
pub fn log_ei(mean: f64, sd: f64, best: f64) -> f64 {
    let z = (best - mean) / sd;
    let log_h = if z > -6.0 {
        let phi = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (phi + z * norm_cdf(z)).max(1e-300).ln()
    } else {
        // h(z) = φ(z)(1 + zΦ(z)/φ(z)) and Φ(z)/φ(z) ~ 1/|z| − 1/|z|³ + 3/|z|⁵ − 15/|z|⁷ + 105/|z|⁹.
        let z2 = z * z;
        let log_phi = -0.5 * z2 - 0.5 * (2.0 * std::f64::consts::PI).ln();
        let z4 = z2 * z2;
        log_phi + (1.0 / z2 - 3.0 / z4 + 15.0 / (z4 * z2) - 105.0 / (z4 * z4)).ln()
    };
    log_h + sd.ln()
}

impl Sampler for GpSampler {
    fn is_slow(&self, _n_trials: usize) -> bool {
        true
    }

    fn sample(&mut self, a: &Ask) -> Suggestion {
        let mut rng = trial_rng(self.seed, a.number);
        let cols: Vec<usize> = (0..a.space.params.len())
            .filter(|&j| {
                let p = &a.space.params[j];
                p.when.is_empty() && !matches!(line(&p.dist), Line::Fixed)
            })
            .collect();
        let cat: Vec<bool> = cols
            .iter()
            .map(|&j| matches!(line(&a.space.params[j].dist), Line::Cat(_)))
            .collect();
        let n_cat: Vec<usize> = cols
            .iter()
            .map(|&j| match line(&a.space.params[j].dist) {
                Line::Cat(n) => n,
                _ => 0,
            })
            .collect();
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for t in a.trials.iter().filter(|t| t.state == TrialState::Complete) {
            let Some(v) = t.values.as_ref().and_then(|v| v.first().copied()) else {
                continue;
            };
            if !v.is_finite() {
                continue;
            }
            let x: Option<Vec<f64>> = cols
                .iter()
                .map(|&j| {
                    let p = &a.space.params[j];
                    t.params.get(&p.name).and_then(|v| to_unit(&p.dist, v))
                })
                .collect();
            if let Some(x) = x {
                xs.push(x);
                // Infeasible trials are penalised to the worst value seen.
                ys.push((a.directions[0].loss(v), super::mo::violation(t) > 0.0));
            }
        }
        // The fit is O(n³): beyond MAX_FIT results keep the best ones (where the search is).
        if xs.len() > MAX_FIT {
            let mut order: Vec<usize> = (0..xs.len()).collect();
            order.sort_by(|&i, &j| ys[i].1.cmp(&ys[j].1).then(ys[i].0.total_cmp(&ys[j].0)));
            order.truncate(MAX_FIT);
            order.sort_unstable();
            xs = order.iter().map(|&i| xs[i].clone()).collect();
            ys = order.iter().map(|&i| ys[i]).collect();
        }
        if cols.is_empty() || xs.len() < self.cfg.n_startup_trials as usize || xs.len() < 2 {
            return Suggestion {
                params: assemble(a.space, None, &Params::new(), &mut rng),
                generation: None,
            };
        }
        let worst = ys.iter().map(|y| y.0).fold(f64::NEG_INFINITY, f64::max);
        let raw: Vec<f64> = ys
            .iter()
            .map(|(y, inf)| if *inf { worst } else { *y })
            .collect();
        let mean = raw.iter().sum::<f64>() / raw.len() as f64;
        let sd = (raw.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / raw.len() as f64)
            .sqrt()
            .max(1e-12);
        let y: Vec<f64> = raw.iter().map(|v| (v - mean) / sd).collect();
        let best = y.iter().copied().fold(f64::INFINITY, f64::min);
        let Some(gp) = Gp::fit(xs.clone(), &y, cat.clone()) else {
            return Suggestion {
                params: assemble(a.space, None, &Params::new(), &mut rng),
                generation: None,
            };
        };
        let snap = |x: &mut Vec<f64>| {
            for (k, n) in n_cat.iter().enumerate() {
                if *n > 0 {
                    let i = ((x[k] * *n as f64).floor() as usize).min(n - 1);
                    x[k] = (i as f64 + 0.5) / *n as f64;
                }
            }
        };
        let acq = |x: &[f64]| {
            let (m, s) = gp.predict(x);
            log_ei(m, s, best)
        };
        let d = cols.len();
        let mut cands: Vec<(f64, Vec<f64>)> = (0..self.cfg.n_candidates)
            .map(|_| {
                let mut x: Vec<f64> = (0..d).map(|_| rng.random()).collect();
                snap(&mut x);
                (acq(&x), x)
            })
            .collect();
        // Also start from the best points seen, nudged.
        let mut order: Vec<usize> = (0..y.len()).collect();
        order.sort_by(|&i, &j| y[i].total_cmp(&y[j]));
        for &i in order.iter().take(5) {
            let mut x: Vec<f64> = xs[i]
                .iter()
                .map(|v| (v + 0.01 * normal(&mut rng)).clamp(0.0, 1.0))
                .collect();
            snap(&mut x);
            cands.push((acq(&x), x));
        }
        cands.sort_by(|p, q| q.0.total_cmp(&p.0));
        // Local refinement: shrinking Gaussian moves around the five best candidates.
        let mut best_c = cands[0].clone();
        for (v0, x0) in cands.into_iter().take(5) {
            let (mut v, mut x) = (v0, x0);
            let mut radius = 0.05;
            for _ in 0..60 {
                let mut y2: Vec<f64> = x.clone();
                for (k, yk) in y2.iter_mut().enumerate() {
                    if n_cat[k] > 0 {
                        if rng.random::<f64>() < 0.1 {
                            *yk = rng.random();
                        }
                    } else {
                        *yk = (*yk + radius * normal(&mut rng)).clamp(0.0, 1.0);
                    }
                }
                snap(&mut y2);
                let vy = acq(&y2);
                if vy > v {
                    v = vy;
                    x = y2;
                } else {
                    radius *= 0.9;
                }
            }
            if v > best_c.0 {
                best_c = (v, x);
            }
        }
        from_unit_cols(a, &cols, &best_c.1, None, &mut rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gp_interpolates_a_smooth_function_and_log_ei_is_stable() {
        let xs: Vec<Vec<f64>> = (0..12).map(|i| vec![i as f64 / 11.0]).collect();
        let f = |x: f64| (6.0 * x).sin();
        let y: Vec<f64> = xs.iter().map(|x| f(x[0])).collect();
        let gp = Gp::fit(xs, &y, vec![false]).unwrap();
        for k in 0..20 {
            let x = k as f64 / 19.0;
            let (m, s) = gp.predict(&[x]);
            assert!((m - f(x)).abs() < 0.05, "x {x}: {m} vs {}", f(x));
            assert!(s < 0.2);
        }
        // log EI is finite and increasing in the mean's advantage, far into the tail.
        let mut last = f64::NEG_INFINITY;
        for k in 0..60 {
            let mean = 40.0 - k as f64;
            let v = log_ei(mean, 1.0, 0.0);
            assert!(v.is_finite() && v > last, "{mean}: {v}");
            last = v;
        }
        // It agrees with the closed form where that is accurate: EI(μ=0, σ=1, best=0) = φ(0).
        assert!((log_ei(0.0, 1.0, 0.0) - (0.398_942_280_4f64).ln()).abs() < 1e-6);
    }
}
