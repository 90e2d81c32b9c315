//! LightGBM through lightgbm3: a regression of the forward return or a binary classifier of
//! its direction. Early stopping watches the validation tail the walk-forward cuts from the end
//! of each training window; threads come from the worker slot; the fitted booster is saved as
//! LightGBM's own model text, with gain/split importance and mean |SHAP| (pred_contrib).
use super::{Model, ModelSettings};
use lightgbm3::{Booster, Dataset, ImportanceType};
use mlt_spec::tables::LIGHTGBM;
use serde_json::{json, Map, Value};

/// A LightGBM model.
pub struct Lgbm {
    settings: ModelSettings,
    booster: Option<Booster>,
    n_features: usize,
    curve: Option<mlt_protocol::lineage::Curve>,
}

/// The most points a LightGBM training curve keeps.
const CURVE_POINTS: usize = 100;

impl Lgbm {
    /// An unfitted model.
    pub fn new(settings: ModelSettings) -> Self {
        Self {
            settings,
            booster: None,
            n_features: 0,
            curve: None,
        }
    }

    /// A fitted model from its model text.
    pub fn load(text: &str) -> Result<Self, String> {
        let b = Booster::from_string(text).map_err(|e| format!("LightGBM model: {e}"))?;
        Ok(Self {
            curve: None,
            n_features: b.num_features().max(0) as usize,
            booster: Some(b),
            settings: ModelSettings::default(),
        })
    }

    /// LightGBM's parameters: our defaults, then the spec's and the trial's settings.
    pub fn params(&self, with_valid: bool) -> Value {
        params(&self.settings, with_valid)
    }

    /// The loss after each round of the trained booster on its training rows and validation
    /// tail, at most [`CURVE_POINTS`] points: its trees read from its model text and added
    /// one by one (LightGBM's C API only predicts with a model's first k trees at once). The
    /// sum of the trees is checked against LightGBM's own raw scores: a curve that does not
    /// end where LightGBM's model does is not kept. LightGBM drops the rounds after the best
    /// when it stops early, so the curve ends at the kept round.
    fn curve_of(
        &self,
        b: &Booster,
        (x, y): (&[Vec<f64>], &[f64]),
        valid: Option<(&[Vec<f64>], &[f64])>,
        params: &Value,
    ) -> Result<Option<mlt_protocol::lineage::Curve>, String> {
        use mlt_protocol::lineage::{Curve, Stopped};
        let lgb = |e: lightgbm3::Error| format!("LightGBM: {e}");
        let trees = super::lgbm_trees::parse(&b.save_string().map_err(lgb)?)?;
        let rounds = trees.len();
        if rounds == 0 {
            return Ok(None);
        }
        let every = rounds.div_ceil(CURVE_POINTS).max(1);
        let classify = self.settings.classify;
        let d = x.first().map_or(0, Vec::len) as i32;
        let sets: Vec<(&[Vec<f64>], &[f64])> = std::iter::once((x, y)).chain(valid).collect();
        let mut losses = Vec::new();
        for (rows, labels) in sets {
            let mut scores = vec![0.0; rows.len()];
            let mut curve = Vec::new();
            for (i, tree) in trees.iter().enumerate() {
                for (s, r) in scores.iter_mut().zip(rows) {
                    *s += tree.predict(r);
                }
                if (i + 1) % every == 0 || i + 1 == rounds {
                    curve.push(crate::curves::loss(classify, &scores, labels));
                }
            }
            let lgbm = b.raw_scores(&flat(rows), d, true).map_err(lgb)?;
            let agree = scores
                .iter()
                .zip(&lgbm)
                .all(|(a, b)| (a - b).abs() <= 1e-9 * (1.0 + b.abs()));
            if !agree {
                tracing::warn!(
                    "the training curve's trees disagree with LightGBM's scores: no curve kept"
                );
                return Ok(None);
            }
            losses.push(curve);
        }
        let requested = params["num_iterations"].as_u64().unwrap_or(100) as usize;
        let mut losses = losses.into_iter();
        Ok(Some(Curve {
            metric: if classify { "binary_logloss" } else { "l2" }.into(),
            unit: "round".into(),
            every: every as u32,
            train: losses.next().unwrap_or_default(),
            valid: losses.next().unwrap_or_default(),
            best: rounds.div_ceil(every) as u32,
            stopped: if rounds < requested {
                Stopped::EarlyStopping
            } else {
                Stopped::Limit
            },
        }))
    }

