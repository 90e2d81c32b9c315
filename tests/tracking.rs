//! Tracking through the real binary: tags and notes on studies and trials, written by a
//! running scheduler and into a stopped one's store, kept across a kill -9, and `trials
//! --where` filtering on them.
mod util;

use serde_json::Value;
use util::{wait_until, Cluster};

const SPEC: &str = "[study]\nname = \"tracked\"\nn_trials = 12\nseed = 5\n[space]\nx0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 2\n";

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn numbers(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect()
}

#[test]
fn tags_and_notes_survive_a_restart_and_filter_trials() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    c.add_node("a", 2);
    let spec = c.write("s.toml", SPEC);
    let (study, trials) = c.run_study(&spec, 60);
    assert_eq!(trials.len(), 12);
    let t3 = format!("{study}/3");
    let t5 = format!("{study}/5");
    ok(c.cli(&["tag", &t3, "desk=fx", "reviewed=yes"]));
    ok(c.cli(&["tag", &t5, "desk=rates"]));
    ok(c.cli(&["tag", &study, "owner=alice"]));
    ok(c.cli(&["note", &t3, "stable across folds"]));
    // Setting a key again replaces its value; --remove removes one.
    ok(c.cli(&["tag", &t3, "reviewed=no", "--remove", "desk"]));
    ok(c.cli(&["tag", &t3, "desk=fx"]));
    let shown: Value =
        serde_json::from_str(&ok(c.cli(&["tag", &t3, "--json", "extra=1"]))).unwrap();
    assert_eq!(shown["tags"]["reviewed"], "no", "{shown}");
    assert_eq!(shown["notes"][0]["text"], "stable across folds", "{shown}");

    // Refused whole, with the reason: a trial the study lacks, a bad key, nothing to do.
    let t99 = format!("{study}/99");
    for (args, says) in [
        (vec!["tag", t99.as_str(), "a=b"], "no trial 99"),
        (vec!["tag", t3.as_str(), "a b=c"], "keys are letters"),
        (vec!["tag", t3.as_str(), "novalue"], "key=value"),
        (vec!["note", t3.as_str(), "  "], "empty"),
        (vec!["tag", "nosuchstudy", "a=b"], "nosuchstudy"),
    ] {
        let out = c.cli(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // Kill the scheduler: what was acknowledged is on disk.
    c.scheduler.as_mut().unwrap().kill9();
    c.start_scheduler();
    wait_until(60, "the scheduler to answer again", || {
        c.json(&["status"]).is_some()
    });
    let fx = c
        .json(&["trials", &study, "--where", "tag.desk = fx"])
        .unwrap();
    assert_eq!(numbers(&fx), [3], "{fx}");
    assert_eq!(fx[0]["tags"]["reviewed"], "no");
    assert_eq!(fx[0]["tags"]["extra"], "1");
    assert_eq!(fx[0]["notes"][0]["text"], "stable across folds");
    let any_desk = c
        .json(&["trials", &study, "--where", "tag.desk != none"])
        .unwrap();
    assert_eq!(
        numbers(&any_desk).len(),
        12,
        "!= matches trials without the tag too"
    );
    // Conditions combine: a tag and a value bound.
    let all = c.trials(&study);
    let v5 = all[5]["values"][0].as_f64().unwrap();
    let both = c
        .json(&[
            "trials",
            &study,
            "--where",
            "tag.desk = rates",
            "--where",
            &format!("value <= {v5}"),
        ])
        .unwrap();
    assert_eq!(numbers(&both), [5]);
    let none = c
        .json(&[
            "trials",
            &study,
            "--where",
            "tag.desk = rates",
            "--where",
            &format!("value < {v5}"),
        ])
        .unwrap();
    assert_eq!(numbers(&none), Vec::<u64>::new());
    let bad = c.cli(&["trials", &study, "--where", "shrape > 1"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`shrape`"));

    // Offline: the stopped scheduler's store is changed in place, and read back.
    c.scheduler.as_mut().unwrap().sigterm();
    wait_until(30, "the scheduler to stop", || {
        c.scheduler
            .as_mut()
            .unwrap()
            .child
            .try_wait()
            .unwrap()
            .is_some()
    });
    let data = c.data();
    ok(util::offline(&["note", &study, "reviewed offline"], &data));
    let table = ok(util::offline(
        &["trials", &study, "--where", "tag.desk = fx"],
        &data,
    ));
    assert!(
        table.contains("1 of 12 trials where tag.desk = fx"),
        "{table}"
    );
    c.start_scheduler();
    wait_until(60, "the scheduler to answer again", || {
        c.json(&["status"]).is_some()
    });
    let study_tags: Value =
        serde_json::from_str(&ok(c.cli(&["tag", &study, "--json", "k=v"]))).unwrap();
    assert_eq!(study_tags["tags"]["owner"], "alice", "{study_tags}");
    assert_eq!(
        study_tags["notes"][0]["text"], "reviewed offline",
        "{study_tags}"
    );
    c.assert_no_panics();
}

#[test]
fn every_trial_records_its_lineage_and_curves_on_a_real_run() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("lineage.toml");
    let text = util::lightgbm_spec("lineage", 3, 4, 1);
    std::fs::write(&spec, &text).unwrap();
    let data = dir.path().join("data");
    util::run_into(&spec, &data);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".to_string(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        });
    let spec_sha = hex_of(&Sha256::digest(text.as_bytes()));
    let trials: Value =
        serde_json::from_str(&ok(util::offline(&["trials", "lineage", "--json"], &data))).unwrap();
    let trials = trials.as_array().unwrap();
    assert_eq!(trials.len(), 4, "3 trials and a hold-out evaluation");
    for t in trials {
        let n = t["number"].as_u64().unwrap();
        let holdout = t["origin"].get("holdout").and_then(Value::as_u64);
        if holdout.is_some() {
            continue;
        }
        let v: Value = serde_json::from_str(&ok(util::offline(
            &["trial", "lineage", &n.to_string(), "--json"],
            &data,
        )))
        .unwrap();
        let l = &v["lineage"];
        assert_eq!(l["spec_sha256"], spec_sha.as_str(), "{v}");
        assert_eq!(l["sampler"], "random");
        assert_eq!(l["sampler_seed"], 4);
        let r = &l["run"];
        assert_eq!(r["node"], "local", "{r}");
        assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(r["commit"], head.as_str());
        assert!(r["threads"].as_u64().unwrap() >= 1 && r["cores"].as_u64().unwrap() >= 1);
        assert_eq!(
            r["model_seed"], n,
            "a search trial's model seed is its number"
        );
        assert!(r["wall_s"].as_f64().unwrap() > 0.0);
        let ds = r["datasets"].as_array().unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0]["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(
            ds[0]["rows"], 1250,
            "the search sees the data before the hold-out"
        );
        // A fold per reported step, each trained before it is tested, each with its curve.
        let folds = r["folds"].as_array().unwrap();
        assert_eq!(
            folds.len(),
            t["intermediate"].as_object().unwrap().len(),
            "{r}"
        );
        assert!(!folds.is_empty());
        for f in folds {
            assert!(f["train"][1].as_i64() < f["test"][0].as_i64(), "{f}");
            let c = &f["curve"];
            let points = c["train"].as_array().unwrap().len();
            assert!(
                points >= 1 && c["valid"].as_array().unwrap().len() == points,
                "{c}"
            );
            assert!(c["best"].as_u64().unwrap() as usize <= points);
            assert_eq!(c["unit"], "round");
            assert_eq!(c["metric"], "l2");
        }
        assert_eq!(v["curves"]["folds"], folds.len());
        // The table shows it too.
        let text = ok(util::offline(&["trial", "lineage", &n.to_string()], &data));
        assert!(text.contains(&format!("sha256 {spec_sha}")), "{text}");
        assert!(text.contains("ran on: local"), "{text}");
        assert!(text.contains("kept of"), "{text}");
    }
    // The hold-out evaluation: its model seed is the trial it evaluates, its data whole.
    let h = trials
        .iter()
        .find(|t| t["origin"].get("holdout").is_some())
        .unwrap();
    let source = h["origin"]["holdout"].as_u64().unwrap();
    let v: Value = serde_json::from_str(&ok(util::offline(
        &["trial", "lineage", &source.to_string(), "--json"],
        &data,
    )))
    .unwrap();
    let hr = &v["lineage"]["holdout_run"];
    assert_eq!(hr["model_seed"], source, "{v}");
    assert_eq!(hr["datasets"][0]["rows"], 1500);
    assert_eq!(hr["folds"].as_array().unwrap().len(), 1);
}

#[test]
fn a_benchmark_trial_records_where_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("b.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let data = dir.path().join("data");
    util::run_into(&spec, &data);
    let v: Value = serde_json::from_str(&ok(util::offline(
        &["trial", "tracked", "2", "--json"],
        &data,
    )))
    .unwrap();
    let r = &v["lineage"]["run"];
    assert_eq!(r["node"], "local", "{v}");
    assert!(r["model_seed"].is_null());
    assert_eq!(r["folds"], serde_json::json!([]));
    assert!(v["curves"].is_null());
    let missing = util::offline(&["trial", "tracked", "99"], &data);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no trial 99"));

    // A second study in the same store, compared trial against trial across the two.
    let other = dir.path().join("c.toml");
    std::fs::write(
        &other,
        SPEC.replace("\"tracked\"", "\"other\"")
            .replace("seed = 5", "seed = 6"),
    )
    .unwrap();
    util::run_into(&other, &data);
    let cmp: Value = serde_json::from_str(&ok(util::offline(
        &["compare", "tracked/2", "other/2", "tracked/3", "--json"],
        &data,
    )))
    .unwrap();
    let row = |f: &str| {
        cmp["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["field"] == f)
            .cloned()
            .unwrap_or_else(|| panic!("no row {f}: {cmp}"))
    };
    assert_eq!(row("spec sha256")["differs"], true);
    assert_eq!(row("node")["differs"], false);
    assert_eq!(row("node")["values"][0], "local");
    let x0 = |i: usize| cmp["trials"][i]["record"]["params"]["x0"].as_f64().unwrap();
    assert_eq!(
        row("param x0")["differs"],
        !(x0(0) == x0(1) && x0(1) == x0(2))
    );
    assert_eq!(cmp["trials"].as_array().unwrap().len(), 3);
    let text = ok(util::offline(&["compare", "tracked/2", "other/2"], &data));
    assert!(
        text.contains("tracked/2") && text.contains("(* differs)"),
        "{text}"
    );
    let one = util::offline(&["compare", "tracked/2"], &data);
    assert!(!one.status.success());
    let bad = util::offline(&["compare", "tracked/2", "other"], &data);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("STUDY/N"));
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
