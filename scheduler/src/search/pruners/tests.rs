use super::*;
use mlt_protocol::ids::{StudyId, TrialId};
use mlt_protocol::records::TrialOrigin;
use std::collections::BTreeMap;

fn t(n: u64, state: TrialState, curve: &[(u64, f64)]) -> TrialRecord {
    TrialRecord {
        study: StudyId(1),
        number: TrialId(n),
        state,
        attempt: 1,
        values: (state == TrialState::Complete).then(|| vec![curve.last().map_or(0.0, |c| c.1)]),
        params: BTreeMap::new(),
        intermediate: curve.iter().map(|(s, v)| (*s, vec![*v])).collect(),
        node: None,
        slot: None,
        message: None,
        created_ms: 0,
        started_ms: None,
        finished_ms: Some(n),
        origin: TrialOrigin::Sampler,
        generation: None,
        constraints: None,
        metrics: Default::default(),
    }
}

fn steps(vals: &[f64]) -> Vec<(u64, f64)> {
    vals.iter()
        .enumerate()
        .map(|(i, v)| (i as u64 + 1, *v))
        .collect()
}

fn pct(p: f64, startup: u32, warmup: u64, interval: u64) -> PercentilePruner {
    PercentilePruner::new(PercentileSpec {
        percentile: p,
        n_startup_trials: startup,
        n_warmup_steps: warmup,
        interval_steps: interval,
        n_min_trials: 1,
    })
}

#[test]
fn median_prunes_worse_than_median_only_after_startup_and_warmup() {
    let done: Vec<TrialRecord> = [[1.0, 0.5], [2.0, 1.0], [3.0, 1.5]]
        .iter()
        .enumerate()
        .map(|(i, c)| t(i as u64, TrialState::Complete, &steps(c)))
        .collect();
    let bad = t(9, TrialState::Running, &steps(&[5.0, 4.0]));
    let good = t(10, TrialState::Running, &steps(&[1.5, 0.9]));
    let p = pct(50.0, 3, 0, 1);
    // Median at step 2 is 1.0: bad (best 4.0) is pruned, good (best 0.9) is not.
    let why = p.prune(&bad, 2, &done, Direction::Minimize).unwrap();
    assert!(why.contains("median 1 of 3"), "{why}");
    assert!(p.prune(&good, 2, &done, Direction::Minimize).is_none());
    // Maximising flips the verdicts.
    assert!(p.prune(&bad, 2, &done, Direction::Maximize).is_none());
    let low = t(11, TrialState::Running, &steps(&[0.2, 0.1]));
    assert!(p.prune(&low, 2, &done, Direction::Maximize).is_some());
    // Not enough completed trials yet; still warming up.
    assert!(pct(50.0, 4, 0, 1)
        .prune(&bad, 2, &done, Direction::Minimize)
        .is_none());
    assert!(pct(50.0, 3, 3, 1)
        .prune(&bad, 2, &done, Direction::Minimize)
        .is_none());
    // Interval 2 from warm-up 1: step 1 is checked, step 2 (same interval, after 1) is not.
    assert!(pct(50.0, 3, 1, 2)
        .prune(&bad, 2, &done, Direction::Minimize)
        .is_none());
    assert!(pct(50.0, 3, 1, 2)
        .prune(&bad, 1, &done, Direction::Minimize)
        .is_some());
    // Running and pruned trials do not count towards the median.
    let mut others = done.clone();
    others.push(t(4, TrialState::Running, &steps(&[0.0, 0.0])));
    others.push(t(5, TrialState::Pruned, &steps(&[0.0, 0.0])));
    assert!(p.prune(&good, 2, &others, Direction::Minimize).is_none());
}

#[test]
fn percentile_interpolates_like_numpy_and_flips_for_maximize() {
    let done: Vec<TrialRecord> = (0..4)
        .map(|i| t(i, TrialState::Complete, &[(1, i as f64 + 1.0)]))
        .collect();
    // Values 1, 2, 3, 4: the 25th percentile is 1.75, the 75th 3.25.
    assert_eq!(percentile_of(&[1.0, 2.0, 3.0, 4.0], 25.0), 1.75);
    let p = pct(25.0, 0, 0, 1);
    let at = |v: f64| t(9, TrialState::Running, &[(1, v)]);
    assert!(p.prune(&at(1.8), 1, &done, Direction::Minimize).is_some());
    assert!(p.prune(&at(1.7), 1, &done, Direction::Minimize).is_none());
    assert!(p.prune(&at(3.0), 1, &done, Direction::Maximize).is_some());
    assert!(p.prune(&at(3.5), 1, &done, Direction::Maximize).is_none());
    // A trial whose values are all NaN is pruned, with that reason.
    let why = p
        .prune(&at(f64::NAN), 1, &done, Direction::Minimize)
        .unwrap();
    assert!(why.contains("NaN"));
}

