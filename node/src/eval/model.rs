//! The model interface the walk-forward evaluation plugs models into, and the ridge baseline.
//! A model is fitted on one fold's training rows (features already finite) and predicts the
//! label (the forward return) for a test row; scaling is its own business and uses the
//! training rows only.

/// A model of the label from the features.
pub trait Model: Send {
    /// Fits on training rows `x` (one `Vec` per row) and labels `y`.
    fn fit(&mut self, x: &[Vec<f64>], y: &[f64]) -> Result<(), String>;
    /// Predicts one row.
    fn predict(&self, row: &[f64]) -> f64;
}

/// The model a spec names.
pub fn model_for(name: &str, alpha: f64) -> Result<Box<dyn Model>, String> {
    match name {
        "ridge" => Ok(Box::new(Ridge { alpha, fit: None })),
        other => Err(format!("unknown model `{other}` (available: ridge)")),
    }
}

/// Ridge regression (the baseline).
pub struct Ridge {
    /// Penalty on the standardised weights.
    pub alpha: f64,
    fit: Option<RidgeFit>,
}

impl Model for Ridge {
    fn fit(&mut self, x: &[Vec<f64>], y: &[f64]) -> Result<(), String> {
        self.fit = Some(ridge(x, y, self.alpha).ok_or("too few or degenerate training rows")?);
        Ok(())
    }

    fn predict(&self, r: &[f64]) -> f64 {
        let Some(f) = &self.fit else {
            return f64::NAN;
        };
        f.intercept
            + r.iter()
                .enumerate()
                .map(|(j, v)| (v - f.mu[j]) / f.sd[j] * f.w[j])
                .sum::<f64>()
    }
}

/// A fitted ridge model on standardised columns.
struct RidgeFit {
    mu: Vec<f64>,
    sd: Vec<f64>,
    w: Vec<f64>,
    intercept: f64,
}

/// Ridge regression on standardised columns with an unpenalised intercept.
#[allow(clippy::needless_range_loop)] // the elimination reads best with indices
fn ridge(x: &[Vec<f64>], y: &[f64], alpha: f64) -> Option<RidgeFit> {
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
        let mut m = model_for("ridge", 1e-9).unwrap();
        m.fit(&x, &y).unwrap();
        assert!((m.predict(&[1.0, 1.0]) - 1.5).abs() < 1e-6);
        let mut strong = model_for("ridge", 1e6).unwrap();
        strong.fit(&x, &y).unwrap();
        // All but the intercept shrunk away: predictions near the label mean.
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        assert!((strong.predict(&[1.0, 1.0]) - mean).abs() < 0.01);
        assert!(model_for("ridge", 1.0)
            .unwrap()
            .fit(&x[..2], &y[..2])
            .is_err());
        assert!(model_for("lstm", 1.0).is_err());
    }
}
