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
    let rows = in_date_order(path, &names, rows);
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

/// The rows in date order when the file has a date column (the first whose first cell is a
/// date), with a warning naming the file when they were not: returns are a sequence, and a
/// reversed file would give the opposite drawdowns and a wrong Sharpe of prices. Rows of the
/// same date are warned about and kept in the file's order.
fn in_date_order<'a>(
    path: &Path,
    names: &[String],
    mut rows: Vec<(usize, Vec<&'a str>)>,
) -> Vec<(usize, Vec<&'a str>)> {
    use mlt_eval::data::parse_day;
    let Some(j) = (0..names.len()).find(|&j| {
        rows[0]
            .1
            .get(j)
            .is_some_and(|c| c.len() >= 10 && parse_day(c).is_some())
    }) else {
        return rows;
    };
    let day = |r: &(usize, Vec<&str>)| r.1.get(j).and_then(|c| parse_day(c));
    if rows.iter().any(|r| day(r).is_none()) {
        return rows;
    }
    let out_of_order = rows.windows(2).filter(|w| day(&w[1]) < day(&w[0])).count();
    if out_of_order > 0 {
        rows.sort_by_key(|r| day(r));
        eprintln!(
            "warning: {}: {out_of_order} rows out of date order in `{}`: sorted by date",
            path.display(),
            names[j]
        );
    }
    let repeated = rows.windows(2).filter(|w| day(&w[1]) == day(&w[0])).count();
    if repeated > 0 {
        eprintln!(
            "warning: {}: {repeated} rows repeat the date before them in `{}`",
            path.display(),
            names[j]
        );
    }
    rows
}

/// Whether a column of returns looks like prices: every value positive and a typical one far
/// above any daily return (returns are fractions: 0.01 is 1%).
fn looks_like_prices(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() || v.iter().any(|x| *x <= 0.0) {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    (median > 0.5).then_some(median)
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
        if let Some(median) = looks_like_prices(values) {
            eprintln!(
                "warning: {}: `{name}` looks like prices, not returns (all positive, median {median}): pass --prices to compute returns from them",
                file.display()
            );
        }
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
