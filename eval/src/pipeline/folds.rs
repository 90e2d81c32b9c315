//! The fold loops of a trial: walk-forward folds in order, walk-forward with epochs as the
//! pruning budget, and CPCV's splits and backtest paths. Each reports the objectives after
//! every step, and a prune verdict stops before the next.
use super::traded::{values_of, Traded};
use super::trader::Trader;
use super::Timings;
use crate::context::TrialContext;
use crate::metrics::{Sums, PERIODS};
use crate::splits::{Cpcv, Fold};
use mlt_protocol::lineage::FoldRun;
use mlt_protocol::messages::{Evaluation, Outcome, Verdict};
use mlt_protocol::records::Metrics;

/// When a fold started: the clock and the process's CPU seconds.
struct Started(std::time::Instant, f64);

impl Started {
    fn now() -> Started {
        Started(
            std::time::Instant::now(),
            crate::context::process_cpu_seconds(),
        )
    }

    /// Wall and CPU seconds since.
    fn elapsed(&self) -> (f64, f64) {
        (
            self.0.elapsed().as_secs_f64(),
            (crate::context::process_cpu_seconds() - self.1).max(0.0),
        )
    }
}

/// What fold `k` (0-based) leaves in the trial's lineage: its windows, time and curve.
fn fold_run(
    k: usize,
    fold: &Fold,
    days: &[i64],
    (wall_s, cpu_s): (f64, f64),
    model: &dyn crate::models::Model,
) -> FoldRun {
    let span = |rows: &[usize]| {
        let day = |r: Option<&usize>| r.and_then(|r| days.get(*r)).copied().unwrap_or(0);
        (day(rows.first()), day(rows.last()))
    };
    FoldRun {
        fold: k as u32 + 1,
        train: span(&fold.train),
        test: span(&fold.test),
        wall_s,
        cpu_s,
        curve: model.curve(),
    }
}

