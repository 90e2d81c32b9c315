//! Client commands: submit, status, trials, best, cancel, export, against a running
//! scheduler or a stopped one's store (`target.rs`).
use super::output;
use super::target::{target, Target};
use super::{CliError, Conn, Format};
use anyhow::{bail, Context};
use mlt_protocol::messages::{FromClient, StudyRefMsg, SubmitMsg, ToClient};
use mlt_protocol::records::StudyState;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn study_ref(s: &str) -> StudyRefMsg {
    StudyRefMsg {
        study: s.to_string(),
    }
}

pub async fn submit(
    spec: &Path,
    follow: bool,
    conn: &Conn,
    over: &super::SpecOverrides,
) -> anyhow::Result<()> {
    let text = super::spec_text(spec, over)?;
    let source = spec.display().to_string();
    // Validate here first: the error names the file as the researcher knows it.
    let parsed = mlt_spec::parse(&text, &source).map_err(|e| CliError::Spec(e.to_string()))?;
    let notes = super::check_objective(&parsed, spec, &source)?;
    let files = super::datasets::local_files(&parsed, spec)
        .map_err(|e| CliError::Spec(format!("{source}: {e:#}")))?;
    let workdir = spec
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()));
    let mut t = target(conn, false).await?;
    for f in &files {
        if super::datasets::upload(&mut t, f).await? {
            eprintln!(
                "uploaded {} ({} bytes, sha256 {})",
                f.path.display(),
                f.bytes,
                f.dataset.sha256
            );
        }
    }
    let text = super::datasets::with_refs(&text, &source, &files)?;
    let ToClient::Submitted(s) = t
        .request(FromClient::Submit(SubmitMsg {
            spec_toml: text,
            source,
            workdir,
            notes,
        }))
        .await?
    else {
        bail!("unexpected answer to submit");
    };
    println!("{}", s.name);
    if follow {
        follow_study(&mut t, &s.name).await?;
    }
    Ok(())
}

/// A study's live progress on stderr: trials done of the budget, running, pruned, failed,
/// the best value so far, elapsed time and ETA. Drawn only on a terminal: nothing is written
/// when stderr is a pipe or a file.
pub struct Progress(indicatif::ProgressBar);

impl Progress {
    pub fn new(name: &str) -> Progress {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, ETA {eta})",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(bar)
    }

    pub fn update(&self, s: &mlt_protocol::records::StudySummary) {
        self.0.set_length(s.n_trials);
        self.0.set_position(s.counts.finished());
        let best = s
            .best_value
            .map_or(String::new(), |b| format!(", best {b:.6}"));
        self.0.set_message(format!(
            "{} running, {} pruned, {} failed{best}",
            s.counts.running,
            s.counts.pruned,
            s.counts.failed + s.counts.lost
        ));
    }

    /// Clears the bar: the summary that follows says the same, for good.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Shows a progress bar until the study ends.
