//! Raw spec → validated [`Spec`], collecting every problem with its line and key.
use super::raw::{RawObjective, RawParam, RawSpec, RawStudy, S};
use super::settings;
use super::*;
use std::ops::Range;

pub(super) struct Ctx<'a> {
    text: &'a str,
    issues: Vec<SpecIssue>,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    pub(super) fn err(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = Some(self.line(span));
        self.issues.push(SpecIssue {
            line,
            key: key.into(),
            message: message.into(),
        });
    }
}

/// Parses and validates `text`; `file` names it in errors.
pub fn parse_spec(text: &str, file: &str) -> Result<Spec, SpecError> {
    let fail = |issues| SpecError {
        file: file.to_string(),
        issues,
    };
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        fail(vec![SpecIssue {
            line,
            key: String::new(),
            message: e.message().trim().to_string(),
        }])
    })?;
    let mut cx = Ctx {
        text,
        issues: Vec::new(),
    };
    let spec = validate(&mut cx, raw);
    match spec {
        Some(spec) if cx.issues.is_empty() => Ok(spec),
        _ => {
            cx.issues.sort_by_key(|i| i.line);
            Err(fail(cx.issues))
        }
    }
}

fn validate(cx: &mut Ctx, raw: RawSpec) -> Option<Spec> {
    let study = study(cx, raw.study);
    let n_objectives = study.as_ref().map_or(1, |s| s.directions.len());
    let sampler = match &raw.sampler {
        None => Some(SamplerSpec::Random),
        Some(t) => settings::sampler(cx, t, n_objectives),
    };
    let pruner = match &raw.pruner {
        None => Some(PrunerSpec::None),
        Some(t) => settings::pruner(cx, t),
    };
    let resources = match raw.resources {
        None => ResourceSpec { cpus: 1, gpus: 0 },
        Some(r) => {
            let r = r.into_inner();
            ResourceSpec {
                cpus: count(cx, r.cpus.as_ref(), "resources.cpus", 1, 0).unwrap_or(1) as u32,
                gpus: count(cx, r.gpus.as_ref(), "resources.gpus", 0, 0).unwrap_or(0) as u32,
            }
        }
    };
    let space = match raw.space {
        Some(s) => space(cx, s.into_inner()),
        None => SearchSpace::default(),
    };
    let enqueue = settings::enqueue(cx, &raw.enqueue, &space);
    let mut study = study;
    if let (Some(SamplerSpec::Grid(g)), Some(st)) = (&sampler, study.as_mut()) {
        match grid_points(&space, g.points) {
            // A grid study ends when every point has been evaluated.
            Ok(points) => st.n_trials = st.n_trials.min(points.len().max(1) as u64),
            Err(n) => {
                let span = raw.sampler.as_ref().map_or(0..0, |t| t.span());
                cx.err(
                    span,
                    "sampler.points",
                    format!("the grid has more than {MAX_GRID_POINTS} points ({n} counted so far): lower `points` or give parameters a coarser `step`"),
                );
            }
        }
    }
    let objective = objective(cx, raw.objective, &space);
    let constraints = settings::constraints(cx, &raw.constraint, objective.as_ref(), &space);
    // A walk-forward study's objectives and constraints are its metrics.
    let mut objective = objective;
    if let (Some(ObjectiveSpec::WalkForward(wf)), Some(st)) = (objective.as_mut(), study.as_ref()) {
        wf.objectives = st
            .objectives
            .iter()
            .map(|o| {
                if o == "value" {
                    "sharpe".to_string()
                } else {
                    o.clone()
                }
            })
            .collect();
        for name in &st.objectives {
            if name != "value" && !WALK_FORWARD_METRICS.contains(&name.as_str()) {
                cx.issues.push(SpecIssue {
                    line: None,
                    key: "study.objectives".into(),
                    message: format!(
                        "`{name}` is not a walk-forward metric ({})",
                        WALK_FORWARD_METRICS.join(", ")
                    ),
                });
            }
        }
        for (i, c) in constraints.iter().enumerate() {
            if !WALK_FORWARD_METRICS.contains(&c.metric.as_str()) {
                cx.issues.push(SpecIssue {
                    line: None,
                    key: format!("constraint[{i}].metric"),
                    message: format!("`{}` is not a walk-forward metric", c.metric),
                });
            }
        }
    }
    if let (Some(study), Some(ObjectiveSpec::Benchmark(_))) = (&study, &objective) {
        if study.directions.len() != 1 {
            cx.issues.push(SpecIssue {
                line: None,
                key: "study.directions".into(),
                message: "a benchmark objective has one value: give one direction".into(),
            });
        }
    }
    Some(Spec {
        study: study?,
        sampler: sampler?,
        pruner: pruner?,
        resources,
        space,
        objective: objective?,
        enqueue,
        constraints,
    })
}