/// Walk-forward folds in order, positions carried from one to the next; after each fold the
/// objectives on the out-of-sample returns so far (or the fold's own) are reported.
pub(super) fn walk_forward_folds(
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
    let (mut sums, mut wins) = (Sums::default(), 0usize);
    let cheap = spec.report.objectives.iter().all(|o| {
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
        let started = Started::now();
        let fitted = trader.fit(&fold.train, &format!("fold {}", k + 1), timings)?;
        let clock = std::time::Instant::now();
        let mut traded = trader.trade(&fitted, &fold.test, &mut prev_pos)?;
        traded.fold = vec![k as u32; traded.r.len()];
        timings.trade += clock.elapsed().as_secs_f64();
        ctx.fold(fold_run(
            k,
            fold,
            days,
            started.elapsed(),
            fitted.model.as_ref(),
        ));
        all.extend(&traded);
        last = Some((fitted, fold.test.clone()));
        for v in &traded.r {
            sums.push(*v);
            wins += usize::from(*v > 0.0);
        }
        let reported = if spec.report.per_fold {
            traded.metrics()
        } else if cheap {
            let n = all.r.len() as f64;
            let (sr, sd) = (sums.sharpe_per_period(), sums.std());
            [
                ("sharpe", sr * PERIODS.sqrt()),
                ("sharpe_per_period", sr),
                ("annual_volatility", sd * PERIODS.sqrt()),
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
    let out = trader.evaluation(days, all, last);
    timings.keep = clock.elapsed().as_secs_f64();
    Ok(out)
}

/// Walk-forward with epochs as the pruning budget: every fold's model trains an epoch at a
/// time, side by side; after each epoch all folds are traded with their best epoch so far and
/// the objectives on all their out-of-sample returns are reported (step = epoch), so a prune
/// verdict stops every fold's training at once.
pub(super) fn epoch_folds(
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
    // Each fold's wall and CPU seconds, summed over its stages.
    let mut spent = vec![(0.0, 0.0); folds.len()];
    for (k, fold) in folds.iter().enumerate() {
        let started = Started::now();
        fitted.push(trader.train(&fold.train, &format!("fold {}", k + 1), true, timings)?);
        spent[k] = started.elapsed();
    }
    let mut active = vec![true; fitted.len()];
    let mut step = 0u64;
    loop {
        step += 1;
        if ctx.stopped() {
            return Ok(Outcome::Pruned);
        }
        let clock = std::time::Instant::now();
        for ((f, on), spent) in fitted.iter_mut().zip(active.iter_mut()).zip(&mut spent) {
            if *on {
                let started = Started::now();
                *on = f.model.advance()?;
                let (w, c) = started.elapsed();
                spent.0 += w;
                spent.1 += c;
            }
        }
        timings.fit += clock.elapsed().as_secs_f64();
        let mut all = Traded::default();
        let mut prev = vec![0.0; trader.insts.len()];
        for (k, (f, fold)) in fitted.iter().zip(folds).enumerate() {
            let mut t = trader.trade(f, &fold.test, &mut prev)?;
            t.fold = vec![k as u32; t.r.len()];
            all.extend(&t);
        }
        let verdict = ctx.report(step, values_of(spec, &all.metrics()));
        if active.iter().any(|a| *a) {
            if verdict != Verdict::Continue {
                return Ok(Outcome::Pruned);
            }
            continue;
        }
        // Every fold has finished: the last report is the result itself.
        for (k, (f, fold)) in fitted.iter().zip(folds).enumerate() {
            ctx.fold(fold_run(k, fold, days, spent[k], f.model.as_ref()));
        }
        let last = fitted.pop().map(|f| (f, last_fold.test.clone()));
        return Ok(trader.evaluation(days, all, last));
    }
}

/// CPCV: every split is fitted once and trades each of its test groups from a flat position;
/// after each split the objectives on all split returns so far (or the split's own) are
/// reported. The result is the mean of every metric over the backtest paths (each path covers
/// every group once), with `paths` and `sharpe_path_std`; the stored returns are the paths'
/// mean per day.
pub(super) fn cpcv_paths(
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
        let started = Started::now();
        let fitted = trader.fit(&fold.train, &format!("split {}", f + 1), timings)?;
        let mut split = Traded::default();
        for &g in &c.test_groups[f] {
            let rows: Vec<usize> = c.groups[g].clone().collect();
            let mut flat = vec![0.0; trader.insts.len()];
            let mut t = trader.trade(&fitted, &rows, &mut flat)?;
            t.fold = vec![g as u32; t.r.len()];
            split.extend(&t);
            per.insert((f, g), t);
        }
        ctx.fold(fold_run(
            f,
            fold,
            days,
            started.elapsed(),
            fitted.model.as_ref(),
        ));
        last = Some((fitted, fold.test.clone()));
        so_far.extend(&split);
        let reported = if spec.report.per_fold {
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
    // The paths' mean day by day: returns and positions (the benchmark is every path's).
    let mut mean_path: Option<Traded> = None;
    let w = 1.0 / c.paths.len() as f64;
    for path in &c.paths {
        let mut p = Traded::default();
        for (g, &f) in path.iter().enumerate() {
            p.extend(&per[&(f, g)]);
        }
        match &mut mean_path {
            None => {
                let mut m = p.clone();
                m.r.iter_mut().for_each(|v| *v *= w);
                m.held.iter_mut().flatten().for_each(|v| *v *= w);
                mean_path = Some(m);
            }
            Some(m) => {
                m.r.iter_mut().zip(&p.r).for_each(|(a, v)| *a += v * w);
                for (a, v) in m.held.iter_mut().flatten().zip(p.held.iter().flatten()) {
                    *a += v * w;
                }
            }
        }
        path_metrics.push(p.metrics());
    }
    let mean_path = mean_path.ok_or("CPCV made no backtest path")?;
    let mut metrics = mean_metrics(&path_metrics);
    metrics.insert("sharpe_path_std".into(), sharpe_spread(&path_metrics));
    metrics.insert("paths".into(), c.paths.len() as f64);
    Ok(Outcome::Evaluated(Box::new(Evaluation {
        values: values_of(spec, &metrics),
        metrics,
        daily: mean_path.daily(days, &trader.instruments, &trader.regimes),
        model: trader.keep(last.as_ref()),
        holdout: None,
    })))
}

/// Every metric's mean over several backtests (CPCV's paths, Monte Carlo's windows).
fn mean_metrics(each: &[Metrics]) -> Metrics {
    let mut out = Metrics::new();
    let Some(first) = each.first() else {
        return out;
    };
    for k in first.keys() {
        let sum: f64 = each.iter().map(|m| m[k]).sum();
        out.insert(k.clone(), sum / each.len() as f64);
    }
    out
}

/// The standard deviation (ddof 1) of their Sharpe ratios (0 for one).
fn sharpe_spread(each: &[Metrics]) -> f64 {
    let s: Vec<f64> = each.iter().map(|m| m["sharpe"]).collect();
    crate::metrics::spread(&s)
}

/// Monte Carlo cross-validation: each window is fitted on its training days and trades its
/// test window from a flat position; after each window the objectives' means over the windows
/// so far (or the window's own) are reported. The result is the mean of every metric over
/// the windows, with `windows` and `sharpe_window_std`; the stored daily trading takes each
/// day once, from the earliest window that tests it.
pub(super) fn monte_carlo_windows(
    trader: &Trader,
    folds: &[Fold],
    days: &[i64],
    ctx: &mut dyn TrialContext,
    timings: &mut Timings,
) -> Result<Outcome, String> {
    let spec = trader.spec;
    let mut each = Vec::new();
    let mut kept = Traded::default();
    let mut seen = std::collections::HashSet::new();
    let mut last = None;
    for (k, fold) in folds.iter().enumerate() {
        if ctx.stopped() {
            return Ok(Outcome::Pruned);
        }
        let started = Started::now();
        let fitted = trader.fit(&fold.train, &format!("window {}", k + 1), timings)?;
        let mut flat = vec![0.0; trader.insts.len()];
        let clock = std::time::Instant::now();
        let mut t = trader.trade(&fitted, &fold.test, &mut flat)?;
        timings.trade += clock.elapsed().as_secs_f64();
        ctx.fold(fold_run(
            k,
            fold,
            days,
            started.elapsed(),
            fitted.model.as_ref(),
        ));
        t.fold = vec![k as u32; t.r.len()];
        each.push(t.metrics());
        kept.extend(&t.only_days(|row| seen.insert(row)));
        last = Some((fitted, fold.test.clone()));
        let reported = if spec.report.per_fold {
            each[k].clone()
        } else {
            mean_metrics(&each)
        };
        match ctx.report(k as u64 + 1, values_of(spec, &reported)) {
            Verdict::Continue => {}
            Verdict::Prune | Verdict::Stale => return Ok(Outcome::Pruned),
        }
    }
    let mut metrics = mean_metrics(&each);
    metrics.insert("sharpe_window_std".into(), sharpe_spread(&each));
    metrics.insert("windows".into(), folds.len() as f64);
    kept.sort_by_row();
    Ok(Outcome::Evaluated(Box::new(Evaluation {
        values: values_of(spec, &metrics),
        metrics,
        daily: kept.daily(days, &trader.instruments, &trader.regimes),
        model: trader.keep(last.as_ref()),
        holdout: None,
    })))
}
