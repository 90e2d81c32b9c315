//! Human-readable tables and CSV.
use mlt_protocol::records::{ParamValue, StatusReport, StudySummary, TrialOrigin, TrialRecord};
use std::collections::BTreeSet;
use std::fmt::Write;

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
            "\nassigned {} · finished {} · stale {} · leases expired {} · refused {} · bad frames {} · commits {} · assign p50 {} µs, p99 {} µs",
            m.assigned, m.finished, m.stale, m.leases_expired, m.refused, m.bad_frames, m.commits, m.assign_p50_us, m.assign_p99_us
        );
    }
    o
}

pub fn trials_table(ts: &[TrialRecord]) -> String {
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
            let _ = writeln!(
                o,
                "{:>6} hold-out: Sharpe {sr:.3}, annual return {:.2}%, max drawdown {:.2}% over {:.0} days never seen by the search",
                "",
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
        row.push(csv_field(&match &t.origin {
            TrialOrigin::Sampler => "sampler".to_string(),
            TrialOrigin::Enqueued(i) => format!("enqueued {i}"),
            TrialOrigin::WarmStart(s, n) => format!("warm start {s} #{n}"),
            TrialOrigin::Holdout(n) => format!("holdout of #{n}"),
        }));
        row.push(t.generation.map_or(String::new(), |g| g.to_string()));
        row.push(t.started_ms.map_or(String::new(), |x| x.to_string()));
        row.push(t.finished_ms.map_or(String::new(), |x| x.to_string()));
        row.push(csv_field(t.message.as_deref().unwrap_or("")));
        o += &(row.join(",") + "\n");
    }
    o
}
