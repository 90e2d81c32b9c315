use super::*;
use mlt_protocol::spec::Spec;

fn spec(extra: &str) -> Spec {
    let text = format!(
        "[study]\nname = \"t\"\nn_trials = 4\nmax_attempts = 2\n{extra}\n[pruner]\nkind = \"median\"\nn_startup_trials = 1\n[space]\nx0 = {{ type = \"float\", low = 0, high = 1 }}\nx1 = {{ type = \"float\", low = 0, high = 1 }}\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\n"
    );
    mlt_spec::parse(&text, "t.toml").unwrap()
}

fn core(extra: &str) -> StudyCore {
    StudyCore::new(crate::search::tests::row(), spec(extra), Vec::new())
}

const N: NodeId = NodeId(7);
const S: SlotId = SlotId(0);

#[test]
fn lifecycle_records_each_result_once_for_the_current_attempt() {
    let mut c = core("");
    let mut ops = Vec::new();
    let k = c.ask(N, S, 1, &mut ops).unwrap();
    assert_eq!((k.trial, k.attempt), (TrialId(0), 1));
    assert_eq!(c.counts().running, 1);
    // Lease expires: re-queued with attempt 2; the old attempt is stale from now on.
    assert!(c.requeue(k, "lease expired", 2, &mut ops));
    assert_eq!(c.counts().waiting, 1);
    assert_eq!(c.report(N, k, 1, vec![1.0], 3, &mut ops), Verdict::Stale);
    assert_eq!(
        c.finish(
            N,
            k,
            Outcome::Complete(vec![1.0], Default::default()),
            3,
            &mut ops
        ),
        FinishResult::Ignored
    );
    let k2 = c.ask(NodeId(8), S, 4, &mut ops).unwrap();
    assert_eq!((k2.trial, k2.attempt), (TrialId(0), 2));
    // Another node cannot report for it.
    assert_eq!(c.report(N, k2, 1, vec![1.0], 5, &mut ops), Verdict::Stale);
    assert_eq!(
        c.finish(
            NodeId(8),
            k2,
            Outcome::Complete(vec![2.5], Default::default()),
            6,
            &mut ops
        ),
        FinishResult::Recorded
    );
    assert_eq!(
        c.finish(
            NodeId(8),
            k2,
            Outcome::Complete(vec![9.0], Default::default()),
            7,
            &mut ops
        ),
        FinishResult::Ignored
    );
    assert_eq!(c.trials[0].values, Some(vec![2.5]));
    assert_eq!(c.counts().complete, 1);
}

#[test]
fn lost_after_max_attempts_and_budget_counts_every_end() {
    let mut c = core("");
    let mut ops = Vec::new();
    let k = c.ask(N, S, 0, &mut ops).unwrap();
    c.requeue(k, "lease expired", 0, &mut ops);
    let k = c.ask(N, S, 0, &mut ops).unwrap();
    c.requeue(k, "lease expired", 0, &mut ops);
    assert_eq!(c.trials[0].state, TrialState::Lost);
    let k = c.ask(N, S, 0, &mut ops).unwrap();
    c.finish(N, k, Outcome::Failed("boom".into()), 0, &mut ops);
    assert_eq!(c.trials[1].state, TrialState::Failed);
    assert_eq!(c.trials[1].message.as_deref(), Some("boom"));
    let k = c.ask(N, S, 0, &mut ops).unwrap();
    c.finish(
        N,
        k,
        Outcome::Complete(vec![f64::NAN], Default::default()),
        0,
        &mut ops,
    );
    assert_eq!(c.trials[2].state, TrialState::Failed);
    let k = c.ask(N, S, 0, &mut ops).unwrap();
    assert!(
        c.ask(N, SlotId(1), 0, &mut ops).is_none(),
        "budget of 4 is spent"
    );
    c.finish(
        N,
        k,
        Outcome::Complete(vec![1.0], Default::default()),
        0,
        &mut ops,
    );
    assert_eq!(c.row.state, StudyState::Complete);
    assert!(ops
        .iter()
        .any(|o| matches!(o, StoreOp::Study(r) if r.state == StudyState::Complete)));
}

