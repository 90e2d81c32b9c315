//! Selection statistics over a study (Bailey & López de Prado): the Probabilistic and Deflated
//! Sharpe Ratio, the expected maximum Sharpe of N trials, the minimum track-record length and
//! the Probability of Backtest Overfitting by combinatorially symmetric cross-validation.
//! Sharpe ratios here are per period (not annualised); kurtosis is Pearson's (3 = normal).
use crate::special::{norm_cdf, norm_ppf};

/// The Euler–Mascheroni constant.
pub const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

use crate::metrics::Sums;
pub use crate::metrics::{moments, Moments};

/// Probabilistic Sharpe Ratio: P(true Sharpe > `benchmark`) given an observed per-period
/// Sharpe over `t` returns with skewness `g3` and Pearson kurtosis `g4`.
pub fn psr(sharpe: f64, benchmark: f64, t: f64, g3: f64, g4: f64) -> f64 {
    let den = 1.0 - g3 * sharpe + (g4 - 1.0) / 4.0 * sharpe * sharpe;
    if den <= 0.0 || t <= 1.0 {
        return f64::NAN;
    }
    norm_cdf((sharpe - benchmark) * (t - 1.0).sqrt() / den.sqrt())
}

/// Expected maximum of `n` independent standard normal draws (the false-strategy theorem's
/// approximation): (1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)).
pub fn expected_max(n: f64) -> f64 {
    if n <= 1.0 {
        return 0.0;
    }
    (1.0 - EULER_GAMMA) * norm_ppf(1.0 - 1.0 / n)
        + EULER_GAMMA * norm_ppf(1.0 - 1.0 / (n * std::f64::consts::E))
}

/// The Sharpe a best-of-`n` selection reaches by luck: √V · E[max_N], V the variance of the
/// trials' Sharpe ratios.
pub fn deflated_benchmark(variance: f64, n: f64) -> f64 {
    variance.sqrt() * expected_max(n)
}

/// Deflated Sharpe Ratio: the PSR against the luck benchmark of `n` trials.
pub fn dsr(sharpe: f64, variance: f64, n: f64, t: f64, g3: f64, g4: f64) -> f64 {
    psr(sharpe, deflated_benchmark(variance, n), t, g3, g4)
}

/// Minimum track-record length (observations) for the Sharpe to exceed `benchmark` with
/// confidence `prob` (e.g. 0.95).
pub fn min_track_record(sharpe: f64, benchmark: f64, g3: f64, g4: f64, prob: f64) -> f64 {
    if sharpe <= benchmark {
        return f64::INFINITY;
    }
    let den = 1.0 - g3 * sharpe + (g4 - 1.0) / 4.0 * sharpe * sharpe;
    1.0 + den * (norm_ppf(prob) / (sharpe - benchmark)).powi(2)
}

/// The result of a CSCV run.
#[derive(Clone, Debug, PartialEq)]
pub struct Pbo {
    /// Probability of backtest overfitting: the share of splits whose in-sample best strategy
    /// ranks at or below the median out of sample.
    pub pbo: f64,
    /// The logits λ of the out-of-sample relative rank of the in-sample best, one per split.
    pub logits: Vec<f64>,
    /// Splits evaluated: C(S, S/2).
    pub combinations: usize,
    /// The in-sample best strategy (its column) of each split.
    pub chosen: Vec<usize>,
}

