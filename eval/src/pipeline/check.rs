//! The submit-time check of a walk-forward objective, before anything runs.
use crate::features::{causal, lookahead_check, parameters, parse, price_power, substitute};
use crate::universe::load_reported;
use mlt_protocol::records::{ParamValue, Params};
use mlt_protocol::spec::{ModelKind, Splits, WalkForwardSpec};

/// The checks a researcher gets at submit time, before anything runs: the data loads; every
/// feature parses and reads no later bar for every value the space allows its `$parameters`
/// (the static proof: every choice of a categorical, both ends and the middle of a range);
/// every feature passes the look-ahead guard on the data, at every day, with its
/// `$parameters` at the low and at the high end of their ranges. The error names the key
/// (`objective.features.mom`), the problem, and the parameters that cause it. On success, the
/// data's problems (unsorted or repeated dates, missing cells, …: see
/// [`crate::universe::load_reported`]), one line each, for the researcher to read.
pub fn check(
    spec: &WalkForwardSpec,
    space: &mlt_protocol::spec::SearchSpace,
    workdir: Option<&str>,
) -> Result<Vec<String>, (String, String)> {
    use mlt_protocol::spec::Distribution as D;
    // A multi-step head searched over: a lone LSTM, no more outputs than the horizon's days.
    for p in &space.params {
        let lstm_member = spec.model.kind == ModelKind::Ensemble && p.name == "lstm.outputs";
        if p.name != "outputs" && !lstm_member {
            continue;
        }
        let most = match &p.dist {
            D::Float { high, .. } => *high,
            D::Int { high, .. } => *high as f64,
            D::Fixed { value } => value.as_f64().unwrap_or(1.0),
            D::Categorical { choices } => choices
                .iter()
                .filter_map(ParamValue::as_f64)
                .fold(1.0, f64::max),
        };
        let key = format!("space.{}", p.name);
        let lstm_in_ensemble = spec
            .model
            .ensemble
            .as_ref()
            .is_some_and(|e| e.members.contains(&ModelKind::Lstm));
        if spec.model.kind != ModelKind::Lstm {
            if most > 1.0 && lstm_in_ensemble {
                return Err((
                    key,
                    "a multi-step head needs `model = \"lstm\"` (an ensemble's members predict the label alone)".into(),
                ));
            }
        } else if most.round() > spec.label.horizon as f64 {
            return Err((
                key,
                format!(
                    "reaches {most} outputs, more than the {}-day horizon allows",
                    spec.label.horizon
                ),
            ));
        }
    }
    let (insts, problems) =
        load_reported(&spec.data, workdir).map_err(|e| ("objective.data".to_string(), e))?;
    let ends = |high: bool| -> Params {
        space
            .params
            .iter()
            .filter_map(|p| {
                let v = match &p.dist {
                    D::Float { low, high: h, .. } => {
                        ParamValue::Float(if high { *h } else { *low })
                    }
                    D::Int {
                        low, high: h, step, ..
                    } => ParamValue::Int(if high {
                        low + (h - low) / step * step
                    } else {
                        *low
                    }),
                    D::Fixed { value } => value.clone(),
                    D::Categorical { choices } => {
                        let c = if high {
                            choices.last()
                        } else {
                            choices.first()
                        };
                        c.cloned()?
                    }
                };
                Some((p.name.clone(), v))
            })
            .collect()
    };
    // The static proof, for every value the space allows in each feature's `$parameters`.
    for (name, text) in &spec.features {
        let key = format!("objective.features.{name}");
        for params in assignments(text, space) {
            let text = substitute(text, &params).map_err(|e| (key.clone(), e))?;
            let e = parse(&text).map_err(|e| (key.clone(), format!("`{text}`: {e}")))?;
            causal(name, &e).map_err(|e| (key.clone(), with_params(e, &params)))?;
        }
    }
    // On the data: every day, at both ends of the ranges.
    for params in [ends(false), ends(true)] {
        for bars in &insts {
            for (name, text) in &spec.features {
                let key = format!("objective.features.{name}");
                let text = substitute(text, &params).map_err(|e| (key.clone(), e))?;
                let e = parse(&text).map_err(|e| (key.clone(), format!("`{text}`: {e}")))?;
                lookahead_check(name, &e, bars)
                    .map_err(|e| (key.clone(), with_params(e, &params)))?;
            }
        }
    }
    let n_all = insts.iter().map(|b| b.len()).min().unwrap_or(0);
    let n = n_all.saturating_sub(spec.windows.holdout as usize);
    let held = if spec.windows.holdout > 0 {
        format!(" (after the {}-day hold-out)", spec.windows.holdout)
    } else {
        String::new()
    };
    match &spec.windows.splits {
        Splits::WalkForward => {
            let need = spec.windows.train as usize
                + spec.label.horizon as usize
                + spec.windows.test as usize;
            if n < need {
                return Err((
                    "objective.train".into(),
                    format!(
                        "{n} bars{held} are too few for {} training + {} purge + {} test days",
                        spec.windows.train, spec.label.horizon, spec.windows.test
                    ),
                ));
            }
        }
        Splits::MonteCarlo { embargo, .. } => {
            let need = 2 * (spec.windows.test + spec.label.horizon) as usize + *embargo as usize;
            if n < need {
                return Err((
                    "objective.test".into(),
                    format!(
                        "{n} bars{held} are too few for Monte Carlo windows of {} test days (at least {need}: every window must leave as many days to train on)",
                        spec.windows.test
                    ),
                ));
            }
        }
        Splits::Cpcv { groups, .. } => {
            let need = *groups as usize * (2 * spec.label.horizon as usize + 20);
            if n < need {
                return Err((
                    "objective.groups".into(),
                    format!(
                        "{n} bars{held} are too few for {groups} CPCV groups (at least {need})"
                    ),
                ));
            }
        }
    }
    if spec.windows.holdout > 0
        && n_all
            < spec.windows.holdout as usize
                + spec.windows.train as usize
                + spec.label.horizon as usize
    {
        return Err((
            "objective.holdout".into(),
            format!(
                "{n_all} bars are too few for a {}-day training window, a {}-day purge and a {}-day hold-out",
                spec.windows.train, spec.label.horizon, spec.windows.holdout
            ),
        ));
    }
    Ok(problems)
}

