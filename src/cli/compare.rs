//! `mlt-cluster compare STUDY/N STUDY/M …`: trials side by side, within a study or across
//! studies — parameters, values and metrics, hold-out, selection statistics (PSR, DSR, PBO),
//! lineage and what their training curves say; rows that differ are marked.
use super::target::{target, Target};
use super::Conn;
use anyhow::{bail, Context};
use mlt_eval::curves::diagnose_trial;
use mlt_protocol::messages::{FromClient, StudyRefMsg, ToClient, TrialRefMsg};
use mlt_protocol::records::{TrialOrigin, TrialRecord};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// One trial and what is known about it.
struct Column {
    label: String,
    trial: TrialRecord,
    holdout: Option<TrialRecord>,
    selection: Option<Value>,
    pbo: Option<f64>,
    spec_sha256: String,
    lineage: Option<mlt_protocol::lineage::RunRecord>,
}

async fn column(t: &mut Target, spec: &str) -> anyhow::Result<Column> {
    let (study, n) = super::annotate::study_and_trial(spec)?;
    let n = n.with_context(|| format!("`{spec}`: compare takes STUDY/N"))?;
    let all = t.trials(&study).await?;
    let trial = all
        .iter()
        .find(|x| x.number.0 == n && !matches!(x.origin, TrialOrigin::Holdout(_)))
        .cloned()
        .with_context(|| format!("study `{study}` has no trial {n} (it has {})", all.len()))?;
    let holdout = all
        .iter()
        .rev()
        .find(|x| x.origin == TrialOrigin::Holdout(n))
        .cloned();
    let r = StudyRefMsg {
        study: study.clone(),
    };
    let ToClient::StudySpec(sub) = t.request(FromClient::StudySpec(r.clone())).await? else {
        bail!("unexpected answer to a study's spec");
    };
    let cumulative = super::client::cumulative_sharpe(&sub);
    let selection = super::client::selection_stats(&trial, &all, cumulative);
    let pbo = match t.request(FromClient::Overfitting(r)).await? {
        ToClient::Overfitting(o) => o.map(|o| o.pbo),
        _ => None,
    };
    let lineage = match t
        .request(FromClient::Lineage(TrialRefMsg {
            study: study.clone(),
            trial: n,
        }))
        .await?
    {
        ToClient::Lineage(l) => l.map(|b| *b),
        _ => None,
    };
    Ok(Column {
        label: format!("{study}/{n}"),
        trial,
        holdout,
        selection,
        pbo,
        spec_sha256: super::output::spec_sha256(&sub.spec_toml),
        lineage,
    })
}

fn num(x: Option<f64>) -> String {
    x.filter(|x| x.is_finite())
        .map_or("-".into(), |x| format!("{x:.4}"))
}

/// The rows: field, then one cell per trial.
fn rows(cols: &[Column]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |k: &str, f: &dyn Fn(&Column) -> String| {
        out.push((k.to_string(), cols.iter().map(f).collect()));
    };
    row("state", &|c| c.trial.state.to_string());
    row("value", &|c| {
        num(c.trial.values.as_ref().and_then(|v| v.first()).copied())
    });
    let params: BTreeSet<String> = cols
        .iter()
        .flat_map(|c| c.trial.params.keys().cloned())
        .collect();
    for p in &params {
        row(&format!("param {p}"), &|c| {
            c.trial.params.get(p).map_or("-".into(), |v| v.to_string())
        });
    }
    let metrics: BTreeSet<String> = cols
        .iter()
        .flat_map(|c| c.trial.metrics.keys().cloned())
        .filter(|k| !k.starts_with("holdout_") && !params.contains(k))
        .collect();
    for m in &metrics {
        row(m, &|c| num(c.trial.metrics.get(m).copied()));
    }
    row("holdout sharpe", &|c| {
        num(c
            .holdout
            .as_ref()
            .and_then(|h| h.metrics.get("sharpe"))
            .copied())
    });
    row("psr", &|c| {
        num(c.selection.as_ref().and_then(|s| s["psr_0"].as_f64()))
    });
    row("dsr", &|c| {
        num(c.selection.as_ref().and_then(|s| s["dsr"].as_f64()))
    });
    row("study pbo", &|c| num(c.pbo));
    row("spec sha256", &|c| c.spec_sha256[..16].to_string());
    let lin = |c: &Column, f: &dyn Fn(&mlt_protocol::lineage::RunRecord) -> String| {
        c.lineage.as_ref().map_or("-".into(), f)
    };
    row("node", &|c| lin(c, &|l| l.node.clone()));
    row("commit", &|c| {
        lin(c, &|l| l.commit.chars().take(12).collect())
    });
    row("model seed", &|c| {
        lin(c, &|l| l.model_seed.map_or("-".into(), |s| s.to_string()))
    });
    row("data", &|c| {
        lin(c, &|l| {
            l.datasets
                .iter()
                .map(|d| format!("{}:{}", d.name, &d.sha256[..d.sha256.len().min(12)]))
                .collect::<Vec<_>>()
                .join(" ")
        })
    });
    row("folds", &|c| lin(c, &|l| l.folds.len().to_string()));
    row("wall s", &|c| lin(c, &|l| format!("{:.2}", l.wall_s)));
    let diag = |c: &Column| c.lineage.as_ref().and_then(|l| diagnose_trial(&l.folds));
    row("curve gap", &|c| num(diag(c).and_then(|d| d.mean_gap)));
    row("overfitting", &|c| {
        diag(c).map_or("-".into(), |d| {
            format!("{} of {}", d.overfitting_folds, d.folds)
        })
    });
    row("not converged", &|c| {
        diag(c).map_or("-".into(), |d| {
            format!("{} of {}", d.unconverged_folds, d.folds)
        })
    });
    out
}

/// `compare`.
pub async fn compare(specs: &[String], json: bool, conn: &Conn) -> anyhow::Result<()> {
    if specs.len() < 2 {
        bail!("compare takes two trials or more: STUDY/N STUDY/M …");
    }
    let mut t = target(conn, true).await?;
    let mut cols = Vec::new();
    for s in specs {
        cols.push(column(&mut t, s).await?);
    }
    let rows = rows(&cols);
    if json {
        let trials: Vec<Value> = cols
            .iter()
            .map(|c| {
                json!({"trial": c.label, "record": c.trial, "holdout": c.holdout,
                       "selection": c.selection, "pbo": c.pbo, "spec_sha256": c.spec_sha256,
                       "lineage": c.lineage,
                       "curves": c.lineage.as_ref().and_then(|l| diagnose_trial(&l.folds))})
            })
            .collect();
        let rows: Vec<Value> = rows
            .iter()
            .map(|(k, v)| json!({"field": k, "values": v, "differs": v.iter().any(|x| x != &v[0])}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"trials": trials, "rows": rows}))?
        );
        return Ok(());
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(5);
    let cw = cols
        .iter()
        .map(|c| c.label.len())
        .chain(rows.iter().flat_map(|r| r.1.iter().map(String::len)))
        .max()
        .unwrap_or(10)
        .min(40);
    let head: Vec<String> = cols.iter().map(|c| format!("{:>cw$}", c.label)).collect();
    println!("{:w$}  {}", "", head.join("  "));
    for (k, v) in rows {
        let mark = if v.iter().any(|x| x != &v[0]) {
            " *"
        } else {
            ""
        };
        let cells: Vec<String> = v.iter().map(|x| format!("{x:>cw$}")).collect();
        println!("{k:w$}  {}{mark}", cells.join("  "));
    }
    println!("(* differs)");
    Ok(())
}
