//! `[space]`: each parameter's distribution, condition and bounds; and which values a
//! distribution can take.
use crate::raw::{RawParam, S};
use crate::validate::Ctx;
use mlt_protocol::records::ParamValue;
use mlt_protocol::spec::*;
use std::collections::BTreeMap;
use std::ops::Range;

pub(crate) fn value_of(v: &toml::Value) -> Option<ParamValue> {
    Some(match v {
        toml::Value::String(s) => ParamValue::Str(s.clone()),
        toml::Value::Integer(i) => ParamValue::Int(*i),
        toml::Value::Float(f) => ParamValue::Float(*f),
        toml::Value::Boolean(b) => ParamValue::Bool(*b),
        _ => return None,
    })
}

/// Whether `v` is a value `dist` can take.
pub fn fits(dist: &Distribution, v: &ParamValue) -> Result<(), String> {
    let num = match v {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(f) => Some(*f),
        _ => None,
    };
    match dist {
        Distribution::Float {
            low, high, step, ..
        } => {
            let Some(x) = num else {
                return Err(format!("must be a number, got {v}"));
            };
            if !(x >= *low && x <= *high) {
                return Err(format!("{x} is outside [{low}, {high}]"));
            }
            if let Some(s) = step {
                let k = (x - low) / s;
                if (k - k.round()).abs() > 1e-6 {
                    return Err(format!("{x} is not on the grid {low} + k·{s}"));
                }
            }
            Ok(())
        }
        Distribution::Int {
            low, high, step, ..
        } => {
            let ParamValue::Int(i) = v else {
                return Err(format!("must be an integer, got {v}"));
            };
            if i < low || i > high {
                return Err(format!("{i} is outside [{low}, {high}]"));
            }
            if (i - low) % step != 0 {
                return Err(format!("{i} is not on the grid {low} + k·{step}"));
            }
            Ok(())
        }
        Distribution::Categorical { choices } => {
            if choices.contains(v) {
                Ok(())
            } else {
                let shown: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                Err(format!("`{v}` is not one of {}", shown.join(", ")))
            }
        }
        Distribution::Fixed { value } => {
            if value == v {
                Ok(())
            } else {
                Err(format!("the parameter is fixed to {value}"))
            }
        }
    }
}

pub(crate) fn space(cx: &mut Ctx, raw: BTreeMap<String, S<RawParam>>) -> SearchSpace {
    let mut params: Vec<(ParamSpec, Range<usize>)> = Vec::new();
    for (name, p) in &raw {
        if let Some(spec) = param(cx, name, p) {
            params.push((spec, p.span()));
        }
    }
    // Conditions: every parent exists, has discrete values containing the listed ones.
    for (p, span) in &params {
        for (parent, values) in &p.when {
            let key = format!("space.{}.when.{parent}", p.name);
            let Some((pp, _)) = params.iter().find(|(q, _)| &q.name == parent) else {
                if !raw.contains_key(parent) {
                    cx.err(
                        span.clone(),
                        key,
                        format!("refers to `{parent}`, which is not a parameter of the space"),
                    );
                }
                continue;
            };
            let allowed: Vec<ParamValue> = match &pp.dist {
                Distribution::Categorical { choices } => choices.clone(),
                Distribution::Fixed { value } => vec![value.clone()],
                Distribution::Int {
                    low, high, step, ..
                } if (high - low) / step <= 10_000 => (0..=(high - low) / step)
                    .map(|k| ParamValue::Int(low + k * step))
                    .collect(),
                _ => {
                    cx.err(
                        span.clone(),
                        key,
                        format!("parent `{parent}` must be categorical, int or fixed"),
                    );
                    continue;
                }
            };
            for v in values {
                if !allowed.contains(v) {
                    cx.err(
                        span.clone(),
                        key.clone(),
                        format!("`{v}` is not a value `{parent}` can take"),
                    );
                }
            }
        }
    }
    // Order parents before children; a cycle is an error.
    let mut ordered: Vec<ParamSpec> = Vec::new();
    let mut pending: Vec<(ParamSpec, Range<usize>)> = params;
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (p, span) in pending {
            let ready = p.when.iter().all(|(parent, _)| {
                ordered.iter().any(|q| &q.name == parent) || !raw.contains_key(parent)
            });
            if ready {
                ordered.push(p);
            } else {
                rest.push((p, span));
            }
        }
        if rest.len() == before {
            for (p, span) in &rest {
                cx.err(
                    span.clone(),
                    format!("space.{}.when", p.name),
                    "conditions form a cycle",
                );
            }
            break;
        }
        pending = rest;
    }
    SearchSpace { params: ordered }
}

fn num(cx: &mut Ctx, v: &S<toml::Value>, key: &str, int: bool) -> Option<f64> {
    match v.get_ref() {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) if !int && f.is_finite() => Some(*f),
        toml::Value::Float(f) if int => {
            cx.err(
                v.span(),
                key,
                format!("must be an integer for an int parameter, got {f}"),
            );
            None
        }
        other => {
            cx.err(
                v.span(),
                key,
                format!("must be a finite number, got {other}"),
            );
            None
        }
    }
}

