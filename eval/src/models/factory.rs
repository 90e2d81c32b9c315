//! The model a trial's settings name, or the one an artifact holds. LightGBM and the LSTM are
//! there only when the crate is built with their features (`lightgbm`, `lstm`).
use super::{ensemble::Ensemble, Model, ModelSettings, Ridge, RidgeFit};
use mlt_protocol::spec::ModelKind;

/// The model the settings name.
pub fn model_for(s: &ModelSettings) -> Result<Box<dyn Model>, String> {
    match s.name {
        ModelKind::Ridge => Ok(Box::new(Ridge::new(s.alpha))),
        #[cfg(feature = "lightgbm")]
        ModelKind::Lightgbm if s.training.staged => {
            Ok(Box::new(super::lgbm_staged::LgbmStaged::new(s.clone())))
        }
        #[cfg(feature = "lightgbm")]
        ModelKind::Lightgbm => Ok(Box::new(super::lgbm::Lgbm::new(s.clone()))),
        #[cfg(feature = "lstm")]
        ModelKind::Lstm => Ok(Box::new(super::lstm::Lstm::new(s.clone()))),
        ModelKind::Ensemble => Ok(Box::new(Ensemble::new(s.clone())?)),
        #[cfg(not(feature = "lightgbm"))]
        ModelKind::Lightgbm => Err(not_built("lightgbm")),
        #[cfg(not(feature = "lstm"))]
        ModelKind::Lstm => Err(not_built("lstm")),
    }
}

/// A model from its artifact.
pub fn load_model(format: &str, text: &str) -> Result<Box<dyn Model>, String> {
    match format {
        "ridge" => {
            let fit: RidgeFit =
                serde_json::from_str(text).map_err(|e| format!("ridge model: {e}"))?;
            Ok(Box::new(Ridge::fitted(fit)))
        }
        #[cfg(feature = "lightgbm")]
        "lightgbm" => Ok(Box::new(super::lgbm::Lgbm::load(text)?)),
        #[cfg(feature = "lightgbm")]
        "lightgbm-staged" => Ok(Box::new(super::lgbm_staged::LgbmStaged::load(text)?)),
        #[cfg(feature = "lstm")]
        "lstm" => Ok(Box::new(super::lstm::Lstm::load(text)?)),
        "ensemble" => Ok(Box::new(Ensemble::load(text)?)),
        #[cfg(not(feature = "lightgbm"))]
        "lightgbm" | "lightgbm-staged" => Err(not_built("lightgbm")),
        #[cfg(not(feature = "lstm"))]
        "lstm" => Err(not_built("lstm")),
        other => Err(format!(
            "unknown model format `{other}` (known: ridge, lightgbm, lstm, ensemble)"
        )),
    }
}

/// The error for a model this build leaves out.
#[cfg(not(all(feature = "lightgbm", feature = "lstm")))]
fn not_built(feature: &str) -> String {
    format!(
        "this build of mlt-eval has no `{feature}` model (built without its `{feature}` feature)"
    )
}