#[test]
fn pruning_and_cancel() {
    let mut c = core("");
    let mut ops = Vec::new();
    let a = c.ask(N, S, 0, &mut ops).unwrap();
    assert_eq!(c.report(N, a, 1, vec![1.0], 0, &mut ops), Verdict::Continue);
    c.finish(
        N,
        a,
        Outcome::Complete(vec![1.0], Default::default()),
        0,
        &mut ops,
    );
    let b = c.ask(N, S, 0, &mut ops).unwrap();
    assert_eq!(c.report(N, b, 1, vec![5.0], 0, &mut ops), Verdict::Prune);
    assert_eq!(c.trials[1].state, TrialState::Pruned);
    assert!(c.trials[1].message.as_deref().unwrap().contains("median"));
    // The node's own "pruned" finish after the verdict is not recorded twice.
    assert_eq!(
        c.finish(N, b, Outcome::Pruned, 0, &mut ops),
        FinishResult::Ignored
    );
    let r = c.ask(N, S, 0, &mut ops).unwrap();
    let stopped = c.cancel(0, &mut ops);
    assert_eq!(stopped, vec![(N, r)]);
    assert_eq!(c.row.state, StudyState::Cancelled);
    assert!(!c.has_work());
    assert_eq!(c.trials[2].state, TrialState::Failed);
}

#[test]
fn max_concurrent_limits_asks() {
    let mut c = core("max_concurrent = 1");
    let mut ops = Vec::new();
    assert!(c.ask(N, S, 0, &mut ops).is_some());
    assert!(!c.has_work());
    assert!(c.ask(N, SlotId(1), 0, &mut ops).is_none());
}

#[test]
fn restored_waiting_trials_are_handed_out_again() {
    let mut c = core("");
    let mut ops = Vec::new();
    let k = c.ask(N, S, 0, &mut ops).unwrap();
    c.requeue(k, "released", 0, &mut ops);
    let trials = c.trials.clone();
    let mut again = StudyCore::new(c.row.clone(), c.spec.clone(), trials);
    let k2 = again.ask(N, S, 0, &mut ops).unwrap();
    assert_eq!((k2.trial, k2.attempt), (TrialId(0), 2));
}

/// A one-instrument daily series with these decision days and returns.
fn daily(days: &[i64], r: &[f64]) -> mlt_protocol::records::DailySeries {
    mlt_protocol::records::DailySeries {
        decided: days.to_vec(),
        earned: days.iter().map(|d| Some(d + 1)).collect(),
        returns: r.to_vec(),
        benchmark: vec![0.0; r.len()],
        instruments: vec!["X".into()],
        positions: vec![vec![1.0]; r.len()],
        stability: Default::default(),
    }
}

