//! `mlt-cluster rollout`: start a rollout, read where it is and how the arms compare, promote
//! or stop it.
use super::target::{target, target_to_write, Target};
use super::{CliError, Conn, RolloutStart, StickyBy};
use anyhow::bail;
use mlt_protocol::messages::{FromClient, ToClient};
use mlt_protocol::serving::{
    Every, Rollout, RolloutPlan, RolloutReport, ServingReply, ServingRequest, Sticky,
};

async fn ask(t: &mut Target, req: ServingRequest) -> anyhow::Result<ServingReply> {
    match t.request(FromClient::Serving(req)).await? {
        ToClient::Serving(r) => Ok(r),
        _ => bail!("unexpected answer to a serving request"),
    }
}

fn when(ms: u64) -> String {
    let day = mlt_eval::data::format_day((ms / 86_400_000) as i64);
    let s = (ms / 1000) % 86_400;
    format!("{day} {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn describe(r: &Rollout) -> String {
    let p = &r.plan;
    let mut s = format!(
        "rollout of {}: version {} against production version {} — {}",
        p.name,
        p.candidate,
        r.production,
        r.state.as_str()
    );
    if p.shadow {
        s += " (shadow: the candidate is computed on all traffic, production serves it)";
    } else {
        s += &format!(
            ", step {} of {}: {}% of traffic to the candidate (sticky by {})",
            r.step + 1,
            p.steps.len(),
            p.steps.get(r.step).copied().unwrap_or(0.0),
            match p.sticky {
                Sticky::Instrument => "instrument",
                Sticky::Client => "client",
            }
        );
        if let Some(e) = p.every {
            s += &format!(", steps every {e}");
        }
    }
    if let Some(why) = &r.reason {
        s += &format!("\n  why: {why}");
    }
    for (i, arm) in ["production", "candidate "].iter().enumerate() {
        let v = if i == 0 { r.production } else { p.candidate };
        s += &format!(
            "\n  {arm} v{v}: served {}, failed {}, computed {}",
            r.served[i], r.errors[i], r.computed[i]
        );
    }
    s
}

fn print_report(rep: &RolloutReport) {
    println!(
        "  {:<11} {:>7} {:>7} {:>7} {:>7} {:>11} {:>7} {:>7} {:>7}",
        "arm", "version", "served", "failed", "scored", "bp/day", "sharpe", "hit", "ic"
    );
    for (arm, a) in ["production", "candidate"].iter().zip(&rep.arms) {
        let f = |x: f64, d: usize| {
            if x.is_finite() {
                format!("{x:.d$}")
            } else {
                "-".into()
            }
        };
        println!(
            "  {:<11} {:>7} {:>7} {:>7} {:>7} {:>11} {:>7} {:>7} {:>7}",
            arm,
            a.version,
            a.served,
            a.errors,
            a.scored,
            f(a.mean_return * 1e4, 2),
            f(a.sharpe, 2),
            f(a.hit_rate, 3),
            f(a.ic, 3)
        );
    }
    if rep.pairs >= 2 {
        println!(
            "  paired: {} instrument-days, candidate − production {:+.2} bp/day, t = {:.3}, p = {:.4} (two-sided), p(worse) = {:.4}",
            rep.pairs,
            rep.mean_difference * 1e4,
            rep.t,
            rep.p_value,
            rep.p_worse
        );
    }
    println!("  {}", rep.verdict);
}

pub async fn start(s: RolloutStart) -> anyhow::Result<()> {
    let (Some(name), Some(candidate)) = (s.name, s.candidate) else {
        return Err(CliError::Usage(
            "rollout NAME --candidate K (--share P | --steps A,B,… --every N | --shadow)".into(),
        )
        .into());
    };
    let steps = match (s.share, s.steps.is_empty(), s.shadow) {
        (Some(p), _, _) => vec![p],
        (None, false, _) => s.steps,
        (None, true, true) => Vec::new(),
        (None, true, false) => {
            return Err(CliError::Usage(
                "give --share P, --steps A,B,… (with --every) or --shadow".into(),
            )
            .into())
        }
    };
    let every = s
        .every
        .as_deref()
        .map(Every::parse)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--every: {e}")))?;
    let plan = RolloutPlan {
        name,
        candidate,
        steps,
        every,
        shadow: s.shadow,
        sticky: match s.sticky {
            StickyBy::Instrument => Sticky::Instrument,
            StickyBy::Client => Sticky::Client,
        },
        max_error_rate: s.max_error_rate,
        alpha: s.alpha,
        min_pairs: s.min_pairs,
    };
    let mut t = target_to_write(&s.conn).await?;
    let ServingReply::Rollout(r, _) = ask(&mut t, ServingRequest::Start(plan)).await? else {
        bail!("unexpected answer to a rollout");
    };
    if s.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", describe(&r));
    }
    Ok(())
}

