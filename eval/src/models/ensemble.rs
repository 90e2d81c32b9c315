//! Ensembles: several models fitted on the same training rows, their predictions combined.
//!
//! * voting: a weighted mean with fixed weights (equal by default);
//! * blending: least-squares weights (with an intercept, lightly ridged) of the members'
//!   predictions on the validation tail — rows cut from the END of the training window, never
//!   the test window;
//! * dynamic: weights from each member's recent skill on that same tail (rank correlation with
//!   the label for a regression, balanced accuracy above one half for a classifier), so a
//!   member that has stopped working loses its say;
//! * stacking: a ridge meta-model on the members' out-of-fold predictions within the training
//!   rows (`crate::combine`, purged by the label's reach), then the members are refitted on
//!   all the rows. Nothing of the test window is ever seen.
//!
//! A member that reads sequences (the LSTM) gets the whole row; the others get its last step.
use super::{load_model, model_for, ridge, Factory, Model, ModelSettings, RidgeFit};
use crate::combine::{meta_model, skill_weights, stacking_blocks};
use mlt_protocol::spec::{EnsembleMethod, ModelKind};
use mlt_spec::tables::member_setting;
use serde::{Deserialize, Serialize};

/// The ensemble.
pub struct Ensemble {
    settings: ModelSettings,
    /// Makes the members (tests swap in instrumented ones).
    factory: Factory,
    method: EnsembleMethod,
    weights: Vec<f64>,
    members: Vec<Member>,
    blend: Option<RidgeFit>,
    /// Features per step (rows are `lookback` steps of them).
    features: usize,
}

struct Member {
    name: String,
    model: Box<dyn Model>,
    /// Steps this member reads (1 for row models).
    lookback: usize,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    method: String,
    weights: Vec<f64>,
    blend: Option<RidgeFit>,
    features: usize,
    /// Per member: name, format, model text, steps it reads.
    members: Vec<(String, String, String, usize)>,
}

impl Ensemble {
    /// An unfitted ensemble from its settings.
    pub fn new(settings: ModelSettings) -> Result<Self, String> {
        Self::with_factory(settings, model_for)
    }

    /// An unfitted ensemble whose members `factory` makes.
    pub fn with_factory(settings: ModelSettings, factory: Factory) -> Result<Self, String> {
        let spec = settings
            .ensemble
            .clone()
            .ok_or("an ensemble needs its members")?;
        let mut members = Vec::new();
        for name in &spec.members {
            let mut s = settings.clone();
            s.name = *name;
            s.ensemble = None;
            s.params = settings
                .params
                .iter()
                .filter_map(|(k, v)| member_setting(*name, k).map(|k| (k.to_string(), *v)))
                .collect();
            let lookback = if *name == ModelKind::Lstm {
                s.rows.lookback.max(1) as usize
            } else {
                1
            };
            s.rows.lookback = lookback as u32;
            members.push(Member {
                name: name.name().to_string(),
                model: factory(&s)?,
                lookback,
            });
        }
        let n = members.len() as f64;
        let weights = if spec.weights.len() == members.len() {
            let total: f64 = spec.weights.iter().sum();
            spec.weights.iter().map(|w| w / total).collect()
        } else {
            vec![1.0 / n; members.len()]
        };
        Ok(Self {
            settings,
            factory,
            method: spec.method,
            weights,
            members,
            blend: None,
            features: 0,
        })
    }

    /// A fitted ensemble from its saved text.
    pub fn load(text: &str) -> Result<Self, String> {
        let s: Saved = serde_json::from_str(text).map_err(|e| format!("ensemble: {e}"))?;
        let mut members = Vec::new();
        for (name, format, model, lookback) in s.members {
            members.push(Member {
                model: load_model(&format, &model)?,
                name,
                lookback,
            });
        }
        if members.len() != s.weights.len() {
            return Err("ensemble: one weight per member expected".into());
        }
        Ok(Self {
            settings: ModelSettings::default(),
            factory: model_for,
            method: EnsembleMethod::from_name(&s.method).ok_or_else(|| {
                format!(
                    "ensemble: unknown method `{}` (known: {})",
                    s.method,
                    EnsembleMethod::names()
                )
            })?,
            weights: s.weights,
            members,
            blend: s.blend,
            features: s.features,
        })
    }

    /// The rows a member reads: the last `lookback` steps of each.
    fn view(&self, m: &Member, rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let take = m.lookback * self.features;
        rows.iter()
            .map(|r| r[r.len().saturating_sub(take)..].to_vec())
            .collect()
    }