#[test]
fn threshold_prunes_outside_bounds_and_nan() {
    let p = ThresholdPruner::new(ThresholdSpec {
        lower: Some(0.0),
        upper: Some(1.0),
        n_warmup_steps: 2,
        interval_steps: 1,
    });
    let at = |v: f64| t(1, TrialState::Running, &steps(&[0.5, 0.5, v]));
    assert!(p
        .prune(&at(1.5), 3, &[], Direction::Minimize)
        .unwrap()
        .contains("above"));
    assert!(p
        .prune(&at(-0.1), 3, &[], Direction::Minimize)
        .unwrap()
        .contains("below"));
    assert!(p
        .prune(&at(f64::NAN), 3, &[], Direction::Minimize)
        .is_some());
    assert!(p.prune(&at(0.5), 3, &[], Direction::Minimize).is_none());
    // Warm-up: step 1 is never judged.
    let early = t(1, TrialState::Running, &[(1, 9.0)]);
    assert!(p.prune(&early, 1, &[], Direction::Minimize).is_none());
}

fn asha(rate: u32, bootstrap: u32) -> AshaPruner {
    AshaPruner::new(AshaSpec {
        min_resource: 1,
        reduction_factor: 3,
        min_early_stopping_rate: rate,
        bootstrap_count: bootstrap,
    })
}

#[test]
fn asha_rung_promotion_by_hand() {
    // η = 3, r = 1, s = 0: rungs at steps 1, 3, 9.
    let others = vec![
        t(
            0,
            TrialState::Complete,
            &[(1, 1.0), (2, 0.8), (3, 0.5), (9, 0.2)],
        ),
        t(1, TrialState::Complete, &[(1, 2.0), (2, 1.8), (3, 1.5)]),
        t(2, TrialState::Pruned, &[(1, 3.0)]),
        t(3, TrialState::Pruned, &[(1, 4.0)]),
    ];
    let p = asha(0, 0);
    let min = Direction::Minimize;
    // Rung 0 holds 1, 2, 3, 4 and the new value: 5 trials, top ⌊5/3⌋ = 1, so only a value
    // at least as good as the best goes on.
    let x = t(9, TrialState::Running, &[(1, 2.5)]);
    let why = p.prune(&x, 1, &others, min).unwrap();
    assert!(
        why.contains("rung 0") && why.contains("top 1 of 5"),
        "{why}"
    );
    let x = t(9, TrialState::Running, &[(1, 0.9)]);
    assert!(p.prune(&x, 1, &others, min).is_none());
    // Step 2 crosses no rung.
    let x = t(9, TrialState::Running, &[(1, 0.9), (2, 5.0)]);
    assert!(p.prune(&x, 2, &others, min).is_none());
    // Rung 1 (step 3) holds 0.5 and 1.5 from others: top ⌊3/3⌋ = 1.
    let x = t(9, TrialState::Running, &[(1, 0.9), (2, 0.9), (3, 1.0)]);
    let why = p.prune(&x, 3, &others, min).unwrap();
    assert!(
        why.contains("rung 1") && why.contains("top 1 of 3"),
        "{why}"
    );
    let x = t(9, TrialState::Running, &[(1, 0.9), (2, 0.9), (3, 0.4)]);
    assert!(p.prune(&x, 3, &others, min).is_none());
    // A trial that first reports at step 3 is judged at rung 0 and rung 1 with that value:
    // 0.7 passes rung 0 (top 1 of 5 → ≤ 0.7 after sorting) but not rung 1 (0.5 is better).
    let x = t(9, TrialState::Running, &[(3, 0.7)]);
    let why = p.prune(&x, 3, &others, min).unwrap();
    assert!(why.contains("rung 1"), "{why}");
    // Maximising: the same numbers, the other way round.
    let x = t(9, TrialState::Running, &[(1, 4.5)]);
    assert!(p.prune(&x, 1, &others, Direction::Maximize).is_none());
    let x = t(9, TrialState::Running, &[(1, 3.5)]);
    assert!(p.prune(&x, 1, &others, Direction::Maximize).is_some());
    // min_early_stopping_rate 1: the first rung is step 3, step 1 is never judged.
    let x = t(9, TrialState::Running, &[(1, 99.0)]);
    assert!(asha(1, 0).prune(&x, 1, &others, min).is_none());
    // Bootstrap: with fewer than 6 trials at the rung, a trial is pruned.
    let x = t(9, TrialState::Running, &[(1, 0.1)]);
    let why = asha(0, 5).prune(&x, 1, &others, min).unwrap();
    assert!(why.contains("bootstrap"), "{why}");
    assert!(promotable(1.0, &mut [1.0], 3, min));
}