/// An optional non-negative integer key, at least `min`.
fn count(cx: &mut Ctx, v: Option<&S<i64>>, key: &str, default: i64, min: i64) -> Option<i64> {
    match v {
        None => Some(default),
        Some(v) if *v.get_ref() < min => {
            cx.err(
                v.span(),
                key,
                format!("must be at least {min}, got {}", v.get_ref()),
            );
            None
        }
        Some(v) => Some(*v.get_ref()),
    }
}

fn study(cx: &mut Ctx, s: S<RawStudy>) -> Option<StudySpec> {
    let span = s.span();
    let s = s.into_inner();
    let name = s.name.get_ref().trim().to_string();
    let name_ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        cx.err(
            s.name.span(),
            "study.name",
            "must be 1–100 characters of letters, digits, `-`, `_` or `.`",
        );
    }
    let mut directions = Vec::new();
    match &s.directions {
        None => directions.push(Direction::Minimize),
        Some(d) if d.get_ref().is_empty() => cx.err(
            d.span(),
            "study.directions",
            "must name at least one direction",
        ),
        Some(d) => {
            for x in d.get_ref() {
                match x.get_ref().as_str() {
                    "minimize" => directions.push(Direction::Minimize),
                    "maximize" => directions.push(Direction::Maximize),
                    other => cx.err(
                        x.span(),
                        "study.directions",
                        format!("unknown direction `{other}` (expected minimize or maximize)"),
                    ),
                }
            }
        }
    }
    let objectives: Vec<String> = match &s.objectives {
        None => (0..directions.len())
            .map(|i| {
                if i == 0 {
                    "value".into()
                } else {
                    format!("value{i}")
                }
            })
            .collect(),
        Some(o) => {
            let names: Vec<String> = o.get_ref().iter().map(|x| x.get_ref().clone()).collect();
            if names.len() != directions.len() {
                cx.err(
                    o.span(),
                    "study.objectives",
                    format!(
                        "{} objectives for {} directions: give one direction per objective",
                        names.len(),
                        directions.len()
                    ),
                );
            }
            names
        }
    };
    let n_trials = *s.n_trials.get_ref();
    if n_trials <= 0 {
        cx.err(
            s.n_trials.span(),
            "study.n_trials",
            format!("must be a positive number of trials, got {n_trials}"),
        );
    }
    let max_concurrent = match &s.max_concurrent {
        Some(m) if *m.get_ref() <= 0 || *m.get_ref() > u32::MAX as i64 => {
            cx.err(
                m.span(),
                "study.max_concurrent",
                format!("must be positive, got {}", m.get_ref()),
            );
            None
        }
        Some(m) => Some(*m.get_ref() as u32),
        None => None,
    };
    let seed = match &s.seed {
        Some(v) if *v.get_ref() < 0 => {
            cx.err(v.span(), "study.seed", "must not be negative");
            0
        }
        Some(v) => *v.get_ref() as u64,
        None => 0,
    };
    let max_attempts = match &s.max_attempts {
        Some(v) if *v.get_ref() < 1 || *v.get_ref() > 1000 => {
            cx.err(v.span(), "study.max_attempts", "must be between 1 and 1000");
            3
        }
        Some(v) => *v.get_ref() as u32,
        None => 3,
    };
    let warm_start = match &s.warm_start {
        Some(w) if w.get_ref().trim().is_empty() => {
            cx.err(w.span(), "study.warm_start", "must name a study");
            None
        }
        Some(w) => Some(w.get_ref().trim().to_string()),
        None => None,
    };
    let _ = span;
    (name_ok && n_trials > 0 && !directions.is_empty()).then_some(StudySpec {
        name,
        directions,
        objectives,
        n_trials: n_trials as u64,
        max_concurrent,
        seed,
        max_attempts,
        warm_start,
    })
}

