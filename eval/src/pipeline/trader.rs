//! The trader of one trial: fits the model on a split's training rows (with the validation
//! tail for early stopping), predicts the test rows, trades them as an equal-weight portfolio
//! with costs, and keeps the last fold's model as the trial's artifact.
use super::prepare::Inst;
use super::traded::{values_of, Regimes, Traded};
use super::Timings;
use crate::backtest::{positions, strategy_returns, Sizing};
use crate::models::{Factory, Model, ModelSettings};
use mlt_protocol::messages::{Evaluation, Outcome};
use mlt_protocol::records::{FeatureImportance, HoldoutWindow, ModelArtifact};
use mlt_protocol::spec::WalkForwardSpec;

/// The largest model text kept with a trial (it travels in the trial's result frame).
pub const MAX_ARTIFACT: usize = 8 << 20;

/// What a trial needs besides the data: sizing and the model's settings.
pub(super) struct Trader<'a> {
    pub(super) spec: &'a WalkForwardSpec,
    pub(super) insts: Vec<Inst>,
    pub(super) sizing: Sizing,
    pub(super) model: ModelSettings,
    pub(super) factory: Factory,
    /// Feature names and expressions with the trial's parameters, in column order.
    pub(super) features: Vec<(String, String)>,
    /// Dates of the rows.
    pub(super) days: Vec<i64>,
    /// The instruments' names, in the order of `insts`.
    pub(super) instruments: Vec<String>,
    /// A hold-out evaluation's data and window.
    pub(super) holdout: Option<HoldoutWindow>,
    /// The market's regime on each row (for the stability breakdown).
    pub(super) regimes: Regimes,
}

/// A model fitted on one split's training rows, with its label's scale.
pub(super) struct Fitted {
    pub(super) model: Box<dyn Model>,
    pub(super) b0: f64,
    pub(super) scale: f64,
    /// The rows it was fitted on (without the validation tail).
    pub(super) rows: Vec<usize>,
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

impl Trader<'_> {
    /// Every instrument's usable rows (finite features and label) among `rows`, with their
    /// labels (a multi-step head's targets: one per horizon, row after row).
    /// Rows in time order (day by day, instruments within a day), so that a model may cut
    /// them chronologically (stacking's out-of-fold predictions do).
    pub(super) fn gather(&self, rows: &[usize]) -> (Vec<Vec<f64>>, Vec<f64>) {
        let lb = self.model.rows.lookback as usize;
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
    pub(super) fn fit(
        &self,
        train: &[usize],
        what: &str,
        timings: &mut Timings,
    ) -> Result<Fitted, String> {
        self.train(train, what, false, timings)
    }

    /// [`Trader::fit`], or with `staged` only the start of training (the model then advances
    /// a stage at a time: epochs or boosting rounds as the pruning budget).
    pub(super) fn train(
        &self,
        train: &[usize],
        what: &str,
        staged: bool,
        timings: &mut Timings,
    ) -> Result<Fitted, String> {
        let (fit_rows, valid_rows) = validation_split(
            train,
            self.spec.model.validation,
            self.spec.label.horizon as usize,
        );
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
        let k = self.model.rows.horizons.len().max(1);
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
    pub(super) fn evaluation(
        &self,
        days: &[i64],
        all: Traded,
        last: Option<(Fitted, Vec<usize>)>,
    ) -> Outcome {
        let metrics = all.metrics();
        Outcome::Evaluated(Box::new(Evaluation {
            values: values_of(self.spec, &metrics),
            metrics,
            daily: all.daily(days, &self.instruments, &self.regimes),
            model: self.keep(last.as_ref()),
            holdout: self.holdout.clone(),
        }))
    }

    /// The artifact of a fitted model: its text, features, settings, and importance with
    /// SHAP on the rows it was tested on.
    pub(super) fn artifact(&self, f: &Fitted, tested: &[usize]) -> Result<ModelArtifact, String> {
        let x: Vec<Vec<f64>> = self
            .insts
            .iter()
            .flat_map(|inst| {
                tested
                    .iter()
                    .filter_map(|&t| inst.seq(t, self.model.rows.lookback as usize))
            })
            .collect();
        let imp = f.model.importance(&x)?;
        let day = |i: Option<&usize>| i.map_or(0, |&t| self.days[t]);
        Ok(ModelArtifact {
            format: f.model.format().into(),
            model: f.model.save()?,
            features: self.features.clone(),
            classify: self.spec.label.classify,
            horizon: self.spec.label.horizon,
            adjusted: self.spec.data.adjusted(),
            trained: (day(f.rows.first()), day(f.rows.last())),
            rounds: f.model.rounds(),
            lookback: self.model.rows.lookback,
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
    pub(super) fn keep(&self, f: Option<&(Fitted, Vec<usize>)>) -> Option<ModelArtifact> {
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
    pub(super) fn trade(
        &self,
        f: &Fitted,
        test: &[usize],
        prev: &mut [f64],
    ) -> Result<Traded, String> {
        let preds = self.predict(f, test)?;
        Ok(self.trade_predictions(&preds, (f.b0, f.scale), test, prev))
    }

    /// The fitted model's predictions of the `test` rows, per instrument (NaN where a feature
    /// is missing).
    pub(super) fn predict(&self, f: &Fitted, test: &[usize]) -> Result<Vec<Vec<f64>>, String> {
        let lb = self.model.rows.lookback as usize;
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
    pub(super) fn trade_predictions(
        &self,
        preds: &[Vec<f64>],
        (b0, scale): (f64, f64),
        test: &[usize],
        prev: &mut [f64],
    ) -> Traded {
        let spec = self.spec;
        let k_inst = self.insts.len() as f64;
        let days = test.len();
        let mut out = Traded {
            r: vec![0.0; days],
            bench: vec![0.0; days],
            held: vec![Vec::with_capacity(self.insts.len()); days],
            pred: vec![Vec::with_capacity(self.insts.len()); days],
            next: vec![Vec::with_capacity(self.insts.len()); days],
            fwd: vec![Vec::with_capacity(self.insts.len()); days],
            rows: test.to_vec(),
            fold: vec![0; days],
        };
        for (i, (inst, pred)) in self.insts.iter().zip(preds).enumerate() {
            // A classifier's prediction is the probability of "up": centre it for sign and
            // threshold sizing. A regression's predicted return goes through a logistic of its
            // scale for probability sizing.
            let sized: Vec<f64> = if spec.label.classify {
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
            let pos = positions(&sized, self.sizing, spec.trading.long_only);
            let nx: Vec<f64> = test.iter().map(|&t| inst.next[t]).collect();
            let mut with_prev = vec![prev[i]];
            with_prev.extend(&pos);
            let mut nx0 = vec![0.0];
            nx0.extend(&nx);
            // The first entry is the carried-over position (no return, no trade from it).
            let r = strategy_returns(
                &with_prev,
                &nx0,
                spec.trading.cost_bps,
                spec.trading.slippage_bps,
            );
            prev[i] = *pos.last().unwrap_or(&prev[i]);
            for (j, v) in r[1..].iter().enumerate() {
                let t = test[j];
                out.r[j] += v / k_inst;
                // Buy-and-hold earns the day's return (nothing where it is unknown).
                out.bench[j] += if nx[j].is_nan() { 0.0 } else { nx[j] / k_inst };
                out.held[j].push(pos[j]);
                // Direction scores read "up" as a positive prediction.
                let p = pred[j];
                out.pred[j].push(if spec.label.classify { p - 0.5 } else { p });
                out.next[j].push(nx[j]);
                out.fwd[j].push(inst.fwd[t]);
            }
        }
        out
    }
}
