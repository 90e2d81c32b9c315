//! Performance metrics of a series of per-period returns, with empyrical's conventions: daily
//! data and 252 periods a year, sample standard deviation (ddof = 1), a risk-free rate of 0
//! per period, downside deviation averaged over all observations, drawdowns on the compounded
//! wealth curve (a negative fraction), VaR as numpy's linearly interpolated percentile and CVaR
//! as the mean of the lowest ⌊(n − 1) · cutoff⌋ + 1 returns. NaN returns are skipped by every statistic
//! except the length used by the annual return (CAGR).

/// Periods in a year.
pub const PERIODS: f64 = 252.0;

fn finite(r: &[f64]) -> Vec<f64> {
    r.iter().copied().filter(|x| !x.is_nan()).collect()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn std(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return f64::NAN;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// The standard deviation (ddof 1) of a set of figures (folds' Sharpe ratios, backtest
/// paths'), 0 with fewer than two: one figure has no spread.
pub fn spread(x: &[f64]) -> f64 {
    if x.len() < 2 {
        0.0
    } else {
        std(x)
    }
}

/// Per-period Sharpe ratio: mean / std (ddof 1), NaNs skipped.
pub fn sharpe_per_period(r: &[f64]) -> f64 {
    let x = finite(r);
    mean(&x) / std(&x)
}

/// Annualised Sharpe ratio: mean / std (ddof 1) · √252.
pub fn sharpe(r: &[f64]) -> f64 {
    sharpe_per_period(r) * PERIODS.sqrt()
}

/// Sums of a return series (count, Σr, Σr²): its Sharpe ratio without a pass over the history
/// (a trial's report after every fold), and sums of parts that add up (PBO's blocks).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sums {
    /// Count.
    pub n: f64,
    /// Σr.
    pub s1: f64,
    /// Σr².
    pub s2: f64,
}

impl Sums {
    /// The sums of `r`, NaNs skipped.
    pub fn of(r: &[f64]) -> Sums {
        let mut s = Sums::default();
        for v in r.iter().filter(|v| !v.is_nan()) {
            s.push(*v);
        }
        s
    }

    /// Adds one return (a NaN makes the sums NaN).
    pub fn push(&mut self, v: f64) {
        self.n += 1.0;
        self.s1 += v;
        self.s2 += v * v;
    }

    /// Adds the sums of another part.
    pub fn merge(&mut self, o: &Sums) {
        self.n += o.n;
        self.s1 += o.s1;
        self.s2 += o.s2;
    }

    /// Mean.
    pub fn mean(&self) -> f64 {
        self.s1 / self.n
    }

    /// Standard deviation (ddof 1).
    pub fn std(&self) -> f64 {
        let m = self.mean();
        ((self.s2 - self.n * m * m) / (self.n - 1.0))
            .max(0.0)
            .sqrt()
    }

    /// Per-period Sharpe ratio: mean / std (ddof 1).
    pub fn sharpe_per_period(&self) -> f64 {
        self.mean() / self.std()
    }
}

/// Annualised downside deviation below `required` (per period), over all observations.
pub fn downside_risk(r: &[f64], required: f64) -> f64 {
    let x = finite(r);
    let sq: f64 = x.iter().map(|v| (v - required).min(0.0).powi(2)).sum();
    (sq / x.len() as f64).sqrt() * PERIODS.sqrt()
}

/// Annualised Sortino ratio against a required return of 0.
pub fn sortino(r: &[f64]) -> f64 {
    let x = finite(r);
    mean(&x) * PERIODS / downside_risk(&x, 0.0)
}

/// Cumulative simple returns (NaN counts as 0).
pub fn cum_returns(r: &[f64]) -> Vec<f64> {
    let mut w = 1.0;
    r.iter()
        .map(|x| {
            if !x.is_nan() {
                w *= 1.0 + x;
            }
            w - 1.0
        })
        .collect()
}

/// Compound annual growth rate: ∏(1 + r)^(252 / len) − 1, len counting NaN rows.
pub fn annual_return(r: &[f64]) -> f64 {
    if r.is_empty() {
        return f64::NAN;
    }
    let total: f64 = r.iter().filter(|x| !x.is_nan()).map(|x| 1.0 + x).product();
    total.powf(PERIODS / r.len() as f64) - 1.0
}

/// Annualised volatility: std (ddof 1) · √252.
pub fn annual_volatility(r: &[f64]) -> f64 {
    std(&finite(r)) * PERIODS.sqrt()
}

/// Largest peak-to-trough fall of the wealth curve (starting at 1), as a negative fraction.
pub fn max_drawdown(r: &[f64]) -> f64 {
    let (mut w, mut peak, mut worst) = (1.0f64, 1.0f64, 0.0f64);
    for x in r.iter().filter(|x| !x.is_nan()) {
        w *= 1.0 + x;
        peak = peak.max(w);
        worst = worst.min((w - peak) / peak);
    }
    worst
}

/// Annual return over the magnitude of the maximum drawdown (NaN without a drawdown).
pub fn calmar(r: &[f64]) -> f64 {
    let dd = max_drawdown(r);
    if dd == 0.0 {
        return f64::NAN;
    }
    annual_return(r) / dd.abs()
}

/// numpy's linear percentile of `x` at `q` ∈ [0, 1].
fn percentile(x: &[f64], q: f64) -> f64 {
    let mut s = finite(x);
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Value at risk at `cutoff` (e.g. 0.05): the `cutoff` percentile of the returns.
pub fn value_at_risk(r: &[f64], cutoff: f64) -> f64 {
    percentile(r, cutoff)
}

/// Conditional value at risk, as empyrical defines it: the mean of the lowest
/// ⌊(n − 1) · cutoff⌋ + 1 returns (NaNs skipped). Ties at the VaR (the many exact zeros of
/// flat days) count only as far as that number reaches, not all of them.
pub fn conditional_value_at_risk(r: &[f64], cutoff: f64) -> f64 {
    let mut s = finite(r);
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let k = ((s.len() - 1) as f64 * cutoff).floor() as usize;
    mean(&s[..=k.min(s.len() - 1)])
}

/// Moments of a return series, as the selection statistics (PSR, DSR, minTRL) take them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    /// Per-period Sharpe: mean / standard deviation (ddof 1).
    pub sharpe: f64,
    /// Skewness (population moments, as scipy.stats.skew).
    pub skew: f64,
    /// Pearson kurtosis (population moments; 3 for a normal distribution).
    pub kurtosis: f64,
    /// Observations (NaNs skipped).
    pub n: usize,
}

/// The moments of `r` (NaNs skipped).
pub fn moments(r: &[f64]) -> Moments {
    let x = finite(r);
    let n = x.len() as f64;
    let m = mean(&x);
    let c2 = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n;
    let c3 = x.iter().map(|v| (v - m).powi(3)).sum::<f64>() / n;
    let c4 = x.iter().map(|v| (v - m).powi(4)).sum::<f64>() / n;
    Moments {
        sharpe: m / std(&x),
        skew: c3 / c2.powf(1.5),
        kurtosis: c4 / (c2 * c2),
        n: x.len(),
    }
}

/// Pearson correlation of two equally long series (NaN when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// A strategy against its benchmark over the same days.
///
/// The active return is a = r − b. `excess_return` is its annualised mean (252 · mean(a),
/// arithmetic, so that it matches the information ratio), `information_ratio` its mean over
/// its standard deviation (ddof 1) · √252, `excess_t` the t-statistic of its mean
/// (mean / (std / √n)). `alpha` and `beta` are the OLS regression r = α + β · b + ε, alpha
/// annualised (252 · α); their t-statistics test each against 0 with the residual variance on
/// n − 2 degrees of freedom. Days where either return is NaN are skipped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Relative {
    /// The benchmark's annualised Sharpe ratio.
    pub benchmark_sharpe: f64,
    /// The benchmark's compound annual growth rate.
    pub benchmark_return: f64,
    /// 252 · mean(r − b).
    pub excess_return: f64,
    /// mean(r − b) / std(r − b) · √252.
    pub information_ratio: f64,
    /// The t-statistic of mean(r − b).
    pub excess_t: f64,
    /// 252 · the regression's intercept.
    pub alpha: f64,
    /// The intercept's t-statistic.
    pub alpha_t: f64,
    /// The regression's slope on the benchmark.
    pub beta: f64,
    /// The slope's t-statistic (against 0).
    pub beta_t: f64,
}

