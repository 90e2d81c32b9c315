//! A study pushed to an MLflow tracking server through its REST API (`export --format mlflow
//! --tracking-uri URI`): one parent run for the study, a child run per trial, and the study's
//! registered versions in MLflow's model registry. docs/tracking.md has the mapping.
use anyhow::{bail, Context};
use mlt_protocol::catalog::Annotations;
use mlt_protocol::lineage::RunRecord;
use mlt_protocol::models::{ModelEntry, ModelVersion, Stage};
use mlt_protocol::records::{ModelArtifact, TrialOrigin, TrialRecord, TrialState};
use mlt_protocol::spec::Spec;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// MLflow's limits on one `runs/log-batch` (docs: "REST API", `LogBatch`).
const MAX_METRICS: usize = 1000;
const MAX_PARAMS: usize = 100;
const MAX_TAGS: usize = 100;
/// Longest parameter value MLflow keeps.
const MAX_PARAM_VALUE: usize = 6000;

/// Everything exported about one study.
pub struct Study<'a> {
    pub name: &'a str,
    pub spec: &'a Spec,
    pub spec_toml: &'a str,
    pub trials: &'a [TrialRecord],
    pub notes: &'a Annotations,
    /// Lineage by trial number.
    pub runs: &'a BTreeMap<u64, RunRecord>,
    /// Models by trial number (complete walk-forward trials).
    pub models: &'a BTreeMap<u64, ModelArtifact>,
    /// This study's registered versions with their names' entries.
    pub versions: &'a [(ModelVersion, ModelEntry)],
}

/// What was exported.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub experiment_id: String,
    pub parent_run_id: String,
    pub runs: usize,
    pub models_uploaded: usize,
    pub model_versions: Vec<(String, String)>,
}

struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(uri: &str) -> anyhow::Result<Client> {
        let base = uri.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--tracking-uri {uri}: an MLflow tracking server's http:// or https:// address");
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client { base, agent })
    }

    /// The answer's JSON, or MLflow's error as a sentence. `Ok(None)`: not found.
    fn answer(
        what: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Option<Value>> {
        let mut r = r.with_context(|| format!("MLflow {what}"))?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 404 || v["error_code"] == "RESOURCE_DOES_NOT_EXIST" {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            let msg = v["message"].as_str().unwrap_or(text.trim());
            bail!(
                "MLflow {what}: HTTP {status} {}: {msg}",
                v["error_code"].as_str().unwrap_or("")
            );
        }
        Ok(Some(v))
    }

    fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        Self::answer(path, self.agent.post(&url).send_json(&body))?
            .with_context(|| format!("MLflow {path}: not found"))
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Option<Value>> {
        let mut req = self
            .agent
            .get(format!("{}/api/2.0/mlflow/{path}", self.base));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        Self::answer(path, req.call())
    }

    /// Uploads a file into a run's artifacts through the server's artifact proxy; false when
    /// the run's artifacts are not proxied (`mlflow server --no-serve-artifacts`).
    fn put_artifact(&self, artifact_uri: &str, path: &str, bytes: &[u8]) -> anyhow::Result<bool> {
        let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
            return Ok(false);
        };
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}/{path}",
            self.base,
            rest.trim_start_matches('/')
        );
        Self::answer("artifact upload", self.agent.put(&url).send(bytes))?;
        Ok(true)
    }

    /// Logs metrics, parameters and tags in as many batches as MLflow's limits need.
    fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Value>,
        params: Vec<Value>,
        tags: Vec<Value>,
    ) -> anyhow::Result<()> {
        for p in params.chunks(MAX_PARAMS) {
            self.post("runs/log-batch", json!({"run_id": run_id, "params": p}))?;
        }
        for t in tags.chunks(MAX_TAGS) {
            self.post("runs/log-batch", json!({"run_id": run_id, "tags": t}))?;
        }
        for m in metrics.chunks(MAX_METRICS) {
            self.post("runs/log-batch", json!({"run_id": run_id, "metrics": m}))?;
        }
        Ok(())
    }
}

fn tag(k: &str, v: impl ToString) -> Value {
    json!({"key": k, "value": v.to_string()})
}

