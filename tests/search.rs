//! The search suite through the whole cluster: a TPE study with constant liar on several nodes
//! is replayed from the store's event log and gives the same trials; a study seeded from
//! another (`warm_start`) starts from its results without spending its budget on them.
mod util;

use mlt_protocol::ids::{NodeId, SlotId, TrialKey};
use mlt_protocol::messages::Outcome;
use mlt_protocol::records::TrialState;
use mlt_scheduler::store::{Event, Store};
use mlt_scheduler::study::StudyCore;
use std::collections::BTreeMap;
use util::{count_state, wait_until, Cluster};

const SPACE: &str = "[space]\nx0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\nmodel = { type = \"categorical\", choices = [\"a\", \"b\"] }\ndepth = { type = \"int\", low = 1, high = 8, when = { model = [\"b\"] } }\n";

fn spec(name: &str, sampler: &str, n: u32, extra: &str) -> String {
    format!(
        "[study]\nname = \"{name}\"\nn_trials = {n}\nseed = 11\n{extra}\n[sampler]\n{sampler}\n{SPACE}[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 2\nstep_seconds = 0.01\n"
    )
}

#[test]
fn a_distributed_tpe_study_replays_from_its_event_log() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    for i in 0..3 {
        c.add_node(&format!("n{i}"), 2);
    }
    let file = c.write(
        "tpe.toml",
        &spec(
            "tpe",
            "kind = \"tpe\"\nn_startup_trials = 8\nmultivariate = true\ngroup = true\nconstant_liar = true",
            60,
            "",
        ),
    );
    let (study, trials) = c.run_study(&file, 120);
    assert_eq!(count_state(&trials, "complete"), 60);
    // Stop the scheduler so the store can be opened here.
    c.scheduler.as_mut().unwrap().sigterm();
    wait_until(20, "the scheduler to exit", || {
        c.scheduler
            .as_mut()
            .unwrap()
            .child
            .try_wait()
            .unwrap()
            .is_some()
    });
    let store = Store::open(&c.data()).unwrap();
    let mut loaded = store.load().unwrap();
    let row = loaded
        .studies
        .values()
        .find(|r| r.name == study)
        .expect("the study is in the store")
        .clone();
    let stored = loaded.trials.remove(&row.id).unwrap();
    let events = store.events(row.id).unwrap();
    let spec = mlt_spec::parse(&row.spec_toml, &row.source).unwrap();
    // Replay: the same asks and tells in the logged order, into a fresh study.
    let mut fresh = row.clone();
    fresh.state = mlt_protocol::records::StudyState::Running;
    let mut core = StudyCore::new(fresh, spec, Vec::new());
    let mut keys: BTreeMap<u64, TrialKey> = BTreeMap::new();
    let mut ops = Vec::new();
    let (mut asked, mut told) = (0, 0);
    for e in events {
        match e {
            Event::Asked { trial, params } => {
                let k = core
                    .ask(NodeId(1), SlotId(0), 0, &mut ops)
                    .expect("work to hand out");
                assert_eq!(k.trial, trial);
                assert_eq!(
                    core.trials[trial.0 as usize].params, params,
                    "trial {}",
                    trial.0
                );
                keys.insert(trial.0, k);
                asked += 1;
            }
            Event::Told {
                trial,
                state,
                values,
            } => {
                let outcome = match state {
                    TrialState::Complete => Outcome::Complete(values.unwrap(), Default::default()),
                    other => panic!("unexpected {other} in this study"),
                };
                core.finish(NodeId(1), keys[&trial.0], outcome, 0, &mut ops);
                told += 1;
            }
        }
        ops.clear();
    }
    assert_eq!((asked, told), (60, 60));
    // And the replayed trials are the stored ones.
    for (a, b) in core.trials.iter().zip(&stored) {
        assert_eq!(
            (a.number, &a.params, &a.values),
            (b.number, &b.params, &b.values)
        );
    }
    // The log reflects real concurrency: some trials were asked before earlier ones ended.
    let order: Vec<bool> = store
        .events(row.id)
        .unwrap()
        .iter()
        .map(|e| matches!(e, Event::Asked { .. }))
        .collect();
    assert!(
        order.windows(2).any(|w| w[0] && w[1]),
        "asks were interleaved"
    );
    c.assert_no_panics();
}

