//! Predictions from a trial's kept model on new bars: the same features (with the trial's
//! parameters), the same model, one prediction per row.
use crate::data::{read_bars, Bars};
use crate::features::{eval, parse};
use crate::models::load_model;
use mlt_protocol::records::ModelArtifact;
use std::path::Path;

/// A model's predictions of some bars.
pub struct Predictions {
    /// Days ahead of each output of a multi-step head (the label's last); empty for a model
    /// of the label alone.
    pub horizons: Vec<u32>,
    /// Per bar, every output (one per horizon, the label's last; NaN where a feature is not
    /// defined yet or not finite).
    pub rows: Vec<Vec<f64>>,
}

/// Per bar the forward return over the model's horizon, or the probability of "up" for a
/// classifier, and a multi-step head's other horizons before it; NaN where a feature is not
/// defined yet (warm-up) or not finite.
pub fn predict_bars(a: &ModelArtifact, bars: &Bars, name: &str) -> Result<Predictions, String> {
    let model = load_model(&a.format, &a.model)?;
    let rows = input_rows(a, bars, name)?;
    let known: Vec<Vec<f64>> = rows.iter().flatten().cloned().collect();
    let horizons = model.horizons();
    let k = horizons.len().max(1);
    let mut got = model.predict_paths(&known)?.into_iter();
    Ok(Predictions {
        horizons,
        rows: rows
            .iter()
            .map(|r| {
                r.as_ref()
                    .and_then(|_| got.next())
                    .filter(|p| p.len() == k)
                    .unwrap_or_else(|| vec![f64::NAN; k])
            })
            .collect(),
    })
}

/// The model's input row of each bar: its features (the last `lookback` days' rows, oldest
/// first, for a sequence model); None where a feature is not defined yet or not finite.
pub fn input_rows(
    a: &ModelArtifact,
    bars: &Bars,
    name: &str,
) -> Result<Vec<Option<Vec<f64>>>, String> {
    let mut cols = Vec::new();
    for (f, text) in &a.features {
        let e = parse(text).map_err(|e| format!("{name}: feature `{f}` = `{text}`: {e}"))?;
        cols.push(eval(&e, bars).map_err(|e| format!("{name}: feature `{f}`: {e}"))?);
    }
    let row = |t: usize| -> Option<Vec<f64>> {
        let r: Vec<f64> = cols.iter().map(|c| c[t]).collect();
        r.iter().all(|v| v.is_finite()).then_some(r)
    };
    // A sequence model reads the last `lookback` days' rows, oldest first.
    let lb = a.lookback.max(1) as usize;
    Ok((0..bars.len())
        .map(|t| {
            if t + 1 < lb {
                return None;
            }
            let mut out = Vec::new();
            for s in t + 1 - lb..=t {
                out.extend(row(s)?);
            }
            Some(out)
        })
        .collect())
}

/// [`predict_bars`] on a CSV or Parquet file, with its dates.
pub fn predict_file(a: &ModelArtifact, path: &Path) -> Result<(Vec<i64>, Predictions), String> {
    let (bars, _) = read_bars(path, a.adjusted)?;
    let p = predict_bars(a, &bars, &path.display().to_string())?;
    Ok((bars.days, p))
}
