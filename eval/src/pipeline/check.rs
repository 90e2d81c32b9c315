//! The submit-time check of a walk-forward objective, before anything runs.
use crate::features::{lookahead_check, parse, substitute};
use crate::universe::load;
use mlt_protocol::records::{ParamValue, Params};
use mlt_protocol::spec::{ModelKind, Splits, WalkForwardSpec};

/// The checks a researcher gets at submit time, before anything runs: the data loads, every
/// feature parses and passes the look-ahead guard with its `$parameters` at the low and at the
/// high end of their ranges. The error names the key (`objective.features.mom`) and the problem.
pub fn check(
    spec: &WalkForwardSpec,
    space: &mlt_protocol::spec::SearchSpace,
    workdir: Option<&str>,
) -> Result<(), (String, String)> {
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
    let insts = load(&spec.data, workdir).map_err(|e| ("objective.data".to_string(), e))?;
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
    for params in [ends(false), ends(true)] {
        for bars in &insts {
            for (name, text) in &spec.features {
                let key = format!("objective.features.{name}");
                let text = substitute(text, &params).map_err(|e| (key.clone(), e))?;
                let e = parse(&text).map_err(|e| (key.clone(), format!("`{text}`: {e}")))?;
                lookahead_check(name, &e, bars, 25).map_err(|e| (key.clone(), e))?;
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
    Ok(())
}