pub(super) fn value_of(v: &toml::Value) -> Option<ParamValue> {
    Some(match v {
        toml::Value::String(s) => ParamValue::Str(s.clone()),
        toml::Value::Integer(i) => ParamValue::Int(*i),
        toml::Value::Float(f) => ParamValue::Float(*f),
        toml::Value::Boolean(b) => ParamValue::Bool(*b),
        _ => return None,
    })
}

fn space(cx: &mut Ctx, raw: BTreeMap<String, S<RawParam>>) -> SearchSpace {
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

fn objective(cx: &mut Ctx, o: S<RawObjective>, space: &SearchSpace) -> Option<ObjectiveSpec> {
    let span = o.span();
    let o = o.into_inner();
    let kind = o.kind.get_ref().as_str();
    let bench_keys = [
        ("function", o.function.as_ref().map(|v| v.span())),
        ("steps", o.steps.as_ref().map(|v| v.span())),
        ("step_seconds", o.step_seconds.as_ref().map(|v| v.span())),
        ("noise", o.noise.as_ref().map(|v| v.span())),
    ];
    let command_keys = [
        ("command", o.command.as_ref().map(|v| v.span())),
        ("env", o.env.as_ref().map(|v| v.span())),
        (
            "timeout_seconds",
            o.timeout_seconds.as_ref().map(|v| v.span()),
        ),
    ];
    let wf_keys = [
        ("data", o.data.as_ref().map(|v| v.span())),
        ("synthetic", o.synthetic.as_ref().map(|v| v.span())),
        ("adjusted", o.adjusted.as_ref().map(|v| v.span())),
        ("features", o.features.as_ref().map(|v| v.span())),
        ("horizon", o.horizon.as_ref().map(|v| v.span())),
        ("train", o.train.as_ref().map(|v| v.span())),
        ("test", o.test.as_ref().map(|v| v.span())),
        ("step", o.step.as_ref().map(|v| v.span())),
        ("expanding", o.expanding.as_ref().map(|v| v.span())),
        ("model", o.model.as_ref().map(|v| v.span())),
        ("alpha", o.alpha.as_ref().map(|v| v.span())),
        ("sizing", o.sizing.as_ref().map(|v| v.span())),
        ("threshold", o.threshold.as_ref().map(|v| v.span())),
        ("long_only", o.long_only.as_ref().map(|v| v.span())),
        ("cost_bps", o.cost_bps.as_ref().map(|v| v.span())),
        ("slippage_bps", o.slippage_bps.as_ref().map(|v| v.span())),
        ("report", o.report.as_ref().map(|v| v.span())),
        ("label", o.label.as_ref().map(|v| v.span())),
        ("holdout", o.holdout.as_ref().map(|v| v.span())),
        ("holdout_top", o.holdout_top.as_ref().map(|v| v.span())),
        ("splits", o.splits.as_ref().map(|v| v.span())),
        ("groups", o.groups.as_ref().map(|v| v.span())),
        ("test_groups", o.test_groups.as_ref().map(|v| v.span())),
        ("embargo", o.embargo.as_ref().map(|v| v.span())),
        ("lightgbm", o.lightgbm.as_ref().map(|v| v.span())),
        ("lstm", o.lstm.as_ref().map(|v| v.span())),
        ("ensemble", o.ensemble.as_ref().map(|v| v.span())),
        ("budget", o.budget.as_ref().map(|v| v.span())),
        ("validation", o.validation.as_ref().map(|v| v.span())),
        (
            "early_stopping_rounds",
            o.early_stopping_rounds.as_ref().map(|v| v.span()),
        ),
        ("categorical", o.categorical.as_ref().map(|v| v.span())),
    ];
    let foreign: Vec<(&str, Option<Range<usize>>)> = match kind {
        "benchmark" => command_keys.iter().chain(&wf_keys).cloned().collect(),
        "command" => bench_keys.iter().chain(&wf_keys).cloned().collect(),
        "walk_forward" => bench_keys.iter().chain(&command_keys).cloned().collect(),
        _ => Vec::new(),
    };
    for (field, sp) in &foreign {
        if let Some(sp) = sp {
            cx.err(
                sp.clone(),
                format!("objective.{field}"),
                format!("is not a setting of a {kind} objective"),
            );
        }
    }
    match kind {
        "benchmark" => {
            let Some(f) = &o.function else {
                cx.err(
                    span,
                    "objective.function",
                    "a benchmark objective needs `function`",
                );
                return None;
            };
            let Some(function) = BenchFunction::from_name(f.get_ref()) else {
                cx.err(
                    f.span(),
                    "objective.function",
                    format!("unknown function `{}` (expected branin, hartmann6, rosenbrock, styblinski_tang or mixed)", f.get_ref()),
                );
                return None;
            };
            let steps = count(cx, o.steps.as_ref(), "objective.steps", 5, 0)?;
            if steps > 100_000 {
                cx.err(
                    o.steps.as_ref().expect("set").span(),
                    "objective.steps",
                    "must be at most 100000",
                );
            }
            let step_seconds = o.step_seconds.as_ref().map_or(0.0, |v| *v.get_ref());
            if !(0.0..=3600.0).contains(&step_seconds) {
                cx.err(
                    o.step_seconds.as_ref().expect("set").span(),
                    "objective.step_seconds",
                    "must be between 0 and 3600",
                );
            }
            let noise = o.noise.as_ref().map_or(0.1, |v| *v.get_ref());
            if !(0.0..=10.0).contains(&noise) {
                cx.err(
                    o.noise.as_ref().expect("set").span(),
                    "objective.noise",
                    "must be between 0 and 10",
                );
            }
            check_bench_space(cx, span, function, space);
            Some(ObjectiveSpec::Benchmark(BenchmarkSpec {
                function,
                steps: steps as u32,
                step_seconds,
                noise,
            }))
        }
        "command" => {
            let Some(c) = &o.command else {
                cx.err(
                    span,
                    "objective.command",
                    "a command objective needs `command = [\"program\", \"arg\", …]`",
                );
                return None;
            };
            if c.get_ref().is_empty() || c.get_ref()[0].trim().is_empty() {
                cx.err(c.span(), "objective.command", "must name a program");
                return None;
            }
            let timeout = o.timeout_seconds.as_ref().map(|t| *t.get_ref());
            if let Some(t) = timeout {
                if t.is_nan() || t <= 0.0 {
                    cx.err(
                        o.timeout_seconds.as_ref().expect("set").span(),
                        "objective.timeout_seconds",
                        "must be positive",
                    );
                }
            }
            Some(ObjectiveSpec::Command(CommandSpec {
                command: c.get_ref().clone(),
                env: o.env.map(|e| e.into_inner()).unwrap_or_default(),
                timeout_seconds: timeout,
            }))
        }
        "walk_forward" => settings::walk_forward(cx, span, &o),
        other => {
            cx.err(
                o.kind.span(),
                "objective.kind",
                format!("unknown objective `{other}` (expected: benchmark, command, walk_forward)"),
            );
            None
        }
    }
}

/// A benchmark function reads its inputs from the space by name: check they are there.
fn check_bench_space(cx: &mut Ctx, span: Range<usize>, f: BenchFunction, space: &SearchSpace) {
    let has_num = |n: &str| {
        space.params.iter().any(|p| {
            p.name == n
                && matches!(
                    p.dist,
                    Distribution::Float { .. }
                        | Distribution::Int { .. }
                        | Distribution::Fixed { .. }
                )
        })
    };
    let need: Vec<String> = match f {
        BenchFunction::Branin => (0..2).map(|i| format!("x{i}")).collect(),
        BenchFunction::Hartmann6 => (0..6).map(|i| format!("x{i}")).collect(),
        BenchFunction::Rosenbrock | BenchFunction::StyblinskiTang => {
            (0..2).map(|i| format!("x{i}")).collect()
        }
        BenchFunction::Mixed => vec!["x".into(), "n".into()],
    };
    let missing: Vec<String> = need.into_iter().filter(|n| !has_num(n)).collect();
    if !missing.is_empty() {
        cx.err(
            span.clone(),
            "objective.function",
            format!("needs numeric parameters {} in [space]", missing.join(", ")),
        );
    }
    if f == BenchFunction::Mixed && !space.params.iter().any(|p| p.name == "kind") {
        cx.err(
            span,
            "objective.function",
            "`mixed` needs a categorical parameter `kind` in [space]",
        );
    }
}
