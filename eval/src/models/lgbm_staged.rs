//! LightGBM trained in stages, so that boosting rounds can be the pruning budget: each stage
//! boosts `stage` more rounds from the scores of the stages before (a custom objective whose
//! gradients are taken at those scores plus the new trees'), and the model's prediction is the
//! sum of the stages' raw scores — the same function as one booster trained that many rounds
//! with LightGBM's own L2 or log loss. Early stopping counts stages on the validation tail.
use super::{Model, ModelSettings};
use lightgbm3::{Booster, Dataset, ImportanceType};
use serde::{Deserialize, Serialize};

/// The staged model.
pub struct LgbmStaged {
    settings: ModelSettings,
    stages: Vec<Booster>,
    init: f64,
    /// Stages used to predict (the best on the validation tail so far).
    kept: usize,
    stage_rounds: usize,
    n_features: usize,
    classify: bool,
    train: Option<Training>,
    /// Training and validation loss after each stage.
    curve: (Vec<f64>, Vec<f64>),
    stopped_early: bool,
}

struct Training {
    x: Vec<f64>,
    y: Vec<f32>,
    offset: Vec<f64>,
    valid: Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    best: Option<(f64, usize)>,
    max_stages: usize,
    patience: usize,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    init: f64,
    kept: usize,
    stage_rounds: usize,
    n_features: usize,
    classify: bool,
    stages: Vec<String>,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl LgbmStaged {
    /// An unfitted model.
    pub fn new(settings: ModelSettings) -> Self {
        let classify = settings.classify;
        Self {
            settings,
            stages: Vec::new(),
            init: 0.0,
            kept: 0,
            stage_rounds: 0,
            n_features: 0,
            classify,
            train: None,
            curve: (Vec::new(), Vec::new()),
            stopped_early: false,
        }
    }

    /// A fitted model from its saved text.
    pub fn load(text: &str) -> Result<Self, String> {
        let s: Saved = serde_json::from_str(text).map_err(|e| format!("staged LightGBM: {e}"))?;
        let stages = s
            .stages
            .iter()
            .map(|t| Booster::from_string(t).map_err(|e| format!("LightGBM stage: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if s.kept > stages.len() {
            return Err("staged LightGBM: more stages kept than saved".into());
        }
        Ok(Self {
            settings: ModelSettings::default(),
            stages,
            init: s.init,
            kept: s.kept,
            stage_rounds: s.stage_rounds,
            n_features: s.n_features,
            classify: s.classify,
            train: None,
            curve: (Vec::new(), Vec::new()),
            stopped_early: false,
        })
    }

    /// Raw scores of flat rows from the first `k` stages.
    fn raw(&self, flat: &[f64], rows: usize, k: usize) -> Result<Vec<f64>, String> {
        let mut z = vec![self.init; rows];
        for b in &self.stages[..k] {
            let r = b
                .raw_scores(flat, self.n_features as i32, true)
                .map_err(|e| format!("LightGBM: {e}"))?;
            for (a, v) in z.iter_mut().zip(r) {
                *a += v;
            }
        }
        Ok(z)
    }

    fn loss(&self, z: &[f64], y: &[f64]) -> f64 {
        crate::curves::loss(self.classify, z, y)
    }
}

impl Model for LgbmStaged {
    fn finish(&mut self) {
        // Training state is not needed to predict.
        self.train = None;
    }

    fn begin(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        valid: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        let d = super::lgbm::row_width(x)?;
        let total = self
            .settings
            .params
            .get("num_iterations")
            .copied()
            .unwrap_or(200.0)
            .max(1.0) as usize;
        self.stage_rounds = (total / 10).max(10).min(total);
        let mean = y.iter().sum::<f64>() / y.len() as f64;
        self.init = if self.classify {
            let p = mean.clamp(1e-6, 1.0 - 1e-6);
            (p / (1.0 - p)).ln()
        } else {
            mean
        };
        self.n_features = d;
        self.curve = (Vec::new(), Vec::new());
        self.stopped_early = false;
        let flat = |r: &[Vec<f64>]| r.iter().flatten().copied().collect::<Vec<f64>>();
        self.train = Some(Training {
            x: flat(x),
            y: y.iter().map(|v| *v as f32).collect(),
            offset: vec![self.init; x.len()],
            valid: valid
                .filter(|(vx, _)| !vx.is_empty())
                .map(|(vx, vy)| (flat(vx), vy.to_vec(), vec![self.init; vx.len()])),
            best: None,
            max_stages: total.div_ceil(self.stage_rounds),
            patience: (self.settings.training.early_stopping as usize)
                .div_ceil(self.stage_rounds)
                .max(usize::from(self.settings.training.early_stopping > 0)),
        });
        Ok(())
    }

    fn advance(&mut self) -> Result<bool, String> {
        let Some(mut t) = self.train.take() else {
            return Err("the staged LightGBM's training has not begun".into());
        };
        if self.stages.len() >= t.max_stages {
            self.train = Some(t);
            return Ok(false);
        }
        let d = self.n_features as i32;
        let lgb = |e: lightgbm3::Error| format!("LightGBM: {e}");
        let mut params = super::lgbm::params(&self.settings, false);
        params["num_iterations"] = serde_json::json!(self.stage_rounds);
        let ds = Dataset::from_slice(&t.x, &t.y, d, true).map_err(lgb)?;
        let classify = self.classify;
        let offset = t.offset.clone();
        let booster = Booster::train_with_custom_objective(
            ds,
            &params,
            move |pred: &[f64], label: &[f32], grad: &mut [f32], hess: &mut [f32]| {
                for i in 0..pred.len() {
                    let z = offset[i] + pred[i];
                    let y = label[i] as f64;
                    if classify {
                        let p = sigmoid(z);
                        grad[i] = (p - y) as f32;
                        hess[i] = (p * (1.0 - p)).max(1e-16) as f32;
                    } else {
                        grad[i] = (z - y) as f32;
                        hess[i] = 1.0;
                    }
                }
            },
        )
        .map_err(lgb)?;
        for (o, v) in t
            .offset
            .iter_mut()
            .zip(booster.raw_scores(&t.x, d, true).map_err(lgb)?)
        {
            *o += v;
        }
        let y: Vec<f64> = t.y.iter().map(|v| f64::from(*v)).collect();
        self.curve.0.push(self.loss(&t.offset, &y));
        self.stages.push(booster);
        let n = self.stages.len();
        let mut more = n < t.max_stages;
        match &mut t.valid {
            None => self.kept = n,
            Some((vx, vy, voff)) => {
                let last = self.stages.last().expect("just pushed");
                for (o, v) in voff
                    .iter_mut()
                    .zip(last.raw_scores(vx, d, true).map_err(lgb)?)
                {
                    *o += v;
                }
                let l = self.loss(voff, vy);
                self.curve.1.push(l);
                if t.best.is_none_or(|(b, _)| l < b) {
                    t.best = Some((l, n));
                    self.kept = n;
                } else if t.patience > 0 && n - t.best.map_or(0, |b| b.1) >= t.patience {
                    more = false;
                    self.stopped_early = true;
                }
            }
        }
        self.train = Some(t);
        Ok(more)
    }

    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        if self.kept == 0 {
            return Err("the model is not fitted".into());
        }
        if rows.iter().any(|r| r.len() != self.n_features) {
            return Err(format!(
                "the model takes {} features per row",
                self.n_features
            ));
        }
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        let z = self.raw(&flat, rows.len(), self.kept)?;
        Ok(if self.classify {
            z.into_iter().map(sigmoid).collect()
        } else {
            z
        })
    }

    fn format(&self) -> &'static str {
        "lightgbm-staged"
    }

    fn save(&self) -> Result<String, String> {
        let stages = self.stages[..self.kept]
            .iter()
            .map(|b| b.save_string().map_err(|e| format!("LightGBM: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        serde_json::to_string(&Saved {
            init: self.init,
            kept: self.kept,
            stage_rounds: self.stage_rounds,
            n_features: self.n_features,
            classify: self.classify,
            stages,
        })
        .map_err(|e| e.to_string())
    }

    fn curve(&self) -> Option<mlt_protocol::lineage::Curve> {
        use mlt_protocol::lineage::{Curve, Stopped};
        (!self.curve.0.is_empty()).then(|| Curve {
            metric: if self.classify {
                "binary_logloss"
            } else {
                "l2"
            }
            .into(),
            unit: "round".into(),
            every: self.stage_rounds as u32,
            train: self.curve.0.clone(),
            valid: self.curve.1.clone(),
            best: self.kept as u32,
            stopped: if self.stopped_early {
                Stopped::EarlyStopping
            } else {
                Stopped::Limit
            },
        })
    }

    fn rounds(&self) -> Option<u32> {
        Some((self.kept * self.stage_rounds) as u32)
    }

    fn importance(&self, x: &[Vec<f64>]) -> Result<Vec<(f64, f64, f64)>, String> {
        let d = self.n_features;
        let lgb = |e: lightgbm3::Error| format!("LightGBM: {e}");
        let flat: Vec<f64> = x.iter().flatten().copied().collect();
        let (mut gain, mut split) = (vec![0.0; d], vec![0.0; d]);
        // SHAP values add up over stages (each stage is a sum of trees): sum them per row and
        // feature, then average their magnitudes.
        let mut shap = vec![0.0; d * x.len()];
        for b in &self.stages[..self.kept] {
            let g = b.feature_importance(ImportanceType::Gain).map_err(lgb)?;
            let s = b.feature_importance(ImportanceType::Split).map_err(lgb)?;
            for j in 0..d {
                gain[j] += g.get(j).copied().unwrap_or(0.0);
                split[j] += s.get(j).copied().unwrap_or(0.0);
            }
            if !x.is_empty() {
                let c = b.predict_contrib(&flat, d as i32, true).map_err(lgb)?;
                for (r, row) in c.chunks(d + 1).enumerate() {
                    for j in 0..d {
                        shap[r * d + j] += row[j];
                    }
                }
            }
        }
        let rows = x.len().max(1) as f64;
        Ok((0..d)
            .map(|j| {
                let m = shap.iter().skip(j).step_by(d).map(|v| v.abs()).sum::<f64>() / rows;
                (gain[j], split[j], m)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Slot, Training};

    /// LightGBM's test rows; a classifier learns the sign of the label.
    fn data(n: usize, seed: u64, classify: bool) -> (Vec<Vec<f64>>, Vec<f64>) {
        let (x, y) = super::super::lgbm::tests::data(n, seed);
        if !classify {
            return (x, y);
        }
        (x, y.iter().map(|v| f64::from(u8::from(*v > 0.0))).collect())
    }

    fn settings(classify: bool) -> ModelSettings {
        ModelSettings {
            name: mlt_protocol::spec::ModelKind::Lightgbm,
            classify,
            slot: Slot {
                threads: 1,
                ..Default::default()
            },
            training: Training {
                early_stopping: 20,
                staged: true,
            },
            params: [("num_iterations".to_string(), 200.0)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn stages_boost_from_the_scores_before_and_stop_early() {
        for classify in [false, true] {
            let (x, y) = data(600, 1, classify);
            let (vx, vy) = data(150, 2, classify);
            let (tx, ty) = data(300, 3, classify);
            let mut m = LgbmStaged::new(settings(classify));
            m.begin(&x, &y, Some((&vx, &vy))).unwrap();
            // Each stage adds 20 rounds; predictions improve on the first stages.
            let mut stages = 0;
            let mut errs = Vec::new();
            loop {
                let more = m.advance().unwrap();
                stages += 1;
                let p = m.predict_many(&tx).unwrap();
                let err = if classify {
                    p.iter()
                        .zip(&ty)
                        .filter(|(p, y)| (**p > 0.5) != (**y > 0.5))
                        .count() as f64
                        / ty.len() as f64
                } else {
                    p.iter().zip(&ty).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / ty.len() as f64
                };
                errs.push(err);
                if !more {
                    break;
                }
            }
            assert!(stages <= 10, "{stages}");
            assert!(errs[0] > *errs.last().unwrap(), "{classify}: {errs:?}");
            // One curve point per stage, the kept one the best on validation.
            let c = m.curve().expect("a curve");
            assert_eq!((c.train.len(), c.valid.len()), (stages, stages));
            let best = c.valid.iter().copied().fold(f64::INFINITY, f64::min);
            assert_eq!(c.valid[c.best as usize - 1], best);
            assert!(c.train.last() < c.train.first(), "{c:?}");
            let last = *errs.last().unwrap();
            // Test error (misclassified share, or MSE) well below the first stage's.
            assert!(last < 0.1, "{classify}: {errs:?}");
            // Saved and reloaded: the same predictions.
            let back = LgbmStaged::load(&m.save().unwrap()).unwrap();
            assert_eq!(
                back.predict_many(&tx).unwrap(),
                m.predict_many(&tx).unwrap()
            );
            assert_eq!(back.rounds(), m.rounds());
            let imp = m.importance(&tx).unwrap();
            assert!(imp[0].2 > imp[2].2 && imp[0].0 > imp[2].0, "{imp:?}");
        }
    }
}
