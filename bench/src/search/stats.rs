//! The statistics the tables report: means, standard errors, rank tests, KS.

pub(super) fn best_so_far(values: &[Vec<f64>]) -> Vec<f64> {
    let mut best = f64::INFINITY;
    values
        .iter()
        .map(|v| {
            best = best.min(v[0]);
            best
        })
        .collect()
}

pub(super) fn at(curve: &[f64], n: usize) -> f64 {
    curve[(n.min(curve.len())) - 1]
}

/// Standard error of the mean.
pub(super) fn std_err(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
}

/// One-sided Mann–Whitney U test that `a` tends to be larger (worse regret) than `b`: the
/// normal approximation with tie correction and continuity correction.
pub(super) fn mann_whitney_greater(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|x| (*x, true))
        .chain(b.iter().map(|x| (*x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut ranks = vec![0.0; all.len()];
    let mut tie = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        ranks[i..=j].iter_mut().for_each(|x| *x = r);
        let t = (j - i + 1) as f64;
        tie += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = all
        .iter()
        .zip(&ranks)
        .filter(|(x, _)| x.1)
        .map(|(_, r)| r)
        .sum();
    let u = r1 - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie / (n * (n - 1.0)));
    if var <= 0.0 {
        return 0.5;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / var.sqrt();
    1.0 - mlt_scheduler::search::special::norm_cdf(z)
}

pub(super) fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

pub(super) fn human(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Two-sample Kolmogorov–Smirnov: the statistic D and its asymptotic p-value.
pub(super) fn ks_2samp(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    let ne = (a.len() * b.len()) as f64 / (a.len() + b.len()) as f64;
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    // Q_KS(λ) = 2 Σ_k (−1)^(k−1) e^(−2k²λ²).
    let p: f64 = (1..=100)
        .map(|k| {
            let k = k as f64;
            2.0 * (if k as u64 % 2 == 1 { 1.0 } else { -1.0 })
                * (-2.0 * k * k * lambda * lambda).exp()
        })
        .sum();
    (
        d,
        if lambda < 1e-3 {
            1.0
        } else {
            p.clamp(0.0, 1.0)
        },
    )
}
