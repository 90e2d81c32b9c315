//! Models end to end: a LightGBM study through `mlt-cluster run`, the model each trial keeps
//! (`artifact`), and its predictions on new bars (`predict`), online and from a stopped store.
mod util;

use std::path::Path;

#[test]
fn a_lightgbm_study_keeps_its_models_and_they_predict_new_data() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lgbm-spy.toml");
    let (data, trials) = util::run_offline(&example, "lgbm-spy");
    // 24 search trials and the 3 best evaluated on the hold-out.
    assert_eq!(trials.len(), 27);
    let complete: Vec<&serde_json::Value> = trials
        .iter()
        .filter(|t| t["state"] == "complete" && t["origin"] == "sampler")
        .collect();
    assert!(!complete.is_empty());
    let best = util::offline(&["best", "lgbm-spy", "--json"], data.path());
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    let n = best[0]["number"].as_u64().unwrap().to_string();
    assert!(best[0]["metrics"]["holdout_sharpe"].is_f64(), "{best}");
    // DSR's Sharpe variance: the complete trials' and the pruned trials' over the folds they
    // reached (their last report: the cumulative annualised Sharpe), never the hold-out runs.
    let search = |t: &&serde_json::Value| t["origin"] == "sampler";
    let mut srs: Vec<f64> = complete
        .iter()
        .map(|t| t["metrics"]["sharpe_per_period"].as_f64().unwrap())
        .collect();
    let pruned: Vec<f64> = trials
        .iter()
        .filter(search)
        .filter(|t| t["state"] == "pruned")
        .filter_map(|t| {
            let steps = t["intermediate"].as_object()?;
            let last = steps
                .iter()
                .max_by_key(|(k, _)| k.parse::<u64>().unwrap())?;
            Some(last.1[0].as_f64()? / 252f64.sqrt())
        })
        .collect();
    assert!(!pruned.is_empty(), "Hyperband pruned nothing");
    srs.extend(&pruned);
    let m = srs.iter().sum::<f64>() / srs.len() as f64;
    let var = srs.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (srs.len() - 1) as f64;
    let sel = &best[0]["selection"];
    assert_eq!(sel["variance_over"]["pruned"], pruned.len() as u64, "{sel}");
    assert_eq!(
        sel["variance_over"]["complete"],
        complete.len() as u64,
        "{sel}"
    );
    let got = sel["sharpe_variance"].as_f64().unwrap();
    assert!(
        (got - var).abs() <= 1e-12 * var.max(1e-12),
        "{got} vs {var}"
    );

    // The artifact: LightGBM's model text, its features with the trial's parameters, SHAP.
    let out = util::offline(&["artifact", "lgbm-spy", &n, "--json"], data.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["format"], "lightgbm");
    assert!(a["classify"].as_bool().unwrap());
    // The training window as dates: YYYY-MM-DD, the first before the last.
    let trained: Vec<&str> = a["trained"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        trained.len() == 2 && trained[0] < trained[1] && trained[0].len() == 10,
        "{trained:?}"
    );
    let feats = a["features"].as_array().unwrap();
    assert_eq!(feats.len(), 6);
    // `$w` was replaced by the trial's value.
    let w = best[0]["params"]["w"].as_i64().unwrap();
    assert!(feats
        .iter()
        .any(|f| f[1] == format!("sum(returns, 5) / std(returns, {w})")));
    let imp = a["importance"].as_array().unwrap();
    assert_eq!(imp.len(), 6);
    assert!(imp.iter().any(|i| i["shap"].as_f64().unwrap() > 0.0));
    let text = util::offline(&["artifact", "lgbm-spy", &n], data.path());
    assert!(String::from_utf8_lossy(&text.stdout).starts_with("tree\nversion="));
    assert!(String::from_utf8_lossy(&text.stderr).contains("mean |SHAP|"));

    // Predictions on bars the study never saw, one per row, probabilities once warmed up.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("new.csv");
    util::write_synthetic_csv(&csv, 99, 400);
    let text =
        String::from_utf8(succeeded(predict(data.path(), "lgbm-spy", &n, &csv, &[]))).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "date,probability_up");
    assert_eq!(lines.len(), 401);
    let probs: Vec<f64> = lines[1..]
        .iter()
        .filter_map(|l| l.split(',').nth(1).filter(|s| !s.is_empty()))
        .map(|s| s.parse().unwrap())
        .collect();
    // 60-day windows warm up first; every later row has a probability.
    assert!(probs.len() >= 300 && probs.len() < 400, "{}", probs.len());
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
    // The same again as JSON, to a file.
    let json_out = dir.path().join("p.json");
    succeeded(predict(
        data.path(),
        "lgbm-spy",
        &n,
        &csv,
        &["--json", "--out", json_out.to_str().unwrap()],
    ));
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_out).unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 400);
    let last = &rows[399];
    assert_eq!(
        last["probability_up"].as_f64().unwrap(),
        probs[probs.len() - 1]
    );

    // Data without the volume a feature needs: refused, naming the feature and the column.
    let novol = dir.path().join("novol.csv");
    let stripped: String = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect();
    std::fs::write(&novol, stripped).unwrap();
    let out = predict(data.path(), "lgbm-spy", &n, &novol, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("novol.csv: feature `vr`") && err.contains("volume"),
        "{err}"
    );
    // An ensemble of the 3 best trials, on the study's folds and hold-out: each member alone
    // reproduces its stored out-of-sample Sharpe, and its hold-out Sharpe where the study
    // evaluated it there (the same seed, the same model).
    for method in ["voting", "dynamic", "blending", "stacking"] {
        let out = util::offline(
            &[
                "ensemble", "lgbm-spy", "--top", "3", "--method", method, "--json",
            ],
            data.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let members = e["trials"].as_array().unwrap();
        assert_eq!(members.len(), 3);
        for (i, n) in members.iter().enumerate() {
            let t = &trials[n.as_u64().unwrap() as usize];
            let stored = t["values"][0].as_f64().unwrap();
            let again = e["members"][i]["sharpe"].as_f64().unwrap();
            assert!(
                (stored - again).abs() < 1e-9,
                "trial {n}: {stored} vs {again}"
            );
            if let Some(h) = t["metrics"]["holdout_sharpe"].as_f64() {
                let again = e["holdout_members"][i]["sharpe"].as_f64().unwrap();
                assert!(
                    (h - again).abs() < 1e-9,
                    "trial {n} hold-out: {h} vs {again}"
                );
            }
        }
        assert!(e["metrics"]["sharpe"].is_f64() && e["holdout"]["sharpe"].is_f64());
        let w = e["weights"].as_array().unwrap();
        let ws = |f: &serde_json::Value| -> Vec<f64> {
            f.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        if method == "blending" {
            // No history in the first fold: equal weights; then the blend's own slopes.
            assert!(ws(&w[0]).iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-12));
            assert!(w[1..]
                .iter()
                .any(|f| ws(f).iter().any(|x| (x - 1.0 / 3.0).abs() > 1e-6)));
        } else if method == "stacking" {
            // A meta-model in every fold, from that fold's training window alone.
            assert!(w.iter().all(|f| ws(f).len() == 3));
            assert!(w.windows(2).any(|f| ws(&f[0]) != ws(&f[1])));
        } else {
            assert!(w
                .iter()
                .all(|f| (ws(f).iter().sum::<f64>() - 1.0).abs() < 1e-9));
        }
        if method == "voting" {
            assert!(w
                .iter()
                .flat_map(|f| f.as_array().unwrap())
                .all(|x| (x.as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12));
        }
    }
    // A pruned trial kept no model: a clear error.
    let pruned = trials.iter().find(|t| t["state"] == "pruned").unwrap()["number"].to_string();
    let out = util::offline(&["artifact", "lgbm-spy", &pruned], data.path());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kept no model"));
    // A trial the study does not have is named as such.
    let out = util::offline(&["artifact", "lgbm-spy", "999"], data.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("study `lgbm-spy` has no trial 999 (its trials are numbered 0 to"),
        "{err}"
    );
    assert!(!out.status.success());
}

#[test]
fn an_lstm_study_keeps_its_networks_and_they_predict_new_data() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lstm-synthetic.toml"),
    )
    .unwrap()
    .replace("n_trials = 8", "n_trials = 3")
    // A multi-step head: the direction over 1, 2 and 3 days, the 3-day one traded.
    .replace("horizon = 1", "horizon = 3")
    .replace("[objective.lstm]", "[objective.lstm]\noutputs = 3");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("lstm.toml");
    std::fs::write(&spec, example).unwrap();
    let (data, trials) = util::run_offline(&spec, "lstm-synthetic");
    assert_eq!(trials.len(), 3);
    let done: Vec<&serde_json::Value> =
        trials.iter().filter(|t| t["state"] == "complete").collect();
    assert!(!done.is_empty(), "{trials:?}");
    let n = done[0]["number"].to_string();
    let seq = done[0]["params"]["sequence"].as_u64().unwrap();
    let out = util::offline(&["artifact", "lstm-synthetic", &n, "--json"], data.path());
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["format"], "lstm");
    assert_eq!(a["lookback"], seq);
    // Epochs kept (early stopping) are at most the 12 allowed.
    assert!((1..=12).contains(&a["rounds"].as_u64().unwrap()));
    let csv = dir.path().join("new.csv");
    util::write_synthetic_csv(&csv, 5, 300);
    let text = String::from_utf8(succeeded(predict(
        data.path(),
        "lstm-synthetic",
        &n,
        &csv,
        &[],
    )))
    .unwrap();
    // The traded 3-day prediction first, then the head's shorter horizons.
    assert_eq!(
        text.lines().next(),
        Some("date,probability_up,probability_up_1d,probability_up_2d")
    );
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .filter(|l| !l.ends_with(','))
        .map(|l| l.split(',').skip(1).map(|v| v.parse().unwrap()).collect())
        .collect();
    // Rows start once 20-day windows and a full sequence exist: 300 − 20 − seq + 1 of them.
    assert_eq!(rows.len() as u64, 300 - 20 - seq + 1, "{text}");
    assert!(rows
        .iter()
        .all(|r| r.len() == 3 && r.iter().all(|p| (0.0..=1.0).contains(p))));
    // Three different outputs, not one copied.
    assert!(rows.iter().any(|r| r[0] != r[1] && r[1] != r[2]));
    // The same as JSON: one object per bar, null while the features warm up.
    let json: serde_json::Value = serde_json::from_slice(&succeeded(predict(
        data.path(),
        "lstm-synthetic",
        &n,
        &csv,
        &["--json"],
    )))
    .unwrap();
    let bars = json.as_array().unwrap();
    assert_eq!(bars.len(), 300);
    assert!(bars[0]["probability_up"].is_null());
    // The same numbers (serde_json's float parsing may differ from Rust's in the last bit).
    let last = &bars[299];
    let csv_last = rows.last().unwrap();
    for (key, want) in ["probability_up", "probability_up_1d", "probability_up_2d"]
        .iter()
        .zip(csv_last)
    {
        let got = last[key].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-12 * want.abs(),
            "{key}: {got} vs {want}"
        );
    }
}

