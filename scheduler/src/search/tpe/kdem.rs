//! The product-kernel estimator of multivariate TPE.
use super::{sample_probs, EPS, LN_SQRT_2PI};
use crate::search::space::Line;
use crate::search::special::{log_norm_mass, trunc_normal, LogSumExp};
use mlt_protocol::spec::TpeSpec;
use rand::Rng;

/// A product-kernel mixture over several dimensions (multivariate TPE).
pub(super) struct Kdem {
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
    pub(crate) fn new(obs: &[Vec<f64>], weights: &[f64], lines: &[Line], cfg: &TpeSpec) -> Self {
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

    pub(crate) fn draw(&self, rng: &mut impl Rng) -> Vec<f64> {
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

    pub(crate) fn log_pdf(&self, x: &[f64]) -> f64 {
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
