//! `mlt-bench models`: what the walk-forward evaluation costs around its models.
//!
//! LightGBM: one walk-forward trial (Alpha158-like features on SPY, 504/126-day folds, a
//! direction classifier with early stopping on the last 20% of each training window) timed
//! whole, against bare lightgbm3 calls — Dataset, train with the same validation tail and
//! parameters, predict — on exactly the same arrays. The difference is our overhead: features
//! and the look-ahead guard, splits, positions, costs, metrics, reports, the kept model.
use crate::eval::alpha_like;
use lightgbm3::{Booster, Dataset};
use mlt_node::eval::backtest::direction;
use mlt_node::eval::cache;
use mlt_node::eval::data::{read_csv, Bars};
use mlt_node::eval::features::{eval, parse};
use mlt_node::eval::lgbm::Lgbm;
use mlt_node::eval::model::ModelSettings;
use mlt_node::eval::splits::walk_forward;
use mlt_node::eval::synthetic::{generate, Synthetic};
use mlt_node::objective::{run_walk_forward_timed, validation_split, TrialContext};
use mlt_protocol::ids::{SlotId, StudyId, TrialId, TrialKey};
use mlt_protocol::messages::{AssignMsg, Outcome, Verdict};
use mlt_protocol::spec::{DataSource, ObjectiveSpec, Splits, WalkForwardSpec};
use std::path::Path;
use std::time::Instant;

struct Quiet;

impl TrialContext for Quiet {
    fn report(&mut self, _: u64, _: Vec<f64>) -> Verdict {
        Verdict::Continue
    }
    fn stopped(&self) -> bool {
        false
    }
}

fn spec(data: DataSource, features: &[(String, String)], rounds: f64) -> WalkForwardSpec {
    WalkForwardSpec {
        data,
        features: features.to_vec(),
        horizon: 1,
        classify: true,
        train: 504,
        test: 126,
        step: 126,
        expanding: false,
        model: "lightgbm".into(),
        alpha: 1.0,
        sizing: "sign".into(),
        threshold: 0.0,
        long_only: false,
        cost_bps: 1.0,
        slippage_bps: 1.0,
        report_per_fold: false,
        objectives: vec!["sharpe".into()],
        holdout: 0,
        holdout_top: 5,
        splits: Splits::WalkForward,
        holdout_run: false,
        model_params: [("num_iterations".to_string(), rounds)].into(),
        validation: 0.2,
        early_stopping: 20,
        categorical: Vec::new(),
    }
}

/// The bare lightgbm3 work of the same trial: per fold, the same rows, the same parameters.
fn bare(spec: &WalkForwardSpec, bars: &Bars) -> Result<(f64, usize), String> {
    let cols: Vec<Vec<f64>> = spec
        .features
        .iter()
        .map(|(_, e)| eval(&parse(e)?, bars))
        .collect::<Result<_, _>>()?;
    let label = direction(&bars.close, 1);
    let row = |t: usize| -> Option<Vec<f64>> {
        let r: Vec<f64> = cols.iter().map(|c| c[t]).collect();
        r.iter().all(|v| v.is_finite()).then_some(r)
    };
    let gather = |rows: &[usize]| {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for &t in rows {
            if let (Some(r), true) = (row(t), label[t].is_finite()) {
                x.extend(r);
                y.push(label[t] as f32);
            }
        }
        (x, y)
    };
    let folds = walk_forward(bars.len(), 504, 126, 126, false, 1)?;
    let d = cols.len() as i32;
    let params = Lgbm::new(ModelSettings {
        name: "lightgbm".into(),
        classify: true,
        params: spec.model_params.clone(),
        early_stopping: spec.early_stopping,
        threads: 1,
        seed: 0,
        ..Default::default()
    })
    .params(true);
    // The arrays are built before the clock starts: only LightGBM's own work is timed.
    let mut work = Vec::new();
    for f in &folds {
        let (fit, valid) = validation_split(&f.train, spec.validation, 1);
        let (x, y) = gather(&fit);
        let (vx, vy) = gather(&valid);
        let test: Vec<f64> = f.test.iter().filter_map(|&t| row(t)).flatten().collect();
        work.push((x, y, vx, vy, test));
    }
    let t0 = Instant::now();
    for (x, y, vx, vy, test) in &work {
        let e = |e: lightgbm3::Error| e.to_string();
        let train = Dataset::from_slice(x, y, d, true).map_err(e)?;
        let valid = Dataset::from_slice_with_reference(vx, vy, d, true, Some(&train)).map_err(e)?;
        let b = Booster::train_with_valid(train, Some(valid), &params).map_err(e)?;
        let p = b
            .predict_with_params(test, d, true, "num_threads=1")
            .map_err(e)?;
        std::hint::black_box(p);
    }
    Ok((t0.elapsed().as_secs_f64(), folds.len()))
}

