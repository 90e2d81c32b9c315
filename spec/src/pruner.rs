//! `[pruner]`: the kind and its settings.
use crate::keys::{kind, Keys};
use crate::raw::{RawTable, S};
use crate::validate::Ctx;
use mlt_protocol::spec::*;

/// `[pruner]`.
pub(crate) fn pruner(cx: &mut Ctx, t: &S<RawTable>) -> Option<PrunerSpec> {
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
