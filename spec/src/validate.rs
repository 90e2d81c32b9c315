//! Raw spec → validated [`Spec`], collecting every problem with its line and key.
use crate::grid::{grid_points, MAX_GRID_POINTS};
use crate::raw::{RawSpec, RawStudy, S};
use crate::tables::WALK_FORWARD_METRICS;
use crate::{constraints, enqueue, objective, pruner, sampler, space, SpecError, SpecIssue};
use mlt_protocol::spec::*;
use std::ops::Range;

pub(crate) struct Ctx<'a> {
    text: &'a str,
    issues: Vec<SpecIssue>,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    pub(crate) fn err(
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
        Some(t) => sampler::sampler(cx, t, n_objectives),
    };
    let pruner = match &raw.pruner {
        None => Some(PrunerSpec::None),
        Some(t) => pruner::pruner(cx, t),
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
        Some(s) => space::space(cx, s.into_inner()),
        None => SearchSpace::default(),
    };
    let enqueue = enqueue::enqueue(cx, &raw.enqueue, &space);
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
    let objective = objective::objective(cx, raw.objective, &space);
    let constraints = constraints::constraints(cx, &raw.constraint, objective.as_ref(), &space);
    // A walk-forward study's objectives and constraints are its metrics.
    let mut objective = objective;
    if let (Some(ObjectiveSpec::WalkForward(wf)), Some(st)) = (objective.as_mut(), study.as_ref()) {
        wf.report.objectives = st
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
pub(crate) fn count(
    cx: &mut Ctx,
    v: Option<&S<i64>>,
    key: &str,
    default: i64,
    min: i64,
) -> Option<i64> {
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