    fn booster(&self) -> Result<&Booster, String> {
        self.booster
            .as_ref()
            .ok_or_else(|| "the model is not fitted".to_string())
    }
}

/// LightGBM's parameters for `s`: our defaults, then the spec's and the trial's settings;
/// early stopping only `with_valid`.
pub fn params(s: &ModelSettings, with_valid: bool) -> Value {
    let mut p = Map::new();
    let (objective, metric) = if s.classify {
        ("binary", "binary_logloss")
    } else {
        ("regression", "l2")
    };
    p.insert("objective".into(), json!(objective));
    p.insert("metric".into(), json!(metric));
    p.insert("num_threads".into(), json!(s.slot.threads.max(1)));
    p.insert("seed".into(), json!(s.slot.seed % (i32::MAX as u64)));
    p.insert("deterministic".into(), json!(true));
    p.insert("force_row_wise".into(), json!(true));
    p.insert("verbosity".into(), json!(-1));
    // Every setting given (or with a default of ours), as its table says: whole numbers
    // where LightGBM wants them.
    for setting in LIGHTGBM {
        if let Some(v) = setting.value(&s.params) {
            let v = if setting.integral {
                json!(v as i64)
            } else {
                json!(v)
            };
            p.insert(setting.name.into(), v);
        }
    }
    if with_valid && s.training.early_stopping > 0 {
        p.insert(
            "early_stopping_rounds".into(),
            json!(s.training.early_stopping),
        );
    }
    if !s.rows.categorical.is_empty() {
        let cols: Vec<String> = s.rows.categorical.iter().map(|c| c.to_string()).collect();
        p.insert("categorical_feature".into(), json!(cols.join(",")));
    }
    Value::Object(p)
}

/// The number of features of training rows, or why they cannot be trained on.
pub(crate) fn row_width(x: &[Vec<f64>]) -> Result<usize, String> {
    let d = x.first().map_or(0, Vec::len);
    if x.len() < 2 || d == 0 {
        return Err(format!("LightGBM needs training rows, got {}", x.len()));
    }
    Ok(d)
}

fn flat(x: &[Vec<f64>]) -> Vec<f64> {
    x.iter().flatten().copied().collect()
}

fn labels(y: &[f64]) -> Vec<f32> {
    y.iter().map(|v| *v as f32).collect()
}

