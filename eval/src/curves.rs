//! Training curves: the losses models record while they train, and what they say — the gap
//! between training and validation loss, whether it widens (overfitting), whether training
//! had flattened when it stopped (converged).
use mlt_protocol::lineage::{Curve, FoldRun, Stopped};
use serde::Serialize;

/// A model's loss on `z` (raw scores) against `y`: mean squared error, or for a classifier
/// the log loss of sigmoid(z) (LightGBM's `l2` and `binary_logloss`).
pub fn loss(classify: bool, z: &[f64], y: &[f64]) -> f64 {
    let n = y.len().max(1) as f64;
    if classify {
        z.iter()
            .zip(y)
            .map(|(z, y)| {
                let p = (1.0 / (1.0 + (-z).exp())).clamp(1e-12, 1.0 - 1e-12);
                -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            })
            .sum::<f64>()
            / n
    } else {
        z.iter().zip(y).map(|(z, y)| (z - y).powi(2)).sum::<f64>() / n
    }
}

/// The relative gap (validation − training) / validation at which a model is said to fit its
/// training rows much better than held-back ones.
pub const GAP: f64 = 0.25;
/// How much that relative gap must have grown over training to count as widening.
pub const WIDENING: f64 = 0.10;
/// The relative fall of the loss over the last tenth of a curve above which it had not
/// flattened.
pub const STILL_FALLING: f64 = 0.005;

/// What one curve says.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurveDiagnosis {
    /// (validation − training) / validation at the kept point.
    pub gap: Option<f64>,
    /// The same at the first point.
    pub gap_first: Option<f64>,
    /// The gap is at least [`GAP`] and grew by at least [`WIDENING`] over training.
    pub overfitting: bool,
    /// Training stopped early, or the loss (validation's, else training's) fell by less
    /// than [`STILL_FALLING`] over the curve's last tenth.
    pub converged: bool,
}

fn rel_gap(train: f64, valid: f64) -> Option<f64> {
    (valid.is_finite() && train.is_finite() && valid.abs() > 0.0)
        .then(|| (valid - train) / valid.abs())
}

/// Diagnoses one curve.
pub fn diagnose(c: &Curve) -> CurveDiagnosis {
    let n = c.train.len();
    let kept = (c.best as usize).clamp(1, n.max(1)) - 1;
    let (gap, gap_first) = if c.valid.len() == n && n > 0 {
        (
            rel_gap(c.train[kept], c.valid[kept]),
            rel_gap(c.train[0], c.valid[0]),
        )
    } else {
        (None, None)
    };
    let overfitting = match (gap, gap_first) {
        (Some(g), Some(f)) => g >= GAP && g - f >= WIDENING,
        _ => false,
    };
    let watched = if c.valid.len() == n {
        &c.valid
    } else {
        &c.train
    };
    let converged = match c.stopped {
        Stopped::EarlyStopping => true,
        Stopped::Interrupted => false,
        Stopped::Limit => {
            if watched.len() < 3 {
                false
            } else {
                let from = watched[watched.len() - 1 - (watched.len() / 10).max(1)];
                let last = watched[watched.len() - 1];
                from.abs() > 0.0 && (from - last) / from.abs() < STILL_FALLING
            }
        }
    };
    CurveDiagnosis {
        gap,
        gap_first,
        overfitting,
        converged,
    }
}

/// What a trial's folds' curves say together.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrialDiagnosis {
    /// Folds with a curve.
    pub folds: usize,
    /// Mean relative gap at the kept point over those folds.
    pub mean_gap: Option<f64>,
    /// Folds flagged as overfitting.
    pub overfitting_folds: usize,
    /// Folds whose training had not flattened.
    pub unconverged_folds: usize,
    /// Overfitting: at least half the folds are.
    pub overfitting: bool,
    /// Converged: every fold is.
    pub converged: bool,
}

/// Diagnoses a trial from its folds (None when no fold has a curve).
pub fn diagnose_trial(folds: &[FoldRun]) -> Option<TrialDiagnosis> {
    let ds: Vec<CurveDiagnosis> = folds
        .iter()
        .filter_map(|f| f.curve.as_ref().map(diagnose))
        .collect();
    if ds.is_empty() {
        return None;
    }
    let gaps: Vec<f64> = ds.iter().filter_map(|d| d.gap).collect();
    let over = ds.iter().filter(|d| d.overfitting).count();
    let unconverged = ds.iter().filter(|d| !d.converged).count();
    Some(TrialDiagnosis {
        folds: ds.len(),
        mean_gap: (!gaps.is_empty()).then(|| gaps.iter().sum::<f64>() / gaps.len() as f64),
        overfitting_folds: over,
        unconverged_folds: unconverged,
        overfitting: 2 * over >= ds.len(),
        converged: unconverged == 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(train: &[f64], valid: &[f64], best: u32, stopped: Stopped) -> Curve {
        Curve {
            metric: "l2".into(),
            unit: "round".into(),
            every: 1,
            train: train.to_vec(),
            valid: valid.to_vec(),
            best,
            stopped,
        }
    }

    #[test]
    fn a_widening_gap_is_overfitting_a_steady_one_is_not() {
        // Training loss falls to a third; validation loss does not move: overfitting.
        let c = curve(
            &[1.0, 0.7, 0.5, 0.33],
            &[1.0, 1.0, 1.0, 1.0],
            4,
            Stopped::Limit,
        );
        let d = diagnose(&c);
        assert!(d.overfitting, "{d:?}");
        assert!((d.gap.unwrap() - 0.67).abs() < 1e-9);
        // Both fall together: no widening.
        let c = curve(
            &[1.0, 0.9, 0.85],
            &[1.05, 0.95, 0.9],
            3,
            Stopped::EarlyStopping,
        );
        let d = diagnose(&c);
        assert!(!d.overfitting && d.converged, "{d:?}");
    }

    #[test]
    fn a_loss_still_falling_at_the_round_limit_has_not_converged() {
        let falling: Vec<f64> = (0..20).map(|i| 1.0 - 0.02 * i as f64).collect();
        let d = diagnose(&curve(&falling, &falling, 20, Stopped::Limit));
        assert!(!d.converged);
        let flat: Vec<f64> = (0..20).map(|i| 1.0 / (1.0 + i as f64).min(5.0)).collect();
        let d = diagnose(&curve(&flat, &flat, 20, Stopped::Limit));
        assert!(d.converged, "{d:?}");
    }
}
