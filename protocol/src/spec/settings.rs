//! `[sampler]`, `[pruner]` and `[[enqueue]]`: tables whose keys depend on their `kind`, read
//! key by key so that an unknown or misplaced key is named with its line and the keys the kind
//! does accept.
use super::raw::{RawTable, S};
use super::validate::{value_of, Ctx};
use super::*;
use std::collections::BTreeSet;
use std::ops::Range;

/// Reads typed keys from a table and reports the keys nobody asked for.
struct Keys<'t> {
    section: &'static str,
    kind: String,
    table: &'t RawTable,
    asked: BTreeSet<&'static str>,
}

impl<'t> Keys<'t> {
    fn new(section: &'static str, table: &'t RawTable) -> Self {
        let kind = match table.get("kind").map(|v| v.get_ref()) {
            Some(toml::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        Self {
            section,
            kind,
            table,
            asked: BTreeSet::from(["kind"]),
        }
    }

    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.section)
    }

    fn get(&mut self, k: &'static str) -> Option<&'t S<toml::Value>> {
        self.asked.insert(k);
        self.table.get(k)
    }

    fn int(&mut self, cx: &mut Ctx, k: &'static str, default: i64, min: i64, max: i64) -> i64 {
        let Some(v) = self.get(k) else {
            return default;
        };
        match v.get_ref() {
            toml::Value::Integer(i) if (min..=max).contains(i) => *i,
            toml::Value::Integer(i) => {
                cx.err(
                    v.span(),
                    self.key(k),
                    format!("must be between {min} and {max}, got {i}"),
                );
                default
            }
            other => {
                cx.err(
                    v.span(),
                    self.key(k),
                    format!("must be an integer, got {other}"),
                );
                default
            }
        }
    }

    fn opt_float(&mut self, cx: &mut Ctx, k: &'static str, lo: f64, hi: f64) -> Option<f64> {
        let v = self.get(k)?;
        let x = match v.get_ref() {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) => *f,
            other => {
                cx.err(
                    v.span(),
                    self.key(k),
                    format!("must be a number, got {other}"),
                );
                return None;
            }
        };
        if !(lo..=hi).contains(&x) {
            cx.err(
                v.span(),
                self.key(k),
                format!("must be between {lo} and {hi}, got {x}"),
            );
            return None;
        }
        Some(x)
    }

    fn float(&mut self, cx: &mut Ctx, k: &'static str, default: f64, lo: f64, hi: f64) -> f64 {
        self.opt_float(cx, k, lo, hi).unwrap_or(default)
    }

    fn bool(&mut self, cx: &mut Ctx, k: &'static str, default: bool) -> bool {
        match self.get(k) {
            None => default,
            Some(v) => match v.get_ref() {
                toml::Value::Boolean(b) => *b,
                other => {
                    cx.err(
                        v.span(),
                        self.key(k),
                        format!("must be true or false, got {other}"),
                    );
                    default
                }
            },
        }
    }

    fn choice(
        &mut self,
        cx: &mut Ctx,
        k: &'static str,
        default: &'static str,
        allowed: &[&'static str],
    ) -> &'static str {
        let Some(v) = self.get(k) else {
            return default;
        };
        if let toml::Value::String(s) = v.get_ref() {
            if let Some(a) = allowed.iter().find(|a| **a == s) {
                return a;
            }
        }
        cx.err(
            v.span(),
            self.key(k),
            format!("must be one of {}, got {}", allowed.join(", "), v.get_ref()),
        );
        default
    }

    /// Every key that no reader asked for is an error naming the accepted ones.
    fn finish(self, cx: &mut Ctx, what: &str) {
        let accepted: Vec<&str> = self
            .asked
            .iter()
            .copied()
            .filter(|k| *k != "kind")
            .collect();
        for (k, v) in self.table {
            if !self.asked.contains(k.as_str()) {
                let hint = if accepted.is_empty() {
                    format!("the {} {what} has no settings", self.kind)
                } else {
                    format!(
                        "settings of the {} {what}: {}",
                        self.kind,
                        accepted.join(", ")
                    )
                };
                cx.err(
                    v.span(),
                    self.key(k),
                    format!("is not a setting of the {} {what} ({hint})", self.kind),
                );
            }
        }
    }
}

