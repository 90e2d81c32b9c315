//! A/B comparison of two model versions from the prediction log: each version's predictions
//! traded one day (long when it predicts up, short when down), scored on the instrument's
//! next logged close, and the two compared on the same instruments and days with a paired
//! t-test.
use crate::features::{mean, std as sd};
use crate::special::student_t_cdf;
use mlt_protocol::serving::{Arm, ArmReport, PredictionRecord, RolloutReport};
use std::collections::{BTreeMap, HashMap};

/// One version in the comparison.
#[derive(Clone, Copy, Debug)]
pub struct Side {
    /// Its version.
    pub version: u32,
    /// Its arm in the log.
    pub arm: Arm,
    /// It predicts the probability of up (its position is the sign of p − ½).
    pub classify: bool,
    /// Predictions it served, and its failures (from the rollout's counters).
    pub served: u64,
    /// Failed predictions.
    pub errors: u64,
}

fn position(p: f64, classify: bool) -> f64 {
    let x = if classify { p - 0.5 } else { p };
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Compares `sides` (production, then the candidate) over `records`.
pub fn compare(name: &str, records: &[PredictionRecord], sides: [Side; 2]) -> RolloutReport {
    // Every logged close, per instrument by date; the next one gives a day's outcome.
    let mut closes: HashMap<&str, BTreeMap<i64, f64>> = HashMap::new();
    for r in records {
        if r.close.is_finite() && r.close > 0.0 {
            closes
                .entry(&r.instrument)
                .or_default()
                .insert(r.day, r.close);
        }
    }
    let outcome = |inst: &str, day: i64| -> Option<f64> {
        let c = closes.get(inst)?;
        let now = c.get(&day)?;
        let (_, next) = c.range(day + 1..).next()?;
        Some(next / now - 1.0)
    };
    // Each side's prediction per instrument-day (the latest logged).
    let mut preds: [BTreeMap<(&str, i64), f64>; 2] = [BTreeMap::new(), BTreeMap::new()];
    for r in records {
        if r.error.is_some() || !r.prediction.is_finite() {
            continue;
        }
        for (i, s) in sides.iter().enumerate() {
            if r.version == s.version && r.arm == s.arm {
                preds[i].insert((r.instrument.as_str(), r.day), r.prediction);
            }
        }
    }
    let mut arms = Vec::new();
    let mut daily: [BTreeMap<(&str, i64), f64>; 2] = [BTreeMap::new(), BTreeMap::new()];
    for (i, s) in sides.iter().enumerate() {
        let (mut rets, mut p, mut fwd) = (Vec::new(), Vec::new(), Vec::new());
        let mut hits = (0u64, 0u64);
        for (&(inst, day), &pred) in &preds[i] {
            let Some(r) = outcome(inst, day) else {
                continue;
            };
            let pos = position(pred, s.classify);
            rets.push(pos * r);
            daily[i].insert((inst, day), pos * r);
            p.push(pred);
            fwd.push(r);
            if pos != 0.0 && r != 0.0 {
                hits.1 += 1;
                hits.0 += u64::from((pos > 0.0) == (r > 0.0));
            }
        }
        let n = rets.len();
        arms.push(ArmReport {
            version: s.version,
            served: s.served,
            errors: s.errors,
            scored: n as u64,
            mean_return: if n > 0 { mean(&rets) } else { f64::NAN },
            sharpe: if n > 1 {
                mean(&rets) / sd(&rets) * 252f64.sqrt()
            } else {
                f64::NAN
            },
            hit_rate: if hits.1 > 0 {
                hits.0 as f64 / hits.1 as f64
            } else {
                f64::NAN
            },
            ic: if n > 2 { corr(&p, &fwd) } else { f64::NAN },
        });
    }
    let d: Vec<f64> = daily[1]
        .iter()
        .filter_map(|(k, c)| daily[0].get(k).map(|p| c - p))
        .collect();
    let n = d.len();
    let (mean_difference, t, p_value, p_worse) = if n < 2 {
        (
            if n == 1 { d[0] } else { f64::NAN },
            f64::NAN,
            f64::NAN,
            f64::NAN,
        )
    } else {
        let (m, s) = (mean(&d), sd(&d));
        if s == 0.0 {
            // The same positions every day (or a constant gap).
            let t = if m == 0.0 {
                0.0
            } else {
                m.signum() * f64::INFINITY
            };
            let lo = if m == 0.0 {
                0.5
            } else if m > 0.0 {
                1.0
            } else {
                0.0
            };
            (m, t, if m == 0.0 { 1.0 } else { 0.0 }, lo)
        } else {
            let t = m / (s / (n as f64).sqrt());
            let df = n as f64 - 1.0;
            let lower = student_t_cdf(t, df);
            (m, t, 2.0 * lower.min(1.0 - lower), lower)
        }
    };
    let verdict = if n < 2 {
        format!(
            "{n} instrument-day(s) with both predictions and a known outcome: too few to compare"
        )
    } else if p_worse < 0.05 {
        format!(
            "the candidate (version {}) earned {:+.2} bp a day less than production over {n} paired days: significantly worse (one-sided p = {:.4})",
            sides[1].version,
            -mean_difference * 1e4,
            p_worse
        )
    } else if 1.0 - p_worse < 0.05 {
        format!(
            "the candidate (version {}) earned {:+.2} bp a day more than production over {n} paired days: significantly better (one-sided p = {:.4})",
            sides[1].version,
            mean_difference * 1e4,
            1.0 - p_worse
        )
    } else {
        format!(
            "no significant difference over {n} paired days (difference {:+.2} bp a day, two-sided p = {:.3})",
            mean_difference * 1e4,
            p_value
        )
    };
    RolloutReport {
        name: name.to_string(),
        arms,
        pairs: n as u64,
        mean_difference,
        t,
        p_value,
        p_worse,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        version: u32,
        arm: Arm,
        inst: &str,
        day: i64,
        close: f64,
        pred: f64,
    ) -> PredictionRecord {
        PredictionRecord {
            name: "m".into(),
            seq: 0,
            at_ms: 0,
            version,
            arm,
            served: true,
            endpoint: "bars".into(),
            instrument: inst.into(),
            day,
            close,
            features_hash: 0,
            prediction: pred,
            error: None,
            client: None,
        }
    }

    fn side(version: u32, arm: Arm) -> Side {
        Side {
            version,
            arm,
            classify: false,
            served: 0,
            errors: 0,
        }
    }

    #[test]
    fn a_candidate_that_trades_against_the_moves_is_significantly_worse() {
        // Closes that alternate up and down; production predicts each move, the candidate the
        // opposite.
        let mut recs = Vec::new();
        let mut close = 100.0;
        for day in 0..60i64 {
            let up = day % 3 != 0;
            let next = if up { close * 1.01 } else { close * 0.995 };
            let truth = next / close - 1.0;
            recs.push(rec(1, Arm::Production, "A", day, close, truth));
            recs.push(rec(
                2,
                Arm::Candidate,
                "A",
                day,
                close,
                -truth + 0.0001 * (day % 5) as f64,
            ));
            close = next;
        }
        let r = compare(
            "m",
            &recs,
            [side(1, Arm::Production), side(2, Arm::Candidate)],
        );
        // The last day has no outcome yet.
        assert_eq!(r.pairs, 59);
        assert!(r.p_worse < 1e-6, "{r:?}");
        assert!(
            r.arms[0].hit_rate == 1.0 && r.arms[1].hit_rate < 0.1,
            "{r:?}"
        );
        assert!(r.verdict.contains("significantly worse"), "{}", r.verdict);
        // Swapped, the candidate is better.
        let r = compare(
            "m",
            &recs,
            [side(2, Arm::Candidate), side(1, Arm::Production)],
        );
        assert!(
            r.p_worse > 1.0 - 1e-6 && r.verdict.contains("better"),
            "{r:?}"
        );
    }

    #[test]
    fn equal_arms_show_no_difference() {
        let mut recs = Vec::new();
        for day in 0..30i64 {
            let close = 100.0 + (day as f64).sin();
            recs.push(rec(1, Arm::Production, "A", day, close, 0.01));
            recs.push(rec(2, Arm::Candidate, "A", day, close, 0.02));
        }
        let r = compare(
            "m",
            &recs,
            [side(1, Arm::Production), side(2, Arm::Candidate)],
        );
        assert_eq!(r.pairs, 29);
        assert_eq!((r.p_value, r.p_worse), (1.0, 0.5));
        assert!(r.verdict.contains("no significant difference"));
    }

    #[test]
    fn the_paired_t_test_matches_scipy() {
        // Production long every day; the candidate short on even days. scipy.stats.ttest_rel
        // of the two return series gives t = -0.6849965300919635, p = 0.5153801413486461,
        // and with alternative='less' p = 0.25769007067432304.
        let rets = [0.01, -0.02, 0.015, 0.003, -0.007, 0.012, -0.004, 0.02];
        let mut recs = Vec::new();
        let mut close = 100.0;
        for (day, r) in rets.iter().enumerate() {
            let c = if day % 2 == 0 { -1.0 } else { 1.0 };
            recs.push(rec(1, Arm::Production, "A", day as i64, close, 0.5));
            recs.push(rec(2, Arm::Candidate, "A", day as i64, close, c));
            close *= 1.0 + r;
        }
        recs.push(rec(1, Arm::Production, "A", rets.len() as i64, close, 0.5));
        let r = compare(
            "m",
            &recs,
            [side(1, Arm::Production), side(2, Arm::Candidate)],
        );
        assert_eq!(r.pairs, 8);
        assert!((r.t - -0.684_996_530_091_963_5).abs() < 1e-9, "{}", r.t);
        assert!(
            (r.p_value - 0.515_380_141_348_646_1).abs() < 1e-9,
            "{}",
            r.p_value
        );
        assert!(
            (r.p_worse - 0.257_690_070_674_323_04).abs() < 1e-9,
            "{}",
            r.p_worse
        );
    }
}