impl Model for Lgbm {
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        valid: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        let d = row_width(x)?;
        let lgb = |e: lightgbm3::Error| format!("LightGBM: {e}");
        let mut train = Dataset::from_slice(&flat(x), &labels(y), d as i32, true).map_err(lgb)?;
        if self.settings.rows.features.len() == d {
            // LightGBM's names allow no spaces or JSON punctuation.
            let names: Vec<String> = self
                .settings
                .rows
                .features
                .iter()
                .map(|n| {
                    n.chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '_' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect()
                })
                .collect();
            train.set_feature_names(&names).map_err(lgb)?;
        }
        let valid_rows = valid.filter(|(vx, _)| !vx.is_empty());
        let valid = match valid_rows {
            Some((vx, vy)) => Some(
                Dataset::from_slice_with_reference(
                    &flat(vx),
                    &labels(vy),
                    d as i32,
                    true,
                    Some(&train),
                )
                .map_err(lgb)?,
            ),
            None => None,
        };
        let params = self.params(valid.is_some());
        let b = Booster::train_with_valid(train, valid, &params).map_err(lgb)?;
        self.curve = self.curve_of(&b, (x, y), valid_rows, &params)?;
        self.booster = Some(b);
        self.n_features = d;
        Ok(())
    }

    fn curve(&self) -> Option<mlt_protocol::lineage::Curve> {
        self.curve.clone()
    }

    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let b = self.booster()?;
        if rows.iter().any(|r| r.len() != self.n_features) {
            return Err(format!(
                "the model takes {} features per row",
                self.n_features
            ));
        }
        let threads = format!("num_threads={}", self.settings.slot.threads.max(1));
        b.predict_with_params(&flat(rows), self.n_features as i32, true, &threads)
            .map_err(|e| format!("LightGBM: {e}"))
    }

    fn format(&self) -> &'static str {
        "lightgbm"
    }

    fn save(&self) -> Result<String, String> {
        self.booster()?
            .save_string()
            .map_err(|e| format!("LightGBM: {e}"))
    }

    fn rounds(&self) -> Option<u32> {
        self.booster
            .as_ref()
            .map(|b| b.num_iterations().max(0) as u32)
    }

    fn importance(&self, x: &[Vec<f64>]) -> Result<Vec<(f64, f64, f64)>, String> {
        let b = self.booster()?;
        let lgb = |e: lightgbm3::Error| format!("LightGBM: {e}");
        let gain = b.feature_importance(ImportanceType::Gain).map_err(lgb)?;
        let split = b.feature_importance(ImportanceType::Split).map_err(lgb)?;
        let d = self.n_features;
        let mut shap = vec![0.0; d];
        if !x.is_empty() {
            let c = b.predict_contrib(&flat(x), d as i32, true).map_err(lgb)?;
            // Each row: one contribution per feature, then the expected value.
            for row in c.chunks(d + 1) {
                for j in 0..d {
                    shap[j] += row[j].abs() / x.len() as f64;
                }
            }
        }
        Ok((0..d)
            .map(|j| {
                (
                    gain.get(j).copied().unwrap_or(0.0),
                    split.get(j).copied().unwrap_or(0.0),
                    shap[j],
                )
            })
            .collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::models::{Slot, Training};
    use rand::{Rng, SeedableRng};

    /// Three features in [-1, 1]; y depends on x0 (strongly) and x1 (weakly); x2 is noise.
    pub(crate) fn data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let x: Vec<Vec<f64>> = (0..n)
            .map(|_| (0..3).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        // y depends on x0 (strongly) and x1 (weakly); x2 is noise.
        let y = x
            .iter()
            .map(|r| 2.0 * r[0] + 0.5 * r[1] + rng.random_range(-0.1..0.1))
            .collect();
        (x, y)
    }

    fn settings() -> ModelSettings {
        ModelSettings {
            name: mlt_protocol::spec::ModelKind::Lightgbm,
            slot: Slot {
                threads: 1,
                ..Default::default()
            },
            training: Training {
                early_stopping: 10,
                ..Default::default()
            },
            params: [("num_iterations".to_string(), 300.0)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn lightgbm_learns_stops_early_saves_and_explains() {
        let (x, y) = data(600, 1);
        let (vx, vy) = data(150, 2);
        let mut m = Lgbm::new(settings());
        m.fit(&x, &y, Some((&vx, &vy))).unwrap();
        let (tx, ty) = data(200, 3);
        let p = m.predict_many(&tx).unwrap();
        let mse = p.iter().zip(&ty).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 200.0;
        assert!(mse < 0.1, "test MSE {mse}");
        // Early stopping kept fewer rounds than allowed.
        let rounds = m.rounds().unwrap();
        assert!(rounds > 10 && rounds < 300, "{rounds} rounds");
        // The saved text reloads to the same predictions.
        let back = Lgbm::load(&m.save().unwrap()).unwrap();
        assert_eq!(back.predict_many(&tx).unwrap(), p);
        assert_eq!(back.predict(&tx[0]), p[0]);
        // x0 matters most by gain, split count and SHAP; the noise column least by SHAP.
        let imp = m.importance(&x).unwrap();
        assert_eq!(imp.len(), 3);
        assert!(
            imp[0].0 > imp[1].0 && imp[0].2 > imp[1].2 && imp[1].2 > imp[2].2,
            "{imp:?}"
        );
        // Bad input is an error, not a crash.
        assert!(m.predict_many(&[vec![1.0]]).is_err());
        assert!(Lgbm::load("not a model").is_err());
        assert!(Lgbm::new(settings()).fit(&[], &[], None).is_err());
    }

    #[test]
    fn the_same_seed_gives_the_same_model_and_settings_reach_lightgbm() {
        let (x, y) = data(400, 4);
        let fit = |s: ModelSettings| {
            let mut m = Lgbm::new(s);
            m.fit(&x, &y, None).unwrap();
            m.predict_many(&x[..20]).unwrap()
        };
        assert_eq!(fit(settings()), fit(settings()));
        let mut few = settings();
        few.params.insert("num_iterations".into(), 3.0);
        let m = {
            let mut m = Lgbm::new(few.clone());
            m.fit(&x, &y, None).unwrap();
            m
        };
        assert_eq!(m.rounds(), Some(3));
        let p = m.params(false);
        assert_eq!(p["num_iterations"], 3);
        assert_eq!(p["objective"], "regression");
        few.classify = true;
        few.rows.categorical = vec![0, 2];
        let p = Lgbm::new(few).params(true);
        assert_eq!(p["objective"], "binary");
        assert_eq!(p["categorical_feature"], "0,2");
        assert_eq!(p["early_stopping_rounds"], 10);
    }

    #[test]
    fn the_curve_is_lightgbms_own_round_by_round_and_flags_a_planted_overfit() {
        use crate::curves::diagnose;
        use mlt_protocol::lineage::Stopped;
        // Missing values and a categorical column: the trees' decisions must be LightGBM's
        // for the curve to be kept (its end is checked against LightGBM's scores).
        let (mut x, y) = data(400, 5);
        for (i, r) in x.iter_mut().enumerate() {
            if i % 7 == 0 {
                r[1] = f64::NAN;
            }
            r.push((i % 5) as f64);
        }
        let (mut vx, vy) = data(100, 6);
        for (i, r) in vx.iter_mut().enumerate() {
            r.push((i % 6) as f64);
        }
        let mut s = settings();
        s.rows.categorical = vec![3];
        let mut m = Lgbm::new(s);
        m.fit(&x, &y, Some((&vx, &vy))).unwrap();
        let c = m.curve().expect("a curve");
        assert_eq!(c.train.len(), c.valid.len());
        assert_eq!(c.stopped, Stopped::EarlyStopping);
        assert_eq!(
            c.best as usize * c.every as usize,
            m.rounds().unwrap() as usize
        );
        // The last point is the kept model's loss on its training rows.
        let p = m.predict_many(&x).unwrap();
        let mse = p.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 400.0;
        assert!((c.train.last().unwrap() - mse).abs() < 1e-9, "{c:?} {mse}");
        // A learnable target: both losses fall together, no overfitting.
        assert!(c.valid.last() < c.valid.first());
        assert!(!diagnose(&c).overfitting, "{:?}", diagnose(&c));

        // Planted overfit: 60 rows of pure noise, 64 leaves of one row each, no early stopping:
        // the training loss goes to nothing, the validation loss does not move.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let noise = |n: usize, rng: &mut rand_chacha::ChaCha8Rng| -> (Vec<Vec<f64>>, Vec<f64>) {
            let x = (0..n)
                .map(|_| (0..3).map(|_| rng.random_range(-1.0..1.0)).collect())
                .collect();
            (x, (0..n).map(|_| rng.random_range(-1.0..1.0)).collect())
        };
        let (x, y) = noise(60, &mut rng);
        let (vx, vy) = noise(60, &mut rng);
        let mut s = settings();
        s.training.early_stopping = 0;
        s.params.insert("num_iterations".into(), 200.0);
        s.params.insert("num_leaves".into(), 64.0);
        s.params.insert("min_data_in_leaf".into(), 1.0);
        s.params.insert("learning_rate".into(), 0.3);
        let mut m = Lgbm::new(s);
        m.fit(&x, &y, Some((&vx, &vy))).unwrap();
        let c = m.curve().expect("a curve");
        assert_eq!(c.stopped, Stopped::Limit);
        let d = diagnose(&c);
        assert!(d.overfitting, "{d:?} {c:?}");
        assert!(d.gap.unwrap() > 0.5, "{d:?}");
    }
}