pub async fn follow_study(t: &mut Target, name: &str) -> anyhow::Result<()> {
    let bar = Progress::new(name);
    loop {
        let ToClient::Study(s) = t.request(FromClient::Study(study_ref(name))).await? else {
            bail!("unexpected answer")
        };
        bar.update(&s);
        if s.state != StudyState::Running {
            bar.finish();
            eprintln!("{}", output::summary_line(&s));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn status(json: bool, conn: &Conn) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let ToClient::Status(s) = t.request(FromClient::Status).await? else {
        bail!("unexpected answer")
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!(
            "{}",
            output::status_table(&s, matches!(t, Target::Offline(_)))
        );
    }
    Ok(())
}

pub async fn trials(
    study: &str,
    filters: &[String],
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let all = t.trials(study).await?;
    let notes = super::annotate::annotations(&mut t, study).await?;
    let conds = filters
        .iter()
        .map(|f| super::filter::Cond::parse(f, &all))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let picked = super::filter::select(&all, &conds, &notes);
    if json {
        let rows = picked
            .iter()
            .map(|tr| {
                let mut v = serde_json::to_value(tr)?;
                let n = Some(tr.number);
                let tags: serde_json::Map<String, serde_json::Value> = notes
                    .tags_of(n)
                    .map(|(k, v)| (k.to_string(), v.into()))
                    .collect();
                v["tags"] = tags.into();
                v["notes"] = serde_json::to_value(notes.notes_of(n).collect::<Vec<_>>())?;
                Ok(v)
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let ledger = ledger(&mut t, study).await?;
        let ts: Vec<_> = picked.into_iter().cloned().collect();
        print!("{}", output::trials_table(&ts, &ledger));
        if !conds.is_empty() {
            let what: Vec<&str> = conds.iter().map(|c| c.text()).collect();
            println!(
                "{} of {} trials where {}",
                ts.len(),
                all.len(),
                what.join(" and ")
            );
        }
    }
    Ok(())
}

/// The hold-out ledger of a study's windows.
async fn ledger(
    t: &mut Target,
    study: &str,
) -> anyhow::Result<Vec<mlt_protocol::records::LedgerCount>> {
    match t.request(FromClient::Ledger(study_ref(study))).await? {
        ToClient::Ledger(l) => Ok(l),
        other => bail!("unexpected answer: {other:?}"),
    }
}

pub async fn best(study: &str, json: bool, conn: &Conn) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    best_on(&mut t, study, json).await
}

/// `best` against a target: the best trial (or the Pareto front) with, for a walk-forward
/// winner, its selection statistics, PBO, benchmark comparison, warnings and hold-out ledger.
pub async fn best_on(t: &mut Target, study: &str, json: bool) -> anyhow::Result<()> {
    let ToClient::Best(ts) = t.request(FromClient::Best(study_ref(study))).await? else {
        bail!("unexpected answer")
    };
    // Selection statistics beside a walk-forward winner: PSR against 0 and the Deflated
    // Sharpe Ratio with N = every trial the study tried.
    // Whether a pruned trial's last report is its Sharpe over the folds it reached: the first
    // objective is the Sharpe, reported over all out-of-sample returns so far.
    let cumulative_sharpe = match t.request(FromClient::StudySpec(study_ref(study))).await? {
        ToClient::StudySpec(sub) => cumulative_sharpe(&sub),
        _ => false,
    };
    let selection = match ts.as_slice() {
        [best] => selection_stats(best, &t.trials(study).await?, cumulative_sharpe),
        _ => None,
    };
    // The Probability of Backtest Overfitting over every complete trial's OOS returns.
    let overfit = match (
        &selection,
        t.request(FromClient::Overfitting(study_ref(study))).await?,
    ) {
        (Some(_), ToClient::Overfitting(r)) => r,
        _ => None,
    };
    let ledger = ledger(t, study).await?;
    // The winner's trading broken down by fold, year and regime.
    let stability = match ts.as_slice() {
        [one] => match t
            .request(FromClient::Daily(mlt_protocol::messages::TrialRefMsg {
                study: study.to_string(),
                trial: one.number.0,
            }))
            .await?
        {
            ToClient::Daily(d) => d.map(|d| d.stability),
            _ => None,
        },
        _ => None,
    };
    if json {
        let mut v = serde_json::to_value(&ts)?;
        if let (Some(st), Some(first)) = (&stability, v.get_mut(0)) {
            first["stability"] = serde_json::to_value(st)?;
        }
        if let (Some(sel), Some(first)) = (&selection, v.get_mut(0)) {
            first["selection"] = sel.clone();
            if let Some(o) = &overfit {
                first["selection"]["pbo"] = serde_json::to_value(o)?;
            }
        }
        // Each hold-out figure with the ledger of its hold-out and its deflated Sharpe.
        for (x, v) in ts.iter().zip(v.as_array_mut().into_iter().flatten()) {
            if let Some(l) = output::ledger_of(x, &ledger) {
                v["holdout_ledger"] = serde_json::to_value(l)?;
                v["holdout_ledger"]["deflated_sharpe"] =
                    serde_json::json!(output::holdout_dsr(x, l));
            }
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if ts.is_empty() {
        println!("no complete trial yet");
    } else {
        print!("{}", output::trials_table(&ts, &ledger));
        if let Some(s) = &selection {
            println!(
                "selection: PSR(0) {:.4}, deflated Sharpe {:.4} (best of {:.0} trials, Sharpe variance {:.3e} over {} complete and {} pruned), minimum track record {:.0} days",
                s["psr_0"].as_f64().unwrap_or(f64::NAN),
                s["dsr"].as_f64().unwrap_or(f64::NAN),
                s["trials"].as_f64().unwrap_or(f64::NAN),
                s["sharpe_variance"].as_f64().unwrap_or(f64::NAN),
                s["variance_over"]["complete"],
                s["variance_over"]["pruned"],
                s["min_track_record_95"].as_f64().unwrap_or(f64::NAN),
            );
        }
        if let Some(o) = &overfit {
            let top = o.chosen.first().map_or(String::new(), |(n, k)| {
                format!(
                    "; the in-sample best was trial {n} in {:.0}% of splits",
                    100.0 * *k as f64 / o.combinations.max(1) as f64
                )
            });
            println!(
                "overfitting: PBO {:.3} over {} trials x {} days (CSCV, {} blocks, {} splits){top}",
                o.pbo, o.strategies, o.observations, o.blocks, o.combinations
            );
        }
        if let [one] = ts.as_slice() {
            for line in output::benchmark_lines(one) {
                println!("{line}");
            }
            if let Some(st) = &stability {
                for line in output::stability_lines(one, st) {
                    println!("{line}");
                }
            }
        }
    }
    Ok(())
}

/// PSR, DSR and the minimum track record of `best` among `all` (walk-forward metrics needed).
/// DSR's N counts every search trial tried; the variance of their Sharpe ratios takes each
/// complete trial's, and, when `pruned_sharpe` (its reports are the Sharpe over all folds so
/// far), each pruned trial's over the folds it reached: leaving the pruned out would keep only
/// the survivors and understate the spread the best was chosen from.
/// Whether a study's first objective is the Sharpe ratio over all out-of-sample returns so far
/// (a walk-forward study not reporting per fold): a pruned trial's last report is then its
/// Sharpe over the folds it reached, and counts in the deflation.
pub(super) fn cumulative_sharpe(sub: &SubmitMsg) -> bool {
    mlt_spec::parse(&sub.spec_toml, &sub.source).is_ok_and(|spec| {
        matches!(&spec.objective, mlt_protocol::spec::ObjectiveSpec::WalkForward(w)
            if !w.report.per_fold && w.report.objectives.first().is_some_and(|o| o == "sharpe"))
    })
}

pub(super) fn selection_stats(
    best: &mlt_protocol::records::TrialRecord,
    all: &[mlt_protocol::records::TrialRecord],
    pruned_sharpe: bool,
) -> Option<serde_json::Value> {
    use mlt_eval::selection as stats;
    let g = |k: &str| best.metrics.get(k).copied();
    let (sr, t, g3, g4) = (
        g("sharpe_per_period")?,
        g("observations")?,
        g("skew")?,
        g("kurtosis")?,
    );
    use mlt_protocol::records::{TrialOrigin, TrialState};
    let (mut srs, mut from_pruned, mut tried) = (Vec::new(), 0u64, 0u64);
    for x in all {
        if matches!(x.origin, TrialOrigin::Holdout(_)) {
            continue;
        }
        tried += u64::from(x.state.is_finished());
        let sr = match x.state {
            TrialState::Complete => x.metrics.get("sharpe_per_period").copied(),
            // The last report: the annualised Sharpe of the folds the trial reached.
            TrialState::Pruned if pruned_sharpe => x
                .intermediate
                .values()
                .next_back()
                .and_then(|v| v.first())
                .map(|s| s / mlt_eval::metrics::PERIODS.sqrt()),
            _ => None,
        };
        if let Some(v) = sr.filter(|v| v.is_finite()) {
            srs.push(v);
            from_pruned += u64::from(x.state == TrialState::Pruned);
        }
    }
    let tried = tried as f64;
    let n = srs.len() as f64;
    let var = if n > 1.0 {
        let m = srs.iter().sum::<f64>() / n;
        srs.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some(serde_json::json!({
        "psr_0": stats::psr(sr, 0.0, t, g3, g4),
        "dsr": stats::dsr(sr, var, tried.max(1.0), t, g3, g4),
        "sr0": stats::deflated_benchmark(var, tried.max(1.0)),
        "trials": tried,
        "sharpe_variance": var,
        "variance_over": { "complete": srs.len() as u64 - from_pruned, "pruned": from_pruned },
        "min_track_record_95": stats::min_track_record(sr, 0.0, g3, g4, 0.95),
    }))
}

/// `backup --out FILE`: the running scheduler writes the copy (it must run on this machine:
/// the path is its), or the stopped store is copied here.
pub async fn backup(out: &Path, json: bool, conn: &Conn) -> anyhow::Result<()> {
    let out = std::path::absolute(out).with_context(|| format!("--out {}", out.display()))?;
    if out.exists() {
        bail!("{} exists: a backup goes to a new file", out.display());
    }
    let mut t = target(conn, true).await?;
    let ToClient::Backup(r) = t
        .request(FromClient::Backup(out.display().to_string()))
        .await?
    else {
        bail!("unexpected answer")
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "backed up {} rows ({} bytes) to {}",
            r.rows, r.bytes, r.path
        );
    }
    Ok(())
}

pub async fn cancel(study: &str, json: bool, conn: &Conn) -> anyhow::Result<()> {
    let mut t = target(conn, false).await?;
    let ToClient::Cancelled(s) = t.request(FromClient::Cancel(study_ref(study))).await? else {
        bail!("unexpected answer")
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!(
            "cancelled {} ({} trials finished)",
            s.name,
            s.counts.finished()
        );
    }
    Ok(())
}

pub async fn export(
    study: &str,
    format: Format,
    out: Option<PathBuf>,
    conn: &Conn,
) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    if matches!(format, Format::Parquet) && out.is_none() {
        bail!("--format parquet writes a binary file: name it with --out FILE");
    }
    if let (Format::OptunaJournal, Some(p)) = (format, &out) {
        // Ids in a journal are positions: a second study appended would take the first's.
        if std::fs::metadata(p).is_ok_and(|m| m.len() > 0) {
            bail!(
                "{} exists: an Optuna journal written here holds one study, the file's first; remove it or choose another --out",
                p.display()
            );
        }
    }
    let ts = t.trials(study).await?;
    let bytes = match format {
        Format::Mlflow => bail!("--format mlflow pushes to a tracking server (export_mlflow)"),
        Format::Json => (serde_json::to_string_pretty(&ts)? + "\n").into_bytes(),
        Format::Csv => output::trials_csv(&ts).into_bytes(),
        Format::Parquet => {
            super::parquet_out::trials_parquet(&ts).context("writing the trials as Parquet")?
        }
        Format::OptunaJournal => {
            let ToClient::Study(summary) = t.request(FromClient::Study(study_ref(study))).await?
            else {
                bail!("unexpected answer to a study's summary");
            };
            let ToClient::StudySpec(sub) =
                t.request(FromClient::StudySpec(study_ref(study))).await?
            else {
                bail!("unexpected answer to a study's spec");
            };
            let spec = mlt_spec::parse(&sub.spec_toml, &sub.source).map_err(|e| {
                anyhow::anyhow!(
                    "the stored spec of `{}` does not validate: {e}",
                    summary.name
                )
            })?;
            let notes = super::annotate::annotations(&mut t, study).await?;
            super::optuna::journal(&summary.name, &spec, &ts, &notes).into_bytes()
        }
    };
    match out {
        Some(p) => write_whole(&p, &bytes)?,
        None => {
            use std::io::Write;
            let mut o = std::io::stdout().lock();
            // A closed pipe (`| head`) ends the export quietly.
            if let Err(e) = o.write_all(&bytes).and_then(|()| o.flush()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
    }
    Ok(())
}

/// `export --format mlflow`: gathers the study (trials, spec, tags and notes, lineage, models,
/// registered versions) and pushes it to the tracking server.
pub async fn export_mlflow(
    study: &str,
    uri: &str,
    experiment: Option<&str>,
    with_models: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    use mlt_protocol::messages::TrialRefMsg;
    use mlt_protocol::models::{RegistryReply, RegistryRequest};
    let mut t = target(conn, true).await?;
    let trials = t.trials(study).await?;
    let ToClient::Study(summary) = t.request(FromClient::Study(study_ref(study))).await? else {
        bail!("unexpected answer to a study's summary");
    };
    let ToClient::StudySpec(sub) = t.request(FromClient::StudySpec(study_ref(study))).await? else {
        bail!("unexpected answer to a study's spec");
    };
    let spec = mlt_spec::parse(&sub.spec_toml, &sub.source).map_err(|e| {
        anyhow::anyhow!(
            "the stored spec of `{}` does not validate: {e}",
            summary.name
        )
    })?;
    let notes = super::annotate::annotations(&mut t, study).await?;
    let mut runs = std::collections::BTreeMap::new();
    let mut models = std::collections::BTreeMap::new();
    for tr in trials.iter().filter(|x| x.state.is_finished()) {
        let n = tr.number.0;
        let r = TrialRefMsg {
            study: study.to_string(),
            trial: n,
        };
        if let ToClient::Lineage(Some(l)) = t.request(FromClient::Lineage(r.clone())).await? {
            runs.insert(n, *l);
        }
        if with_models && tr.state == mlt_protocol::records::TrialState::Complete {
            if let ToClient::Artifact(Some(a)) = t.request(FromClient::Artifact(r)).await? {
                models.insert(n, *a);
            }
        }
    }
    let mut versions = Vec::new();
    if let ToClient::Registry(RegistryReply::List(entries)) = t
        .request(FromClient::Registry(RegistryRequest::List))
        .await?
    {
        for e in entries {
            for k in 1..=e.stages.len() as u32 {
                let r = super::registry::resolve(&mut t, &format!("{}@{k}", e.name)).await?;
                if r.0.study_id == summary.id {
                    versions.push(r);
                }
            }
        }
    }
    let s = super::mlflow::Study {
        name: &summary.name,
        spec: &spec,
        spec_toml: &sub.spec_toml,
        trials: &trials,
        notes: &notes,
        runs: &runs,
        models: &models,
        versions: &versions,
    };
    let uri = uri.to_string();
    let experiment = experiment.map(str::to_string);
    let report =
        tokio::task::block_in_place(|| super::mlflow::export(&uri, experiment.as_deref(), &s))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Writes `bytes` to `p` whole or not at all: a temporary file beside it, renamed over it.
fn write_whole(p: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing {}", p.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", p.display()))?;
    tmp.persist(p)
        .with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}
