//! `mlt-cluster stats` through the real binary: the reference vectors, and clear errors.
mod util;

use std::process::Command;

fn stats(args: &[&str]) -> std::process::Output {
    Command::new(util::bin())
        .arg("stats")
        .args(args)
        .output()
        .unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = stats(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn stats_reproduce_the_reference_vectors_and_name_bad_input() {
    // DSR(SR = 2.5/√250, V = 0.5/250, N = 100, T = 1250, g3 = −3, g4 = 10) = 0.90039683…
    let sr = format!("{}", 2.5 / 250f64.sqrt());
    let d = json(&[
        "dsr",
        "--sharpe",
        &sr,
        "--trials",
        "100",
        "--variance",
        "0.002",
        "--observations",
        "1250",
        "--skew",
        "-3",
        "--kurtosis",
        "10",
        "--json",
    ]);
    assert!(
        (d["dsr"].as_f64().unwrap() - 0.900_396_834_449_390_3).abs() < 1e-6,
        "{d}"
    );
    assert!(
        (d["sr0"].as_f64().unwrap() - 0.113_172_001_865_132_14).abs() < 1e-6,
        "{d}"
    );
    // The `mixed` fixture as a returns file (with a date column and a NaN).
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.csv");
    let mixed = [
        "nan", "0.01", "0.10", "-0.04", "0.02", "0.03", "0.02", "0.01", "-0.10",
    ];
    let mut text = String::from("date,ret\n");
    for (i, v) in mixed.iter().enumerate() {
        text += &format!("2024-01-{:02},{v}\n", i + 1);
    }
    std::fs::write(&f, text).unwrap();
    let r = json(&["returns", f.to_str().unwrap(), "--json"]);
    // The documented keys are all there.
    for k in [
        "sharpe",
        "sortino",
        "max_drawdown",
        "annual_return",
        "annual_volatility",
        "calmar",
        "var_95",
        "cvar_95",
        "skew",
        "kurtosis",
        "psr",
        "n",
    ] {
        assert!(r.get(k).is_some(), "missing {k}: {r}");
    }
    assert_eq!(r["n"], 8.0); // NaN skipped
    assert!(
        (r["sharpe"].as_f64().unwrap() - 1.723_861_396_170_686_6).abs() < 1e-12,
        "{r}"
    );
    assert!((r["max_drawdown"].as_f64().unwrap() + 0.1).abs() < 1e-12);
    assert!((r["annual_return"].as_f64().unwrap() - 1.913_592_537_319_423_1).abs() < 1e-12);
    // Prices: simple returns of a price column (here 100 → 110 → 99 → 108.9).
    let px = dir.path().join("px.csv");
    std::fs::write(
        &px,
        "date,open,close\nd1,1,100\nd2,1,110\nd3,1,99\nd4,1,108.9\n",
    )
    .unwrap();
    let r = json(&[
        "returns",
        px.to_str().unwrap(),
        "--column",
        "close",
        "--prices",
        "--json",
    ]);
    assert_eq!(r["n"], 3.0);
    assert!(
        (r["max_drawdown"].as_f64().unwrap() + 0.1).abs() < 1e-12,
        "{r}"
    );
    // PBO of a matrix with one real edge is low.
    let p = dir.path().join("m.csv");
    let mut m = String::from("a,b,c,d\n");
    for t in 0..400 {
        let n = |k: u64| ((t * 7919 + k * 104_729) % 1000) as f64 / 1000.0 - 0.5;
        m += &format!(
            "{},{},{},{}\n",
            n(1) * 0.01,
            n(2) * 0.01,
            n(3) * 0.01 + 0.004,
            n(4) * 0.01
        );
    }
    std::fs::write(&p, m).unwrap();
    let b = json(&["pbo", p.to_str().unwrap(), "--splits", "8", "--json"]);
    assert_eq!(b["combinations"], 70);
    assert!(b["pbo"].as_f64().unwrap() < 0.1, "{b}");
    // Bad input: the file, line and column are named; several columns need --column.
    std::fs::write(
        &f,
        "date,ret\n2024-01-01,0.01\n2024-01-02,abc\n2024-01-03,0.02\n",
    )
    .unwrap();
    let out = stats(&["returns", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("r.csv:3: column `ret`: `abc` is not a number"),
        "{err}"
    );
    let out = stats(&["returns", px.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--column"), "{err}");
    let out = stats(&["pbo", p.to_str().unwrap(), "--splits", "5"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("even"));
}

/// Runs `mlt-cluster ARGS` with its stdout a pipe whose reader is gone before it starts, so
/// that its first write meets a closed pipe: its status and stderr.
fn into_a_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(util::bin())
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (status, err) = into_a_closed_pipe(&["stats", "pbo", "--help"]);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(status.code(), Some(101), "{err}");
    // Ended by SIGPIPE, as `cat` is, or by a clean exit.
    assert!(
        status.signal() == Some(libc::SIGPIPE) || status.success(),
        "{status:?}: {err}"
    );
    let (status, err) = into_a_closed_pipe(&[
        "stats",
        "dsr",
        "--sharpe",
        "0.1",
        "--trials",
        "10",
        "--variance",
        "0.001",
        "--observations",
        "500",
        "--skew",
        "0",
        "--kurtosis",
        "3",
    ]);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}: {err}");
}

#[test]
fn rows_out_of_date_order_are_sorted_with_a_warning_and_prices_are_told_from_returns() {
    let dir = tempfile::tempdir().unwrap();
    let prices = [100.0, 101.0, 99.5, 102.0, 103.5, 102.5, 104.0, 106.0];
    let rows: Vec<String> = prices
        .iter()
        .enumerate()
        .map(|(i, p)| format!("2024-01-{:02},{p}", i + 2))
        .collect();
    let sorted = dir.path().join("sorted.csv");
    std::fs::write(&sorted, format!("Date,Close\n{}\n", rows.join("\n"))).unwrap();
    let reversed = dir.path().join("reversed.csv");
    let back: Vec<String> = rows.iter().rev().cloned().collect();
    std::fs::write(&reversed, format!("Date,Close\n{}\n", back.join("\n"))).unwrap();
    let a = json(&["returns", sorted.to_str().unwrap(), "--prices", "--json"]);
    let out = stats(&["returns", reversed.to_str().unwrap(), "--prices", "--json"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reversed.csv: 7 rows out of date order in `Date`: sorted by date"),
        "{err}"
    );
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["sharpe"], b["sharpe"]);
    assert!(a["sharpe"].as_f64().unwrap() > 0.0);
    // Prices passed as returns: computed as given, with a hint.
    let out = stats(&["returns", sorted.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`Close` looks like prices") && err.contains("--prices"),
        "{err}"
    );
    // Returns are not prices.
    let r = dir.path().join("r.csv");
    std::fs::write(
        &r,
        "Date,r\n2024-01-02,0.01\n2024-01-03,-0.02\n2024-01-04,0.015\n2024-01-05,0.003\n",
    )
    .unwrap();
    let out = stats(&["returns", r.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).trim().is_empty());
}

#[test]
fn under_json_an_error_is_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let out = stats(&["returns", missing.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(err["error"].as_str().unwrap().contains("nope.csv"), "{err}");
    assert_eq!(err["exit_code"], 1);
    // Without `--json`, a sentence.
    let out = stats(&["returns", missing.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}
