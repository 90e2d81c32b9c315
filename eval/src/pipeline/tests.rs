//! The walk-forward pipeline's tests: whole trials on the synthetic market and on files.
// Without the model features the tests that need LightGBM or the LSTM are left out, and
// with them some helpers.
#![cfg_attr(
    not(all(feature = "lightgbm", feature = "lstm")),
    allow(dead_code, unused_imports)
)]
use super::*;
use crate::data::Bars;
use crate::labels::forward_return;
use crate::metrics as m;
use crate::models::{model_for, Model};
use crate::splits::walk_forward;
use crate::synthetic::{generate, Synthetic};
use mlt_protocol::messages::{Evaluation, Verdict};
use mlt_protocol::records::{ParamValue, Params};
use mlt_protocol::spec::{DataSource, EnsembleMethod, ModelKind};

struct Ctx(Vec<(u64, Vec<f64>)>);
impl TrialContext for Ctx {
    fn report(&mut self, step: u64, values: Vec<f64>) -> Verdict {
        self.0.push((step, values));
        Verdict::Continue
    }
    fn stopped(&self) -> bool {
        false
    }
}

/// The evaluation of a trial that must have completed.
fn done(out: Outcome) -> Evaluation {
    match out {
        Outcome::Evaluated(e) => *e,
        other => panic!("{other:?}"),
    }
}

fn spec(features: &[(&str, &str)], strength: f64) -> WalkForwardSpec {
    let data = DataSource::Synthetic {
        days: 3000,
        seed: 3,
        strength,
        instruments: 1,
    };
    let features = features
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut s = WalkForwardSpec::new(data, features);
    (s.windows.train, s.windows.test, s.windows.step) = (500, 250, 250);
    (s.trading.cost_bps, s.trading.slippage_bps) = (0.0, 0.0);
    s.report.objectives = vec!["sharpe".into(), "max_drawdown".into()];
    s
}

/// A trial's parameters and seed (its number), as a node would hand them over.
struct Assigned {
    params: Params,
    seed: u64,
    holdout: bool,
}

impl Assigned {
    fn trial(&self) -> Trial<'_> {
        Trial {
            params: &self.params,
            workdir: None,
            seed: self.seed,
            holdout: self.holdout,
        }
    }
}

fn assign(params: Params) -> Assigned {
    Assigned {
        params,
        seed: 0,
        holdout: false,
    }
}

fn write_csv(path: &std::path::Path, b: &Bars) {
    std::fs::write(path, b.to_csv()).unwrap();
}

#[test]
fn the_search_never_sees_the_holdout_and_the_holdout_run_tests_only_it() {
    let feats = [("mom", "sum(returns, 5) / (std(returns, $w) * 2.236)")];
    let params: Params = [("w".to_string(), ParamValue::Int(20))]
        .into_iter()
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let b = generate(&Synthetic {
        days: 3000,
        seed: 3,
        strength: 0.15,
        ..Default::default()
    })
    .unwrap();
    // The same market, and one whose last 250 days are wildly different.
    let mut wild = b.clone();
    for i in 2750..3000 {
        for v in [
            &mut wild.open,
            &mut wild.high,
            &mut wild.low,
            &mut wild.close,
        ] {
            v[i] *= 1.0 + 0.3 * ((i % 7) as f64 - 3.0) / 3.0;
        }
        wild.high[i] = wild.open[i].max(wild.close[i]).max(wild.high[i]);
        wild.low[i] = wild.open[i].min(wild.close[i]).min(wild.low[i]);
    }
    let (a, w) = (dir.path().join("a.csv"), dir.path().join("w.csv"));
    write_csv(&a, &b);
    write_csv(&w, &wild);
    let mut s = spec(&feats, 0.15);
    s.windows.holdout = 250;
    let run = |holdout: bool, file: &std::path::Path| {
        let mut s = s.clone();
        s.data = DataSource::Files {
            paths: vec![file.display().to_string()],
            adjusted: false,
        };
        let mut ctx = Ctx(Vec::new());
        let mut a = assign(params.clone());
        a.holdout = holdout;
        let out = run_walk_forward(&s, &a.trial(), &mut ctx);
        let Evaluation {
            values: v,
            metrics: m,
            daily: r,
            holdout: h,
            ..
        } = done(out);
        (v, m, r, ctx.0, h)
    };
    let (v1, m1, r1, steps, h1) = run(false, &a);
    let (v2, m2, mut r2, _, _) = run(false, &w);
    // (2750 − 501) / 250 = 8 folds, none touching the last 250 days; identical results
    // whatever those days hold.
    assert_eq!(steps.len(), 8);
    assert!(r1.decided.iter().all(|d| *d < b.days[2750]));
    // Each return is earned on the next bar's day, never a hold-out day.
    for (d, e) in r1.decided.iter().zip(&r1.earned) {
        let i = b.days.iter().position(|x| x == d).unwrap();
        assert_eq!(*e, Some(b.days[i + 1]));
        assert!(i + 1 < 2750);
    }
    // (The instruments are named after their files.)
    assert_eq!(
        (&r1.instruments, &r2.instruments),
        (&vec!["a".to_string()], &vec!["w".to_string()])
    );
    r2.instruments = r1.instruments.clone();
    assert!(
        (v1 == v2) && (m1 == m2) && (r1 == r2),
        "the hold-out leaked into the search"
    );
    assert_eq!(h1, None, "a search trial has no hold-out window");
    // The hold-out run: one fold, trained on the 500 days before it (purged), tested on it.
    let (v3, _, r3, steps, h3) = run(true, &a);
    let (v4, _, _, _, h4) = run(true, &w);
    assert_eq!(steps.len(), 1);
    assert_eq!(r3.decided, b.days[2750..].to_vec());
    // The hold-out's last day earns nothing: there is no next bar.
    let next: Vec<Option<i64>> = b.days[2751..].iter().map(|d| Some(*d)).collect();
    assert_eq!(r3.earned[..249], next);
    assert_eq!((r3.earned[249], r3.returns[249]), (None, 0.0));
    assert_ne!(v3, v4, "the hold-out run reads the hold-out");
    assert!(v3[0].is_finite());
    // The ledger's key: the data's content and the hold-out's first and last day.
    let (h3, h4) = (h3.unwrap(), h4.unwrap());
    assert_eq!((h3.first, h3.last), (b.days[2750], b.days[2999]));
    assert_eq!((h4.first, h4.last), (h3.first, h3.last));
    assert_ne!(h3.data, h4.data, "other prices, another dataset");
    assert_eq!(run(true, &a).4.unwrap(), h3, "the same data, the same key");
}

