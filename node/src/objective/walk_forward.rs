//! The `walk_forward` objective: bars → features (look-ahead guarded) → labels → purged
//! walk-forward folds → per fold: scale on train only, fit the model, predict the test window,
//! trade it with costs → report the objectives on the out-of-sample returns so far after every
//! fold (a prune verdict stops before the next) → final metrics.
use super::TrialContext;
use crate::eval::backtest::{
    direction, direction_scores, forward_return, positions, strategy_returns, turnover, Sizing,
};
use crate::eval::data::{read_csv, Bars};
use crate::eval::features::{lookahead_check, parse};
use crate::eval::metrics as m;
use crate::eval::model::model_for;
use crate::eval::splits::walk_forward;
use crate::eval::synthetic::{generate, Synthetic};
use mlt_protocol::messages::{AssignMsg, Outcome, Verdict};
use mlt_protocol::records::{Metrics, ParamValue, Params, ReturnSeries};
use mlt_protocol::spec::{DataSource, WalkForwardSpec};
use std::path::Path;

/// Loads the bars of a data source, one `Bars` per instrument, restricted to the dates all
/// instruments have (relative files are taken from the study's folder).
pub fn load(data: &DataSource, workdir: Option<&str>) -> Result<Vec<Bars>, String> {
    let all: Vec<Bars> = match data {
        DataSource::Synthetic {
            days,
            seed,
            strength,
            instruments,
        } => (0..*instruments as u64)
            .map(|i| {
                generate(&Synthetic {
                    days: *days as usize,
                    seed: seed.wrapping_add(i),
                    strength: *strength,
                    ..Default::default()
                })
            })
            .collect::<Result<_, _>>()?,
        DataSource::Files { paths, adjusted } => paths
            .iter()
            .map(|path| {
                let p = Path::new(path);
                let full = match workdir {
                    Some(w) if p.is_relative() => Path::new(w).join(p),
                    _ => p.to_path_buf(),
                };
                read_csv(&full, *adjusted).map(|(b, _)| b)
            })
            .collect::<Result<_, _>>()?,
        DataSource::Datasets { files, .. } => {
            return Err(format!(
                "dataset {} was not fetched (uploaded datasets are read from the node's cache)",
                files.first().map_or(String::new(), |f| f.to_spec())
            ))
        }
    };
    if all.len() < 2 {
        return Ok(all);
    }
    let mut common: std::collections::BTreeSet<i64> = all[0].days.iter().copied().collect();
    for b in &all[1..] {
        let d: std::collections::BTreeSet<i64> = b.days.iter().copied().collect();
        common = common.intersection(&d).copied().collect();
    }
    if common.is_empty() {
        return Err("the instruments have no date in common".into());
    }
    Ok(all
        .into_iter()
        .map(|b| {
            let keep: Vec<usize> = (0..b.len())
                .filter(|&i| common.contains(&b.days[i]))
                .collect();
            let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
            Bars {
                instrument: b.instrument.clone(),
                days: keep.iter().map(|&i| b.days[i]).collect(),
                open: pick(&b.open),
                high: pick(&b.high),
                low: pick(&b.low),
                close: pick(&b.close),
                volume: b.volume.as_ref().map(|v| pick(v)),
            }
        })
        .collect())
}

