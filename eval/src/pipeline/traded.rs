//! Out-of-sample trading results and the metrics a trial reports from them.
use crate::backtest::{balanced_accuracy, direction_scores, turnover};
use crate::metrics as m;
use mlt_protocol::records::{DailySeries, Metrics};
use mlt_protocol::spec::WalkForwardSpec;

/// The out-of-sample result of trading some test rows.
#[derive(Clone, Default)]
pub(super) struct Traded {
    /// Portfolio returns, one per test day.
    pub(super) r: Vec<f64>,
    /// The benchmark's return on each test day: the equal-weight mean of the instruments'
    /// next-day returns (buy-and-hold of the one traded instrument).
    pub(super) bench: Vec<f64>,
    /// The positions held on each test day, one per instrument.
    pub(super) held: Vec<Vec<f64>>,
    /// The row (day index) of each test day.
    pub(super) rows: Vec<usize>,
    /// Positions, instrument after instrument within each traded window (for turnover).
    pub(super) pos: Vec<f64>,
    pub(super) pred: Vec<f64>,
    pub(super) next: Vec<f64>,
}

impl Traded {
    pub(super) fn extend(&mut self, o: &Traded) {
        self.r.extend(&o.r);
        self.bench.extend(&o.bench);
        self.held.extend(o.held.iter().cloned());
        self.rows.extend(&o.rows);
        self.pos.extend(&o.pos);
        self.pred.extend(&o.pred);
        self.next.extend(&o.next);
    }

    pub(super) fn metrics(&self) -> Metrics {
        let (acc, prec, rec, f1) = direction_scores(&self.pred, &self.next);
        let r = &self.r;
        let mo = m::moments(r);
        let rel = m::relative(r, &self.bench);
        let days = self.held.len().max(1) as f64;
        let share =
            |f: &dyn Fn(&Vec<f64>) -> bool| self.held.iter().filter(|p| f(p)).count() as f64 / days;
        let in_market = share(&|p| p.iter().any(|x| *x != 0.0));
        let long = share(&|p| p.iter().sum::<f64>() > 0.0);
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
            ("turnover", turnover(&self.pos)),
            ("accuracy", acc),
            ("precision", prec),
            ("recall", rec),
            ("f1", f1),
            (
                "balanced_accuracy",
                balanced_accuracy(&self.pred, &self.next),
            ),
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
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The trading day by day: decision and earning dates from the rows' `days`.
    pub(super) fn daily(&self, days: &[i64], instruments: &[String]) -> DailySeries {
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
        }
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
