//! Out-of-sample trading results, day by day, and what a trial reports from them: its
//! metrics, its daily series and its stability (per fold, calendar year and market regime).
use crate::backtest::{balanced_accuracy, confusion, direction_scores};
use crate::metrics as m;
use mlt_protocol::records::{DailySeries, Metrics, Slice, Stability};
use mlt_protocol::spec::WalkForwardSpec;

/// The out-of-sample result of trading some test rows: one entry per test day.
#[derive(Clone, Default)]
pub(super) struct Traded {
    /// Portfolio returns.
    pub(super) r: Vec<f64>,
    /// The benchmark's return: the equal-weight mean of the instruments' next-day returns
    /// (buy-and-hold of the one traded instrument).
    pub(super) bench: Vec<f64>,
    /// The positions held, one per instrument.
    pub(super) held: Vec<Vec<f64>>,
    /// The predictions, one per instrument, centred so that > 0 means up (NaN: none).
    pub(super) pred: Vec<Vec<f64>>,
    /// Each instrument's next-day return (what the direction scores judge).
    pub(super) next: Vec<Vec<f64>>,
    /// Each instrument's forward return over the label's horizon (what the IC judges).
    pub(super) fwd: Vec<Vec<f64>>,
    /// The row (day index) of each day.
    pub(super) rows: Vec<usize>,
    /// The fold (walk-forward fold, CPCV group, Monte Carlo window) each day belongs to.
    pub(super) fold: Vec<u32>,
}

/// Every entry of the (day, instrument) pairs, flattened.
fn flat(x: &[Vec<f64>]) -> Vec<f64> {
    x.iter().flatten().copied().collect()
}

/// Spearman's rank correlation of predictions and realised forward returns over the pairs
/// where both are known (NaN with fewer than 3).
fn ic(pred: &[f64], fwd: &[f64]) -> f64 {
    let (a, b): (Vec<f64>, Vec<f64>) = pred
        .iter()
        .zip(fwd)
        .filter(|(p, f)| p.is_finite() && f.is_finite())
        .map(|(p, f)| (*p, *f))
        .unzip();
    if a.len() < 3 {
        return f64::NAN;
    }
    m::spearman(&a, &b)
}

impl Traded {
    pub(super) fn extend(&mut self, o: &Traded) {
        self.r.extend(&o.r);
        self.bench.extend(&o.bench);
        self.held.extend(o.held.iter().cloned());
        self.pred.extend(o.pred.iter().cloned());
        self.next.extend(o.next.iter().cloned());
        self.fwd.extend(o.fwd.iter().cloned());
        self.rows.extend(&o.rows);
        self.fold.extend(&o.fold);
    }

    /// The days whose row passes `keep`, in order.
    pub(super) fn only_days(&self, mut keep: impl FnMut(usize) -> bool) -> Traded {
        let mut out = Traded::default();
        for i in 0..self.r.len() {
            if keep(self.rows[i]) {
                out.extend(&self.day(i));
            }
        }
        out
    }

    /// Day `i` alone.
    fn day(&self, i: usize) -> Traded {
        Traded {
            r: vec![self.r[i]],
            bench: vec![self.bench[i]],
            held: vec![self.held[i].clone()],
            pred: vec![self.pred[i].clone()],
            next: vec![self.next[i].clone()],
            fwd: vec![self.fwd[i].clone()],
            rows: vec![self.rows[i]],
            fold: vec![self.fold[i]],
        }
    }

    /// The days in row order.
    pub(super) fn sort_by_row(&mut self) {
        let mut order: Vec<usize> = (0..self.r.len()).collect();
        order.sort_by_key(|&i| self.rows[i]);
        let mut out = Traded::default();
        for i in order {
            out.extend(&self.day(i));
        }
        *self = out;
    }

    /// The portfolio's turnover: the mean over days of Σ |Δ weight| = mean over instruments
    /// of |Δ position|, from flat.
    fn turnover(&self) -> f64 {
        let Some(k) = self.held.first().map(Vec::len) else {
            return 0.0;
        };
        let mut prev = vec![0.0; k];
        let mut sum = 0.0;
        for p in &self.held {
            for (a, b) in prev.iter_mut().zip(p) {
                sum += (b - *a).abs() / k as f64;
                *a = *b;
            }
        }
        sum / self.held.len() as f64
    }

