//! `mlt-cluster trial STUDY N`: one trial whole — its record, hold-out evaluation, tags and
//! notes, and its lineage (the spec's hash, the sampler's seed; the node, build, model seed,
//! data, and each fold's windows, time and training curve, with what the curves say).
use super::target::{target, Target};
use super::{output, Conn};
use anyhow::{bail, Context};
use mlt_eval::curves::{diagnose, diagnose_trial};
use mlt_eval::data::format_day;
use mlt_protocol::lineage::RunRecord;
use mlt_protocol::messages::{FromClient, StudyRefMsg, ToClient, TrialRefMsg};
use mlt_protocol::records::{TrialOrigin, TrialRecord};
use serde_json::json;
use std::fmt::Write;

/// The study-level part of every trial's lineage.
struct StudyLineage {
    spec_sha256: String,
    sampler: String,
    sampler_seed: u64,
}

async fn study_lineage(t: &mut Target, study: &str) -> anyhow::Result<StudyLineage> {
    let ToClient::StudySpec(sub) = t
        .request(FromClient::StudySpec(StudyRefMsg {
            study: study.to_string(),
        }))
        .await?
    else {
        bail!("unexpected answer to a study's spec");
    };
    let spec = mlt_spec::parse(&sub.spec_toml, &sub.source)
        .map_err(|e| anyhow::anyhow!("the stored spec of `{study}` does not validate: {e}"))?;
    Ok(StudyLineage {
        spec_sha256: super::output::spec_sha256(&sub.spec_toml),
        sampler: spec.sampler.kind().to_string(),
        sampler_seed: spec.study.seed,
    })
}

async fn lineage(t: &mut Target, study: &str, n: u64) -> anyhow::Result<Option<RunRecord>> {
    match t
        .request(FromClient::Lineage(TrialRefMsg {
            study: study.to_string(),
            trial: n,
        }))
        .await?
    {
        ToClient::Lineage(r) => Ok(r.map(|b| *b)),
        other => bail!("unexpected answer: {other:?}"),
    }
}

fn days((a, b): (i64, i64)) -> String {
    format!("{} – {}", format_day(a), format_day(b))
}

/// The lineage and curves as text.
fn describe_run(o: &mut String, r: &RunRecord) {
    let _ = writeln!(
        o,
        "ran on: {} ({}, {} cores{}), {} thread{}",
        r.node,
        if r.cpu.is_empty() {
            "CPU unknown"
        } else {
            &r.cpu
        },
        r.cores,
        r.gpu.map_or(String::new(), |g| format!(", GPU {g}")),
        r.threads,
        if r.threads == 1 { "" } else { "s" }
    );
    let _ = writeln!(o, "build: mlt-cluster {} (commit {})", r.version, r.commit);
    if let Some(s) = r.model_seed {
        let _ = writeln!(o, "model seed: {s}");
    }
    let _ = writeln!(o, "time: {:.2} s wall, {:.2} s CPU", r.wall_s, r.cpu_s);
    for d in &r.datasets {
        let _ = writeln!(
            o,
            "data: {} sha256 {} — {} bars, {}",
            d.name,
            d.sha256,
            d.rows,
            days((d.first_day, d.last_day))
        );
    }
    if r.folds.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "{:>4}  {:<25} {:<25} {:>7} {:>7}  curve",
        "FOLD", "TRAIN", "TEST", "WALL s", "CPU s"
    );
    for f in &r.folds {
        let curve = match &f.curve {
            None => "-".to_string(),
            Some(c) => {
                let d = diagnose(c);
                let k = (c.best as usize).clamp(1, c.train.len().max(1)) - 1;
                let at = |v: &[f64]| v.get(k).map_or("-".into(), |x| format!("{x:.4}"));
                format!(
                    "{} {} kept of {} ({:?}); {} train {} valid {}{}{}",
                    c.unit,
                    c.best as u64 * c.every as u64,
                    c.train.len() as u64 * c.every as u64,
                    c.stopped,
                    c.metric,
                    at(&c.train),
                    at(&c.valid),
                    d.gap
                        .map_or(String::new(), |g| format!(", gap {:.0} %", 100.0 * g)),
                    match (d.overfitting, d.converged) {
                        (true, _) => ", OVERFITTING",
                        (_, false) => ", not converged",
                        _ => "",
                    }
                )
            }
        };
        let _ = writeln!(
            o,
            "{:>4}  {:<25} {:<25} {:>7.2} {:>7.2}  {curve}",
            f.fold,
            days(f.train),
            days(f.test),
            f.wall_s,
            f.cpu_s
        );
    }
    if let Some(d) = diagnose_trial(&r.folds) {
        let _ = writeln!(
            o,
            "curves: {} of {} folds overfitting (gap widening past {:.0} %), {} not converged; mean gap {}",
            d.overfitting_folds,
            d.folds,
            100.0 * mlt_eval::curves::GAP,
            d.unconverged_folds,
            d.mean_gap.map_or("-".into(), |g| format!("{:.0} %", 100.0 * g))
        );
    }
}

