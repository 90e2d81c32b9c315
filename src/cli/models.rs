//! `artifact` and `predict`: the model a trial kept, and its predictions on new data.
use super::client::{target, Target};
use super::Conn;
use anyhow::{bail, Context};
use mlt_protocol::messages::{FromClient, ToClient, TrialRefMsg};
use mlt_protocol::records::ModelArtifact;
use std::path::{Path, PathBuf};

async fn fetch(t: &mut Target, study: &str, trial: u64) -> anyhow::Result<ModelArtifact> {
    let r = t
        .request(FromClient::Artifact(TrialRefMsg {
            study: study.to_string(),
            trial,
        }))
        .await?;
    match r {
        ToClient::Artifact(Some(a)) => Ok(*a),
        ToClient::Artifact(None) => {
            bail!("trial {trial} of `{study}` kept no model (only complete walk-forward trials do)")
        }
        other => bail!("unexpected answer: {other:?}"),
    }
}

fn write_out(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// `mlt-cluster artifact STUDY TRIAL`.
pub async fn artifact(
    study: &str,
    trial: u64,
    out: Option<PathBuf>,
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let a = fetch(&mut t, study, trial).await?;
    if json {
        return write_out(out.as_deref(), &(serde_json::to_string_pretty(&a)? + "\n"));
    }
    write_out(out.as_deref(), &a.model)?;
    let day = mlt_node::eval::data::format_day;
    eprintln!(
        "{} model of trial {trial}: {} features, trained {} to {}{}",
        a.format,
        a.features.len(),
        day(a.trained.0),
        day(a.trained.1),
        a.rounds.map_or(String::new(), |r| format!(", {r} rounds")),
    );
    let mut imp = a.importance.clone();
    imp.sort_by(|x, y| y.gain.total_cmp(&x.gain));
    for i in imp.iter().take(10) {
        eprintln!(
            "  {:<20} gain {:>12.4} splits {:>6.0} mean |SHAP| {:.6}",
            i.feature, i.gain, i.split, i.shap
        );
    }
    Ok(())
}

/// `mlt-cluster predict --study S --trial N --data FILE`.
pub async fn predict(
    study: &str,
    trial: u64,
    data: &Path,
    out: Option<PathBuf>,
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let a = fetch(&mut t, study, trial).await?;
    let (days, preds) =
        mlt_node::eval::predict::predict_file(&a, data).map_err(anyhow::Error::msg)?;
    let day = mlt_node::eval::data::format_day;
    let what = if a.classify {
        "probability_up"
    } else {
        "forward_return"
    };
    let text = if json {
        let rows: Vec<serde_json::Value> = days
            .iter()
            .zip(&preds)
            .map(|(d, p)| {
                serde_json::json!({
                    "date": day(*d),
                    what: if p.is_finite() { serde_json::json!(p) } else { serde_json::Value::Null },
                })
            })
            .collect();
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        let mut s = format!("date,{what}\n");
        for (d, p) in days.iter().zip(&preds) {
            if p.is_finite() {
                s += &format!("{},{p}\n", day(*d));
            } else {
                s += &format!("{},\n", day(*d));
            }
        }
        s
    };
    write_out(out.as_deref(), &text)
}