/// The `kind` key of a section, or an error naming the accepted kinds.
fn kind(cx: &mut Ctx, section: &str, t: &S<RawTable>, kinds: &[&str]) -> Option<String> {
    let key = format!("{section}.kind");
    match t.get_ref().get("kind") {
        None => {
            cx.err(
                t.span(),
                key,
                format!("missing (expected one of: {})", kinds.join(", ")),
            );
            None
        }
        Some(v) => match v.get_ref() {
            toml::Value::String(s) if kinds.contains(&s.as_str()) => Some(s.clone()),
            other => {
                let shown = match other {
                    toml::Value::String(s) => s.clone(),
                    o => o.to_string(),
                };
                cx.err(
                    v.span(),
                    key,
                    format!(
                        "unknown {section} `{shown}` (expected: {})",
                        kinds.join(", ")
                    ),
                );
                None
            }
        },
    }
}

/// `[sampler]`.
pub(super) fn sampler(cx: &mut Ctx, t: &S<RawTable>, n_objectives: usize) -> Option<SamplerSpec> {
    const KINDS: [&str; 8] = ["random", "grid", "qmc", "tpe", "cmaes", "nsga2", "ga", "gp"];
    let kind = kind(cx, "sampler", t, &KINDS)?;
    let mut k = Keys::new("sampler", t.get_ref());
    let u32max = u32::MAX as i64;
    let spec = match kind.as_str() {
        "random" => SamplerSpec::Random,
        "grid" => SamplerSpec::Grid(GridSpec {
            points: k.int(cx, "points", 10, 1, 100_000) as u32,
        }),
        "qmc" => SamplerSpec::Qmc(QmcSpec {
            scramble: k.bool(cx, "scramble", true),
        }),
        "tpe" => {
            // Defaults from `TpeSpec::default()`, except that joint draws keep Optuna's 24
            // candidates: univariate TPE takes the best candidate in every parameter at once,
            // far greedier than one joint choice (docs/benchmarks.md, held-out problems).
            let d = TpeSpec::default();
            let multivariate = k.bool(cx, "multivariate", d.multivariate);
            let group = k.bool(cx, "group", d.group);
            if group && !multivariate {
                if let Some(v) = t.get_ref().get("group") {
                    cx.err(
                        v.span(),
                        "sampler.group",
                        "`group = true` needs `multivariate = true`",
                    );
                }
            }
            SamplerSpec::Tpe(TpeSpec {
                n_startup_trials: k.int(
                    cx,
                    "n_startup_trials",
                    d.n_startup_trials.into(),
                    0,
                    u32max,
                ) as u32,
                n_ei_candidates: k.int(
                    cx,
                    "n_ei_candidates",
                    if multivariate {
                        24
                    } else {
                        d.n_ei_candidates.into()
                    },
                    1,
                    100_000,
                ) as u32,
                gamma: k.float(cx, "gamma", d.gamma, 1e-6, 1.0),
                gamma_max: k.int(cx, "gamma_max", d.gamma_max.into(), 1, u32max) as u32,
                prior_weight: k.float(cx, "prior_weight", d.prior_weight, 0.0, 1e6),
                consider_endpoints: k.bool(cx, "consider_endpoints", d.consider_endpoints),
                consider_magic_clip: k.bool(cx, "consider_magic_clip", d.consider_magic_clip),
                multivariate,
                group,
                constant_liar: k.bool(cx, "constant_liar", d.constant_liar),
            })
        }
        "cmaes" => {
            let restart = match k.choice(cx, "restart", "none", &["none", "ipop", "bipop"]) {
                "ipop" => Restart::Ipop,
                "bipop" => Restart::Bipop,
                _ => Restart::None,
            };
            let popsize = k
                .get("popsize")
                .map(|_| k.int(cx, "popsize", 8, 2, 100_000) as u32);
            SamplerSpec::CmaEs(CmaEsSpec {
                n_startup_trials: k.int(cx, "n_startup_trials", 1, 0, u32max) as u32,
                sigma0: k.float(cx, "sigma0", 1.0 / 6.0, 1e-9, 1.0),
                popsize,
                restart,
                inc_popsize: k.int(cx, "inc_popsize", 2, 1, 100) as u32,
                active: k.bool(cx, "active", true),
                orthogonal: k.bool(cx, "orthogonal", true),
                independent: match k.choice(cx, "independent", "tpe", &["tpe", "random"]) {
                    "random" => Independent::Random,
                    _ => Independent::Tpe,
                },
            })
        }
        "nsga2" => SamplerSpec::Nsga2(Nsga2Spec {
            population_size: k.int(cx, "population_size", 50, 2, 1_000_000) as u32,
            mutation_prob: k.opt_float(cx, "mutation_prob", 0.0, 1.0),
            crossover_prob: k.float(cx, "crossover_prob", 0.9, 0.0, 1.0),
            swapping_prob: k.float(cx, "swapping_prob", 0.5, 0.0, 1.0),
            crossover: match k.choice(cx, "crossover", "uniform", &["uniform", "sbx"]) {
                "sbx" => Crossover::Sbx,
                _ => Crossover::Uniform,
            },
        }),
        "ga" => {
            let population_size = k.int(cx, "population_size", 50, 2, 1_000_000) as u32;
            let elite = k.int(cx, "elite", 1, 0, 1_000_000) as u32;
            if elite >= population_size {
                cx.err(
                    t.span(),
                    "sampler.elite",
                    "must be smaller than population_size",
                );
            }
            SamplerSpec::Ga(GaSpec {
                population_size,
                mutation_prob: k.opt_float(cx, "mutation_prob", 0.0, 1.0),
                crossover_prob: k.float(cx, "crossover_prob", 0.9, 0.0, 1.0),
                tournament_size: k.int(cx, "tournament_size", 2, 1, 1000) as u32,
                elite,
            })
        }
        "gp" => SamplerSpec::Gp(GpSpec {
            n_startup_trials: k.int(cx, "n_startup_trials", 10, 1, u32max) as u32,
            n_candidates: k.int(cx, "n_candidates", 2048, 16, 1_000_000) as u32,
        }),
        _ => unreachable!("kind() checked the name"),
    };
    k.finish(cx, "sampler");
    let single_only = matches!(
        spec,
        SamplerSpec::CmaEs(_) | SamplerSpec::Ga(_) | SamplerSpec::Gp(_)
    );
    if single_only && n_objectives > 1 {
        cx.err(
            t.span(),
            "sampler.kind",
            format!(
                "the {kind} sampler optimises one objective; this study has {n_objectives} (use nsga2 or tpe)"
            ),
        );
    }
    Some(spec)
}