fn one(
    name: &str,
    data: DataSource,
    bars: &Bars,
    features: &[(String, String)],
) -> anyhow::Result<()> {
    for rounds in [100.0, 300.0] {
        let s = spec(data.clone(), features, rounds);
        let assign = AssignMsg {
            key: TrialKey {
                study: StudyId(1),
                trial: TrialId(0),
                attempt: 1,
            },
            slot: SlotId(0),
            study_name: "bench".into(),
            params: Default::default(),
            objective: ObjectiveSpec::WalkForward(Box::new(s.clone())),
            workdir: None,
        };
        // Each side timed three times, best of. Cold: the node's feature cache emptied first
        // (the first trial on a node); warm: its columns kept from an earlier trial (every
        // later trial of a study that shares these features).
        let time_ours = |cold: bool| -> anyhow::Result<(f64, usize, f64, f64)> {
            let mut best = (f64::INFINITY, 0, 0.0, 0.0);
            let _ = run_walk_forward_timed(&s, &assign, &mut Quiet);
            for _ in 0..3 {
                if cold {
                    cache::reset(cache::DEFAULT_BUDGET);
                }
                let (out, t) = run_walk_forward_timed(&s, &assign, &mut Quiet);
                if let Outcome::Failed(e) = out {
                    anyhow::bail!(e);
                }
                if t.total < best.0 {
                    best = (t.total, t.folds, t.features, t.fit);
                }
            }
            Ok(best)
        };
        let cold = time_ours(true)?;
        let warm = time_ours(false)?;
        let folds = cold.1;
        let mut theirs = f64::INFINITY;
        let mut bare_folds = 0;
        for _ in 0..3 {
            let (b, n) = bare(&s, bars).map_err(anyhow::Error::msg)?;
            theirs = theirs.min(b);
            bare_folds = n;
        }
        anyhow::ensure!(
            folds == bare_folds,
            "fold counts differ: {folds} vs {bare_folds}"
        );
        let per = |x: f64| 1e3 * x / folds as f64;
        println!(
            "| {name} | {} | {rounds:.0} | {folds} | {:.2} ms | {:.2} ms ({:+.1}%) | {:.2} ms ({:+.1}%) | {:.1} ms |",
            features.len(),
            per(theirs),
            per(cold.0),
            100.0 * (cold.0 - theirs) / theirs,
            per(warm.0),
            100.0 * (warm.0 - theirs) / theirs,
            1e3 * cold.2,
        );
    }
    Ok(())
}

/// Runs the LightGBM comparison.
pub fn run() -> anyhow::Result<()> {
    println!(
        "### LightGBM: our walk-forward per fold vs bare lightgbm3 on the same arrays (1 thread)\n"
    );
    println!("| data | features | max rounds | folds | bare lightgbm3 per fold | ours, cold cache | ours, warm cache | features + guard, cold (whole trial) |");
    println!("|---|---|---|---|---|---|---|---|");
    let set = alpha_like();
    let spy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/SPY.csv");
    if spy.exists() {
        let bars = read_csv(&spy, true).map_err(anyhow::Error::msg)?.0;
        one(
            "SPY.csv",
            DataSource::Files {
                paths: vec![spy.display().to_string()],
                adjusted: true,
            },
            &bars,
            &set,
        )?;
    } else {
        eprintln!("{} is absent: the SPY rows are skipped", spy.display());
    }
    let syn = Synthetic {
        days: 5040,
        seed: 7,
        strength: 0.1,
        ..Default::default()
    };
    let bars = generate(&syn).map_err(anyhow::Error::msg)?;
    one(
        "synthetic (20 years)",
        DataSource::Synthetic {
            days: 5040,
            seed: 7,
            strength: 0.1,
            instruments: 1,
        },
        &bars,
        &set,
    )?;
    Ok(())
}