/// Probability of Backtest Overfitting by CSCV over a T×N matrix of returns (`columns[n][t]`,
/// one column per strategy), cut into `s` (even) row blocks (the last T mod S rows are left
/// out). Strategies are scored by their per-period Sharpe (ddof 1, NaNs skipped). Each
/// strategy's blocks are summarised once (count, Σr, Σr²), so a split costs O(N·S) whatever T.
pub fn pbo(columns: &[Vec<f64>], s: usize) -> Result<Pbo, String> {
    let n = columns.len();
    if n < 2 {
        return Err(format!("PBO needs at least 2 strategies, got {n}"));
    }
    let t = columns[0].len();
    if columns.iter().any(|c| c.len() != t) {
        return Err("every strategy needs the same number of returns".into());
    }
    if s < 2 || !s.is_multiple_of(2) || s > 20 {
        return Err(format!("the number of splits must be even, 2–20, got {s}"));
    }
    if t < s * 2 {
        return Err(format!("{t} returns are too few for {s} splits"));
    }
    let block = t / s;
    // sums[i][b] = (count, Σr, Σr²) of strategy i's block b.
    let sums: Vec<Vec<Sums>> = columns
        .iter()
        .map(|c| {
            (0..s)
                .map(|b| Sums::of(&c[b * block..(b + 1) * block]))
                .collect()
        })
        .collect();
    let sharpe_of = |i: usize, mask: u32, want: bool| {
        let mut part = Sums::default();
        for (b, block) in sums[i].iter().enumerate() {
            if (mask & (1 << b) != 0) == want {
                part.merge(block);
            }
        }
        let sr = part.sharpe_per_period();
        if sr.is_nan() {
            f64::NEG_INFINITY
        } else {
            sr
        }
    };
    let (mut logits, mut chosen) = (Vec::new(), Vec::new());
    let mut oos_sr = vec![0.0; n];
    for mask in 0u32..(1 << s) {
        if mask.count_ones() as usize != s / 2 {
            continue;
        }
        let mut best = 0;
        let mut best_sr = f64::NEG_INFINITY;
        for (i, oos) in oos_sr.iter_mut().enumerate() {
            let v = sharpe_of(i, mask, true);
            if i == 0 || v > best_sr {
                best = i;
                best_sr = v;
            }
            *oos = sharpe_of(i, mask, false);
        }
        // Relative rank of the chosen strategy out of sample, in (0, 1).
        let below = oos_sr.iter().filter(|v| **v < oos_sr[best]).count() as f64;
        let ties = oos_sr.iter().filter(|v| **v == oos_sr[best]).count() as f64;
        let rank = below + (ties + 1.0) / 2.0;
        let w = rank / (n as f64 + 1.0);
        logits.push((w / (1.0 - w)).ln());
        chosen.push(best);
    }
    let combinations = logits.len();
    let pbo = logits.iter().filter(|l| **l <= 0.0).count() as f64 / combinations as f64;
    Ok(Pbo {
        pbo,
        logits,
        combinations,
        chosen,
    })
}

