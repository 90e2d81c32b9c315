//! Warm starts: the trials of an earlier study that seed a new one (`study.warm_start`).
use mlt_protocol::ids::{StudyId, TrialId};
use mlt_protocol::records::{TrialOrigin, TrialRecord, TrialState};
use mlt_protocol::spec::Spec;

/// The trials of study `source` that seed a new study `study`: the complete ones whose values
/// match its objectives and whose parameters are a valid point of its space (constraints are
/// re-judged on their metrics), renumbered from 0, marked as copied. Hold-out evaluations are
/// never imported: their values are hold-out figures, which no search may see.
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
            || matches!(t.origin, TrialOrigin::Holdout(_))
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

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::records::{ParamValue, Params};

    #[test]
    fn hold_out_evaluations_are_never_imported() {
        let spec = mlt_spec::parse(
            "[study]\nname = \"new\"\nn_trials = 5\n[space]\nx0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\n",
            "new.toml",
        )
        .unwrap();
        let params: Params = ["x0", "x1"]
            .iter()
            .map(|n| (n.to_string(), ParamValue::Float(0.5)))
            .collect();
        let trial = |n: u64, origin: TrialOrigin, value: f64| TrialRecord {
            study: StudyId(1),
            number: TrialId(n),
            state: TrialState::Complete,
            attempt: 1,
            values: Some(vec![value]),
            params: params.clone(),
            intermediate: Default::default(),
            node: None,
            slot: None,
            message: None,
            created_ms: 0,
            started_ms: None,
            finished_ms: None,
            origin,
            generation: None,
            constraints: None,
            metrics: Default::default(),
        };
        let source = vec![
            trial(0, TrialOrigin::Sampler, 1.0),
            trial(1, TrialOrigin::Sampler, 2.0),
            // The hold-out evaluation of trial 1: better than anything, and never to be seen.
            trial(2, TrialOrigin::Holdout(1), 9.0),
        ];
        let got = warm_start_trials(&spec, "old", source, StudyId(7));
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|t| t.values != Some(vec![9.0])));
        assert!(got
            .iter()
            .all(|t| matches!(&t.origin, TrialOrigin::WarmStart(s, _) if s == "old")));
    }
}