#[test]
fn the_best_trials_are_evaluated_on_the_holdout_when_the_search_ends() {
    let text = "[study]\nname = \"h\"\nn_trials = 6\ndirections = [\"maximize\"]\nobjectives = [\"sharpe\"]\n[pruner]\nkind = \"median\"\nn_startup_trials = 1\n[space]\nw = { type = \"int\", low = 5, high = 60 }\n[objective]\nkind = \"walk_forward\"\ndata = \"synthetic\"\nfeatures = { m = \"mean(returns, $w)\" }\nholdout = 250\nholdout_top = 3\n";
    let spec = mlt_spec::parse(text, "h.toml").unwrap();
    let mut c = StudyCore::new(crate::search::tests::row(), spec, Vec::new());
    let mut ops = Vec::new();
    let sharpe = [0.3, 1.2, -0.4, 0.9, 1.5, 0.1];
    let mut returns = Vec::new();
    for (i, s) in sharpe.iter().enumerate() {
        let k = c.ask(N, S, i as u64, &mut ops).unwrap();
        let m: Metrics = [("sharpe".to_string(), *s)].into();
        let r = daily(&[1, 2], &[0.01, *s]);
        c.finish(
            N,
            k,
            Outcome::Evaluated(Box::new(mlt_protocol::messages::Evaluation {
                values: vec![*s],
                metrics: m,
                daily: r,
                model: None,
                holdout: None,
            })),
            10,
            &mut ops,
        );
        returns.push(k.trial);
    }
    // The search is over, the study is not: the top 3 (trials 4, 1, 3) go to the hold-out.
    assert_eq!(c.row.state, StudyState::Running);
    assert_eq!(c.trials.len(), 9);
    let origins: Vec<TrialOrigin> = c.trials[6..].iter().map(|t| t.origin.clone()).collect();
    assert_eq!(
        origins,
        vec![
            TrialOrigin::Holdout(4),
            TrialOrigin::Holdout(1),
            TrialOrigin::Holdout(3)
        ]
    );
    assert_eq!(c.trials[6].params, c.trials[4].params);
    // Search trials' returns were stored, for PBO.
    let stored = ops
        .iter()
        .filter(|o| matches!(o, StoreOp::Returns(..)))
        .count();
    assert_eq!(stored, 6);
    let mut ops = Vec::new();
    for (i, hold) in [0.2, 2.0, -0.5].iter().enumerate() {
        let k = c.ask(N, S, 20, &mut ops).unwrap();
        assert_eq!(k.trial, TrialId(6 + i as u64));
        // One report: never pruned, though it is far below the others at step 1.
        assert_eq!(
            c.report(N, k, 1, vec![-9.0], 21, &mut ops),
            Verdict::Continue
        );
        let m: Metrics = [
            ("sharpe".to_string(), *hold),
            ("sharpe_per_period".to_string(), *hold / 15.0),
        ]
        .into();
        let window = mlt_protocol::records::HoldoutWindow {
            data: "ab".into(),
            first: 900,
            last: 900,
        };
        c.finish(
            N,
            k,
            Outcome::Evaluated(Box::new(mlt_protocol::messages::Evaluation {
                values: vec![*hold],
                metrics: m,
                daily: daily(&[900], &[0.0]),
                model: None,
                holdout: Some(window),
            })),
            22,
            &mut ops,
        );
    }
    assert_eq!(c.row.state, StudyState::Complete);
    assert!(c.ask(N, S, 30, &mut ops).is_none());
    // Each evaluated trial carries its hold-out metrics; hold-out runs store no returns and
    // are never the best, even with the highest value.
    assert_eq!(c.trials[4].metrics["holdout_sharpe"], 0.2);
    assert_eq!(c.trials[1].metrics["holdout_sharpe"], 2.0);
    assert_eq!(c.trials[3].metrics["holdout_sharpe"], -0.5);
    assert_eq!(c.trials[3].metrics["holdout_trial"], 8.0);
    assert!(!c.trials[0].metrics.contains_key("holdout_sharpe"));
    assert!(!ops.iter().any(|o| matches!(o, StoreOp::Returns(..))));
    // ... but their trading is kept, and each enters the ledger of its window.
    let kept: Vec<TrialId> = ops
        .iter()
        .filter_map(|o| match o {
            StoreOp::Daily(_, t, _) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!(kept, vec![TrialId(6), TrialId(7), TrialId(8)]);
    let ledger: Vec<(String, TrialId, f64)> = ops
        .iter()
        .filter_map(|o| match o {
            StoreOp::Ledger {
                window,
                trial,
                sharpe,
                ..
            } => Some((window.clone(), *trial, *sharpe)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ledger,
        vec![
            ("ab:900:900".to_string(), TrialId(6), 0.2 / 15.0),
            ("ab:900:900".to_string(), TrialId(7), 2.0 / 15.0),
            ("ab:900:900".to_string(), TrialId(8), -0.5 / 15.0)
        ]
    );
    assert_eq!(c.best()[0].number, TrialId(4));
    // The summary counts the search's 6 trials and the 3 hold-out runs apart.
    let s = c.summary();
    assert_eq!(s.counts.finished(), 6);
    assert_eq!(s.counts.complete + s.counts.pruned, 6);
    assert_eq!((s.holdout_runs, s.warm_started), (3, 0));
    // A restart from the stored trials does not evaluate them again.
    let again = StudyCore::new(c.row.clone(), c.spec.clone(), c.trials.clone());
    assert_eq!(again.trials.len(), 9);
    assert!(!again.has_work());
}
