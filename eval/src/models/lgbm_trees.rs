//! LightGBM's trees read from its model text and evaluated one by one, for the training curve:
//! LightGBM's C API predicts with all of a model's first k trees at once, so a loss per round
//! would cost O(rounds²); tree by tree it is one pass. The decisions are LightGBM's own
//! (`include/LightGBM/tree.h`: `NumericalDecision`, `CategoricalDecision`), and the caller
//! checks the sum of the trees against LightGBM's raw scores before trusting a curve.

/// One tree of the model.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    split_feature: Vec<usize>,
    threshold: Vec<f64>,
    decision_type: Vec<u8>,
    left: Vec<i64>,
    right: Vec<i64>,
    leaf_value: Vec<f64>,
    cat_boundaries: Vec<usize>,
    cat_threshold: Vec<u32>,
}

const CATEGORICAL: u8 = 1;
const DEFAULT_LEFT: u8 = 2;
const ZERO_THRESHOLD: f64 = 1e-35;

fn numbers<T: std::str::FromStr>(v: &str, key: &str) -> Result<Vec<T>, String> {
    v.split_whitespace()
        .map(|x| {
            x.parse::<T>()
                .map_err(|_| format!("LightGBM model text: `{key}` has `{x}`"))
        })
        .collect()
}

/// The trees of a model text, in boosting order.
pub(crate) fn parse(text: &str) -> Result<Vec<Tree>, String> {
    let mut trees = Vec::new();
    let mut cur: Option<Tree> = None;
    for line in text.lines() {
        if line.starts_with("Tree=") {
            trees.extend(cur.take());
            cur = Some(Tree::default());
            continue;
        }
        if line.starts_with("end of trees") {
            break;
        }
        let (Some(t), Some((k, v))) = (cur.as_mut(), line.split_once('=')) else {
            continue;
        };
        match k {
            "split_feature" => t.split_feature = numbers(v, k)?,
            "threshold" => t.threshold = numbers(v, k)?,
            "decision_type" => t.decision_type = numbers(v, k)?,
            "left_child" => t.left = numbers(v, k)?,
            "right_child" => t.right = numbers(v, k)?,
            "leaf_value" => t.leaf_value = numbers(v, k)?,
            "cat_boundaries" => t.cat_boundaries = numbers(v, k)?,
            "cat_threshold" => t.cat_threshold = numbers(v, k)?,
            _ => {}
        }
    }
    trees.extend(cur);
    for (i, t) in trees.iter().enumerate() {
        t.check()
            .map_err(|e| format!("LightGBM model text: tree {i}: {e}"))?;
    }
    Ok(trees)
}

impl Tree {
    /// Every array has the length its node count says and every child exists.
    fn check(&self) -> Result<(), String> {
        let inner = self.split_feature.len();
        if self.leaf_value.len() != inner + 1 {
            return Err(format!(
                "{} leaf values for {inner} splits",
                self.leaf_value.len()
            ));
        }
        if [self.threshold.len(), self.left.len(), self.right.len()]
            .iter()
            .any(|&n| n != inner)
            || !(self.decision_type.is_empty() || self.decision_type.len() == inner)
        {
            return Err("its arrays disagree on the number of splits".into());
        }
        let ok = |c: &i64| {
            (*c >= 0 && (*c as usize) < inner) || (*c < 0 && ((-c - 1) as usize) <= inner)
        };
        if !self.left.iter().chain(&self.right).all(ok) {
            return Err("a child out of range".into());
        }
        let cats = self.decision_type.iter().any(|d| d & CATEGORICAL != 0);
        if cats && self.cat_boundaries.last().copied().unwrap_or(0) > self.cat_threshold.len() {
            return Err("categorical bitsets out of range".into());
        }
        Ok(())
    }

    fn decide(&self, node: usize, x: f64) -> i64 {
        let dt = self.decision_type.get(node).copied().unwrap_or(0);
        if dt & CATEGORICAL != 0 {
            if x.is_nan() || x < 0.0 {
                return self.right[node];
            }
            let v = x as usize;
            let cat = self.threshold[node] as usize;
            let (lo, hi) = (
                self.cat_boundaries.get(cat).copied().unwrap_or(0),
                self.cat_boundaries.get(cat + 1).copied().unwrap_or(0),
            );
            let word = v / 32;
            let inside = word < hi.saturating_sub(lo)
                && self
                    .cat_threshold
                    .get(lo + word)
                    .is_some_and(|w| (w >> (v % 32)) & 1 == 1);
            return if inside {
                self.left[node]
            } else {
                self.right[node]
            };
        }
        let missing = (dt >> 2) & 3;
        let x = if x.is_nan() && missing != 2 { 0.0 } else { x };
        let default = (missing == 1 && (-ZERO_THRESHOLD..=ZERO_THRESHOLD).contains(&x))
            || (missing == 2 && x.is_nan());
        if default {
            return if dt & DEFAULT_LEFT != 0 {
                self.left[node]
            } else {
                self.right[node]
            };
        }
        if x <= self.threshold[node] {
            self.left[node]
        } else {
            self.right[node]
        }
    }

    /// The tree's output for a row of features.
    pub(crate) fn predict(&self, row: &[f64]) -> f64 {
        if self.split_feature.is_empty() {
            return self.leaf_value.first().copied().unwrap_or(0.0);
        }
        let mut node = 0i64;
        while node >= 0 {
            let n = node as usize;
            let x = row.get(self.split_feature[n]).copied().unwrap_or(f64::NAN);
            node = self.decide(n, x);
        }
        self.leaf_value
            .get((-node - 1) as usize)
            .copied()
            .unwrap_or(0.0)
    }
}
