//! `artifact` and `predict`: the model a trial kept, and its predictions on new data.
use super::target::{target, Target};
use super::Conn;
use anyhow::{bail, Context};
use mlt_protocol::messages::{FromClient, ToClient, TrialRefMsg};
use mlt_protocol::records::ModelArtifact;
use mlt_protocol::spec::EnsembleMethod;
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
            let trials = t.trials(study).await?;
            if !trials.iter().any(|t| t.number.0 == trial) {
                bail!(
                    "study `{study}` has no trial {trial} (its trials are numbered 0 to {})",
                    trials.len().saturating_sub(1)
                );
            }
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
    let day = mlt_eval::data::format_day;
    if json {
        // Dates as dates (the store keeps days since 1970-01-01).
        let mut v = serde_json::to_value(&a)?;
        v["trained"] = serde_json::json!([day(a.trained.0), day(a.trained.1)]);
        return write_out(out.as_deref(), &(serde_json::to_string_pretty(&v)? + "\n"));
    }
    write_out(out.as_deref(), &a.model)?;
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
/// Where `predict`'s model comes from.
pub enum Source {
    /// A study's trial.
    Trial(String, u64),
    /// A registered version: NAME, NAME@k, NAME@production; its refit model when true.
    Registered(String, bool),
}

pub async fn predict(
    source: &Source,
    data: &Path,
    out: Option<PathBuf>,
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let a = match source {
        Source::Trial(study, trial) => fetch(&mut t, study, *trial).await?,
        Source::Registered(r, false) => super::registry::resolve(&mut t, r).await?.0.artifact,
        Source::Registered(r, true) => super::registry::resolve(&mut t, r)
            .await?
            .0
            .refit
            .with_context(|| format!("{r} was registered without --refit"))?,
    };
    let (days, preds) = mlt_eval::predict::predict_file(&a, data).map_err(anyhow::Error::msg)?;
    let day = mlt_eval::data::format_day;
    let what = if a.classify {
        "probability_up"
    } else {
        "forward_return"
    };
    // The label's prediction (what the trial traded) first, then a multi-step head's shorter
    // horizons: `forward_return_1d`, `forward_return_2d`, …
    let mut columns = vec![what.to_string()];
    let k = preds.horizons.len().max(1);
    for d in preds.horizons.iter().take(k - 1) {
        columns.push(format!("{what}_{d}d"));
    }
    let ordered = |p: &[f64]| -> Vec<f64> {
        let mut v = vec![p[k - 1]];
        v.extend(&p[..k - 1]);
        v
    };
    let text = if json {
        let rows: Vec<serde_json::Value> = days
            .iter()
            .zip(&preds.rows)
            .map(|(d, p)| {
                let mut row = serde_json::Map::new();
                row.insert("date".into(), serde_json::json!(day(*d)));
                for (c, v) in columns.iter().zip(ordered(p)) {
                    let v = if v.is_finite() {
                        serde_json::json!(v)
                    } else {
                        serde_json::Value::Null
                    };
                    row.insert(c.clone(), v);
                }
                serde_json::Value::Object(row)
            })
            .collect();
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        let mut s = format!("date,{}\n", columns.join(","));
        for (d, p) in days.iter().zip(&preds.rows) {
            s += &day(*d);
            for v in ordered(p) {
                s.push(',');
                if v.is_finite() {
                    s += &v.to_string();
                }
            }
            s.push('\n');
        }
        s
    };
    write_out(out.as_deref(), &text)
}

/// Points `wf` at bars this machine can read: `data` when given, the study's uploaded files
/// from a stopped scheduler's store (written into `dir`), or as they are (the synthetic
/// market, files relative to the study's folder).
pub fn local_data(
    t: &Target,
    study: &str,
    wf: &mut mlt_protocol::spec::WalkForwardSpec,
    data: &[PathBuf],
    dir: &Path,
) -> anyhow::Result<()> {
    use mlt_protocol::spec::DataSource;
    if !data.is_empty() {
        let adjusted = match &wf.data {
            DataSource::Files { adjusted, .. } | DataSource::Datasets { adjusted, .. } => *adjusted,
            DataSource::Synthetic { .. } => true,
        };
        let paths = data
            .iter()
            .map(|p| p.canonicalize().map(|p| p.display().to_string()))
            .collect::<Result<_, _>>()
            .context("--data")?;
        wf.data = DataSource::Files { paths, adjusted };
    } else if let DataSource::Datasets { files, adjusted } = &wf.data {
        let paths = match t {
            Target::Offline(o) => extract_datasets(&o.store, files, dir)?,
            Target::Online(_) => bail!(
                "`{study}` was run on uploaded files: give them with --data FILE, or read a stopped scheduler's store with --data-dir"
            ),
        };
        wf.data = DataSource::Files {
            paths,
            adjusted: *adjusted,
        };
    }
    Ok(())
}

