//! The model registry: named models, their immutable versions (a trial's model with what
//! produced it and how it scored), stages, promotion gates, and an append-only audit log.
use crate::ids::StudyId;
use crate::lineage::RunRecord;
use crate::records::{Metrics, ModelArtifact, Params};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a version is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Registered, not yet trusted.
    Development,
    /// Being tried (paper trading, shadow serving).
    Staging,
    /// The one in use (at most one per name).
    Production,
    /// Retired.
    Archived,
}

impl Stage {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Development => "development",
            Stage::Staging => "staging",
            Stage::Production => "production",
            Stage::Archived => "archived",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Result<Stage, String> {
        Ok(match s {
            "development" | "dev" => Stage::Development,
            "staging" => Stage::Staging,
            "production" | "prod" => Stage::Production,
            "archived" => Stage::Archived,
            other => {
                return Err(format!(
                    "`{other}` is not a stage (development, staging, production, archived)"
                ))
            }
        })
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule a version must meet to become production.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Gate {
    /// A figure of the version against a bound: `dsr >= 0.95`, `pbo <= 0.3`, `sharpe > 1`,
    /// `holdout.sharpe >= 0.5`.
    Bound {
        /// `dsr`, `psr`, `pbo`, a metric's name, or `holdout.` and a hold-out metric's.
        field: String,
        /// `>=`, `<=`, `>` or `<`.
        op: String,
        /// The bound.
        value: f64,
    },
    /// The version's trial was evaluated on the study's hold-out, and that evaluation
    /// completed.
    Holdout,
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gate::Bound { field, op, value } => write!(f, "{field} {op} {value}"),
            Gate::Holdout => f.write_str("holdout"),
        }
    }
}

impl Gate {
    /// Parses `holdout` or `FIELD OP NUMBER`.
    pub fn parse(s: &str) -> Result<Gate, String> {
        let t = s.trim();
        if t == "holdout" {
            return Ok(Gate::Holdout);
        }
        for op in [">=", "<=", ">", "<"] {
            if let Some((field, value)) = t.split_once(op) {
                let field = field.trim();
                let value: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("gate `{s}`: `{}` is not a number", value.trim()))?;
                if field.is_empty() || !value.is_finite() {
                    return Err(format!("gate `{s}`: expected FIELD {op} NUMBER"));
                }
                return Ok(Gate::Bound {
                    field: field.to_string(),
                    op: op.to_string(),
                    value,
                });
            }
        }
        Err(format!(
            "gate `{s}`: expected `holdout` or FIELD OP NUMBER with OP one of >= <= > < (e.g. 'dsr >= 0.95')"
        ))
    }

    /// The gates a name has until it is given others: a deflated Sharpe ratio of at least
    /// 0.95 (the best trial's Sharpe is significant after the study's number of trials) and a
    /// completed hold-out evaluation.
    pub fn defaults() -> Vec<Gate> {
        vec![
            Gate::Bound {
                field: "dsr".into(),
                op: ">=".into(),
                value: 0.95,
            },
            Gate::Holdout,
        ]
    }

    /// Why `v` fails this gate, or None when it passes.
    pub fn fails(&self, v: &ModelVersion) -> Option<String> {
        match self {
            Gate::Holdout => match &v.holdout {
                Some(h) if h.complete => None,
                Some(_) => Some("holdout: the hold-out evaluation did not complete".into()),
                None => Some("holdout: the trial was not evaluated on a hold-out".into()),
            },
            Gate::Bound { field, op, value } => {
                let Some(x) = v.figure(field) else {
                    return Some(format!("{self}: the version has no `{field}`"));
                };
                let ok = match op.as_str() {
                    ">=" => x >= *value,
                    "<=" => x <= *value,
                    ">" => x > *value,
                    "<" => x < *value,
                    _ => false,
                };
                (!ok).then(|| format!("{self}: it is {x:.4}"))
            }
        }
    }
}

/// The hold-out evaluation of a version's trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HoldoutResult {
    /// The evaluation's own trial number.
    pub trial: u64,
    /// It completed.
    pub complete: bool,
    /// Its values.
    pub values: Option<Vec<f64>>,
    /// Its metrics.
    pub metrics: Metrics,
}

/// How the version's trial was selected: its Sharpe's significance after the study's search.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Probabilistic Sharpe ratio against 0.
    pub psr: Option<f64>,
    /// Deflated Sharpe ratio over the study's trials.
    pub dsr: Option<f64>,
    /// Probability of backtest overfitting of the study.
    pub pbo: Option<f64>,
    /// Trials the deflation counted.
    pub trials: u64,
}

