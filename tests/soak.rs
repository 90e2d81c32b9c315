//! The soak: a study of many short trials while nodes and the scheduler are killed with
//! `kill -9` at (seeded) random moments and restarted. The study completes; nothing stays
//! running; every trial is recorded once with the value its program computed; a trial runs
//! more than once only when a node or the scheduler died under it.
//!
//! `make test` runs a short one. `make soak` runs a long one (`MLT_SOAK_TRIALS`,
//! `MLT_SOAK_KILLS`) and prints its figures, which docs/reliability.md reports.
mod util;

use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use util::{count_state, wait_until, Cluster};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn a_study_survives_nodes_and_the_scheduler_killed_at_random() {
    let (n_trials, kills) = (env("MLT_SOAK_TRIALS", 400), env("MLT_SOAK_KILLS", 6));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(env("MLT_SOAK_SEED", 11));
    let mut c = Cluster::start("heartbeat_ms = 100\nlease_ms = 2000");
    let (nodes, slots) = (3, 2);
    for i in 0..nodes {
        c.add_node(&format!("n{i}"), slots);
    }
    // Each run of a trial leaves a line: trial, attempt, and the value it computed (x · 2).
    let audit = c.dir.path().join("audit.log");
    let script = format!(
        "sleep 0.0$((MLT_TRIAL % 5)); v=$(awk \"BEGIN {{ printf \\\"%.17g\\\", $MLT_PARAM_X * 2 }}\"); echo \"end $MLT_TRIAL $MLT_ATTEMPT $v\" >> {a}; echo \"{{\\\"value\\\": $v}}\"",
        a = audit.display()
    );
    let spec = c.write(
        "soak.toml",
        &format!("[study]\nname = \"soak\"\nn_trials = {n_trials}\nmax_attempts = 10\n[sampler]\nkind = \"random\"\n[space]\nx = {{ type = \"float\", low = 0, high = 1 }}\n[objective]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {script:?}]\n"),
    );
    let study = c.submit(&spec);
    let (mut node_kills, mut scheduler_kills) = (0u64, 0u64);
    let step = n_trials / (kills + 1);
    for k in 0..kills {
        // The next kill once about another `step` trials have finished.
        let goal = (k + 1) * step;
        wait_until(600, "trials to progress", || c.finished(&study) >= goal);
        if rng.random_bool(0.5) {
            let i = rng.random_range(0..c.nodes.len());
            c.nodes[i].kill9();
            c.nodes.remove(i);
            let name = format!("r{k}");
            c.add_node(&name, slots);
            node_kills += 1;
        } else {
            c.scheduler.as_mut().unwrap().kill9();
            c.start_scheduler();
            scheduler_kills += 1;
        }
    }
    wait_until(900, "the study to complete", || {
        c.study_state(&study) == "complete"
    });
    let trials = c.trials(&study);
    // Lost: a trial not complete. Duplicated: a trial number recorded more than once.
    let numbers: std::collections::BTreeSet<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    let lost = n_trials - count_state(&trials, "complete") as u64;
    let duplicated = trials.len() as u64 - numbers.len() as u64;
    assert_eq!(numbers, (0..n_trials).collect(), "every trial, once");
    assert_eq!(
        (lost, duplicated),
        (0, 0),
        "nothing lost or duplicated, nothing left running"
    );
    // Every recorded value is the one its program computed, from a run the audit saw.
    let log = std::fs::read_to_string(&audit).unwrap();
    let mut runs: BTreeMap<u64, Vec<(u64, f64)>> = BTreeMap::new();
    for line in log.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        runs.entry(f[1].parse().unwrap())
            .or_default()
            .push((f[2].parse().unwrap(), f[3].parse().unwrap()));
    }
    let mut rerun = 0u64;
    for t in &trials {
        let n = t["number"].as_u64().unwrap();
        let attempt = t["attempt"].as_u64().unwrap();
        let value = t["values"][0].as_f64().unwrap();
        let x = t["params"]["x"].as_f64().unwrap();
        assert!(
            (value - 2.0 * x).abs() < 1e-9,
            "trial {n}: {value} is not 2 · {x}"
        );
        let seen = &runs[&n];
        assert!(
            seen.iter()
                .any(|(a, v)| *a == attempt && (*v - value).abs() < 1e-9),
            "trial {n}'s recorded attempt {attempt} never ran: {seen:?}"
        );
        rerun += u64::from(attempt > 1);
    }
    // Re-runs only where something died: at most every slot of every killed node, and the
    // trials in flight on the whole cluster at each scheduler kill.
    let bound = node_kills * slots as u64 + scheduler_kills * (nodes * slots) as u64;
    assert!(
        rerun <= bound,
        "{rerun} trials re-run after {node_kills} node and {scheduler_kills} scheduler kills"
    );
    let s = c.json(&["status"]).unwrap();
    println!(
        "soak: {n_trials} trials, {node_kills} node kills, {scheduler_kills} scheduler kills; {} complete, lost {lost}, duplicated {duplicated}, every value the one its recorded attempt's program wrote; {rerun} ran more than once (bound {bound}); {} runs in the audit; leases expired {}, reconciled {}",
        count_state(&trials, "complete"),
        log.lines().count(),
        s["metrics"]["leases_expired"], s["metrics"]["reconciled"]
    );
    c.assert_no_panics();
}
