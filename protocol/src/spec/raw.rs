//! The spec as written: raw structs that refuse unknown keys and keep each value's span.
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    pub study: S<RawStudy>,
    pub sampler: Option<S<RawSampler>>,
    pub pruner: Option<S<RawPruner>>,
    pub resources: Option<S<RawResources>>,
    pub space: Option<S<BTreeMap<String, S<RawParam>>>>,
    #[serde(default)]
    pub constraint: Vec<S<toml::Table>>,
    pub objective: S<RawObjective>,
}

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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSampler {
    pub kind: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPruner {
    pub kind: S<String>,
    pub n_startup_trials: Option<S<i64>>,
    pub n_warmup_steps: Option<S<i64>>,
    pub interval_steps: Option<S<i64>>,
    pub n_min_trials: Option<S<i64>>,
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
}
