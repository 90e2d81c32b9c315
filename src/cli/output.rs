//! Human-readable tables and CSV.
use mlt_protocol::records::{
    LedgerCount, ParamValue, Slice, Stability, StatusReport, StudySummary, TrialOrigin, TrialRecord,
};
use std::collections::BTreeSet;
use std::fmt::Write;

/// Where a trial's parameters came from, as the exports write it.
pub fn origin_text(o: &TrialOrigin) -> String {
    match o {
        TrialOrigin::Sampler => "sampler".to_string(),
        TrialOrigin::Enqueued(i) => format!("enqueued {i}"),
        TrialOrigin::WarmStart(s, n) => format!("warm start {s} #{n}"),
        TrialOrigin::Holdout(n) => format!("holdout of #{n}"),
    }
}

/// SHA-256 of a spec's text (lower-case hex): the study's part of every trial's lineage.
pub fn spec_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A time (ms since the Unix epoch) as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let rem = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        mlt_eval::data::format_day(secs.div_euclid(86_400)),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn values(v: &Option<Vec<f64>>) -> String {
    match v {
        None => "-".into(),
        Some(v) => v
            .iter()
            .map(|x| format!("{x:.6}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn param(v: &ParamValue) -> String {
    match v {
        ParamValue::Float(f) => format!("{f:.6}"),
        other => other.to_string(),
    }
}

pub fn summary_line(s: &StudySummary) -> String {
    let best = match (s.best_trial, s.best_value) {
        (Some(t), Some(v)) => format!("; best trial {t}: {v:.6}"),
        _ => String::new(),
    };
    let mut extra = Vec::new();
    if s.holdout_runs > 0 {
        extra.push(format!("+{} hold-out evaluations", s.holdout_runs));
    }
    if s.warm_started > 0 {
        extra.push(format!("+{} warm-started", s.warm_started));
    }
    let holdout = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    };
    format!(
        "study {} {}: {} complete, {} pruned, {} failed, {} lost of {}{holdout}{best}",
        s.name,
        s.state,
        s.counts.complete,
        s.counts.pruned,
        s.counts.failed,
        s.counts.lost,
        s.n_trials
    )
}

pub fn status_table(s: &StatusReport, offline: bool) -> String {
    let mut o = String::new();
    if offline {
        let _ = writeln!(o, "(read from a stopped scheduler's store)");
    }
    let _ = writeln!(
        o,
        "{:<4} {:<24} {:<10} {:>8} {:>8} {:>7} {:>7} {:>7}  BEST",
        "ID", "STUDY", "STATE", "DONE", "TRIALS", "RUN", "PRUNED", "FAILED"
    );
    for st in &s.studies {
        let best = st.best_value.map_or("-".into(), |b| {
            format!("{b:.6} (#{})", st.best_trial.map_or(0, |t| t.0))
        });
        let c = &st.counts;
        let _ = writeln!(
            o,
            "{:<4} {:<24} {:<10} {:>8} {:>8} {:>7} {:>7} {:>7}  {}",
            st.id.0,
            st.name,
            st.state.to_string(),
            c.finished(),
            st.n_trials,
            c.running,
            c.pruned,
            c.failed + c.lost,
            best
        );
    }
    // What was found in each study's data when it was submitted.
    for st in s.studies.iter().filter(|st| !st.data_warnings.is_empty()) {
        let _ = writeln!(o, "\ndata problems of {} (found at submit):", st.name);
        for w in &st.data_warnings {
            let _ = writeln!(o, "  {w}");
        }
    }
    if !offline {
        let _ = writeln!(
            o,
            "\n{:<20} {:>6} {:>5} {:>8} {:>10} {:>9}",
            "NODE", "SLOTS", "GPUS", "RUNNING", "CONNECTED", "BEAT(ms)"
        );
        for n in &s.nodes {
            let conn = if n.draining {
                "draining"
            } else if n.connected {
                "yes"
            } else {
                "no"
            };
            let _ = writeln!(
                o,
                "{:<20} {:>6} {:>5} {:>8} {:>10} {:>9}",
                n.name, n.slots, n.gpus, n.running, conn, n.last_heartbeat_ms
            );
        }
        let m = &s.metrics;
        let _ = writeln!(
            o,
            "\nassigned {} · finished {} · stale {} · leases expired {} · reconciled {} · refused {} · bad frames {} · commits {} · assign p50 {} µs, p99 {} µs",
            m.assigned, m.finished, m.stale, m.leases_expired, m.reconciled, m.refused, m.bad_frames, m.commits, m.assign_p50_us, m.assign_p99_us
        );
    }
    o
}

/// The ledger entry of the hold-out evaluation a trial carries (`holdout_trial`).
pub fn ledger_of<'a>(t: &TrialRecord, ledger: &'a [LedgerCount]) -> Option<&'a LedgerCount> {
    let h = *t.metrics.get("holdout_trial")? as u64;
    ledger.iter().find(|l| l.trials.contains(&h))
}

