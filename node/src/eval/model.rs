//! The model interface the walk-forward evaluation plugs models into, the ridge baseline, and
//! the choice of model from a trial's settings (LightGBM lives in `lgbm.rs`).
//! A model is fitted on one fold's training rows (features already finite) and predicts the
//! label (the forward return) for a test row; scaling is its own business and uses the
//! training rows only.

/// A model of the label from the features.
pub trait Model {
    /// Fits on training rows `x` (one `Vec` per row) and labels `y`; `valid`, when given, is a
    /// held-back tail of the training window for early stopping (never test rows). A model with
    /// a multi-step head (`outputs` > 1, see [`ModelSettings::horizons`]) gets that many targets
    /// per row in `y`, row after row, the label (the longest horizon) last.
    ///
    /// By default a model trained in stages: `begin`, `advance` until done, then `finish`.
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        valid: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        self.begin(x, y, valid)?;
        while self.advance()? {}
        self.finish();
        Ok(())
    }
    /// Predicts one row (NaN when it cannot). Every model overrides this or `predict_many`.
    fn predict(&self, row: &[f64]) -> f64 {
        self.predict_many(&[row.to_vec()])
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(f64::NAN)
    }
    /// Predicts many rows (models with a per-call cost override this).
    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        Ok(rows.iter().map(|r| self.predict(r)).collect())
    }
    /// Predicts every output of many rows: one value per horizon of a multi-step head (the
    /// label's last), or just the label's.
    fn predict_paths(&self, rows: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, String> {
        Ok(self
            .predict_many(rows)?
            .into_iter()
            .map(|p| vec![p])
            .collect())
    }
    /// The days ahead of each output (a multi-step head); empty for one output, the label.
    fn horizons(&self) -> Vec<u32> {
        Vec::new()
    }
    /// The artifact format (`ridge`, `lightgbm`, `lstm`).
    fn format(&self) -> &'static str;
    /// The fitted model as text, for its artifact.
    fn save(&self) -> Result<String, String>;
    /// Boosting rounds kept, for boosted models.
    fn rounds(&self) -> Option<u32> {
        None
    }
    /// Starts training without finishing it, for models trained a stage (an epoch) at a
    /// time; `advance` then runs one stage, and the model predicts with its best stage so far.
    fn begin(
        &mut self,
        _x: &[Vec<f64>],
        _y: &[f64],
        _valid: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        Err(format!(
            "the {} model is not trained in stages",
            self.format()
        ))
    }
    /// Runs one stage; false when training is over (all stages run, or stopped early).
    fn advance(&mut self) -> Result<bool, String> {
        Err(format!(
            "the {} model is not trained in stages",
            self.format()
        ))
    }
    /// Ends training in stages: drops what only training needed (the model keeps predicting
    /// with its best stage).
    fn finish(&mut self) {}
    /// Per feature (in column order): total gain, split count, mean |SHAP| on `x`. Empty when
    /// the model has no such notion.
    fn importance(&self, _x: &[Vec<f64>]) -> Result<Vec<(f64, f64, f64)>, String> {
        Ok(Vec::new())
    }
}

/// What a model is built from: the spec's choice and settings, the trial's parameters, the
/// slot's threads.
#[derive(Clone, Debug, Default)]
pub struct ModelSettings {
    /// `ridge`, `lightgbm` or `lstm`.
    pub name: String,
    /// Ridge penalty.
    pub alpha: f64,
    /// Predict the probability of "up" (binary) instead of the forward return.
    pub classify: bool,
    /// LightGBM settings (spec, overridden by the trial's parameters of the same names).
    pub params: std::collections::BTreeMap<String, f64>,
    /// Rounds without improvement on the validation tail before stopping (0: never).
    pub early_stopping: u32,
    /// Columns LightGBM treats as categorical.
    pub categorical: Vec<usize>,
    /// Feature names, in column order (kept in LightGBM's model text).
    pub features: Vec<String>,
    /// Steps per input sequence (the LSTM); 1 for models of single rows.
    pub lookback: u32,
    /// Days ahead of each target a multi-step head is fitted on, shortest first, the label's
    /// horizon last ([`output_horizons`]); empty (or one) for models of the label alone.
    pub horizons: Vec<u32>,
    /// The GPU of the worker slot, for models that use one (the LSTM with `cuda`).
    pub gpu: Option<u32>,
    /// With `name = "ensemble"`: its members and how they are combined (member settings are
    /// in `params` as `member.key`).
    pub ensemble: Option<mlt_protocol::spec::EnsembleSpec>,
    /// Training rows (in time order) whose labels reach the next `purge_rows` rows: the
    /// horizon times the instruments. Models that cut their training rows purge this many.
    pub purge_rows: usize,
    /// Train boosted models in stages (rounds as the pruning budget).
    pub staged: bool,
    /// Threads the model may use (the worker slot's CPUs).
    pub threads: u32,
    /// Seed.
    pub seed: u64,
}