/// Warnings for features that use a raw price level on adjusted data, where every price is
/// scaled by a factor that depends on later dividends (key, message).
pub fn adjusted_levels(spec: &WalkForwardSpec) -> Vec<(String, String)> {
    if !spec.data.adjusted() {
        return Vec::new();
    }
    spec.features
        .iter()
        .filter_map(|(name, text)| {
            // `$parameters` are periods: any value gives the same dimension.
            let ones: Params = parameters(text)
                .into_iter()
                .map(|n| (n, ParamValue::Int(1)))
                .collect();
            let plain = substitute(text, &ones).ok()?;
            let e = parse(&plain).ok()?;
            (price_power(&e) != 0).then(|| {
                (
                    format!("objective.features.{name}"),
                    "a raw price level on adjusted data (`adjusted = true`): the adjustment factor depends on later dividends and splits, so the level carries a little of the future; use a ratio (e.g. `close / ref(close, 5)`) or `adjusted = false`".to_string(),
                )
            })
        })
        .collect()
}

/// Most combinations of `$parameter` values the static proof tries per feature; beyond, each
/// parameter runs through its values with the others at one of theirs.
const MAX_ASSIGNMENTS: usize = 10_000;

/// The values of a parameter the static proof tries: every choice of a categorical; the two
/// ends and the middle of a range (a period's reach is monotone in it).
fn candidates(dist: &mlt_protocol::spec::Distribution) -> Vec<ParamValue> {
    use mlt_protocol::spec::Distribution as D;
    match dist {
        D::Categorical { choices } => choices.clone(),
        D::Fixed { value } => vec![value.clone()],
        D::Int {
            low, high, step, ..
        } => {
            let top = low + (high - low) / step * step;
            let mid = low + (top - low) / 2 / step * step;
            let mut v = vec![*low, mid, top];
            v.dedup();
            v.into_iter().map(ParamValue::Int).collect()
        }
        D::Float { low, high, .. } => [*low, (low + high) / 2.0, *high]
            .into_iter()
            .map(ParamValue::Float)
            .collect(),
    }
}

/// Every combination of candidate values of the parameters `text` uses (at most
/// [`MAX_ASSIGNMENTS`]; beyond, each one's values with the others at their first).
fn assignments(text: &str, space: &mlt_protocol::spec::SearchSpace) -> Vec<Params> {
    let used: Vec<(String, Vec<ParamValue>)> = parameters(text)
        .into_iter()
        .filter_map(|n| {
            let p = space.params.iter().find(|p| p.name == n)?;
            Some((n, candidates(&p.dist)))
        })
        .collect();
    let total = used
        .iter()
        .try_fold(1usize, |acc, (_, v)| acc.checked_mul(v.len().max(1)));
    if total.is_some_and(|t| t <= MAX_ASSIGNMENTS) {
        let mut out = vec![Params::new()];
        for (name, values) in &used {
            out = out
                .iter()
                .flat_map(|base| {
                    values.iter().map(move |v| {
                        let mut p = base.clone();
                        p.insert(name.clone(), v.clone());
                        p
                    })
                })
                .collect();
        }
        return out;
    }
    let first: Params = used
        .iter()
        .filter_map(|(n, v)| Some((n.clone(), v.first()?.clone())))
        .collect();
    let mut out = vec![first.clone()];
    for (name, values) in &used {
        for v in values {
            let mut p = first.clone();
            p.insert(name.clone(), v.clone());
            out.push(p);
        }
    }
    out
}

/// An error with the parameter values it was found at.
fn with_params(e: String, params: &Params) -> String {
    if params.is_empty() {
        return e;
    }
    let at: Vec<String> = params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{e} (with {})", at.join(", "))
}