#[test]
fn cpcv_reports_every_split_and_averages_its_paths() {
    let feats = [("mom", "sum(returns, 5) / (std(returns, $w) * 2.236)")];
    let params: Params = [("w".to_string(), ParamValue::Int(20))]
        .into_iter()
        .collect();
    let mut s = spec(&feats, 0.15);
    s.windows.splits = Splits::Cpcv {
        groups: 6,
        test_groups: 2,
        embargo: 5,
    };
    let mut ctx = Ctx(Vec::new());
    let out = run_walk_forward(&s, &assign(params).trial(), &mut ctx);
    let Evaluation {
        values,
        metrics,
        daily,
        ..
    } = done(out);
    // C(6, 2) = 15 splits, each reported; C(5, 1) = 5 paths covering all 3000 days.
    assert_eq!(ctx.0.len(), 15);
    assert_eq!(metrics["paths"], 5.0);
    assert_eq!(daily.returns.len(), 3000);
    assert!(daily.is_consistent());
    assert_eq!(values[0], metrics["sharpe"]);
    assert!(metrics["sharpe_path_std"] >= 0.0);
    // The planted edge holds on every path on average.
    assert!(metrics["sharpe"] > 0.3, "{metrics:?}");
}

/// Runs a trial with a model factory of the test's choosing.
fn run_with(spec: &WalkForwardSpec, params: Params, factory: Factory) -> Evaluation {
    let mut ctx = Ctx(Vec::new());
    let mut t = Timings::default();
    done(evaluate(spec, &assign(params).trial(), &mut ctx, &mut t, factory).unwrap())
}

/// A model whose training labels are shuffled: the control that must learn nothing.
struct Shuffled(Box<dyn Model>);

impl Model for Shuffled {
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        v: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(y.len() as u64);
        let mut y = y.to_vec();
        y.shuffle(&mut rng);
        let v = v.map(|(vx, vy)| {
            let mut vy = vy.to_vec();
            vy.shuffle(&mut rng);
            (vx, vy)
        });
        self.0.fit(x, &y, v.as_ref().map(|(vx, vy)| (*vx, &vy[..])))
    }
    fn predict(&self, row: &[f64]) -> f64 {
        self.0.predict(row)
    }
    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        self.0.predict_many(rows)
    }
    fn format(&self) -> &'static str {
        self.0.format()
    }
    fn save(&self) -> Result<String, String> {
        self.0.save()
    }
}

#[cfg_attr(not(feature = "lightgbm"), allow(dead_code))]
fn lgbm_spec() -> WalkForwardSpec {
    let mut s = spec(
        &[
            ("mom", "sum(returns, 5) / (std(returns, 20) * 2.236)"),
            ("mom20", "sum(returns, 20) / std(returns, 60)"),
            ("vol", "std(returns, 20)"),
        ],
        0.3,
    );
    s.model.kind = ModelKind::Lightgbm;
    s.label.classify = true;
    s.model.validation = 0.2;
    s.report.objectives = vec!["accuracy".into()];
    s.model.settings = [
        ("num_iterations".to_string(), 200.0),
        ("num_leaves".to_string(), 7.0),
        ("min_data_in_leaf".to_string(), 40.0),
    ]
    .into();
    s
}

#[cfg(feature = "lightgbm")]
#[test]
fn lightgbm_finds_the_planted_edge_and_nothing_in_shuffled_labels() {
    let real = run_with(&lgbm_spec(), Params::new(), model_for);
    let acc = real.metrics["accuracy"];
    // 2,250 out-of-sample days: one standard error of an accuracy is about 0.011.
    assert!(acc > 0.58, "out-of-sample direction accuracy {acc}");
    assert!(real.metrics["sharpe"] > 0.5, "{:?}", real.metrics);
    let control = run_with(&lgbm_spec(), Params::new(), |s| {
        Ok(Box::new(Shuffled(model_for(s)?)))
    });
    let c = control.metrics["accuracy"];
    assert!((0.46..0.54).contains(&c), "shuffled-label accuracy {c}");
    // The last fold's model comes back as LightGBM text with importance and SHAP, and
    // reloads to the predictions it made.
    let a = real.model.expect("artifact");
    assert_eq!(a.format, "lightgbm");
    assert_eq!(a.features.len(), 3);
    assert!(a.rounds.is_some_and(|r| (1..=200).contains(&r)));
    assert!(a.importance.iter().all(|i| i.shap >= 0.0 && i.gain >= 0.0));
    assert!(a.importance.iter().any(|i| i.shap > 0.0));
    assert!(
        a.model.contains("feature_names=mom mom20 vol"),
        "names kept in the model text"
    );
    let m = crate::models::load_model(&a.format, &a.model).unwrap();
    let p = m.predict(&[0.5, 0.1, 0.01]);
    assert!((0.0..=1.0).contains(&p), "{p}");
    // The kept model, reloaded, predicts exactly what it predicted while trading its fold.
    LAST.with(|l| l.borrow_mut().clear());
    let again = run_with(&lgbm_spec(), Params::new(), |s| {
        Ok(Box::new(Remember(model_for(s)?)))
    });
    let a = again.model.unwrap();
    let (rows, preds) = LAST.with(|l| l.borrow().last().cloned().unwrap());
    assert!(rows.len() > 200);
    let reloaded = crate::models::load_model(&a.format, &a.model).unwrap();
    assert_eq!(reloaded.predict_many(&rows).unwrap(), preds);
}

/// Per model made: the rows it was asked to predict and its predictions.
type Predicted = Vec<(Vec<Vec<f64>>, Vec<f64>)>;

thread_local! {
    static LAST: std::cell::RefCell<Predicted> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Keeps what the model predicted while trading.
struct Remember(Box<dyn Model>);

impl Model for Remember {
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        v: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        LAST.with(|l| l.borrow_mut().push((Vec::new(), Vec::new())));
        self.0.fit(x, y, v)
    }
    fn predict(&self, row: &[f64]) -> f64 {
        self.0.predict(row)
    }
    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        let p = self.0.predict_many(rows)?;
        LAST.with(|l| {
            let mut l = l.borrow_mut();
            let last = l.last_mut().expect("fitted first");
            last.0.extend(rows.iter().cloned());
            last.1.extend(&p);
        });
        Ok(p)
    }
    fn format(&self) -> &'static str {
        self.0.format()
    }
    fn save(&self) -> Result<String, String> {
        self.0.save()
    }
    fn rounds(&self) -> Option<u32> {
        self.0.rounds()
    }
}

