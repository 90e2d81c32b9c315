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

/// A LightGBM model evaluated here, tree by tree, as LightGBM's `Predict` does (the trees'
/// outputs summed in boosting order, then the objective's transform): one row costs no call
/// into LightGBM and no thread. Regression (identity) and binary (sigmoid) models of one
/// class; anything else is refused, and [`TreeModel::verified`] checks the sums against
/// LightGBM's own before a caller relies on them.
#[derive(Debug)]
pub struct TreeModel {
    trees: Vec<Tree>,
    sigmoid: Option<f64>,
    n_features: usize,
}

impl TreeModel {
    /// The model of a LightGBM model text.
    pub fn parse(text: &str) -> Result<TreeModel, String> {
        let head: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("Tree="))
            .collect();
        let get = |k: &str| head.iter().find_map(|l| l.strip_prefix(k));
        if head.iter().any(|l| l.trim() == "average_output") {
            return Err("a random-forest model (average_output)".into());
        }
        if get("num_class=").is_some_and(|n| n.trim() != "1") {
            return Err("a multi-class model".into());
        }
        let sigmoid = match get("objective=").map(str::trim) {
            Some("regression") | Some("regression_l2") => None,
            Some(o) if o.starts_with("binary") => {
                let k = o
                    .split_whitespace()
                    .find_map(|p| p.strip_prefix("sigmoid:"))
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| format!("objective `{o}` has no sigmoid"))?;
                Some(k)
            }
            Some(o) => return Err(format!("objective `{o}` is not evaluated here")),
            None => return Err("no objective in the model text".into()),
        };
        let n_features = get("max_feature_idx=")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or("no max_feature_idx in the model text")?
            + 1;
        let trees = parse(text)?;
        if trees
            .iter()
            .flat_map(|t| &t.split_feature)
            .any(|f| *f >= n_features)
        {
            return Err("a split on a feature beyond max_feature_idx".into());
        }
        Ok(TreeModel {
            trees,
            sigmoid,
            n_features,
        })
    }

    /// Features per row.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The prediction of one row.
    pub fn predict(&self, row: &[f64]) -> f64 {
        let mut s = 0.0;
        for t in &self.trees {
            s += t.predict(row);
        }
        match self.sigmoid {
            Some(k) => 1.0 / (1.0 + (-k * s).exp()),
            None => s,
        }
    }

    /// Rows that take every branch of the trees: each feature drawn from its split thresholds,
    /// values just beside them, zero and NaN (a fixed generator: the same rows every time).
    pub fn probe_rows(&self, n: usize) -> Vec<Vec<f64>> {
        let mut values: Vec<Vec<f64>> = vec![vec![0.0, f64::NAN, 1.0, -1.0]; self.n_features];
        for t in &self.trees {
            for (f, th) in t.split_feature.iter().zip(&t.threshold) {
                let v = &mut values[*f];
                v.push(*th);
                v.push(th + th.abs().max(1e-9) * 1e-9);
                v.push(th - th.abs().max(1e-9) * 1e-9);
            }
        }
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..n)
            .map(|_| {
                values
                    .iter()
                    .map(|v| v[(next() % v.len() as u64) as usize])
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tree_model_tests {
    use super::TreeModel;

    #[test]
    fn other_objectives_and_forests_are_refused() {
        let t = "tree\nversion=v4\nnum_class=1\nmax_feature_idx=0\nobjective=huber\n\nTree=0\n";
        assert!(TreeModel::parse(t).unwrap_err().contains("huber"));
        let t = "tree\nnum_class=1\nmax_feature_idx=0\nobjective=regression\naverage_output\n\nTree=0\n";
        assert!(TreeModel::parse(t).unwrap_err().contains("random-forest"));
        let t =
            "tree\nnum_class=3\nmax_feature_idx=0\nobjective=multiclass num_class:3\n\nTree=0\n";
        assert!(TreeModel::parse(t).unwrap_err().contains("multi-class"));
    }
}
