//! Out-of-sample trading results and the metrics a trial reports from them.
use crate::backtest::{balanced_accuracy, direction_scores, turnover};
use crate::metrics as m;
use mlt_protocol::records::Metrics;
use mlt_protocol::spec::WalkForwardSpec;

/// The out-of-sample result of trading some test rows.
#[derive(Default)]
pub(super) struct Traded {
    /// Portfolio returns, one per test day.
    pub(super) r: Vec<f64>,
    pub(super) pos: Vec<f64>,
    pub(super) pred: Vec<f64>,
    pub(super) next: Vec<f64>,
}

impl Traded {
    pub(super) fn extend(&mut self, o: &Traded) {
        self.r.extend(&o.r);
        self.pos.extend(&o.pos);
        self.pred.extend(&o.pred);
        self.next.extend(&o.next);
    }

    pub(super) fn metrics(&self) -> Metrics {
        metrics_of(&self.r, &self.pos, &self.pred, &self.next)
    }
}

/// The metrics of out-of-sample returns, positions and predictions.
pub(super) fn metrics_of(r: &[f64], pos: &[f64], pred: &[f64], next: &[f64]) -> Metrics {
    let (acc, prec, rec, f1) = direction_scores(pred, next);
    let mo = m::moments(r);
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
        ("sharpe_per_period", mo.sharpe),
        ("skew", mo.skew),
        ("kurtosis", mo.kurtosis),
        ("observations", r.len() as f64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The objectives' values among a trial's metrics (NaN for one it does not report).
pub(super) fn values_of(spec: &WalkForwardSpec, metrics: &Metrics) -> Vec<f64> {
    spec.report
        .objectives
        .iter()
        .map(|o| metrics.get(o).copied().unwrap_or(f64::NAN))
        .collect()
}
