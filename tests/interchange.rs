//! Our exports read by the tools they are for: the Optuna journal by the real Optuna and
//! optuna-dashboard, the MLflow export by a real `mlflow server` read back through MLflow's
//! own client (all pinned in tests/python/requirements.txt, in the virtual environment `make
//! test` creates: .venv-test), Parquet by a Parquet reader.
mod util;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The test environment's Python: `MLT_TEST_PYTHON`, or the repository's .venv-test.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MLT_TEST_PYTHON") {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python");
    assert!(
        p.exists(),
        "{} is missing: `make test` creates it (python3 -m venv .venv-test && .venv-test/bin/pip install -r tests/python/requirements.txt)",
        p.display()
    );
    p
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

const MIXED: &str = r#"
[study]
name = "mixed"
n_trials = 30
seed = 11
[sampler]
kind = "tpe"
[pruner]
kind = "median"
n_startup_trials = 3
[space]
x = { type = "float", low = -5.0, high = 10.0 }
n = { type = "int", low = 1, high = 9, step = 2 }
kind = { type = "categorical", choices = ["a", "b", "c"] }
y = { type = "float", low = 0.001, high = 1.0, log = true, when = { kind = ["a"] } }
[objective]
kind = "benchmark"
function = "mixed"
steps = 6
noise = 0.5
[[constraint]]
metric = "x"
max = 8.0
"#;

/// Exports `study` from `data` as a journal and as JSON, and has Optuna check the one against
/// the other: what it saw.
fn optuna_reads(data: &Path, study: &str, directions: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    let json = dir.path().join("trials.json");
    let o = util::offline(
        &[
            "export",
            study,
            "--format",
            "optuna-journal",
            "--out",
            journal.to_str().unwrap(),
        ],
        data,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The trials as we list them, with their tags and notes.
    let o = util::offline(&["trials", study, "--json"], data);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(&json, &o.stdout).unwrap();
    let out = Command::new(python())
        .arg(script("check_optuna_journal.py"))
        .args([&journal, &json])
        .args([study, directions])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Optuna disagrees with the export:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn best(data: &Path, study: &str) -> Vec<u64> {
    let o = util::offline(&["best", study, "--json"], data);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut n: Vec<u64> = match &v {
        Value::Array(a) => a.iter().map(|t| t["number"].as_u64().unwrap()).collect(),
        t => vec![t["number"].as_u64().unwrap()],
    };
    n.sort();
    n
}

#[test]
fn optuna_and_its_dashboard_read_the_journal_as_the_study_is() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("mixed.toml");
    std::fs::write(&spec, MIXED).unwrap();
    let data = dir.path().join("data");
    util::run_into(&spec, &data);
    for args in [
        &["tag", "mixed/4", "desk=fx", "reviewed=yes"][..],
        &["note", "mixed/4", "first look"],
        &["note", "mixed/4", "second look"],
        &["tag", "mixed", "owner=alice"],
        &["note", "mixed", "a study note"],
    ] {
        let o = util::offline(args, &data);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let seen = optuna_reads(&data, "mixed", "minimize");
    assert_eq!(seen["tagged"], serde_json::json!([4]), "{seen}");
    assert_eq!(seen["study_user_attrs"]["tag.owner"], "alice", "{seen}");
    assert_eq!(
        seen["study_user_attrs"]["notes"],
        serde_json::json!(["a study note"]),
        "{seen}"
    );
    assert_eq!(seen["trials"], 30, "{seen}");
    // The median pruner stopped some: both states arrive as Optuna's.
    assert_eq!(
        seen["states"],
        serde_json::json!(["COMPLETE", "PRUNED"]),
        "{seen}"
    );
    // Optuna's best trial is ours: both the best feasible one (the trials carry their
    // constraint values as Optuna's `constraints` system attribute).
    let ours = best(&data, "mixed");
    assert_eq!(seen["best_number"], ours[0], "{seen}");
    assert_eq!(seen["dashboard_trials"], 30, "{seen}");
    assert_eq!(
        seen["dashboard_best"],
        serde_json::json!([ours[0]]),
        "{seen}"
    );
    assert_eq!(seen["dashboard_csv_rows"], 30, "{seen}");

    // A second export to the same file would give the study a wrong id: refused, file kept.
    let journal = dir.path().join("j.log");
    let args = |f: &str| {
        vec![
            "export".to_string(),
            "mixed".into(),
            "--format".into(),
            f.into(),
            "--out".into(),
            journal.to_str().unwrap().into(),
        ]
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        util::offline(&a, &data)
    };
    assert!(run(args("optuna-journal")).status.success());
    let before = std::fs::read(&journal).unwrap();
    let again = run(args("optuna-journal"));
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("j.log exists"), "{err}");
    assert_eq!(std::fs::read(&journal).unwrap(), before);
}

#[test]
fn a_multi_objective_study_reaches_optuna_with_its_pareto_front() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/multi-objective.toml");
    let (data, trials) = util::run_offline(&spec, "zdt1");
    let seen = optuna_reads(data.path(), "zdt1", "minimize,minimize");
    assert_eq!(seen["trials"], trials.len(), "{seen}");
    // Optuna's front is the feasible one when trials carry `constraints`, as ours is.
    assert_eq!(
        seen["pareto"],
        serde_json::json!(best(data.path(), "zdt1")),
        "{seen}"
    );
}

