//! `[objective]`: benchmark, command or walk-forward, each checked against the space.
use crate::raw::{RawObjective, S};
use crate::validate::count;
use crate::validate::Ctx;
use mlt_protocol::spec::*;
use std::ops::Range;

pub(crate) fn objective(
    cx: &mut Ctx,
    o: S<RawObjective>,
    space: &SearchSpace,
) -> Option<ObjectiveSpec> {
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
        ("windows", o.windows.as_ref().map(|v| v.span())),
        ("split_seed", o.split_seed.as_ref().map(|v| v.span())),
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
        "walk_forward" => crate::walk_forward::walk_forward(cx, span, &o),
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