/// One version of a model: immutable once registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The model's name.
    pub name: String,
    /// 1, 2, …
    pub version: u32,
    /// When it was registered (ms since the Unix epoch).
    pub created_ms: u64,
    /// Who registered it.
    pub created_by: String,
    /// The study it came from.
    pub study: String,
    /// Its id.
    pub study_id: StudyId,
    /// The trial.
    pub trial: u64,
    /// The study's spec text, as submitted.
    pub spec_toml: String,
    /// SHA-256 of that text.
    pub spec_sha256: String,
    /// The trial's parameters.
    pub params: Params,
    /// Its objective values.
    pub values: Option<Vec<f64>>,
    /// Its metrics.
    pub metrics: Metrics,
    /// Its hold-out evaluation.
    pub holdout: Option<HoldoutResult>,
    /// Selection statistics.
    pub selection: Selection,
    /// The model (its last fold's): text, features, label, training window.
    pub artifact: ModelArtifact,
    /// Where and how the trial ran.
    pub lineage: Option<RunRecord>,
    /// The same settings trained on the latest window, ending at the data's last bar
    /// (`register --refit`): what one deploys. None when not asked.
    pub refit: Option<ModelArtifact>,
}

impl ModelVersion {
    /// A figure a gate can test: `dsr`, `psr`, `pbo`, `holdout.M` or a metric `M`.
    pub fn figure(&self, field: &str) -> Option<f64> {
        match field {
            "dsr" => self.selection.dsr,
            "psr" => self.selection.psr,
            "pbo" => self.selection.pbo,
            f => match f.strip_prefix("holdout.") {
                Some(m) => self.holdout.as_ref()?.metrics.get(m).copied(),
                None => self.metrics.get(f).copied(),
            },
        }
        .filter(|x| x.is_finite())
    }
}

/// A model name: its gates and each version's stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// The name.
    pub name: String,
    /// Promotion gates.
    pub gates: Vec<Gate>,
    /// Each version's stage (version k at k − 1).
    pub stages: Vec<Stage>,
    /// When the name was first registered.
    pub created_ms: u64,
}

impl ModelEntry {
    /// The production version, if any.
    pub fn production(&self) -> Option<u32> {
        self.stages
            .iter()
            .position(|s| *s == Stage::Production)
            .map(|i| i as u32 + 1)
    }
}

/// One entry of a name's audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The name.
    pub name: String,
    /// Its place in the name's log (0, 1, …).
    pub seq: u64,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// The client that asked.
    pub by: String,
    /// `register`, `stage`, `rollback`, `gates`.
    pub action: String,
    /// The version concerned.
    pub version: Option<u32>,
    /// Its stage before.
    pub from: Option<Stage>,
    /// Its stage after.
    pub to: Option<Stage>,
    /// Why.
    pub reason: Option<String>,
    /// Promoted although gates failed (`--force`).
    pub forced: bool,
    /// The gates that failed (for a forced promotion), or the gates set.
    pub detail: Vec<String>,
}

/// A registry request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RegistryRequest {
    /// Register a version (its number is given by the registry); set the name's gates when
    /// given.
    Register(Box<ModelVersion>, Option<Vec<Gate>>),
    /// Move version `version` of `name` to `to`.
    Stage {
        /// Name.
        name: String,
        /// Version.
        version: u32,
        /// Stage.
        to: Stage,
        /// Why.
        reason: Option<String>,
        /// Promote to production although gates fail (needs a reason).
        force: bool,
    },
    /// Make the previous production version production again.
    Rollback {
        /// Name.
        name: String,
        /// Why.
        reason: Option<String>,
    },
    /// Replace a name's gates.
    Gates {
        /// Name.
        name: String,
        /// Gates.
        gates: Vec<Gate>,
    },
    /// Every name.
    List,
    /// A version (the production one, else the latest, when None).
    Show {
        /// Name.
        name: String,
        /// Version.
        version: Option<u32>,
        /// Only the production version.
        production: bool,
    },
    /// A name's audit log.
    History(String),
}

/// A registry reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RegistryReply {
    /// A name after a change (register, stage, rollback, gates), with the version concerned.
    Entry(ModelEntry, Option<u32>),
    /// Every name.
    List(Vec<ModelEntry>),
    /// One version with its name's entry.
    Version(Box<ModelVersion>, ModelEntry),
    /// A name's audit log, oldest first.
    History(Vec<AuditEntry>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_parse_and_say_why_they_fail() {
        assert_eq!(Gate::parse("holdout").unwrap(), Gate::Holdout);
        let g = Gate::parse(" dsr>=0.95 ").unwrap();
        assert_eq!(g.to_string(), "dsr >= 0.95");
        assert!(Gate::parse("dsr = 1")
            .unwrap_err()
            .contains("FIELD OP NUMBER"));
        assert!(Gate::parse("dsr >= high")
            .unwrap_err()
            .contains("not a number"));
        assert!(Gate::parse(">= 1").is_err());
        assert_eq!(Stage::parse("prod").unwrap(), Stage::Production);
        assert!(Stage::parse("live").is_err());
    }
}