/// `r` against the benchmark `b` (equally long, day by day): see [`Relative`].
pub fn relative(r: &[f64], b: &[f64]) -> Relative {
    let (x, y): (Vec<f64>, Vec<f64>) = b
        .iter()
        .zip(r)
        .filter(|(b, r)| !b.is_nan() && !r.is_nan())
        .map(|(b, r)| (*b, *r))
        .unzip();
    let n = x.len() as f64;
    let active: Vec<f64> = y.iter().zip(&x).map(|(r, b)| r - b).collect();
    let (ma, sa) = (mean(&active), std(&active));
    let (mx, my) = (mean(&x), mean(&y));
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    let sxy: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let beta = sxy / sxx;
    let alpha = my - beta * mx;
    let ssr: f64 = x
        .iter()
        .zip(&y)
        .map(|(a, b)| (b - alpha - beta * a).powi(2))
        .sum();
    let s2 = ssr / (n - 2.0);
    let se_beta = (s2 / sxx).sqrt();
    let se_alpha = (s2 * (1.0 / n + mx * mx / sxx)).sqrt();
    Relative {
        benchmark_sharpe: sharpe(b),
        benchmark_return: annual_return(b),
        excess_return: ma * PERIODS,
        information_ratio: ma / sa * PERIODS.sqrt(),
        excess_t: ma / (sa / n.sqrt()),
        alpha: alpha * PERIODS,
        alpha_t: alpha / se_alpha,
        beta,
        beta_t: beta / se_beta,
    }
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut out = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman's rank correlation (scipy.stats.spearmanr: Pearson on average ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Share of periods with a positive return.
pub fn win_rate(r: &[f64]) -> f64 {
    let x = finite(r);
    x.iter().filter(|v| **v > 0.0).count() as f64 / x.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: [f64; 9] = [f64::NAN, 0.01, 0.10, -0.04, 0.02, 0.03, 0.02, 0.01, -0.10];
    const POSITIVE: [f64; 9] = [0.01, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01];
    const NEGATIVE: [f64; 9] = [0.00, -0.06, -0.07, -0.01, -0.09, -0.02, -0.06, -0.08, -0.05];

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
    }

    /// ../shared/vectors/README.md, "Performance metrics — empyrical conventions" (the
    /// digits as published).
    #[test]
    #[allow(clippy::excessive_precision)]
    fn metrics_reproduce_the_reference_vectors() {
        close(sharpe(&MIXED), 1.723_861_396_170_686_6);
        close(sharpe(&POSITIVE), 52.915_026_221_291_804);
        close(sharpe(&NEGATIVE), -24.406_808_633_910_085);
        close(sortino(&MIXED), 2.605_531_251_673_693);
        close(sortino(&NEGATIVE), -13.532_743_075_043_401);
        close(downside_risk(&MIXED, 0.0), 0.604_483_250_388_296_5);
        close(downside_risk(&MIXED, 0.1), 1.716_173_068_195_629_5);
        close(annual_return(&MIXED), 1.913_592_537_319_423_1);
        close(annual_volatility(&MIXED), 0.913_646_539_970_463_7);
        close(calmar(&MIXED), 19.135_925_373_194_233);
        close(max_drawdown(&MIXED), -0.1);
        close(max_drawdown(&[0.10, -0.10, 0.10]), -0.10);
        let want = [
            0.0, 0.01, 0.111, 0.066559, 0.08789, 0.12052, 0.14293, 0.15436, 0.03893,
        ];
        for (a, b) in cum_returns(&MIXED).iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}"); // the vector is given to 5 places
        }
        close(value_at_risk(&[1.0, 2.0], 0.3), 1.3);
        let v = [1.0, 81.0, 82.0, 83.0, 84.0, 85.0];
        close(value_at_risk(&v, 0.1), 41.0);
        close(value_at_risk(&v, 0.2), 81.0);
        close(value_at_risk(&v, 0.3), 81.5);
        // CVaR: the mean of the lowest ⌊(n − 1)·cutoff⌋ + 1 returns; win rate over non-NaN
        // periods.
        close(conditional_value_at_risk(&v, 0.2), 41.0);
        // Ties at the VaR: 900 flat days, 40 losses of 1%, 60 gains of 1%. The lowest
        // ⌊999 · 0.05⌋ + 1 = 50 returns are the 40 losses and 10 zeros: −0.4% / 50 · 100.
        // (The mean of every return at or below the VaR, 0, would be −0.4 / 940 = −0.000426.)
        let mut flat = vec![0.0; 900];
        flat.extend([-0.01; 40]);
        flat.extend([0.01; 60]);
        close(value_at_risk(&flat, 0.05), 0.0);
        close(conditional_value_at_risk(&flat, 0.05), -0.008);
        close(win_rate(&MIXED), 6.0 / 8.0);
    }

    /// A five-day series against its benchmark, by hand:
    /// b = [1, −1, 2, 0, 3] %, r = [2, −1, 3, 1, 4] % (r = 1 % + b, except day 2).
    /// Active a = [1, 0, 1, 1, 1] %: mean 0.8 %, variance (4 · 0.2² + 0.8²) / 4 = 0.2 %²,
    /// std √0.2 % = 0.4472 %.
    /// Regression: mean b = 1 %, mean r = 1.8 %; Sxx = (0 + 4 + 1 + 1 + 4)·10⁻⁴ = 10⁻³;
    /// Sxy = (0·0.2 + (−2)(−2.8) + 1·1.2 + (−1)(−0.8) + 2·2.2)·10⁻⁴ = 12·10⁻⁴: β = 1.2,
    /// α = 1.8 % − 1.2 · 1 % = 0.6 %. Residuals (%): 2 − 0.6 − 1.2 = 0.2, −1 − 0.6 + 1.2 = −0.4,
    /// 3 − 0.6 − 2.4 = 0, 1 − 0.6 − 0 = 0.4, 4 − 0.6 − 3.6 = −0.2: SSR = 0.4·10⁻⁴,
    /// s² = SSR / 3; se(β) = √(s² / Sxx), se(α) = √(s² (1/5 + 10⁻⁴ / Sxx)).
    #[test]
    fn the_benchmark_comparison_by_hand() {
        let b = [0.01, -0.01, 0.02, 0.0, 0.03];
        let r = [0.02, -0.01, 0.03, 0.01, 0.04];
        let x = relative(&r, &b);
        let sa = 0.2f64.sqrt() / 100.0;
        close(x.excess_return, 0.008 * 252.0);
        close(x.information_ratio, 0.008 / sa * 252f64.sqrt());
        close(x.excess_t, 0.008 / (sa / 5f64.sqrt()));
        close(x.beta, 1.2);
        close(x.alpha, 0.006 * 252.0);
        let s2 = 0.4e-4 / 3.0;
        close(x.beta_t, 1.2 / (s2 / 1e-3f64).sqrt());
        close(x.alpha_t, 0.006 / (s2 * (0.2 + 1e-4 / 1e-3)).sqrt());
        close(x.benchmark_sharpe, sharpe(&b));
        close(x.benchmark_return, annual_return(&b));
        // NaN days are skipped on both sides.
        let mut r2 = r.to_vec();
        r2.push(f64::NAN);
        let mut b2 = b.to_vec();
        b2.push(0.05);
        close(relative(&r2, &b2).beta, 1.2);
    }

    #[test]
    fn spearman_ranks_ties_by_their_mean_as_scipy_does() {
        // scipy.stats.spearmanr([1, 2, 2, 3, 5], [2, 1, 4, 4, 9]).statistic = 0.763158 (to 6
        // places): ranks [1, 2.5, 2.5, 4, 5] and [2, 1, 3.5, 3.5, 5].
        assert_eq!(
            ranks(&[1.0, 2.0, 2.0, 3.0, 5.0]),
            vec![1.0, 2.5, 2.5, 4.0, 5.0]
        );
        let s = spearman(&[1.0, 2.0, 2.0, 3.0, 5.0], &[2.0, 1.0, 4.0, 4.0, 9.0]);
        let want = pearson(&[1.0, 2.5, 2.5, 4.0, 5.0], &[2.0, 1.0, 3.5, 3.5, 5.0]);
        close(s, want);
        assert!((s - 0.763158).abs() < 5e-7, "{s}");
        // Monotone but not linear: 1.
        close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]),
            1.0,
        );
    }

    #[test]
    fn running_sums_give_the_same_sharpe_and_add_up_by_parts() {
        let r = [0.01, -0.02, 0.015, f64::NAN, 0.003, -0.007, 0.02];
        let all = Sums::of(&r);
        assert!((all.sharpe_per_period() - sharpe_per_period(&r)).abs() < 1e-12);
        assert!((all.sharpe_per_period() * PERIODS.sqrt() - sharpe(&r)).abs() < 1e-12);
        assert!((all.sharpe_per_period() - moments(&r).sharpe).abs() < 1e-12);
        let mut parts = Sums::of(&r[..3]);
        parts.merge(&Sums::of(&r[3..]));
        assert_eq!(parts.n, all.n);
        assert!((parts.s1 - all.s1).abs() < 1e-15 && (parts.s2 - all.s2).abs() < 1e-15);
        // Pushed one by one, a NaN is not skipped: it makes the sums NaN.
        let mut pushed = Sums::default();
        r.iter().for_each(|v| pushed.push(*v));
        assert!(pushed.sharpe_per_period().is_nan());
    }
}
