//! `[objective]` with `kind = "walk_forward"`: data, features, labels, splits, the model and
//! its settings, costs, hold-out.
use crate::keys::Keys;
use crate::keys::{days, num_value, EMPTY};
use crate::tables::{member_key, settings_of};
use crate::validate::Ctx;
use mlt_protocol::spec::*;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::ops::Range;

/// `[objective]` with `kind = "walk_forward"`.
pub(crate) fn walk_forward(
    cx: &mut Ctx,
    span: Range<usize>,
    o: &super::raw::RawObjective,
) -> Option<ObjectiveSpec> {
    let data = match &o.data {
        None => {
            cx.err(
                span.clone(),
                "objective.data",
                "a walk_forward objective needs `data` (\"synthetic\" or a CSV file)",
            );
            return None;
        }
        Some(d) if d.get_ref().as_str() == Some("synthetic") => {
            let mut k = Keys {
                section: "objective.synthetic",
                kind: "synthetic".into(),
                table: o.synthetic.as_ref().map_or(&EMPTY, |t| t.get_ref()),
                asked: BTreeSet::new(),
            };
            let ds = DataSource::Synthetic {
                days: k.int(cx, "days", 2520, 300, 1_000_000) as u32,
                seed: k.int(cx, "seed", 7, 0, i64::MAX) as u64,
                strength: k.float(cx, "strength", 0.05, 0.0, 1.0),
                instruments: k.int(cx, "instruments", 1, 1, 1000) as u32,
            };
            k.finish(cx, "data source");
            ds
        }
        Some(d) => {
            if let Some(t) = &o.synthetic {
                cx.err(
                    t.span(),
                    "objective.synthetic",
                    "only with `data = \"synthetic\"`",
                );
            }
            let paths: Vec<String> = match d.get_ref() {
                toml::Value::String(p) => vec![p.clone()],
                toml::Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            };
            let n_given = d.get_ref().as_array().map_or(1, |a| a.len());
            if paths.is_empty()
                || paths.len() != n_given
                || paths.iter().any(|p| p.trim().is_empty())
            {
                cx.err(
                    d.span(),
                    "objective.data",
                    "must be \"synthetic\", a CSV file or a list of CSV files",
                );
            }
            let adjusted = o.adjusted.as_ref().is_none_or(|a| *a.get_ref());
            let refs: Vec<DatasetRef> = paths.iter().filter_map(|p| DatasetRef::parse(p)).collect();
            if refs.is_empty() {
                if let Some(bad) = paths.iter().find(|p| p.starts_with("sha256:")) {
                    cx.err(
                        d.span(),
                        "objective.data",
                        format!("`{bad}` is not `sha256:<64 lower-case hex digits>/<name>`"),
                    );
                }
                DataSource::Files { paths, adjusted }
            } else {
                if refs.len() != paths.len() {
                    cx.err(
                        d.span(),
                        "objective.data",
                        "uploaded datasets (`sha256:…`) and file paths cannot be mixed",
                    );
                }
                DataSource::Datasets {
                    files: refs,
                    adjusted,
                }
            }
        }
    };
    let mut features = Vec::new();
    match &o.features {
        Some(f) if !f.get_ref().is_empty() => {
            for (name, e) in f.get_ref() {
                if e.get_ref().trim().is_empty() {
                    cx.err(
                        e.span(),
                        format!("objective.features.{name}"),
                        "must be an expression",
                    );
                }
                features.push((name.clone(), e.get_ref().clone()));
            }
        }
        Some(f) => cx.err(
            f.span(),
            "objective.features",
            "must name at least one feature",
        ),
        None => cx.err(
            span.clone(),
            "objective.features",
            "a walk_forward objective needs `features = { name = \"expression\", … }`",
        ),
    }
    let model = o
        .model
        .as_ref()
        .map_or("ridge".to_string(), |m| m.get_ref().clone());
    if ModelKind::from_name(&model).is_none() {
        let sp = o.model.as_ref().map_or(span.clone(), |m| m.span());
        cx.err(
            sp,
            "objective.model",
            format!("unknown model `{model}` (expected: {})", ModelKind::names()),
        );
    }
    let ensemble = ensemble_spec(cx, o, &model, span.clone());
    let uses = |name: &str| {
        model == name
            || ensemble
                .as_ref()
                .is_some_and(|e| e.members.iter().any(|m| m.name() == name))
    };
    let mut model_params = BTreeMap::new();
    for (table, section, kind) in [
        (&o.lightgbm, "objective.lightgbm", ModelKind::Lightgbm),
        (&o.lstm, "objective.lstm", ModelKind::Lstm),
    ] {
        let Some(t) = table else { continue };
        let name = kind.name();
        if !uses(name) {
            cx.err(
                t.span(),
                section,
                format!("only with `model = \"{name}\"` or an ensemble with it"),
            );
        }
        let mut k = Keys {
            section,
            kind: name.into(),
            table: t.get_ref(),
            asked: BTreeSet::new(),
        };
        for setting in settings_of(kind) {
            let (key, lo, hi, int) = (setting.name, setting.low, setting.high, setting.integral);
            let v = if key == "attention" {
                k.get(key)
                    .is_some()
                    .then(|| f64::from(u8::from(k.bool(cx, key, false))))
            } else if int {
                k.get(key)
                    .is_some()
                    .then(|| k.int(cx, key, 0, lo as i64, hi as i64) as f64)
            } else {
                k.opt_float(cx, key, lo, hi)
            };
            if let Some(v) = v {
                // An ensemble keeps each member's settings apart: `lightgbm.learning_rate`.
                let key = if model == "ensemble" {
                    member_key(kind, key)
                } else {
                    key.to_string()
                };
                model_params.insert(key, v);
            }
        }
        k.finish(cx, "model");
    }
    let horizon = days(cx, &o.horizon, "objective.horizon", 1, 1);
    // A multi-step head: LSTM outputs over horizons up to the label's (a lone LSTM only).
    if let (Some(t), Some(&k)) = (
        &o.lstm,
        model_params
            .get("outputs")
            .or(model_params.get("lstm.outputs")),
    ) {
        if k > 1.0 && model != "lstm" {
            cx.err(
                t.span(),
                "objective.lstm.outputs",
                "a multi-step head needs `model = \"lstm\"` (an ensemble's members predict the label alone)",
            );
        } else if k > horizon as f64 {
            cx.err(
                t.span(),
                "objective.lstm.outputs",
                format!(
                    "{k} outputs need a horizon of at least {k} days (`objective.horizon` is {horizon})"
                ),
            );
        }
    }
    let boosted = model != "ridge";
    let validation = num_value(
        cx,
        &o.validation,
        "objective.validation",
        if boosted { 0.2 } else { 0.0 },
        0.0,
        0.5,
    );
    let early_stopping = match &o.early_stopping_rounds {
        Some(e) if *e.get_ref() == 0 => 0,
        _ => days(
            cx,
            &o.early_stopping_rounds,
            "objective.early_stopping_rounds",
            20,
            1,
        ),
    };
    let mut categorical = Vec::new();
    if let Some(c) = &o.categorical {
        if !uses("lightgbm") {
            cx.err(
                c.span(),
                "objective.categorical",
                "only with `model = \"lightgbm\"` or an ensemble with it",
            );
        }
        for name in c.get_ref() {
            if !features.iter().any(|(f, _)| f == name.get_ref()) {
                cx.err(
                    name.span(),
                    "objective.categorical",
                    format!("`{}` is not one of the features", name.get_ref()),
                );
            }
            categorical.push(name.get_ref().clone());
        }
    }
    let sizing = match &o.sizing {
        None => Sizing::Sign,
        Some(m) => Sizing::from_name(m.get_ref()).unwrap_or_else(|| {
            cx.err(
                m.span(),
                "objective.sizing",
                format!(
                    "unknown sizing `{}` (expected: {})",
                    m.get_ref(),
                    Sizing::names()
                ),
            );
            Sizing::Sign
        }),
    };
    let test = days(cx, &o.test, "objective.test", 63, 1);
    let classify = match o.label.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
        None | Some(("return", _)) => false,
        Some(("direction", _)) => true,
        Some((other, sp)) => {
            cx.err(
                sp,
                "objective.label",
                format!("must be \"return\" or \"direction\", got `{other}`"),
            );
            false
        }
    };
    let report_per_fold = match o.report.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
        None | Some(("cumulative", _)) => false,
        Some(("fold", _)) => true,
        Some((other, sp)) => {
            cx.err(
                sp,
                "objective.report",
                format!("must be \"cumulative\" or \"fold\", got `{other}`"),
            );
            false
        }
    };
    let kind = o.splits.as_ref().map(|r| (r.get_ref().as_str(), r.span()));
    // Keys that belong to one kind of split only.
    let allowed: &[&str] = match kind {
        Some(("cpcv", _)) => &["groups", "test_groups", "embargo"],
        Some(("monte_carlo", _)) => &["windows", "split_seed", "embargo"],
        _ => &[],
    };
    for (key, v, only) in [
        ("groups", &o.groups, "only with `splits = \"cpcv\"`"),
        (
            "test_groups",
            &o.test_groups,
            "only with `splits = \"cpcv\"`",
        ),
        (
            "embargo",
            &o.embargo,
            "only with `splits = \"cpcv\"` or `\"monte_carlo\"`",
        ),
        (
            "windows",
            &o.windows,
            "only with `splits = \"monte_carlo\"`",
        ),
        (
            "split_seed",
            &o.split_seed,
            "only with `splits = \"monte_carlo\"`",
        ),
    ] {
        if let (Some(v), false) = (v, allowed.contains(&key)) {
            cx.err(v.span(), format!("objective.{key}"), only);
        }
    }
    let embargo = match &o.embargo {
        Some(e) if *e.get_ref() == 0 => 0,
        _ => days(cx, &o.embargo, "objective.embargo", 0, 0),
    };
    let splits = match kind {
        None | Some(("walk_forward", _)) => Splits::WalkForward,
        Some(("cpcv", sp)) => {
            let groups = days(cx, &o.groups, "objective.groups", 6, 2).min(20);
            let test_groups = days(cx, &o.test_groups, "objective.test_groups", 2, 1);
            if test_groups >= groups {
                cx.err(
                    o.test_groups.as_ref().map_or(sp, |v| v.span()),
                    "objective.test_groups",
                    format!("must be less than `groups` ({groups}), got {test_groups}"),
                );
            }
            Splits::Cpcv {
                groups,
                test_groups,
                embargo,
            }
        }
        Some(("monte_carlo", _)) => {
            let windows = days(cx, &o.windows, "objective.windows", 20, 2).min(1000);
            let seed = match &o.split_seed {
                Some(s) if *s.get_ref() < 0 => {
                    cx.err(s.span(), "objective.split_seed", "must be 0 or more");
                    0
                }
                Some(s) => *s.get_ref() as u64,
                None => 0,
            };
            Splits::MonteCarlo {
                windows,
                embargo,
                seed,
            }
        }
        Some((other, sp)) => {
            cx.err(
                sp,
                "objective.splits",
                format!("must be \"walk_forward\", \"cpcv\" or \"monte_carlo\", got `{other}`"),
            );
            Splits::WalkForward
        }
    };
    let budget_epochs = match o.budget.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
        None | Some(("folds", _)) => false,
        Some((kind @ ("epochs" | "rounds"), sp)) => {
            let model_for = if kind == "epochs" { "lstm" } else { "lightgbm" };
            if model != model_for || !matches!(splits, Splits::WalkForward) {
                cx.err(
                    sp,
                    "objective.budget",
                    format!("`{kind}` needs `model = \"{model_for}\"` and walk-forward splits"),
                );
            }
            true
        }
        Some((other, sp)) => {
            cx.err(
                sp,
                "objective.budget",
                format!(
                    "must be \"folds\", \"epochs\" (LSTM) or \"rounds\" (LightGBM), got `{other}`"
                ),
            );
            false
        }
    };
    let windows = WindowSpec {
        train: days(cx, &o.train, "objective.train", 504, 20),
        test,
        step: days(cx, &o.step, "objective.step", test as i64, 1),
        expanding: o.expanding.as_ref().is_some_and(|e| *e.get_ref()),
        splits,
        holdout: match &o.holdout {
            None => 0,
            Some(h) if *h.get_ref() == 0 => 0,
            Some(_) => days(cx, &o.holdout, "objective.holdout", 0, 20),
        },
        holdout_top: days(cx, &o.holdout_top, "objective.holdout_top", 5, 1).min(1000),
    };
    if matches!(windows.splits, Splits::WalkForward) && windows.step < windows.test {
        let sp = o.step.as_ref().map_or(span.clone(), |v| v.span());
        cx.err(
            sp,
            "objective.step",
            format!(
                "{} days is shorter than the {}-day test window: the test windows would overlap and count days twice (inflating the observations behind PSR, DSR and the annual figures); use a step of at least `test`",
                windows.step, windows.test
            ),
        );
    }
    let model = ModelSpec {
        // An unknown name is an error above, and the spec is refused.
        kind: ModelKind::from_name(&model).unwrap_or(ModelKind::Ridge),
        settings: model_params,
        alpha: num_value(cx, &o.alpha, "objective.alpha", 1.0, 0.0, 1e12),
        ensemble,
        validation,
        early_stopping,
        categorical,
    };
    let trading = TradingSpec {
        sizing,
        threshold: num_value(cx, &o.threshold, "objective.threshold", 0.0, 0.0, 1.0),
        long_only: o.long_only.as_ref().is_some_and(|e| *e.get_ref()),
        cost_bps: num_value(cx, &o.cost_bps, "objective.cost_bps", 1.0, 0.0, 10_000.0),
        slippage_bps: num_value(
            cx,
            &o.slippage_bps,
            "objective.slippage_bps",
            1.0,
            0.0,
            10_000.0,
        ),
    };
    Some(ObjectiveSpec::WalkForward(Box::new(WalkForwardSpec {
        data,
        features,
        label: LabelSpec { horizon, classify },
        windows,
        model,
        trading,
        report: ReportSpec {
            objectives: Vec::new(),
            per_fold: report_per_fold,
            budget_epochs,
        },
    })))
}