fn param(k: &str, v: impl ToString) -> Value {
    let mut v = v.to_string();
    if v.len() > MAX_PARAM_VALUE {
        v.truncate(v.floor_char_boundary(MAX_PARAM_VALUE));
    }
    json!({"key": k, "value": v})
}

/// A metric, or None for a value MLflow cannot hold (NaN, ±inf).
fn metric(k: &str, v: f64, step: u64, ts: u64) -> Option<Value> {
    v.is_finite()
        .then(|| json!({"key": k, "value": v, "timestamp": ts, "step": step}))
}

/// MLflow's metric and tag keys: letters, digits, `_ - . / space`.
fn key(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || "_-./ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn status(s: TrialState) -> &'static str {
    match s {
        TrialState::Complete => "FINISHED",
        TrialState::Pruned => "KILLED",
        TrialState::Failed | TrialState::Lost => "FAILED",
        TrialState::Waiting | TrialState::Running => "RUNNING",
    }
}

fn notes_text(a: &Annotations, trial: Option<mlt_protocol::ids::TrialId>) -> Option<String> {
    let n: Vec<String> = a
        .notes_of(trial)
        .map(|n| format!("{} ({}, {})", n.text, n.by, super::output::utc(n.at_ms)))
        .collect();
    (!n.is_empty()).then(|| n.join("\n\n"))
}

fn model_file(a: &ModelArtifact) -> &'static str {
    match a.format.as_str() {
        "lightgbm" | "lightgbm-staged" => "model.txt",
        _ => "model.json",
    }
}

/// The experiment's id, created when there is none of that name.
fn experiment(c: &Client, name: &str) -> anyhow::Result<String> {
    if let Some(v) = c.get("experiments/get-by-name", &[("experiment_name", name)])? {
        return Ok(v["experiment"]["experiment_id"]
            .as_str()
            .context("MLflow experiments/get-by-name: no experiment_id")?
            .to_string());
    }
    let v = c.post("experiments/create", json!({"name": name}))?;
    Ok(v["experiment_id"]
        .as_str()
        .context("MLflow experiments/create: no experiment_id")?
        .to_string())
}

