//! Warm starts: the trials of an earlier study that seed a new one (`study.warm_start`).
use mlt_protocol::ids::{StudyId, TrialId};
use mlt_protocol::records::{TrialOrigin, TrialRecord, TrialState};
use mlt_protocol::spec::Spec;

/// The trials of study `source` that seed a new study `study`: the complete ones whose values
/// match its objectives and whose parameters are a valid point of its space (constraints are
/// re-judged on their metrics), renumbered from 0, marked as copied.
pub fn warm_start_trials(
    spec: &Spec,
    source: &str,
    trials: Vec<TrialRecord>,
    study: StudyId,
) -> Vec<TrialRecord> {
    let fits_space = |t: &TrialRecord| {
        let mut decided = mlt_protocol::records::Params::new();
        for p in &spec.space.params {
            if !mlt_protocol::spec::SearchSpace::is_active(p, &decided) {
                continue;
            }
            match t.params.get(&p.name) {
                Some(v) if mlt_spec::fits(&p.dist, v).is_ok() => {
                    decided.insert(p.name.clone(), v.clone());
                }
                _ => return false,
            }
        }
        decided.len() == t.params.len()
    };
    let mut out = Vec::new();
    for t in trials {
        let n_values = t.values.as_ref().map_or(0, |v| v.len());
        if t.state != TrialState::Complete
            || n_values != spec.study.directions.len()
            || !fits_space(&t)
        {
            continue;
        }
        let constraints = if spec.constraints.is_empty() {
            None
        } else {
            let vals: Option<Vec<f64>> = spec
                .constraints
                .iter()
                .map(|c| t.metrics.get(&c.metric).map(|m| c.value(*m)))
                .collect();
            match vals {
                Some(v) => Some(v),
                None => continue,
            }
        };
        let number = TrialId(out.len() as u64);
        out.push(TrialRecord {
            study,
            number,
            attempt: 0,
            node: None,
            slot: None,
            origin: TrialOrigin::WarmStart(source.to_string(), t.number.0),
            generation: None,
            constraints,
            ..t
        });
    }
    out
}
