//! Drift statistics for monitoring a served model against its reference (the values of its
//! training window): the population stability index over the reference's decile bins, and
//! the two-sample Kolmogorov–Smirnov statistic with its exact p-value, computed as SciPy's
//! `ks_2samp` computes it (`method='auto'` below 10,000 values a side; Hodges' lattice-path
//! counts, the outer probability summed directly).

/// The smallest share a bin is given in the PSI (an empty bin would make it infinite).
pub const PSI_FLOOR: f64 = 1e-4;

/// Bin edges at the reference's quantiles (`bins` − 1 inner edges; NaN dropped). Fewer edges
/// when quantiles coincide.
pub fn quantile_edges(reference: &[f64], bins: usize) -> Vec<f64> {
    let mut v: Vec<f64> = reference.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() || bins < 2 {
        return Vec::new();
    }
    let mut edges: Vec<f64> = (1..bins)
        .map(|k| {
            // Linear interpolation between order statistics (NumPy's default quantile).
            let pos = k as f64 / bins as f64 * (v.len() - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        })
        .collect();
    edges.dedup();
    edges
}

/// The share of `x` in each bin of `edges` (a value equal to an edge goes to the bin above).
pub fn shares(x: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 1];
    let mut n = 0usize;
    for v in x.iter().filter(|v| !v.is_nan()) {
        counts[edges.partition_point(|e| e <= v)] += 1;
        n += 1;
    }
    counts.iter().map(|c| *c as f64 / n.max(1) as f64).collect()
}

