//! `mlt-cluster tag STUDY[/N] key=value …`, `note STUDY[/N] TEXT`: tags and notes on a study
//! or a trial, written by the running scheduler (or into a stopped one's store).
use super::target::{target_to_write, Target};
use super::Conn;
use anyhow::bail;
use mlt_protocol::catalog::{AnnotateMsg, Annotations};
use mlt_protocol::ids::TrialId;
use mlt_protocol::messages::{FromClient, StudyRefMsg, ToClient};
use std::fmt::Write;

/// `STUDY` or `STUDY/N`.
pub fn study_and_trial(s: &str) -> anyhow::Result<(String, Option<u64>)> {
    match s.rsplit_once('/') {
        Some((study, n)) if !study.is_empty() => match n.parse() {
            Ok(n) => Ok((study.to_string(), Some(n))),
            Err(_) => bail!("`{s}`: after the / comes a trial number (STUDY/N)"),
        },
        _ => Ok((s.to_string(), None)),
    }
}

/// `key=value` pairs.
fn pairs(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.to_string())),
            None => bail!("`{kv}`: a tag is key=value"),
        })
        .collect()
}

/// A study's or a trial's tags and notes as text.
pub fn describe(a: &Annotations, trial: Option<TrialId>) -> String {
    let mut o = String::new();
    let tags: Vec<_> = a.tags_of(trial).collect();
    if !tags.is_empty() {
        let _ = writeln!(o, "tags:");
        for (k, v) in tags {
            let _ = writeln!(o, "  {k} = {v}");
        }
    }
    let notes: Vec<_> = a.notes_of(trial).collect();
    if !notes.is_empty() {
        let _ = writeln!(o, "notes:");
        for n in notes {
            let _ = writeln!(
                o,
                "  [{}, {}] {}",
                super::output::utc(n.at_ms),
                n.by,
                n.text
            );
        }
    }
    o
}

async fn annotate(t: &mut Target, m: AnnotateMsg) -> anyhow::Result<Annotations> {
    match t.request(FromClient::Annotate(m)).await? {
        ToClient::Annotations(a) => Ok(a),
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// A study's tags and notes.
pub async fn annotations(t: &mut Target, study: &str) -> anyhow::Result<Annotations> {
    match t
        .request(FromClient::Annotations(StudyRefMsg {
            study: study.to_string(),
        }))
        .await?
    {
        ToClient::Annotations(a) => Ok(a),
        other => bail!("unexpected answer: {other:?}"),
    }
}

fn show(a: &Annotations, trial: Option<u64>, json: bool) -> anyhow::Result<()> {
    let trial = trial.map(TrialId);
    if json {
        let tags: serde_json::Map<String, serde_json::Value> = a
            .tags_of(trial)
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        let notes: Vec<_> = a.notes_of(trial).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"tags": tags, "notes": notes}))?
        );
    } else {
        print!("{}", describe(a, trial));
    }
    Ok(())
}

/// `tag`.
pub async fn tag(
    target: &str,
    items: &[String],
    remove: &[String],
    json: bool,
    conn: &Conn,
) -> anyhow::Result<()> {
    let (study, trial) = study_and_trial(target)?;
    let m = AnnotateMsg {
        study,
        trial,
        set: pairs(items)?,
        remove: remove.to_vec(),
        note: None,
    };
    let mut t = target_to_write(conn).await?;
    let a = annotate(&mut t, m).await?;
    show(&a, trial, json)
}

/// `note`.
pub async fn note(target: &str, text: &str, json: bool, conn: &Conn) -> anyhow::Result<()> {
    let (study, trial) = study_and_trial(target)?;
    let m = AnnotateMsg {
        study,
        trial,
        set: Vec::new(),
        remove: Vec::new(),
        note: Some(text.to_string()),
    };
    let mut t = target_to_write(conn).await?;
    let a = annotate(&mut t, m).await?;
    show(&a, trial, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_a_study_or_one_of_its_trials() {
        assert_eq!(study_and_trial("s").unwrap(), ("s".to_string(), None));
        assert_eq!(
            study_and_trial("s/12").unwrap(),
            ("s".to_string(), Some(12))
        );
        assert!(study_and_trial("s/x").is_err());
        assert_eq!(
            pairs(&["a=b=c".into()]).unwrap(),
            [("a".to_string(), "b=c".to_string())]
        );
        assert!(pairs(&["ab".into()]).is_err());
    }
}
