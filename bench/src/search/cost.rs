//! Table 2: the cost of one ask + tell at 100, 1,000 and 10,000 completed trials.
use super::*;

/// A study holding `n` complete random trials of the 10-parameter sphere.
pub(super) fn preloaded(kind: &str, n: usize, extra: u64) -> StudyCore {
    let space = box_space(10, -5.0, 5.0);
    let s = spec(
        &sampler_toml(kind),
        &space,
        "[\"minimize\"]",
        "kind = \"none\"",
        n as u64 + extra,
        0,
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let trials: Vec<TrialRecord> = (0..n)
        .map(|i| {
            let params: Params = (0..10)
                .map(|k| {
                    (
                        format!("x{k}"),
                        ParamValue::Float(rng.random_range(-5.0..5.0)),
                    )
                })
                .collect();
            let v: f64 = params
                .values()
                .filter_map(ParamValue::as_f64)
                .map(|x| x * x)
                .sum();
            complete_trial(i, params, v)
        })
        .collect();
    StudyCore::new(row(), s, trials)
}

/// Our cost of one ask + tell with `n` completed trials: the mean over k suggestions (few
/// enough that the study stays near `n` trials: at most a fifth more) after two untimed ones.
pub(super) fn our_cost(kind: &str, n: usize) -> f64 {
    let k = if kind == "gp" {
        3
    } else {
        (n as u64 / 5).clamp(20, 200)
    };
    let warm = 2;
    let mut core = preloaded(kind, n, k + warm);
    let mut ops = Vec::new();
    let mut t0 = Instant::now();
    for i in 0..k + warm {
        // The first asks after loading the trials build the sampler's caches (a one-off per
        // study, as in Optuna): not timed.
        if i == warm {
            t0 = Instant::now();
        }
        let key = core.ask(N, S, 0, &mut ops).expect("budget left");
        let v: f64 = core.trials[key.trial.0 as usize]
            .params
            .values()
            .filter_map(ParamValue::as_f64)
            .map(|x| x * x)
            .sum();
        core.finish(
            N,
            key,
            Outcome::Complete(vec![v], Metrics::new()),
            0,
            &mut ops,
        );
        ops.clear();
    }
    t0.elapsed().as_secs_f64() / k as f64
}

/// Table 2: the cost of one ask + tell. Ours is measured just before and just after Optuna's
/// run and the two averaged, so that a slow spell of this shared machine during either side's
/// turn weighs on both (after one untimed pass over every case).
pub fn cost(python: Option<&Path>, sizes: &[usize], samplers: &[String]) -> anyhow::Result<()> {
    let joined = optuna_names(samplers);
    let size_s: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    let cases: Vec<(&String, usize)> = samplers
        .iter()
        .flat_map(|kind| sizes.iter().map(move |&n| (kind, n)))
        .filter(|(kind, n)| !(kind.as_str() == "gp" && *n > 1000))
        .collect();
    // One untimed pass first: the process's first studies pay for its heap growing and its
    // pages faulting in (measured: the first sampler timed came out 30–60 % slower than the
    // same sampler timed again), which is not the sampler's cost.
    for (k, n) in &cases {
        our_cost(k, *n);
    }
    let before: Vec<f64> = cases.iter().map(|(k, n)| our_cost(k, *n)).collect();
    let theirs = optuna(
        python,
        &["cost", "--sizes", &size_s.join(","), "--samplers", &joined],
    )?;
    let after: Vec<f64> = cases.iter().map(|(k, n)| our_cost(k, *n)).collect();
    println!("\n### Cost of one suggestion (ask + tell), 10 parameters, by completed trials\n");
    println!("| sampler | trials | ours (before, after Optuna's run) | Optuna's counterpart | Optuna | Optuna / ours |");
    println!("|---|---|---|---|---|---|");
    for (i, (kind, n)) in cases.iter().enumerate() {
        let ours = 0.5 * (before[i] + after[i]);
        let their = theirs
            .as_ref()
            .and_then(|v| v.get(format!("{}/{n}", optuna_name(kind)))?.as_f64());
        println!(
            "| {kind} | {n} | {} ({}, {}) | {} | {} | {} |",
            human(ours),
            human(before[i]),
            human(after[i]),
            optuna_name(kind),
            their.map_or("–".into(), human),
            their.map_or("–".into(), |t| format!("{:.0}×", t / ours)),
        );
    }
    Ok(())
}