/// `[pruner]`.
pub(super) fn pruner(cx: &mut Ctx, t: &S<RawTable>) -> Option<PrunerSpec> {
    const KINDS: [&str; 7] = [
        "none",
        "median",
        "percentile",
        "threshold",
        "asha",
        "hyperband",
        "paired",
    ];
    let kind = kind(cx, "pruner", t, &KINDS)?;
    let mut k = Keys::new("pruner", t.get_ref());
    let big = i64::MAX / 4;
    let u32max = u32::MAX as i64;
    let percentile = |k: &mut Keys, cx: &mut Ctx, p: f64| PercentileSpec {
        percentile: p,
        n_startup_trials: k.int(cx, "n_startup_trials", 5, 0, u32max) as u32,
        n_warmup_steps: k.int(cx, "n_warmup_steps", 0, 0, big) as u64,
        interval_steps: k.int(cx, "interval_steps", 1, 1, big) as u64,
        n_min_trials: k.int(cx, "n_min_trials", 1, 1, u32max) as u32,
    };
    let spec = match kind.as_str() {
        "none" => PrunerSpec::None,
        "median" => PrunerSpec::Median(percentile(&mut k, cx, 50.0)),
        "percentile" => {
            let p = match k.opt_float(cx, "percentile", 0.0, 100.0) {
                Some(p) => p,
                None => {
                    if !t.get_ref().contains_key("percentile") {
                        cx.err(
                            t.span(),
                            "pruner.percentile",
                            "the percentile pruner needs `percentile` (0–100; 50 = median)",
                        );
                    }
                    50.0
                }
            };
            PrunerSpec::Percentile(percentile(&mut k, cx, p))
        }
        "threshold" => {
            let lower = k.opt_float(cx, "lower", f64::MIN, f64::MAX);
            let upper = k.opt_float(cx, "upper", f64::MIN, f64::MAX);
            match (lower, upper) {
                (None, None) => cx.err(
                    t.span(),
                    "pruner.lower",
                    "the threshold pruner needs `lower`, `upper` or both",
                ),
                (Some(l), Some(u)) if l > u => cx.err(
                    t.span(),
                    "pruner.lower",
                    format!("lower ({l}) is greater than upper ({u})"),
                ),
                _ => {}
            }
            PrunerSpec::Threshold(ThresholdSpec {
                lower,
                upper,
                n_warmup_steps: k.int(cx, "n_warmup_steps", 0, 0, big) as u64,
                interval_steps: k.int(cx, "interval_steps", 1, 1, big) as u64,
            })
        }
        "asha" => PrunerSpec::Asha(AshaSpec {
            min_resource: k.int(cx, "min_resource", 1, 1, big) as u64,
            reduction_factor: k.int(cx, "reduction_factor", 4, 2, 1000) as u64,
            min_early_stopping_rate: k.int(cx, "min_early_stopping_rate", 0, 0, 60) as u32,
            bootstrap_count: k.int(cx, "bootstrap_count", 0, 0, u32max) as u32,
        }),
        "hyperband" => {
            let min_resource = k.int(cx, "min_resource", 1, 1, big) as u64;
            let max_resource = match k.get("max_resource") {
                None => None,
                Some(v) => match v.get_ref() {
                    toml::Value::String(s) if s == "auto" => None,
                    toml::Value::Integer(i) if *i >= min_resource as i64 => Some(*i as u64),
                    other => {
                        cx.err(
                            v.span(),
                            "pruner.max_resource",
                            format!(
                                "must be \"auto\" or an integer of at least min_resource ({min_resource}), got {other}"
                            ),
                        );
                        None
                    }
                },
            };
            PrunerSpec::Hyperband(HyperbandSpec {
                min_resource,
                max_resource,
                reduction_factor: k.int(cx, "reduction_factor", 3, 2, 1000) as u64,
            })
        }
        "paired" => PrunerSpec::Paired(PairedSpec {
            alpha: k.float(cx, "alpha", 0.1, 1e-12, 0.5),
            min_steps: k.int(cx, "min_steps", 2, 1, 100_000) as u32,
            n_startup_trials: k.int(cx, "n_startup_trials", 1, 1, u32max) as u32,
        }),
        _ => unreachable!("kind() checked the name"),
    };
    k.finish(cx, "pruner");
    Some(spec)
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

/// `[[enqueue]]`: each table is a (possibly partial) parameter set checked against the space.
pub(super) fn enqueue(cx: &mut Ctx, tables: &[S<RawTable>], space: &SearchSpace) -> Vec<Params> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let mut params = Params::new();
        for (name, v) in t.get_ref() {
            let key = format!("enqueue[{i}].{name}");
            let span: Range<usize> = v.span();
            let Some(p) = space.params.iter().find(|p| &p.name == name) else {
                cx.err(span, key, "is not a parameter of the space");
                continue;
            };
            let Some(value) = value_of(v.get_ref()) else {
                cx.err(span, key, "must be a string, number or boolean");
                continue;
            };
            // An integer written for a float parameter is that float.
            let value = match (&p.dist, value) {
                (Distribution::Float { .. }, ParamValue::Int(i)) => ParamValue::Float(i as f64),
                (_, v) => v,
            };
            if let Err(e) = fits(&p.dist, &value) {
                cx.err(span, key, e);
                continue;
            }
            params.insert(name.clone(), value);
        }
        // A value for a parameter that its parents make inactive is a mistake worth naming.
        let mut decided = Params::new();
        for p in &space.params {
            if let Some(v) = params.get(&p.name) {
                if SearchSpace::is_active(p, &decided) || p.when.is_empty() {
                    decided.insert(p.name.clone(), v.clone());
                } else if p.when.iter().all(|(parent, _)| params.contains_key(parent)) {
                    cx.err(
                        t.get_ref()[&p.name].span(),
                        format!("enqueue[{i}].{}", p.name),
                        "is inactive for the parent values given",
                    );
                } else {
                    decided.insert(p.name.clone(), v.clone());
                }
            }
        }
        out.push(params);
    }
    out
}

