//! `returns STUDY TRIAL [--holdout]`: a trial's out-of-sample trading day by day (decision
//! day, the day the return is earned, positions, the strategy's return after costs and the
//! benchmark's), as a table, CSV or JSON, so that anyone can check or plot it.
use super::target::{target, Target};
use super::Conn;
use anyhow::bail;
use mlt_eval::data::format_day;
use mlt_protocol::messages::{FromClient, ToClient, TrialRefMsg};
use mlt_protocol::records::{DailySeries, TrialOrigin, TrialRecord};
use std::fmt::Write;

/// How `returns` prints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Table,
    Csv,
    Json,
}

/// `mlt-cluster returns STUDY TRIAL [--holdout]`.
pub async fn returns(
    study: &str,
    trial: u64,
    holdout: bool,
    shape: Shape,
    conn: &Conn,
) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let trials = t.trials(study).await?;
    let Some(asked) = trials.iter().find(|x| x.number.0 == trial) else {
        bail!(
            "study `{study}` has no trial {trial} (its trials are numbered 0 to {})",
            trials.len().saturating_sub(1)
        );
    };
    // The hold-out evaluation of `trial` is a trial of its own (the last, if several).
    let shown = if holdout {
        match trials
            .iter()
            .rev()
            .find(|x| x.origin == TrialOrigin::Holdout(trial))
        {
            Some(h) => h,
            None => bail!(
                "trial {trial} of `{study}` was not evaluated on the hold-out (a study with `holdout` evaluates its best `holdout_top` trials when its search ends)"
            ),
        }
    } else {
        asked
    };
    let d = fetch(&mut t, study, shown).await?;
    let what = match (&shown.origin, holdout) {
        (TrialOrigin::Holdout(src), _) => format!(
            "hold-out evaluation of trial {src} (trial {})",
            shown.number.0
        ),
        _ => format!("trial {trial}"),
    };
    let text = match shape {
        Shape::Json => {
            serde_json::to_string_pretty(&json(study, shown.number.0, &what, &d))? + "\n"
        }
        Shape::Csv => csv(&d),
        Shape::Table => table(&d),
    };
    print!("{text}");
    if shape == Shape::Table {
        eprintln!("{}", summary(study, &what, &d));
    }
    Ok(())
}

async fn fetch(t: &mut Target, study: &str, x: &TrialRecord) -> anyhow::Result<DailySeries> {
    let r = t
        .request(FromClient::Daily(TrialRefMsg {
            study: study.to_string(),
            trial: x.number.0,
        }))
        .await?;
    match r {
        ToClient::Daily(Some(d)) => Ok(*d),
        ToClient::Daily(None) => bail!(
            "trial {} of `{study}` is {} and kept no daily trading (complete walk-forward trials do; studies run by an earlier version of mlt-cluster kept none)",
            x.number.0,
            x.state.as_str()
        ),
        other => bail!("unexpected answer: {other:?}"),
    }
}

fn day(d: Option<i64>) -> String {
    d.map_or(String::new(), format_day)
}

/// One row per day: decided, earned, a position per instrument, return, benchmark.
pub fn csv(d: &DailySeries) -> String {
    let mut o = String::from("decided,earned");
    for i in &d.instruments {
        let _ = write!(o, ",position_{}", i.replace([',', '"', '\n'], "_"));
    }
    o += ",return,benchmark\n";
    for k in 0..d.decided.len() {
        let _ = write!(o, "{},{}", format_day(d.decided[k]), day(d.earned[k]));
        for p in &d.positions[k] {
            let _ = write!(o, ",{p}");
        }
        let _ = writeln!(o, ",{},{}", d.returns[k], d.benchmark[k]);
    }
    o
}

fn table(d: &DailySeries) -> String {
    let mut o = format!("{:<10} {:<10}", "DECIDED", "EARNED");
    for i in &d.instruments {
        let _ = write!(o, " {:>10}", truncate(i, 10));
    }
    let _ = writeln!(o, " {:>11} {:>11}", "RETURN", "BENCHMARK");
    for k in 0..d.decided.len() {
        let _ = write!(
            o,
            "{:<10} {:<10}",
            format_day(d.decided[k]),
            day(d.earned[k])
        );
        for p in &d.positions[k] {
            let _ = write!(o, " {p:>10.4}");
        }
        let _ = writeln!(o, " {:>11.6} {:>11.6}", d.returns[k], d.benchmark[k]);
    }
    o
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn json(study: &str, trial: u64, what: &str, d: &DailySeries) -> serde_json::Value {
    let days: Vec<serde_json::Value> = (0..d.decided.len())
        .map(|k| {
            serde_json::json!({
                "decided": format_day(d.decided[k]),
                "earned": d.earned[k].map(format_day),
                "positions": d.instruments.iter().cloned()
                    .zip(d.positions[k].iter().map(|p| serde_json::json!(p)))
                    .collect::<serde_json::Map<String, serde_json::Value>>(),
                "return": d.returns[k],
                "benchmark": d.benchmark[k],
            })
        })
        .collect();
    serde_json::json!({
        "study": study,
        "trial": trial,
        "what": what,
        "instruments": d.instruments,
        "days": days,
    })
}

/// The compounded totals and the share of days long, for the table's reader.
fn summary(study: &str, what: &str, d: &DailySeries) -> String {
    let total = |r: &[f64]| {
        r.iter()
            .filter(|x| x.is_finite())
            .map(|x| 1.0 + x)
            .product::<f64>()
            - 1.0
    };
    let n = d.decided.len();
    let long = d
        .positions
        .iter()
        .filter(|p| p.iter().sum::<f64>() > 0.0)
        .count();
    let span = match (d.decided.first(), d.decided.last()) {
        (Some(a), Some(b)) => format!(" from {} to {}", format_day(*a), format_day(*b)),
        _ => String::new(),
    };
    format!(
        "{what} of {study}: {n} days{span}; total return {:.2}% (benchmark {:.2}%), net long on {:.1}% of days",
        100.0 * total(&d.returns),
        100.0 * total(&d.benchmark),
        100.0 * long as f64 / n.max(1) as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_row_per_day_and_a_column_per_instrument() {
        let d = DailySeries {
            decided: vec![19000, 19001],
            earned: vec![Some(19001), None],
            returns: vec![0.01, 0.0],
            benchmark: vec![0.02, -0.5],
            instruments: vec!["SPY".into(), "Q,Q".into()],
            positions: vec![vec![1.0, -0.5], vec![0.0, -1.0]],
            stability: Default::default(),
        };
        assert_eq!(
            csv(&d),
            "decided,earned,position_SPY,position_Q_Q,return,benchmark\n\
             2022-01-08,2022-01-09,1,-0.5,0.01,0.02\n\
             2022-01-09,,0,-1,0,-0.5\n"
        );
        let s = summary("s", "trial 3", &d);
        assert!(s.contains("2 days from 2022-01-08 to 2022-01-09"), "{s}");
        assert!(s.contains("total return 1.00% (benchmark -49.00%)"), "{s}");
        assert!(s.contains("net long on 50.0% of days"), "{s}");
    }
}
