//! Table 4: our TPE's and Optuna's suggestions on one fixed history, as distributions.
use super::*;

/// Table 4: our TPE's and Optuna's suggestions on one fixed history (Optuna's side makes it:
/// random Styblinski-Tang-10 points), `asks` per seed without telling any, so each is an
/// independent draw given that history. Same estimators, same acquisition: the same
/// distribution, per parameter (quantiles and a two-sample Kolmogorov–Smirnov test).
pub fn proposals(python: Option<&Path>, history: u64, seeds: u64, asks: u64) -> anyhow::Result<()> {
    let Some(theirs) = optuna(
        python,
        &[
            "proposals",
            "--trials",
            &history.to_string(),
            "--seeds",
            &seeds.to_string(),
            "--asks",
            &asks.to_string(),
        ],
    )?
    else {
        eprintln!("the proposals table needs Optuna (--python): skipped");
        return Ok(());
    };
    let value = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let hist = theirs["history"].as_array().context("Optuna's history")?;
    let trials: Vec<TrialRecord> = hist
        .iter()
        .enumerate()
        .map(|(i, h)| -> anyhow::Result<TrialRecord> {
            let params: Params = (0..10)
                .map(|k| {
                    let x = value(&h["params"], &format!("x{k}")).context("a history parameter")?;
                    Ok((format!("x{k}"), ParamValue::Float(x)))
                })
                .collect::<anyhow::Result<_>>()?;
            let v = value(h, "value").context("a history value")?;
            Ok(complete_trial(i, params, v))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut ours: Vec<Vec<f64>> = Vec::new();
    for seed in 0..seeds {
        // With Optuna's settings: the same algorithm should give the same distribution.
        let s = spec(
            // Constant liar off on both sides: every suggestion an independent draw.
            "kind = \"tpe\"\nconstant_liar = false",
            &box_space(10, -5.0, 5.0),
            "[\"minimize\"]",
            "kind = \"none\"",
            trials.len() as u64 + asks,
            seed,
        );
        let mut core = StudyCore::new(row(), s, trials.clone());
        let mut ops = Vec::new();
        for _ in 0..asks {
            let key = core.ask(N, S, 0, &mut ops).context("budget left")?;
            let p = &core.trials[key.trial.0 as usize].params;
            ours.push(
                (0..10)
                    .map(|k| {
                        p.get(&format!("x{k}"))
                            .and_then(ParamValue::as_f64)
                            .unwrap_or(f64::NAN)
                    })
                    .collect(),
            );
        }
    }
    let their: Vec<Vec<f64>> = theirs["proposals"]
        .as_array()
        .context("Optuna's proposals")?
        .iter()
        .map(|r| {
            r.as_array()
                .map_or(Vec::new(), |r| r.iter().filter_map(Value::as_f64).collect())
        })
        .collect();
    println!("\n### TPE's suggestions on one history: {history} random Styblinski-Tang-10 trials, {seeds} seeds × {asks} suggestions a side\n");
    println!("| parameter | ours q10 / q50 / q90 | Optuna q10 / q50 / q90 | KS D | KS p |");
    println!("|---|---|---|---|---|");
    let q = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let mut low_p = 0;
    for k in 0..10 {
        let mut a: Vec<f64> = ours.iter().map(|r| r[k]).collect();
        let mut b: Vec<f64> = their.iter().filter_map(|r| r.get(k).copied()).collect();
        let (d, p) = ks_2samp(&a, &b);
        low_p += usize::from(p < 0.01);
        println!(
            "| x{k} | {:.3} / {:.3} / {:.3} | {:.3} / {:.3} / {:.3} | {d:.3} | {p:.3} |",
            q(&mut a, 0.1),
            q(&mut a, 0.5),
            q(&mut a, 0.9),
            q(&mut b, 0.1),
            q(&mut b, 0.5),
            q(&mut b, 0.9),
        );
    }
    println!(
        "\n* {low_p} of 10 parameters with KS p < 0.01 (same distribution expected: 0.1 by chance)"
    );
    Ok(())
}