/// The days ahead of each of `outputs` targets for a label `horizon` days ahead: evenly
/// spaced, the last one the label's (`outputs` = 5, horizon 5: 1, 2, 3, 4, 5; `outputs` = 2,
/// horizon 10: 5, 10). Empty for one output. `outputs` may not exceed the horizon.
pub fn output_horizons(outputs: u32, horizon: u32) -> Result<Vec<u32>, String> {
    if outputs <= 1 {
        return Ok(Vec::new());
    }
    if outputs > horizon {
        return Err(format!(
            "`outputs` = {outputs} needs a horizon of at least {outputs} days (the horizon is {horizon})"
        ));
    }
    let (k, h) = (outputs as u64, horizon as u64);
    Ok((1..=k)
        .map(|i| ((i * h * 2 + k) / (2 * k)) as u32)
        .collect())
}

/// The model the settings name.
pub fn model_for(s: &ModelSettings) -> Result<Box<dyn Model>, String> {
    match s.name.as_str() {
        "ridge" => Ok(Box::new(Ridge {
            alpha: s.alpha,
            fit: None,
        })),
        "lightgbm" if s.staged => Ok(Box::new(super::lgbm_staged::LgbmStaged::new(s.clone()))),
        "lightgbm" => Ok(Box::new(super::lgbm::Lgbm::new(s.clone()))),
        "lstm" => Ok(Box::new(super::lstm::Lstm::new(s.clone()))),
        "ensemble" => Ok(Box::new(super::ensemble::Ensemble::new(s.clone())?)),
        other => Err(format!(
            "unknown model `{other}` (available: ridge, lightgbm, lstm, ensemble)"
        )),
    }
}

/// A model from its artifact.
pub fn load_model(format: &str, text: &str) -> Result<Box<dyn Model>, String> {
    match format {
        "ridge" => {
            let fit: RidgeFit =
                serde_json::from_str(text).map_err(|e| format!("ridge model: {e}"))?;
            Ok(Box::new(Ridge {
                alpha: 0.0,
                fit: Some(fit),
            }))
        }
        "lightgbm" => Ok(Box::new(super::lgbm::Lgbm::load(text)?)),
        "lightgbm-staged" => Ok(Box::new(super::lgbm_staged::LgbmStaged::load(text)?)),
        "lstm" => Ok(Box::new(super::lstm::Lstm::load(text)?)),
        "ensemble" => Ok(Box::new(super::ensemble::Ensemble::load(text)?)),
        other => Err(format!(
            "unknown model format `{other}` (known: ridge, lightgbm, lstm, ensemble)"
        )),
    }
}

/// Ridge regression (the baseline).
pub struct Ridge {
    /// Penalty on the standardised weights.
    pub alpha: f64,
    fit: Option<RidgeFit>,
}

impl Model for Ridge {
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        _valid: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        self.fit = Some(ridge(x, y, self.alpha).ok_or("too few or degenerate training rows")?);
        Ok(())
    }

    fn predict(&self, r: &[f64]) -> f64 {
        self.fit.as_ref().map_or(f64::NAN, |f| f.predict(r))
    }

    fn format(&self) -> &'static str {
        "ridge"
    }

    fn save(&self) -> Result<String, String> {
        let f = self.fit.as_ref().ok_or("the model is not fitted")?;
        serde_json::to_string(f).map_err(|e| e.to_string())
    }
}

/// A fitted ridge model on standardised columns.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RidgeFit {
    mu: Vec<f64>,
    sd: Vec<f64>,
    w: Vec<f64>,
    intercept: f64,
}

impl RidgeFit {
    /// The slopes on the raw (unstandardised) inputs.
    pub(crate) fn slopes(&self) -> Vec<f64> {
        self.w.iter().zip(&self.sd).map(|(w, sd)| w / sd).collect()
    }

    /// The fitted value of one row.
    pub(crate) fn predict(&self, r: &[f64]) -> f64 {
        self.intercept
            + r.iter()
                .enumerate()
                .map(|(j, v)| (v - self.mu[j]) / self.sd[j] * self.w[j])
                .sum::<f64>()
    }
}