/// PBO over trials' out-of-sample return series, aligned on the days all of them have.
/// `None` with fewer than two series or too few common days for `blocks`.
pub fn study_pbo(
    series: &[(
        mlt_protocol::ids::TrialId,
        mlt_protocol::records::ReturnSeries,
    )],
    blocks: u32,
) -> Option<mlt_protocol::records::OverfitReport> {
    use std::collections::{BTreeMap, BTreeSet};
    let usable: Vec<_> = series
        .iter()
        .filter(|(_, r)| r.days.len() == r.values.len() && !r.days.is_empty())
        .collect();
    if usable.len() < 2 {
        return None;
    }
    let mut common: BTreeSet<i64> = usable[0].1.days.iter().copied().collect();
    for (_, r) in &usable[1..] {
        let d: BTreeSet<i64> = r.days.iter().copied().collect();
        common.retain(|x| d.contains(x));
    }
    let columns: Vec<Vec<f64>> = usable
        .iter()
        .map(|(_, r)| {
            let by_day: BTreeMap<i64, f64> = r
                .days
                .iter()
                .copied()
                .zip(r.values.iter().copied())
                .collect();
            common.iter().map(|d| by_day[d]).collect()
        })
        .collect();
    let p = pbo(&columns, blocks as usize).ok()?;
    let mut counts: BTreeMap<usize, u64> = BTreeMap::new();
    for c in &p.chosen {
        *counts.entry(*c).or_default() += 1;
    }
    let mut chosen: Vec<(mlt_protocol::ids::TrialId, u64)> =
        counts.into_iter().map(|(i, k)| (usable[i].0, k)).collect();
    chosen.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Some(mlt_protocol::records::OverfitReport {
        pbo: p.pbo,
        strategies: usable.len() as u64,
        observations: common.len() as u64,
        blocks,
        combinations: p.combinations as u64,
        chosen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// ../shared/vectors/README.md, "Selection statistics" (the digits as published).
    #[test]
    #[allow(clippy::excessive_precision)]
    fn psr_and_dsr_reproduce_the_reference_vectors() {
        assert!((expected_max(100.0) - 2.530_602_893_201_684_6).abs() < 1e-6);
        let p = psr(1.585 / 12f64.sqrt(), 0.0, 24.0, -2.448, 10.164);
        assert!((p - 0.913_234_306_884_860_2).abs() < 1e-6, "{p}");
        let sr0 = deflated_benchmark(0.5 / 250.0, 100.0);
        assert!((sr0 - 0.113_172_001_865_132_14).abs() < 1e-6, "{sr0}");
        let d = dsr(2.5 / 250f64.sqrt(), 0.5 / 250.0, 100.0, 1250.0, -3.0, 10.0);
        assert!((d - 0.900_396_834_449_390_3).abs() < 1e-6, "{d}");
        // Plugging excess kurtosis in gives the wrong 0.91984: make sure we are not doing that.
        assert!(
            (psr(1.585 / 12f64.sqrt(), 0.0, 24.0, -2.448, 10.164 - 3.0) - 0.91984).abs() < 1e-4
        );
        assert!((p - 0.91984).abs() > 1e-3);
    }

    #[test]
    fn min_track_record_and_moments() {
        // Normal returns (g3 = 0, g4 = 3): MinTRL = 1 + (1 + SR²/2)(z₀.₉₅ / SR)².
        let sr = 0.1;
        let want = 1.0 + (1.0 + sr * sr / 2.0) * (1.644_853_626_951_472_2f64 / sr).powi(2);
        assert!((min_track_record(sr, 0.0, 0.0, 3.0, 0.95) - want).abs() < 1e-3);
        assert!(min_track_record(0.0, 0.0, 0.0, 3.0, 0.95).is_infinite());
        let m = moments(&[0.01, -0.02, 0.03, 0.0, f64::NAN]);
        assert_eq!(m.n, 4);
        // mean 0.005, population variance 0.000325: skew 0, kurtosis (4th moment / var²).
        assert!(m.skew.abs() < 1e-12);
        let c4 = [0.005f64, -0.025, 0.025, -0.005]
            .iter()
            .map(|d| d.powi(4))
            .sum::<f64>()
            / 4.0;
        assert!((m.kurtosis - c4 / (0.000_325f64 * 0.000_325)).abs() < 1e-9);
    }

    #[test]
    fn pbo_from_block_sums_equals_the_plain_definition() {
        // The plain CSCV: concatenate the chosen blocks and compute each Sharpe from scratch.
        let naive = |cols: &[Vec<f64>], s: usize| -> Vec<f64> {
            let block = cols[0].len() / s;
            let sr = |c: &[f64], want: bool, mask: u32| {
                let x: Vec<f64> = (0..s)
                    .filter(|b| (mask & (1 << b) != 0) == want)
                    .flat_map(|b| c[b * block..(b + 1) * block].iter().copied())
                    .collect();
                moments(&x).sharpe
            };
            let n = cols.len();
            let mut logits = Vec::new();
            for mask in 0u32..(1 << s) {
                if mask.count_ones() as usize != s / 2 {
                    continue;
                }
                let is: Vec<f64> = cols.iter().map(|c| sr(c, true, mask)).collect();
                let best = (0..n)
                    .max_by(|&a, &b| is[a].total_cmp(&is[b]).then(b.cmp(&a)))
                    .unwrap();
                let oos: Vec<f64> = cols.iter().map(|c| sr(c, false, mask)).collect();
                let below = oos.iter().filter(|v| **v < oos[best]).count() as f64;
                let ties = oos.iter().filter(|v| **v == oos[best]).count() as f64;
                let w = (below + (ties + 1.0) / 2.0) / (n as f64 + 1.0);
                logits.push((w / (1.0 - w)).ln());
            }
            logits
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut cols: Vec<Vec<f64>> = (0..7)
            .map(|i| {
                (0..203)
                    .map(|_| rng.random_range(-0.01..0.01) + i as f64 * 2e-4)
                    .collect()
            })
            .collect();
        cols[2][17] = f64::NAN;
        let fast = pbo(&cols, 8).unwrap();
        let slow = naive(&cols, 8);
        assert_eq!(fast.logits.len(), slow.len());
        for (a, b) in fast.logits.iter().zip(&slow) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn pbo_is_high_for_pure_noise_and_low_for_a_real_edge() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let noise = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f64> {
            (0..1000).map(|_| rng.random_range(-0.01..0.01)).collect()
        };
        // 20 strategies of pure noise: choosing the in-sample best is a coin flip out of
        // sample, so PBO is one half on average (one matrix's splits are correlated, so
        // average over several).
        let mut total = 0.0;
        let mut cols = Vec::new();
        for _ in 0..40 {
            cols = (0..20).map(|_| noise(&mut rng)).collect::<Vec<_>>();
            let r = pbo(&cols, 10).unwrap();
            assert_eq!(r.combinations, 252);
            total += r.pbo;
        }
        assert!((0.4..0.6).contains(&(total / 40.0)), "{}", total / 40.0);
        // One strategy with a real edge: it wins in sample and stays on top out of sample.
        cols[7] = noise(&mut rng).iter().map(|x| x + 0.004).collect();
        let r = pbo(&cols, 10).unwrap();
        assert!(r.pbo < 0.05, "{}", r.pbo);
        assert!(pbo(&cols, 7).unwrap_err().contains("even"));
        assert!(pbo(&cols[..1], 4).unwrap_err().contains("2 strategies"));
    }
}
