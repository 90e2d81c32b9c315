//! The `walk_forward` objective: bars → features (look-ahead guarded) → labels → purged
//! walk-forward folds → per fold: scale on train only, fit the model, predict the test window,
//! trade it with costs → report the objectives on the out-of-sample returns so far after every
//! fold (a prune verdict stops before the next) → final metrics.
use super::TrialContext;
use crate::eval::backtest::{
    balanced_accuracy, direction, direction_scores, forward_return, positions, strategy_returns,
    turnover, Sizing,
};
use crate::eval::cache;
use crate::eval::data::{read_bars, Bars};
use crate::eval::features::{lookahead_check, parse};
use crate::eval::metrics as m;
use crate::eval::model::{model_for, output_horizons, Model, ModelSettings};
use crate::eval::splits::{cpcv, walk_forward, Cpcv, Fold};
use crate::eval::synthetic::{generate, Synthetic};
use mlt_protocol::messages::{AssignMsg, Evaluation, Outcome, Verdict};
use mlt_protocol::records::{
    FeatureImportance, Metrics, ModelArtifact, ParamValue, Params, ReturnSeries,
};
use mlt_protocol::spec::{DataSource, Splits, WalkForwardSpec};
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
                read_bars(&full, *adjusted).map(|(b, _)| b)
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