#[test]
fn hyperband_brackets_by_hand() {
    let hb = |min: u64, max: Option<u64>, eta: u64| {
        HyperbandPruner::new(
            HyperbandSpec {
                min_resource: min,
                max_resource: max,
                reduction_factor: eta,
            },
            0,
        )
    };
    // r = 1, R = 81, η = 3: 5 brackets; budgets ⌈5·3^s/(s+1)⌉ for s = 4..0.
    let p = hb(1, Some(81), 3);
    assert_eq!(p.n_brackets(81), 5);
    assert_eq!(p.budgets(81), vec![81, 34, 15, 8, 5]);
    // r = 1, R = 9: 3 brackets, budgets 9, 5, 3.
    assert_eq!(hb(1, Some(9), 3).budgets(9), vec![9, 5, 3]);
    assert_eq!(hb(2, Some(9), 3).n_brackets(9), 2);
    // Trials spread over brackets in proportion to the budgets.
    let mut counts = [0u32; 5];
    for n in 0..14_300 {
        counts[p.bracket(n, 81) as usize] += 1;
    }
    for (c, b) in counts.iter().zip([81.0, 34.0, 15.0, 8.0, 5.0]) {
        let want = 14_300.0 * b / 143.0;
        assert!(
            (*c as f64 - want).abs() < 4.0 * want.sqrt() + 1.0,
            "{counts:?}"
        );
    }
    // A trial only competes within its bracket: find two trials of bracket 0 and one of
    // another bracket; the other bracket's excellent values do not prune the bracket-0 trial.
    let b0: Vec<u64> = (0..200)
        .filter(|n| p.bracket(*n, 81) == 0)
        .take(2)
        .collect();
    let other = (0..200).find(|n| p.bracket(*n, 81) == 1).unwrap();
    let trials = vec![
        t(b0[0], TrialState::Complete, &[(1, 5.0), (81, 5.0)]),
        t(
            other,
            TrialState::Complete,
            &[(1, 0.0), (3, 0.0), (81, 0.0)],
        ),
    ];
    let x = t(b0[1], TrialState::Running, &[(1, 4.0)]);
    assert!(p.prune(&x, 1, &trials, Direction::Minimize).is_none());
    let x = t(b0[1], TrialState::Running, &[(1, 6.0)]);
    let why = p.prune(&x, 1, &trials, Direction::Minimize).unwrap();
    assert!(why.starts_with("bracket 0:"), "{why}");
    // "auto": nothing is pruned before a trial completes.
    let auto = hb(1, None, 3);
    let running = vec![t(0, TrialState::Running, &[(1, 0.0)])];
    assert!(auto.prune(&x, 1, &running, Direction::Minimize).is_none());
}

#[test]
#[allow(clippy::approx_constant)] // 3.14 is a measurement in the sample, not π
fn wilcoxon_matches_scipy() {
    // scipy.stats.wilcoxon(x - y, alternative="greater") on the classic paired sample.
    let x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
    let y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    let (p, w, n) = wilcoxon_greater(&d).unwrap();
    assert_eq!((w, n), (40.0, 9));
    assert!((p - 0.019_531_25).abs() < 1e-12, "{p}");
    let (p, w, _) = wilcoxon_greater(&[0.5, -0.2, 0.3, 0.8, 0.1, -0.05, 0.6, 0.4]).unwrap();
    assert_eq!(w, 32.0);
    assert!((p - 0.027_343_75).abs() < 1e-12, "{p}");
    // With ties: the normal approximation with corrections (method="approx").
    let d = [1.0, 1.0, 2.0, -1.0, 3.0, 2.0, 2.0, 1.0, -2.0, 4.0];
    let (p, w, _) = wilcoxon_greater(&d).unwrap();
    assert_eq!(w, 46.0);
    assert!((p - 0.031_511_300_9).abs() < 1e-6, "{p}");
    assert!(wilcoxon_greater(&[0.0, 0.0]).is_none());
}

#[test]
fn paired_pruner_needs_consistent_evidence() {
    let folds = |v: &[f64]| steps(v);
    let incumbent = t(
        0,
        TrialState::Complete,
        &folds(&[1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.3, 0.7]),
    );
    let p = PairedPruner::new(PairedSpec {
        alpha: 0.05,
        min_steps: 3,
        n_startup_trials: 1,
    });
    let max = Direction::Maximize;
    // Consistently worse on 8 folds (by distinct margins): W+ = 36 of 36, exact p = 1/256.
    let margins = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2];
    let inc = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.3, 0.7];
    let worse_vals: Vec<f64> = inc.iter().zip(margins).map(|(a, m)| a - m).collect();
    let worse = t(5, TrialState::Running, &folds(&worse_vals));
    let why = p
        .prune(&worse, 8, std::slice::from_ref(&incumbent), max)
        .unwrap();
    assert!(
        why.contains("trial 0") && why.contains("p = 0.0039"),
        "{why}"
    );
    // One terrible fold among better ones: the mean is worse but the test is not convinced.
    let one_bad = t(
        6,
        TrialState::Running,
        &folds(&[1.1, 1.3, -5.0, 1.2, 1.0, 1.1, 1.4, 0.8]),
    );
    assert!(p
        .prune(&one_bad, 8, std::slice::from_ref(&incumbent), max)
        .is_none());
    // Too few shared folds yet.
    assert!(p
        .prune(&worse, 2, std::slice::from_ref(&incumbent), max)
        .is_none());
    // No completed trial: nothing to compare with.
    assert!(p.prune(&worse, 8, &[], max).is_none());
}