#[cfg(all(feature = "lstm", feature = "lightgbm"))]
#[test]
fn the_lstm_finds_the_planted_edge_and_nothing_in_shuffled_labels() {
    let mut s = lgbm_spec();
    s.model.kind = ModelKind::Lstm;
    s.model.settings = [
        ("sequence".to_string(), 10.0),
        ("hidden".to_string(), 16.0),
        ("epochs".to_string(), 15.0),
        ("batch".to_string(), 64.0),
        ("learning_rate".to_string(), 0.005),
    ]
    .into();
    // Balanced accuracy: a model that learned nothing and mostly says "up" in a rising
    // market gets the share of up days as its accuracy, but 0.5 here.
    let real = run_with(&s, Params::new(), model_for);
    let acc = real.metrics["balanced_accuracy"];
    assert!(
        acc > 0.58,
        "out-of-sample balanced direction accuracy {acc}"
    );
    // Trained on shuffled labels the network is a random function of its inputs, and
    // with a strongly predictive input that function is right or wrong by chance, with
    // either sign: over seeds (trials 1–4) it averages to no skill, and never reaches
    // the real model.
    let controls: Vec<f64> = (1..=4u64)
        .map(|trial| {
            let mut a = assign(Params::new());
            a.seed = trial;
            let mut ctx = Ctx(Vec::new());
            let mut t = Timings::default();
            let shuffled: Factory = |s| Ok(Box::new(Shuffled(model_for(s)?)));
            done(evaluate(&s, &a.trial(), &mut ctx, &mut t, shuffled).unwrap()).metrics
                ["balanced_accuracy"]
        })
        .collect();
    let mean = controls.iter().sum::<f64>() / 4.0;
    eprintln!("LSTM balanced accuracy {acc:.3}; shuffled-label controls {controls:.3?}");
    assert!(
        (0.47..0.53).contains(&mean),
        "shuffled-label balanced accuracy {controls:?}"
    );
    assert!(
        controls.iter().all(|c| *c < acc - 0.02),
        "{controls:?} vs {acc}"
    );
    // Its kept model reads 10-day sequences and reloads to a working model; a trial
    // parameter overrides the spec's sequence length.
    let a = real.model.unwrap();
    assert_eq!((a.format.as_str(), a.lookback), ("lstm", 10));
    let m = crate::models::load_model(&a.format, &a.model).unwrap();
    let p = m.predict(&[0.1; 30]);
    assert!((0.0..=1.0).contains(&p), "{p}");
    let short: Params = [("sequence".to_string(), ParamValue::Int(5))].into();
    let e = run_with(&s, short, model_for);
    assert_eq!(e.model.unwrap().lookback, 5);
}

#[cfg(feature = "lightgbm")]
#[test]
fn ensembles_vote_blend_and_weigh_by_recent_skill() {
    use mlt_protocol::spec::EnsembleSpec;
    let mut s = lgbm_spec();
    s.model.kind = ModelKind::Ensemble;
    s.model.settings = [
        ("lightgbm.num_iterations".to_string(), 100.0),
        ("lightgbm.num_leaves".to_string(), 7.0),
    ]
    .into();
    let ens = |method: &str, weights: Vec<f64>| EnsembleSpec {
        method: method.parse().unwrap(),
        members: vec![ModelKind::Ridge, ModelKind::Lightgbm],
        weights,
    };
    for method in ["voting", "blending", "dynamic", "stacking"] {
        s.model.ensemble = Some(ens(method, Vec::new()));
        let e = run_with(&s, Params::new(), model_for);
        let acc = e.metrics["balanced_accuracy"];
        assert!(acc > 0.58, "{method}: balanced accuracy {acc}");
        // The kept ensemble reloads, members and weights included.
        let a = e.model.unwrap();
        assert_eq!(a.format, "ensemble");
        let m = crate::models::load_model(&a.format, &a.model).unwrap();
        let p = m.predict(&[0.5, 0.1, 0.01]);
        assert!(p.is_finite(), "{method}: {p}");
    }
    // Voting with all the weight on ridge is the ridge model, trade for trade.
    s.model.ensemble = Some(ens("voting", vec![1.0, 0.0]));
    let only_ridge = run_with(&s, Params::new(), model_for);
    let mut r = s.clone();
    r.model.kind = ModelKind::Ridge;
    r.model.ensemble = None;
    let ridge = run_with(&r, Params::new(), model_for);
    assert_eq!(only_ridge.daily, ridge.daily);
    // Blending and dynamic weights need the validation tail.
    s.model.validation = 0.0;
    s.model.ensemble = Some(ens("blending", Vec::new()));
    let mut ctx = Ctx(Vec::new());
    let out = run_walk_forward(&s, &assign(Params::new()).trial(), &mut ctx);
    assert!(
        matches!(&out, Outcome::Failed(e) if e.contains("validation")),
        "{out:?}"
    );
}

/// Synthetic bars whose volume is the row index, in a CSV file: a spec reading it with
/// `row = volume` as its first feature names every row its model sees.
struct Indexed {
    bars: Bars,
    data: DataSource,
    _dir: tempfile::TempDir,
}

impl Indexed {
    fn new(days: usize, seed: u64, strength: f64) -> Self {
        let mut bars = generate(&Synthetic {
            days,
            seed,
            strength,
            ..Default::default()
        })
        .unwrap();
        bars.volume = Some((0..bars.len()).map(|i| i as f64).collect());
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("idx.csv");
        write_csv(&csv, &bars);
        Self {
            bars,
            data: DataSource::Files {
                paths: vec![csv.display().to_string()],
                adjusted: false,
            },
            _dir: dir,
        }
    }

    /// `s` reads these bars: features `row` (the index), then `mom`.
    fn read_by(&self, s: &mut WalkForwardSpec, mom: &str) {
        s.features = vec![("row".into(), "volume".into()), ("mom".into(), mom.into())];
        s.data = self.data.clone();
    }
}

#[cfg(feature = "lightgbm")]
#[test]
fn stacking_learns_only_from_out_of_fold_training_rows() {
    use mlt_protocol::spec::EnsembleSpec;
    let ix = Indexed::new(2000, 5, 0.3);
    let mut s = lgbm_spec();
    s.model.kind = ModelKind::Ensemble;
    s.label.horizon = 3;
    ix.read_by(&mut s, "sum(returns, 5) / std(returns, 20)");
    s.model.settings = [("lightgbm.num_iterations".to_string(), 30.0)].into();
    s.model.ensemble = Some(EnsembleSpec {
        method: EnsembleMethod::Stacking,
        members: vec![ModelKind::Ridge, ModelKind::Lightgbm],
        weights: Vec::new(),
    });
    SEEN.with(|s| s.borrow_mut().clear());
    STACKED.with(|s| s.borrow_mut().clear());
    // The ensemble of each fold is recorded whole (its training and test rows); inside it,
    // every member model made records what it is fitted on and what it predicts.
    let e = run_with(&s, Params::new(), |s| {
        let members: Factory = |s| Ok(Box::new(MemberRecorder(model_for(s)?, 0)));
        let ensemble = crate::models::ensemble::Ensemble::with_factory(s.clone(), members)?;
        Ok(Box::new(StackRecorder(Recorder(0, Box::new(ensemble)))))
    });
    assert!(e.model.is_some());
    let seen = SEEN.with(|s| s.borrow().clone());
    let stacked = STACKED.with(|s| s.borrow().clone());
    assert_eq!(seen.len(), stacked.len());
    for ((fit, _, test), members) in seen.iter().zip(&stacked) {
        // Inside the ensemble's fit: three out-of-fold blocks of two members, then the two
        // members refitted on every training row.
        assert_eq!(members.len(), 8, "{members:?}");
        let (oof, last) = members.split_at(6);
        assert!(last.iter().all(|(rows, _)| rows == fit));
        let meta: Vec<usize> = oof.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        // The meta-model's rows are training rows, never a test row, and (walk-forward)
        // all of them before the test window.
        assert!(meta.iter().all(|r| fit.contains(r)));
        assert!(
            meta.iter().all(|r| r < &test[0]),
            "{:?} vs {}",
            meta.last(),
            test[0]
        );
        // Out of fold: the first quarter of the rows is only ever fitted on, and each block's
        // members are fitted on rows whose label ends before the block.
        let first_meta = meta.iter().min().unwrap();
        assert!(*first_meta >= fit[fit.len() / 4], "{first_meta}");
        for (fitted, block) in oof {
            assert!(fitted.iter().all(|r| r + 3 < block[0]), "{block:?}");
        }
    }
}

