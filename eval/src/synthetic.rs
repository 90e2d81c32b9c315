//! A seeded synthetic market for the quickstart, tests and benchmarks: business-day bars with
//! bull/bear regimes (a two-state Markov chain), GARCH(1,1) volatility clustering, Student-t
//! shocks (fat tails) and a weak predictable component of known strength: the next return
//! carries `strength` × (z-scored 5-day momentum) standard deviations, so the information
//! coefficient of that feature is about `strength`.
use crate::data::{parse_day, Bars};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of the generator.
#[derive(Clone, Debug, PartialEq)]
pub struct Synthetic {
    /// Business days to generate.
    pub days: usize,
    /// Seed.
    pub seed: u64,
    /// Strength of the predictable component (information coefficient of 5-day momentum).
    pub strength: f64,
    /// First date, `YYYY-MM-DD`.
    pub start: String,
}

impl Default for Synthetic {
    fn default() -> Self {
        Self {
            days: 2520,
            seed: 7,
            strength: 0.05,
            start: "2010-01-04".into(),
        }
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Student-t with `nu` degrees of freedom, scaled to unit variance.
fn student(rng: &mut ChaCha8Rng, nu: f64) -> f64 {
    let z = normal(rng);
    let chi2: f64 = (0..nu as usize).map(|_| normal(rng).powi(2)).sum();
    z / (chi2 / nu).sqrt() * ((nu - 2.0) / nu).sqrt()
}

/// Generates the bars.
pub fn generate(s: &Synthetic) -> Result<Bars, String> {
    let mut day = parse_day(&s.start).ok_or(format!("`{}` is not a date (YYYY-MM-DD)", s.start))?;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let mut bars = Bars {
        instrument: format!("synthetic-{}", s.seed),
        volume: Some(Vec::with_capacity(s.days)),
        ..Default::default()
    };
    let (omega, alpha, beta) = (1e-6, 0.08, 0.90);
    let mut var = omega / (1.0 - alpha - beta);
    let mut bull = true;
    let mut close = 100.0f64;
    let mut rets: Vec<f64> = Vec::with_capacity(s.days);
    let mut last_shock = 0.0f64;
    for _ in 0..s.days {
        // Business days only.
        day += 1;
        while (day + 3).rem_euclid(7) >= 5 {
            day += 1;
        }
        if rng.random::<f64>() > if bull { 0.99 } else { 0.97 } {
            bull = !bull;
        }
        var = omega + alpha * last_shock * last_shock + beta * var;
        let sd = var.sqrt();
        // The predictable part: z-scored 5-day momentum of past returns.
        let n = rets.len();
        let signal = if n >= 5 {
            let m: f64 = rets[n - 5..].iter().sum::<f64>();
            m / (5.0f64.sqrt() * sd)
        } else {
            0.0
        };
        let drift = if bull { 0.0005 } else { -0.0007 };
        let shock = sd * student(&mut rng, 5.0);
        let r = drift + s.strength * signal.clamp(-3.0, 3.0) * sd + shock;
        last_shock = shock;
        rets.push(r);
        let open = close * (1.0 + 0.2 * sd * normal(&mut rng));
        close *= 1.0 + r;
        let hi = open.max(close) * (1.0 + 0.5 * sd * normal(&mut rng).abs());
        let lo = open.min(close) * (1.0 - 0.5 * sd * normal(&mut rng).abs());
        let vol = 1e6 * (1.0 + 5.0 * (r / sd).abs()) * (0.2 * normal(&mut rng)).exp();
        bars.days.push(day);
        bars.open.push(open);
        bars.high.push(hi);
        bars.low.push(lo);
        bars.close.push(close);
        if let Some(v) = bars.volume.as_mut() {
            v.push(vol.round());
        }
    }
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::metrics::pearson as corr;

    #[test]
    fn the_market_has_fat_tails_clustering_and_the_promised_edge() {
        let s = Synthetic {
            days: 40_000,
            strength: 0.08,
            ..Default::default()
        };
        let b = generate(&s).unwrap();
        assert_eq!(b, generate(&s).unwrap(), "same seed, same market");
        assert_ne!(
            b.close,
            generate(&Synthetic {
                seed: 8,
                ..s.clone()
            })
            .unwrap()
            .close
        );
        let r: Vec<f64> = b.close.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
        let m = crate::metrics::annual_volatility(&r);
        assert!((0.05..0.6).contains(&m), "annual volatility {m}");
        // Fat tails: Pearson kurtosis well above 3.
        let n = r.len() as f64;
        let mu = r.iter().sum::<f64>() / n;
        let c2 = r.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / n;
        let c4 = r.iter().map(|x| (x - mu).powi(4)).sum::<f64>() / n;
        assert!(c4 / (c2 * c2) > 4.0, "kurtosis {}", c4 / (c2 * c2));
        // Volatility clustering: |r| is autocorrelated.
        let a: Vec<f64> = r.iter().map(|x| x.abs()).collect();
        assert!(corr(&a[1..], &a[..a.len() - 1]) > 0.1);
        // The edge: 5-day momentum (in units of its own rolling dispersion) predicts the next
        // return with a correlation near the promised strength.
        let mut sig = Vec::new();
        let mut next = Vec::new();
        for t in 25..r.len() - 1 {
            let m: f64 = r[t - 4..=t].iter().sum();
            let sd = (r[t - 20..=t].iter().map(|x| x * x).sum::<f64>() / 21.0).sqrt();
            sig.push((m / (5f64.sqrt() * sd)).clamp(-3.0, 3.0));
            next.push(r[t + 1]);
        }
        let ic = corr(&sig, &next);
        assert!((0.03..0.13).contains(&ic), "information coefficient {ic}");
        // Weekdays only, and every bar is consistent.
        assert!(b.days.iter().all(|d| (d + 3).rem_euclid(7) < 5));
        for i in 0..b.len() {
            assert!(
                b.high[i] >= b.open[i].max(b.close[i]) && b.low[i] <= b.open[i].min(b.close[i])
            );
        }
    }
}