#[test]
fn warm_start_seeds_a_study_with_another_studys_results() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    c.add_node("n0", 4);
    let first = c.write("a.toml", &spec("first", "kind = \"random\"", 30, ""));
    let a = c.submit(&first);
    wait_until(60, "the first study", || c.study_state(&a) == "complete");
    let second = c.write(
        "b.toml",
        &spec(
            "second",
            "kind = \"tpe\"\nn_startup_trials = 10",
            10,
            &format!("warm_start = \"{a}\""),
        ),
    );
    let (_, tb) = c.run_study(&second, 60);
    // 30 copied (already complete) + its own budget of 10.
    assert_eq!(tb.len(), 40);
    let ta = c.trials(&a);
    for (i, t) in tb.iter().take(30).enumerate() {
        assert_eq!(t["origin"]["warm_start"][0], a.as_str(), "{t}");
        let from = t["origin"]["warm_start"][1].as_u64().unwrap() as usize;
        assert_eq!(t["params"], ta[from]["params"]);
        assert_eq!(t["values"], ta[from]["values"]);
        assert_eq!(t["number"].as_u64().unwrap(), i as u64);
    }
    // With 30 results in hand the model is used at once: the new trials are TPE's, not the
    // random sampler's (which would repeat the first study's points for the same seed).
    for t in tb.iter().skip(30) {
        assert_eq!(t["origin"], "sampler", "{t}");
        assert!(ta.iter().all(|o| o["params"] != t["params"]));
    }
    // A warm start from a study that does not exist is refused, naming the key.
    let bad = c.write(
        "c.toml",
        &spec("third", "kind = \"tpe\"", 5, "warm_start = \"nope\""),
    );
    let out = c.cli(&["submit", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("study.warm_start") && err.contains("nope"),
        "{err}"
    );
    c.assert_no_panics();
}

#[test]
fn bundled_examples_are_valid_and_the_multi_objective_one_runs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(err) = mlt_spec::parse(&text, &path.display().to_string()) {
                panic!("{err}");
            }
            n += 1;
        }
    }
    assert!(n >= 3);
    // Two objectives, a constraint and NSGA-II, through `run` on this machine.
    let (data, trials) = util::run_offline(&dir.join("multi-objective.toml"), "zdt1");
    let trials = &trials;
    assert_eq!(count_state(trials, "complete"), 120);
    let mut generations = std::collections::BTreeSet::new();
    for t in trials {
        let x = t["params"]["x"].as_f64().unwrap();
        assert!((t["values"][0].as_f64().unwrap() - x).abs() < 1e-6, "{t}");
        // The constraint x <= 0.8, as stored: ≤ 0 when met, else by how much it is broken.
        let c = t["constraints"][0].as_f64().unwrap();
        assert!((c - (x - 0.8)).abs() < 1e-6, "{t}");
        generations.insert(t["generation"].as_u64().unwrap());
    }
    assert!(generations.len() >= 3, "{generations:?}");
    // The CSV export carries metrics, feasibility and generations; the table flags the
    // infeasible trials.
    let csv = util::offline(&["export", "zdt1", "--format", "csv"], data.path());
    let csv = String::from_utf8(csv.stdout).unwrap();
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in [
        "value_0",
        "value_1",
        "param_x",
        "metric_x",
        "feasible",
        "origin",
        "generation",
    ] {
        assert!(head.contains(&col), "{head:?}");
    }
    let feasible = head.iter().position(|c| *c == "feasible").unwrap();
    let px = head.iter().position(|c| *c == "param_x").unwrap();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let x: f64 = f[px].parse().unwrap();
        assert_eq!(
            f[feasible],
            if x <= 0.8 { "true" } else { "false" },
            "{line}"
        );
    }
    let table = util::offline(&["trials", "zdt1"], data.path());
    let table = String::from_utf8(table.stdout).unwrap();
    let infeasible = trials
        .iter()
        .filter(|t| t["params"]["x"].as_f64().unwrap() > 0.8)
        .count();
    assert_eq!(
        table.matches("infeasible: constraints broken by").count(),
        infeasible
    );
    // The best trials are the feasible Pareto front.
    let best = util::offline(&["best", "zdt1", "--json"], data.path());
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    let best = best.as_array().unwrap();
    assert!(best.len() >= 3);
    for b in best {
        assert!(b["params"]["x"].as_f64().unwrap() <= 0.8 + 1e-9, "{b}");
    }
}