/// Ridge regression on standardised columns with an unpenalised intercept.
#[allow(clippy::needless_range_loop)] // the elimination reads best with indices
pub(crate) fn ridge(x: &[Vec<f64>], y: &[f64], alpha: f64) -> Option<RidgeFit> {
    let (n, d) = (x.len(), x.first()?.len());
    if n < d + 2 {
        return None;
    }
    let mu: Vec<f64> = (0..d)
        .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64)
        .collect();
    let sd: Vec<f64> = (0..d)
        .map(|j| {
            let v = x.iter().map(|r| (r[j] - mu[j]).powi(2)).sum::<f64>() / n as f64;
            if v > 0.0 {
                v.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let ym = y.iter().sum::<f64>() / n as f64;
    let z: Vec<Vec<f64>> = x
        .iter()
        .map(|r| (0..d).map(|j| (r[j] - mu[j]) / sd[j]).collect())
        .collect();
    // (ZᵀZ + αI) w = Zᵀ(y − ȳ), by Gaussian elimination with partial pivoting.
    let mut a = vec![vec![0.0; d + 1]; d];
    for i in 0..d {
        for j in 0..d {
            a[i][j] = z.iter().map(|r| r[i] * r[j]).sum::<f64>() + if i == j { alpha } else { 0.0 };
        }
        a[i][d] = z.iter().zip(y).map(|(r, t)| r[i] * (t - ym)).sum();
    }
    for c in 0..d {
        let p = (c..d).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        a.swap(c, p);
        if a[c][c].abs() < 1e-12 {
            return None;
        }
        for r in 0..d {
            if r != c {
                let f = a[r][c] / a[c][c];
                for k in c..=d {
                    a[r][k] -= f * a[c][k];
                }
            }
        }
    }
    let w: Vec<f64> = (0..d).map(|i| a[i][d] / a[i][i]).collect();
    Some(RidgeFit {
        mu,
        sd,
        w,
        intercept: ym,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ridge_recovers_a_linear_rule_and_shrinks_with_alpha() {
        // y = 2·x0 − x1 + 0.5 on a grid.
        let x: Vec<Vec<f64>> = (0..200)
            .map(|i| vec![(i % 20) as f64 / 10.0, (i / 20) as f64 / 5.0])
            .collect();
        let y: Vec<f64> = x.iter().map(|r| 2.0 * r[0] - r[1] + 0.5).collect();
        let ridge = |alpha: f64| {
            model_for(&ModelSettings {
                name: "ridge".into(),
                alpha,
                ..Default::default()
            })
            .unwrap()
        };
        let mut m = ridge(1e-9);
        m.fit(&x, &y, None).unwrap();
        assert!((m.predict(&[1.0, 1.0]) - 1.5).abs() < 1e-6);
        // Saved and loaded: the same predictions.
        let back = load_model(m.format(), &m.save().unwrap()).unwrap();
        assert_eq!(back.predict(&[0.3, 1.7]), m.predict(&[0.3, 1.7]));
        let mut strong = ridge(1e6);
        strong.fit(&x, &y, None).unwrap();
        // All but the intercept shrunk away: predictions near the label mean.
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        assert!((strong.predict(&[1.0, 1.0]) - mean).abs() < 0.01);
        assert!(ridge(1.0).fit(&x[..2], &y[..2], None).is_err());
        assert!(model_for(&ModelSettings {
            name: "transformer".into(),
            ..Default::default()
        })
        .is_err());
        assert!(load_model("ridge", "{not json").is_err());
    }

    #[test]
    fn output_horizons_are_evenly_spaced_and_end_at_the_label() {
        assert_eq!(output_horizons(1, 5).unwrap(), Vec::<u32>::new());
        assert_eq!(output_horizons(5, 5).unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(output_horizons(2, 10).unwrap(), vec![5, 10]);
        assert_eq!(output_horizons(3, 10).unwrap(), vec![3, 7, 10]);
        assert_eq!(output_horizons(4, 7).unwrap(), vec![2, 4, 5, 7]);
        for h in 1..40 {
            for k in 2..=h {
                let v = output_horizons(k, h).unwrap();
                assert_eq!(v.len(), k as usize);
                assert_eq!(*v.last().unwrap(), h);
                assert!(
                    v[0] >= 1 && v.windows(2).all(|w| w[0] < w[1]),
                    "{k} of {h}: {v:?}"
                );
            }
        }
        let e = output_horizons(6, 5).unwrap_err();
        assert!(
            e.contains("`outputs` = 6") && e.contains("horizon is 5"),
            "{e}"
        );
    }
}
