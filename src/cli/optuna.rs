//! A study as Optuna's JournalStorage file (`export --format optuna-journal`): the log that
//! `optuna.load_study(storage=JournalStorage(JournalFileBackend(FILE)))` replays and
//! optuna-dashboard serves.
//!
//! The file is one JSON object per line, each an operation of Optuna's journal
//! (`optuna/storages/journal/_storage.py`, `JournalOperation`): the study is created
//! (`CREATE_STUDY`, op 0), its attributes set (ops 2 and 3), then every trial is created whole
//! in one `CREATE_TRIAL` (op 4) with a template — state, values, parameters in Optuna's
//! internal representation with their distributions, intermediate values, attributes and
//! times — as Optuna's own `Study.add_trial` writes it. Ids in a journal are positions: the
//! study is the file's first, so a journal holds exactly one exported study.
//!
//! What maps where:
//! * states: waiting → WAITING, running → RUNNING, complete → COMPLETE, pruned → PRUNED,
//!   failed and lost → FAIL (`user_attrs["mlt.state"]` keeps which);
//! * a distribution per parameter from the spec: float → `FloatDistribution`, int →
//!   `IntDistribution`, categorical → `CategoricalDistribution` (the value's index
//!   internally), a fixed value → a categorical of one choice;
//! * the first objective's intermediate value per step (Optuna has one per step);
//! * metrics → `user_attrs` (non-finite ones as null), the failure's or prune's message →
//!   `system_attrs["fail_reason"]`, constraint values → `system_attrs["constraints"]` (what
//!   Optuna's constrained samplers read), the objectives' names →
//!   `study.system_attrs["study:metric_names"]`;
//! * hold-out evaluations are not trials of the search: their values and metrics go to the
//!   evaluated trial's `user_attrs` as `holdout.value`, `holdout.<metric>`.
use mlt_protocol::catalog::Annotations;
use mlt_protocol::records::{ParamValue, TrialOrigin, TrialRecord, TrialState};
use mlt_protocol::spec::{Direction, Distribution, Spec};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Optuna's `JournalOperation` codes.
const CREATE_STUDY: u8 = 0;
const SET_STUDY_USER_ATTR: u8 = 2;
const SET_STUDY_SYSTEM_ATTR: u8 = 3;
const CREATE_TRIAL: u8 = 4;

/// The journal's `worker_id` (any string; Optuna compares it with its own to tell its writes).
const WORKER: &str = "mlt-cluster-export";

/// Optuna's `TrialState` as its integer.
fn state_code(s: TrialState) -> u8 {
    match s {
        TrialState::Running => 0,
        TrialState::Complete => 1,
        TrialState::Pruned => 2,
        TrialState::Failed | TrialState::Lost => 3,
        TrialState::Waiting => 4,
    }
}

/// Optuna's `StudyDirection` as its integer.
fn direction_code(d: Direction) -> u8 {
    match d {
        Direction::Minimize => 1,
        Direction::Maximize => 2,
    }
}

fn choice(v: &ParamValue) -> Value {
    match v {
        ParamValue::Bool(b) => json!(b),
        ParamValue::Int(i) => json!(i),
        ParamValue::Float(x) => finite(*x),
        ParamValue::Str(s) => json!(s),
    }
}

/// A float as JSON; Optuna's JSON would write NaN, serde's cannot: null.
fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// `distribution_to_json`: a JSON *string* holding the distribution's class and attributes.
fn distribution(d: &Distribution) -> String {
    let v = match d {
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => json!({"name": "FloatDistribution",
                    "attributes": {"low": low, "high": high, "log": log, "step": step}}),
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => json!({"name": "IntDistribution",
                    "attributes": {"low": low, "high": high, "log": log, "step": step}}),
        Distribution::Categorical { choices } => json!({"name": "CategoricalDistribution",
                    "attributes": {"choices": choices.iter().map(choice).collect::<Vec<_>>()}}),
        Distribution::Fixed { value } => json!({"name": "CategoricalDistribution",
                    "attributes": {"choices": [choice(value)]}}),
    };
    v.to_string()
}

