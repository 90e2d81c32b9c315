//! The models the walk-forward evaluation plugs in, behind one trait.
//!
//! ```text
//! settings.rs     what a model is built from (ModelSettings) and a multi-step head's horizons
//! factory.rs      the model a trial's settings name, or the one an artifact holds
//! ridge.rs        the ridge baseline (and the least squares that blending and stacking use)
//! lgbm.rs         LightGBM (lightgbm3; feature `lightgbm`): early stopping, importance, SHAP
//! lgbm_staged.rs  LightGBM boosted in stages (rounds as the pruning budget)
//! lstm.rs         an LSTM of feature sequences (burn; feature `lstm`, CUDA with `cuda`)
//! ensemble.rs     several models on the same rows: voting, blending, dynamic, stacking
//! ```
//!
//! A model is fitted on one fold's training rows (features already finite) and predicts the
//! label (the forward return) for a test row; scaling is its own business and uses the
//! training rows only.
mod factory;
mod ridge;
mod settings;

pub mod ensemble;
#[cfg(feature = "lightgbm")]
pub mod lgbm;
#[cfg(feature = "lightgbm")]
pub mod lgbm_staged;
#[cfg(feature = "lightgbm")]
mod lgbm_trees;
#[cfg(feature = "lstm")]
pub mod lstm;

pub use factory::{load_model, model_for};
#[cfg(feature = "lightgbm")]
pub use lgbm_trees::TreeModel;

/// Makes a model from its settings: [`model_for`], or an instrumented one in tests.
pub type Factory = fn(&ModelSettings) -> Result<Box<dyn Model>, String>;
pub use ridge::{ridge, Ridge, RidgeFit};
pub use settings::{output_horizons, ModelSettings, Rows, Slot, Training};

/// A model of the label from the features.
pub trait Model {
    /// Fits on training rows `x` (one `Vec` per row) and labels `y`; `valid`, when given, is a
    /// held-back tail of the training window for early stopping (never test rows). A model with
    /// a multi-step head (`outputs` > 1, see [`ModelSettings::horizons`]) gets that many targets
    /// per row in `y`, row after row, the label (the longest horizon) last.
    ///
    /// By default a model trained in stages: `begin`, `advance` until done, then `finish`.
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        valid: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        self.begin(x, y, valid)?;
        while self.advance()? {}
        self.finish();
        Ok(())
    }
    /// Predicts one row (NaN when it cannot). Every model overrides this or `predict_many`.
    fn predict(&self, row: &[f64]) -> f64 {
        self.predict_many(&[row.to_vec()])
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(f64::NAN)
    }
    /// Predicts many rows (models with a per-call cost override this).
    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        Ok(rows.iter().map(|r| self.predict(r)).collect())
    }
    /// Predicts every output of many rows: one value per horizon of a multi-step head (the
    /// label's last), or just the label's.
    fn predict_paths(&self, rows: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, String> {
        Ok(self
            .predict_many(rows)?
            .into_iter()
            .map(|p| vec![p])
            .collect())
    }
    /// The days ahead of each output (a multi-step head); empty for one output, the label.
    fn horizons(&self) -> Vec<u32> {
        Vec::new()
    }
    /// The artifact format (`ridge`, `lightgbm`, `lstm`).
    fn format(&self) -> &'static str;
    /// The fitted model as text, for its artifact.
    fn save(&self) -> Result<String, String>;
    /// Boosting rounds kept, for boosted models.
    fn rounds(&self) -> Option<u32> {
        None
    }
    /// The training curve of the last fit (losses per round or epoch), for models trained in
    /// rounds or epochs.
    fn curve(&self) -> Option<mlt_protocol::lineage::Curve> {
        None
    }
    /// Starts training without finishing it, for models trained a stage (an epoch) at a
    /// time; `advance` then runs one stage, and the model predicts with its best stage so far.
    fn begin(
        &mut self,
        _x: &[Vec<f64>],
        _y: &[f64],
        _valid: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        Err(format!(
            "the {} model is not trained in stages",
            self.format()
        ))
    }
    /// Runs one stage; false when training is over (all stages run, or stopped early).
    fn advance(&mut self) -> Result<bool, String> {
        Err(format!(
            "the {} model is not trained in stages",
            self.format()
        ))
    }
    /// Ends training in stages: drops what only training needed (the model keeps predicting
    /// with its best stage).
    fn finish(&mut self) {}
    /// Per feature (in column order): total gain, split count, mean |SHAP| on `x`. Empty when
    /// the model has no such notion.
    fn importance(&self, _x: &[Vec<f64>]) -> Result<Vec<(f64, f64, f64)>, String> {
        Ok(Vec::new())
    }
}