    /// Each member's predictions of `rows`, member-major.
    fn member_predictions(&self, rows: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, String> {
        self.members
            .iter()
            .map(|m| {
                m.model
                    .predict_many(&self.view(m, rows))
                    .map_err(|e| format!("ensemble member {}: {e}", m.name))
            })
            .collect()
    }
}

impl Ensemble {
    /// Stacking's meta-model from out-of-fold predictions within the training rows
    /// ([`crate::combine`]; the rows are purged by the label's reach).
    fn stack(&mut self, x: &[Vec<f64>], y: &[f64]) -> Result<RidgeFit, String> {
        let purge = self.settings.rows.purge_rows;
        let (mut meta_x, mut meta_y) = (Vec::new(), Vec::new());
        for (fit, block) in stacking_blocks(x.len(), |start| start.saturating_sub(purge), 2) {
            let mut preds = Vec::new();
            for mut m in self.member_specs()? {
                m.model
                    .fit(&self.view(&m, &x[..fit]), &y[..fit], None)
                    .map_err(|e| format!("stacking, member {}: {e}", m.name))?;
                preds.push(m.model.predict_many(&self.view(&m, &x[block.clone()]))?);
            }
            for (i, t) in block.clone().enumerate() {
                meta_x.push(preds.iter().map(|p| p[i]).collect::<Vec<f64>>());
                meta_y.push(y[t]);
            }
        }
        meta_model(&meta_x, &meta_y)
    }

    /// Fresh, unfitted members for out-of-fold fits.
    fn member_specs(&self) -> Result<Vec<Member>, String> {
        Ok(Ensemble::with_factory(self.settings.clone(), self.factory)?.members)
    }
}

/// Spearman rank correlation (ties get their mean rank).
fn rank_corr(a: &[f64], b: &[f64]) -> f64 {
    let ranks = |v: &[f64]| {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for k in i..=j {
                r[idx[k]] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    };
    let c = crate::metrics::pearson(&ranks(a), &ranks(b));
    if c.is_finite() {
        c
    } else {
        0.0
    }
}

impl Model for Ensemble {
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        valid: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        let row_len = x.first().map_or(0, Vec::len);
        let lookback = self.members.iter().map(|m| m.lookback).max().unwrap_or(1);
        if row_len == 0 || !row_len.is_multiple_of(lookback) {
            return Err(format!("ensemble: rows of {row_len} values"));
        }
        self.features = row_len / lookback;
        let valid = valid.filter(|(vx, _)| !vx.is_empty());
        if matches!(
            self.method,
            EnsembleMethod::Blending | EnsembleMethod::Dynamic
        ) && valid.is_none()
        {
            return Err(format!(
                "{} ensembles weigh their members on the validation tail: set `validation` above 0",
                self.method
            ));
        }
        if self.method == EnsembleMethod::Stacking {
            self.blend = Some(self.stack(x, y)?);
        }
        for i in 0..self.members.len() {
            let xm = self.view(&self.members[i], x);
            let vm = valid.map(|(vx, vy)| (self.view(&self.members[i], vx), vy));
            let m = &mut self.members[i];
            m.model
                .fit(&xm, y, vm.as_ref().map(|(a, b)| (&a[..], *b)))
                .map_err(|e| format!("ensemble member {}: {e}", m.name))?;
        }
        let Some((vx, vy)) = valid else {
            return Ok(());
        };
        let preds = self.member_predictions(vx)?;
        match self.method {
            EnsembleMethod::Blending => {
                let rows: Vec<Vec<f64>> = (0..vy.len())
                    .map(|i| preds.iter().map(|p| p[i]).collect())
                    .collect();
                self.blend = Some(ridge(&rows, vy, 1e-3).ok_or(
                    "blending: too few or degenerate validation rows for the blend weights",
                )?);
            }
            EnsembleMethod::Dynamic => {
                let skill: Vec<f64> = preds
                    .iter()
                    .map(|p| {
                        if self.settings.classify {
                            let centred: Vec<f64> = p.iter().map(|v| v - 0.5).collect();
                            let truth: Vec<f64> = vy.iter().map(|v| v - 0.5).collect();
                            crate::backtest::balanced_accuracy(&centred, &truth) - 0.5
                        } else {
                            rank_corr(p, vy)
                        }
                    })
                    .collect();
                self.weights = skill_weights(&skill);
            }
            EnsembleMethod::Voting | EnsembleMethod::Stacking => {}
        }
        Ok(())
    }

    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        if self.features == 0 {
            return Err("the ensemble is not fitted".into());
        }
        let preds = self.member_predictions(rows)?;
        Ok((0..rows.len())
            .map(|i| {
                let p: Vec<f64> = preds.iter().map(|m| m[i]).collect();
                match &self.blend {
                    Some(b) => b.predict(&p),
                    None => p.iter().zip(&self.weights).map(|(v, w)| v * w).sum(),
                }
            })
            .collect())
    }

    fn format(&self) -> &'static str {
        "ensemble"
    }

    fn save(&self) -> Result<String, String> {
        let mut members = Vec::new();
        for m in &self.members {
            members.push((
                m.name.clone(),
                m.model.format().to_string(),
                m.model.save()?,
                m.lookback,
            ));
        }
        serde_json::to_string(&Saved {
            method: self.method.name().to_string(),
            weights: self.weights.clone(),
            blend: self.blend.clone(),
            features: self.features,
            members,
        })
        .map_err(|e| e.to_string())
    }
}