/// A parameter's value in Optuna's internal representation (a float, or a choice's index).
fn internal(d: &Distribution, v: &ParamValue) -> Option<Value> {
    match (d, v) {
        (Distribution::Float { .. }, v) => v.as_f64().map(finite),
        (Distribution::Int { .. }, ParamValue::Int(i)) => Some(json!(*i as f64)),
        (Distribution::Categorical { choices }, v) => {
            choices.iter().position(|c| c == v).map(|i| json!(i))
        }
        (Distribution::Fixed { value }, v) => (value == v).then(|| json!(0)),
        _ => None,
    }
}

/// Optuna's time format: ISO 8601, microseconds, UTC.
fn iso(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let rem = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.{:06}+00:00",
        mlt_eval::data::format_day(secs.div_euclid(86_400)),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        (ms % 1000) * 1000
    )
}

fn op(code: u8, fields: Value) -> String {
    let mut m = Map::new();
    m.insert("op_code".into(), json!(code));
    m.insert("worker_id".into(), json!(WORKER));
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    Value::Object(m).to_string()
}

/// One trial's `CREATE_TRIAL` fields.
fn trial_log(
    spec: &Spec,
    t: &TrialRecord,
    holdout: Option<&TrialRecord>,
    notes: &Annotations,
) -> Value {
    let mut distributions = Map::new();
    let mut params = Map::new();
    for p in &spec.space.params {
        let Some(v) = t.params.get(&p.name) else {
            continue;
        };
        if let Some(x) = internal(&p.dist, v) {
            distributions.insert(p.name.clone(), json!(distribution(&p.dist)));
            params.insert(p.name.clone(), x);
        }
    }
    let complete = t.state == TrialState::Complete;
    let values = t.values.as_ref().filter(|_| complete);
    let (value, values) = match values {
        Some(v) if v.len() > 1 => (
            Value::Null,
            json!(v.iter().map(|x| finite(*x)).collect::<Vec<_>>()),
        ),
        Some(v) => (v.first().map_or(Value::Null, |x| finite(*x)), Value::Null),
        None => (Value::Null, Value::Null),
    };
    let intermediate: Map<String, Value> = t
        .intermediate
        .iter()
        .filter_map(|(step, v)| {
            let x = *v.first()?;
            x.is_finite().then(|| (step.to_string(), json!(x)))
        })
        .collect();
    let mut user = Map::new();
    for (k, v) in &t.metrics {
        user.insert(k.clone(), finite(*v));
    }
    user.insert("mlt.state".into(), json!(t.state.as_str()));
    user.insert("mlt.attempt".into(), json!(t.attempt));
    user.insert(
        "mlt.origin".into(),
        json!(super::output::origin_text(&t.origin)),
    );
    if let Some(n) = t.node {
        user.insert("mlt.node".into(), json!(n.0.to_string()));
    }
    if let Some(g) = t.generation {
        user.insert("mlt.generation".into(), json!(g));
    }
    for (k, v) in notes.tags_of(Some(t.number)) {
        user.insert(format!("tag.{k}"), json!(v));
    }
    let texts: Vec<&str> = notes
        .notes_of(Some(t.number))
        .map(|n| n.text.as_str())
        .collect();
    if !texts.is_empty() {
        user.insert("notes".into(), json!(texts));
    }
    if let Some(h) = holdout {
        user.insert("holdout.state".into(), json!(h.state.as_str()));
        if let Some(v) = h.values.as_ref().and_then(|v| v.first()) {
            user.insert("holdout.value".into(), finite(*v));
        }
        for (k, v) in &h.metrics {
            user.insert(format!("holdout.{k}"), finite(*v));
        }
    }
    let mut system = Map::new();
    if let Some(m) = &t.message {
        system.insert("fail_reason".into(), json!(m));
    }
    if let Some(c) = &t.constraints {
        system.insert(
            "constraints".into(),
            json!(c.iter().map(|x| finite(*x)).collect::<Vec<_>>()),
        );
    }
    let mut log = json!({
        "study_id": 0,
        "state": state_code(t.state),
        "value": value,
        "values": values,
        "datetime_start": t.started_ms.map(iso),
        "distributions": distributions,
        "params": params,
        "user_attrs": user,
        "system_attrs": system,
        "intermediate_values": intermediate,
    });
    // Optuna reads `datetime_complete` whenever the key is there: only for ended trials.
    if let (Some(f), true) = (t.finished_ms, t.state.is_finished()) {
        log["datetime_complete"] = json!(iso(f));
    }
    log
}

