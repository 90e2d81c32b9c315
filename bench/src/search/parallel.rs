//! Table 6: several trials in flight, as on a cluster. Each study keeps `w` trials running:
//! it asks `w`, then tells the oldest and asks one more, until the budget is used; values are
//! counted in the order they are told. Both sides do exactly this, ours through `StudyCore`
//! (running trials visible to the sampler), Optuna's with `ask`/`tell` on one in-memory study.
use super::*;
use std::collections::VecDeque;

/// One study with `workers` trials in flight; the values in the order they were told.
pub(super) fn run_study_parallel(
    spec: &Spec,
    workers: usize,
    f: &dyn Fn(&Params) -> Vec<f64>,
) -> Vec<Vec<f64>> {
    let mut core = StudyCore::new(row(), spec.clone(), Vec::new());
    let mut ops = Vec::new();
    let mut out = Vec::new();
    let mut flying = VecDeque::new();
    let mut slot = 0u32;
    loop {
        while flying.len() < workers.max(1) {
            let Some(k) = core.ask(N, SlotId(slot), 0, &mut ops) else {
                break;
            };
            slot = slot.wrapping_add(1);
            let v = f(&core.trials[k.trial.0 as usize].params);
            flying.push_back((k, v));
        }
        let Some((k, v)) = flying.pop_front() else {
            break;
        };
        core.finish(
            N,
            k,
            Outcome::Complete(v.clone(), Metrics::new()),
            0,
            &mut ops,
        );
        ops.clear();
        out.push(v);
    }
    out
}

/// The parallel table: mean regret at `trials` with 1, 4 and 16 trials in flight, ours with
/// and without the constant liar next to Optuna's default (which has it) and Optuna without it.
pub fn parallel(
    python: Option<&Path>,
    trials: u64,
    seeds: u64,
    workers: &[usize],
    only: &[String],
) -> anyhow::Result<()> {
    let kinds = ["tpe", "tpe-nolie"];
    let chosen: Vec<Problem> = problems()
        .into_iter()
        .filter(|p| only.is_empty() || only.iter().any(|o| o == p.name))
        .collect();
    let names: Vec<&str> = chosen.iter().map(|p| p.name).collect();
    let ws: Vec<String> = workers.iter().map(|w| w.to_string()).collect();
    let theirs = optuna(
        python,
        &[
            "parallel",
            "--trials",
            &trials.to_string(),
            "--seeds",
            &seeds.to_string(),
            "--problems",
            &names.join(","),
            "--samplers",
            &kinds.join(","),
            "--workers",
            &ws.join(","),
        ],
    )?;
    println!("\n### Trials in flight: mean regret at {trials} trials over {seeds} seeds\n");
    println!("`tpe`: both sides' default (constant liar on); `tpe-nolie`: the same without it. Each study keeps w trials running and tells the oldest first.\n");
    println!("| problem | w | sampler | ours (± s.e.) | Optuna (± s.e.) | p (ours worse) | p (ours better) |");
    println!("|---|---|---|---|---|---|---|");
    let mut tally: BTreeMap<(usize, &str), (u32, u32, u32, u32)> = BTreeMap::new();
    for p in &chosen {
        for &w in workers {
            for kind in kinds {
                let finals = parallel_seeds(seeds, |seed| {
                    let s = spec(
                        &sampler_toml(kind),
                        &p.space,
                        "[\"minimize\"]",
                        "kind = \"none\"",
                        trials,
                        seed,
                    );
                    let c = best_so_far(&run_study_parallel(&s, w, &|q| {
                        vec![p.f.evaluate(q).expect("valid point")]
                    }));
                    at(&c, trials as usize) - p.optimum
                });
                let key = format!("{kind}/{}/{w}", p.name);
                let their = their_regrets(theirs.as_ref(), &key, trials as usize, p.optimum);
                let (tm, pw, pb) = if their.is_empty() {
                    ("–".to_string(), "–".to_string(), "–".to_string())
                } else {
                    let (pw, pb) = (
                        mann_whitney_greater(&finals, &their),
                        mann_whitney_greater(&their, &finals),
                    );
                    let e = tally.entry((w, kind)).or_default();
                    e.0 += 1;
                    e.1 += u32::from(mean(&finals) <= mean(&their));
                    e.2 += u32::from(pb < 0.05);
                    e.3 += u32::from(pw < 0.05);
                    (
                        format!(
                            "{} ± {}",
                            fmt(Some(mean(&their))),
                            fmt(Some(std_err(&their)))
                        ),
                        format!("{pw:.2}"),
                        format!("{pb:.2}"),
                    )
                };
                println!(
                    "| {} | {w} | {kind} | {} ± {} | {tm} | {pw} | {pb} |",
                    p.name,
                    fmt(Some(mean(&finals))),
                    fmt(Some(std_err(&finals))),
                );
            }
        }
    }
    println!();
    for ((w, kind), (n, le, better, worse)) in tally {
        println!("* {kind}, {w} in flight: our mean regret ≤ Optuna's on {le} of {n} problems; significantly better (one-sided Mann–Whitney p < 0.05) on {better}, worse on {worse}");
    }
    Ok(())
}