/// Population stability index of `live` against `reference` shares (each floored at
/// [`PSI_FLOOR`]): Σ (live − ref) · ln(live / ref).
pub fn psi_of_shares(reference: &[f64], live: &[f64]) -> f64 {
    reference
        .iter()
        .zip(live)
        .map(|(e, a)| {
            let (e, a) = (e.max(PSI_FLOOR), a.max(PSI_FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// PSI of `live` against `reference` over the reference's `bins` quantile bins.
pub fn psi(reference: &[f64], live: &[f64], bins: usize) -> f64 {
    let edges = quantile_edges(reference, bins);
    psi_of_shares(&shares(reference, &edges), &shares(live, &edges))
}

/// A two-sample KS test's outcome.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ks {
    /// The largest distance between the two empirical CDFs.
    pub statistic: f64,
    /// Two-sided p-value of "the same distribution".
    pub p_value: f64,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The share of lattice paths from (0, 0) to (n, n) that pass outside x − y = ±h.
fn prob_outside_square(n: usize, h: usize) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    while k >= 0 {
        let mut p1 = 1.0;
        let kh = k as f64 * h as f64;
        for j in 0..h {
            p1 = (n as f64 - kh - j as f64) * p1 / (n as f64 + kh + j as f64 + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// The share of lattice paths from (0, 0) to (m, n) that leave |n·x/g − m·y/g| < h at some
/// point, accumulated column by column as a probability (no large binomials).
fn outer_prob_inside(m: usize, n: usize, g: usize, h: usize) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = (m / g, n / g);
    let (h, mg_f, ng_f) = (h as f64, mg as f64, ng as f64);
    let mut minj = 0usize;
    let mut maxj = ((h / mg_f).ceil() as usize).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1);
    let mut a = vec![1.0f64; len_a];
    for x in a.iter_mut().take(maxj).skip(minj) {
        *x = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        let lo = ((ng_f * i as f64 - h) / mg_f).floor() as i64 + 1;
        minj = (lo.max(0) as usize).min(n);
        maxj = (((ng_f * i as f64 + h) / mg_f).ceil() as usize).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..maxj - minj {
            let j = jj + minj;
            let from = a.get(jj + minj - lastminj).copied().unwrap_or(1.0);
            val = (from * i as f64 + val * j as f64) / (i + j) as f64;
            if jj < a.len() {
                a[jj] = val;
            } else {
                a.push(val);
            }
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            for x in a.iter_mut().skip(curlen).take(lastlen - curlen) {
                *x = 1.0;
            }
        }
    }
    a[maxj - minj - 1]
}

/// The Kolmogorov distribution's survival function (the limit of √n·D): for samples above
/// 10,000 values a side, where SciPy would use its own asymptotic form.
fn kolmogorov_sf(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let mut s = 0.0;
    for k in 1..=100 {
        let t = 2.0 * (-2.0 * (k as f64 * x).powi(2)).exp();
        s += if k % 2 == 1 { t } else { -t };
        if t < 1e-16 {
            break;
        }
    }
    s.clamp(0.0, 1.0)
}

/// Two-sample, two-sided KS test of `a` against `b` (NaN dropped); None when either is empty.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Option<Ks> {
    let mut a: Vec<f64> = a.iter().copied().filter(|x| !x.is_nan()).collect();
    let mut b: Vec<f64> = b.iter().copied().filter(|x| !x.is_nan()).collect();
    if a.is_empty() || b.is_empty() {
        return None;
    }
    a.sort_by(|x, y| x.total_cmp(y));
    b.sort_by(|x, y| x.total_cmp(y));
    let (n1, n2) = (a.len(), b.len());
    // Both empirical CDFs at every value of either sample (right-continuous).
    let (mut up, mut down) = (0.0f64, 0.0f64);
    for v in a.iter().chain(&b) {
        let c1 = a.partition_point(|x| x <= v) as f64 / n1 as f64;
        let c2 = b.partition_point(|x| x <= v) as f64 / n2 as f64;
        up = up.max(c1 - c2);
        down = down.max(c2 - c1);
    }
    let d = up.max(down).clamp(0.0, 1.0);
    let g = gcd(n1, n2);
    if n1.max(n2) <= 10_000 {
        let lcm = (n1 / g) as f64 * n2 as f64;
        let h = (d * lcm).round_ties_even();
        let d = h / lcm;
        if h == 0.0 {
            return Some(Ks {
                statistic: d,
                p_value: 1.0,
            });
        }
        let h = h as usize;
        let p = if n1 == n2 {
            prob_outside_square(n1, h)
        } else {
            outer_prob_inside(n1, n2, g, h)
        };
        if (0.0..=1.0).contains(&p) {
            return Some(Ks {
                statistic: d,
                p_value: p,
            });
        }
    }
    let en = (n1 * n2) as f64 / (n1 + n2) as f64;
    Some(Ks {
        statistic: d,
        p_value: kolmogorov_sf(en.sqrt() * d),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize, f: impl Fn(usize) -> f64) -> Vec<f64> {
        (0..n).map(f).collect()
    }

    #[test]
    fn ks_matches_scipy() {
        // scipy.stats.ks_2samp(a, b) (SciPy 1.17.1, method='auto': exact) on the same values.
        let cases: Vec<(Vec<f64>, Vec<f64>, f64, f64)> = vec![
            (
                seq(60, |i| ((i * 37) % 101) as f64 / 10.0),
                seq(250, |i| ((i * 53) % 97) as f64 / 10.0 + 0.8),
                0.087_333_333_333_333_33,
                0.820_088_367_616_664_5,
            ),
            (
                seq(40, |i| ((i * 17) % 41) as f64 / 4.0),
                seq(40, |i| ((i * 29) % 43) as f64 / 4.0 + 0.5),
                0.075,
                0.999_924_608_680_65,
            ),
            (
                seq(120, |i| ((i * 7) % 113) as f64 / 11.0),
                seq(500, |i| ((i * 11) % 127) as f64 / 12.0),
                0.051,
                0.950_663_005_336_915_3,
            ),
            (
                seq(30, |i| i as f64 / 10.0),
                seq(45, |i| i as f64 / 10.0 + 2.0),
                0.777_777_777_777_777_8,
                3.303_786_217_949_253_5e-11,
            ),
            (
                seq(200, |i| ((i * 13) % 59) as f64 / 7.0),
                seq(300, |i| ((i * 13) % 59) as f64 / 7.0),
                0.006_666_666_666_666_667,
                1.0,
            ),
            (
                seq(60, |i| ((i * 37) % 101) as f64 / 10.0),
                seq(250, |i| ((i * 53) % 97) as f64 / 10.0 + 2.5),
                0.259_333_333_333_333_36,
                0.002_342_471_083_022_795_3,
            ),
            (
                seq(40, |i| ((i * 17) % 41) as f64 / 4.0),
                seq(40, |i| ((i * 29) % 43) as f64 / 4.0 + 2.0),
                0.225,
                0.265_687_140_281_728_9,
            ),
        ];
        for (i, (a, b, d, p)) in cases.iter().enumerate() {
            let k = ks_2samp(a, b).unwrap();
            assert!(
                (k.statistic - d).abs() < 1e-12,
                "case {i}: D {} vs {d}",
                k.statistic
            );
            assert!(
                (k.p_value - p).abs() < 1e-6 * p.clamp(1e-6, 1.0) + 1e-15,
                "case {i}: p {:e} vs {p:e}",
                k.p_value
            );
        }
        assert!(ks_2samp(&[], &[1.0]).is_none());
    }

    #[test]
    fn psi_by_hand() {
        // Reference 0..9 (ten values), edges at its deciles: 0.9, 1.8, …, 8.1; a live sample
        // with all of its four values in the top bin.
        let reference: Vec<f64> = (0..10).map(f64::from).collect();
        let edges = quantile_edges(&reference, 10);
        assert_eq!(edges.len(), 9);
        assert!((edges[0] - 0.9).abs() < 1e-12 && (edges[8] - 8.1).abs() < 1e-12);
        let live = [9.0, 9.5, 10.0, 12.0];
        // Reference shares: 0.1 each. Live: 0 in nine bins (floored to 1e-4), 1 in the last.
        let want = 9.0 * (1e-4 - 0.1) * (1e-4f64 / 0.1).ln() + (1.0 - 0.1) * (1.0f64 / 0.1).ln();
        assert!((psi(&reference, &live, 10) - want).abs() < 1e-12);
        // The same distribution: 0.
        assert!(psi(&reference, &reference, 10).abs() < 1e-12);
    }
}
