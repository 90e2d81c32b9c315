//! The ridge baseline, and the lightly ridged least squares that blending and stacking use.
use super::Model;

/// Ridge regression (the baseline).
pub struct Ridge {
    /// Penalty on the standardised weights.
    pub alpha: f64,
    fit: Option<RidgeFit>,
}

impl Ridge {
    /// An unfitted ridge model with penalty `alpha`.
    pub fn new(alpha: f64) -> Self {
        Self { alpha, fit: None }
    }

    /// A fitted ridge model (from its artifact).
    pub fn fitted(fit: RidgeFit) -> Self {
        Self {
            alpha: 0.0,
            fit: Some(fit),
        }
    }
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
pub struct RidgeFit {
    mu: Vec<f64>,
    sd: Vec<f64>,
    w: Vec<f64>,
    intercept: f64,
}

impl RidgeFit {
    /// The slopes on the raw (unstandardised) inputs.
    pub fn slopes(&self) -> Vec<f64> {
        self.w.iter().zip(&self.sd).map(|(w, sd)| w / sd).collect()
    }

    /// The fitted value of one row.
    pub fn predict(&self, r: &[f64]) -> f64 {
        self.intercept
            + r.iter()
                .enumerate()
                .map(|(j, v)| (v - self.mu[j]) / self.sd[j] * self.w[j])
                .sum::<f64>()
    }
}

/// Ridge regression on standardised columns with an unpenalised intercept.
#[allow(clippy::needless_range_loop)] // the elimination reads best with indices
pub fn ridge(x: &[Vec<f64>], y: &[f64], alpha: f64) -> Option<RidgeFit> {
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
    use crate::models::{load_model, model_for, ModelSettings};

    #[test]
    fn ridge_recovers_a_linear_rule_and_shrinks_with_alpha() {
        // y = 2·x0 − x1 + 0.5 on a grid.
        let x: Vec<Vec<f64>> = (0..200)
            .map(|i| vec![(i % 20) as f64 / 10.0, (i / 20) as f64 / 5.0])
            .collect();
        let y: Vec<f64> = x.iter().map(|r| 2.0 * r[0] - r[1] + 0.5).collect();
        let ridge = |alpha: f64| {
            model_for(&ModelSettings {
                name: mlt_protocol::spec::ModelKind::Ridge,
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
        assert!(load_model("ridge", "{not json").is_err());
    }
}