/// The deflated Sharpe ratio of a trial's hold-out Sharpe: N is every evaluation the ledger
/// holds on that hold-out (all studies), the variance theirs.
pub fn holdout_dsr(t: &TrialRecord, l: &LedgerCount) -> Option<f64> {
    let h = |k: &str| t.metrics.get(&format!("holdout_{k}")).copied();
    Some(mlt_eval::selection::dsr(
        h("sharpe_per_period")?,
        l.sharpe_variance,
        l.evaluations.max(1) as f64,
        h("observations")?,
        h("skew")?,
        h("kurtosis")?,
    ))
}

/// The trial against its benchmark over the same days, and the warnings a quant should not
/// miss: a position that barely changes, an excess return that is not significant.
pub fn benchmark_lines(t: &TrialRecord) -> Vec<String> {
    let g = |k: &str| t.metrics.get(k).copied();
    let mut out = Vec::new();
    let (Some(bs), Some(ir)) = (g("benchmark_sharpe"), g("information_ratio")) else {
        return out;
    };
    let pct = |k: &str| 100.0 * g(k).unwrap_or(f64::NAN);
    let num = |k: &str| g(k).unwrap_or(f64::NAN);
    out.push(format!(
        "benchmark: buy-and-hold Sharpe {bs:.3}, annual return {:.2}% over the same days; excess return {:.2}%/yr (t {:.2}), information ratio {ir:.3}, alpha {:.2}%/yr (t {:.2}), beta {:.3} (t {:.2}); in the market {:.1}% of days, net long {:.1}%",
        pct("benchmark_return"),
        pct("excess_return"),
        num("excess_t"),
        pct("alpha"),
        num("alpha_t"),
        num("beta"),
        num("beta_t"),
        pct("time_in_market"),
        pct("long_days"),
    ));
    let n = t.number.0;
    if num("long_days") >= LONG_WARNING {
        out.push(format!(
            "warning: trial {n} is net long on {:.1}% of days: its position barely changes, and its return is mostly the market's (beta {:.2})",
            pct("long_days"),
            num("beta")
        ));
    }
    // Skill is the return beyond the benchmark exposure: the regression's alpha (a
    // market-neutral strategy's raw excess r − b also carries the market's own noise).
    // (NaN, too few days to tell, is not significant either.)
    if num("alpha_t").is_nan() || num("alpha_t") < SIGNIFICANT_T {
        out.push(format!(
            "warning: trial {n}'s return beyond its benchmark exposure is not significant (alpha t {:.2} < {SIGNIFICANT_T}; excess return t {:.2}): its Sharpe may be the market's, not skill",
            num("alpha_t"),
            num("excess_t")
        ));
    }
    out
}

/// The winner's stability: positive folds and their spread, then the Sharpe ratio (and
/// compounded return) of every fold, calendar year and market regime.
pub fn stability_lines(t: &TrialRecord, st: &Stability) -> Vec<String> {
    let g = |k: &str| t.metrics.get(k).copied().unwrap_or(f64::NAN);
    let mut out = Vec::new();
    if st.folds.is_empty() {
        return out;
    }
    let positive = st.folds.iter().filter(|f| f.sharpe > 0.0).count();
    out.push(format!(
        "stability: {positive} of {} folds with a positive Sharpe (spread {:.3}), information coefficient {:.4}, hits {:.0} of {:.0} up calls and {:.0} of {:.0} down calls",
        st.folds.len(),
        g("fold_sharpe_std"),
        g("ic"),
        g("true_up"),
        g("true_up") + g("false_up"),
        g("true_down"),
        g("true_down") + g("false_down"),
    ));
    let row = |name: &str, parts: &[Slice], with_return: bool| {
        let cells: Vec<String> = parts
            .iter()
            .map(|p| {
                if with_return {
                    format!(
                        "{} {:.2} ({:+.1}%)",
                        p.label,
                        p.sharpe,
                        100.0 * p.total_return
                    )
                } else {
                    format!("{} {:.2}", p.label, p.sharpe)
                }
            })
            .collect();
        format!("  {name:<10} {}", cells.join("  "))
    };
    out.push(row("by fold", &st.folds, false));
    out.push(row("by year", &st.years, true));
    let mut regimes = st.volatility.clone();
    regimes.extend(st.trend.iter().map(|p| Slice {
        label: format!("trend {}", p.label),
        ..p.clone()
    }));
    out.push(row("by regime", &regimes, true));
    out
}