/// `$name` in an expression replaced by the trial's parameter of that name.
fn substitute(expr: &str, params: &Params) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let v = match params.get(name) {
            Some(ParamValue::Int(x)) => x.to_string(),
            Some(ParamValue::Float(x)) => format!("{x:?}"),
            Some(other) => {
                return Err(format!("`${name}` must be a number, the trial has {other}"))
            }
            None => return Err(format!("`${name}` is not a parameter of this trial")),
        };
        out.push_str(&v);
        rest = &tail[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The checks a researcher gets at submit time, before anything runs: the data loads, every
/// feature parses and passes the look-ahead guard with its `$parameters` at the low and at the
/// high end of their ranges. The error names the key (`objective.features.mom`) and the problem.
pub fn check(
    spec: &WalkForwardSpec,
    space: &mlt_protocol::spec::SearchSpace,
    workdir: Option<&str>,
) -> Result<(), (String, String)> {
    use mlt_protocol::spec::Distribution as D;
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
    let n = insts.iter().map(|b| b.len()).min().unwrap_or(0);
    let need = spec.train as usize + spec.horizon as usize + spec.test as usize;
    if n < need {
        return Err((
            "objective.train".into(),
            format!(
                "{n} bars are too few for {} training + {} purge + {} test days",
                spec.train, spec.horizon, spec.test
            ),
        ));
    }
    Ok(())
}

/// The metrics of out-of-sample returns, positions and predictions.
fn metrics_of(r: &[f64], pos: &[f64], pred: &[f64], next: &[f64]) -> Metrics {
    let (acc, prec, rec, f1) = direction_scores(pred, next);
    let (sr, skew, kurt) = m::moments(r);
    [
        ("sharpe", m::sharpe(r)),
        ("sortino", m::sortino(r)),
        ("annual_return", m::annual_return(r)),
        ("annual_volatility", m::annual_volatility(r)),
        ("max_drawdown", m::max_drawdown(r)),
        ("calmar", m::calmar(r)),
        ("win_rate", m::win_rate(r)),
        ("var_5", m::value_at_risk(r, 0.05)),
        ("cvar_5", m::conditional_value_at_risk(r, 0.05)),
        ("turnover", turnover(pos)),
        ("accuracy", acc),
        ("precision", prec),
        ("recall", rec),
        ("f1", f1),
        ("sharpe_per_period", sr),
        ("skew", skew),
        ("kurtosis", kurt),
        ("observations", r.len() as f64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn values_of(spec: &WalkForwardSpec, metrics: &Metrics) -> Vec<f64> {
    spec.objectives
        .iter()
        .map(|o| metrics.get(o).copied().unwrap_or(f64::NAN))
        .collect()
}

/// Where a trial's time went (for the evaluation benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Loading (or generating) the bars.
    pub load: f64,
    /// Features, look-ahead guard and labels.
    pub features: f64,
    /// Model fits.
    pub fit: f64,
    /// The whole trial.
    pub total: f64,
    /// Folds evaluated.
    pub folds: usize,
}

/// [`run_walk_forward`] with its timings.
pub fn run_walk_forward_timed(
    spec: &WalkForwardSpec,
    assign: &AssignMsg,
    ctx: &mut dyn TrialContext,
) -> (Outcome, Timings) {
    let mut t = Timings::default();
    let start = std::time::Instant::now();
    let out = match evaluate(spec, assign, ctx, &mut t) {
        Ok(o) => o,
        Err(e) => Outcome::Failed(e),
    };
    t.total = start.elapsed().as_secs_f64();
    (out, t)
}

/// Runs one walk-forward trial.
pub fn run_walk_forward(
    spec: &WalkForwardSpec,
    assign: &AssignMsg,
    ctx: &mut dyn TrialContext,
) -> Outcome {
    run_walk_forward_timed(spec, assign, ctx).0
}

/// One instrument's features, labels and next-day returns.
struct Inst {
    cols: Vec<Vec<f64>>,
    label: Vec<f64>,
    next: Vec<f64>,
}

impl Inst {
    fn row(&self, t: usize) -> Option<Vec<f64>> {
        let r: Vec<f64> = self.cols.iter().map(|c| c[t]).collect();
        r.iter().all(|v| v.is_finite()).then_some(r)
    }
}

fn evaluate(
    spec: &WalkForwardSpec,
    assign: &AssignMsg,
    ctx: &mut dyn TrialContext,
    timings: &mut Timings,
) -> Result<Outcome, String> {
    let clock = std::time::Instant::now();
    let all_bars = load(&spec.data, assign.workdir.as_deref())?;
    timings.load = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let params = &assign.params;
    let h = spec.horizon as usize;
    let mut insts = Vec::new();
    for bars in &all_bars {
        let mut cols = Vec::new();
        for (name, text) in &spec.features {
            let text = substitute(text, params).map_err(|e| format!("feature `{name}`: {e}"))?;
            let e = parse(&text).map_err(|e| format!("feature `{name}` = `{text}`: {e}"))?;
            // The guard computes the feature on all the data: that is the column.
            cols.push(lookahead_check(name, &e, bars, 25)?);
        }
        insts.push(Inst {
            cols,
            label: if spec.classify {
                direction(&bars.close, h)
            } else {
                forward_return(&bars.close, h)
            },
            next: forward_return(&bars.close, 1),
        });
    }
    timings.features = clock.elapsed().as_secs_f64();
    let n = all_bars.first().map_or(0, |b| b.len());
    let folds = walk_forward(
        n,
        spec.train as usize,
        spec.test as usize,
        spec.step as usize,
        spec.expanding,
        h,
    )
    .map_err(|e| format!("splits: {e}"))?;
    let num = |k: &str, default: f64| match params.get(k) {
        Some(ParamValue::Float(x)) => *x,
        Some(ParamValue::Int(x)) => *x as f64,
        _ => default,
    };
    let alpha = num("alpha", spec.alpha);
    let threshold = num("threshold", spec.threshold);
    let sizing = match spec.sizing.as_str() {
        "threshold" => Sizing::Threshold(threshold),
        "probability" => Sizing::Probability,
        _ => Sizing::Sign,
    };
    let k_inst = insts.len() as f64;
    let (mut all_r, mut all_pos, mut all_pred, mut all_next) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut prev_pos = vec![0.0; insts.len()];
    // Running sums of the OOS returns: the common objectives need no pass over the history.
    let (mut s1, mut s2, mut wins) = (0.0f64, 0.0f64, 0usize);
    let cheap = spec.objectives.iter().all(|o| {
        [
            "sharpe",
            "sharpe_per_period",
            "annual_volatility",
            "win_rate",
            "observations",
        ]
        .contains(&o.as_str())
    });
    for (k, fold) in folds.iter().enumerate() {
        if ctx.stopped() {
            return Ok(Outcome::Pruned);
        }
        // One model over every instrument's training rows (purged by the split).
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for inst in &insts {
            for &t in &fold.train {
                if let (Some(r), true) = (inst.row(t), inst.label[t].is_finite()) {
                    x.push(r);
                    y.push(inst.label[t]);
                }
            }
        }
        let mut model = model_for(&spec.model, alpha)?;
        let clock = std::time::Instant::now();
        model
            .fit(&x, &y)
            .map_err(|e| format!("fold {}: {e} ({} usable training rows)", k + 1, x.len()))?;
        timings.fit += clock.elapsed().as_secs_f64();
        timings.folds += 1;
        let b0 = y.iter().sum::<f64>() / y.len().max(1) as f64;
        let scale = (y.iter().map(|v| v * v).sum::<f64>() / y.len().max(1) as f64)
            .sqrt()
            .max(1e-12);
        // The portfolio: equal weight across instruments, each traded on its own prediction.
        let mut fold_r = vec![0.0; fold.test.len()];
        let (mut fold_pos, mut fold_pred, mut fold_next) = (Vec::new(), Vec::new(), Vec::new());
        for (i, inst) in insts.iter().enumerate() {
            let pred: Vec<f64> = fold
                .test
                .iter()
                .map(|&t| inst.row(t).map_or(f64::NAN, |r| model.predict(&r)))
                .collect();
            // A classifier's prediction is the probability of "up": centre it for sign and
            // threshold sizing. A regression's predicted return goes through a logistic of its
            // scale for probability sizing.
            let sized: Vec<f64> = if spec.classify {
                if sizing == Sizing::Probability {
                    pred.iter().map(|p| p.clamp(0.0, 1.0)).collect()
                } else {
                    pred.iter().map(|p| p - 0.5).collect()
                }
            } else if sizing == Sizing::Probability {
                pred.iter()
                    .map(|p| 1.0 / (1.0 + (-(p - b0) / scale).exp()))
                    .collect()
            } else {
                pred.clone()
            };
            let pos = positions(&sized, sizing, spec.long_only);
            let nx: Vec<f64> = fold.test.iter().map(|&t| inst.next[t]).collect();
            let mut with_prev = vec![prev_pos[i]];
            with_prev.extend(&pos);
            let mut nx0 = vec![0.0];
            nx0.extend(&nx);
            // The first entry is the carried-over position (no return, no trade from it).
            let r = strategy_returns(&with_prev, &nx0, spec.cost_bps, spec.slippage_bps);
            prev_pos[i] = *pos.last().unwrap_or(&prev_pos[i]);
            for (j, v) in r[1..].iter().enumerate() {
                fold_r[j] += v / k_inst;
            }
            fold_pos.extend(pos);
            // Direction scores read "up" as a positive prediction.
            fold_pred.extend(
                pred.iter()
                    .map(|p| if spec.classify { p - 0.5 } else { *p }),
            );
            fold_next.extend(nx);
        }
        all_r.extend(&fold_r);
        all_pos.extend(&fold_pos);
        all_pred.extend(&fold_pred);
        all_next.extend(&fold_next);
        for v in &fold_r {
            s1 += v;
            s2 += v * v;
            wins += usize::from(*v > 0.0);
        }
        let reported = if spec.report_per_fold {
            metrics_of(&fold_r, &fold_pos, &fold_pred, &fold_next)
        } else if cheap {
            let n = all_r.len() as f64;
            let mean = s1 / n;
            let sd = ((s2 - n * mean * mean) / (n - 1.0)).max(0.0).sqrt();
            [
                ("sharpe", mean / sd * 252f64.sqrt()),
                ("sharpe_per_period", mean / sd),
                ("annual_volatility", sd * 252f64.sqrt()),
                ("win_rate", wins as f64 / n),
                ("observations", n),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        } else {
            metrics_of(&all_r, &all_pos, &all_pred, &all_next)
        };
        match ctx.report(k as u64 + 1, values_of(spec, &reported)) {
            Verdict::Continue => {}
            Verdict::Prune | Verdict::Stale => return Ok(Outcome::Pruned),
        }
    }
    let metrics = metrics_of(&all_r, &all_pos, &all_pred, &all_next);
    let days = all_bars.first().map_or(&[][..], |b| &b.days[..]);
    let returns = ReturnSeries {
        days: folds
            .iter()
            .flat_map(|f| f.test.iter().map(|&t| days[t]))
            .collect(),
        values: all_r,
    };
    Ok(Outcome::CompleteWithReturns(
        values_of(spec, &metrics),
        metrics,
        returns,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::ids::{SlotId, StudyId, TrialId, TrialKey};

    struct Ctx(Vec<(u64, Vec<f64>)>);
    impl TrialContext for Ctx {
        fn report(&mut self, step: u64, values: Vec<f64>) -> Verdict {
            self.0.push((step, values));
            Verdict::Continue
        }
        fn stopped(&self) -> bool {
            false
        }
    }

    fn spec(features: &[(&str, &str)], strength: f64) -> WalkForwardSpec {
        WalkForwardSpec {
            data: DataSource::Synthetic {
                days: 3000,
                seed: 3,
                strength,
                instruments: 1,
            },
            features: features
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            horizon: 1,
            classify: false,
            train: 500,
            test: 250,
            step: 250,
            expanding: false,
            model: "ridge".into(),
            alpha: 1.0,
            sizing: "sign".into(),
            threshold: 0.0,
            long_only: false,
            cost_bps: 0.0,
            slippage_bps: 0.0,
            report_per_fold: false,
            objectives: vec!["sharpe".into(), "max_drawdown".into()],
        }
    }

    fn assign(params: Params) -> AssignMsg {
        AssignMsg {
            key: TrialKey {
                study: StudyId(1),
                trial: TrialId(0),
                attempt: 1,
            },
            slot: SlotId(0),
            study_name: "t".into(),
            params,
            objective: mlt_protocol::spec::ObjectiveSpec::Command(
                mlt_protocol::spec::CommandSpec {
                    command: vec!["true".into()],
                    env: Default::default(),
                    timeout_seconds: None,
                },
            ),
            workdir: None,
        }
    }

    #[test]
    fn the_momentum_edge_is_found_out_of_sample_and_reported_per_fold() {
        // 5-day momentum in units of its own dispersion: the synthetic market's planted edge.
        let feats = [("mom", "sum(returns, 5) / (std(returns, $w) * 2.236)")];
        let params: Params = [("w".to_string(), ParamValue::Int(20))]
            .into_iter()
            .collect();
        let mut ctx = Ctx(Vec::new());
        let out = run_walk_forward(&spec(&feats, 0.15), &assign(params.clone()), &mut ctx);
        let Outcome::CompleteWithReturns(values, metrics, returns) = out else {
            panic!("{out:?}")
        };
        // 3000 days, 500 train, 250 test: (3000 − 501) / 250 = 9 folds, reported in order.
        assert_eq!(ctx.0.len(), 9);
        assert!(ctx
            .0
            .iter()
            .enumerate()
            .all(|(i, (s, v))| *s == i as u64 + 1 && v.len() == 2));
        assert_eq!(values, vec![metrics["sharpe"], metrics["max_drawdown"]]);
        // The out-of-sample returns travel with the result: one per test day, dated, and
        // the reported metrics are theirs.
        assert_eq!(returns.values.len(), 9 * 250);
        assert_eq!(returns.days.len(), returns.values.len());
        assert!(returns.days.windows(2).all(|w| w[0] < w[1]));
        assert!((m::sharpe(&returns.values) - metrics["sharpe"]).abs() < 1e-12);
        // The last cumulative report is the final result (computed in full here, as max
        // drawdown is an objective) ...
        assert_eq!(ctx.0[8].1, values);
        // ... and from running sums when every objective allows it: the same numbers.
        let mut sharpe_only = spec(&feats, 0.15);
        sharpe_only.objectives = vec!["sharpe".into(), "win_rate".into()];
        let mut c3 = Ctx(Vec::new());
        let Outcome::CompleteWithReturns(v3, m3, _) =
            run_walk_forward(&sharpe_only, &assign(params.clone()), &mut c3)
        else {
            panic!()
        };
        assert_eq!(v3, vec![m3["sharpe"], m3["win_rate"]]);
        for (a, b) in c3.0[8].1.iter().zip(&v3) {
            assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
        }
        assert!(metrics["sharpe"] > 0.5, "{metrics:?}");
        assert!(metrics["accuracy"] > 0.5);
        // Per-fold reports: each fold's own Sharpe (the first fold's equals the cumulative one).
        let mut per = spec(&feats, 0.15);
        per.report_per_fold = true;
        let mut ctx2 = Ctx(Vec::new());
        run_walk_forward(&per, &assign(params.clone()), &mut ctx2);
        assert_eq!(ctx2.0[0].1, ctx.0[0].1);
        assert_ne!(ctx2.0[8].1, ctx.0[8].1);
        // Several instruments: one pooled model, an equal-weight portfolio (its Sharpe is
        // higher than one instrument's, the edges being independent).
        let mut many = spec(&feats, 0.15);
        many.data = DataSource::Synthetic {
            days: 3000,
            seed: 3,
            strength: 0.15,
            instruments: 4,
        };
        let out = run_walk_forward(&many, &assign(params.clone()), &mut Ctx(Vec::new()));
        let Outcome::CompleteWithReturns(_, port, _) = out else {
            panic!("{out:?}")
        };
        assert!(
            port["sharpe"] > metrics["sharpe"],
            "{} vs {}",
            port["sharpe"],
            metrics["sharpe"]
        );
        // Classifying the direction finds the same edge.
        let mut cls = spec(&feats, 0.15);
        cls.classify = true;
        let out = run_walk_forward(&cls, &assign(params.clone()), &mut Ctx(Vec::new()));
        let Outcome::CompleteWithReturns(_, c, _) = out else {
            panic!("{out:?}")
        };
        assert!(c["sharpe"] > 0.5 && c["accuracy"] > 0.5, "{c:?}");
        // Without an edge the same pipeline finds none.
        let out = run_walk_forward(
            &spec(&feats, 0.0),
            &assign(params.clone()),
            &mut Ctx(Vec::new()),
        );
        let Outcome::CompleteWithReturns(_, flat, _) = out else {
            panic!()
        };
        assert!(flat["sharpe"].abs() < metrics["sharpe"] / 2.0, "{flat:?}");
        // A feature that looks ahead fails the trial, naming it.
        let out = run_walk_forward(
            &spec(&[("peek", "ref(returns, -1)")], 0.1),
            &assign(params),
            &mut Ctx(Vec::new()),
        );
        let Outcome::Failed(msg) = out else { panic!() };
        assert!(msg.contains("feature `peek` looks ahead"), "{msg}");
        // A missing parameter is named too.
        let out = run_walk_forward(
            &spec(&feats, 0.1),
            &assign(Params::new()),
            &mut Ctx(Vec::new()),
        );
        let Outcome::Failed(msg) = out else { panic!() };
        assert!(msg.contains("`$w` is not a parameter"), "{msg}");
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;

    #[test]
    fn instruments_are_aligned_on_their_common_dates() {
        let dir = tempfile::tempdir().unwrap();
        let a = "Date,Open,High,Low,Close\n2024-01-02,1,1,1,1\n2024-01-03,1,1,1,2\n2024-01-04,1,1,1,3\n";
        let b = "Date,Open,High,Low,Close\n2024-01-03,1,1,1,5\n2024-01-04,1,1,1,6\n2024-01-05,1,1,1,7\n";
        std::fs::write(dir.path().join("a.csv"), a).unwrap();
        std::fs::write(dir.path().join("b.csv"), b).unwrap();
        let data = DataSource::Files {
            paths: vec!["a.csv".into(), "b.csv".into()],
            adjusted: true,
        };
        let bars = load(&data, dir.path().to_str()).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].close, vec![2.0, 3.0]);
        assert_eq!(bars[1].close, vec![5.0, 6.0]);
        assert_eq!(bars[0].days, bars[1].days);
        std::fs::write(
            dir.path().join("c.csv"),
            "Date,Open,High,Low,Close\n2020-01-02,1,1,1,1\n",
        )
        .unwrap();
        let none = DataSource::Files {
            paths: vec!["a.csv".into(), "c.csv".into()],
            adjusted: true,
        };
        assert!(load(&none, dir.path().to_str())
            .unwrap_err()
            .contains("no date in common"));
        // A missing file names itself.
        let missing = DataSource::Files {
            paths: vec!["nope.csv".into()],
            adjusted: true,
        };
        assert!(load(&missing, dir.path().to_str())
            .unwrap_err()
            .contains("nope.csv"));
    }
}