#[test]
fn a_stacked_ensemble_of_trials_learns_only_inside_each_training_window() {
    let ix = Indexed::new(3000, 3, 0.3);
    let mut s = spec(&[], 0.3);
    ix.read_by(&mut s, "sum(returns, 5) / std(returns, 20)");
    s.label.horizon = 3;
    s.windows.holdout = 250;
    let members = [
        (
            0,
            Params::from([("alpha".to_string(), ParamValue::Float(0.1))]),
        ),
        (
            1,
            Params::from([("alpha".to_string(), ParamValue::Float(1e4))]),
        ),
    ];
    SEEN.with(|s| s.borrow_mut().clear());
    let e = trial_ensemble::ensemble_with(&s, &members, EnsembleMethod::Stacking, None, |s| {
        Ok(Box::new(Recorder(0, model_for(s)?)))
    })
    .unwrap();
    let n = 3000 - 250;
    let folds = walk_forward(n, 500, 250, 250, false, 3).unwrap();
    // Per fold (the search's, then the hold-out's window): each member fitted on the fold's
    // training rows, then three stacking blocks of a fit per member.
    let seen = SEEN.with(|s| s.borrow().clone());
    assert_eq!(seen.len(), 8 * (folds.len() + 1));
    let stacks = |k: usize| {
        seen[8 * k + 2..8 * k + 8].chunks(2).map(|pair| {
            assert_eq!(pair[0].0, pair[1].0, "both members fit the same days");
            assert_eq!(pair[0].2, pair[1].2, "and predict the same block");
            (pair[0].0.clone(), pair[0].2.clone())
        })
    };
    for (k, fold) in folds.iter().enumerate() {
        for (before, block) in stacks(k) {
            assert!(!before.is_empty() && !block.is_empty());
            // Fitted and predicted rows are the fold's training rows; the rows fitted on end
            // (label included) before the block they predict.
            assert!(before.iter().chain(&block).all(|d| fold.train.contains(d)));
            assert!(before.iter().all(|d| d + 3 < block[0]));
            assert!(block.iter().all(|d| d + 3 < fold.test[0]));
        }
    }
    // The hold-out's window: everything before the hold-out's first day, purged.
    for (before, block) in stacks(folds.len()) {
        assert!(before.iter().chain(&block).all(|d| d + 3 < n));
    }
    // The meta-model's slopes are the weights: one per member, learned per fold.
    assert_eq!(e.weights.len(), folds.len());
    assert!(e.weights.iter().all(|w| w.len() == 2));
    assert!(e.weights.windows(2).any(|w| w[0] != w[1]));
    assert!(e.metrics["sharpe"].is_finite() && e.holdout.is_some());
    // Each member alone is the plain walk-forward trial.
    let alone = run_with(&s, members[0].1.clone(), model_for);
    assert_eq!(alone.metrics["sharpe"], e.members[0]["sharpe"]);
}

/// Per ensemble fitted: each member model's fit inside it, as (rows fitted on, rows predicted).
type MemberFits = Vec<Vec<(Vec<usize>, Vec<usize>)>>;

thread_local! {
    static STACKED: std::cell::RefCell<MemberFits> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// An ensemble whose fit opens a new record of its members' fits.
struct StackRecorder(Recorder);

impl Model for StackRecorder {
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        v: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        STACKED.with(|s| s.borrow_mut().push(Vec::new()));
        self.0.fit(x, y, v)
    }
    fn predict(&self, row: &[f64]) -> f64 {
        self.0.predict(row)
    }
    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        self.0.predict_many(rows)
    }
    fn format(&self) -> &'static str {
        self.0.format()
    }
    fn save(&self) -> Result<String, String> {
        self.0.save()
    }
}

/// A member of an ensemble that records, in the ensemble's record, the rows (their index, the
/// first feature) it is fitted on and those it predicts while the ensemble is fitted.
struct MemberRecorder(Box<dyn Model>, usize);

impl Model for MemberRecorder {
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        v: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        STACKED.with(|s| {
            let mut s = s.borrow_mut();
            let fits = s.last_mut().expect("inside an ensemble's fit");
            self.1 = fits.len();
            fits.push((x.iter().map(|r| r[0] as usize).collect(), Vec::new()));
        });
        self.0.fit(x, y, v)
    }
    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        STACKED.with(|s| {
            if let Some(fits) = s.borrow_mut().last_mut() {
                if let Some(f) = fits.get_mut(self.1) {
                    f.1.extend(rows.iter().map(|r| r[0] as usize));
                }
            }
        });
        self.0.predict_many(rows)
    }
    fn format(&self) -> &'static str {
        self.0.format()
    }
    fn save(&self) -> Result<String, String> {
        self.0.save()
    }
}

/// Prunes at a given step.
struct PruneAt(u64, Vec<u64>);

impl TrialContext for PruneAt {
    fn report(&mut self, step: u64, _: Vec<f64>) -> Verdict {
        self.1.push(step);
        if step >= self.0 {
            Verdict::Prune
        } else {
            Verdict::Continue
        }
    }
    fn stopped(&self) -> bool {
        false
    }
}

#[cfg(all(feature = "lstm", feature = "lightgbm"))]
#[test]
fn epochs_can_be_the_pruning_budget() {
    let mut s = lgbm_spec();
    s.model.kind = ModelKind::Lstm;
    s.report.budget_epochs = true;
    s.model.early_stopping = 0;
    s.model.settings = [
        ("sequence".to_string(), 5.0),
        ("hidden".to_string(), 8.0),
        ("epochs".to_string(), 4.0),
        ("batch".to_string(), 128.0),
    ]
    .into();
    // One report per epoch over all 9 folds; the last is the result.
    let mut ctx = Ctx(Vec::new());
    let e = done(run_walk_forward(
        &s,
        &assign(Params::new()).trial(),
        &mut ctx,
    ));
    let steps: Vec<u64> = ctx.0.iter().map(|(k, _)| *k).collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
    assert_eq!(ctx.0[3].1, e.values);
    assert_eq!(e.daily.returns.len(), 9 * 250);
    assert!(e
        .model
        .unwrap()
        .rounds
        .is_some_and(|r| (1..=4).contains(&r)));
    // A prune verdict after epoch 2 stops every fold's training there.
    let mut p = PruneAt(2, Vec::new());
    let out = run_walk_forward(&s, &assign(Params::new()).trial(), &mut p);
    assert!(matches!(out, Outcome::Pruned), "{out:?}");
    assert_eq!(p.1, vec![1, 2]);
    // A multi-step head trains epoch by epoch the same way, and keeps its horizons.
    s.label.horizon = 2;
    s.model.settings.insert("outputs".into(), 2.0);
    let mut ctx = Ctx(Vec::new());
    let e = done(run_walk_forward(
        &s,
        &assign(Params::new()).trial(),
        &mut ctx,
    ));
    assert_eq!(ctx.0.len(), 4);
    let a = e.model.unwrap();
    let m = crate::models::load_model(&a.format, &a.model).unwrap();
    assert_eq!(m.horizons(), vec![1, 2]);
}