/// The files of uploaded datasets, written from a stopped scheduler's store into `dir`.
fn extract_datasets(
    store: &mlt_scheduler::store::Store,
    files: &[mlt_protocol::spec::DatasetRef],
    dir: &Path,
) -> anyhow::Result<Vec<String>> {
    use mlt_protocol::messages::DATASET_CHUNK;
    let mut paths = Vec::new();
    for f in files {
        let info = store
            .dataset(&f.sha256)?
            .with_context(|| format!("dataset {} is not in this store", f.to_spec()))?;
        let mut bytes = Vec::with_capacity(info.bytes as usize);
        let chunks = info.bytes.div_ceil(DATASET_CHUNK as u64);
        for i in 0..chunks {
            bytes.extend(
                store
                    .dataset_chunk(&f.sha256, i)?
                    .with_context(|| format!("dataset {}: chunk {i} is missing", f.to_spec()))?,
            );
        }
        let p = dir.join(&f.sha256);
        std::fs::write(&p, bytes)?;
        paths.push(p.display().to_string());
    }
    Ok(paths)
}

/// `mlt-cluster ensemble STUDY --top K --method M`.
pub async fn ensemble(
    study: &str,
    top: usize,
    method: EnsembleMethod,
    data: &[PathBuf],
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    use mlt_protocol::records::{TrialOrigin, TrialState};
    use mlt_protocol::spec::ObjectiveSpec;
    let mut t = target(conn, true).await?;
    let r = t
        .request(FromClient::StudySpec(mlt_protocol::messages::StudyRefMsg {
            study: study.to_string(),
        }))
        .await?;
    let ToClient::StudySpec(sub) = r else {
        bail!("unexpected answer: {r:?}")
    };
    let spec = mlt_spec::parse(&sub.spec_toml, &sub.source)
        .map_err(|e| anyhow::anyhow!("the stored spec of `{study}` does not validate: {e}"))?;
    let ObjectiveSpec::WalkForward(mut wf) = spec.objective.clone() else {
        bail!("`{study}` is not a walk-forward study: there is nothing to ensemble")
    };
    if spec.study.directions.len() != 1 {
        bail!("`{study}` has several objectives: an ensemble of its best trials needs one");
    }
    let trials = t.trials(study).await?;
    let dir = spec.study.directions[0];
    let mut done: Vec<_> = trials
        .into_iter()
        .filter(|t| t.state == TrialState::Complete && !matches!(t.origin, TrialOrigin::Holdout(_)))
        .filter(|t| {
            t.constraints
                .as_ref()
                .is_none_or(|c| c.iter().all(|v| *v <= 0.0))
        })
        .filter(|t| t.values.as_ref().is_some_and(|v| v[0].is_finite()))
        .collect();
    let v = |t: &mlt_protocol::records::TrialRecord| t.values.as_ref().map_or(f64::NAN, |v| v[0]);
    done.sort_by(|a, b| {
        if dir.better(v(a), v(b)) {
            std::cmp::Ordering::Less
        } else if dir.better(v(b), v(a)) {
            std::cmp::Ordering::Greater
        } else {
            a.number.cmp(&b.number)
        }
    });
    done.truncate(top);
    if done.len() < 2 {
        bail!(
            "`{study}` has {} complete trials: an ensemble needs two or more",
            done.len()
        );
    }
    let tmp = tempfile::tempdir()?;
    local_data(&t, study, &mut wf, data, tmp.path())?;
    let members: Vec<(u64, mlt_protocol::records::Params)> = done
        .iter()
        .map(|t| (t.number.0, t.params.clone()))
        .collect();
    let values: Vec<f64> = done.iter().map(v).collect();
    let workdir = sub.workdir.clone();
    let report = tokio::task::spawn_blocking(move || {
        mlt_eval::ensemble_of_trials(&wf, &members, method, workdir.as_deref())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{study}: {e}"))?;
    let objective = spec
        .study
        .objectives
        .first()
        .cloned()
        .unwrap_or_else(|| "sharpe".into());
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["trials"] = serde_json::json!(done.iter().map(|t| t.number.0).collect::<Vec<_>>());
        v["objective"] = serde_json::json!(objective);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let get = |m: &mlt_protocol::records::Metrics, k: &str| m.get(k).copied().unwrap_or(f64::NAN);
    println!(
        "{method} ensemble of the {} best trials of {study} ({objective}), on the study's folds:",
        done.len()
    );
    println!(
        "{:>8} {:>10} {:>10} {:>12} {:>12}",
        "TRIAL", "STORED", "SHARPE", "MAX DD", "HOLD-OUT"
    );
    for (i, t) in done.iter().enumerate() {
        let h = report
            .holdout_members
            .get(i)
            .map_or(f64::NAN, |m| get(m, "sharpe"));
        println!(
            "{:>8} {:>10.4} {:>10.4} {:>12.4} {:>12.4}",
            t.number.0,
            values[i],
            get(&report.members[i], "sharpe"),
            get(&report.members[i], "max_drawdown"),
            h
        );
    }
    println!(
        "{:>8} {:>10} {:>10.4} {:>12.4} {:>12.4}",
        "ensemble",
        "",
        get(&report.metrics, "sharpe"),
        get(&report.metrics, "max_drawdown"),
        report
            .holdout
            .as_ref()
            .map_or(f64::NAN, |m| get(m, "sharpe"))
    );
    if let Some(w) = report.weights.last() {
        let w: Vec<String> = w.iter().map(|x| format!("{x:.3}")).collect();
        // Blending and stacking weigh the members by a least-squares meta-model's slopes.
        let what = if matches!(method, EnsembleMethod::Blending | EnsembleMethod::Stacking) {
            "meta-model slopes"
        } else {
            "weights"
        };
        println!("{what} in the last fold: {}", w.join(" "));
    }
    Ok(())
}
