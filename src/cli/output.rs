//! Human-readable tables and CSV.
use mlt_protocol::records::{ParamValue, StatusReport, StudySummary, TrialRecord};
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
    format!(
        "study {} {}: {} complete, {} pruned, {} failed, {} lost of {}{best}",
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
        if let Some(m) = &t.message {
            if t.state == mlt_protocol::records::TrialState::Failed {
                let first = m.lines().next().unwrap_or_default();
                let _ = writeln!(o, "{:>6} {first}", "");
            }
        }
    }
    o
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
    head.extend([
        "started_ms".to_string(),
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
        row.push(t.started_ms.map_or(String::new(), |x| x.to_string()));
        row.push(t.finished_ms.map_or(String::new(), |x| x.to_string()));
        row.push(csv_field(t.message.as_deref().unwrap_or("")));
        o += &(row.join(",") + "\n");
    }
    o
}