/// `[[constraint]]`: `metric` and `min`, `max` or both.
pub(super) fn constraints(
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

fn num_value(
    cx: &mut Ctx,
    v: &Option<S<toml::Value>>,
    key: &str,
    default: f64,
    lo: f64,
    hi: f64,
) -> f64 {
    let Some(v) = v else {
        return default;
    };
    let x = match v.get_ref() {
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        other => {
            cx.err(v.span(), key, format!("must be a number, got {other}"));
            return default;
        }
    };
    if !(lo..=hi).contains(&x) {
        cx.err(
            v.span(),
            key,
            format!("must be between {lo} and {hi}, got {x}"),
        );
        return default;
    }
    x
}

fn days(cx: &mut Ctx, v: &Option<S<i64>>, key: &str, default: i64, min: i64) -> u32 {
    match v {
        None => default as u32,
        Some(x) if *x.get_ref() < min || *x.get_ref() > 1_000_000 => {
            cx.err(
                x.span(),
                key,
                format!("must be between {min} and 1000000, got {}", x.get_ref()),
            );
            default as u32
        }
        Some(x) => *x.get_ref() as u32,
    }
}

/// `[objective]` with `kind = "walk_forward"`.
pub(super) fn walk_forward(
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
    if !["ridge", "lightgbm", "lstm", "ensemble"].contains(&model.as_str()) {
        let sp = o.model.as_ref().map_or(span.clone(), |m| m.span());
        cx.err(
            sp,
            "objective.model",
            format!("unknown model `{model}` (expected: ridge, lightgbm, lstm, ensemble)"),
        );
    }
    let ensemble = ensemble_spec(cx, o, &model, span.clone());
    let uses = |name: &str| {
        model == name
            || ensemble
                .as_ref()
                .is_some_and(|e| e.members.iter().any(|m| m == name))
    };
    let mut model_params = BTreeMap::new();
    for (table, section, name, settings) in [
        (
            &o.lightgbm,
            "objective.lightgbm",
            "lightgbm",
            &LIGHTGBM_SETTINGS[..],
        ),
        (&o.lstm, "objective.lstm", "lstm", &LSTM_SETTINGS[..]),
    ] {
        let Some(t) = table else { continue };
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
        for &(key, lo, hi, int) in settings {
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
                    format!("{name}.{key}")
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
    let sizing = o
        .sizing
        .as_ref()
        .map_or("sign".to_string(), |m| m.get_ref().clone());
    if !["sign", "threshold", "probability"].contains(&sizing.as_str()) {
        let sp = o.sizing.as_ref().map_or(span.clone(), |m| m.span());
        cx.err(
            sp,
            "objective.sizing",
            format!("unknown sizing `{sizing}` (expected: sign, threshold, probability)"),
        );
    }
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
    let splits = match o.splits.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
        None | Some(("walk_forward", _)) => {
            for (key, v) in [
                ("groups", &o.groups),
                ("test_groups", &o.test_groups),
                ("embargo", &o.embargo),
            ] {
                if let Some(v) = v {
                    cx.err(
                        v.span(),
                        format!("objective.{key}"),
                        "only with `splits = \"cpcv\"`",
                    );
                }
            }
            Splits::WalkForward
        }
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
            let embargo = match &o.embargo {
                Some(e) if *e.get_ref() == 0 => 0,
                _ => days(cx, &o.embargo, "objective.embargo", 0, 0),
            };
            Splits::Cpcv {
                groups,
                test_groups,
                embargo,
            }
        }
        Some((other, sp)) => {
            cx.err(
                sp,
                "objective.splits",
                format!("must be \"walk_forward\" or \"cpcv\", got `{other}`"),
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
    Some(ObjectiveSpec::WalkForward(Box::new(WalkForwardSpec {
        data,
        features,
        horizon,
        classify,
        train: days(cx, &o.train, "objective.train", 504, 20),
        test,
        step: days(cx, &o.step, "objective.step", test as i64, 1),
        expanding: o.expanding.as_ref().is_some_and(|e| *e.get_ref()),
        model,
        alpha: num_value(cx, &o.alpha, "objective.alpha", 1.0, 0.0, 1e12),
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
        report_per_fold,
        objectives: Vec::new(),
        holdout: match &o.holdout {
            None => 0,
            Some(h) if *h.get_ref() == 0 => 0,
            Some(_) => days(cx, &o.holdout, "objective.holdout", 0, 20),
        },
        holdout_top: days(cx, &o.holdout_top, "objective.holdout_top", 5, 1).min(1000),
        model_params,
        validation,
        early_stopping,
        categorical,
        ensemble,
        budget_epochs,
        splits,
        holdout_run: false,
        model_seed: None,
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
    let method = k.choice(
        cx,
        "method",
        "voting",
        &["voting", "blending", "dynamic", "stacking"],
    );
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
            members = names;
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
        if method != "voting"
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
        method: method.to_string(),
        members,
        weights,
    })
}

static EMPTY: RawTable = RawTable::new();