    /// Each fold's Sharpe ratio, in fold order.
    fn fold_sharpes(&self) -> Vec<f64> {
        let mut folds: Vec<u32> = self.fold.clone();
        folds.sort_unstable();
        folds.dedup();
        folds
            .iter()
            .map(|f| {
                let r: Vec<f64> = (0..self.r.len())
                    .filter(|&i| self.fold[i] == *f)
                    .map(|i| self.r[i])
                    .collect();
                m::sharpe(&r)
            })
            .collect()
    }

    pub(super) fn metrics(&self) -> Metrics {
        let (pred, next) = (flat(&self.pred), flat(&self.next));
        let (acc, prec, rec, f1) = direction_scores(&pred, &next);
        let (tp, fp, tn, fn_) = confusion(&pred, &next);
        let r = &self.r;
        let mo = m::moments(r);
        let rel = m::relative(r, &self.bench);
        let days = self.held.len().max(1) as f64;
        let share =
            |f: &dyn Fn(&Vec<f64>) -> bool| self.held.iter().filter(|p| f(p)).count() as f64 / days;
        let in_market = share(&|p| p.iter().any(|x| *x != 0.0));
        let long = share(&|p| p.iter().sum::<f64>() > 0.0);
        let folds = self.fold_sharpes();
        let positive =
            folds.iter().filter(|s| **s > 0.0).count() as f64 / folds.len().max(1) as f64;
        let fold_std = m::spread(&folds);
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
            ("turnover", self.turnover()),
            ("accuracy", acc),
            ("precision", prec),
            ("recall", rec),
            ("f1", f1),
            ("balanced_accuracy", balanced_accuracy(&pred, &next)),
            ("true_up", tp),
            ("false_up", fp),
            ("true_down", tn),
            ("false_down", fn_),
            ("ic", ic(&pred, &flat(&self.fwd))),
            ("sharpe_per_period", mo.sharpe),
            ("skew", mo.skew),
            ("kurtosis", mo.kurtosis),
            ("observations", r.len() as f64),
            ("benchmark_sharpe", rel.benchmark_sharpe),
            ("benchmark_return", rel.benchmark_return),
            ("excess_return", rel.excess_return),
            ("information_ratio", rel.information_ratio),
            ("excess_t", rel.excess_t),
            ("alpha", rel.alpha),
            ("alpha_t", rel.alpha_t),
            ("beta", rel.beta),
            ("beta_t", rel.beta_t),
            ("time_in_market", in_market),
            ("long_days", long),
            ("positive_folds", positive),
            ("fold_sharpe_std", fold_std),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The Sharpe, total return, hit rate and IC of the days `which` picks.
    fn slice(&self, label: String, which: &[usize]) -> Slice {
        let r: Vec<f64> = which.iter().map(|&i| self.r[i]).collect();
        let held: Vec<&usize> = which
            .iter()
            .filter(|&&i| self.held[i].iter().any(|x| *x != 0.0))
            .collect();
        let hits = held.iter().filter(|&&&i| self.r[i] > 0.0).count();
        let pairs = |x: &[Vec<f64>]| -> Vec<f64> {
            which.iter().flat_map(|&i| x[i].iter().copied()).collect()
        };
        Slice {
            label,
            days: which.len() as u64,
            sharpe: m::sharpe(&r),
            total_return: r
                .iter()
                .filter(|x| x.is_finite())
                .map(|x| 1.0 + x)
                .product::<f64>()
                - 1.0,
            hit_rate: if held.is_empty() {
                f64::NAN
            } else {
                hits as f64 / held.len() as f64
            },
            ic: ic(&pairs(&self.pred), &pairs(&self.fwd)),
        }
    }

    /// The trading broken down by fold, calendar year (of the day the return is earned) and
    /// market regime: terciles of the benchmark's trailing volatility over these days, and
    /// the sign of its trailing return (both known at the decision, from `regimes`).
    pub(super) fn stability(&self, days: &[i64], regimes: &Regimes) -> Stability {
        let n = self.r.len();
        let group = |key: &dyn Fn(usize) -> Option<String>| -> Vec<(String, Vec<usize>)> {
            let mut out: Vec<(String, Vec<usize>)> = Vec::new();
            for i in 0..n {
                if let Some(k) = key(i) {
                    match out.iter_mut().find(|(l, _)| *l == k) {
                        Some((_, v)) => v.push(i),
                        None => out.push((k, vec![i])),
                    }
                }
            }
            out
        };
        let slices = |g: Vec<(String, Vec<usize>)>| -> Vec<Slice> {
            g.into_iter().map(|(l, w)| self.slice(l, &w)).collect()
        };
        let mut folds = group(&|i| Some(format!("{}", self.fold[i] + 1)));
        folds.sort_by_key(|(l, _)| l.parse::<u32>().unwrap_or(0));
        let year = |i: usize| {
            let t = self.rows[i];
            let d = days.get(t + 1).copied().unwrap_or(days[t]);
            crate::data::format_day(d)[..4].to_string()
        };
        let mut years = group(&|i| Some(year(i)));
        years.sort();
        // Terciles of the trailing volatility over the days that have one.
        let mut vols: Vec<f64> = (0..n)
            .map(|i| regimes.volatility[self.rows[i]])
            .filter(|v| v.is_finite())
            .collect();
        vols.sort_by(f64::total_cmp);
        let cut = |q: f64| {
            vols.get(((vols.len() as f64 - 1.0) * q).round() as usize)
                .copied()
        };
        let (lo, hi) = (cut(1.0 / 3.0), cut(2.0 / 3.0));
        let volatility = group(&|i| {
            let v = regimes.volatility[self.rows[i]];
            match (lo, hi) {
                (Some(lo), Some(hi)) if v.is_finite() => Some(
                    if v <= lo {
                        "calm"
                    } else if v <= hi {
                        "normal"
                    } else {
                        "volatile"
                    }
                    .to_string(),
                ),
                _ => None,
            }
        });
        let order = |g: &mut Vec<(String, Vec<usize>)>, names: &[&str]| {
            g.sort_by_key(|(l, _)| names.iter().position(|n| n == l));
        };
        let mut volatility = volatility;
        order(&mut volatility, &["calm", "normal", "volatile"]);
        let mut trend = group(&|i| {
            let t = regimes.trend[self.rows[i]];
            t.is_finite()
                .then(|| if t > 0.0 { "up" } else { "down" }.to_string())
        });
        order(&mut trend, &["up", "down"]);
        Stability {
            folds: slices(folds),
            years: slices(years),
            volatility: slices(volatility),
            trend: slices(trend),
        }
    }

    /// The trading day by day: decision and earning dates from the rows' `days`, with its
    /// stability.
    pub(super) fn daily(
        &self,
        days: &[i64],
        instruments: &[String],
        regimes: &Regimes,
    ) -> DailySeries {
        DailySeries {
            decided: self.rows.iter().map(|&t| days[t]).collect(),
            earned: self
                .rows
                .iter()
                .map(|&t| days.get(t + 1).copied())
                .collect(),
            returns: self.r.clone(),
            benchmark: self.bench.clone(),
            instruments: instruments.to_vec(),
            positions: self.held.clone(),
            stability: self.stability(days, regimes),
        }
    }
}

/// The market's regime on each row, known at its close: the benchmark's volatility
/// (per-period standard deviation, ddof 1) and total return over the `REGIME_DAYS` returns
/// realised up to it (NaN before there are that many).
pub(super) struct Regimes {
    pub(super) volatility: Vec<f64>,
    pub(super) trend: Vec<f64>,
}

/// The trailing window of the regimes (a quarter of trading days).
pub const REGIME_DAYS: usize = 63;

impl Regimes {
    /// From the benchmark's next-day return on each row (`bench[t]` is realised at t + 1).
    pub(super) fn of(bench: &[f64]) -> Regimes {
        let n = bench.len();
        let (mut volatility, mut trend) = (vec![f64::NAN; n], vec![f64::NAN; n]);
        for t in REGIME_DAYS..n {
            // Realised by the close of t: bench[t − 63 ..= t − 1].
            let w = &bench[t - REGIME_DAYS..t];
            if w.iter().all(|x| x.is_finite()) {
                let mean = w.iter().sum::<f64>() / w.len() as f64;
                let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (w.len() - 1) as f64;
                volatility[t] = var.sqrt();
                trend[t] = w.iter().map(|x| 1.0 + x).product::<f64>() - 1.0;
            }
        }
        Regimes { volatility, trend }
    }
}

/// The objectives' values among a trial's metrics (NaN for one it does not report).
pub(super) fn values_of(spec: &WalkForwardSpec, metrics: &Metrics) -> Vec<f64> {
    spec.report
        .objectives
        .iter()
        .map(|o| metrics.get(o).copied().unwrap_or(f64::NAN))
        .collect()
}