/// One trial's child run: its parameters, metrics, step metrics, curves, tags, lineage and
/// model. Returns its run id and artifact URI.
fn trial_run(
    c: &Client,
    s: &Study,
    exp: &str,
    parent: &str,
    t: &TrialRecord,
    uploaded: &mut usize,
) -> anyhow::Result<(String, String)> {
    let n = t.number.0;
    let name = match t.origin {
        TrialOrigin::Holdout(src) => format!("hold-out of trial {src}"),
        _ => format!("trial {n}"),
    };
    let start = t.started_ms.unwrap_or(t.created_ms);
    let end = t.finished_ms.unwrap_or(start);
    let v = c.post(
        "runs/create",
        json!({"experiment_id": exp, "run_name": name, "start_time": start,
               "tags": [tag("mlflow.parentRunId", parent)]}),
    )?;
    let run_id = v["run"]["info"]["run_id"]
        .as_str()
        .context("MLflow runs/create: no run_id")?
        .to_string();
    let artifact_uri = v["run"]["info"]["artifact_uri"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let objectives = &s.spec.study.objectives;
    let mut metrics = Vec::new();
    for (k, x) in &t.metrics {
        metrics.extend(metric(&key(k), *x, 0, end));
    }
    if t.state == TrialState::Complete {
        for (i, x) in t.values.iter().flatten().enumerate() {
            let k = objectives
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("value_{i}"));
            if !t.metrics.contains_key(&k) {
                metrics.extend(metric(&key(&k), *x, 0, end));
            }
        }
    }
    for (step, vals) in &t.intermediate {
        for (i, x) in vals.iter().enumerate() {
            let k = objectives
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("value_{i}"));
            metrics.extend(metric(&format!("intermediate/{}", key(&k)), *x, *step, end));
        }
    }
    let mut tags = vec![
        tag("mlt.trial", n),
        tag("mlt.state", t.state.as_str()),
        tag("mlt.attempt", t.attempt),
    ];
    if let TrialOrigin::Holdout(src) = t.origin {
        tags.push(tag("mlt.holdout_of", src));
    }
    if let Some(m) = &t.message {
        tags.push(tag("mlt.message", m));
    }
    for (k, x) in s.notes.tags_of(Some(t.number)) {
        tags.push(tag(&key(k), x));
    }
    if let Some(text) = notes_text(s.notes, Some(t.number)) {
        tags.push(tag("mlflow.note.content", text));
    }
    if let Some(r) = s.runs.get(&n) {
        tags.push(tag("mlt.node", &r.node));
        tags.push(tag("mlt.cpu", &r.cpu));
        tags.push(tag("mlt.threads", r.threads));
        tags.push(tag("mlt.version", &r.version));
        tags.push(tag("mlt.commit", &r.commit));
        if let Some(seed) = r.model_seed {
            tags.push(tag("mlt.model_seed", seed));
        }
        for d in &r.datasets {
            tags.push(tag(&format!("mlt.data.{}", key(&d.name)), &d.sha256));
        }
        metrics.extend(metric("wall_seconds", r.wall_s, 0, end));
        for f in &r.folds {
            metrics.extend(metric(
                "fold/wall_seconds",
                f.wall_s,
                u64::from(f.fold),
                end,
            ));
            if let Some(cv) = &f.curve {
                for (which, ys) in [("train", &cv.train), ("valid", &cv.valid)] {
                    for (i, y) in ys.iter().enumerate() {
                        let step = (i as u64 + 1) * u64::from(cv.every);
                        let k = format!("fold{}/{which}_{}", f.fold, key(&cv.metric));
                        metrics.extend(metric(&k, *y, step, end));
                    }
                }
            }
        }
        if let Some(d) = mlt_eval::curves::diagnose_trial(&r.folds) {
            tags.push(tag("mlt.overfitting", d.overfitting));
            tags.push(tag("mlt.converged", d.converged));
        }
    }
    let params = t.params.iter().map(|(k, x)| param(k, x)).collect();
    c.log_batch(&run_id, metrics, params, tags)?;
    if let Some(a) = s.models.get(&n) {
        let file = format!("model/{}", model_file(a));
        if c.put_artifact(&artifact_uri, &file, a.model.as_bytes())? {
            let meta = json!({"format": a.format, "features": a.features, "classify": a.classify,
                "horizon": a.horizon, "adjusted": a.adjusted, "trained": a.trained,
                "rounds": a.rounds, "lookback": a.lookback, "importance": a.importance});
            c.put_artifact(
                &artifact_uri,
                "model/mlt-model.json",
                meta.to_string().as_bytes(),
            )?;
            *uploaded += 1;
        }
    }
    c.post(
        "runs/update",
        json!({"run_id": run_id, "status": status(t.state), "end_time": end}),
    )?;
    Ok((run_id, artifact_uri))
}

