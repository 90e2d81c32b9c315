//! Positions and the costs of trading them (the labels are in `labels.rs`).
//!
//! * positions from predictions: the sign, a dead band (`threshold`), or a probability mapped
//!   to a size in [-1, 1] (2p − 1); long-only clips shorts to 0;
//! * strategy returns: the position held from the close of t earns the return of t + 1, minus
//!   costs and slippage (basis points) on every change of position;
//! * turnover and the accuracy / precision / recall / F1 of the predicted direction.

/// How predictions become positions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sizing {
    /// +1 / −1 by the sign of the prediction.
    Sign,
    /// +1 above `t`, −1 below −`t`, flat in between.
    Threshold(f64),
    /// A probability of "up" p ∈ [0, 1] held as 2p − 1.
    Probability,
}

/// Positions from predictions (NaN predictions hold no position).
pub fn positions(pred: &[f64], sizing: Sizing, long_only: bool) -> Vec<f64> {
    pred.iter()
        .map(|p| {
            if p.is_nan() {
                return 0.0;
            }
            let x = match sizing {
                Sizing::Sign => p.signum() * f64::from(*p != 0.0),
                Sizing::Threshold(t) if *p > t => 1.0,
                Sizing::Threshold(t) if *p < -t => -1.0,
                Sizing::Threshold(_) => 0.0,
                Sizing::Probability => (2.0 * p - 1.0).clamp(-1.0, 1.0),
            };
            if long_only {
                x.max(0.0)
            } else {
                x
            }
        })
        .collect()
}

/// Strategy returns: position[t] × asset return of t + 1 (given as `next[t]`), minus
/// (cost + slippage) basis points times |position[t] − position[t − 1]| (from flat at the start).
pub fn strategy_returns(pos: &[f64], next: &[f64], cost_bps: f64, slippage_bps: f64) -> Vec<f64> {
    let c = (cost_bps + slippage_bps) / 10_000.0;
    let mut prev = 0.0;
    pos.iter()
        .zip(next)
        .map(|(p, r)| {
            let traded = (p - prev).abs();
            prev = *p;
            let earned = if r.is_nan() { 0.0 } else { p * r };
            earned - c * traded
        })
        .collect()
}

/// Average absolute change of position per period (from flat).
pub fn turnover(pos: &[f64]) -> f64 {
    if pos.is_empty() {
        return 0.0;
    }
    let mut prev = 0.0;
    pos.iter()
        .map(|p| {
            let d = (p - prev).abs();
            prev = *p;
            d
        })
        .sum::<f64>()
        / pos.len() as f64
}

/// Counts of (true up, false up, true down, false down) of predicted direction (`pred` > 0
/// means up) against realised returns (> 0 is up); NaN pairs are skipped.
pub fn confusion(pred: &[f64], actual: &[f64]) -> (f64, f64, f64, f64) {
    let (mut tp, mut fp, mut tn, mut fn_) = (0.0, 0.0, 0.0, 0.0);
    for (p, a) in pred.iter().zip(actual) {
        if p.is_nan() || a.is_nan() {
            continue;
        }
        match (*p > 0.0, *a > 0.0) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, false) => tn += 1.0,
            (false, true) => fn_ += 1.0,
        }
    }
    (tp, fp, tn, fn_)
}

/// Accuracy, precision, recall and F1 of predicted direction (`pred` > 0 means up) against
/// realised returns (> 0 is up); NaN pairs are skipped.
pub fn direction_scores(pred: &[f64], actual: &[f64]) -> (f64, f64, f64, f64) {
    let (tp, fp, tn, fn_) = confusion(pred, actual);
    let accuracy = (tp + tn) / (tp + tn + fp + fn_);
    let precision = tp / (tp + fp);
    let recall = tp / (tp + fn_);
    let f1 = 2.0 * precision * recall / (precision + recall);
    (accuracy, precision, recall, f1)
}

/// Balanced accuracy of predicted direction: the mean of the up and down hit rates, so a
/// constant guess scores 0.5 however many days went up. NaN pairs are skipped.
pub fn balanced_accuracy(pred: &[f64], actual: &[f64]) -> f64 {
    let (tp, fp, tn, fn_) = confusion(pred, actual);
    let up = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.5 };
    let down = if tn + fp > 0.0 { tn / (tn + fp) } else { 0.5 };
    (up + down) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{direction, forward_return};

    #[test]
    fn balanced_accuracy_ignores_the_share_of_up_days() {
        let actual = [0.01, 0.02, 0.03, -0.01];
        // Always up: 3 of 4 right, but no skill.
        assert_eq!(balanced_accuracy(&[1.0; 4], &actual), 0.5);
        assert_eq!(balanced_accuracy(&[1.0, 1.0, 1.0, -1.0], &actual), 1.0);
        assert_eq!(
            balanced_accuracy(&[1.0, -1.0, 1.0, -1.0], &actual),
            (2.0 / 3.0 + 1.0) / 2.0
        );
    }

    #[test]
    fn labels_positions_costs_by_hand() {
        let close = [100.0, 110.0, 99.0, 108.9];
        let f = forward_return(&close, 1);
        assert!((f[0] - 0.1).abs() < 1e-12 && (f[1] + 0.1).abs() < 1e-12 && f[3].is_nan());
        assert!((forward_return(&close, 2)[0] + 0.01).abs() < 1e-12);
        let d = direction(&close, 1);
        assert_eq!(&d[..3], &[1.0, 0.0, 1.0]);
        assert!(d[3].is_nan());

        let pred = [0.3, -0.2, 0.05, f64::NAN];
        assert_eq!(
            positions(&pred, Sizing::Sign, false),
            vec![1.0, -1.0, 1.0, 0.0]
        );
        assert_eq!(
            positions(&pred, Sizing::Threshold(0.1), false),
            vec![1.0, -1.0, 0.0, 0.0]
        );
        assert_eq!(
            positions(&pred, Sizing::Sign, true),
            vec![1.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(
            positions(&[0.75, 0.25], Sizing::Probability, false),
            vec![0.5, -0.5]
        );

        // Long, short, long on returns +10 %, −10 %, +10 %; 10 bp cost + 5 bp slippage per
        // unit traded: trades of 1, 2, 2 units.
        let pos = [1.0, -1.0, 1.0];
        let r = strategy_returns(&pos, &[0.1, -0.1, 0.1], 10.0, 5.0);
        let want = [0.1 - 0.0015, 0.1 - 0.003, 0.1 - 0.003];
        for (a, b) in r.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{r:?}");
        }
        assert!((turnover(&pos) - 5.0 / 3.0).abs() < 1e-12);

        // Direction scores: TP 2, FP 1, TN 1, FN 1.
        let (acc, prec, rec, f1) =
            direction_scores(&[1.0, 1.0, 1.0, -1.0, -1.0], &[0.1, 0.2, -0.1, -0.3, 0.4]);
        assert!((acc - 0.6).abs() < 1e-12);
        assert!((prec - 2.0 / 3.0).abs() < 1e-12 && (rec - 2.0 / 3.0).abs() < 1e-12);
        assert!((f1 - 2.0 / 3.0).abs() < 1e-12);
    }
}
