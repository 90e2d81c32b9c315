//! Table 1: search quality (mean best-so-far regret, and hypervolume for two objectives).
use super::*;

pub(super) const MILESTONES: [usize; 3] = [50, 100, 200];

/// Table 1: search quality.
pub fn quality(
    python: Option<&Path>,
    trials: u64,
    seeds: u64,
    gp_seeds: u64,
    only: &[String],
    samplers: &[String],
) -> anyhow::Result<()> {
    let joined = optuna_names(samplers);
    let chosen: Vec<Problem> = problems()
        .into_iter()
        .filter(|p| only.is_empty() || only.iter().any(|o| o == p.name))
        .collect();
    if let Some(bad) = only
        .iter()
        .find(|o| !problems().iter().any(|p| p.name == o.as_str()))
    {
        bail!(
            "unknown problem `{bad}` (branin, hartmann6, rosenbrock10, styblinski_tang10, mixed)"
        );
    }
    let names: Vec<&str> = chosen.iter().map(|p| p.name).collect();
    let theirs = optuna(
        python,
        &[
            "quality",
            "--trials",
            &trials.to_string(),
            "--seeds",
            &seeds.to_string(),
            "--gp-seeds",
            &gp_seeds.to_string(),
            "--problems",
            &names.join(","),
            "--samplers",
            &joined,
        ],
    )?;
    println!("\n### Mean regret (best-so-far − optimum) over {seeds} seeds, {trials} trials\n");
    println!("| problem | sampler | ours @50 | ours @100 | ours @200 (± s.e.) | Optuna @50 | Optuna @100 | Optuna @200 (± s.e.) | p (ours worse) | ours s/run | Optuna s/run |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut wins: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for p in chosen {
        for kind in samplers {
            // Seeds run on all cores (each study is sequential); s/run is CPU time per study.
            let seeds = if kind == "gp" {
                gp_seeds.min(seeds)
            } else {
                seeds
            };
            let runs = parallel_seeds(seeds, |seed| {
                let s = spec(
                    &sampler_toml(kind),
                    &p.space,
                    "[\"minimize\"]",
                    "kind = \"none\"",
                    trials,
                    seed,
                );
                let t0 = Instant::now();
                let c = best_so_far(&run_study(&s, &|q| {
                    vec![p.f.evaluate(q).expect("valid point")]
                }));
                (c, t0.elapsed().as_secs_f64())
            });
            let secs = runs.iter().map(|r| r.1).sum::<f64>() / seeds as f64;
            let curves: Vec<Vec<f64>> = runs.into_iter().map(|r| r.0).collect();
            let ours: Vec<f64> = MILESTONES
                .iter()
                .map(|&n| {
                    mean(
                        &curves
                            .iter()
                            .map(|c| at(c, n) - p.optimum)
                            .collect::<Vec<_>>(),
                    )
                })
                .collect();
            let key = format!("{}/{}", optuna_name(kind), p.name);
            let theirs_m: Vec<Option<f64>> = MILESTONES
                .iter()
                .map(|&n| {
                    let r = their_regrets(theirs.as_ref(), &key, n, p.optimum);
                    (!r.is_empty()).then(|| mean(&r))
                })
                .collect();
            let their_secs = theirs
                .as_ref()
                .and_then(|v| v.get(&key)?.get("seconds")?.as_f64())
                .map(|s| s / seeds as f64);
            let last = trials as usize;
            let ours_final: Vec<f64> = curves.iter().map(|c| at(c, last) - p.optimum).collect();
            let theirs_final = their_regrets(theirs.as_ref(), &key, last, p.optimum);
            let p_worse = (!theirs_final.is_empty())
                .then(|| mann_whitney_greater(&ours_final, &theirs_final));
            if let Some(t) = theirs_m[2] {
                let e = wins.entry(kind.clone()).or_default();
                e.1 += 1;
                if ours[2] <= t {
                    e.0 += 1;
                }
                if p_worse.is_some_and(|p| p < 0.05) {
                    e.2 += 1;
                }
            }
            println!(
                "| {} | {kind} | {} | {} | {} ± {} | {} | {} | {} | {} | {secs:.3} | {} |",
                p.name,
                fmt(Some(ours[0])),
                fmt(Some(ours[1])),
                fmt(Some(ours[2])),
                fmt(Some(std_err(&ours_final))),
                fmt(theirs_m[0]),
                fmt(theirs_m[1]),
                theirs_m[2].map_or("–".into(), |m| format!(
                    "{} ± {}",
                    fmt(Some(m)),
                    fmt(Some(std_err(&theirs_final)))
                )),
                p_worse.map_or("–".into(), |p| format!("{p:.2}")),
                their_secs.map_or("–".into(), |s| format!("{s:.3}")),
            );
        }
    }
    println!();
    for (k, (w, n, worse)) in &wins {
        println!("* {k}: our mean regret at {trials} trials ≤ Optuna's on {w} of {n} problems; significantly worse (one-sided Mann–Whitney p < 0.05) on {worse} of {n}");
    }
    // Two objectives: hypervolume of ZDT1 (3 variables), reference (1.1, 10).
    println!("\n### Two objectives (ZDT1, 3 variables): mean hypervolume, reference (1.1, 10), {seeds} seeds\n");
    println!(
        "| sampler | ours @50 | ours @100 | ours @200 | Optuna @50 | Optuna @100 | Optuna @200 |"
    );
    println!("|---|---|---|---|---|---|---|");
    let zspace = "x = { type = \"float\", low = 0.0, high = 1.0 }\ny = { type = \"float\", low = 0.0, high = 1.0 }\nz = { type = \"float\", low = 0.0, high = 1.0 }\n";
    for kind in ["nsga2", "tpe", "random"] {
        let mut hv = [0.0; 3];
        for seed in 0..seeds {
            let s = spec(
                &sampler_toml(kind),
                zspace,
                "[\"minimize\", \"minimize\"]",
                "kind = \"none\"",
                trials,
                seed,
            );
            let vals = run_study(&s, &zdt1);
            for (i, &n) in MILESTONES.iter().enumerate() {
                hv[i] += hypervolume(&vals[..n.min(vals.len())], &[1.1, 10.0]) / seeds as f64;
            }
        }
        let theirs_hv: Vec<Option<f64>> = (0..3)
            .map(|i| {
                let runs = theirs
                    .as_ref()?
                    .get(format!("mo-{kind}"))?
                    .get("hv")?
                    .as_array()?
                    .clone();
                let xs: Vec<f64> = runs.iter().filter_map(|r| r.get(i)?.as_f64()).collect();
                (!xs.is_empty()).then(|| mean(&xs))
            })
            .collect();
        let label = if kind == "tpe" { "tpe (MOTPE)" } else { kind };
        println!(
            "| {label} | {:.3} | {:.3} | {:.3} | {} | {} | {} |",
            hv[0],
            hv[1],
            hv[2],
            fmt(theirs_hv[0]),
            fmt(theirs_hv[1]),
            fmt(theirs_hv[2])
        );
    }
    Ok(())
}