/// `best` warns when a winner is net long on at least this share of days.
pub const LONG_WARNING: f64 = 0.95;
/// ... and when the t-statistic of its alpha over the benchmark is below this (5 %, two-sided).
pub const SIGNIFICANT_T: f64 = 1.96;

pub fn trials_table(ts: &[TrialRecord], ledger: &[LedgerCount]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:>6} {:<9} {:>4} {:>14}  PARAMS",
        "TRIAL", "STATE", "TRY", "VALUES"
    );
    for t in ts {
        let params: Vec<String> = t
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", param(v)))
            .collect();
        let _ = writeln!(
            o,
            "{:>6} {:<9} {:>4} {:>14}  {}",
            t.number.0,
            t.state.as_str(),
            t.attempt,
            values(&t.values),
            params.join(" ")
        );
        // Why it failed or was pruned, and whether it broke a constraint.
        if let Some(m) = &t.message {
            use mlt_protocol::records::TrialState as S;
            if matches!(t.state, S::Failed | S::Pruned) {
                let first = m.lines().next().unwrap_or_default();
                let _ = writeln!(o, "{:>6} {first}", "");
            }
        }
        if let Some(v) = violation(t) {
            let _ = writeln!(o, "{:>6} infeasible: constraints broken by {v}", "");
        }
        if let TrialOrigin::Holdout(n) = t.origin {
            let _ = writeln!(o, "{:>6} hold-out evaluation of trial {n}", "");
        }
        // A trial evaluated on the hold-out shows how it did there.
        let h = |k: &str| t.metrics.get(&format!("holdout_{k}")).copied();
        if let Some(sr) = h("sharpe") {
            // How often this hold-out has been looked at, by every study in the store.
            let seen = match ledger_of(t, ledger) {
                Some(l) => format!(
                    "; {} evaluation{} on this hold-out ({} stud{}), deflated Sharpe {:.3} over them",
                    l.evaluations,
                    if l.evaluations == 1 { "" } else { "s" },
                    l.studies,
                    if l.studies == 1 { "y" } else { "ies" },
                    holdout_dsr(t, l).unwrap_or(f64::NAN)
                ),
                None => String::new(),
            };
            let _ = writeln!(
                o,
                "{:>6} hold-out: Sharpe {sr:.3} (buy-and-hold {:.3}), annual return {:.2}%, max drawdown {:.2}% over {:.0} days never seen by the search{seen}",
                "",
                h("benchmark_sharpe").unwrap_or(f64::NAN),
                100.0 * h("annual_return").unwrap_or(f64::NAN),
                100.0 * h("max_drawdown").unwrap_or(f64::NAN),
                h("observations").unwrap_or(f64::NAN)
            );
        }
    }
    o
}

