//! The model registry through the real binary and a running scheduler: versions immutable,
//! one production version at a time, gates refusing and `--force` recorded, rollback, the
//! audit log surviving a kill -9, and `predict --model NAME@production` giving exactly the
//! trial's predictions.
mod util;

use serde_json::Value;
use util::{wait_until, Cluster};

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(out: std::process::Output, says: &str) {
    assert!(
        !out.status.success(),
        "accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(says), "expected `{says}` in: {err}");
}

fn json(out: std::process::Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

#[test]
fn versions_stages_gates_rollback_and_the_audit_log() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    c.add_node("a", 2);
    let spec = c.write("reg.toml", &util::lightgbm_spec("reg", 3, 8, 2));
    let (study, trials) = c.run_study(&spec, 120);
    // The two trials evaluated on the hold-out (complete search trials).
    let mut with_holdout: Vec<u64> = trials
        .iter()
        .filter_map(|t| t["origin"].get("holdout").and_then(Value::as_u64))
        .collect();
    with_holdout.sort();
    assert_eq!(with_holdout.len(), 2, "{trials:?}");
    let (a, b) = (with_holdout[0].to_string(), with_holdout[1].to_string());

    // Version 1, with a gate it cannot pass.
    let e = json(c.cli(&[
        "registry",
        "register",
        &study,
        &a,
        "--name",
        "spy",
        "--require",
        "sharpe > 100",
        "--require",
        "holdout",
        "--json",
    ]));
    assert_eq!(e["version"], 1);
    assert_eq!(e["stages"], serde_json::json!(["development"]));
    let v1 = json(c.cli(&["registry", "show", "spy@1", "--json"]));
    assert_eq!(v1["trial"].as_u64().unwrap().to_string(), a);
    assert!(v1["artifact"]["model"].as_str().unwrap().contains("Tree="));
    assert!(v1["holdout"]["complete"].as_bool().unwrap());
    assert!(v1["lineage"]["node"].is_string());
    assert_eq!(v1["failed_gates"].as_array().unwrap().len(), 1, "{v1}");

    // Refused, naming the gate; --force without a reason refused; with one, recorded.
    refused(
        c.cli(&["registry", "stage", "spy", "1", "production"]),
        "sharpe > 100",
    );
    refused(
        c.cli(&["registry", "stage", "spy", "1", "production", "--force"]),
        "--force needs --reason",
    );
    ok(c.cli(&[
        "registry",
        "stage",
        "spy",
        "1",
        "production",
        "--force",
        "--reason",
        "desk sign-off",
    ]));

    // Version 2; promoting it archives version 1: one production version at a time.
    ok(c.cli(&["registry", "register", &study, &b, "--name", "spy"]));
    refused(
        c.cli(&["registry", "stage", "spy", "2", "production"]),
        "sharpe > 100",
    );
    ok(c.cli(&["registry", "gates", "spy", "--require", "holdout"]));
    ok(c.cli(&["registry", "stage", "spy", "2", "staging"]));
    ok(c.cli(&[
        "registry",
        "stage",
        "spy",
        "2",
        "production",
        "--reason",
        "better hold-out",
    ]));
    let list = json(c.cli(&["registry", "list", "--json"]));
    assert_eq!(
        list[0]["stages"],
        serde_json::json!(["archived", "production"]),
        "{list}"
    );
    // Versions are immutable: registering again makes version 3; version 1 is as it was.
    // This one is also refit on the latest window, ending at the data's last bar.
    ok(c.cli(&[
        "registry", "register", &study, &a, "--name", "spy", "--refit",
    ]));
    let v3 = json(c.cli(&["registry", "show", "spy@3", "--json"]));
    let (trial_end, refit_end) = (
        v3["artifact"]["trained"][1].as_i64().unwrap(),
        v3["refit"]["trained"][1].as_i64().unwrap(),
    );
    // The search's last fold ends before the hold-out (250 days); the refit reaches the end.
    assert!(refit_end - trial_end > 300, "{trial_end} {refit_end}");
    assert!(v3["refit"]["model"].as_str().unwrap().contains("Tree="));
    assert!(ok(c.cli(&["registry", "show", "spy@3"])).contains("refit: trained"));
    let again = json(c.cli(&["registry", "show", "spy@1", "--json"]));
    for k in [
        "artifact",
        "created_ms",
        "params",
        "metrics",
        "holdout",
        "spec_sha256",
    ] {
        assert_eq!(again[k], v1[k], "{k}");
    }
    refused(c.cli(&["registry", "show", "spy@9"]), "no version 9");
    refused(
        c.cli(&["registry", "register", &study, &a, "--name", "bad name"]),
        "letters, digits",
    );

    // Rollback: version 1 is production again, version 2 archived.
    ok(c.cli(&["registry", "rollback", "spy", "--reason", "drawdown"]));
    let prod = json(c.cli(&["registry", "show", "spy@production", "--json"]));
    assert_eq!(prod["version"], 1);
    assert_eq!(prod["stage"], "production");
    let history = json(c.cli(&["registry", "history", "spy", "--json"]));

    // The audit log and the stages survive a kill -9 of the scheduler.
    c.scheduler.as_mut().unwrap().kill9();
    c.start_scheduler();
    wait_until(60, "the scheduler to answer again", || {
        c.json(&["status"]).is_some()
    });
    assert_eq!(
        json(c.cli(&["registry", "history", "spy", "--json"])),
        history
    );
    let log = history.as_array().unwrap();
    let forced: Vec<&Value> = log.iter().filter(|e| e["forced"] == true).collect();
    assert_eq!(forced.len(), 1, "{history}");
    assert_eq!(forced[0]["reason"], "desk sign-off");
    assert!(forced[0]["detail"][0]
        .as_str()
        .unwrap()
        .contains("sharpe > 100"));
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        actions.contains(&"rollback") && actions.contains(&"gates"),
        "{actions:?}"
    );
    let list = json(c.cli(&["registry", "list", "--json"]));
    assert_eq!(
        list[0]["stages"],
        serde_json::json!(["production", "archived", "development"])
    );
    let table = ok(c.cli(&["registry", "history", "spy"]));
    assert!(table.contains("FORCED — desk sign-off"), "{table}");

    // The production model predicts exactly as its trial does.
    let bars = c.dir.path().join("bars.csv");
    util::write_synthetic_csv(&bars, 21, 400);
    let by_model = ok(c.cli(&[
        "predict",
        "--model",
        "spy@production",
        "--data",
        bars.to_str().unwrap(),
    ]));
    let by_trial = ok(c.cli(&[
        "predict",
        "--study",
        &study,
        "--trial",
        &a,
        "--data",
        bars.to_str().unwrap(),
    ]));
    assert_eq!(by_model, by_trial);
    assert!(by_model.lines().count() > 300);
    let refit = ok(c.cli(&[
        "predict",
        "--model",
        "spy@3",
        "--refit",
        "--data",
        bars.to_str().unwrap(),
    ]));
    assert_eq!(refit.lines().count(), by_model.lines().count());
    refused(
        c.cli(&[
            "predict",
            "--model",
            "spy@1",
            "--refit",
            "--data",
            bars.to_str().unwrap(),
        ]),
        "without --refit",
    );
    // Compare marks what differs between the two versions' trials.
    let cmp = json(c.cli(&["registry", "compare", "spy", "1", "2", "--json"]));
    let leaves = |n: &str| {
        trials
            .iter()
            .find(|t| t["number"].as_u64().unwrap().to_string() == n)
            .unwrap()["params"]["num_leaves"]
            .clone()
    };
    let row = cmp["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["field"] == "param num_leaves")
        .cloned()
        .unwrap();
    assert_eq!(row["differs"], leaves(&a) != leaves(&b), "{cmp}");
    assert_eq!(row["a"], leaves(&a).to_string());
    c.assert_no_panics();
}