#[cfg(feature = "lightgbm")]
#[test]
fn boosting_rounds_can_be_the_pruning_budget() {
    let mut s = lgbm_spec();
    s.report.budget_epochs = true;
    // 200 rounds in stages of 20: at most 10 reports, one per stage, over all 9 folds.
    let mut ctx = Ctx(Vec::new());
    let e = done(run_walk_forward(
        &s,
        &assign(Params::new()).trial(),
        &mut ctx,
    ));
    let steps: Vec<u64> = ctx.0.iter().map(|(k, _)| *k).collect();
    assert!(!steps.is_empty() && steps.len() <= 10, "{steps:?}");
    assert!(steps.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(ctx.0.last().unwrap().1, e.values);
    assert!(e.metrics["balanced_accuracy"] > 0.58, "{:?}", e.metrics);
    let a = e.model.unwrap();
    assert_eq!(a.format, "lightgbm-staged");
    assert!(a.rounds.is_some_and(|r| r % 20 == 0 && r <= 200));
    // A prune verdict after the first stage stops every fold there.
    let mut p = PruneAt(1, Vec::new());
    let out = run_walk_forward(&s, &assign(Params::new()).trial(), &mut p);
    assert!(matches!(out, Outcome::Pruned), "{out:?}");
    assert_eq!(p.1, vec![1]);
}

#[cfg(all(feature = "lstm", feature = "lightgbm"))]
#[test]
fn trial_parameters_reach_lightgbm_by_name_or_alias() {
    let mut s = lgbm_spec();
    s.model.validation = 0.0;
    let params: Params = [
        ("n_estimators".to_string(), ParamValue::Int(3)),
        ("learning_rate".to_string(), ParamValue::Float(0.2)),
    ]
    .into();
    let e = run_with(&s, params, model_for);
    let a = e.model.unwrap();
    // Three rounds, as the trial asked, and its learning rate in the model text.
    assert_eq!(a.rounds, Some(3));
    assert!(
        a.model.contains("[learning_rate: 0.2]"),
        "{}",
        &a.model[..a.model.len().min(2000)]
    );
    let bad: Params = [("learning_rate".to_string(), ParamValue::Str("x".into()))].into();
    let mut ctx = Ctx(Vec::new());
    let out = run_walk_forward(&s, &assign(bad).trial(), &mut ctx);
    assert!(
        matches!(&out, Outcome::Failed(e) if e.contains("learning_rate")),
        "{out:?}"
    );
}

/// Per model made: (fit rows, validation rows, predicted rows), by row index.
type Seen = Vec<(Vec<usize>, Vec<usize>, Vec<usize>)>;

thread_local! {
    static SEEN: std::cell::RefCell<Seen> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Records which rows (the first feature is the row index) it is fitted, validated and
/// asked to predict on, and the targets each training row is fitted on.
struct Recorder(usize, Box<dyn Model>);

impl Model for Recorder {
    fn fit(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        v: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        let idx = |x: &[Vec<f64>]| x.iter().map(|r| r[0] as usize).collect::<Vec<_>>();
        SEEN.with(|s| {
            let mut s = s.borrow_mut();
            self.0 = s.len();
            s.push((idx(x), v.map_or(Vec::new(), |(vx, _)| idx(vx)), Vec::new()));
        });
        let k = (y.len() / x.len().max(1)).max(1);
        TARGETS.with(|t| {
            t.borrow_mut().push(
                x.iter()
                    .zip(y.chunks(k))
                    .map(|(r, y)| (r[0] as usize, y.to_vec()))
                    .collect(),
            )
        });
        self.1.fit(x, y, v)
    }
    fn predict(&self, row: &[f64]) -> f64 {
        self.1.predict(row)
    }
    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        SEEN.with(|s| {
            s.borrow_mut()[self.0]
                .2
                .extend(rows.iter().map(|r| r[0] as usize))
        });
        self.1.predict_many(rows)
    }
    fn format(&self) -> &'static str {
        self.1.format()
    }
    fn save(&self) -> Result<String, String> {
        self.1.save()
    }
}

/// Per fit: each training row's index (its first feature) and targets.
type Fits = Vec<Vec<(usize, Vec<f64>)>>;

thread_local! {
    static TARGETS: std::cell::RefCell<Fits> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(feature = "lstm")]
#[test]
fn a_multi_step_head_is_fitted_on_every_horizon_up_to_the_label() {
    let ix = Indexed::new(1200, 8, Synthetic::default().strength);
    let b = &ix.bars;
    let mut s = lgbm_spec();
    s.model.kind = ModelKind::Lstm;
    ix.read_by(&mut s, "sum(returns, 5)");
    s.windows.train = 400;
    s.windows.test = 200;
    s.windows.step = 200;
    s.label.horizon = 4;
    s.label.classify = false;
    s.model.settings = [
        ("sequence".to_string(), 3.0),
        ("hidden".to_string(), 4.0),
        ("epochs".to_string(), 2.0),
        ("outputs".to_string(), 2.0),
    ]
    .into();
    TARGETS.with(|t| t.borrow_mut().clear());
    let e = run_with(&s, Params::new(), |s| {
        Ok(Box::new(Recorder(0, model_for(s)?)))
    });
    let fits = TARGETS.with(|t| t.borrow().clone());
    assert!(fits.len() >= 3, "one fit per fold: {}", fits.len());
    // Two outputs over a 4-day label: the 2-day and the 4-day forward return.
    let (r2, r4) = (forward_return(&b.close, 2), forward_return(&b.close, 4));
    for rows in &fits {
        assert!(rows.len() > 200);
        // A row names its first step's day; its own day is the sequence's last.
        for (first, y) in rows {
            let t = first + 2;
            assert_eq!(y, &vec![r2[t], r4[t]], "row {t}");
        }
    }
    // The kept model predicts both horizons, the label's last and traded.
    let a = e.model.expect("the last fold's model is kept");
    let m = crate::models::load_model(&a.format, &a.model).unwrap();
    assert_eq!(m.horizons(), vec![2, 4]);
    let p = crate::predict::predict_bars(&a, b, "idx.csv").unwrap();
    assert_eq!(p.horizons, vec![2, 4]);
    let last = p.rows.iter().rposition(|r| r[1].is_finite()).unwrap();
    assert!(p.rows[last][0].is_finite());
    // More outputs than the label has days is an error naming the setting.
    s.model.settings.insert("outputs".into(), 5.0);
    let mut ctx = Ctx(Vec::new());
    let err = evaluate(
        &s,
        &assign(Params::new()).trial(),
        &mut ctx,
        &mut Timings::default(),
        model_for,
    )
    .expect_err("5 outputs over a 4-day horizon");
    assert!(err.contains("`outputs` = 5"), "{err}");
}