/// The total constraint violation of a trial that broke a constraint.
fn violation(t: &TrialRecord) -> Option<f64> {
    let v: f64 = t.constraints.as_ref()?.iter().map(|c| c.max(0.0)).sum();
    (v > 0.0).then_some(v)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn trials_csv(ts: &[TrialRecord]) -> String {
    let names: BTreeSet<&String> = ts.iter().flat_map(|t| t.params.keys()).collect();
    let n_values = ts
        .iter()
        .filter_map(|t| t.values.as_ref().map(Vec::len))
        .max()
        .unwrap_or(1);
    let mut head = vec!["number".to_string(), "state".into(), "attempt".into()];
    head.extend((0..n_values).map(|i| {
        if n_values == 1 {
            "value".to_string()
        } else {
            format!("value_{i}")
        }
    }));
    head.extend(names.iter().map(|n| format!("param_{n}")));
    let metrics: BTreeSet<&String> = ts.iter().flat_map(|t| t.metrics.keys()).collect();
    head.extend(metrics.iter().map(|n| format!("metric_{n}")));
    head.extend([
        "feasible".to_string(),
        "origin".into(),
        "generation".into(),
        "started_ms".into(),
        "finished_ms".into(),
        "message".into(),
    ]);
    let mut o = head.join(",") + "\n";
    for t in ts {
        let mut row = vec![
            t.number.0.to_string(),
            t.state.as_str().to_string(),
            t.attempt.to_string(),
        ];
        for i in 0..n_values {
            row.push(
                t.values
                    .as_ref()
                    .and_then(|v| v.get(i))
                    .map_or(String::new(), |x| x.to_string()),
            );
        }
        for n in &names {
            row.push(
                t.params
                    .get(*n)
                    .map_or(String::new(), |v| csv_field(&v.to_string())),
            );
        }
        for n in &metrics {
            row.push(t.metrics.get(*n).map_or(String::new(), |x| x.to_string()));
        }
        row.push(match &t.constraints {
            None => String::new(),
            Some(_) => (violation(t).is_none()).to_string(),
        });
        row.push(csv_field(&origin_text(&t.origin)));
        row.push(t.generation.map_or(String::new(), |g| g.to_string()));
        row.push(t.started_ms.map_or(String::new(), |x| x.to_string()));
        row.push(t.finished_ms.map_or(String::new(), |x| x.to_string()));
        row.push(csv_field(t.message.as_deref().unwrap_or("")));
        o += &(row.join(",") + "\n");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::ids::{StudyId, TrialId};
    use mlt_protocol::records::{HoldoutWindow, TrialState};

    fn trial(metrics: &[(&str, f64)]) -> TrialRecord {
        TrialRecord {
            study: StudyId(1),
            number: TrialId(7),
            state: TrialState::Complete,
            attempt: 1,
            values: Some(vec![1.0]),
            params: Default::default(),
            intermediate: Default::default(),
            node: None,
            slot: None,
            message: None,
            created_ms: 0,
            started_ms: None,
            finished_ms: None,
            origin: Default::default(),
            generation: None,
            constraints: None,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn a_winner_that_is_always_long_without_alpha_is_flagged_and_a_skilled_one_is_not() {
        let market = trial(&[
            ("benchmark_sharpe", 1.1),
            ("benchmark_return", 0.12),
            ("information_ratio", 0.05),
            ("excess_return", 0.001),
            ("excess_t", 0.1),
            ("alpha", 0.002),
            ("alpha_t", 0.4),
            ("beta", 0.98),
            ("beta_t", 40.0),
            ("time_in_market", 1.0),
            ("long_days", 0.97),
        ]);
        let lines = benchmark_lines(&market);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("buy-and-hold Sharpe 1.100") && lines[0].contains("beta 0.980"));
        assert!(lines[1].contains("net long on 97.0% of days"), "{lines:?}");
        assert!(lines[2].contains("alpha t 0.40 < 1.96"), "{lines:?}");
        let skilled = trial(&[
            ("benchmark_sharpe", 1.1),
            ("information_ratio", 1.2),
            ("excess_t", 1.5),
            ("alpha_t", 3.0),
            ("long_days", 0.55),
        ]);
        assert_eq!(benchmark_lines(&skilled).len(), 1);
        // No benchmark metrics (a study from an earlier version, or not walk-forward): nothing.
        assert!(benchmark_lines(&trial(&[("sharpe", 2.0)])).is_empty());
    }

    #[test]
    fn a_holdout_figure_carries_its_ledger() {
        let t = trial(&[
            ("holdout_sharpe", 1.5),
            ("holdout_sharpe_per_period", 0.1),
            ("holdout_observations", 250.0),
            ("holdout_skew", 0.0),
            ("holdout_kurtosis", 3.0),
            ("holdout_trial", 12.0),
        ]);
        let l = LedgerCount {
            window: HoldoutWindow::default(),
            evaluations: 40,
            studies: 3,
            this_study: 5,
            trials: vec![10, 11, 12, 13, 14],
            sharpe_variance: 0.002,
        };
        let text = trials_table(std::slice::from_ref(&t), std::slice::from_ref(&l));
        assert!(
            text.contains("40 evaluations on this hold-out (3 studies)"),
            "{text}"
        );
        // Deflated over 40 looks, the same Sharpe is worth less than over one.
        let one = LedgerCount {
            evaluations: 1,
            ..l.clone()
        };
        assert!(holdout_dsr(&t, &l).unwrap() < holdout_dsr(&t, &one).unwrap());
        // A ledger entry of other evaluations is not this trial's.
        let other = LedgerCount {
            trials: vec![3],
            ..l
        };
        assert!(ledger_of(&t, &[other]).is_none());
    }
}
