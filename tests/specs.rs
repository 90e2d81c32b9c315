//! Invalid specs through the real binary: each is a clear error naming file, line and key,
//! exit code 3, and nothing is stored.
mod util;

use util::Cluster;

const GOOD: &str = r#"[study]
name = "good"
n_trials = 5
[sampler]
kind = "random"
[pruner]
kind = "median"
[space]
x0 = { type = "float", low = -5.0, high = 10.0 }
x1 = { type = "float", low = 0.0, high = 15.0, log = false }
kind = { type = "categorical", choices = ["a", "b"] }
depth = { type = "int", low = 1, high = 4, when = { kind = ["a"] } }
[objective]
kind = "benchmark"
function = "branin"
"#;

/// (what to replace, replacement, line of the error, words the error must contain)
const CASES: &[(&str, &str, usize, &str)] = &[
    (
        "n_trials = 5",
        "n_trials = 5\ncolour = \"red\"",
        4,
        "unknown field `colour`",
    ),
    (
        "low = -5.0, high = 10.0",
        "low = 11.0, high = 10.0",
        9,
        "`space.x0.low`: low (11) is greater than high",
    ),
    (
        r#"choices = ["a", "b"]"#,
        "choices = []",
        11,
        "`space.kind.choices`: must not be empty",
    ),
    (
        "low = 0.0, high = 15.0, log = false",
        "low = 0.0, high = 15.0, log = true",
        10,
        "`space.x1.low`: a log-scale parameter needs low > 0",
    ),
    (
        r#"kind = "random""#,
        r#"kind = "bayes""#,
        5,
        "`sampler.kind`: unknown sampler `bayes`",
    ),
    (
        "n_trials = 5",
        "n_trials = -4",
        3,
        "`study.n_trials`: must be a positive number",
    ),
    (
        "when = { kind",
        "when = { knd",
        12,
        "`space.depth.when.knd`: refers to `knd`",
    ),
    (
        r#"kind = "median""#,
        r#"kind = "mean""#,
        7,
        "`pruner.kind`: unknown pruner `mean`",
    ),
    (
        r#"type = "int""#,
        r#"type = "integer""#,
        12,
        "`space.depth.type`: unknown parameter type",
    ),
    (
        r#"function = "branin""#,
        r#"function = "ackley""#,
        15,
        "`objective.function`: unknown function `ackley`",
    ),
    (
        r#"kind = "benchmark""#,
        r#"kind = "magic""#,
        14,
        "`objective.kind`: unknown objective `magic`",
    ),
    (
        r#"when = { kind = ["a"] }"#,
        r#"when = { kind = ["c"] }"#,
        12,
        "`c` is not a value `kind` can take",
    ),
    ("n_trials = 5", "n_trials = \"five\"", 3, "invalid type"),
];

#[test]
fn every_invalid_spec_is_refused_with_file_line_and_key_and_nothing_is_stored() {
    let c = Cluster::start("");
    for (i, (from, to, line, words)) in CASES.iter().enumerate() {
        assert!(GOOD.contains(from), "case {i}");
        let name = format!("bad{i}.toml");
        let path = c.write(&name, &GOOD.replacen(from, to, 1));
        let out = c.cli(&["submit", &path.display().to_string()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "case {i}: {err}");
        let at = format!("{name}:{line}:");
        assert!(
            err.contains(&at) && err.contains(words),
            "case {i}: wanted `{at}` and `{words}` in:\n{err}"
        );
    }
    let s = c.json(&["status"]).unwrap();
    assert_eq!(s["studies"].as_array().unwrap().len(), 0, "nothing stored");
    // `run` refuses before creating anything.
    let path = c.write(
        "bad-run.toml",
        &GOOD.replace("n_trials = 5", "n_trials = 0"),
    );
    let data = c.dir.path().join("run-data");
    let out = std::process::Command::new(util::bin())
        .args([
            "run",
            &path.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(!data.exists());
    // And the good spec is accepted.
    let good = c.write("good.toml", GOOD);
    assert_eq!(c.submit(&good), "good");
}
