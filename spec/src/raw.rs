//! The spec as written: raw structs that refuse unknown keys and keep each value's span.
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub study: S<RawStudy>,
    pub sampler: Option<S<RawTable>>,
    pub pruner: Option<S<RawTable>>,
    pub resources: Option<S<RawResources>>,
    pub space: Option<S<BTreeMap<String, S<RawParam>>>>,
    #[serde(default)]
    pub constraint: Vec<S<RawTable>>,
    pub objective: S<RawObjective>,
    #[serde(default)]
    pub enqueue: Vec<S<RawTable>>,
}

/// A table whose keys depend on its `kind`: checked key by key in validate.rs.
pub type RawTable = BTreeMap<String, S<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStudy {
    pub name: S<String>,
    pub directions: Option<S<Vec<S<String>>>>,
    pub objectives: Option<S<Vec<S<String>>>>,
    pub n_trials: S<i64>,
    pub max_concurrent: Option<S<i64>>,
    pub seed: Option<S<i64>>,
    pub max_attempts: Option<S<i64>>,
    pub warm_start: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    pub cpus: Option<S<i64>>,
    pub gpus: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParam {
    #[serde(rename = "type")]
    pub ty: S<String>,
    pub low: Option<S<toml::Value>>,
    pub high: Option<S<toml::Value>>,
    pub step: Option<S<toml::Value>>,
    pub log: Option<S<bool>>,
    pub choices: Option<S<Vec<toml::Value>>>,
    pub value: Option<S<toml::Value>>,
    pub when: Option<S<BTreeMap<String, toml::Value>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObjective {
    pub kind: S<String>,
    pub function: Option<S<String>>,
    pub steps: Option<S<i64>>,
    pub step_seconds: Option<S<f64>>,
    pub noise: Option<S<f64>>,
    pub command: Option<S<Vec<String>>>,
    pub env: Option<S<BTreeMap<String, String>>>,
    pub timeout_seconds: Option<S<f64>>,
    // walk_forward
    pub data: Option<S<toml::Value>>,
    pub synthetic: Option<S<RawTable>>,
    pub adjusted: Option<S<bool>>,
    pub features: Option<S<BTreeMap<String, S<String>>>>,
    pub horizon: Option<S<i64>>,
    pub train: Option<S<i64>>,
    pub test: Option<S<i64>>,
    pub step: Option<S<i64>>,
    pub expanding: Option<S<bool>>,
    pub model: Option<S<String>>,
    pub alpha: Option<S<toml::Value>>,
    pub sizing: Option<S<String>>,
    pub threshold: Option<S<toml::Value>>,
    pub long_only: Option<S<bool>>,
    pub cost_bps: Option<S<toml::Value>>,
    pub slippage_bps: Option<S<toml::Value>>,
    pub report: Option<S<String>>,
    pub label: Option<S<String>>,
    pub holdout: Option<S<i64>>,
    pub holdout_top: Option<S<i64>>,
    pub splits: Option<S<String>>,
    pub groups: Option<S<i64>>,
    pub test_groups: Option<S<i64>>,
    pub embargo: Option<S<i64>>,
    pub windows: Option<S<i64>>,
    pub split_seed: Option<S<i64>>,
    pub lightgbm: Option<S<RawTable>>,
    pub lstm: Option<S<RawTable>>,
    pub ensemble: Option<S<RawTable>>,
    pub budget: Option<S<String>>,
    pub validation: Option<S<toml::Value>>,
    pub early_stopping_rounds: Option<S<i64>>,
    pub categorical: Option<S<Vec<S<String>>>>,
}