/// `trial`.
pub async fn trial(study: &str, n: u64, json: bool, conn: &Conn) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let all = t.trials(study).await?;
    let rec: &TrialRecord = all
        .iter()
        .find(|x| x.number.0 == n && !matches!(x.origin, TrialOrigin::Holdout(_)))
        .with_context(|| format!("study `{study}` has no trial {n} (it has {})", all.len()))?;
    let holdout = all
        .iter()
        .rev()
        .find(|x| x.origin == TrialOrigin::Holdout(n));
    let notes = super::annotate::annotations(&mut t, study).await?;
    let sl = study_lineage(&mut t, study).await?;
    let run = lineage(&mut t, study, n).await?;
    let holdout_run = match holdout {
        Some(h) => lineage(&mut t, study, h.number.0).await?,
        None => None,
    };
    if json {
        let tags: serde_json::Map<String, serde_json::Value> = notes
            .tags_of(Some(rec.number))
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        let v = json!({
            "trial": rec,
            "holdout": holdout,
            "tags": tags,
            "notes": notes.notes_of(Some(rec.number)).collect::<Vec<_>>(),
            "lineage": {
                "spec_sha256": sl.spec_sha256,
                "sampler": sl.sampler,
                "sampler_seed": sl.sampler_seed,
                "run": run,
                "holdout_run": holdout_run,
            },
            "curves": run.as_ref().and_then(|r| diagnose_trial(&r.folds)),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut o = String::new();
    let ledger = Vec::new();
    o += &output::trials_table(std::slice::from_ref(rec), &ledger);
    if !rec.metrics.is_empty() {
        let m: Vec<String> = rec
            .metrics
            .iter()
            .map(|(k, v)| format!("{k}={v:.4}"))
            .collect();
        let _ = writeln!(o, "metrics: {}", m.join(" "));
    }
    if let Some(msg) = &rec.message {
        let _ = writeln!(o, "message: {msg}");
    }
    if let Some(h) = holdout {
        let _ = writeln!(
            o,
            "hold-out (trial {}): {}{}",
            h.number,
            h.state,
            h.values
                .as_ref()
                .map_or(String::new(), |v| format!(", values {v:?}"))
        );
    }
    o += &super::annotate::describe(&notes, Some(rec.number));
    let _ = writeln!(
        o,
        "spec: sha256 {}; sampler {} seed {}",
        sl.spec_sha256, sl.sampler, sl.sampler_seed
    );
    match &run {
        Some(r) => describe_run(&mut o, r),
        None => {
            let _ = writeln!(
                o,
                "lineage: none recorded (the trial has not finished, or its node predates lineage)"
            );
        }
    }
    print!("{o}");
    Ok(())
}