/// The journal of study `name` (its `spec`, `trials`, tags and notes), one line per operation.
pub fn journal(name: &str, spec: &Spec, trials: &[TrialRecord], notes: &Annotations) -> String {
    let mut out = Vec::new();
    let directions: Vec<u8> = spec
        .study
        .directions
        .iter()
        .map(|d| direction_code(*d))
        .collect();
    out.push(op(
        CREATE_STUDY,
        json!({"study_name": name, "directions": directions}),
    ));
    out.push(op(
        SET_STUDY_SYSTEM_ATTR,
        json!({"study_id": 0, "system_attr": {"study:metric_names": spec.study.objectives}}),
    ));
    out.push(op(
        SET_STUDY_USER_ATTR,
        json!({"study_id": 0, "user_attr": {"mlt.exported_by": format!("mlt-cluster {}", env!("CARGO_PKG_VERSION"))}}),
    ));
    // Optuna's journal sets one attribute per operation.
    for (k, v) in notes.tags_of(None) {
        out.push(op(
            SET_STUDY_USER_ATTR,
            json!({"study_id": 0, "user_attr": {format!("tag.{k}"): v}}),
        ));
    }
    let texts: Vec<&str> = notes.notes_of(None).map(|n| n.text.as_str()).collect();
    if !texts.is_empty() {
        out.push(op(
            SET_STUDY_USER_ATTR,
            json!({"study_id": 0, "user_attr": {"notes": texts}}),
        ));
    }
    // The last hold-out evaluation of each trial, by the trial's number.
    let holdouts: BTreeMap<u64, &TrialRecord> = trials
        .iter()
        .filter_map(|t| match t.origin {
            TrialOrigin::Holdout(n) => Some((n, t)),
            _ => None,
        })
        .collect();
    for t in trials {
        if matches!(t.origin, TrialOrigin::Holdout(_)) {
            continue;
        }
        let log = trial_log(spec, t, holdouts.get(&t.number.0).copied(), notes);
        out.push(op(CREATE_TRIAL, log));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_optunas_iso_format() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000000+00:00");
        // 2026-12-07 19:54:25.123 UTC.
        assert_eq!(iso(1_796_673_265_123), "2026-12-07T19:54:25.123000+00:00");
        // A leap day.
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000000+00:00");
    }

    #[test]
    fn parameters_take_optunas_internal_representation() {
        let cat = Distribution::Categorical {
            choices: vec![ParamValue::Str("a".into()), ParamValue::Str("b".into())],
        };
        assert_eq!(internal(&cat, &ParamValue::Str("b".into())), Some(json!(1)));
        assert_eq!(internal(&cat, &ParamValue::Str("z".into())), None);
        let int = Distribution::Int {
            low: 1,
            high: 9,
            log: false,
            step: 2,
        };
        assert_eq!(internal(&int, &ParamValue::Int(5)), Some(json!(5.0)));
        let d: Value = serde_json::from_str(&distribution(&int)).unwrap();
        assert_eq!(d["name"], "IntDistribution");
        assert_eq!(d["attributes"]["step"], 2);
    }
}