#[test]
fn a_gpu_trial_never_runs_on_a_cpu_only_node() {
    use util::{count_state, wait_until, Cluster};
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 3000");
    // This machine has no GPU: one node is told it has one (`--gpus 0`), the other that it has
    // none (`--gpus ""`). A benchmark objective needs no real device.
    c.add_node_with("cpu", 2, &["--gpus", ""]);
    let spec = c.write(
        "gpu.toml",
        "[study]\nname = \"gpu\"\nn_trials = 6\nseed = 1\n[resources]\ngpus = 1\n[space]\nx0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 3\n",
    );
    let study = c.submit(&spec);
    // With only the CPU node, nothing of the GPU study runs, while a CPU study submitted after
    // it runs to its end on that node (the event: the node was taking work all along).
    let cpu = c.write(
        "cpu.toml",
        "[study]\nname = \"cpu\"\nn_trials = 6\nseed = 1\n[space]\nx0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 3\n",
    );
    let cpu_study = c.submit(&cpu);
    wait_until(60, "the CPU study", || {
        c.study_state(&cpu_study) == "complete"
    });
    let trials = c.trials(&study);
    assert!(trials.iter().all(|t| t["state"] == "waiting"), "{trials:?}");
    c.add_node_with("gpu", 1, &["--gpus", "0"]);
    wait_until(60, "the GPU study", || c.study_state(&study) == "complete");
    let status = c.json(&["status"]).unwrap();
    let gpu_node = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "gpu")
        .unwrap()["id"]
        .clone();
    let trials = c.trials(&study);
    assert_eq!(count_state(&trials, "complete"), 6);
    assert!(trials.iter().all(|t| t["node"] == gpu_node), "{trials:?}");
    c.assert_no_panics();
}