#[test]
fn a_gp_study_fits_its_model_off_the_async_workers() {
    // GP suggestions run under block_in_place in the study actor: a study of it completes on
    // a real cluster, and its model-based trials are not the random ones.
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    c.add_node("n0", 2);
    c.add_node("n1", 2);
    let file = c.write(
        "gp.toml",
        &spec(
            "gp",
            "kind = \"gp\"\nn_startup_trials = 5\nn_candidates = 256",
            16,
            "",
        ),
    );
    let (_, trials) = c.run_study(&file, 120);
    assert_eq!(count_state(&trials, "complete"), 16);
    let random = c.write("r.toml", &spec("rnd", "kind = \"random\"", 16, ""));
    let (_, tr) = c.run_study(&random, 120);
    // Same seed: the start-up trials agree with random search, the model's do not.
    let differing = trials
        .iter()
        .zip(&tr)
        .filter(|(a, b)| a["params"] != b["params"])
        .count();
    assert!(differing >= 8, "{differing} of 16 differ");
    c.assert_no_panics();
}

#[test]
fn a_walk_forward_study_runs_and_reports_every_fold() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (_data, trials) =
        util::run_offline(&dir.join("walkforward-synthetic.toml"), "wf-synthetic");
    // 40 search trials, then the 5 best evaluated on the 250-day hold-out.
    assert_eq!(trials.len(), 45);
    let (search, holdout) = trials.split_at(40);
    assert!(holdout
        .iter()
        .all(|t| t["origin"]["holdout"].is_u64() && t["state"] == "complete"));
    for h in holdout {
        // One fold: trained before the hold-out, tested on it; its metrics go to its trial.
        assert_eq!(h["intermediate"].as_object().unwrap().len(), 1, "{h}");
        let src = &trials[h["origin"]["holdout"].as_u64().unwrap() as usize];
        assert_eq!(src["metrics"]["holdout_sharpe"], h["metrics"]["sharpe"]);
        assert_eq!(src["metrics"]["holdout_observations"], 250.0);
    }
    let complete: Vec<&serde_json::Value> =
        search.iter().filter(|t| t["state"] == "complete").collect();
    assert!(!complete.is_empty());
    for t in &complete {
        // 3000 − 250 days, 500 train, 250 test: 8 folds, each reported.
        assert_eq!(t["intermediate"].as_object().unwrap().len(), 8, "{t}");
        assert_eq!(t["values"][0], t["metrics"]["sharpe"]);
        assert!(t["metrics"]["max_drawdown"].as_f64().unwrap() <= 0.0);
    }
    // The planted edge is found out of sample by the best trial.
    let best = complete
        .iter()
        .map(|t| t["values"][0].as_f64().unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(best > 0.5, "best out-of-sample Sharpe {best}");
    // `best` shows the selection statistics beside the winner: DSR deflates PSR for the 40
    // trials tried.
    let out = util::offline(&["best", "wf-synthetic", "--json"], _data.path());
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sel = &b[0]["selection"];
    let (psr, dsr) = (sel["psr_0"].as_f64().unwrap(), sel["dsr"].as_f64().unwrap());
    assert!(
        (0.0..=1.0).contains(&psr) && (0.0..=1.0).contains(&dsr),
        "{sel}"
    );
    assert!(dsr < psr, "{sel}");
    assert_eq!(sel["trials"], 40.0);
    // Its reports are each fold's own Sharpe: a pruned trial has no Sharpe over its folds, and
    // the variance is the complete trials' alone, as `best` says.
    assert_eq!(sel["variance_over"]["pruned"], 0, "{sel}");
    assert_eq!(
        sel["variance_over"]["complete"],
        complete.len() as u64,
        "{sel}"
    );
    // PBO by CSCV over every complete search trial's stored out-of-sample returns (8 folds
    // x 250 days each, the same days for every trial).
    let pbo = &sel["pbo"];
    assert_eq!(
        pbo["strategies"].as_u64().unwrap(),
        complete.len() as u64,
        "{pbo}"
    );
    assert_eq!(pbo["observations"], 2000);
    assert_eq!(pbo["blocks"], 16);
    assert_eq!(pbo["combinations"], 12870);
    assert!((0.0..=1.0).contains(&pbo["pbo"].as_f64().unwrap()), "{pbo}");
    let chosen: u64 = pbo["chosen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[1].as_u64().unwrap())
        .sum();
    assert_eq!(chosen, 12870);
    let out = util::offline(&["best", "wf-synthetic"], _data.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("deflated Sharpe"), "{text}");
    assert!(text.contains("overfitting: PBO"), "{text}");
    assert!(text.contains("hold-out: Sharpe"), "{text}");
}

#[test]
fn a_leaking_feature_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/walkforward-synthetic.toml"),
    )
    .unwrap();
    // `$w` at the low end of its range is fine; a negative reference peeks at tomorrow.
    let leak = example.replace(
        "rsi = \"rsi(14) / 100 - 0.5\"",
        "peek = \"ref(returns, -1)\"",
    );
    assert_ne!(leak, example);
    let spec = dir.path().join("leak.toml");
    std::fs::write(&spec, leak).unwrap();
    let data = dir.path().join("data");
    let out = util::offline(&["run", spec.to_str().unwrap()], &data);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("leak.toml: `objective.features.peek`: feature `peek` looks ahead"),
        "{err}"
    );
    assert!(!data.join("store.redb").exists(), "nothing may be stored");
}