/// Pushes `s` to the tracking server at `uri`, into `experiment` (the study's name by default).
/// Refused when the experiment already holds this study's export.
pub fn export(uri: &str, experiment_name: Option<&str>, s: &Study) -> anyhow::Result<Report> {
    let c = Client::new(uri)?;
    let exp_name = experiment_name.unwrap_or(s.name);
    let exp = experiment(&c, exp_name)?;
    let found = c.post(
        "runs/search",
        json!({"experiment_ids": [exp],
               "filter": format!("tags.`mlt.study` = '{}' and tags.`mlt.kind` = 'study'", s.name.replace('\'', "")),
               "max_results": 1}),
    )?;
    if let Some(r) = found["runs"].as_array().and_then(|r| r.first()) {
        bail!(
            "experiment `{exp_name}` already holds study `{}` (run {}): delete that run in MLflow, or export to another --experiment",
            s.name,
            r["info"]["run_id"].as_str().unwrap_or("?")
        );
    }
    let start = s.trials.iter().map(|t| t.created_ms).min().unwrap_or(0);
    let end = s
        .trials
        .iter()
        .filter_map(|t| t.finished_ms)
        .max()
        .unwrap_or(start);
    let v = c.post(
        "runs/create",
        json!({"experiment_id": exp, "run_name": s.name, "start_time": start}),
    )?;
    let parent = v["run"]["info"]["run_id"]
        .as_str()
        .context("MLflow runs/create: no run_id")?
        .to_string();
    let parent_uri = v["run"]["info"]["artifact_uri"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let st = &s.spec.study;
    let mut params = vec![
        param("sampler", s.spec.sampler.kind()),
        param("seed", st.seed),
        param("n_trials", st.n_trials),
        param("objectives", st.objectives.join(",")),
        param(
            "directions",
            st.directions
                .iter()
                .map(|d| format!("{d:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ];
    params.push(param(
        "spec_sha256",
        super::output::spec_sha256(s.spec_toml),
    ));
    let mut tags = vec![tag("mlt.study", s.name), tag("mlt.kind", "study")];
    for (k, x) in s.notes.tags_of(None) {
        tags.push(tag(&key(k), x));
    }
    if let Some(text) = notes_text(s.notes, None) {
        tags.push(tag("mlflow.note.content", text));
    }
    let mut counts: BTreeMap<&str, f64> = BTreeMap::new();
    for t in s.trials {
        *counts.entry(t.state.as_str()).or_default() += 1.0;
    }
    let mut metrics: Vec<Value> = counts
        .iter()
        .filter_map(|(k, n)| metric(&format!("trials_{k}"), *n, 0, end))
        .collect();
    // The best value so far after each trial (single objective): the study's convergence.
    if let (Some(dir), 1) = (st.directions.first(), st.directions.len()) {
        let mut best: Option<f64> = None;
        for t in s.trials.iter().filter(|t| {
            t.state == TrialState::Complete && !matches!(t.origin, TrialOrigin::Holdout(_))
        }) {
            if let Some(v) = t.values.as_ref().and_then(|v| v.first()) {
                if best.is_none_or(|b| dir.better(*v, b)) {
                    best = Some(*v);
                }
                let k = format!("best_{}", key(st.objectives.first().map_or("value", |s| s)));
                metrics.extend(metric(&k, best.unwrap_or(*v), t.number.0, end));
            }
        }
    }
    c.log_batch(&parent, metrics, params, tags)?;
    c.put_artifact(&parent_uri, "spec.toml", s.spec_toml.as_bytes())?;
    let mut uploaded = 0;
    let mut children: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let total = s.trials.len();
    for (i, t) in s.trials.iter().enumerate() {
        children.insert(
            t.number.0,
            trial_run(&c, s, &exp, &parent, t, &mut uploaded)?,
        );
        if (i + 1) % 100 == 0 || i + 1 == total {
            eprintln!("mlflow: {} of {total} trials exported", i + 1);
        }
    }
    c.post(
        "runs/update",
        json!({"run_id": parent, "status": "FINISHED", "end_time": end}),
    )?;
    // Registered versions: MLflow numbers its own; ours is the `mlt.version` tag, the stage an
    // alias (production, staging) and the `mlt.stage` tag.
    let mut model_versions = Vec::new();
    for (v, e) in s.versions {
        let Some((run_id, uri)) = children.get(&v.trial) else {
            continue;
        };
        if c.get("registered-models/get", &[("name", &v.name)])?
            .is_none()
        {
            c.post("registered-models/create", json!({"name": v.name}))?;
        }
        let stage = e.stages[v.version as usize - 1];
        let f = |x: Option<f64>| x.map_or("".into(), |x| format!("{x}"));
        let mv = c.post(
            "model-versions/create",
            json!({"name": v.name, "source": format!("{uri}/model"), "run_id": run_id,
                   "description": format!("{} trial {} (mlt-cluster version {})", v.study, v.trial, v.version),
                   "tags": [tag("mlt.version", v.version), tag("mlt.stage", stage),
                            tag("mlt.study", &v.study), tag("mlt.trial", v.trial),
                            tag("dsr", f(v.selection.dsr)), tag("psr", f(v.selection.psr)),
                            tag("pbo", f(v.selection.pbo))]}),
        )?;
        let number = mv["model_version"]["version"]
            .as_str()
            .context("MLflow model-versions/create: no version")?
            .to_string();
        if matches!(stage, Stage::Production | Stage::Staging) {
            c.post(
                "registered-models/alias",
                json!({"name": v.name, "alias": stage.as_str(), "version": number}),
            )?;
        }
        model_versions.push((v.name.clone(), number));
    }
    Ok(Report {
        experiment_id: exp,
        parent_run_id: parent,
        runs: children.len(),
        models_uploaded: uploaded,
        model_versions,
    })
}
