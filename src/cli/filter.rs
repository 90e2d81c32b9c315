//! `trials --where 'EXPR'`: which trials to list. An expression is `FIELD OP VALUE`; several
//! must all hold.
//!
//! Fields: `tag.KEY`, `param.KEY`, `metric.KEY`, `value` (the first objective), `value_N`,
//! `state`, `number`, `attempt`, `origin`; a bare name is a metric if trials report one of that
//! name, else a parameter. Operators: `=` (or `==`), `!=`, `<`, `<=`, `>`, `>=`. Numbers
//! compare as numbers; anything else compares as text (`=` and `!=` only). A trial without
//! the field does not match (except with `!=`).
use mlt_protocol::catalog::Annotations;
use mlt_protocol::records::TrialRecord;

/// What an expression looks at.
#[derive(Clone, Debug, PartialEq)]
enum Field {
    Tag(String),
    Param(String),
    Metric(String),
    Value(usize),
    State,
    Number,
    Attempt,
    Origin,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One parsed `--where`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cond {
    field: Field,
    op: Op,
    value: String,
    text: String,
}

/// A cell as compared: a number or text.
enum Cell {
    Num(f64),
    Text(String),
}

impl Cond {
    /// Parses `FIELD OP VALUE`, resolving a bare name against the trials' metrics and
    /// parameters.
    pub fn parse(text: &str, trials: &[TrialRecord]) -> Result<Cond, String> {
        let bad = |why: &str| format!("--where '{text}': {why}");
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("!=", Op::Ne),
            ("==", Op::Eq),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, sym, op) = ops
            .iter()
            .filter_map(|(s, o)| text.find(s).map(|i| (i, *s, *o)))
            .min_by_key(|(i, s, _)| (*i, std::cmp::Reverse(s.len())))
            .ok_or_else(|| bad("no operator (=, !=, <, <=, >, >=)"))?;
        let name = text[..at].trim();
        let mut value = text[at + sym.len()..].trim().to_string();
        for q in ['\'', '"'] {
            if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
                value = value[1..value.len() - 1].to_string();
            }
        }
        if name.is_empty() {
            return Err(bad("no field before the operator"));
        }
        let field = match name.split_once('.') {
            Some(("tag" | "tags", k)) if !k.is_empty() => Field::Tag(k.into()),
            Some(("param" | "params", k)) if !k.is_empty() => Field::Param(k.into()),
            Some(("metric" | "metrics", k)) if !k.is_empty() => Field::Metric(k.into()),
            _ => match name {
                "value" => Field::Value(0),
                "state" => Field::State,
                "number" => Field::Number,
                "attempt" => Field::Attempt,
                "origin" => Field::Origin,
                n => match n.strip_prefix("value_").and_then(|i| i.parse().ok()) {
                    Some(i) => Field::Value(i),
                    None if trials.iter().any(|t| t.metrics.contains_key(n)) => {
                        Field::Metric(n.into())
                    }
                    None if trials.iter().any(|t| t.params.contains_key(n)) => {
                        Field::Param(n.into())
                    }
                    None => {
                        return Err(bad(&format!(
                            "no trial has a metric or parameter `{n}` (fields: tag.KEY, param.KEY, metric.KEY, value, value_N, state, number, attempt, origin)"
                        )))
                    }
                },
            },
        };
        let numeric = value.parse::<f64>().is_ok();
        if !numeric && !matches!(op, Op::Eq | Op::Ne) {
            return Err(bad(&format!(
                "`{value}` is not a number: text compares with = and != only"
            )));
        }
        Ok(Cond {
            field,
            op,
            value,
            text: text.to_string(),
        })
    }

    fn cell(&self, t: &TrialRecord, notes: &Annotations) -> Option<Cell> {
        let text = |s: String| match s.parse::<f64>() {
            Ok(x) => Cell::Num(x),
            Err(_) => Cell::Text(s),
        };
        Some(match &self.field {
            Field::Tag(k) => text(
                notes
                    .tags_of(Some(t.number))
                    .find(|(key, _)| key == k)?
                    .1
                    .to_string(),
            ),
            Field::Param(k) => text(t.params.get(k)?.to_string()),
            Field::Metric(k) => Cell::Num(*t.metrics.get(k)?),
            Field::Value(i) => Cell::Num(*t.values.as_ref()?.get(*i)?),
            Field::State => Cell::Text(t.state.as_str().into()),
            Field::Number => Cell::Num(t.number.0 as f64),
            Field::Attempt => Cell::Num(f64::from(t.attempt)),
            Field::Origin => Cell::Text(
                match &t.origin {
                    mlt_protocol::records::TrialOrigin::Sampler => "sampler",
                    mlt_protocol::records::TrialOrigin::Enqueued(_) => "enqueued",
                    mlt_protocol::records::TrialOrigin::WarmStart(..) => "warm_start",
                    mlt_protocol::records::TrialOrigin::Holdout(_) => "holdout",
                }
                .into(),
            ),
        })
    }

    /// Whether trial `t` (with its study's tags) matches.
    pub fn holds(&self, t: &TrialRecord, notes: &Annotations) -> bool {
        let Some(cell) = self.cell(t, notes) else {
            return self.op == Op::Ne;
        };
        match (cell, self.value.parse::<f64>()) {
            (Cell::Num(x), Ok(v)) => match self.op {
                Op::Eq => x == v,
                Op::Ne => x != v,
                Op::Lt => x < v,
                Op::Le => x <= v,
                Op::Gt => x > v,
                Op::Ge => x >= v,
            },
            (Cell::Num(x), Err(_)) => (self.op == Op::Eq) == (x.to_string() == self.value),
            (Cell::Text(s), _) => match self.op {
                Op::Eq => s == self.value,
                Op::Ne => s != self.value,
                // A text cell against a number: not comparable, no match.
                _ => false,
            },
        }
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The trials for which every condition holds.
pub fn select<'a>(
    trials: &'a [TrialRecord],
    conds: &[Cond],
    notes: &Annotations,
) -> Vec<&'a TrialRecord> {
    trials
        .iter()
        .filter(|t| conds.iter().all(|c| c.holds(t, notes)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::catalog::TagRecord;
    use mlt_protocol::ids::{StudyId, TrialId};
    use mlt_protocol::records::{ParamValue, TrialOrigin, TrialState};

    fn trial(n: u64, sharpe: f64, model: &str) -> TrialRecord {
        TrialRecord {
            study: StudyId(1),
            number: TrialId(n),
            state: TrialState::Complete,
            attempt: 1,
            values: Some(vec![sharpe]),
            params: [("model".to_string(), ParamValue::Str(model.into()))].into(),
            intermediate: Default::default(),
            node: None,
            slot: None,
            message: None,
            created_ms: 0,
            started_ms: None,
            finished_ms: None,
            origin: TrialOrigin::Sampler,
            generation: None,
            constraints: None,
            metrics: [("sharpe".to_string(), sharpe)].into(),
        }
    }

    fn tag(n: u64, k: &str, v: &str) -> TagRecord {
        TagRecord {
            study: StudyId(1),
            trial: Some(TrialId(n)),
            key: k.into(),
            value: v.into(),
            at_ms: 0,
            by: "me".into(),
        }
    }

    #[test]
    fn conditions_combine_tags_metrics_and_parameters() {
        let ts = vec![
            trial(0, 0.5, "ridge"),
            trial(1, 1.5, "lgbm"),
            trial(2, 2.5, "lgbm"),
        ];
        let notes = Annotations {
            tags: vec![tag(1, "desk", "rates"), tag(2, "desk", "fx")],
            notes: vec![],
        };
        let pick = |ws: &[&str]| -> Vec<u64> {
            let cs: Vec<Cond> = ws.iter().map(|w| Cond::parse(w, &ts).unwrap()).collect();
            select(&ts, &cs, &notes)
                .iter()
                .map(|t| t.number.0)
                .collect()
        };
        assert_eq!(pick(&["sharpe > 1"]), [1, 2]);
        assert_eq!(pick(&["sharpe > 1", "tag.desk = fx"]), [2]);
        assert_eq!(pick(&["tag.desk = 'rates'"]), [1]);
        assert_eq!(pick(&["tag.desk != rates"]), [0, 2]);
        assert_eq!(pick(&["model = ridge"]), [0]);
        assert_eq!(pick(&["param.model=lgbm", "value<=1.5"]), [1]);
        assert_eq!(pick(&["number >= 1"]), [1, 2]);
        assert_eq!(pick(&["state = complete"]), [0, 1, 2]);
    }

    #[test]
    fn a_bad_expression_says_what_is_wrong() {
        let ts = vec![trial(0, 0.5, "ridge")];
        let err = |w: &str| Cond::parse(w, &ts).unwrap_err();
        assert!(
            err("sharpe 1").contains("no operator"),
            "{}",
            err("sharpe 1")
        );
        assert!(err("shrape > 1").contains("`shrape`"));
        assert!(err("model < ridge").contains("not a number"));
        assert!(err("= 3").contains("no field"));
    }
}
