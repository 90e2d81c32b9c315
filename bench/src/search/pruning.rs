//! Table 3: pruning on synthetic learning curves.
use super::*;

/// The synthetic learning curve of a trial: every curve starts near 1 (above every
/// Hartmann-6 value) and approaches its final value `f` exponentially with time constant
/// steps/5, with a 10 % wiggle of the remaining gap that depends on the trial.
pub(super) fn curve_value(f: f64, x0: f64, t: u64, steps: u64) -> f64 {
    let t = t as f64;
    f + (1.0 - f) * (-5.0 * t / steps as f64).exp() * (1.0 + 0.1 * (7.3 * t + 13.0 * x0).sin())
}

/// Table 3: pruning on synthetic learning curves (Hartmann-6, random sampler).
pub fn pruning(python: Option<&Path>, trials: u64, seeds: u64, steps: u64) -> anyhow::Result<()> {
    let theirs = optuna(
        python,
        &[
            "pruning",
            "--trials",
            &trials.to_string(),
            "--seeds",
            &seeds.to_string(),
            "--steps",
            &steps.to_string(),
        ],
    )?;
    println!("\n### Pruning: Hartmann-6, random sampler, {trials} trials × {steps} steps, {seeds} seeds\n");
    if theirs.is_some() {
        println!("Both sides judge the same trials (Optuna's random points, handed over) on the same curves.\n");
    }
    println!("| pruner | ours: steps | ours: best | ours: seeds at no pruning's best | Optuna: steps | Optuna: best | Optuna: seeds at no pruning's best | ours: steps / no pruning |");
    println!("|---|---|---|---|---|---|---|---|");
    let pruners = [
        ("none", "kind = \"none\"".to_string()),
        ("median", "kind = \"median\"\nn_startup_trials = 5".to_string()),
        ("asha", "kind = \"asha\"\nmin_resource = 1\nreduction_factor = 3".to_string()),
        (
            "hyperband",
            format!("kind = \"hyperband\"\nmin_resource = 1\nmax_resource = {steps}\nreduction_factor = 3"),
        ),
    ];
    let mut base_steps = None;
    let (mut base_best, mut their_base_best): (Option<Vec<f64>>, Option<Vec<f64>>) = (None, None);
    // Seeds whose best value equals no pruning's best in the same seed.
    let same = |a: &[f64], b: &[f64]| a.iter().zip(b).filter(|(x, y)| x == y).count();
    let space = box_space(6, 0.0, 1.0);
    for (name, toml) in pruners {
        let (mut used_all, mut best_all) = (Vec::new(), Vec::new());
        for seed in 0..seeds {
            let mut s = spec(
                "kind = \"random\"",
                &space,
                "[\"minimize\"]",
                &toml,
                trials,
                seed,
            );
            // With Optuna's run at hand, judge exactly its trials (same points, same curves).
            if let Some(list) = theirs
                .as_ref()
                .and_then(|v| v.get("params")?.get(seed as usize)?.as_array().cloned())
            {
                s.enqueue = list
                    .iter()
                    .filter_map(|p| {
                        Some(
                            p.as_object()?
                                .iter()
                                .filter_map(|(k, x)| {
                                    Some((k.clone(), ParamValue::Float(x.as_f64()?)))
                                })
                                .collect::<Params>(),
                        )
                    })
                    .collect();
            }
            let mut core = StudyCore::new(row(), s, Vec::new());
            let mut ops = Vec::new();
            let (mut used, mut best) = (0u64, f64::INFINITY);
            while let Some(k) = core.ask(N, S, 0, &mut ops) {
                let p = core.trials[k.trial.0 as usize].params.clone();
                let f = BenchFunction::Hartmann6.evaluate(&p).expect("valid");
                let x0 = p["x0"].as_f64().unwrap_or(0.0);
                let mut pruned = false;
                for t in 1..=steps {
                    used += 1;
                    if core.report(N, k, t, vec![curve_value(f, x0, t, steps)], 0, &mut ops)
                        == Verdict::Prune
                    {
                        pruned = true;
                        break;
                    }
                }
                if !pruned {
                    core.finish(
                        N,
                        k,
                        Outcome::Complete(vec![f], Metrics::new()),
                        0,
                        &mut ops,
                    );
                    best = best.min(f);
                }
                ops.clear();
            }
            used_all.push(used as f64);
            best_all.push(best);
        }
        let (u, b) = (mean(&used_all), mean(&best_all));
        let base = *base_steps.get_or_insert(u);
        let ours_same = same(&best_all, base_best.get_or_insert_with(|| best_all.clone()));
        let their = theirs.as_ref().and_then(|v| v.get(name));
        let tu = their.and_then(|v| {
            let xs: Vec<f64> = v
                .get("steps")?
                .as_array()?
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            Some(mean(&xs))
        });
        let their_best: Option<Vec<f64>> = their.and_then(|v| {
            Some(
                v.get("best")?
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect(),
            )
        });
        let tb = their_best.as_deref().map(mean);
        let their_same = their_best
            .as_deref()
            .map(|t| same(t, their_base_best.get_or_insert_with(|| t.to_vec())));
        println!(
            "| {name} | {u:.0} | {b:.4} | {ours_same} of {seeds} | {} | {} | {} | {:.2} |",
            tu.map_or("–".into(), |x| format!("{x:.0}")),
            fmt(tb),
            their_same.map_or("–".into(), |n| format!("{n} of {seeds}")),
            u / base
        );
    }
    Ok(())
}
