//! `mlt-cluster stats`: the selection statistics and metrics on the researcher's own files.
use anyhow::{bail, Context};
use mlt_eval::metrics as m;
use mlt_eval::selection as stats;
use serde_json::json;
use std::path::Path;

/// A CSV file's numeric columns: (header, values by row). Empty cells and `nan` are NaN;
/// a column whose first value is not a number (a date) is left out.
fn read_columns(path: &Path) -> anyhow::Result<Vec<(String, Vec<f64>)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, head)) = lines.next() else {
        bail!("{}: the file is empty", path.display());
    };
    let names: Vec<String> = head.split(',').map(|s| s.trim().to_string()).collect();
    let rows: Vec<(usize, Vec<&str>)> = lines
        .map(|(i, l)| (i + 1, l.split(',').map(str::trim).collect()))
        .collect();
    if rows.is_empty() {
        bail!("{}: no rows after the header", path.display());
    }
    let parse = |s: &str| -> Option<f64> {
        if s.is_empty() || s.eq_ignore_ascii_case("nan") {
            Some(f64::NAN)
        } else {
            s.parse().ok()
        }
    };
    let mut out = Vec::new();
    for (j, name) in names.iter().enumerate() {
        if rows[0].1.get(j).and_then(|s| parse(s)).is_none() {
            continue; // a label column such as a date
        }
        let mut col = Vec::with_capacity(rows.len());
        for (line, cells) in &rows {
            let cell = cells.get(j).copied().unwrap_or("");
            match parse(cell) {
                Some(v) => col.push(v),
                None => bail!(
                    "{}:{line}: column `{name}`: `{cell}` is not a number",
                    path.display()
                ),
            }
        }
        out.push((name.clone(), col));
    }
    if out.is_empty() {
        bail!("{}: no numeric column", path.display());
    }
    Ok(out)
}

/// `stats returns`.
pub fn returns(
    file: &Path,
    column: Option<&str>,
    prices: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let cols = read_columns(file)?;
    let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
    let (name, values) = match column {
        Some(c) => cols.iter().find(|x| x.0 == c).with_context(|| {
            format!(
                "{}: no numeric column `{c}` (columns: {})",
                file.display(),
                names.join(", ")
            )
        })?,
        None if cols.len() == 1 => &cols[0],
        None => bail!(
            "{}: {} numeric columns; choose one with --column ({})",
            file.display(),
            cols.len(),
            names.join(", ")
        ),
    };
    let r: Vec<f64> = if prices {
        values.windows(2).map(|w| w[1] / w[0] - 1.0).collect()
    } else {
        values.clone()
    };
    if r.iter().filter(|x| !x.is_nan()).count() < 3 {
        bail!("{}: `{name}` has fewer than 3 returns", file.display());
    }
    let mo = stats::moments(&r);
    let rows: Vec<(&str, f64)> = vec![
        ("n", mo.n as f64),
        ("sharpe", m::sharpe(&r)),
        ("sortino", m::sortino(&r)),
        ("annual_return", m::annual_return(&r)),
        ("annual_volatility", m::annual_volatility(&r)),
        ("max_drawdown", m::max_drawdown(&r)),
        ("calmar", m::calmar(&r)),
        ("var_95", m::value_at_risk(&r, 0.05)),
        ("cvar_95", m::conditional_value_at_risk(&r, 0.05)),
        ("win_rate", m::win_rate(&r)),
        ("sharpe_per_period", mo.sharpe),
        ("skew", mo.skew),
        ("kurtosis", mo.kurtosis),
        (
            "psr",
            stats::psr(mo.sharpe, 0.0, mo.n as f64, mo.skew, mo.kurtosis),
        ),
        (
            "min_track_record_95",
            stats::min_track_record(mo.sharpe, 0.0, mo.skew, mo.kurtosis, 0.95),
        ),
    ];
    if as_json {
        let mut o = serde_json::Map::new();
        o.insert("column".into(), json!(name));
        for (k, v) in &rows {
            o.insert((*k).into(), json!(v));
        }
        println!("{}", serde_json::to_string_pretty(&o)?);
    } else {
        let from = if prices { ", from prices" } else { "" };
        println!(
            "{name} ({} returns{from}; annualised with 252 periods)",
            mo.n
        );
        for (k, v) in &rows {
            println!("  {k:<20} {v:.6}");
        }
    }
    Ok(())
}

/// `stats dsr`.
pub fn dsr(
    sharpe: f64,
    trials: f64,
    variance: f64,
    observations: f64,
    skew: f64,
    kurtosis: f64,
    as_json: bool,
) -> anyhow::Result<()> {
    if trials < 1.0 || variance < 0.0 || observations < 2.0 {
        bail!("need --trials >= 1, --variance >= 0 and --observations >= 2");
    }
    let sr0 = stats::deflated_benchmark(variance, trials);
    let d = stats::dsr(sharpe, variance, trials, observations, skew, kurtosis);
    let out = json!({
        "dsr": d,
        "sr0": sr0,
        "expected_max_z": stats::expected_max(trials),
        "psr_0": stats::psr(sharpe, 0.0, observations, skew, kurtosis),
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("deflated Sharpe ratio  {d:.6}   (P[true Sharpe > {sr0:.6}], the best of {trials} by luck)");
        println!(
            "PSR against 0          {:.6}",
            out["psr_0"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

/// `stats pbo`.
pub fn pbo(file: &Path, splits: usize, as_json: bool) -> anyhow::Result<()> {
    let cols = read_columns(file)?;
    let values: Vec<Vec<f64>> = cols.iter().map(|c| c.1.clone()).collect();
    let r = stats::pbo(&values, splits).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "pbo": r.pbo,
                "combinations": r.combinations,
                "strategies": cols.len(),
                "logits": r.logits,
            }))?
        );
    } else {
        println!(
            "probability of backtest overfitting {:.4}  ({} strategies, {} splits, {} combinations)",
            r.pbo,
            cols.len(),
            splits,
            r.combinations
        );
    }
    Ok(())
}
