//! Numeric helpers of the samplers: the normal distribution's functions (mlt-eval's), a fast
//! e^(−y) and truncated-normal draws.
use crate::search::space::normal;
use rand::Rng;

pub use mlt_eval::special::*;

/// e^(−y) for y ≥ 0, to a relative error below 2e-7 (2^k times a degree-6 polynomial for
/// e^f on |f| ≤ ln2/2); about four times faster than libm's `exp`, which dominated the cost of
/// evaluating g at 10,000 trials.
#[inline]
pub fn exp_neg(y: f64) -> f64 {
    // Branch-free so that the kernel loops vectorise: y is clamped (e^-700 is 0 for our sums).
    #[allow(clippy::manual_clamp)] // max/min compile to branch-free minsd/maxsd
    let y = y.max(0.0).min(700.0);
    let t = -y * std::f64::consts::LOG2_E;
    // Round to nearest by the 1.5·2⁵² trick (libm's `round` is a call on baseline x86-64).
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let k = (t + MAGIC) - MAGIC;
    let f = (t - k) * std::f64::consts::LN_2;
    // e^f for |f| ≤ ln2/2 by its Taylor series to f⁶/6! (remainder below 1.3e-7 relative).
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    // 2^k from k + 1023 held in the low mantissa bits of 2^52 + k + 1023.
    const TWO52: f64 = 4_503_599_627_370_496.0;
    f64::from_bits((k + (TWO52 + 1023.0)).to_bits() << 52) * p
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

#[cfg(test)]
mod tests {
    #[test]
    fn exp_neg_is_accurate() {
        let mut y = 0.0;
        while y < 60.0 {
            let (a, b) = (super::exp_neg(y), (-y).exp());
            assert!(((a - b) / b).abs() < 2e-7, "{y}: {a} vs {b}");
            y += 0.0137;
        }
        assert!(super::exp_neg(800.0) < 1e-300);
    }
}