#[test]
fn a_searched_multi_step_head_is_checked_before_the_study_runs() {
    let parse = |model: &str, space: &str| {
        let text = format!(
            "[study]\nname = \"m\"\nn_trials = 2\n[space]\n{space}\n[objective]\nkind = \"walk_forward\"\ndata = \"synthetic\"\nsynthetic = {{ days = 800 }}\nfeatures = {{ m = \"returns\" }}\nhorizon = 3\ntrain = 300\ntest = 100\n{model}"
        );
        let s = mlt_spec::parse(&text, "m.toml").unwrap();
        let mlt_protocol::spec::ObjectiveSpec::WalkForward(w) = &s.objective else {
            panic!()
        };
        check(w, &s.space, None)
    };
    let lstm = "model = \"lstm\"";
    assert!(parse(lstm, "outputs = { type = \"int\", low = 1, high = 3 }").is_ok());
    let (key, msg) = parse(lstm, "outputs = { type = \"int\", low = 1, high = 4 }").unwrap_err();
    assert_eq!(key, "space.outputs");
    assert!(msg.contains("more than the 3-day horizon"), "{msg}");
    let ensemble = "model = \"ensemble\"\n[objective.ensemble]\nmembers = [\"ridge\", \"lstm\"]";
    let (key, msg) = parse(
        ensemble,
        "\"lstm.outputs\" = { type = \"categorical\", choices = [1, 2] }",
    )
    .unwrap_err();
    assert_eq!(key, "space.lstm.outputs");
    assert!(msg.contains("needs `model = \"lstm\"`"), "{msg}");
}

#[cfg(feature = "lightgbm")]
#[test]
fn early_stopping_never_sees_a_test_row() {
    let ix = Indexed::new(2000, 5, Synthetic::default().strength);
    for (horizon, validation, cpcv_splits) in [(1, 0.2, false), (5, 0.3, false), (3, 0.25, true)] {
        let mut s = lgbm_spec();
        ix.read_by(&mut s, "sum(returns, 5)");
        s.label.horizon = horizon;
        s.model.validation = validation;
        if cpcv_splits {
            s.windows.splits = Splits::Cpcv {
                groups: 5,
                test_groups: 2,
                embargo: 2,
            };
        }
        SEEN.with(|s| s.borrow_mut().clear());
        run_with(&s, Params::new(), |s| {
            Ok(Box::new(Recorder(0, model_for(s)?)))
        });
        let seen = SEEN.with(|s| s.borrow().clone());
        assert!(!seen.is_empty());
        for (fit, valid, test) in &seen {
            assert!(!valid.is_empty() && !test.is_empty() && !fit.is_empty());
            let (v0, v1) = (valid[0], *valid.last().unwrap());
            // The validation tail is the end of the training rows, purged from the rest.
            let before: Vec<&usize> = fit.iter().filter(|&&t| t < v0).collect();
            assert!(before.iter().all(|&&t| t + (horizon as usize) < v0));
            // No test row is ever fitted or validated on, and in walk-forward the tail
            // ends before the test window starts.
            assert!(test.iter().all(|t| !fit.contains(t) && !valid.contains(t)));
            if !cpcv_splits {
                assert!(
                    v1 < test[0],
                    "validation {v0}..={v1}, test from {}",
                    test[0]
                );
                assert!(fit.iter().all(|&t| t < v0));
            }
        }
    }
}

