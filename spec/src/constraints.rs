//! `[[constraint]]`: bounds on reported metrics.
use crate::keys::Keys;
use crate::raw::{RawTable, S};
use crate::validate::Ctx;
use mlt_protocol::spec::*;
use std::collections::BTreeSet;

/// `[[constraint]]`: `metric` and `min`, `max` or both.
pub(crate) fn constraints(
    cx: &mut Ctx,
    tables: &[S<RawTable>],
    objective: Option<&ObjectiveSpec>,
    space: &SearchSpace,
) -> Vec<ConstraintSpec> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let key = |k: &str| format!("constraint[{i}].{k}");
        let mut k = Keys {
            section: "constraint",
            kind: "constraint".into(),
            table: t.get_ref(),
            asked: BTreeSet::new(),
        };
        let metric = match k.get("metric").map(|v| (v.get_ref(), v.span())) {
            Some((toml::Value::String(s), _)) if !s.trim().is_empty() => s.trim().to_string(),
            Some((_, span)) => {
                cx.err(span, key("metric"), "must name a metric");
                continue;
            }
            None => {
                cx.err(t.span(), key("metric"), "a constraint needs `metric`");
                continue;
            }
        };
        let min = k.opt_float(cx, "min", f64::MIN, f64::MAX);
        let max = k.opt_float(cx, "max", f64::MIN, f64::MAX);
        match (min, max) {
            (None, None) => cx.err(
                t.span(),
                key("min"),
                "a constraint needs `min`, `max` or both",
            ),
            (Some(lo), Some(hi)) if lo > hi => cx.err(
                t.span(),
                key("min"),
                format!("min ({lo}) is greater than max ({hi})"),
            ),
            _ => {}
        }
        if let Some(ObjectiveSpec::Benchmark(_)) = objective {
            let known = metric == "value" || space.params.iter().any(|p| p.name == metric);
            if !known {
                cx.err(
                    t.span(),
                    key("metric"),
                    format!(
                        "a benchmark objective reports `value` and its parameters, not `{metric}`"
                    ),
                );
            }
        }
        for (name, v) in t.get_ref() {
            if !["metric", "min", "max"].contains(&name.as_str()) {
                cx.err(
                    v.span(),
                    key(name),
                    "is not a setting of a constraint (settings: metric, min, max)",
                );
            }
        }
        out.push(ConstraintSpec { metric, min, max });
    }
    out
}
