//! How several models' predictions become one. Shared by the model ensemble (members fitted
//! on one trial's rows) and the study's ensembles of trials, so that "dynamic" weighting and
//! stacking mean one thing each:
//!
//! * dynamic weights: each member's recent skill, floored at zero, normalised (equal weights
//!   when no member has shown any);
//! * stacking: the training window (in time order) is cut into [`STACK_BLOCKS`] blocks; for
//!   each block after the first, the members are fitted on what ends (label included) before
//!   it and predict it; a ridge meta-model learns the label from those out-of-fold
//!   predictions. Nothing after the training window is read.
use crate::models::{ridge, RidgeFit};
use std::ops::Range;

/// Blocks a training window is cut into for stacking's out-of-fold predictions.
pub const STACK_BLOCKS: usize = 4;

/// Dynamic weights from each member's skill: floored at zero (NaN counts as none) and
/// normalised; equal when no member has positive skill.
pub fn skill_weights(skill: &[f64]) -> Vec<f64> {
    let floored: Vec<f64> = skill
        .iter()
        .map(|s| if s.is_finite() { s.max(0.0) } else { 0.0 })
        .collect();
    let total: f64 = floored.iter().sum();
    if total > 0.0 {
        floored.iter().map(|s| s / total).collect()
    } else {
        vec![1.0 / skill.len() as f64; skill.len()]
    }
}

/// Stacking's out-of-fold plan over `n` time-ordered items: for each non-empty block after the
/// first, how many leading items the members are fitted on and the block they predict.
/// `fit_len(start)` counts the items whose label ends before the block starting at `start`;
/// a block with fewer than `min_fit` of them is left out.
pub fn stacking_blocks(
    n: usize,
    fit_len: impl Fn(usize) -> usize,
    min_fit: usize,
) -> Vec<(usize, Range<usize>)> {
    (1..STACK_BLOCKS)
        .filter_map(|b| {
            let block = n * b / STACK_BLOCKS..n * (b + 1) / STACK_BLOCKS;
            let fit = fit_len(block.start);
            (!block.is_empty() && fit >= min_fit).then_some((fit, block))
        })
        .collect()
}

/// Stacking's meta-model: a lightly ridged least-squares fit of the label on the members'
/// out-of-fold predictions (one row per item, one column per member).
pub fn meta_model(x: &[Vec<f64>], y: &[f64]) -> Result<RidgeFit, String> {
    ridge(x, y, 1e-3).ok_or_else(|| {
        format!(
            "stacking: {} out-of-fold rows are too few for the meta-model",
            x.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skill_weights_floor_normalise_and_fall_back_to_equal() {
        assert_eq!(skill_weights(&[1.0, 3.0, -2.0]), vec![0.25, 0.75, 0.0]);
        assert_eq!(skill_weights(&[f64::NAN, 2.0]), vec![0.0, 1.0]);
        assert_eq!(skill_weights(&[-1.0, 0.0]), vec![0.5, 0.5]);
    }

    #[test]
    fn stacking_blocks_fit_only_on_what_ends_before_each_block() {
        // 100 items, a purge of 5: blocks 25..50, 50..75, 75..100 fitted on 20, 45, 70 items.
        let plan = stacking_blocks(100, |start| start.saturating_sub(5), 2);
        assert_eq!(plan, vec![(20, 25..50), (45, 50..75), (70, 75..100)]);
        // Too little to fit on before the first block: it is left out.
        let plan = stacking_blocks(100, |start| start.saturating_sub(5), 30);
        assert_eq!(plan, vec![(45, 50..75), (70, 75..100)]);
        // Two items: the second block (1..1) is empty and left out.
        assert_eq!(stacking_blocks(2, |s| s, 0), vec![(0, 0..1), (1, 1..2)]);
    }
}