#[test]
fn the_momentum_edge_is_found_out_of_sample_and_reported_per_fold() {
    // 5-day momentum in units of its own dispersion: the synthetic market's planted edge.
    let feats = [("mom", "sum(returns, 5) / (std(returns, $w) * 2.236)")];
    let params: Params = [("w".to_string(), ParamValue::Int(20))]
        .into_iter()
        .collect();
    let mut ctx = Ctx(Vec::new());
    let out = run_walk_forward(
        &spec(&feats, 0.15),
        &assign(params.clone()).trial(),
        &mut ctx,
    );
    let Evaluation {
        values,
        metrics,
        daily,
        ..
    } = done(out);
    let returns = daily.by_decision_day();
    // 3000 days, 500 train, 250 test: (3000 − 501) / 250 = 9 folds, reported in order.
    assert_eq!(ctx.0.len(), 9);
    assert!(ctx
        .0
        .iter()
        .enumerate()
        .all(|(i, (s, v))| *s == i as u64 + 1 && v.len() == 2));
    assert_eq!(values, vec![metrics["sharpe"], metrics["max_drawdown"]]);
    // The out-of-sample returns travel with the result: one per test day, dated, and
    // the reported metrics are theirs.
    assert_eq!(returns.values.len(), 9 * 250);
    assert_eq!(returns.days.len(), returns.values.len());
    assert!(returns.days.windows(2).all(|w| w[0] < w[1]));
    assert!((m::sharpe(&returns.values) - metrics["sharpe"]).abs() < 1e-12);
    // The last cumulative report is the final result (computed in full here, as max
    // drawdown is an objective) ...
    assert_eq!(ctx.0[8].1, values);
    // ... and from running sums when every objective allows it: the same numbers.
    let mut sharpe_only = spec(&feats, 0.15);
    sharpe_only.report.objectives = vec!["sharpe".into(), "win_rate".into()];
    let mut c3 = Ctx(Vec::new());
    let Evaluation {
        values: v3,
        metrics: m3,
        ..
    } = done(run_walk_forward(
        &sharpe_only,
        &assign(params.clone()).trial(),
        &mut c3,
    ));
    assert_eq!(v3, vec![m3["sharpe"], m3["win_rate"]]);
    for (a, b) in c3.0[8].1.iter().zip(&v3) {
        assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert!(metrics["sharpe"] > 0.5, "{metrics:?}");
    assert!(metrics["accuracy"] > 0.5);
    // Per-fold reports: each fold's own Sharpe (the first fold's equals the cumulative one).
    let mut per = spec(&feats, 0.15);
    per.report.per_fold = true;
    let mut ctx2 = Ctx(Vec::new());
    run_walk_forward(&per, &assign(params.clone()).trial(), &mut ctx2);
    assert_eq!(ctx2.0[0].1, ctx.0[0].1);
    assert_ne!(ctx2.0[8].1, ctx.0[8].1);
    // Several instruments: one pooled model, an equal-weight portfolio (its Sharpe is
    // higher than one instrument's, the edges being independent).
    let mut many = spec(&feats, 0.15);
    many.data = DataSource::Synthetic {
        days: 3000,
        seed: 3,
        strength: 0.15,
        instruments: 4,
    };
    let out = run_walk_forward(&many, &assign(params.clone()).trial(), &mut Ctx(Vec::new()));
    let port = done(out).metrics;
    assert!(
        port["sharpe"] > metrics["sharpe"],
        "{} vs {}",
        port["sharpe"],
        metrics["sharpe"]
    );
    // Classifying the direction finds the same edge.
    let mut cls = spec(&feats, 0.15);
    cls.label.classify = true;
    let out = run_walk_forward(&cls, &assign(params.clone()).trial(), &mut Ctx(Vec::new()));
    let c = done(out).metrics;
    assert!(c["sharpe"] > 0.5 && c["accuracy"] > 0.5, "{c:?}");
    // Without an edge the same pipeline finds none.
    let out = run_walk_forward(
        &spec(&feats, 0.0),
        &assign(params.clone()).trial(),
        &mut Ctx(Vec::new()),
    );
    let flat = done(out).metrics;
    assert!(flat["sharpe"].abs() < metrics["sharpe"] / 2.0, "{flat:?}");
    // A feature that looks ahead fails the trial, naming it.
    let out = run_walk_forward(
        &spec(&[("peek", "ref(returns, -1)")], 0.1),
        &assign(params).trial(),
        &mut Ctx(Vec::new()),
    );
    let Outcome::Failed(msg) = out else { panic!() };
    assert!(msg.contains("feature `peek` looks ahead"), "{msg}");
    // A missing parameter is named too.
    let out = run_walk_forward(
        &spec(&feats, 0.1),
        &assign(Params::new()).trial(),
        &mut Ctx(Vec::new()),
    );
    let Outcome::Failed(msg) = out else { panic!() };
    assert!(msg.contains("`$w` is not a parameter"), "{msg}");
}

#[test]
fn the_metrics_a_spec_may_name_are_exactly_those_a_trial_reports() {
    use mlt_spec::tables::WALK_FORWARD_METRICS;
    use std::collections::BTreeSet;
    let feats = [("mom", "sum(returns, 5) / std(returns, 20)")];
    let allowed: BTreeSet<&str> = WALK_FORWARD_METRICS.into_iter().collect();
    let mut s = spec(&feats, 0.15);
    s.report.objectives = WALK_FORWARD_METRICS.iter().map(|m| m.to_string()).collect();
    let mut ctx = Ctx(Vec::new());
    let e = done(run_walk_forward(
        &s,
        &assign(Params::new()).trial(),
        &mut ctx,
    ));
    let reported: BTreeSet<&str> = e.metrics.keys().map(String::as_str).collect();
    assert_eq!(reported, allowed);
    // Every objective is reported after every fold, not only at the end.
    assert!(!ctx.0.is_empty() && ctx.0.iter().all(|(_, v)| v.len() == allowed.len()));
    // CPCV reports the same, plus its paths' count and the spread of their Sharpe ratios.
    s.windows.splits = Splits::Cpcv {
        groups: 6,
        test_groups: 2,
        embargo: 5,
    };
    let e = done(run_walk_forward(
        &s,
        &assign(Params::new()).trial(),
        &mut Ctx(Vec::new()),
    ));
    let reported: BTreeSet<&str> = e.metrics.keys().map(String::as_str).collect();
    let extra: BTreeSet<&str> = reported.difference(&allowed).copied().collect();
    assert!(allowed.is_subset(&reported));
    assert_eq!(extra, BTreeSet::from(["paths", "sharpe_path_std"]));
}

#[test]
fn the_static_proof_tries_every_categorical_choice_and_the_middle_of_a_range() {
    use mlt_protocol::spec::{Distribution, ParamSpec, SearchSpace};
    let space = |dist: Distribution| SearchSpace {
        params: vec![ParamSpec {
            name: "k".into(),
            dist,
            when: Vec::new(),
        }],
    };
    let s = spec(&[("peek", "mean(returns, 5) / ref(close, $k)")], 0.15);
    // The first and the last choice are fine; the one in between reads tomorrow.
    let cat = space(Distribution::Categorical {
        choices: vec![ParamValue::Int(5), ParamValue::Int(-1), ParamValue::Int(10)],
    });
    let (key, e) = check(&s, &cat, None).unwrap_err();
    assert_eq!(key, "objective.features.peek");
    assert!(
        e.contains("looks ahead") && e.contains("`ref(close, -1)`") && e.contains("k = -1"),
        "{e}"
    );
    // So is a range whose low end reads ahead, and one whose ends are fine is accepted.
    let low = space(Distribution::Int {
        low: -2,
        high: 10,
        step: 1,
        log: false,
    });
    let (_, e) = check(&s, &low, None).unwrap_err();
    assert!(
        e.contains("`ref(close, -2)`") && e.contains("k = -2"),
        "{e}"
    );
    let fine = space(Distribution::Int {
        low: 1,
        high: 10,
        step: 1,
        log: false,
    });
    check(&s, &fine, None).unwrap();
    // A feature with no value on any day is refused by name, not left to fail every trial.
    let empty = spec(&[("far", "ref(close, 5000)")], 0.15);
    let (key, e) = check(&empty, &SearchSpace::default(), None).unwrap_err();
    assert_eq!(key, "objective.features.far");
    assert!(e.contains("has no value on any of the 3000 days"), "{e}");
}

#[test]
fn a_raw_price_level_on_adjusted_data_is_warned_about() {
    let mut s = spec(
        &[
            ("level", "mean(close, $w)"),
            ("ratio", "close / ref(close, $w) - 1"),
            ("atr", "atr(14)"),
        ],
        0.1,
    );
    // Synthetic bars are never adjusted.
    assert!(adjusted_levels(&s).is_empty());
    s.data = DataSource::Files {
        paths: vec!["spy.csv".into()],
        adjusted: true,
    };
    let keys: Vec<String> = adjusted_levels(&s).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec!["objective.features.level", "objective.features.atr"]
    );
    s.data = DataSource::Files {
        paths: vec!["spy.csv".into()],
        adjusted: false,
    };
    assert!(adjusted_levels(&s).is_empty());
}

#[test]
fn overlapping_test_windows_are_refused_so_a_day_counts_once() {
    let mut s = spec(&[("mom", "sum(returns, 5) / std(returns, 20)")], 0.15);
    s.windows.step = 100;
    let out = run_walk_forward(&s, &assign(Params::new()).trial(), &mut Ctx(Vec::new()));
    let Outcome::Failed(msg) = out else {
        panic!("{out:?}")
    };
    assert!(
        msg.contains("100-day step") && msg.contains("250-day test"),
        "{msg}"
    );
    // With step = test every out-of-sample day is traded once.
    s.windows.step = 250;
    let e = done(run_walk_forward(
        &s,
        &assign(Params::new()).trial(),
        &mut Ctx(Vec::new()),
    ));
    let days = &e.daily.decided;
    assert!(
        days.windows(2).all(|w| w[0] < w[1]),
        "days in order, none twice"
    );
    assert_eq!(e.metrics["observations"], days.len() as f64);
}

/// A model that always predicts "up": buy-and-hold dressed as a model.
struct AlwaysUp;

impl Model for AlwaysUp {
    fn fit(
        &mut self,
        _: &[Vec<f64>],
        _: &[f64],
        _: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        Ok(())
    }
    fn predict(&self, _: &[f64]) -> f64 {
        1.0
    }
    fn format(&self) -> &'static str {
        "ridge"
    }
    fn save(&self) -> Result<String, String> {
        Ok("{}".into())
    }
}

