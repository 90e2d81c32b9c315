//! The `walk_forward` objective, stage by stage:
//!
//! ```text
//! prepare.rs         data (universe) → features (guarded, cached) → labels → model settings
//! trader.rs          per split: fit on the training rows, predict the test rows, trade them
//! traded.rs          out-of-sample returns → metrics → the objectives' values
//! folds.rs           the fold loops: walk-forward, epochs as the budget, CPCV paths, Monte
//!                    Carlo windows
//! trial_ensemble.rs  the study's best trials combined and traded as one strategy
//! check.rs           the submit-time check (data, features, look-ahead guard, sizes)
//! ```
//!
//! [`run_walk_forward`] is the orchestrator: prepare the trial, cut the splits, run the folds.
mod check;
mod folds;
mod prepare;
mod traded;
mod trader;
mod trial_ensemble;

pub use check::{adjusted_levels, check};
pub use trader::{validation_split, MAX_ARTIFACT};
pub use trial_ensemble::{ensemble_of_trials, TrialEnsemble};

use crate::context::TrialContext;
use crate::models::model_for;
use crate::models::Factory;
use crate::splits::{cpcv, monte_carlo, walk_forward, Fold};
use folds::{cpcv_paths, epoch_folds, monte_carlo_windows, walk_forward_folds};
use mlt_protocol::messages::Outcome;
use mlt_protocol::records::Params;
use mlt_protocol::spec::{Splits, WalkForwardSpec};
use prepare::{prepare, Prepared};

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

/// One trial of a walk-forward study: its parameters, the folder relative data files are read
/// from, and the seed of its model.
#[derive(Clone, Copy, Debug)]
pub struct Trial<'a> {
    /// The trial's parameters.
    pub params: &'a Params,
    /// The study's folder (relative data files are taken from it).
    pub workdir: Option<&'a str>,
    /// The model's seed (the trial's number; a hold-out evaluation keeps its source's).
    pub seed: u64,
    /// A hold-out evaluation: one fold, trained on the window before the hold-out and tested
    /// on it. Otherwise a search trial, which never sees the hold-out.
    pub holdout: bool,
}

/// [`run_walk_forward`] with its timings.
pub fn run_walk_forward_timed(
    spec: &WalkForwardSpec,
    trial: &Trial,
    ctx: &mut dyn TrialContext,
) -> (Outcome, Timings) {
    let mut t = Timings::default();
    let start = std::time::Instant::now();
    let out = match evaluate(spec, trial, ctx, &mut t, model_for) {
        Ok(o) => o,
        Err(e) => Outcome::Failed(e),
    };
    t.total = start.elapsed().as_secs_f64();
    (out, t)
}

/// Runs one walk-forward trial: bars → features (look-ahead guarded) → labels → purged
/// walk-forward folds → per fold: fit the model, predict the test window, trade it with costs
/// → report the objectives on the out-of-sample returns so far after every fold (a prune
/// verdict stops before the next) → final metrics.
pub fn run_walk_forward(
    spec: &WalkForwardSpec,
    trial: &Trial,
    ctx: &mut dyn TrialContext,
) -> Outcome {
    run_walk_forward_timed(spec, trial, ctx).0
}

/// The orchestrator: prepare the trial, cut its splits, run its folds.
fn evaluate(
    spec: &WalkForwardSpec,
    trial: &Trial,
    ctx: &mut dyn TrialContext,
    timings: &mut Timings,
    factory: Factory,
) -> Result<Outcome, String> {
    let Prepared {
        trader,
        days,
        n,
        datasets,
    } = prepare(spec, trial, (ctx.threads(), ctx.gpu()), timings, factory)?;
    for d in datasets {
        ctx.dataset(d);
    }
    if trial.holdout {
        let fold = holdout_fold(spec, n)?;
        return walk_forward_folds(&trader, &[fold], &days, ctx, timings);
    }
    match &spec.windows.splits {
        Splits::WalkForward => {
            let folds = search_folds(spec, n)?;
            if spec.report.budget_epochs {
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
                spec.label.horizon as usize,
                *embargo as usize,
            )
            .map_err(|e| format!("splits: {e}"))?;
            cpcv_paths(&trader, &c, &days, ctx, timings)
        }
        Splits::MonteCarlo {
            windows,
            embargo,
            seed,
        } => {
            let folds = monte_carlo(
                n,
                *windows as usize,
                spec.windows.test as usize,
                spec.label.horizon as usize,
                *embargo as usize,
                *seed,
            )
            .map_err(|e| format!("splits: {e}"))?;
            monte_carlo_windows(&trader, &folds, &days, ctx, timings)
        }
    }
}

/// The search period's purged walk-forward folds over `n` days (test windows never overlap: a
/// day is counted once).
fn search_folds(spec: &WalkForwardSpec, n: usize) -> Result<Vec<Fold>, String> {
    if spec.windows.step < spec.windows.test {
        return Err(format!(
            "splits: a {}-day step is shorter than the {}-day test window (days would count twice)",
            spec.windows.step, spec.windows.test
        ));
    }
    walk_forward(
        n,
        spec.windows.train as usize,
        spec.windows.test as usize,
        spec.windows.step as usize,
        spec.windows.expanding,
        spec.label.horizon as usize,
    )
    .map_err(|e| format!("splits: {e}"))
}

/// The hold-out's one fold over `n` days: the training window that ends (purged) where the
/// hold-out starts, tested on the hold-out.
/// The model `trial`'s settings give trained on the latest window — what one deploys: the
/// `train` days (all of them with `expanding`) ending `horizon` days before the last bar (the
/// last bars have no label yet), the hold-out included. Its importance is measured on the
/// window's last 250 days.
pub fn refit(
    spec: &WalkForwardSpec,
    trial: &Trial,
    ctx: &mut dyn TrialContext,
) -> Result<mlt_protocol::records::ModelArtifact, String> {
    let mut timings = Timings::default();
    let all = Trial {
        holdout: true,
        ..*trial
    };
    let Prepared { trader, n, .. } = prepare(
        spec,
        &all,
        (ctx.threads(), ctx.gpu()),
        &mut timings,
        model_for,
    )?;
    let end = n.saturating_sub(spec.label.horizon as usize);
    let from = if spec.windows.expanding {
        0
    } else {
        end.saturating_sub(spec.windows.train as usize)
    };
    if end <= from {
        return Err(format!("{n} bars leave no training window to refit on"));
    }
    let train: Vec<usize> = (from..end).collect();
    let fitted = trader.fit(&train, "refit", &mut timings)?;
    let recent: Vec<usize> = (end.saturating_sub(250).max(from)..end).collect();
    trader.artifact(&fitted, &recent)
}

fn holdout_fold(spec: &WalkForwardSpec, n: usize) -> Result<Fold, String> {
    let holdout = spec.windows.holdout as usize;
    let start = n.saturating_sub(holdout);
    let end = start.saturating_sub(spec.label.horizon as usize);
    let from = if spec.windows.expanding {
        0
    } else {
        end.saturating_sub(spec.windows.train as usize)
    };
    if end <= from || holdout == 0 {
        return Err("no training window before the hold-out".into());
    }
    Ok(Fold {
        train: (from..end).collect(),
        test: (start..n).collect(),
    })
}

#[cfg(test)]
mod tests;