#[test]
fn an_ensemble_study_keeps_its_members_and_predicts() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ensemble.toml"),
    )
    .unwrap()
    .replace("n_trials = 12", "n_trials = 4");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("ens.toml");
    std::fs::write(&spec, example).unwrap();
    let (data, trials) = util::run_offline(&spec, "ensemble");
    // 4 search trials and the 2 best on the hold-out.
    assert_eq!(trials.len(), 6);
    let best = util::offline(&["best", "ensemble", "--json"], data.path());
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    let n = best[0]["number"].to_string();
    // The trial's member settings came from its parameters (`lightgbm.num_leaves`).
    let leaves = best[0]["params"]["lightgbm.num_leaves"].as_i64().unwrap();
    let out = util::offline(&["artifact", "ensemble", &n, "--json"], data.path());
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["format"], "ensemble");
    let inner: serde_json::Value = serde_json::from_str(a["model"].as_str().unwrap()).unwrap();
    assert_eq!(inner["method"], "dynamic");
    let members = inner["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert!(members[1][2]
        .as_str()
        .unwrap()
        .contains(&format!("[num_leaves: {leaves}]")));
    let w: f64 = inner["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert!((w - 1.0).abs() < 1e-9);
    let csv = dir.path().join("new.csv");
    util::write_synthetic_csv(&csv, 8, 200);
    let out = succeeded(predict(data.path(), "ensemble", &n, &csv, &[]));
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 201);
}

/// `mlt-cluster predict --study S --trial N --data FILE [extra…]` on a stopped scheduler's
/// store.
fn predict(
    data_dir: &Path,
    study: &str,
    trial: &str,
    file: &Path,
    extra: &[&str],
) -> std::process::Output {
    let file = file.to_str().unwrap();
    let mut args = vec![
        "predict", "--study", study, "--trial", trial, "--data", file,
    ];
    args.extend(extra);
    util::offline(&args, data_dir)
}

/// The standard output of a command that must have succeeded (else its standard error).
fn succeeded(out: std::process::Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_relative_data_dir_is_the_current_directorys_whatever_the_specs_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let spy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/SPY.csv");
    if !spy.exists() {
        return; // the shared data is not on this machine
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lgbm-spy.toml");
    let out = std::process::Command::new(util::bin())
        .current_dir(cwd.path())
        .args([
            "run",
            example.to_str().unwrap(),
            "--data-dir",
            "d",
            "--data",
        ])
        .arg(&spy)
        .args(["--n-trials", "3", "--slots", "1"])
        .env("MLT_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("data in d"), "{err}");
    assert!(cwd.path().join("d/store.redb").exists());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" 0 failed"), "{text}");
}
