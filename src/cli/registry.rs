//! `mlt-cluster registry …`: named models with immutable versions, stages, promotion gates,
//! rollback and an audit log, kept in the scheduler's store (docs/tracking.md).
use super::target::{target, target_to_write, Target};
use super::Conn;
use anyhow::{bail, Context};
use mlt_protocol::messages::{FromClient, StudyRefMsg, ToClient, TrialRefMsg};
use mlt_protocol::models::{
    Gate, HoldoutResult, ModelEntry, ModelVersion, RegistryReply, RegistryRequest, Selection, Stage,
};
use mlt_protocol::records::{TrialOrigin, TrialState};
use std::fmt::Write;

async fn ask(t: &mut Target, req: RegistryRequest) -> anyhow::Result<RegistryReply> {
    match t.request(FromClient::Registry(req)).await? {
        ToClient::Registry(r) => Ok(r),
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// `NAME`, `NAME@k`, `NAME@production` (or `@prod`, `@latest`).
pub fn parse_ref(s: &str) -> anyhow::Result<(String, Option<u32>, bool)> {
    match s.split_once('@') {
        None => Ok((s.to_string(), None, false)),
        Some((n, "production" | "prod")) => Ok((n.to_string(), None, true)),
        Some((n, "latest")) => Ok((n.to_string(), None, false)),
        Some((n, k)) => match k.parse::<u32>() {
            Ok(k) if k >= 1 => Ok((n.to_string(), Some(k), false)),
            _ => bail!("`{s}`: after @ comes a version number, `production` or `latest`"),
        },
    }
}

/// The version a reference names, with its name's entry.
pub async fn resolve(t: &mut Target, r: &str) -> anyhow::Result<(ModelVersion, ModelEntry)> {
    let (name, version, production) = parse_ref(r)?;
    match ask(
        t,
        RegistryRequest::Show {
            name,
            version,
            production,
        },
    )
    .await?
    {
        RegistryReply::Version(v, e) => Ok((*v, e)),
        other => bail!("unexpected answer: {other:?}"),
    }
}

fn gates(require: &[String]) -> anyhow::Result<Option<Vec<Gate>>> {
    if require.is_empty() {
        return Ok(None);
    }
    if require.iter().any(|r| r == "none") {
        return Ok(Some(Vec::new()));
    }
    Ok(Some(
        require
            .iter()
            .map(|g| Gate::parse(g).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
    ))
}

fn stages_line(e: &ModelEntry) -> String {
    e.stages
        .iter()
        .enumerate()
        .map(|(i, s)| format!("v{} {s}", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_entry(e: &ModelEntry, k: Option<u32>, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(e)?;
        v["version"] = serde_json::json!(k);
        v["production"] = serde_json::json!(e.production());
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if let Some(k) = k {
        println!("{} version {k}: {}", e.name, e.stages[k as usize - 1]);
    }
    println!("versions: {}", stages_line(e));
    let g: Vec<String> = e.gates.iter().map(ToString::to_string).collect();
    println!(
        "gates to production: {}",
        if g.is_empty() {
            "none".into()
        } else {
            g.join(", ")
        }
    );
    Ok(())
}

/// `registry register STUDY N --name NAME`: an immutable copy of the trial's model with what
/// produced it and how it scored.
/// What `register --refit` needs: whether to refit, and the bars to refit on (else the
/// study's own).
pub struct Refit {
    pub refit: bool,
    pub data: Vec<std::path::PathBuf>,
}

pub async fn register(
    study: &str,
    n: u64,
    name: &str,
    require: &[String],
    refit: &Refit,
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    mlt_scheduler::models::check_name(name).map_err(anyhow::Error::msg)?;
    let gates = gates(require)?;
    let mut t = target_to_write(conn).await?;
    let all = t.trials(study).await?;
    let rec = all
        .iter()
        .find(|x| x.number.0 == n && !matches!(x.origin, TrialOrigin::Holdout(_)))
        .with_context(|| format!("study `{study}` has no trial {n} (it has {})", all.len()))?;
    if rec.state != TrialState::Complete {
        bail!(
            "trial {n} of `{study}` is {}: only a complete trial's model can be registered",
            rec.state
        );
    }
    let artifact = match t
        .request(FromClient::Artifact(TrialRefMsg {
            study: study.to_string(),
            trial: n,
        }))
        .await?
    {
        ToClient::Artifact(Some(a)) => *a,
        ToClient::Artifact(None) => {
            bail!("trial {n} of `{study}` kept no model (only complete walk-forward trials do)")
        }
        other => bail!("unexpected answer: {other:?}"),
    };
    let ToClient::StudySpec(sub) = t
        .request(FromClient::StudySpec(StudyRefMsg {
            study: study.to_string(),
        }))
        .await?
    else {
        bail!("unexpected answer to a study's spec");
    };
    let ToClient::Study(summary) = t
        .request(FromClient::Study(StudyRefMsg {
            study: study.to_string(),
        }))
        .await?
    else {
        bail!("unexpected answer to a study's summary");
    };
    let cumulative = super::client::cumulative_sharpe(&sub);
    let stats = super::client::selection_stats(rec, &all, cumulative);
    let pbo = match t
        .request(FromClient::Overfitting(StudyRefMsg {
            study: study.to_string(),
        }))
        .await?
    {
        ToClient::Overfitting(r) => r.map(|o| o.pbo),
        _ => None,
    };
    let stat = |k: &str| stats.as_ref().and_then(|s| s[k].as_f64());
    let holdout = all
        .iter()
        .rev()
        .find(|x| x.origin == TrialOrigin::Holdout(n))
        .map(|h| HoldoutResult {
            trial: h.number.0,
            complete: h.state == TrialState::Complete,
            values: h.values.clone(),
            metrics: h.metrics.clone(),
        });
    let lineage = match t
        .request(FromClient::Lineage(TrialRefMsg {
            study: study.to_string(),
            trial: n,
        }))
        .await?
    {
        ToClient::Lineage(r) => r.map(|b| *b),
        _ => None,
    };
    let refit_model = if refit.refit {
        let spec = mlt_spec::parse(&sub.spec_toml, &sub.source)
            .map_err(|e| anyhow::anyhow!("the stored spec of `{study}` does not validate: {e}"))?;
        let mlt_protocol::spec::ObjectiveSpec::WalkForward(mut wf) = spec.objective else {
            bail!("--refit: `{study}` is not a walk-forward study");
        };
        let tmp = tempfile::tempdir()?;
        super::models::local_data(&t, study, &mut wf, &refit.data, tmp.path())?;
        let params = rec.params.clone();
        let workdir = sub.workdir.clone();
        let m = tokio::task::spawn_blocking(move || {
            struct Here;
            impl mlt_eval::TrialContext for Here {
                fn report(&mut self, _: u64, _: Vec<f64>) -> mlt_protocol::messages::Verdict {
                    mlt_protocol::messages::Verdict::Continue
                }
                fn stopped(&self) -> bool {
                    false
                }
                fn threads(&self) -> u32 {
                    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
                }
            }
            let trial = mlt_eval::Trial {
                params: &params,
                workdir: workdir.as_deref(),
                seed: n,
                holdout: false,
            };
            mlt_eval::refit(&wf, &trial, &mut Here)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("--refit: {e}"))?;
        Some(m)
    } else {
        None
    };
    let v = ModelVersion {
        name: name.to_string(),
        version: 0,
        created_ms: 0,
        created_by: String::new(),
        study: summary.name.clone(),
        study_id: summary.id,
        trial: n,
        spec_sha256: super::output::spec_sha256(&sub.spec_toml),
        spec_toml: sub.spec_toml,
        params: rec.params.clone(),
        values: rec.values.clone(),
        metrics: rec.metrics.clone(),
        holdout,
        selection: Selection {
            psr: stat("psr_0"),
            dsr: stat("dsr"),
            pbo,
            trials: stat("trials").unwrap_or(0.0) as u64,
        },
        artifact,
        lineage,
        refit: refit_model,
    };
    match ask(&mut t, RegistryRequest::Register(Box::new(v), gates)).await? {
        RegistryReply::Entry(e, k) => {
            if !json {
                println!(
                    "registered {study} trial {n} as {name} version {}",
                    k.unwrap_or(0)
                );
            }
            print_entry(&e, k, json)
        }
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// `registry stage NAME k STAGE`.
pub async fn stage(
    name: &str,
    version: u32,
    to: &str,
    reason: Option<String>,
    force: bool,
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let to = Stage::parse(to).map_err(anyhow::Error::msg)?;
    let mut t = target_to_write(conn).await?;
    let r = ask(
        &mut t,
        RegistryRequest::Stage {
            name: name.to_string(),
            version,
            to,
            reason,
            force,
        },
    )
    .await?;
    let RegistryReply::Entry(e, k) = r else {
        bail!("unexpected answer: {r:?}");
    };
    print_entry(&e, k, json)
}

/// `registry rollback NAME`.
pub async fn rollback(
    name: &str,
    reason: Option<String>,
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let mut t = target_to_write(conn).await?;
    let r = ask(
        &mut t,
        RegistryRequest::Rollback {
            name: name.to_string(),
            reason,
        },
    )
    .await?;
    let RegistryReply::Entry(e, k) = r else {
        bail!("unexpected answer: {r:?}");
    };
    if !json {
        println!("{name}: version {} is production again", k.unwrap_or(0));
    }
    print_entry(&e, k, json)
}

/// `registry gates NAME --require …`.
pub async fn set_gates(
    name: &str,
    require: &[String],
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let Some(gates) = gates(require)? else {
        bail!("give the gates with --require (repeatable), or --require none for none");
    };
    let mut t = target_to_write(conn).await?;
    let r = ask(
        &mut t,
        RegistryRequest::Gates {
            name: name.to_string(),
            gates,
        },
    )
    .await?;
    let RegistryReply::Entry(e, k) = r else {
        bail!("unexpected answer: {r:?}");
    };
    print_entry(&e, k, json)
}

/// `registry list`.
pub async fn list(json: bool, conn: &Conn) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let RegistryReply::List(all) = ask(&mut t, RegistryRequest::List).await? else {
        bail!("unexpected answer");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no registered models");
    }
    for e in &all {
        println!(
            "{}: {} version{}, production {}; {}",
            e.name,
            e.stages.len(),
            if e.stages.len() == 1 { "" } else { "s" },
            e.production().map_or("none".into(), |k| format!("v{k}")),
            stages_line(e)
        );
    }
    Ok(())
}

fn describe(v: &ModelVersion, e: &ModelEntry) -> String {
    let mut o = String::new();
    let stage = e.stages[v.version as usize - 1];
    let _ = writeln!(
        o,
        "{} version {} ({stage}), registered {} by {}",
        v.name,
        v.version,
        super::output::utc(v.created_ms),
        v.created_by
    );
    let _ = writeln!(
        o,
        "from: study {} trial {} (spec sha256 {})",
        v.study, v.trial, v.spec_sha256
    );
    let params: Vec<String> = v.params.iter().map(|(k, x)| format!("{k}={x}")).collect();
    let _ = writeln!(o, "params: {}", params.join(" "));
    let _ = writeln!(
        o,
        "model: {} on {} features, {} of {}d, trained {} – {}{}",
        v.artifact.format,
        v.artifact.features.len(),
        if v.artifact.classify {
            "P(up)"
        } else {
            "return"
        },
        v.artifact.horizon,
        mlt_eval::data::format_day(v.artifact.trained.0),
        mlt_eval::data::format_day(v.artifact.trained.1),
        v.artifact
            .rounds
            .map_or(String::new(), |r| format!(", {r} rounds/epochs"))
    );
    let f = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.4}"));
    let _ = writeln!(
        o,
        "selection: psr {} dsr {} pbo {} over {} trials",
        f(v.selection.psr),
        f(v.selection.dsr),
        f(v.selection.pbo),
        v.selection.trials
    );
    for k in ["sharpe", "annual_return", "max_drawdown"] {
        if let Some(x) = v.metrics.get(k) {
            let _ = write!(o, "{k} {x:.4}  ");
        }
    }
    o.push('\n');
    match &v.holdout {
        Some(h) => {
            let _ = writeln!(
                o,
                "hold-out: {} (trial {}), sharpe {}",
                if h.complete {
                    "complete"
                } else {
                    "not complete"
                },
                h.trial,
                f(h.metrics.get("sharpe").copied())
            );
        }
        None => {
            let _ = writeln!(o, "hold-out: none");
        }
    }
    let failed: Vec<String> = e.gates.iter().filter_map(|g| g.fails(v)).collect();
    let _ = writeln!(
        o,
        "gates to production: {}",
        if e.gates.is_empty() {
            "none".to_string()
        } else if failed.is_empty() {
            "all pass".to_string()
        } else {
            format!("failing — {}", failed.join("; "))
        }
    );
    if let Some(r) = &v.refit {
        let _ = writeln!(
            o,
            "refit: trained {} – {} on the latest window{} (predict --model … --refit)",
            mlt_eval::data::format_day(r.trained.0),
            mlt_eval::data::format_day(r.trained.1),
            r.rounds
                .map_or(String::new(), |k| format!(", {k} rounds/epochs"))
        );
    }
    if let Some(l) = &v.lineage {
        let _ = writeln!(
            o,
            "lineage: node {}, mlt-cluster {} (commit {}), model seed {}",
            l.node,
            l.version,
            l.commit,
            l.model_seed.map_or("-".into(), |s| s.to_string())
        );
    }
    o
}

/// `registry show NAME [k]`.
pub async fn show(r: &str, version: Option<u32>, json: bool, conn: &Conn) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let r = match version {
        Some(k) => format!("{}@{k}", parse_ref(r)?.0),
        None => r.to_string(),
    };
    let (v, e) = resolve(&mut t, &r).await?;
    if json {
        let mut j = serde_json::to_value(&v)?;
        j["stage"] = serde_json::json!(e.stages[v.version as usize - 1]);
        j["gates"] = serde_json::to_value(&e.gates)?;
        j["failed_gates"] = serde_json::json!(e
            .gates
            .iter()
            .filter_map(|g| g.fails(&v))
            .collect::<Vec<_>>());
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        print!("{}", describe(&v, &e));
    }
    Ok(())
}

/// `registry compare NAME k1 k2`.
pub async fn compare(name: &str, a: u32, b: u32, json: bool, conn: &Conn) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let (va, e) = resolve(&mut t, &format!("{name}@{a}")).await?;
    let (vb, _) = resolve(&mut t, &format!("{name}@{b}")).await?;
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let s = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.4}"));
    rows.push((
        "stage".into(),
        e.stages[a as usize - 1].to_string(),
        e.stages[b as usize - 1].to_string(),
    ));
    rows.push((
        "study/trial".into(),
        format!("{}/{}", va.study, va.trial),
        format!("{}/{}", vb.study, vb.trial),
    ));
    let keys: std::collections::BTreeSet<&String> =
        va.params.keys().chain(vb.params.keys()).collect();
    for k in keys {
        let p = |v: &ModelVersion| v.params.get(k).map_or("-".into(), |x| x.to_string());
        rows.push((format!("param {k}"), p(&va), p(&vb)));
    }
    for (k, f) in [
        ("psr", (va.selection.psr, vb.selection.psr)),
        ("dsr", (va.selection.dsr, vb.selection.dsr)),
        ("pbo", (va.selection.pbo, vb.selection.pbo)),
    ] {
        rows.push((k.into(), s(f.0), s(f.1)));
    }
    let metrics: std::collections::BTreeSet<&String> =
        va.metrics.keys().chain(vb.metrics.keys()).collect();
    for m in metrics {
        rows.push((
            m.clone(),
            s(va.metrics.get(m).copied()),
            s(vb.metrics.get(m).copied()),
        ));
    }
    let hs = |v: &ModelVersion| {
        s(v.holdout
            .as_ref()
            .and_then(|h| h.metrics.get("sharpe").copied()))
    };
    rows.push(("holdout sharpe".into(), hs(&va), hs(&vb)));
    rows.push((
        "spec sha256".into(),
        va.spec_sha256[..12].to_string(),
        vb.spec_sha256[..12].to_string(),
    ));
    let lin = |v: &ModelVersion| {
        v.lineage.as_ref().map_or("-".into(), |l| {
            format!("{} {}", l.node, &l.commit[..l.commit.len().min(12)])
        })
    };
    rows.push(("node, commit".into(), lin(&va), lin(&vb)));
    if json {
        let r: Vec<_> = rows
            .iter()
            .map(|(k, x, y)| serde_json::json!({"field": k, "a": x, "b": y, "differs": x != y}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"name": name, "a": a, "b": b, "rows": r})
            )?
        );
        return Ok(());
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(5);
    println!(
        "{:w$}  {:>16}  {:>16}",
        "",
        format!("v{a}"),
        format!("v{b}")
    );
    for (k, x, y) in rows {
        let mark = if x != y { " *" } else { "" };
        println!("{k:w$}  {x:>16}  {y:>16}{mark}");
    }
    Ok(())
}

/// `registry history NAME`.
pub async fn history(name: &str, json: bool, conn: &Conn) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let RegistryReply::History(log) =
        ask(&mut t, RegistryRequest::History(name.to_string())).await?
    else {
        bail!("unexpected answer");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&log)?);
        return Ok(());
    }
    for a in &log {
        let moved = match (a.from, a.to) {
            (Some(f), Some(t)) => format!(" {f} → {t}"),
            (None, Some(t)) => format!(" → {t}"),
            _ => String::new(),
        };
        println!(
            "{}  {}  {}{}{}{}{}{}",
            super::output::utc(a.at_ms),
            a.by,
            a.action,
            a.version.map_or(String::new(), |v| format!(" v{v}")),
            moved,
            if a.forced { " FORCED" } else { "" },
            a.reason
                .as_ref()
                .map_or(String::new(), |r| format!(" — {r}")),
            if a.detail.is_empty() {
                String::new()
            } else {
                format!(" [{}]", a.detail.join("; "))
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_a_version_the_production_one_or_the_latest() {
        assert_eq!(parse_ref("m").unwrap(), ("m".into(), None, false));
        assert_eq!(parse_ref("m@3").unwrap(), ("m".into(), Some(3), false));
        assert_eq!(parse_ref("m@production").unwrap(), ("m".into(), None, true));
        assert!(parse_ref("m@0").is_err());
        assert!(parse_ref("m@x").is_err());
    }
}
