//! Train/test splits over time-ordered samples, all as sample indices.
//!
//! * [`time_series_split`]: scikit-learn's `TimeSeriesSplit` (expanding, or rolling with a
//!   maximum train size; `gap` removes the end of each training set);
//! * [`walk_forward`]: rolling or expanding windows of `train` and `test` samples moved by
//!   `step`, purging training samples whose label window (horizon `purge`) reaches the test
//!   window;
//! * [`cpcv`]: combinatorial purged cross-validation: `n_groups` contiguous groups, every
//!   choice of `k` test groups, purging `purge` samples on both sides of each test block (label
//!   windows overlap across the boundary both ways) and an embargo of `embargo` samples after
//!   each test block; its C(N, k)·k/N backtest paths;
//! * [`monte_carlo`]: Monte Carlo cross-validation: `windows` contiguous test windows of
//!   `test` samples at seeded random positions, each trained on every other sample, purged
//!   and embargoed as CPCV's blocks are.
use std::collections::BTreeSet;

/// One split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    /// Training sample indices, increasing.
    pub train: Vec<usize>,
    /// Test sample indices, increasing.
    pub test: Vec<usize>,
}

/// scikit-learn's `TimeSeriesSplit`.
pub fn time_series_split(
    n: usize,
    n_splits: usize,
    test_size: Option<usize>,
    gap: usize,
    max_train: Option<usize>,
) -> Result<Vec<Fold>, String> {
    if n_splits < 2 {
        return Err(format!("n_splits must be at least 2, got {n_splits}"));
    }
    let test_size = test_size.unwrap_or(n / (n_splits + 1));
    if test_size == 0 || n_splits * test_size + gap >= n {
        return Err(format!(
            "{n} samples are too few for {n_splits} splits of {test_size} test samples with a gap of {gap}"
        ));
    }
    let first = n - n_splits * test_size;
    Ok((0..n_splits)
        .map(|i| {
            let start = first + i * test_size;
            let end = start.saturating_sub(gap);
            let from = max_train.map_or(0, |m| end.saturating_sub(m));
            Fold {
                train: (from..end).collect(),
                test: (start..start + test_size).collect(),
            }
        })
        .collect())
}

/// Walk-forward folds: a training window (the last `train` samples, or all since the start
/// when `expanding`) followed by `test` samples, moved by `step`. Training samples within
/// `purge` of the test window (their labels would see it) are dropped.
pub fn walk_forward(
    n: usize,
    train: usize,
    test: usize,
    step: usize,
    expanding: bool,
    purge: usize,
) -> Result<Vec<Fold>, String> {
    if train == 0 || test == 0 || step == 0 {
        return Err("train, test and step must be positive".into());
    }
    if train + purge + test > n {
        return Err(format!(
            "{n} samples are too few for a {train}-sample training window, a purge of {purge} and a {test}-sample test window"
        ));
    }
    let mut folds = Vec::new();
    let mut start = train + purge;
    while start + test <= n {
        let end = start - purge;
        let from = if expanding { 0 } else { end - train };
        folds.push(Fold {
            train: (from..end).collect(),
            test: (start..start + test).collect(),
        });
        start += step;
    }
    Ok(folds)
}

/// Combinatorial purged cross-validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpcv {
    /// The groups' sample ranges.
    pub groups: Vec<std::ops::Range<usize>>,
    /// One fold per choice of test groups.
    pub folds: Vec<Fold>,
    /// The test groups of each fold.
    pub test_groups: Vec<Vec<usize>>,
    /// Backtest paths: for each path, the fold whose prediction covers each group.
    pub paths: Vec<Vec<usize>>,
}

