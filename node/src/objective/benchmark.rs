//! Analytic test functions (all minimised) with a noisy learning curve that converges to the
//! function's value, so pruners have something to judge.
use super::TrialContext;
use mlt_protocol::messages::{Outcome, Verdict};
use mlt_protocol::records::{ParamValue, Params};
use mlt_protocol::spec::{BenchFunction, BenchmarkSpec};
use mlt_spec::functions::Evaluate;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// The function's value at `p`.
pub fn evaluate(f: BenchFunction, p: &Params) -> Result<f64, String> {
    f.evaluate(p)
}

/// Runs a benchmark trial: `steps` reports of a curve decaying to f, then f.
pub fn run_benchmark(spec: &BenchmarkSpec, params: &Params, ctx: &mut dyn TrialContext) -> Outcome {
    let f = match evaluate(spec.function, params) {
        Ok(f) if f.is_finite() => f,
        Ok(f) => return Outcome::Failed(format!("the function is not finite here ({f})")),
        Err(e) => return Outcome::Failed(e),
    };
    let seed = params
        .values()
        .filter_map(ParamValue::as_f64)
        .fold(0u64, |h, v| h.rotate_left(7) ^ v.to_bits());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let scale = 1.0 + f.abs();
    for step in 1..=spec.steps as u64 {
        if spec.step_seconds > 0.0 {
            let end = std::time::Instant::now() + Duration::from_secs_f64(spec.step_seconds);
            while std::time::Instant::now() < end {
                if ctx.stopped() {
                    return Outcome::Pruned;
                }
                std::thread::sleep(
                    (end - std::time::Instant::now()).min(Duration::from_millis(20)),
                );
            }
        }
        if ctx.stopped() {
            return Outcome::Pruned;
        }
        let decay = (-4.0 * step as f64 / spec.steps as f64).exp();
        let noise = spec.noise * decay * rng.random_range(-1.0..1.0);
        let v = f + scale * decay * (1.0 + noise);
        match ctx.report(step, vec![v]) {
            Verdict::Continue => {}
            Verdict::Prune | Verdict::Stale => return Outcome::Pruned,
        }
    }
    // Metrics: the value and every numeric parameter, so constraints can be placed on them.
    let mut metrics: mlt_protocol::records::Metrics = params
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect();
    metrics.insert("value".into(), f);
    Outcome::Complete(vec![f], metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, f64)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ParamValue::Float(*v)))
            .collect()
    }

    #[test]
    fn known_minima() {
        let b = evaluate(
            BenchFunction::Branin,
            &p(&[("x0", std::f64::consts::PI), ("x1", 2.275)]),
        )
        .unwrap();
        assert!((b - 0.397887).abs() < 1e-5, "{b}");
        let h = evaluate(
            BenchFunction::Hartmann6,
            &p(&[
                ("x0", 0.20169),
                ("x1", 0.150011),
                ("x2", 0.476874),
                ("x3", 0.275332),
                ("x4", 0.311652),
                ("x5", 0.6573),
            ]),
        )
        .unwrap();
        assert!((h + 3.32237).abs() < 1e-4, "{h}");
        assert_eq!(
            evaluate(
                BenchFunction::Rosenbrock,
                &p(&[("x0", 1.0), ("x1", 1.0), ("x2", 1.0)])
            )
            .unwrap(),
            0.0
        );
        let st = evaluate(
            BenchFunction::StyblinskiTang,
            &p(&[("x0", -2.903534), ("x1", -2.903534)]),
        )
        .unwrap();
        assert!((st + 2.0 * 39.16617).abs() < 1e-3, "{st}");
        let mut m = p(&[("x", 0.3), ("n", 3.0), ("y", 0.7)]);
        m.insert("kind".into(), ParamValue::Str("a".into()));
        assert_eq!(evaluate(BenchFunction::Mixed, &m).unwrap(), 0.0);
        assert!(evaluate(BenchFunction::Branin, &p(&[("x0", 1.0)]))
            .unwrap_err()
            .contains("x1"));
    }

    struct Ctx(Vec<(u64, f64)>, Option<u64>);
    impl TrialContext for Ctx {
        fn report(&mut self, step: u64, values: Vec<f64>) -> Verdict {
            self.0.push((step, values[0]));
            if Some(step) == self.1 {
                Verdict::Prune
            } else {
                Verdict::Continue
            }
        }
        fn stopped(&self) -> bool {
            false
        }
    }

    #[test]
    fn curve_converges_and_prune_stops() {
        let spec = BenchmarkSpec {
            function: BenchFunction::Branin,
            steps: 5,
            step_seconds: 0.0,
            noise: 0.1,
        };
        let params = p(&[("x0", 1.0), ("x1", 2.0)]);
        let f = evaluate(BenchFunction::Branin, &params).unwrap();
        let mut ctx = Ctx(Vec::new(), None);
        assert_eq!(
            run_benchmark(&spec, &params, &mut ctx),
            Outcome::Complete(
                vec![f],
                [("value", f), ("x0", 1.0), ("x1", 2.0)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            )
        );
        assert_eq!(ctx.0.len(), 5);
        assert!(ctx.0.windows(2).all(|w| w[1].1 < w[0].1), "{:?}", ctx.0);
        let mut ctx = Ctx(Vec::new(), Some(2));
        assert_eq!(run_benchmark(&spec, &params, &mut ctx), Outcome::Pruned);
        assert_eq!(ctx.0.len(), 2);
    }
}