fn param(cx: &mut Ctx, name: &str, p: &S<RawParam>) -> Option<ParamSpec> {
    let span = p.span();
    let p = p.get_ref();
    let k = |field: &str| format!("space.{name}.{field}");
    let mut when = Vec::new();
    if let Some(w) = &p.when {
        if w.get_ref().is_empty() {
            cx.err(
                w.span(),
                k("when"),
                "must name at least one parent parameter",
            );
        }
        for (parent, vals) in w.get_ref() {
            let list: Vec<toml::Value> = match vals {
                toml::Value::Array(a) => a.clone(),
                v => vec![v.clone()],
            };
            let values: Vec<ParamValue> = list.iter().filter_map(value_of).collect();
            if values.len() != list.len() || values.is_empty() {
                cx.err(
                    w.span(),
                    k("when"),
                    format!("`{parent}` must list one or more plain values"),
                );
            }
            if parent == name {
                cx.err(w.span(), k("when"), "a parameter cannot depend on itself");
            }
            when.push((parent.clone(), values));
        }
    }
    let allowed: &[&str] = match p.ty.get_ref().as_str() {
        "float" | "int" => &["low", "high", "step", "log"],
        "categorical" => &["choices"],
        "fixed" => &["value"],
        _ => &[],
    };
    let given = [
        ("low", p.low.as_ref().map(|v| v.span())),
        ("high", p.high.as_ref().map(|v| v.span())),
        ("step", p.step.as_ref().map(|v| v.span())),
        ("log", p.log.as_ref().map(|v| v.span())),
        ("choices", p.choices.as_ref().map(|v| v.span())),
        ("value", p.value.as_ref().map(|v| v.span())),
    ];
    let ty = p.ty.get_ref().as_str();
    if !allowed.is_empty() {
        for (field, sp) in given {
            if let Some(sp) = sp {
                if !allowed.contains(&field) {
                    cx.err(
                        sp,
                        k(field),
                        format!("is not a setting of a {ty} parameter"),
                    );
                }
            }
        }
    }
    let dist = match ty {
        "float" | "int" => {
            let int = ty == "int";
            let (Some(lo), Some(hi)) = (&p.low, &p.high) else {
                cx.err(
                    span,
                    k("low"),
                    format!("a {ty} parameter needs both `low` and `high`"),
                );
                return None;
            };
            let low = num(cx, lo, &k("low"), int)?;
            let high = num(cx, hi, &k("high"), int)?;
            let log = p.log.as_ref().is_some_and(|l| *l.get_ref());
            let step = match &p.step {
                Some(s) => Some((num(cx, s, &k("step"), int)?, s.span())),
                None => None,
            };
            if low > high {
                cx.err(
                    lo.span(),
                    k("low"),
                    format!("low ({low}) is greater than high ({high})"),
                );
                return None;
            }
            if log && low <= 0.0 {
                cx.err(
                    lo.span(),
                    k("low"),
                    format!("a log-scale parameter needs low > 0, got {low}"),
                );
                return None;
            }
            if let Some((s, sp)) = &step {
                if *s <= 0.0 {
                    cx.err(sp.clone(), k("step"), format!("must be positive, got {s}"));
                    return None;
                }
                if log {
                    cx.err(
                        sp.clone(),
                        k("step"),
                        "`step` and `log = true` cannot be used together",
                    );
                    return None;
                }
            }
            if int {
                Distribution::Int {
                    low: low as i64,
                    high: high as i64,
                    log,
                    step: step.map_or(1, |(s, _)| s as i64),
                }
            } else {
                Distribution::Float {
                    low,
                    high,
                    log,
                    step: step.map(|(s, _)| s),
                }
            }
        }
        "categorical" => {
            let Some(ch) = &p.choices else {
                cx.err(
                    span,
                    k("choices"),
                    "a categorical parameter needs `choices`",
                );
                return None;
            };
            if ch.get_ref().is_empty() {
                cx.err(ch.span(), k("choices"), "must not be empty");
                return None;
            }
            let choices: Vec<ParamValue> = ch.get_ref().iter().filter_map(value_of).collect();
            if choices.len() != ch.get_ref().len() {
                cx.err(
                    ch.span(),
                    k("choices"),
                    "choices must be strings, numbers or booleans",
                );
                return None;
            }
            for (i, c) in choices.iter().enumerate() {
                if choices[..i].contains(c) {
                    cx.err(ch.span(), k("choices"), format!("`{c}` is listed twice"));
                    return None;
                }
            }
            Distribution::Categorical { choices }
        }
        "fixed" => {
            let Some(v) = &p.value else {
                cx.err(span, k("value"), "a fixed parameter needs `value`");
                return None;
            };
            let Some(value) = value_of(v.get_ref()) else {
                cx.err(v.span(), k("value"), "must be a string, number or boolean");
                return None;
            };
            Distribution::Fixed { value }
        }
        other => {
            cx.err(
                p.ty.span(),
                k("type"),
                format!(
                    "unknown parameter type `{other}` (expected float, int, categorical or fixed)"
                ),
            );
            return None;
        }
    };
    Some(ParamSpec {
        name: name.to_string(),
        dist,
        when,
    })
}
