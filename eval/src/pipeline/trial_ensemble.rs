//! Study-level ensembles of trials: the best trials' models fitted fold by fold on the study's
//! walk-forward folds, combined (voting, dynamic weights, blending, stacking) and traded as one
//! strategy, then evaluated on the hold-out with weights learned on the search period.
use super::prepare::{prepare, Prepared};
use super::traded::Traded;
use super::{holdout_fold, search_folds, Timings, Trial};
use crate::combine::{meta_model, skill_weights, stacking_blocks};
use crate::metrics as m;
use crate::models::Factory;
use crate::models::{model_for, ridge, RidgeFit};
use crate::splits::Fold;
use mlt_protocol::records::{Metrics, Params};
use mlt_protocol::spec::{EnsembleMethod, Splits, WalkForwardSpec};

/// A study-level ensemble of trials, evaluated on the study's walk-forward folds and on its
/// hold-out.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrialEnsemble {
    /// How the members were combined.
    pub method: EnsembleMethod,
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
/// else dynamic weights ([`skill_weights`]) from each member's Sharpe so far.
fn member_weights(method: EnsembleMethod, history: &[Vec<f64>]) -> Vec<f64> {
    if method != EnsembleMethod::Dynamic || history.iter().any(|h| h.len() < 2) {
        return vec![1.0 / history.len() as f64; history.len()];
    }
    let skill: Vec<f64> = history.iter().map(|h| m::sharpe(h)).collect();
    skill_weights(&skill)
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

/// Stacking's meta-model for one fold of an ensemble of trials ([`crate::combine`]): the
/// training window's days in blocks, every member fitted on the days before a block whose
/// label ends before it and predicting it. Nothing outside `train` is read.
fn stack_within(
    preps: &[Prepared],
    train: &[usize],
    horizon: u32,
    fold: usize,
    t: &mut Timings,
) -> Result<RidgeFit, String> {
    let h = horizon as usize;
    let fit_len = |start: usize| train.iter().take_while(|&&d| d + h < train[start]).count();
    let (mut meta_x, mut meta_y) = (Vec::new(), Vec::new());
    for (b, (fit, block)) in stacking_blocks(train.len(), fit_len, 20)
        .into_iter()
        .enumerate()
    {
        let (before, block) = (&train[..fit], &train[block]);
        let mut preds = Vec::new();
        for p in preps {
            let what = format!("fold {}, stacking block {}", fold + 1, b + 1);
            let f = p.trader.fit(before, &what, t)?;
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
    }
    meta_model(&meta_x, &meta_y).map_err(|e| format!("fold {}: {e}", fold + 1))
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
    method: EnsembleMethod,
    workdir: Option<&str>,
) -> Result<TrialEnsemble, String> {
    ensemble_with(spec, members, method, workdir, model_for)
}

/// [`ensemble_of_trials`] with the members' models made by `factory`.
pub(super) fn ensemble_with(
    spec: &WalkForwardSpec,
    members: &[(u64, Params)],
    method: EnsembleMethod,
    workdir: Option<&str>,
    factory: Factory,
) -> Result<TrialEnsemble, String> {
    if members.len() < 2 {
        return Err("an ensemble needs at least two trials".into());
    }
    if !matches!(spec.windows.splits, Splits::WalkForward) {
        return Err("ensembles of trials are evaluated on walk-forward splits".into());
    }
    let mut t = Timings::default();
    let run = |holdout: bool,
               folds_of: &dyn Fn(usize) -> Result<Vec<Fold>, String>,
               prior: Option<&Prior>,
               t: &mut Timings|
     -> Result<Combined, String> {
        let mut preps = Vec::new();
        for (trial, params) in members {
            let trial = Trial {
                params,
                workdir,
                seed: *trial,
                holdout,
            };
            preps.push(prepare(spec, &trial, (1, None), t, factory)?);
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
                let mut traded = p.trader.trade_predictions(
                    &pr,
                    (f.b0, f.scale),
                    &fold.test,
                    &mut prev_alone[j],
                );
                traded.fold = vec![k as u32; traded.r.len()];
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
                EnsembleMethod::Blending if bx.len() >= 30 => ridge(bx, by, 1e-3),
                EnsembleMethod::Stacking => {
                    Some(stack_within(&preps, &fold.train, spec.label.horizon, k, t)?)
                }
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
            let mut traded =
                preps[0]
                    .trader
                    .trade_predictions(&combined, (b0, sc), &fold.test, &mut prev_all);
            traded.fold = vec![k as u32; traded.r.len()];
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
                    if day + spec.label.horizon as usize >= next
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
    let search_folds = |n: usize| search_folds(spec, n);
    let (all, alone, weights, prior) = run(false, &search_folds, None, &mut t)?;
    let members_metrics: Vec<Metrics> = alone.iter().map(Traded::metrics).collect();
    let (mut holdout, mut holdout_members) = (None, Vec::new());
    if spec.windows.holdout > 0 {
        let fold = |n: usize| holdout_fold(spec, n).map(|f| vec![f]);
        let (h_all, h_alone, _, _) = run(true, &fold, Some(&prior), &mut t)?;
        holdout = Some(h_all.metrics());
        holdout_members = h_alone.iter().map(Traded::metrics).collect();
    }
    Ok(TrialEnsemble {
        method,
        metrics: all.metrics(),
        members: members_metrics,
        weights,
        holdout,
        holdout_members,
    })
}