#[test]
fn data_on_the_command_line_replaces_the_specs_source() {
    let dir = tempfile::tempdir().unwrap();
    // Two instruments written as CSV files, with the dates formatted as the loader reads them.
    let mut files = Vec::new();
    for seed in [1u64, 2] {
        let f = dir.path().join(format!("inst{seed}.csv"));
        util::write_synthetic_csv(&f, seed, 1200);
        files.push(f);
    }
    let spec =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/walkforward-spy.toml");
    let data = dir.path().join("data");
    let out = util::offline(
        &[
            "run",
            spec.to_str().unwrap(),
            "--data",
            files[0].to_str().unwrap(),
            "--data",
            files[1].to_str().unwrap(),
        ],
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = util::offline(&["trials", "wf-spy", "--json"], &data);
    let trials: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let done: Vec<&serde_json::Value> = trials
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "complete")
        .collect();
    assert!(!done.is_empty());
    // 1200 days, 504 train, 5-day purge, 126 test: 5 folds.
    assert_eq!(
        done[0]["intermediate"].as_object().unwrap().len(),
        5,
        "{}",
        done[0]
    );
    // Without a walk_forward objective --data is refused.
    let other = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.toml");
    let out = util::offline(
        &[
            "run",
            other.to_str().unwrap(),
            "--data",
            files[0].to_str().unwrap(),
        ],
        &data,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no walk_forward objective"));
    // The real SPY file, when ../shared/data is there.
    let spy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/SPY.csv");
    if !spy.exists() {
        eprintln!("skipped the SPY run: {} is absent", spy.display());
        return;
    }
    let data2 = dir.path().join("data2");
    let out = util::offline(
        &[
            "run",
            spec.to_str().unwrap(),
            "--data",
            spy.to_str().unwrap(),
        ],
        &data2,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_cpcv_study_reports_every_split_and_stores_its_paths() {
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/walkforward-synthetic.toml"),
    )
    .unwrap();
    let cpcv = example
        .replace("n_trials = 40", "n_trials = 10")
        .replace("name = \"wf-synthetic\"", "name = \"wf-cpcv\"")
        .replace("kind = \"paired\"", "kind = \"none\"")
        .replace("alpha = 0.1\nmin_steps = 4\n", "")
        .replace(
            "holdout_top = 5 ",
            "holdout_top = 2\nsplits = \"cpcv\"\ngroups = 6\ntest_groups = 2\nembargo = 5\n",
        );
    assert!(cpcv.contains("splits = \"cpcv\""), "{cpcv}");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cpcv.toml");
    std::fs::write(&spec, cpcv).unwrap();
    let (data, trials) = util::run_offline(&spec, "wf-cpcv");
    assert_eq!(trials.len(), 12);
    for t in trials.iter().filter(|t| t["state"] == "complete").take(10) {
        if t["origin"]["holdout"].is_u64() {
            // The hold-out evaluation is one fold whatever the search's splits.
            assert_eq!(t["intermediate"].as_object().unwrap().len(), 1, "{t}");
            continue;
        }
        // C(6, 2) = 15 splits reported; the result averages C(5, 1) = 5 paths.
        assert_eq!(t["intermediate"].as_object().unwrap().len(), 15, "{t}");
        assert_eq!(t["metrics"]["paths"], 5.0);
        assert!(t["metrics"]["sharpe_path_std"].as_f64().unwrap() >= 0.0);
    }
    // Every path covers the whole search period (2750 days): PBO sees them all.
    let out = util::offline(&["best", "wf-cpcv", "--json"], data.path());
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(b[0]["selection"]["pbo"]["observations"], 2750, "{b}");
}

#[test]
fn run_overrides_the_specs_budget_seed_and_name_without_editing_it() {
    let quickstart =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.toml");
    let before = std::fs::read_to_string(&quickstart).unwrap();
    let once = |seed: &str| {
        let data = tempfile::tempdir().unwrap();
        let out = util::offline(
            &[
                "run",
                quickstart.to_str().unwrap(),
                "--n-trials",
                "4",
                "--seed",
                seed,
                "--name",
                "renamed",
                "--slots",
                "1",
                "--json",
            ],
            data.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["study"]["name"], "renamed");
        assert_eq!(v["study"]["n_trials"], 4);
        let out = util::offline(&["trials", "renamed", "--json"], data.path());
        let trials: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let trials = trials.as_array().unwrap().clone();
        assert_eq!(trials.len(), 4);
        trials
            .iter()
            .map(|t| t["params"].clone())
            .collect::<Vec<_>>()
    };
    // The seed reaches the sampler: the same seed, the same points; another, others.
    let (a, b, c) = (once("5"), once("5"), once("6"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(std::fs::read_to_string(&quickstart).unwrap(), before);
}

#[test]
fn the_holdout_ledger_counts_every_look_across_studies_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("peek.toml");
    std::fs::write(
        &spec,
        "[study]\nname = \"peek\"\nn_trials = 4\ndirections = [\"maximize\"]\nobjectives = [\"sharpe\"]\nseed = 1\n\
         [space]\nw = { type = \"int\", low = 5, high = 40 }\n\
         [objective]\nkind = \"walk_forward\"\ndata = \"synthetic\"\nsynthetic = { days = 1500, seed = 4, strength = 0.1 }\n\
         features = { mom = \"sum(returns, 5) / std(returns, $w)\" }\ntrain = 500\ntest = 250\nholdout = 250\nholdout_top = 2\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    // Two studies on the same data and hold-out, each run by its own scheduler process on
    // the same store (the second a restart of the first's).
    let run = |name: &str| {
        let out = util::offline(
            &[
                "run",
                spec.to_str().unwrap(),
                "--name",
                name,
                "--slots",
                "1",
            ],
            &data,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = run("peek-a");
    assert!(
        first.contains("2 evaluations on this hold-out (1 study)"),
        "{first}"
    );
    let second = run("peek-b");
    assert!(
        second.contains("4 evaluations on this hold-out (2 studies)"),
        "{second}"
    );
    // `best` of the first study, read later, counts the second's looks too.
    let best = |name: &str| -> serde_json::Value {
        let out = util::offline(&["best", name, "--json"], &data);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let a = best("peek-a");
    let l = &a[0]["holdout_ledger"];
    assert_eq!(
        (l["evaluations"].as_u64(), l["studies"].as_u64()),
        (Some(4), Some(2)),
        "{a}"
    );
    assert_eq!(l["this_study"], 2);
    let dsr = l["deflated_sharpe"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&dsr), "{l}");

    // `returns`: the winner's daily trading, and its hold-out evaluation's, as CSV; the
    // metrics are those of these very rows.
    let b = best("peek-b");
    let n = b[0]["number"].as_u64().unwrap().to_string();
    let rows = |extra: &[&str]| -> Vec<Vec<String>> {
        let mut args = vec!["returns", "peek-b", n.as_str(), "--csv"];
        args.extend(extra);
        let out = util::offline(&args, &data);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("decided,earned,position_"));
        lines
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    };
    let col = |rows: &[Vec<String>], i: usize| -> Vec<f64> {
        rows.iter().map(|r| r[i].parse().unwrap()).collect()
    };
    let search = rows(&[]);
    let m = &b[0]["metrics"];
    assert_eq!(search.len() as f64, m["observations"].as_f64().unwrap());
    let (r, bench) = (col(&search, 3), col(&search, 4));
    let ir = mlt_eval::metrics::relative(&r, &bench).information_ratio;
    assert!(
        (ir - m["information_ratio"].as_f64().unwrap()).abs() < 1e-9,
        "{ir} vs {m}"
    );
    // Each return is earned the next trading day.
    assert!(search.iter().all(|row| row[1] > row[0]));
    let held = rows(&["--holdout"]);
    assert_eq!(held.len(), 250);
    let hs = mlt_eval::metrics::sharpe(&col(&held, 3));
    assert!(
        (hs - m["holdout_sharpe"].as_f64().unwrap()).abs() < 1e-9,
        "{hs} vs {m}"
    );
    // The hold-out's last day has no next bar: nothing is earned on it.
    assert_eq!(held.last().unwrap()[1], "");
    let out = util::offline(&["returns", "peek-b", "99"], &data);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trial 99"));
}

#[test]
fn data_problems_are_printed_at_submit_and_kept_with_the_study() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.csv");
    util::write_synthetic_csv(&full, 3, 1200);
    // Only the date and the close, newest first, one date twice and one close missing.
    let text = std::fs::read_to_string(&full).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let head: Vec<&str> = lines.remove(0).split(',').collect();
    let (d, c) = (
        head.iter()
            .position(|h| h.eq_ignore_ascii_case("date"))
            .unwrap(),
        head.iter()
            .position(|h| h.eq_ignore_ascii_case("close"))
            .unwrap(),
    );
    let mut rows: Vec<String> = lines
        .iter()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            format!("{},{}", cells[d], cells[c])
        })
        .collect();
    rows[500] = format!("{},", rows[500].split(',').next().unwrap());
    rows.insert(700, rows[700].clone());
    rows.reverse();
    std::fs::write(
        dir.path().join("messy.csv"),
        format!("date,close\n{}\n", rows.join("\n")),
    )
    .unwrap();
    let spec = dir.path().join("messy.toml");
    std::fs::write(
        &spec,
        "[study]\nname = \"messy\"\nn_trials = 2\n[space]\nw = { type = \"int\", low = 5, high = 20 }\n\
         [objective]\nkind = \"walk_forward\"\ndata = \"messy.csv\"\nfeatures = { mom = \"sum(returns, 5) / std(returns, $w)\" }\n\
         train = 400\ntest = 200\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = util::offline(&["run", spec.to_str().unwrap()], &data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Printed at submit, naming the file, with counts and the first places.
    for want in [
        "warning: data: messy.csv: rows are newest first: sorted oldest first",
        "warning: data: messy.csv: 1 repeated date (the later row kept)",
        "warning: data: messy.csv: 1 empty or NaN cell",
        "warning: data: messy.csv: no open, high, low column",
    ] {
        assert!(err.contains(want), "{want}\n{err}");
    }
    // Kept with the study: `status` shows them after the run, from the store.
    let out = util::offline(&["status"], &data);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains("data problems of messy (found at submit):"),
        "{status}"
    );
    assert!(status.contains("messy.csv: 1 repeated date"), "{status}");
    let out = util::offline(&["status", "--json"], &data);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["studies"][0]["data_warnings"].as_array().unwrap().len(),
        4,
        "{v}"
    );
    // A feature that needs a column the file lacks is refused at submit, by name.
    std::fs::write(
        &spec,
        "[study]\nname = \"hl\"\nn_trials = 2\n[objective]\nkind = \"walk_forward\"\ndata = \"messy.csv\"\n\
         features = { range = \"(high - low) / close\" }\ntrain = 400\ntest = 200\n",
    )
    .unwrap();
    let out = util::offline(&["run", spec.to_str().unwrap()], &data);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("range") && err.contains("needs `high`"),
        "{err}"
    );
}

#[test]
fn run_shows_live_progress_on_a_terminal_and_nothing_extra_in_a_pipe() {
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.toml");
    let dir = tempfile::tempdir().unwrap();
    let run = |data: &str| {
        format!(
            "{} run {} --data-dir {} --n-trials 30",
            util::bin(),
            spec.display(),
            dir.path().join(data).display()
        )
    };
    // On a terminal (util-linux `script` gives the command a pseudo-terminal and copies what
    // it draws to its stdout): the bar with the counts, the best so far and the ETA.
    let out = std::process::Command::new("script")
        .args(["-qec", &run("tty"), "/dev/null"])
        .env("MLT_LOG", "warn")
        .output()
        .expect("util-linux `script`");
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{drawn}");
    assert!(
        drawn.contains("ETA") && drawn.contains("running,"),
        "{drawn}"
    );
    assert!(drawn.contains("/30"), "{drawn}");
    // In a pipe: the study's lines and no progress at all.
    let out = util::offline(
        &["run", spec.to_str().unwrap(), "--n-trials", "30"],
        &dir.path().join("pipe"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("ETA") && !err.contains('\r'), "{err}");
}