/// `[objective.ensemble]`: required with `model = "ensemble"`, refused otherwise.
fn ensemble_spec(
    cx: &mut Ctx,
    o: &super::raw::RawObjective,
    model: &str,
    span: Range<usize>,
) -> Option<EnsembleSpec> {
    let Some(t) = &o.ensemble else {
        if model == "ensemble" {
            cx.err(
                span,
                "objective.ensemble",
                "`model = \"ensemble\"` needs `[objective.ensemble]` with `members`",
            );
        }
        return None;
    };
    if model != "ensemble" {
        cx.err(
            t.span(),
            "objective.ensemble",
            "only with `model = \"ensemble\"`",
        );
        return None;
    }
    let mut k = Keys {
        section: "objective.ensemble",
        kind: "ensemble".into(),
        table: t.get_ref(),
        asked: BTreeSet::new(),
    };
    let names: Vec<&str> = EnsembleMethod::ALL.iter().map(|m| m.name()).collect();
    let method = k.choice(cx, "method", "voting", &names);
    let method = EnsembleMethod::from_name(method).unwrap_or(EnsembleMethod::Voting);
    let mut members = Vec::new();
    match k.get("members") {
        Some(v) => {
            let names: Vec<String> = v
                .get_ref()
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let ok = names.len() >= 2
                && names
                    .iter()
                    .all(|m| ["ridge", "lightgbm", "lstm"].contains(&m.as_str()))
                && names.iter().collect::<BTreeSet<_>>().len() == names.len();
            if !ok {
                cx.err(
                    v.span(),
                    "objective.ensemble.members",
                    "must list two or more different models of ridge, lightgbm, lstm",
                );
            }
            members = names
                .iter()
                .filter_map(|n| ModelKind::from_name(n))
                .collect();
        }
        None => cx.err(
            t.span(),
            "objective.ensemble.members",
            "an ensemble needs `members = [\"ridge\", \"lightgbm\"]` (two or more)",
        ),
    }
    let mut weights = Vec::new();
    if let Some(v) = k.get("weights") {
        let w: Vec<f64> = v
            .get_ref()
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_float().or(x.as_integer().map(|i| i as f64)))
                    .collect()
            })
            .unwrap_or_default();
        if method != EnsembleMethod::Voting
            || w.len() != members.len()
            || w.iter().any(|x| x.is_nan() || *x < 0.0)
            || w.iter().sum::<f64>() <= 0.0
        {
            cx.err(
                v.span(),
                "objective.ensemble.weights",
                "voting weights: one non-negative number per member, not all zero",
            );
        }
        weights = w;
    }
    k.finish(cx, "ensemble");
    Some(EnsembleSpec {
        method,
        members,
        weights,
    })
}