#[test]
fn parquet_holds_the_csv_columns_typed() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("mixed.toml");
    std::fs::write(&spec, MIXED).unwrap();
    let data = dir.path().join("data");
    util::run_into(&spec, &data);
    // Without --out a binary file has nowhere to go.
    let o = util::offline(&["export", "mixed", "--format", "parquet"], &data);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--out"));
    let file = dir.path().join("t.parquet");
    let o = util::offline(
        &[
            "export",
            "mixed",
            "--format",
            "parquet",
            "--out",
            file.to_str().unwrap(),
        ],
        &data,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = util::offline(&["export", "mixed", "--format", "json"], &data);
    let trials: Vec<Value> = serde_json::from_slice(&json.stdout).unwrap();
    let r = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let rows: Vec<parquet::record::Row> =
        r.get_row_iter(None).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), trials.len());
    for (row, t) in rows.iter().zip(&trials) {
        let cell = |k: &str| {
            row.get_column_iter()
                .find(|(n, _)| n.as_str() == k)
                .unwrap_or_else(|| panic!("no column {k}"))
                .1
                .clone()
        };
        assert_eq!(cell("number"), Field::Long(t["number"].as_i64().unwrap()));
        assert_eq!(
            cell("state"),
            Field::Str(t["state"].as_str().unwrap().into())
        );
        assert_eq!(
            cell("param_n"),
            Field::Long(t["params"]["n"].as_i64().unwrap())
        );
        // serde_json's reader may be one unit in the last place off the written value.
        let double = |f: Field, want: f64| match f {
            Field::Double(x) => assert!(
                (x - want).abs() <= 4.0 * f64::EPSILON * want.abs(),
                "{x} != {want}"
            ),
            other => panic!("{other:?} where {want} was expected"),
        };
        double(cell("param_x"), t["params"]["x"].as_f64().unwrap());
        assert_eq!(
            cell("param_kind"),
            Field::Str(t["params"]["kind"].as_str().unwrap().into())
        );
        match t["params"]["y"].as_f64() {
            Some(y) => double(cell("param_y"), y),
            None => assert_eq!(cell("param_y"), Field::Null),
        }
        match t["values"][0].as_f64() {
            Some(v) => double(cell("value"), v),
            None => assert_eq!(cell("value"), Field::Null),
        }
        let feasible = t["params"]["x"].as_f64().unwrap() <= 8.0;
        if t["state"] == "complete" {
            assert_eq!(cell("feasible"), Field::Bool(feasible), "{t}");
        }
    }
}

/// An `mlflow server` on loopback with a temporary backend store and artifact root; its
/// process group is killed when dropped.
struct MlflowServer {
    child: std::process::Child,
    uri: String,
}

impl MlflowServer {
    fn start(dir: &Path) -> MlflowServer {
        use std::os::unix::process::CommandExt;
        let port = util::free_port();
        let mlflow = python().parent().unwrap().join("mlflow");
        let log = dir.join("mlflow.log");
        let child = Command::new(mlflow)
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("mlflow.err")).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let uri = format!("http://127.0.0.1:{port}");
        let health = format!("{uri}/health");
        let s = MlflowServer { child, uri };
        util::wait_until_or(
            120,
            "the MLflow server to answer /health",
            || {
                ureq::get(&health)
                    .call()
                    .is_ok_and(|r| r.status().as_u16() == 200)
            },
            || util::tail(&dir.join("mlflow.err"), 40),
        );
        s
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        // The whole process group: the server, its uvicorn workers and its job runners.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn mlflow_reads_back_the_study_its_trials_curves_model_and_production_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = MlflowServer::start(dir.path());
    let spec = dir.path().join("wf.toml");
    std::fs::write(&spec, util::lightgbm_spec("wf", 3, 2, 1)).unwrap();
    let data = dir.path().join("data");
    util::run_into(&spec, &data);
    let off = |args: &[&str]| {
        let o = util::offline(args, &data);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    // A complete search trial with a model and a hold-out evaluation.
    let trials: Value = serde_json::from_slice(&off(&["trials", "wf", "--json"])).unwrap();
    let n = trials
        .as_array()
        .unwrap()
        .iter()
        .find_map(|t| t["origin"].get("holdout").and_then(Value::as_u64))
        .unwrap()
        .to_string();
    off(&["tag", &format!("wf/{n}"), "desk=fx"]);
    off(&["note", &format!("wf/{n}"), "the one we ship"]);
    off(&[
        "registry",
        "register",
        "wf",
        &n,
        "--name",
        "wf-model",
        "--require",
        "none",
    ]);
    off(&["registry", "stage", "wf-model", "1", "production"]);
    let export = [
        "export",
        "wf",
        "--format",
        "mlflow",
        "--tracking-uri",
        &server.uri,
        "--experiment",
        "research",
    ];
    let report: Value = serde_json::from_slice(&off(&export)).unwrap();
    assert_eq!(report["model_versions"][0][0], "wf-model", "{report}");
    // A second export of the same study to the same experiment is refused.
    let again = util::offline(&export, &data);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds study `wf`"));

    let files = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let trials_file = files("trials.json", &off(&["trials", "wf", "--json"]));
    let trial_file = files("trial.json", &off(&["trial", "wf", &n, "--json"]));
    let model = dir.path().join("model.txt");
    off(&["artifact", "wf", &n, "--out", model.to_str().unwrap()]);
    let out = Command::new(python())
        .arg(script("check_mlflow.py"))
        .args([&server.uri, "research"])
        .args([&trials_file, &trial_file, &model])
        .arg("wf-model")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "MLflow disagrees with the export:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["runs"], trials.as_array().unwrap().len(), "{seen}");
    assert!(seen["curve_points"].as_u64().unwrap() >= 1, "{seen}");
    assert_eq!(seen["mlt_version"], "1", "{seen}");
}