#[test]
fn the_benchmark_is_buy_and_hold_over_the_same_days_and_unmasks_a_model_that_is_always_long() {
    let feats = [("mom", "sum(returns, 5) / (std(returns, 20) * 2.236)")];
    let mut s = spec(&feats, 0.15);
    s.report.objectives = vec!["information_ratio".into()];
    // A real model: the benchmark is the instrument's next-day return on each decision day,
    // dated the day it is earned, and the metrics are those of the daily series.
    let e = run_with(&s, Params::new(), model_for);
    let b = generate(&Synthetic {
        days: 3000,
        seed: 3,
        strength: 0.15,
        ..Default::default()
    })
    .unwrap();
    let next = forward_return(&b.close, 1);
    let d = &e.daily;
    assert!(d.is_consistent() && !d.returns.is_empty());
    for i in 0..d.decided.len() {
        let t = b.days.iter().position(|x| *x == d.decided[i]).unwrap();
        assert_eq!(d.benchmark[i], next[t]);
        assert_eq!(d.earned[i], Some(b.days[t + 1]));
    }
    let rel = m::relative(&d.returns, &d.benchmark);
    assert_eq!(e.metrics["information_ratio"], rel.information_ratio);
    assert_eq!(e.values, vec![rel.information_ratio]);
    assert_eq!(e.metrics["beta"], rel.beta);
    let held = d.positions.iter().filter(|p| p[0] != 0.0).count() as f64;
    assert_eq!(e.metrics["time_in_market"], held / d.decided.len() as f64);
    // The planted edge is skill: significant excess over buy-and-hold.
    assert!(e.metrics["excess_t"] > 2.0, "{:?}", e.metrics);

    // Always long, without costs: the strategy IS the benchmark. Its Sharpe is the market's,
    // its excess return and alpha are 0, its beta 1, and it is long on every day.
    let up = run_with(&s, Params::new(), |_| Ok(Box::new(AlwaysUp)));
    let u = &up.metrics;
    assert_eq!(u["long_days"], 1.0);
    assert_eq!(u["time_in_market"], 1.0);
    assert!((u["beta"] - 1.0).abs() < 1e-9, "{u:?}");
    assert!(
        u["excess_return"].abs() < 1e-9 && u["alpha"].abs() < 1e-9,
        "{u:?}"
    );
    assert!((u["sharpe"] - u["benchmark_sharpe"]).abs() < 1e-9, "{u:?}");
}

#[test]
fn monte_carlo_windows_are_purged_embargoed_reported_and_each_day_kept_once() {
    let ix = Indexed::new(1500, 6, 0.15);
    let mut s = spec(&[], 0.15);
    ix.read_by(&mut s, "sum(returns, 5) / (std(returns, 20) * 2.236)");
    s.model.kind = ModelKind::Ridge;
    (s.windows.test, s.label.horizon) = (100, 3);
    s.windows.splits = Splits::MonteCarlo {
        windows: 12,
        embargo: 4,
        seed: 7,
    };
    SEEN.with(|s| s.borrow_mut().clear());
    let mut ctx = Ctx(Vec::new());
    let out = evaluate(
        &s,
        &assign(Params::new()).trial(),
        &mut ctx,
        &mut Timings::default(),
        |s| Ok(Box::new(Recorder(0, model_for(s)?))),
    )
    .unwrap();
    let e = done(out);
    // One fit and one report per window.
    let seen = SEEN.with(|s| s.borrow().clone());
    assert_eq!(seen.len(), 12);
    assert_eq!(ctx.0.len(), 12);
    for (fit, _, test) in &seen {
        // The rows it predicted: one contiguous window of 100 days (those with features).
        let (first, last) = (test[0], *test.last().unwrap());
        assert!(last - first < 100 && test.windows(2).all(|w| w[1] == w[0] + 1));
        // No training row's 3-day label reaches the window; none within the embargo after.
        assert!(
            fit.iter().all(|&t| t + 3 < first || t > last + 3 + 4),
            "window {first}..={last}"
        );
        assert!(
            fit.iter().any(|&t| t > last),
            "trained after the window too"
        );
    }
    // Reported like CPCV: each metric's mean over the windows, with their count and spread.
    assert_eq!(e.metrics["windows"], 12.0);
    assert!(e.metrics["sharpe_window_std"] > 0.0);
    assert_eq!(
        e.values,
        vec![e.metrics["sharpe"], e.metrics["max_drawdown"]]
    );
    // The daily series keeps each day once, in order, whatever the windows' overlaps.
    let d = &e.daily;
    assert!(d.is_consistent());
    assert!(d.decided.windows(2).all(|w| w[0] < w[1]));
    let tested: std::collections::BTreeSet<usize> = seen
        .iter()
        .flat_map(|(_, _, t)| t.iter().copied())
        .collect();
    assert_eq!(d.decided.len(), tested.len());
    // The same seed, the same windows: a second trial is tested on the same days.
    let again = run_with(&s, Params::new(), model_for);
    assert_eq!(again.daily.decided, d.decided);
    // Without the embargo and purge room the data is refused, naming the key.
    s.windows.test = 750;
    let (key, msg) = check(&s, &Default::default(), None).unwrap_err();
    assert_eq!(key, "objective.test");
    assert!(msg.contains("Monte Carlo"), "{msg}");
}

#[test]
fn stability_breaks_the_days_down_by_fold_year_and_regime() {
    let feats = [("mom", "sum(returns, 5) / (std(returns, 20) * 2.236)")];
    let s = spec(&feats, 0.15);
    let e = run_with(&s, Params::new(), model_for);
    let d = &e.daily;
    let st = &d.stability;
    let n = d.decided.len() as u64;
    // 9 folds of 250 days, in order; every breakdown covers every day once (the regimes
    // every day with 63 returns behind it: all of them, the first fold starting at 501).
    assert_eq!(st.folds.len(), 9);
    let labels: Vec<&str> = st.folds.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(labels, vec!["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    for part in [&st.folds, &st.years, &st.volatility, &st.trend] {
        assert_eq!(part.iter().map(|p| p.days).sum::<u64>(), n);
    }
    let vol: Vec<&str> = st.volatility.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(vol, vec!["calm", "normal", "volatile"]);
    assert!(st.volatility.iter().all(|v| v.days > n / 4), "terciles");
    // A fold's figures are those of its days.
    let r1 = &d.returns[..250];
    assert_eq!(st.folds[0].sharpe, m::sharpe(r1));
    let total = r1.iter().map(|x| 1.0 + x).product::<f64>() - 1.0;
    assert!((st.folds[0].total_return - total).abs() < 1e-12);
    let held: Vec<usize> = (0..250).filter(|&i| d.positions[i][0] != 0.0).collect();
    let hits = held.iter().filter(|&&i| d.returns[i] > 0.0).count();
    assert_eq!(st.folds[0].hit_rate, hits as f64 / held.len() as f64);
    // Years follow the day each return is earned.
    let first_year = &mlt_eval_day(d.earned[0].unwrap())[..4];
    assert_eq!(st.years[0].label, first_year);
    // The planted edge is information: the IC is positive, overall and in most folds.
    assert!(e.metrics["ic"] > 0.0, "{:?}", e.metrics);
    assert!(st.folds.iter().filter(|f| f.ic > 0.0).count() >= 7);
    // The summary metrics agree with the folds.
    let positive = st.folds.iter().filter(|f| f.sharpe > 0.0).count() as f64 / 9.0;
    assert_eq!(e.metrics["positive_folds"], positive);
    // Confusion counts: every (day, instrument) with a prediction and a known next return.
    let c = ["true_up", "false_up", "true_down", "false_down"].map(|k| e.metrics[k]);
    assert_eq!(c.iter().sum::<f64>(), n as f64);
    assert_eq!((c[0] + c[2]) / n as f64, e.metrics["accuracy"]);
}

fn mlt_eval_day(d: i64) -> String {
    crate::data::format_day(d)
}