/// What identifies the bars of a data source for the feature cache: the synthetic market's
/// settings, or each file's path, size and modification time (uploaded files are named by
/// their hash).
fn data_key(data: &DataSource, workdir: Option<&str>) -> String {
    match data {
        DataSource::Synthetic {
            days,
            seed,
            strength,
            instruments,
        } => format!("synthetic:{days}:{seed}:{strength}:{instruments}"),
        DataSource::Files { paths, adjusted } => {
            let files: Vec<String> = paths
                .iter()
                .map(|p| {
                    let full = match workdir {
                        Some(w) if Path::new(p).is_relative() => Path::new(w).join(p),
                        _ => Path::new(p).to_path_buf(),
                    };
                    let stamp = std::fs::metadata(&full).ok().map(|m| {
                        let t = m
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_nanos());
                        (m.len(), t)
                    });
                    format!("{}:{stamp:?}", full.display())
                })
                .collect();
            format!("files:{adjusted}:{}", files.join("|"))
        }
        DataSource::Datasets { files, adjusted } => {
            let shas: Vec<&str> = files.iter().map(|f| f.sha256.as_str()).collect();
            format!("datasets:{adjusted}:{}", shas.join("|"))
        }
    }
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
    // A multi-step head searched over: a lone LSTM, no more outputs than the horizon's days.
    for p in &space.params {
        let lstm_member = spec.model == "ensemble" && p.name == "lstm.outputs";
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
            .ensemble
            .as_ref()
            .is_some_and(|e| e.members.iter().any(|m| m == "lstm"));
        if spec.model != "lstm" {
            if most > 1.0 && lstm_in_ensemble {
                return Err((
                    key,
                    "a multi-step head needs `model = \"lstm\"` (an ensemble's members predict the label alone)".into(),
                ));
            }
        } else if most.round() > spec.horizon as f64 {
            return Err((
                key,
                format!(
                    "reaches {most} outputs, more than the {}-day horizon allows",
                    spec.horizon
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
    let n = n_all.saturating_sub(spec.holdout as usize);
    let held = if spec.holdout > 0 {
        format!(" (after the {}-day hold-out)", spec.holdout)
    } else {
        String::new()
    };
    match &spec.splits {
        Splits::WalkForward => {
            let need = spec.train as usize + spec.horizon as usize + spec.test as usize;
            if n < need {
                return Err((
                    "objective.train".into(),
                    format!(
                        "{n} bars{held} are too few for {} training + {} purge + {} test days",
                        spec.train, spec.horizon, spec.test
                    ),
                ));
            }
        }
        Splits::Cpcv { groups, .. } => {
            let need = *groups as usize * (2 * spec.horizon as usize + 20);
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
    if spec.holdout > 0
        && n_all < spec.holdout as usize + spec.train as usize + spec.horizon as usize
    {
        return Err((
            "objective.holdout".into(),
            format!(
                "{n_all} bars are too few for a {}-day training window, a {}-day purge and a {}-day hold-out",
                spec.train, spec.horizon, spec.holdout
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
        ("balanced_accuracy", balanced_accuracy(pred, next)),
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
    /// Predicting and trading the test windows (walk-forward folds).
    pub trade: f64,
    /// The kept model: its text, importance and SHAP values (walk-forward folds).
    pub keep: f64,
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
    let out = match evaluate(spec, assign, ctx, &mut t, model_for) {
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
    cols: Vec<std::sync::Arc<Vec<f64>>>,
    label: Vec<f64>,
    /// A multi-step head's targets: the label's kind over each of the model's horizons (the
    /// label's last); empty for models of the label alone.
    paths: Vec<Vec<f64>>,
    next: Vec<f64>,
}

impl Inst {
    fn row(&self, t: usize) -> Option<Vec<f64>> {
        let r: Vec<f64> = self.cols.iter().map(|c| c[t]).collect();
        r.iter().all(|v| v.is_finite()).then_some(r)
    }

    /// The rows of days t − lookback + 1 ..= t, step-major (one row when lookback is 1).
    fn seq(&self, t: usize, lookback: usize) -> Option<Vec<f64>> {
        if lookback <= 1 {
            return self.row(t);
        }
        if t + 1 < lookback {
            return None;
        }
        let mut out = Vec::with_capacity(lookback * self.cols.len());
        for s in t + 1 - lookback..=t {
            out.extend(self.row(s)?);
        }
        Some(out)
    }
}

/// Bars cut to their first `n` days.
fn head(b: &Bars, n: usize) -> Bars {
    let n = n.min(b.len());
    Bars {
        instrument: b.instrument.clone(),
        days: b.days[..n].to_vec(),
        open: b.open[..n].to_vec(),
        high: b.high[..n].to_vec(),
        low: b.low[..n].to_vec(),
        close: b.close[..n].to_vec(),
        volume: b.volume.as_ref().map(|v| v[..n].to_vec()),
    }
}

/// A model setting: name, lowest, highest, whether integral.
type Setting = (&'static str, f64, f64, bool);

/// The largest model text kept with a trial (it travels in the trial's result frame).
pub const MAX_ARTIFACT: usize = 8 << 20;

/// Makes a model from its settings (tests swap in an instrumented one).
type Factory = fn(&ModelSettings) -> Result<Box<dyn Model>, String>;

/// What a trial needs besides the data: sizing and the model's settings.
struct Trader<'a> {
    spec: &'a WalkForwardSpec,
    insts: Vec<Inst>,
    sizing: Sizing,
    model: ModelSettings,
    factory: Factory,
    /// Feature names and expressions with the trial's parameters, in column order.
    features: Vec<(String, String)>,
    /// Dates of the rows.
    days: Vec<i64>,
}

/// A model fitted on one split's training rows, with its label's scale.
struct Fitted {
    model: Box<dyn Model>,
    b0: f64,
    scale: f64,
    /// The rows it was fitted on (without the validation tail).
    rows: Vec<usize>,
}

/// The training labels' mean and root mean square (for probability sizing of returns).
fn label_scale(y: &[f64]) -> (f64, f64) {
    let n = y.len().max(1) as f64;
    let b0 = y.iter().sum::<f64>() / n;
    let scale = (y.iter().map(|v| v * v).sum::<f64>() / n).sqrt().max(1e-12);
    (b0, scale)
}

/// The training rows of a window split into those the model is fitted on and, when
/// `validation` > 0, a validation tail cut from the END of the window for early stopping; the
/// `purge` rows before the tail are dropped (their labels would reach into it). The test window
/// is never touched: only `train` is split.
pub fn validation_split(
    train: &[usize],
    validation: f64,
    purge: usize,
) -> (Vec<usize>, Vec<usize>) {
    let n_valid = (train.len() as f64 * validation).floor() as usize;
    if n_valid == 0 || n_valid + purge >= train.len() {
        return (train.to_vec(), Vec::new());
    }
    let cut = train.len() - n_valid;
    (train[..cut - purge].to_vec(), train[cut..].to_vec())
}

/// The out-of-sample result of trading some test rows.
#[derive(Default)]
struct Traded {
    /// Portfolio returns, one per test day.
    r: Vec<f64>,
    pos: Vec<f64>,
    pred: Vec<f64>,
    next: Vec<f64>,
}

impl Traded {
    fn extend(&mut self, o: &Traded) {
        self.r.extend(&o.r);
        self.pos.extend(&o.pos);
        self.pred.extend(&o.pred);
        self.next.extend(&o.next);
    }

    fn metrics(&self) -> Metrics {
        metrics_of(&self.r, &self.pos, &self.pred, &self.next)
    }
}

impl Trader<'_> {
    /// Every instrument's usable rows (finite features and label) among `rows`, with their
    /// labels (a multi-step head's targets: one per horizon, row after row).
    /// Rows in time order (day by day, instruments within a day), so that a model may cut
    /// them chronologically (stacking's out-of-fold predictions do).
    fn gather(&self, rows: &[usize]) -> (Vec<Vec<f64>>, Vec<f64>) {
        let lb = self.model.lookback as usize;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for &t in rows {
            for inst in &self.insts {
                // Shorter horizons are known whenever the label is.
                if let (Some(r), true) = (inst.seq(t, lb), inst.label[t].is_finite()) {
                    x.push(r);
                    if inst.paths.is_empty() {
                        y.push(inst.label[t]);
                    } else {
                        y.extend(inst.paths.iter().map(|p| p[t]));
                    }
                }
            }
        }
        (x, y)
    }

    /// One model over every instrument's training rows (already purged by the split), with
    /// early stopping on the window's validation tail when the model has it.
    fn fit(&self, train: &[usize], what: &str, timings: &mut Timings) -> Result<Fitted, String> {
        self.train(train, what, false, timings)
    }

    /// [`Trader::fit`], or with `staged` only the start of training (the model then advances
    /// a stage at a time: epochs or boosting rounds as the pruning budget).
    fn train(
        &self,
        train: &[usize],
        what: &str,
        staged: bool,
        timings: &mut Timings,
    ) -> Result<Fitted, String> {
        let (fit_rows, valid_rows) =
            validation_split(train, self.spec.validation, self.spec.horizon as usize);
        let (x, y) = self.gather(&fit_rows);
        let (vx, vy) = self.gather(&valid_rows);
        let mut model = (self.factory)(&self.model)?;
        let clock = std::time::Instant::now();
        let valid = (!vx.is_empty()).then_some((&vx[..], &vy[..]));
        let started = if staged {
            model.begin(&x, &y, valid)
        } else {
            model.fit(&x, &y, valid)
        };
        started.map_err(|e| format!("{what}: {e} ({} usable training rows)", x.len()))?;
        timings.fit += clock.elapsed().as_secs_f64();
        timings.folds += 1;
        // The label is every row's last target.
        let k = self.model.horizons.len().max(1);
        let labels: Vec<f64> = y.iter().skip(k - 1).step_by(k).copied().collect();
        let (b0, scale) = label_scale(&labels);
        Ok(Fitted {
            model,
            b0,
            scale,
            rows: fit_rows,
        })
    }

    /// The result of walk-forward folds traded into `all`: metrics, dated returns and the
    /// model of the last fold.
    fn evaluation(
        &self,
        folds: &[Fold],
        days: &[i64],
        all: Traded,
        last: Option<(Fitted, Vec<usize>)>,
    ) -> Outcome {
        let metrics = all.metrics();
        let returns = ReturnSeries {
            days: folds
                .iter()
                .flat_map(|f| f.test.iter().map(|&t| days[t]))
                .collect(),
            values: all.r,
        };
        Outcome::Evaluated(Box::new(Evaluation {
            values: values_of(self.spec, &metrics),
            metrics,
            returns,
            model: self.keep(last.as_ref()),
        }))
    }

    /// The artifact of a fitted model: its text, features, settings, and importance with
    /// SHAP on the rows it was tested on.
    fn artifact(&self, f: &Fitted, tested: &[usize]) -> Result<ModelArtifact, String> {
        let x: Vec<Vec<f64>> = self
            .insts
            .iter()
            .flat_map(|inst| {
                tested
                    .iter()
                    .filter_map(|&t| inst.seq(t, self.model.lookback as usize))
            })
            .collect();
        let imp = f.model.importance(&x)?;
        let day = |i: Option<&usize>| i.map_or(0, |&t| self.days[t]);
        Ok(ModelArtifact {
            format: f.model.format().into(),
            model: f.model.save()?,
            features: self.features.clone(),
            classify: self.spec.classify,
            horizon: self.spec.horizon,
            adjusted: match &self.spec.data {
                DataSource::Files { adjusted, .. } | DataSource::Datasets { adjusted, .. } => {
                    *adjusted
                }
                DataSource::Synthetic { .. } => false,
            },
            trained: (day(f.rows.first()), day(f.rows.last())),
            rounds: f.model.rounds(),
            lookback: self.model.lookback,
            importance: imp
                .into_iter()
                .zip(&self.features)
                .map(|((gain, split, shap), (name, _))| FeatureImportance {
                    feature: name.clone(),
                    gain,
                    split,
                    shap,
                })
                .collect(),
        })
    }

    /// The artifact, or None with a warning: a model that cannot be saved does not fail the
    /// trial.
    fn keep(&self, f: Option<&(Fitted, Vec<usize>)>) -> Option<ModelArtifact> {
        let (f, tested) = f?;
        let a = self.artifact(f, tested).and_then(|a| {
            if a.model.len() > MAX_ARTIFACT {
                Err(format!(
                    "its text is {} bytes, over the {MAX_ARTIFACT}-byte limit",
                    a.model.len()
                ))
            } else {
                Ok(a)
            }
        });
        if let Err(e) = &a {
            tracing::warn!("the trial's model is not kept: {e}");
        }
        a.ok()
    }

    /// Trades the `test` rows (contiguous) of an equal-weight portfolio, each instrument on
    /// its own prediction, starting from the positions in `prev` (left at the last ones).
    fn trade(&self, f: &Fitted, test: &[usize], prev: &mut [f64]) -> Result<Traded, String> {
        let preds = self.predict(f, test)?;
        Ok(self.trade_predictions(&preds, (f.b0, f.scale), test, prev))
    }

    /// The fitted model's predictions of the `test` rows, per instrument (NaN where a feature
    /// is missing).
    fn predict(&self, f: &Fitted, test: &[usize]) -> Result<Vec<Vec<f64>>, String> {
        let lb = self.model.lookback as usize;
        let mut out = Vec::with_capacity(self.insts.len());
        for inst in &self.insts {
            // One call for the rows with every feature; NaN (no position) for the others.
            let rows: Vec<Option<Vec<f64>>> = test.iter().map(|&t| inst.seq(t, lb)).collect();
            let known: Vec<Vec<f64>> = rows.iter().flatten().cloned().collect();
            let mut got = f.model.predict_many(&known)?.into_iter();
            out.push(
                rows.iter()
                    .map(|r| match r {
                        Some(_) => got.next().unwrap_or(f64::NAN),
                        None => f64::NAN,
                    })
                    .collect(),
            );
        }
        Ok(out)
    }

    /// Trades predictions of the `test` rows (contiguous), one series per instrument, as an
    /// equal-weight portfolio from the positions in `prev` (left at the last ones); `(b0,
    /// scale)` are the training label's mean and scale (for probability sizing of returns).
    fn trade_predictions(
        &self,
        preds: &[Vec<f64>],
        (b0, scale): (f64, f64),
        test: &[usize],
        prev: &mut [f64],
    ) -> Traded {
        let spec = self.spec;
        let k_inst = self.insts.len() as f64;
        let mut out = Traded {
            r: vec![0.0; test.len()],
            ..Default::default()
        };
        for (i, (inst, pred)) in self.insts.iter().zip(preds).enumerate() {
            // A classifier's prediction is the probability of "up": centre it for sign and
            // threshold sizing. A regression's predicted return goes through a logistic of its
            // scale for probability sizing.
            let sized: Vec<f64> = if spec.classify {
                if self.sizing == Sizing::Probability {
                    pred.iter().map(|p| p.clamp(0.0, 1.0)).collect()
                } else {
                    pred.iter().map(|p| p - 0.5).collect()
                }
            } else if self.sizing == Sizing::Probability {
                pred.iter()
                    .map(|p| 1.0 / (1.0 + (-(p - b0) / scale).exp()))
                    .collect()
            } else {
                pred.clone()
            };
            let pos = positions(&sized, self.sizing, spec.long_only);
            let nx: Vec<f64> = test.iter().map(|&t| inst.next[t]).collect();
            let mut with_prev = vec![prev[i]];
            with_prev.extend(&pos);
            let mut nx0 = vec![0.0];
            nx0.extend(&nx);
            // The first entry is the carried-over position (no return, no trade from it).
            let r = strategy_returns(&with_prev, &nx0, spec.cost_bps, spec.slippage_bps);
            prev[i] = *pos.last().unwrap_or(&prev[i]);
            for (j, v) in r[1..].iter().enumerate() {
                out.r[j] += v / k_inst;
            }
            out.pos.extend(pos);
            // Direction scores read "up" as a positive prediction.
            out.pred.extend(
                pred.iter()
                    .map(|p| if spec.classify { p - 0.5 } else { *p }),
            );
            out.next.extend(nx);
        }
        out
    }
}

/// Everything a trial's folds need: the bars (cut before the hold-out for search trials),
/// features with the trial's parameters, labels, and the model's settings.
struct Prepared<'a> {
    trader: Trader<'a>,
    days: Vec<i64>,
    n: usize,
}

#[allow(clippy::too_many_arguments)] // the trial's whole context, once
fn prepare<'a>(
    spec: &'a WalkForwardSpec,
    params: &Params,
    workdir: Option<&str>,
    threads: u32,
    gpu: Option<u32>,
    seed: u64,
    timings: &mut Timings,
    factory: Factory,
) -> Result<Prepared<'a>, String> {
    let clock = std::time::Instant::now();
    // Later trials on this node take the bars read for an earlier one (the key changes when a
    // file does).
    let source = data_key(&spec.data, workdir);
    let mut all_bars = cache::bars(&source, || load(&spec.data, workdir))?.to_vec();
    let n_all = all_bars.first().map_or(0, |b| b.len());
    let holdout = spec.holdout as usize;
    if holdout > 0 && !spec.holdout_run {
        // The search never sees the hold-out: not its features, labels or returns.
        if n_all <= holdout {
            return Err(format!(
                "{n_all} bars leave nothing before a {holdout}-day hold-out"
            ));
        }
        all_bars = all_bars.iter().map(|b| head(b, n_all - holdout)).collect();
    }
    timings.load = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let h = spec.horizon as usize;
    let label_of = |close: &[f64], days: usize| {
        if spec.classify {
            direction(close, days)
        } else {
            forward_return(close, days)
        }
    };
    let mut insts = Vec::new();
    for (i, bars) in all_bars.iter().enumerate() {
        let mut cols = Vec::new();
        for (name, text) in &spec.features {
            let text = substitute(text, params).map_err(|e| format!("feature `{name}`: {e}"))?;
            let e = parse(&text).map_err(|e| format!("feature `{name}` = `{text}`: {e}"))?;
            // The guard computes the feature on all the data: that is the column. Kept on the
            // node for later trials with the same data and expression.
            let key = (format!("{source}#{i}#{}", bars.len()), text.clone());
            cols.push(cache::get_or_compute(key, || {
                lookahead_check(name, &e, bars, 25)
            })?);
        }
        insts.push(Inst {
            cols,
            label: label_of(&bars.close, h),
            paths: Vec::new(),
            next: forward_return(&bars.close, 1),
        });
    }
    timings.features = clock.elapsed().as_secs_f64();
    let n = all_bars.first().map_or(0, |b| b.len());
    let days = all_bars.first().map_or(Vec::new(), |b| b.days.clone());
    let num = |k: &str, default: f64| match params.get(k) {
        Some(ParamValue::Float(x)) => *x,
        Some(ParamValue::Int(x)) => *x as f64,
        _ => default,
    };
    let sizing = match spec.sizing.as_str() {
        "threshold" => Sizing::Threshold(num("threshold", spec.threshold)),
        "probability" => Sizing::Probability,
        _ => Sizing::Sign,
    };
    // Model settings: the spec's, then the trial's parameters of those names. An ensemble's
    // settings are per member (`lightgbm.learning_rate`); an unprefixed name reaches every
    // member that has the setting.
    let mut model_params = spec.model_params.clone();
    let settings_of = |model: &str| -> (&[Setting], &[(&str, &str)]) {
        match model {
            "lightgbm" => (
                &mlt_protocol::spec::LIGHTGBM_SETTINGS,
                &mlt_protocol::spec::LIGHTGBM_ALIASES,
            ),
            "lstm" => (&mlt_protocol::spec::LSTM_SETTINGS, &[]),
            _ => (&[], &[]),
        }
    };
    let members: Vec<String> = match &spec.ensemble {
        Some(e) => e.members.clone(),
        None => vec![spec.model.clone()],
    };
    for (name, v) in params {
        for member in &members {
            let (known, aliases) = settings_of(member);
            let bare = match name.split_once('.') {
                Some((m, k)) if m == member => k,
                Some(_) => continue,
                None => name.as_str(),
            };
            let canonical = aliases
                .iter()
                .find(|(a, _)| *a == bare)
                .map_or(bare, |(_, c)| c);
            if !known.iter().any(|(n, ..)| *n == canonical) {
                continue;
            }
            let x = match v {
                ParamValue::Float(x) => *x,
                ParamValue::Int(x) => *x as f64,
                ParamValue::Bool(b) => f64::from(u8::from(*b)),
                ParamValue::Str(s) => {
                    return Err(format!("parameter `{name}` must be a number, got `{s}`"))
                }
            };
            let key = if spec.ensemble.is_some() {
                format!("{member}.{canonical}")
            } else {
                canonical.to_string()
            };
            model_params.insert(key, x);
        }
    }
    let mut features = Vec::new();
    for (name, text) in &spec.features {
        features.push((name.clone(), substitute(text, params)?));
    }
    // The LSTM reads sequences of this many days; other models one day's row.
    let lookback = if spec.model == "lstm" {
        model_params
            .get("sequence")
            .copied()
            .unwrap_or(30.0)
            .round()
            .max(1.0) as u32
    } else {
        1
    };
    // A multi-step head (the LSTM's `outputs`) is fitted on the label over each of its
    // horizons; all of them reach no further than the label, so the purging is the label's.
    let horizons = if spec.model == "lstm" {
        let outputs = model_params.get("outputs").copied().unwrap_or(1.0);
        output_horizons(outputs.round().clamp(1.0, 1e6) as u32, spec.horizon)
            .map_err(|e| format!("the LSTM's head: {e}"))?
    } else {
        Vec::new()
    };
    for (inst, bars) in insts.iter_mut().zip(&all_bars) {
        inst.paths = horizons
            .iter()
            .map(|&d| label_of(&bars.close, d as usize))
            .collect();
    }
    let trader = Trader {
        spec,
        insts,
        sizing,
        model: ModelSettings {
            name: spec.model.clone(),
            alpha: num("alpha", spec.alpha),
            classify: spec.classify,
            params: model_params,
            early_stopping: spec.early_stopping,
            categorical: spec
                .categorical
                .iter()
                .filter_map(|c| spec.features.iter().position(|(f, _)| f == c))
                .collect(),
            threads,
            seed,
            features: spec.features.iter().map(|(n, _)| n.clone()).collect(),
            lookback,
            horizons,
            gpu,
            ensemble: spec.ensemble.clone(),
            // Rows per day and the label's reach, for purging inside the training rows.
            purge_rows: (spec.horizon as usize) * all_bars.len(),
            staged: spec.budget_epochs,
        },
        factory,
        features,
        days: days.clone(),
    };
    Ok(Prepared { trader, days, n })
}

fn evaluate(
    spec: &WalkForwardSpec,
    assign: &AssignMsg,
    ctx: &mut dyn TrialContext,
    timings: &mut Timings,
    factory: Factory,
) -> Result<Outcome, String> {
    let Prepared { trader, days, n } = prepare(
        spec,
        &assign.params,
        assign.workdir.as_deref(),
        ctx.threads(),
        ctx.gpu(),
        spec.model_seed.unwrap_or(assign.key.trial.0),
        timings,
        factory,
    )?;
    let h = spec.horizon as usize;
    let holdout = spec.holdout as usize;
    if spec.holdout_run {
        // One fold: the training window that ends (purged) where the hold-out starts.
        let start = n.saturating_sub(holdout);
        let end = start.saturating_sub(h);
        let from = if spec.expanding {
            0
        } else {
            end.saturating_sub(spec.train as usize)
        };
        if end <= from || holdout == 0 {
            return Err("no training window before the hold-out".into());
        }
        let fold = Fold {
            train: (from..end).collect(),
            test: (start..n).collect(),
        };
        return walk_forward_folds(&trader, &[fold], &days, ctx, timings);
    }
    match &spec.splits {
        Splits::WalkForward => {
            let folds = walk_forward(
                n,
                spec.train as usize,
                spec.test as usize,
                spec.step as usize,
                spec.expanding,
                h,
            )
            .map_err(|e| format!("splits: {e}"))?;
            if spec.budget_epochs {
                return epoch_folds(&trader, &folds, &days, ctx, timings);
            }
            walk_forward_folds(&trader, &folds, &days, ctx, timings)
        }
        Splits::Cpcv {
            groups,
            test_groups,
            embargo,
        } => {
            let c = cpcv(
                n,
                *groups as usize,
                *test_groups as usize,
                h,
                *embargo as usize,
            )
            .map_err(|e| format!("splits: {e}"))?;
            cpcv_paths(&trader, &c, &days, ctx, timings)
        }
    }
}

/// A study-level ensemble of trials, evaluated on the study's walk-forward folds and on its
/// hold-out.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrialEnsemble {
    /// `voting`, `dynamic` or `blending`.
    pub method: String,
    /// The ensemble's metrics over every fold of the search period.
    pub metrics: Metrics,
    /// Each member alone on the same folds (recomputed), in the order given.
    pub members: Vec<Metrics>,
    /// The members' weights in each fold (blending: the blend's slopes on the predictions).
    pub weights: Vec<Vec<f64>>,
    /// The ensemble on the hold-out (None without one).
    pub holdout: Option<Metrics>,
    /// Each member alone on the hold-out.
    pub holdout_members: Vec<Metrics>,
}

/// The combination's trading, each member's alone, the weights per fold, and what later
/// periods may learn from (its `Prior`).
type Combined = (Traded, Vec<Traded>, Vec<Vec<f64>>, Prior);

/// What an ensemble of trials has seen out of sample: each member's returns, and rows of the
/// members' predictions with the label they predicted (for blending).
#[derive(Clone, Default)]
struct Prior {
    returns: Vec<Vec<f64>>,
    blend_x: Vec<Vec<f64>>,
    blend_y: Vec<f64>,
}

/// Weights of members from their returns so far: equal for `voting` (or with no history),
/// else each member's Sharpe so far, floored at zero, normalised (equal when none is positive).
fn member_weights(method: &str, history: &[Vec<f64>]) -> Vec<f64> {
    let n = history.len();
    let equal = vec![1.0 / n as f64; n];
    if method != "dynamic" || history.iter().any(|h| h.len() < 2) {
        return equal;
    }
    let skill: Vec<f64> = history
        .iter()
        .map(|h| {
            let s = m::sharpe(h);
            if s.is_finite() {
                s.max(0.0)
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = skill.iter().sum();
    if total > 0.0 {
        skill.iter().map(|s| s / total).collect()
    } else {
        equal
    }
}

/// The weighted mean of the members' predictions, per instrument and row (members without a
/// prediction for a row are left out of its mean).
fn combine(preds: &[Vec<Vec<f64>>], w: &[f64]) -> Vec<Vec<f64>> {
    let insts = preds[0].len();
    (0..insts)
        .map(|i| {
            (0..preds[0][i].len())
                .map(|t| {
                    let (mut num, mut den) = (0.0, 0.0);
                    for (m, p) in preds.iter().enumerate() {
                        let v = p[i][t];
                        if v.is_finite() {
                            num += w[m] * v;
                            den += w[m];
                        }
                    }
                    if den > 0.0 {
                        num / den
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        })
        .collect()
}

/// Blocks of a training window for stacking's out-of-fold predictions.
const STACK_BLOCKS: usize = 4;

/// Stacking's meta-model for one fold of an ensemble of trials: the training window's days
/// are cut into [`STACK_BLOCKS`] chronological blocks; for each block after the first, every
/// member is fitted on the days before it whose label ends before it, and predicts it; a
/// ridge meta-model learns the label from those out-of-fold predictions. Nothing outside
/// `train` is read.
fn stack_within(
    preps: &[Prepared],
    train: &[usize],
    horizon: u32,
    fold: usize,
    t: &mut Timings,
) -> Result<crate::eval::model::RidgeFit, String> {
    let n = train.len();
    let (mut meta_x, mut meta_y) = (Vec::new(), Vec::new());
    for b in 1..STACK_BLOCKS {
        let block = &train[n * b / STACK_BLOCKS..n * (b + 1) / STACK_BLOCKS];
        let Some(&first) = block.first() else {
            continue;
        };
        let before: Vec<usize> = train
            .iter()
            .copied()
            .take_while(|&d| d + (horizon as usize) < first)
            .collect();
        if before.len() < 20 {
            continue;
        }
        let mut preds = Vec::new();
        for p in preps {
            let what = format!("fold {}, stacking block {b}", fold + 1);
            let f = p.trader.fit(&before, &what, t)?;
            preds.push(p.trader.predict(&f, block)?);
        }
        for (i, inst) in preps[0].trader.insts.iter().enumerate() {
            for (r, &day) in block.iter().enumerate() {
                let v: Vec<f64> = preds.iter().map(|p| p[i][r]).collect();
                let y = inst.label[day];
                if y.is_finite() && v.iter().all(|x| x.is_finite()) {
                    meta_x.push(v);
                    meta_y.push(y);
                }
            }
        }
        #[cfg(test)]
        tests::TRIAL_STACKS.with(|s| s.borrow_mut().push((before.clone(), block.to_vec())));
    }
    crate::eval::model::ridge(&meta_x, &meta_y, 1e-3).ok_or_else(|| {
        format!(
            "fold {}: stacking: {} out-of-fold rows are too few for the meta-model",
            fold + 1,
            meta_x.len()
        )
    })
}

/// Members (trial number, parameters) fitted fold by fold, their predictions combined by
/// `method` (`voting`: equal weights; `dynamic`: weights from each member's out-of-sample
/// Sharpe on the folds before; `blending`: least-squares weights of the label on the members'
/// out-of-sample predictions of the folds before, purged by the horizon; `stacking`: the same
/// on the members' out-of-fold predictions inside each fold's training window,
/// [`stack_within`]) and traded as one strategy; then the same on the hold-out, with weights
/// from the whole search period.
pub fn ensemble_of_trials(
    spec: &WalkForwardSpec,
    members: &[(u64, Params)],
    method: &str,
    workdir: Option<&str>,
) -> Result<TrialEnsemble, String> {
    if members.len() < 2 {
        return Err("an ensemble needs at least two trials".into());
    }
    if !matches!(spec.splits, Splits::WalkForward) {
        return Err("ensembles of trials are evaluated on walk-forward splits".into());
    }
    let mut t = Timings::default();
    let run = |spec: &WalkForwardSpec,
               folds_of: &dyn Fn(usize) -> Result<Vec<Fold>, String>,
               prior: Option<&Prior>,
               t: &mut Timings|
     -> Result<Combined, String> {
        let mut preps = Vec::new();
        for (trial, params) in members {
            preps.push(prepare(
                spec, params, workdir, 1, None, *trial, t, model_for,
            )?);
        }
        let folds = folds_of(preps[0].n)?;
        let mut all = Traded::default();
        let mut alone: Vec<Traded> = members.iter().map(|_| Traded::default()).collect();
        let mut prev_all = vec![0.0; preps[0].trader.insts.len()];
        let mut prev_alone = vec![prev_all.clone(); members.len()];
        let mut weights = Vec::new();
        let mut seen = Prior::default();
        for (k, fold) in folds.iter().enumerate() {
            let mut preds = Vec::new();
            let mut scales = Vec::new();
            for (j, p) in preps.iter().enumerate() {
                let f = p.trader.fit(&fold.train, &format!("fold {}", k + 1), t)?;
                let pr = p.trader.predict(&f, &fold.test)?;
                let traded = p.trader.trade_predictions(
                    &pr,
                    (f.b0, f.scale),
                    &fold.test,
                    &mut prev_alone[j],
                );
                alone[j].extend(&traded);
                preds.push(pr);
                scales.push((f.b0, f.scale));
            }
            let history: Vec<Vec<f64>> = match prior {
                Some(p) => p.returns.clone(),
                None => alone
                    .iter()
                    .map(|a| a.r[..a.r.len() - fold.test.len()].to_vec())
                    .collect(),
            };
            let w = member_weights(method, &history);
            let b0 = scales.iter().zip(&w).map(|((b, _), w)| b * w).sum();
            let sc = scales.iter().zip(&w).map(|((_, s), w)| s * w).sum();
            // Blending: least squares of the label on the members' out-of-sample predictions
            // of the earlier folds (equal weights until 30 such rows exist). Stacking: the same
            // on out-of-fold predictions inside this fold's training window.
            let (bx, by) = match prior {
                Some(p) => (&p.blend_x, &p.blend_y),
                None => (&seen.blend_x, &seen.blend_y),
            };
            let blend = match method {
                "blending" if bx.len() >= 30 => crate::eval::model::ridge(bx, by, 1e-3),
                "stacking" => Some(stack_within(&preps, &fold.train, spec.horizon, k, t)?),
                _ => None,
            };
            let combined = match &blend {
                Some(b) => (0..preds[0].len())
                    .map(|i| {
                        (0..fold.test.len())
                            .map(|r| {
                                let v: Vec<f64> = preds.iter().map(|p| p[i][r]).collect();
                                if v.iter().all(|x| x.is_finite()) {
                                    b.predict(&v)
                                } else {
                                    f64::NAN
                                }
                            })
                            .collect()
                    })
                    .collect(),
                None => combine(&preds, &w),
            };
            let traded =
                preps[0]
                    .trader
                    .trade_predictions(&combined, (b0, sc), &fold.test, &mut prev_all);
            all.extend(&traded);
            weights.push(match &blend {
                Some(b) => b.slopes(),
                None => w,
            });
            // This fold's rows become history, but not those whose label reaches into the
            // next test window.
            let next = folds.get(k + 1).map_or(usize::MAX, |f| f.test[0]);
            for (i, inst) in preps[0].trader.insts.iter().enumerate() {
                for (r, &day) in fold.test.iter().enumerate() {
                    let v: Vec<f64> = preds.iter().map(|p| p[i][r]).collect();
                    let y = inst.label[day];
                    if day + spec.horizon as usize >= next
                        || !y.is_finite()
                        || !v.iter().all(|x| x.is_finite())
                    {
                        continue;
                    }
                    seen.blend_x.push(v);
                    seen.blend_y.push(y);
                }
            }
        }
        seen.returns = alone.iter().map(|a| a.r.clone()).collect();
        Ok((all, alone, weights, seen))
    };
    let search_folds = |n: usize| {
        walk_forward(
            n,
            spec.train as usize,
            spec.test as usize,
            spec.step as usize,
            spec.expanding,
            spec.horizon as usize,
        )
    };
    let (all, alone, weights, prior) = run(spec, &search_folds, None, &mut t)?;
    let members_metrics: Vec<Metrics> = alone.iter().map(Traded::metrics).collect();
    let (mut holdout, mut holdout_members) = (None, Vec::new());
    if spec.holdout > 0 {
        let mut hs = spec.clone();
        hs.holdout_run = true;
        let h = spec.horizon as usize;
        let hold = spec.holdout as usize;
        let fold = |n: usize| -> Result<Vec<Fold>, String> {
            let start = n.saturating_sub(hold);
            let end = start.saturating_sub(h);
            let from = if spec.expanding {
                0
            } else {
                end.saturating_sub(spec.train as usize)
            };
            if end <= from {
                return Err("no training window before the hold-out".into());
            }
            Ok(vec![Fold {
                train: (from..end).collect(),
                test: (start..n).collect(),
            }])
        };
        let (h_all, h_alone, _, _) = run(&hs, &fold, Some(&prior), &mut t)?;
        holdout = Some(h_all.metrics());
        holdout_members = h_alone.iter().map(Traded::metrics).collect();
    }
    Ok(TrialEnsemble {
        method: method.to_string(),
        metrics: all.metrics(),
        members: members_metrics,
        weights,
        holdout,
        holdout_members,
    })
}

/// Walk-forward folds in order, positions carried from one to the next; after each fold the
/// objectives on the out-of-sample returns so far (or the fold's own) are reported.
fn walk_forward_folds(
    trader: &Trader,
    folds: &[Fold],
    days: &[i64],
    ctx: &mut dyn TrialContext,
    timings: &mut Timings,
) -> Result<Outcome, String> {
    let spec = trader.spec;
    let mut all = Traded::default();
    let mut last = None;
    let mut prev_pos = vec![0.0; trader.insts.len()];
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
        let fitted = trader.fit(&fold.train, &format!("fold {}", k + 1), timings)?;
        let clock = std::time::Instant::now();
        let traded = trader.trade(&fitted, &fold.test, &mut prev_pos)?;
        timings.trade += clock.elapsed().as_secs_f64();
        all.extend(&traded);
        last = Some((fitted, fold.test.clone()));
        for v in &traded.r {
            s1 += v;
            s2 += v * v;
            wins += usize::from(*v > 0.0);
        }
        let reported = if spec.report_per_fold {
            traded.metrics()
        } else if cheap {
            let n = all.r.len() as f64;
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
            all.metrics()
        };
        match ctx.report(k as u64 + 1, values_of(spec, &reported)) {
            Verdict::Continue => {}
            Verdict::Prune | Verdict::Stale => return Ok(Outcome::Pruned),
        }
    }
    let clock = std::time::Instant::now();
    let out = trader.evaluation(folds, days, all, last);
    timings.keep = clock.elapsed().as_secs_f64();
    Ok(out)
}

/// Walk-forward with epochs as the pruning budget: every fold's model trains an epoch at a
/// time, side by side; after each epoch all folds are traded with their best epoch so far and
/// the objectives on all their out-of-sample returns are reported (step = epoch), so a prune
/// verdict stops every fold's training at once.
fn epoch_folds(
    trader: &Trader,
    folds: &[Fold],
    days: &[i64],
    ctx: &mut dyn TrialContext,
    timings: &mut Timings,
) -> Result<Outcome, String> {
    let spec = trader.spec;
    let Some(last_fold) = folds.last() else {
        return Err("no walk-forward fold fits the data".into());
    };
    let mut fitted = Vec::new();
    for (k, fold) in folds.iter().enumerate() {
        fitted.push(trader.train(&fold.train, &format!("fold {}", k + 1), true, timings)?);
    }
    let mut active = vec![true; fitted.len()];
    let mut step = 0u64;
    loop {
        step += 1;
        if ctx.stopped() {
            return Ok(Outcome::Pruned);
        }
        let clock = std::time::Instant::now();
        for (f, on) in fitted.iter_mut().zip(active.iter_mut()) {
            if *on {
                *on = f.model.advance()?;
            }
        }
        timings.fit += clock.elapsed().as_secs_f64();
        let mut all = Traded::default();
        let mut prev = vec![0.0; trader.insts.len()];
        for (f, fold) in fitted.iter().zip(folds) {
            all.extend(&trader.trade(f, &fold.test, &mut prev)?);
        }
        let verdict = ctx.report(step, values_of(spec, &all.metrics()));
        if active.iter().any(|a| *a) {
            if verdict != Verdict::Continue {
                return Ok(Outcome::Pruned);
            }
            continue;
        }
        // Every fold has finished: the last report is the result itself.
        let last = fitted.pop().map(|f| (f, last_fold.test.clone()));
        return Ok(trader.evaluation(folds, days, all, last));
    }
}

/// CPCV: every split is fitted once and trades each of its test groups from a flat position;
/// after each split the objectives on all split returns so far (or the split's own) are
/// reported. The result is the mean of every metric over the backtest paths (each path covers
/// every group once), with `paths` and `sharpe_path_std`; the stored returns are the paths'
/// mean per day.
fn cpcv_paths(
    trader: &Trader,
    c: &Cpcv,
    days: &[i64],
    ctx: &mut dyn TrialContext,
    timings: &mut Timings,
) -> Result<Outcome, String> {
    let spec = trader.spec;
    let mut per: std::collections::HashMap<(usize, usize), Traded> = Default::default();
    let mut so_far = Traded::default();
    let mut last = None;
    for (f, fold) in c.folds.iter().enumerate() {
        if ctx.stopped() {
            return Ok(Outcome::Pruned);
        }
        let fitted = trader.fit(&fold.train, &format!("split {}", f + 1), timings)?;
        let mut split = Traded::default();
        for &g in &c.test_groups[f] {
            let rows: Vec<usize> = c.groups[g].clone().collect();
            let mut flat = vec![0.0; trader.insts.len()];
            let t = trader.trade(&fitted, &rows, &mut flat)?;
            split.extend(&t);
            per.insert((f, g), t);
        }
        last = Some((fitted, fold.test.clone()));
        so_far.extend(&split);
        let reported = if spec.report_per_fold {
            split.metrics()
        } else {
            so_far.metrics()
        };
        match ctx.report(f as u64 + 1, values_of(spec, &reported)) {
            Verdict::Continue => {}
            Verdict::Prune | Verdict::Stale => return Ok(Outcome::Pruned),
        }
    }
    let mut path_metrics = Vec::new();
    let mut mean_r: Vec<f64> = Vec::new();
    for path in &c.paths {
        let mut p = Traded::default();
        for (g, &f) in path.iter().enumerate() {
            p.extend(&per[&(f, g)]);
        }
        if mean_r.is_empty() {
            mean_r = vec![0.0; p.r.len()];
        }
        for (m, v) in mean_r.iter_mut().zip(&p.r) {
            *m += v / c.paths.len() as f64;
        }
        path_metrics.push(p.metrics());
    }
    let mut metrics = Metrics::new();
    for k in path_metrics[0].keys() {
        let vals: Vec<f64> = path_metrics.iter().map(|m| m[k]).collect();
        metrics.insert(k.clone(), vals.iter().sum::<f64>() / vals.len() as f64);
    }
    let sharpes: Vec<f64> = path_metrics.iter().map(|m| m["sharpe"]).collect();
    let mean = sharpes.iter().sum::<f64>() / sharpes.len() as f64;
    let var =
        sharpes.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (sharpes.len().max(2) - 1) as f64;
    metrics.insert("sharpe_path_std".into(), var.sqrt());
    metrics.insert("paths".into(), c.paths.len() as f64);
    let returns = ReturnSeries {
        days: c
            .groups
            .iter()
            .flat_map(|g| g.clone().map(|t| days[t]))
            .collect(),
        values: mean_r,
    };
    Ok(Outcome::Evaluated(Box::new(Evaluation {
        values: values_of(spec, &metrics),
        metrics,
        returns,
        model: trader.keep(last.as_ref()),
    })))
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

    /// The evaluation of a trial that must have completed.
    fn done(out: Outcome) -> Evaluation {
        match out {
            Outcome::Evaluated(e) => *e,
            other => panic!("{other:?}"),
        }
    }

    fn spec(features: &[(&str, &str)], strength: f64) -> WalkForwardSpec {
        let data = DataSource::Synthetic {
            days: 3000,
            seed: 3,
            strength,
            instruments: 1,
        };
        let features = features
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        WalkForwardSpec {
            train: 500,
            test: 250,
            step: 250,
            cost_bps: 0.0,
            slippage_bps: 0.0,
            objectives: vec!["sharpe".into(), "max_drawdown".into()],
            ..WalkForwardSpec::new(data, features)
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

    fn write_csv(path: &std::path::Path, b: &Bars) {
        std::fs::write(path, b.to_csv()).unwrap();
    }

    #[test]
    fn the_search_never_sees_the_holdout_and_the_holdout_run_tests_only_it() {
        let feats = [("mom", "sum(returns, 5) / (std(returns, $w) * 2.236)")];
        let params: Params = [("w".to_string(), ParamValue::Int(20))]
            .into_iter()
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let b = generate(&Synthetic {
            days: 3000,
            seed: 3,
            strength: 0.15,
            ..Default::default()
        })
        .unwrap();
        // The same market, and one whose last 250 days are wildly different.
        let mut wild = b.clone();
        for i in 2750..3000 {
            for v in [
                &mut wild.open,
                &mut wild.high,
                &mut wild.low,
                &mut wild.close,
            ] {
                v[i] *= 1.0 + 0.3 * ((i % 7) as f64 - 3.0) / 3.0;
            }
            wild.high[i] = wild.open[i].max(wild.close[i]).max(wild.high[i]);
            wild.low[i] = wild.open[i].min(wild.close[i]).min(wild.low[i]);
        }
        let (a, w) = (dir.path().join("a.csv"), dir.path().join("w.csv"));
        write_csv(&a, &b);
        write_csv(&w, &wild);
        let mut s = spec(&feats, 0.15);
        s.holdout = 250;
        let run = |s: &WalkForwardSpec, file: &std::path::Path| {
            let mut s = s.clone();
            s.data = DataSource::Files {
                paths: vec![file.display().to_string()],
                adjusted: false,
            };
            let mut ctx = Ctx(Vec::new());
            let out = run_walk_forward(&s, &assign(params.clone()), &mut ctx);
            let Evaluation {
                values: v,
                metrics: m,
                returns: r,
                ..
            } = done(out);
            (v, m, r, ctx.0)
        };
        let (v1, m1, r1, steps) = run(&s, &a);
        let (v2, m2, r2, _) = run(&s, &w);
        // (2750 − 501) / 250 = 8 folds, none touching the last 250 days; identical results
        // whatever those days hold.
        assert_eq!(steps.len(), 8);
        assert!(r1.days.iter().all(|d| *d < b.days[2750]));
        assert_eq!((&v1, &m1, &r1), (&v2, &m2, &r2));
        // The hold-out run: one fold, trained on the 500 days before it (purged), tested on it.
        s.holdout_run = true;
        let (v3, _, r3, steps) = run(&s, &a);
        let (v4, _, _, _) = run(&s, &w);
        assert_eq!(steps.len(), 1);
        assert_eq!(r3.days, b.days[2750..].to_vec());
        assert_ne!(v3, v4, "the hold-out run reads the hold-out");
        assert!(v3[0].is_finite());
    }

    #[test]
    fn cpcv_reports_every_split_and_averages_its_paths() {
        let feats = [("mom", "sum(returns, 5) / (std(returns, $w) * 2.236)")];
        let params: Params = [("w".to_string(), ParamValue::Int(20))]
            .into_iter()
            .collect();
        let mut s = spec(&feats, 0.15);
        s.splits = Splits::Cpcv {
            groups: 6,
            test_groups: 2,
            embargo: 5,
        };
        let mut ctx = Ctx(Vec::new());
        let out = run_walk_forward(&s, &assign(params), &mut ctx);
        let Evaluation {
            values,
            metrics,
            returns,
            ..
        } = done(out);
        // C(6, 2) = 15 splits, each reported; C(5, 1) = 5 paths covering all 3000 days.
        assert_eq!(ctx.0.len(), 15);
        assert_eq!(metrics["paths"], 5.0);
        assert_eq!(returns.values.len(), 3000);
        assert_eq!(values[0], metrics["sharpe"]);
        assert!(metrics["sharpe_path_std"] >= 0.0);
        // The planted edge holds on every path on average.
        assert!(metrics["sharpe"] > 0.3, "{metrics:?}");
    }

    /// Runs a trial with a model factory of the test's choosing.
    fn run_with(spec: &WalkForwardSpec, params: Params, factory: Factory) -> Evaluation {
        let mut ctx = Ctx(Vec::new());
        let mut t = Timings::default();
        done(evaluate(spec, &assign(params), &mut ctx, &mut t, factory).unwrap())
    }

    /// A model whose training labels are shuffled: the control that must learn nothing.
    struct Shuffled(Box<dyn Model>);

    impl Model for Shuffled {
        fn fit(
            &mut self,
            x: &[Vec<f64>],
            y: &[f64],
            v: Option<(&[Vec<f64>], &[f64])>,
        ) -> Result<(), String> {
            use rand::seq::SliceRandom;
            use rand::SeedableRng;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(y.len() as u64);
            let mut y = y.to_vec();
            y.shuffle(&mut rng);
            let v = v.map(|(vx, vy)| {
                let mut vy = vy.to_vec();
                vy.shuffle(&mut rng);
                (vx, vy)
            });
            self.0.fit(x, &y, v.as_ref().map(|(vx, vy)| (*vx, &vy[..])))
        }
        fn predict(&self, row: &[f64]) -> f64 {
            self.0.predict(row)
        }
        fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
            self.0.predict_many(rows)
        }
        fn format(&self) -> &'static str {
            self.0.format()
        }
        fn save(&self) -> Result<String, String> {
            self.0.save()
        }
    }

    fn lgbm_spec() -> WalkForwardSpec {
        let mut s = spec(
            &[
                ("mom", "sum(returns, 5) / (std(returns, 20) * 2.236)"),
                ("mom20", "sum(returns, 20) / std(returns, 60)"),
                ("vol", "std(returns, 20)"),
            ],
            0.3,
        );
        s.model = "lightgbm".into();
        s.classify = true;
        s.validation = 0.2;
        s.objectives = vec!["accuracy".into()];
        s.model_params = [
            ("num_iterations".to_string(), 200.0),
            ("num_leaves".to_string(), 7.0),
            ("min_data_in_leaf".to_string(), 40.0),
        ]
        .into();
        s
    }

    #[test]
    fn lightgbm_finds_the_planted_edge_and_nothing_in_shuffled_labels() {
        let real = run_with(&lgbm_spec(), Params::new(), model_for);
        let acc = real.metrics["accuracy"];
        // 2,250 out-of-sample days: one standard error of an accuracy is about 0.011.
        assert!(acc > 0.58, "out-of-sample direction accuracy {acc}");
        assert!(real.metrics["sharpe"] > 0.5, "{:?}", real.metrics);
        let control = run_with(&lgbm_spec(), Params::new(), |s| {
            Ok(Box::new(Shuffled(model_for(s)?)))
        });
        let c = control.metrics["accuracy"];
        assert!((0.46..0.54).contains(&c), "shuffled-label accuracy {c}");
        // The last fold's model comes back as LightGBM text with importance and SHAP, and
        // reloads to the predictions it made.
        let a = real.model.expect("artifact");
        assert_eq!(a.format, "lightgbm");
        assert_eq!(a.features.len(), 3);
        assert!(a.rounds.is_some_and(|r| (1..=200).contains(&r)));
        assert!(a.importance.iter().all(|i| i.shap >= 0.0 && i.gain >= 0.0));
        assert!(a.importance.iter().any(|i| i.shap > 0.0));
        assert!(
            a.model.contains("feature_names=mom mom20 vol"),
            "names kept in the model text"
        );
        let m = crate::eval::model::load_model(&a.format, &a.model).unwrap();
        let p = m.predict(&[0.5, 0.1, 0.01]);
        assert!((0.0..=1.0).contains(&p), "{p}");
        // The kept model, reloaded, predicts exactly what it predicted while trading its fold.
        LAST.with(|l| l.borrow_mut().clear());
        let again = run_with(&lgbm_spec(), Params::new(), |s| {
            Ok(Box::new(Remember(model_for(s)?)))
        });
        let a = again.model.unwrap();
        let (rows, preds) = LAST.with(|l| l.borrow().last().cloned().unwrap());
        assert!(rows.len() > 200);
        let reloaded = crate::eval::model::load_model(&a.format, &a.model).unwrap();
        assert_eq!(reloaded.predict_many(&rows).unwrap(), preds);
    }

    /// Per model made: the rows it was asked to predict and its predictions.
    type Predicted = Vec<(Vec<Vec<f64>>, Vec<f64>)>;

    thread_local! {
        static LAST: std::cell::RefCell<Predicted> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Keeps what the model predicted while trading.
    struct Remember(Box<dyn Model>);

    impl Model for Remember {
        fn fit(
            &mut self,
            x: &[Vec<f64>],
            y: &[f64],
            v: Option<(&[Vec<f64>], &[f64])>,
        ) -> Result<(), String> {
            LAST.with(|l| l.borrow_mut().push((Vec::new(), Vec::new())));
            self.0.fit(x, y, v)
        }
        fn predict(&self, row: &[f64]) -> f64 {
            self.0.predict(row)
        }
        fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
            let p = self.0.predict_many(rows)?;
            LAST.with(|l| {
                let mut l = l.borrow_mut();
                let last = l.last_mut().expect("fitted first");
                last.0.extend(rows.iter().cloned());
                last.1.extend(&p);
            });
            Ok(p)
        }
        fn format(&self) -> &'static str {
            self.0.format()
        }
        fn save(&self) -> Result<String, String> {
            self.0.save()
        }
        fn rounds(&self) -> Option<u32> {
            self.0.rounds()
        }
    }

    #[test]
    fn the_lstm_finds_the_planted_edge_and_nothing_in_shuffled_labels() {
        let mut s = lgbm_spec();
        s.model = "lstm".into();
        s.model_params = [
            ("sequence".to_string(), 10.0),
            ("hidden".to_string(), 16.0),
            ("epochs".to_string(), 15.0),
            ("batch".to_string(), 64.0),
            ("learning_rate".to_string(), 0.005),
        ]
        .into();
        // Balanced accuracy: a model that learned nothing and mostly says "up" in a rising
        // market gets the share of up days as its accuracy, but 0.5 here.
        let real = run_with(&s, Params::new(), model_for);
        let acc = real.metrics["balanced_accuracy"];
        assert!(
            acc > 0.58,
            "out-of-sample balanced direction accuracy {acc}"
        );
        // Trained on shuffled labels the network is a random function of its inputs, and
        // with a strongly predictive input that function is right or wrong by chance, with
        // either sign: over seeds (trials 1–4) it averages to no skill, and never reaches
        // the real model.
        let controls: Vec<f64> = (1..=4u64)
            .map(|trial| {
                let mut a = assign(Params::new());
                a.key.trial = TrialId(trial);
                let mut ctx = Ctx(Vec::new());
                let mut t = Timings::default();
                let shuffled: Factory = |s| Ok(Box::new(Shuffled(model_for(s)?)));
                done(evaluate(&s, &a, &mut ctx, &mut t, shuffled).unwrap()).metrics
                    ["balanced_accuracy"]
            })
            .collect();
        let mean = controls.iter().sum::<f64>() / 4.0;
        eprintln!("LSTM balanced accuracy {acc:.3}; shuffled-label controls {controls:.3?}");
        assert!(
            (0.47..0.53).contains(&mean),
            "shuffled-label balanced accuracy {controls:?}"
        );
        assert!(
            controls.iter().all(|c| *c < acc - 0.02),
            "{controls:?} vs {acc}"
        );
        // Its kept model reads 10-day sequences and reloads to a working model; a trial
        // parameter overrides the spec's sequence length.
        let a = real.model.unwrap();
        assert_eq!((a.format.as_str(), a.lookback), ("lstm", 10));
        let m = crate::eval::model::load_model(&a.format, &a.model).unwrap();
        let p = m.predict(&[0.1; 30]);
        assert!((0.0..=1.0).contains(&p), "{p}");
        let short: Params = [("sequence".to_string(), ParamValue::Int(5))].into();
        let e = run_with(&s, short, model_for);
        assert_eq!(e.model.unwrap().lookback, 5);
    }

    #[test]
    fn ensembles_vote_blend_and_weigh_by_recent_skill() {
        use mlt_protocol::spec::EnsembleSpec;
        let mut s = lgbm_spec();
        s.model = "ensemble".into();
        s.model_params = [
            ("lightgbm.num_iterations".to_string(), 100.0),
            ("lightgbm.num_leaves".to_string(), 7.0),
        ]
        .into();
        let ens = |method: &str, weights: Vec<f64>| EnsembleSpec {
            method: method.into(),
            members: vec!["ridge".into(), "lightgbm".into()],
            weights,
        };
        for method in ["voting", "blending", "dynamic", "stacking"] {
            s.ensemble = Some(ens(method, Vec::new()));
            let e = run_with(&s, Params::new(), model_for);
            let acc = e.metrics["balanced_accuracy"];
            assert!(acc > 0.58, "{method}: balanced accuracy {acc}");
            // The kept ensemble reloads, members and weights included.
            let a = e.model.unwrap();
            assert_eq!(a.format, "ensemble");
            let m = crate::eval::model::load_model(&a.format, &a.model).unwrap();
            let p = m.predict(&[0.5, 0.1, 0.01]);
            assert!(p.is_finite(), "{method}: {p}");
        }
        // Voting with all the weight on ridge is the ridge model, trade for trade.
        s.ensemble = Some(ens("voting", vec![1.0, 0.0]));
        let only_ridge = run_with(&s, Params::new(), model_for);
        let mut r = s.clone();
        r.model = "ridge".into();
        r.ensemble = None;
        let ridge = run_with(&r, Params::new(), model_for);
        assert_eq!(only_ridge.returns, ridge.returns);
        // Blending and dynamic weights need the validation tail.
        s.validation = 0.0;
        s.ensemble = Some(ens("blending", Vec::new()));
        let mut ctx = Ctx(Vec::new());
        let out = run_walk_forward(&s, &assign(Params::new()), &mut ctx);
        assert!(
            matches!(&out, Outcome::Failed(e) if e.contains("validation")),
            "{out:?}"
        );
    }

    /// Synthetic bars whose volume is the row index, in a CSV file: a spec reading it with
    /// `row = volume` as its first feature names every row its model sees.
    struct Indexed {
        bars: Bars,
        data: DataSource,
        _dir: tempfile::TempDir,
    }

    impl Indexed {
        fn new(days: usize, seed: u64, strength: f64) -> Self {
            let mut bars = generate(&Synthetic {
                days,
                seed,
                strength,
                ..Default::default()
            })
            .unwrap();
            bars.volume = Some((0..bars.len()).map(|i| i as f64).collect());
            let dir = tempfile::tempdir().unwrap();
            let csv = dir.path().join("idx.csv");
            write_csv(&csv, &bars);
            Self {
                bars,
                data: DataSource::Files {
                    paths: vec![csv.display().to_string()],
                    adjusted: false,
                },
                _dir: dir,
            }
        }

        /// `s` reads these bars: features `row` (the index), then `mom`.
        fn read_by(&self, s: &mut WalkForwardSpec, mom: &str) {
            s.features = vec![("row".into(), "volume".into()), ("mom".into(), mom.into())];
            s.data = self.data.clone();
        }
    }

    #[test]
    fn stacking_learns_only_from_out_of_fold_training_rows() {
        use mlt_protocol::spec::EnsembleSpec;
        let ix = Indexed::new(2000, 5, 0.3);
        let mut s = lgbm_spec();
        s.model = "ensemble".into();
        s.horizon = 3;
        ix.read_by(&mut s, "sum(returns, 5) / std(returns, 20)");
        s.model_params = [("lightgbm.num_iterations".to_string(), 30.0)].into();
        s.ensemble = Some(EnsembleSpec {
            method: "stacking".into(),
            members: vec!["ridge".into(), "lightgbm".into()],
            weights: Vec::new(),
        });
        SEEN.with(|s| s.borrow_mut().clear());
        STACKED.with(|s| s.borrow_mut().clear());
        let e = run_with(&s, Params::new(), |s| {
            Ok(Box::new(StackRecorder(Recorder(0, model_for(s)?))))
        });
        assert!(e.model.is_some());
        let seen = SEEN.with(|s| s.borrow().clone());
        let stacked = STACKED.with(|s| s.borrow().clone());
        assert_eq!(seen.len(), stacked.len());
        for ((fit, _, test), meta) in seen.iter().zip(&stacked) {
            assert!(!meta.is_empty());
            // The meta-model's rows are training rows, never a test row, and (walk-forward)
            // all of them before the test window.
            assert!(meta.iter().all(|r| fit.contains(r)));
            assert!(
                meta.iter().all(|r| r < &test[0]),
                "{:?} vs {}",
                meta.last(),
                test[0]
            );
            // Out of fold: the first quarter of the rows is only ever fitted on.
            let first_meta = meta.iter().min().unwrap();
            assert!(*first_meta >= fit[fit.len() / 4], "{first_meta}");
        }
    }

    thread_local! {
        /// Per block of a trial ensemble's stacking: the days fitted on, the days predicted.
        pub(super) static TRIAL_STACKS: std::cell::RefCell<Vec<(Vec<usize>, Vec<usize>)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    #[test]
    fn a_stacked_ensemble_of_trials_learns_only_inside_each_training_window() {
        // Volume is the row index: nothing reads it but the check below.
        let mut s = spec(&[("mom", "sum(returns, 5) / std(returns, 20)")], 0.3);
        s.horizon = 3;
        s.holdout = 250;
        let members = [
            (
                0,
                Params::from([("alpha".to_string(), ParamValue::Float(0.1))]),
            ),
            (
                1,
                Params::from([("alpha".to_string(), ParamValue::Float(1e4))]),
            ),
        ];
        TRIAL_STACKS.with(|t| t.borrow_mut().clear());
        let e = ensemble_of_trials(&s, &members, "stacking", None).unwrap();
        let n = 3000 - 250;
        let folds = walk_forward(n, 500, 250, 250, false, 3).unwrap();
        let stacks = TRIAL_STACKS.with(|t| t.borrow().clone());
        // Three blocks per fold of the search, then three in the hold-out's window.
        assert_eq!(stacks.len(), 3 * (folds.len() + 1));
        for (k, fold) in folds.iter().enumerate() {
            for (before, block) in &stacks[3 * k..3 * k + 3] {
                assert!(!before.is_empty() && !block.is_empty());
                // Fitted and predicted rows are the fold's training rows; the rows fitted on
                // end (label included) before the block they predict.
                assert!(before.iter().chain(block).all(|d| fold.train.contains(d)));
                assert!(before.iter().all(|d| d + 3 < block[0]));
                assert!(block.iter().all(|d| d + 3 < fold.test[0]));
            }
        }
        // The hold-out's window: everything before the hold-out's first day, purged.
        for (before, block) in &stacks[3 * folds.len()..] {
            assert!(before.iter().chain(block).all(|d| d + 3 < n));
        }
        // The meta-model's slopes are the weights: one per member, learned per fold.
        assert_eq!(e.weights.len(), folds.len());
        assert!(e.weights.iter().all(|w| w.len() == 2));
        assert!(e.weights.windows(2).any(|w| w[0] != w[1]));
        assert!(e.metrics["sharpe"].is_finite() && e.holdout.is_some());
        // Each member alone is the plain walk-forward trial.
        let mut ctx = Ctx(Vec::new());
        let mut a = assign(members[0].1.clone());
        a.key.trial = TrialId(0);
        let alone = done(evaluate(&s, &a, &mut ctx, &mut Timings::default(), model_for).unwrap());
        assert_eq!(alone.metrics["sharpe"], e.members[0]["sharpe"]);
    }

    thread_local! {
        /// Per model made: the rows stacking's meta-model learned from.
        static STACKED: std::cell::RefCell<Vec<Vec<usize>>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    struct StackRecorder(Recorder);

    impl Model for StackRecorder {
        fn fit(
            &mut self,
            x: &[Vec<f64>],
            y: &[f64],
            v: Option<(&[Vec<f64>], &[f64])>,
        ) -> Result<(), String> {
            crate::eval::ensemble::tests::META_ROWS.with(|m| m.borrow_mut().clear());
            let r = self.0.fit(x, y, v);
            let meta = crate::eval::ensemble::tests::META_ROWS
                .with(|m| m.borrow().iter().map(|v| *v as usize).collect());
            STACKED.with(|s| s.borrow_mut().push(meta));
            r
        }
        fn predict(&self, row: &[f64]) -> f64 {
            self.0.predict(row)
        }
        fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
            self.0.predict_many(rows)
        }
        fn format(&self) -> &'static str {
            self.0.format()
        }
        fn save(&self) -> Result<String, String> {
            self.0.save()
        }
    }

    /// Prunes at a given step.
    struct PruneAt(u64, Vec<u64>);

    impl TrialContext for PruneAt {
        fn report(&mut self, step: u64, _: Vec<f64>) -> Verdict {
            self.1.push(step);
            if step >= self.0 {
                Verdict::Prune
            } else {
                Verdict::Continue
            }
        }
        fn stopped(&self) -> bool {
            false
        }
    }

    #[test]
    fn epochs_can_be_the_pruning_budget() {
        let mut s = lgbm_spec();
        s.model = "lstm".into();
        s.budget_epochs = true;
        s.early_stopping = 0;
        s.model_params = [
            ("sequence".to_string(), 5.0),
            ("hidden".to_string(), 8.0),
            ("epochs".to_string(), 4.0),
            ("batch".to_string(), 128.0),
        ]
        .into();
        // One report per epoch over all 9 folds; the last is the result.
        let mut ctx = Ctx(Vec::new());
        let e = done(run_walk_forward(&s, &assign(Params::new()), &mut ctx));
        let steps: Vec<u64> = ctx.0.iter().map(|(k, _)| *k).collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
        assert_eq!(ctx.0[3].1, e.values);
        assert_eq!(e.returns.values.len(), 9 * 250);
        assert!(e
            .model
            .unwrap()
            .rounds
            .is_some_and(|r| (1..=4).contains(&r)));
        // A prune verdict after epoch 2 stops every fold's training there.
        let mut p = PruneAt(2, Vec::new());
        let out = run_walk_forward(&s, &assign(Params::new()), &mut p);
        assert!(matches!(out, Outcome::Pruned), "{out:?}");
        assert_eq!(p.1, vec![1, 2]);
        // A multi-step head trains epoch by epoch the same way, and keeps its horizons.
        s.horizon = 2;
        s.model_params.insert("outputs".into(), 2.0);
        let mut ctx = Ctx(Vec::new());
        let e = done(run_walk_forward(&s, &assign(Params::new()), &mut ctx));
        assert_eq!(ctx.0.len(), 4);
        let a = e.model.unwrap();
        let m = crate::eval::model::load_model(&a.format, &a.model).unwrap();
        assert_eq!(m.horizons(), vec![1, 2]);
    }

    #[test]
    fn boosting_rounds_can_be_the_pruning_budget() {
        let mut s = lgbm_spec();
        s.budget_epochs = true;
        // 200 rounds in stages of 20: at most 10 reports, one per stage, over all 9 folds.
        let mut ctx = Ctx(Vec::new());
        let e = done(run_walk_forward(&s, &assign(Params::new()), &mut ctx));
        let steps: Vec<u64> = ctx.0.iter().map(|(k, _)| *k).collect();
        assert!(!steps.is_empty() && steps.len() <= 10, "{steps:?}");
        assert!(steps.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(ctx.0.last().unwrap().1, e.values);
        assert!(e.metrics["balanced_accuracy"] > 0.58, "{:?}", e.metrics);
        let a = e.model.unwrap();
        assert_eq!(a.format, "lightgbm-staged");
        assert!(a.rounds.is_some_and(|r| r % 20 == 0 && r <= 200));
        // A prune verdict after the first stage stops every fold there.
        let mut p = PruneAt(1, Vec::new());
        let out = run_walk_forward(&s, &assign(Params::new()), &mut p);
        assert!(matches!(out, Outcome::Pruned), "{out:?}");
        assert_eq!(p.1, vec![1]);
    }

    #[test]
    fn trial_parameters_reach_lightgbm_by_name_or_alias() {
        let mut s = lgbm_spec();
        s.validation = 0.0;
        let params: Params = [
            ("n_estimators".to_string(), ParamValue::Int(3)),
            ("learning_rate".to_string(), ParamValue::Float(0.2)),
        ]
        .into();
        let e = run_with(&s, params, model_for);
        let a = e.model.unwrap();
        // Three rounds, as the trial asked, and its learning rate in the model text.
        assert_eq!(a.rounds, Some(3));
        assert!(
            a.model.contains("[learning_rate: 0.2]"),
            "{}",
            &a.model[..a.model.len().min(2000)]
        );
        let bad: Params = [("learning_rate".to_string(), ParamValue::Str("x".into()))].into();
        let mut ctx = Ctx(Vec::new());
        let out = run_walk_forward(&s, &assign(bad), &mut ctx);
        assert!(
            matches!(&out, Outcome::Failed(e) if e.contains("learning_rate")),
            "{out:?}"
        );
    }

    /// Per model made: (fit rows, validation rows, predicted rows), by row index.
    type Seen = Vec<(Vec<usize>, Vec<usize>, Vec<usize>)>;

    thread_local! {
        static SEEN: std::cell::RefCell<Seen> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Records which rows (the first feature is the row index) it is fitted, validated and
    /// asked to predict on, and the targets each training row is fitted on.
    struct Recorder(usize, Box<dyn Model>);

    impl Model for Recorder {
        fn fit(
            &mut self,
            x: &[Vec<f64>],
            y: &[f64],
            v: Option<(&[Vec<f64>], &[f64])>,
        ) -> Result<(), String> {
            let idx = |x: &[Vec<f64>]| x.iter().map(|r| r[0] as usize).collect::<Vec<_>>();
            SEEN.with(|s| {
                let mut s = s.borrow_mut();
                self.0 = s.len();
                s.push((idx(x), v.map_or(Vec::new(), |(vx, _)| idx(vx)), Vec::new()));
            });
            let k = (y.len() / x.len().max(1)).max(1);
            TARGETS.with(|t| {
                t.borrow_mut().push(
                    x.iter()
                        .zip(y.chunks(k))
                        .map(|(r, y)| (r[0] as usize, y.to_vec()))
                        .collect(),
                )
            });
            self.1.fit(x, y, v)
        }
        fn predict(&self, row: &[f64]) -> f64 {
            self.1.predict(row)
        }
        fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
            SEEN.with(|s| {
                s.borrow_mut()[self.0]
                    .2
                    .extend(rows.iter().map(|r| r[0] as usize))
            });
            self.1.predict_many(rows)
        }
        fn format(&self) -> &'static str {
            self.1.format()
        }
        fn save(&self) -> Result<String, String> {
            self.1.save()
        }
    }

    /// Per fit: each training row's index (its first feature) and targets.
    type Fits = Vec<Vec<(usize, Vec<f64>)>>;

    thread_local! {
        static TARGETS: std::cell::RefCell<Fits> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    #[test]
    fn a_multi_step_head_is_fitted_on_every_horizon_up_to_the_label() {
        let ix = Indexed::new(1200, 8, Synthetic::default().strength);
        let b = &ix.bars;
        let mut s = lgbm_spec();
        s.model = "lstm".into();
        ix.read_by(&mut s, "sum(returns, 5)");
        s.train = 400;
        s.test = 200;
        s.step = 200;
        s.horizon = 4;
        s.classify = false;
        s.model_params = [
            ("sequence".to_string(), 3.0),
            ("hidden".to_string(), 4.0),
            ("epochs".to_string(), 2.0),
            ("outputs".to_string(), 2.0),
        ]
        .into();
        TARGETS.with(|t| t.borrow_mut().clear());
        let e = run_with(&s, Params::new(), |s| {
            Ok(Box::new(Recorder(0, model_for(s)?)))
        });
        let fits = TARGETS.with(|t| t.borrow().clone());
        assert!(fits.len() >= 3, "one fit per fold: {}", fits.len());
        // Two outputs over a 4-day label: the 2-day and the 4-day forward return.
        let (r2, r4) = (forward_return(&b.close, 2), forward_return(&b.close, 4));
        for rows in &fits {
            assert!(rows.len() > 200);
            // A row names its first step's day; its own day is the sequence's last.
            for (first, y) in rows {
                let t = first + 2;
                assert_eq!(y, &vec![r2[t], r4[t]], "row {t}");
            }
        }
        // The kept model predicts both horizons, the label's last and traded.
        let a = e.model.expect("the last fold's model is kept");
        let m = crate::eval::model::load_model(&a.format, &a.model).unwrap();
        assert_eq!(m.horizons(), vec![2, 4]);
        let p = crate::eval::predict::predict_bars(&a, b, "idx.csv").unwrap();
        assert_eq!(p.horizons, vec![2, 4]);
        let last = p.rows.iter().rposition(|r| r[1].is_finite()).unwrap();
        assert!(p.rows[last][0].is_finite());
        // More outputs than the label has days is an error naming the setting.
        s.model_params.insert("outputs".into(), 5.0);
        let mut ctx = Ctx(Vec::new());
        let err = evaluate(
            &s,
            &assign(Params::new()),
            &mut ctx,
            &mut Timings::default(),
            model_for,
        )
        .expect_err("5 outputs over a 4-day horizon");
        assert!(err.contains("`outputs` = 5"), "{err}");
    }

    #[test]
    fn a_searched_multi_step_head_is_checked_before_the_study_runs() {
        let parse = |model: &str, space: &str| {
            let text = format!(
                "[study]\nname = \"m\"\nn_trials = 2\n[space]\n{space}\n[objective]\nkind = \"walk_forward\"\ndata = \"synthetic\"\nsynthetic = {{ days = 800 }}\nfeatures = {{ m = \"returns\" }}\nhorizon = 3\ntrain = 300\ntest = 100\n{model}"
            );
            let s = mlt_protocol::spec::Spec::parse(&text, "m.toml").unwrap();
            let mlt_protocol::spec::ObjectiveSpec::WalkForward(w) = &s.objective else {
                panic!()
            };
            check(w, &s.space, None)
        };
        let lstm = "model = \"lstm\"";
        assert!(parse(lstm, "outputs = { type = \"int\", low = 1, high = 3 }").is_ok());
        let (key, msg) =
            parse(lstm, "outputs = { type = \"int\", low = 1, high = 4 }").unwrap_err();
        assert_eq!(key, "space.outputs");
        assert!(msg.contains("more than the 3-day horizon"), "{msg}");
        let ensemble =
            "model = \"ensemble\"\n[objective.ensemble]\nmembers = [\"ridge\", \"lstm\"]";
        let (key, msg) = parse(
            ensemble,
            "\"lstm.outputs\" = { type = \"categorical\", choices = [1, 2] }",
        )
        .unwrap_err();
        assert_eq!(key, "space.lstm.outputs");
        assert!(msg.contains("needs `model = \"lstm\"`"), "{msg}");
    }

    #[test]
    fn early_stopping_never_sees_a_test_row() {
        let ix = Indexed::new(2000, 5, Synthetic::default().strength);
        for (horizon, validation, cpcv_splits) in
            [(1, 0.2, false), (5, 0.3, false), (3, 0.25, true)]
        {
            let mut s = lgbm_spec();
            ix.read_by(&mut s, "sum(returns, 5)");
            s.horizon = horizon;
            s.validation = validation;
            if cpcv_splits {
                s.splits = Splits::Cpcv {
                    groups: 5,
                    test_groups: 2,
                    embargo: 2,
                };
            }
            SEEN.with(|s| s.borrow_mut().clear());
            run_with(&s, Params::new(), |s| {
                Ok(Box::new(Recorder(0, model_for(s)?)))
            });
            let seen = SEEN.with(|s| s.borrow().clone());
            assert!(!seen.is_empty());
            for (fit, valid, test) in &seen {
                assert!(!valid.is_empty() && !test.is_empty() && !fit.is_empty());
                let (v0, v1) = (valid[0], *valid.last().unwrap());
                // The validation tail is the end of the training rows, purged from the rest.
                let before: Vec<&usize> = fit.iter().filter(|&&t| t < v0).collect();
                assert!(before.iter().all(|&&t| t + (horizon as usize) < v0));
                // No test row is ever fitted or validated on, and in walk-forward the tail
                // ends before the test window starts.
                assert!(test.iter().all(|t| !fit.contains(t) && !valid.contains(t)));
                if !cpcv_splits {
                    assert!(
                        v1 < test[0],
                        "validation {v0}..={v1}, test from {}",
                        test[0]
                    );
                    assert!(fit.iter().all(|&t| t < v0));
                }
            }
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
        let Evaluation {
            values,
            metrics,
            returns,
            ..
        } = done(out);
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
        let Evaluation {
            values: v3,
            metrics: m3,
            ..
        } = done(run_walk_forward(
            &sharpe_only,
            &assign(params.clone()),
            &mut c3,
        ));
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
        let port = done(out).metrics;
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
        let c = done(out).metrics;
        assert!(c["sharpe"] > 0.5 && c["accuracy"] > 0.5, "{c:?}");
        // Without an edge the same pipeline finds none.
        let out = run_walk_forward(
            &spec(&feats, 0.0),
            &assign(params.clone()),
            &mut Ctx(Vec::new()),
        );
        let flat = done(out).metrics;
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
