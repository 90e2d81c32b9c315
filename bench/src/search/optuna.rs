//! The bridge to Optuna: bench/optuna/search_bench.py in its own virtual environment,
//! answering in JSON.
use super::*;

/// Runs the Optuna script; `None` (with a note) when it is not available.
pub(super) fn optuna(python: Option<&Path>, args: &[&str]) -> anyhow::Result<Option<Value>> {
    let Some(py) = python else {
        return Ok(None);
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("optuna/search_bench.py");
    eprintln!("running Optuna: {} {}", script.display(), args.join(" "));
    let out = Command::new(py)
        .arg(&script)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", py.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({})",
            py.display(),
            args.join(" "),
            out.status
        );
    }
    Ok(Some(
        serde_json::from_slice(&out.stdout).context("Optuna's JSON")?,
    ))
}

/// Optuna's regret at trial `n` for each seed of `key` (empty when it did not run).
pub(super) fn their_regrets(v: Option<&Value>, key: &str, n: usize, optimum: f64) -> Vec<f64> {
    let Some(curves) = v.and_then(|v| v.get(key)?.get("curves")?.as_array()) else {
        return Vec::new();
    };
    curves
        .iter()
        .filter_map(|c| {
            let c: Vec<f64> = c.as_array()?.iter().filter_map(Value::as_f64).collect();
            (!c.is_empty()).then(|| at(&c, n) - optimum)
        })
        .collect()
}

pub(super) fn fmt(x: Option<f64>) -> String {
    match x {
        Some(v) if v.abs() >= 100.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.3}"),
        Some(v) => format!("{v:.4}"),
        None => "–".into(),
    }
}