pub async fn status(name: &str, json: bool, report: bool, conn: &Conn) -> anyhow::Result<()> {
    let mut t = target(conn, true).await?;
    let ServingReply::Rollout(r, rep) =
        ask(&mut t, ServingRequest::Status(name.to_string())).await?
    else {
        bail!("unexpected answer to a rollout status");
    };
    if json {
        let v = if report {
            serde_json::to_value(&rep)?
        } else {
            serde_json::json!({ "rollout": r, "report": rep })
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{}", describe(&r));
    if let Some(rep) = &rep {
        print_report(rep);
    }
    if !report {
        println!("events:");
        for e in &r.events {
            println!("  {}  {}", when(e.at_ms), e.what);
        }
    }
    Ok(())
}

pub async fn promote(
    name: &str,
    reason: Option<String>,
    force: bool,
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let mut t = target_to_write(conn).await?;
    let req = ServingRequest::Promote {
        name: name.to_string(),
        reason,
        force,
    };
    let ServingReply::Rollout(r, _) = ask(&mut t, req).await? else {
        bail!("unexpected answer to a promotion");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", describe(&r));
    }
    Ok(())
}

pub async fn stop(
    name: &str,
    reason: Option<String>,
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let mut t = target_to_write(conn).await?;
    let req = ServingRequest::Stop {
        name: name.to_string(),
        reason,
    };
    let ServingReply::Rollout(r, _) = ask(&mut t, req).await? else {
        bail!("unexpected answer to a stop");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}", describe(&r));
    }
    Ok(())
}

/// `mlt-cluster predictions NAME`: the log, page by page.
pub async fn predictions(
    name: &str,
    from: u64,
    limit: Option<u64>,
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    use std::io::Write;
    const PAGE: u32 = 20_000;
    let mut t = target(conn, true).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut next = from;
    let mut left = limit.unwrap_or(u64::MAX);
    let mut first = true;
    if json {
        write!(out, "[")?;
    } else {
        writeln!(out, "seq,at_ms,version,arm,served,endpoint,instrument,date,close,features_hash,prediction,error,client")?;
    }
    while left > 0 {
        let req = ServingRequest::Read {
            name: name.to_string(),
            from: next,
            limit: PAGE.min(left.min(u64::from(u32::MAX)) as u32),
        };
        let ServingReply::Records(recs) = ask(&mut t, req).await? else {
            bail!("unexpected answer to a log read");
        };
        if recs.is_empty() {
            break;
        }
        for r in &recs {
            if json {
                write!(
                    out,
                    "{}\n{}",
                    if first { "" } else { "," },
                    serde_json::to_string(r)?
                )?;
            } else {
                let q = |s: &str| {
                    if s.contains([',', '"', '\n']) {
                        format!("\"{}\"", s.replace('"', "\"\""))
                    } else {
                        s.to_string()
                    }
                };
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{:016x},{},{},{}",
                    r.seq,
                    r.at_ms,
                    r.version,
                    r.arm,
                    r.served,
                    r.endpoint,
                    q(&r.instrument),
                    mlt_eval::data::format_day(r.day),
                    r.close,
                    r.features_hash,
                    if r.prediction.is_finite() {
                        r.prediction.to_string()
                    } else {
                        String::new()
                    },
                    q(r.error.as_deref().unwrap_or("")),
                    q(r.client.as_deref().unwrap_or(""))
                )?;
            }
            first = false;
        }
        next = recs.last().map_or(next, |r| r.seq + 1);
        left = left.saturating_sub(recs.len() as u64);
    }
    if json {
        writeln!(out, "\n]")?;
    }
    out.flush()?;
    Ok(())
}