/// Monte Carlo cross-validation over `n` samples: `windows` test windows of `test` contiguous
/// samples, starting at positions drawn uniformly (ChaCha8 seeded by `seed`, so every trial
/// of a study gets the same windows), returned in order of their start. Each is trained on
/// every sample outside it, except the `purge` samples before it (their labels reach into it)
/// and the `purge + embargo` samples after it. Windows may overlap one another.
pub fn monte_carlo(
    n: usize,
    windows: usize,
    test: usize,
    purge: usize,
    embargo: usize,
    seed: u64,
) -> Result<Vec<Fold>, String> {
    use rand::{Rng, SeedableRng};
    if windows == 0 || test == 0 {
        return Err("windows and test must be positive".into());
    }
    // At least as many training samples as test samples remain around any window.
    if 2 * test + 2 * purge + embargo > n {
        return Err(format!(
            "{n} samples are too few for {test}-sample test windows with a purge of {purge} and an embargo of {embargo} (each window must leave at least {test} samples to train on)"
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut starts: Vec<usize> = (0..windows)
        .map(|_| rng.random_range(0..=n - test))
        .collect();
    starts.sort_unstable();
    Ok(starts
        .into_iter()
        .map(|start| {
            let end = start + test;
            let (lo, hi) = (start.saturating_sub(purge), (end + purge + embargo).min(n));
            Fold {
                train: (0..lo).chain(hi..n).collect(),
                test: (start..end).collect(),
            }
        })
        .collect())
}

/// All `k`-subsets of `0..n` in lexicographic order.
fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut c: Vec<usize> = (0..k).collect();
    loop {
        out.push(c.clone());
        let Some(i) = (0..k).rev().find(|&i| c[i] < n - k + i) else {
            return out;
        };
        c[i] += 1;
        for j in i + 1..k {
            c[j] = c[j - 1] + 1;
        }
    }
}

/// CPCV over `n` samples in `n_groups` groups (numpy's `array_split` sizes), `k` test groups.
pub fn cpcv(
    n: usize,
    n_groups: usize,
    k: usize,
    purge: usize,
    embargo: usize,
) -> Result<Cpcv, String> {
    if n_groups < 2 || k == 0 || k >= n_groups {
        return Err(format!(
            "need 2 <= groups and 0 < k < groups, got {n_groups} groups, k = {k}"
        ));
    }
    if n < n_groups {
        return Err(format!("{n} samples are too few for {n_groups} groups"));
    }
    let (base, extra) = (n / n_groups, n % n_groups);
    let mut groups = Vec::new();
    let mut at = 0;
    for g in 0..n_groups {
        let len = base + usize::from(g < extra);
        groups.push(at..at + len);
        at += len;
    }
    let mut folds = Vec::new();
    let test_groups = combinations(n_groups, k);
    for tg in &test_groups {
        let test: Vec<usize> = tg.iter().flat_map(|&g| groups[g].clone()).collect();
        let test_set: BTreeSet<usize> = test.iter().copied().collect();
        let mut banned = test_set.clone();
        for &g in tg {
            let r = &groups[g];
            // Purge: label windows of `purge` samples overlap across both edges of a block.
            for i in r.start.saturating_sub(purge)..r.start {
                banned.insert(i);
            }
            for i in r.end..(r.end + purge + embargo).min(n) {
                banned.insert(i);
            }
        }
        folds.push(Fold {
            train: (0..n).filter(|i| !banned.contains(i)).collect(),
            test,
        });
    }
    // Paths: the j-th fold (in order) that tests group g feeds path j.
    let n_paths = test_groups.len() * k / n_groups;
    let mut paths = vec![vec![usize::MAX; n_groups]; n_paths];
    let mut seen = vec![0usize; n_groups];
    for (f, tg) in test_groups.iter().enumerate() {
        for &g in tg {
            paths[seen[g]][g] = f;
            seen[g] += 1;
        }
    }
    Ok(Cpcv {
        groups,
        folds,
        test_groups,
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: usize, b: usize) -> Vec<usize> {
        (a..=b).collect()
    }

    /// ../shared/vectors/README.md, "Splits".
    #[test]
    fn splits_reproduce_the_reference_vectors() {
        let f = time_series_split(12, 3, Some(2), 0, None).unwrap();
        assert_eq!(
            f[0],
            Fold {
                train: r(0, 5),
                test: vec![6, 7]
            }
        );
        assert_eq!(
            f[1],
            Fold {
                train: r(0, 7),
                test: vec![8, 9]
            }
        );
        assert_eq!(
            f[2],
            Fold {
                train: r(0, 9),
                test: vec![10, 11]
            }
        );
        let f = time_series_split(12, 3, Some(2), 2, None).unwrap();
        assert_eq!(
            f[0],
            Fold {
                train: r(0, 3),
                test: vec![6, 7]
            }
        );
        assert_eq!(
            f[1],
            Fold {
                train: r(0, 5),
                test: vec![8, 9]
            }
        );
        assert_eq!(
            f[2],
            Fold {
                train: r(0, 7),
                test: vec![10, 11]
            }
        );

        let c = cpcv(12, 3, 2, 0, 0).unwrap();
        assert_eq!(c.folds.len(), 3);
        assert_eq!(c.paths.len(), 2);
        let trains: Vec<Vec<usize>> = c.folds.iter().map(|f| f.train.clone()).collect();
        let tests: Vec<Vec<usize>> = c.folds.iter().map(|f| f.test.clone()).collect();
        assert_eq!(trains, vec![r(8, 11), r(4, 7), r(0, 3)]);
        assert_eq!(tests, vec![r(0, 7), [r(0, 3), r(8, 11)].concat(), r(4, 11)]);
        let purged: Vec<Vec<usize>> = cpcv(12, 3, 2, 1, 0)
            .unwrap()
            .folds
            .into_iter()
            .map(|f| f.train)
            .collect();
        assert_eq!(purged, vec![r(9, 11), vec![5, 6], r(0, 2)]);
        let embargoed: Vec<Vec<usize>> = cpcv(12, 3, 2, 0, 1)
            .unwrap()
            .folds
            .into_iter()
            .map(|f| f.train)
            .collect();
        assert_eq!(embargoed, vec![r(9, 11), r(5, 7), r(0, 3)]);
        // Every group is covered once per path.
        for p in &c.paths {
            assert!(p.iter().all(|f| *f < c.folds.len()));
        }
    }

    #[test]
    fn walk_forward_purges_labels_that_reach_the_test_window() {
        // Rolling 4 train, 2 test, step 2, horizon 1 on 12 samples.
        let f = walk_forward(12, 4, 2, 2, false, 1).unwrap();
        assert_eq!(
            f[0],
            Fold {
                train: r(0, 3),
                test: vec![5, 6]
            }
        );
        assert_eq!(
            f[1],
            Fold {
                train: r(2, 5),
                test: vec![7, 8]
            }
        );
        assert_eq!(f.len(), 3);
        // A training sample whose label window ends exactly at the first test sample is gone:
        // with horizon 1, sample 4's label is the return to 5, the first test sample.
        assert!(!f[0].train.contains(&4));
        let e = walk_forward(12, 4, 2, 2, true, 0).unwrap();
        assert_eq!(e[2].train, r(0, 7));
        assert!(walk_forward(5, 4, 2, 2, false, 0)
            .unwrap_err()
            .contains("too few"));
        assert!(time_series_split(12, 1, None, 0, None).is_err());
        // Monte Carlo: a 3-sample window trained on everything else, purged by 1 on both
        // sides and embargoed by 1 after.
        let mc = monte_carlo(12, 4, 3, 1, 1, 9).unwrap();
        assert_eq!(mc.len(), 4);
        for f in &mc {
            let s = f.test[0];
            let want: Vec<usize> = (0..12).filter(|&t| t + 1 < s || t > s + 2 + 2).collect();
            assert_eq!(f.train, want);
        }
        assert!(monte_carlo(12, 4, 5, 1, 1, 9)
            .unwrap_err()
            .contains("too few"));
        assert!(cpcv(12, 3, 3, 0, 0).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Over many random configurations: no training sample's label window [t, t + h] reaches
    /// a test sample, in walk-forward folds (purge = h) and in CPCV (purge = h).
    #[test]
    fn no_training_label_ever_reaches_its_test_window() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        for _ in 0..500 {
            let n = rng.random_range(30..400);
            let h = rng.random_range(0..6);
            let train = rng.random_range(5..n / 2);
            let test = rng.random_range(1..n / 4);
            let step = rng.random_range(1..test + 3);
            let expanding = rng.random::<bool>();
            if let Ok(folds) = walk_forward(n, train, test, step, expanding, h) {
                for f in &folds {
                    let first_test = f.test[0];
                    assert!(
                        f.train.iter().all(|&t| t + h < first_test),
                        "n {n} h {h}: {f:?}"
                    );
                    assert!(f.test.iter().all(|&t| t < n));
                }
            }
            let groups = rng.random_range(3..8);
            let k = rng.random_range(1..groups);
            let embargo = rng.random_range(0..4);
            if let Ok(c) = cpcv(n, groups, k, h, embargo) {
                for f in &c.folds {
                    for &t in &f.train {
                        // Label windows [t, t + h] and [s, s + h] must not meet.
                        assert!(
                            f.test.iter().all(|&s| t + h < s || s + h < t),
                            "n {n} h {h}"
                        );
                    }
                    assert!(f.train.iter().all(|t| !f.test.contains(t)));
                }
                assert_eq!(c.paths.len(), c.folds.len() * k / groups);
            }
            let windows = rng.random_range(1..30);
            let seed = rng.random::<u64>();
            if let Ok(folds) = monte_carlo(n, windows, test, h, embargo, seed) {
                assert_eq!(folds.len(), windows);
                // The same seed, the same windows.
                assert_eq!(
                    monte_carlo(n, windows, test, h, embargo, seed).unwrap(),
                    folds
                );
                for f in &folds {
                    let (first, last) = (f.test[0], *f.test.last().unwrap());
                    assert_eq!(last - first + 1, test, "contiguous");
                    assert!(last < n);
                    for &t in &f.train {
                        // Purged on both sides, embargoed after.
                        assert!(t + h < first || t > last + h + embargo, "n {n} h {h}");
                    }
                    assert!(f.train.len() >= test);
                }
                assert!(folds.windows(2).all(|w| w[0].test[0] <= w[1].test[0]));
            }
        }
    }
}
