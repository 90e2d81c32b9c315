//! `mlt-bench models`: what the walk-forward evaluation costs around its models.
//!
//! LightGBM: one walk-forward trial (Alpha158-like features on SPY, 504/126-day folds, a
//! direction classifier with early stopping on the last 20% of each training window) timed
//! whole, against bare lightgbm3 calls — Dataset, train with the same validation tail and
//! parameters, predict — on exactly the same arrays, best of seven interleaved runs each. The difference is our overhead: features
//! and the look-ahead guard, splits, positions, costs, metrics, reports, the kept model.
use crate::eval::{alpha_like, Quiet};
use lightgbm3::{Booster, Dataset};
use mlt_eval::cache;
use mlt_eval::data::{read_csv, Bars};
use mlt_eval::features::{eval, parse};
use mlt_eval::labels::direction;
use mlt_eval::models::lgbm::Lgbm;
use mlt_eval::models::{ModelSettings, Slot, Training};
use mlt_eval::splits::walk_forward;
use mlt_eval::synthetic::{generate, Synthetic};
use mlt_eval::{run_walk_forward_timed, validation_split, Timings};
use mlt_protocol::messages::Outcome;
use mlt_protocol::spec::{DataSource, WalkForwardSpec};
use std::path::Path;
use std::time::Instant;

fn spec(data: DataSource, features: &[(String, String)], rounds: f64) -> WalkForwardSpec {
    let mut s = WalkForwardSpec::new(data, features.to_vec());
    s.label.classify = true;
    (s.windows.test, s.windows.step) = (126, 126);
    s.model.kind = mlt_protocol::spec::ModelKind::Lightgbm;
    s.model.settings = [("num_iterations".to_string(), rounds)].into();
    s.model.validation = 0.2;
    s
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
        name: mlt_protocol::spec::ModelKind::Lightgbm,
        classify: true,
        params: spec.model.settings.clone(),
        training: Training {
            early_stopping: spec.model.early_stopping,
            ..Default::default()
        },
        slot: Slot {
            threads: 1,
            seed: 0,
            ..Default::default()
        },
        ..Default::default()
    })
    .params(true);
    // The arrays are built before the clock starts: only LightGBM's own work is timed.
    let mut work = Vec::new();
    for f in &folds {
        let (fit, valid) = validation_split(&f.train, spec.model.validation, 1);
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
        let trial = crate::eval::trial();
        // Each side timed seven times, best of, the three interleaved (cold, warm, bare, cold,
        // …) so that a slow spell of this shared machine hits all of them alike. Cold: the
        // node's feature cache emptied first (the first trial on a node); warm: its columns
        // kept from an earlier trial (every later trial of a study that shares these features).
        let ours = |cold: bool| -> anyhow::Result<Timings> {
            if cold {
                cache::reset(cache::DEFAULT_BUDGET);
            }
            let (out, t) = run_walk_forward_timed(&s, &trial, &mut Quiet);
            if let Outcome::Failed(e) = out {
                anyhow::bail!(e);
            }
            Ok(t)
        };
        let _ = ours(false)?;
        let _ = bare(&s, bars).map_err(anyhow::Error::msg)?;
        let slowest = Timings {
            total: f64::INFINITY,
            ..Default::default()
        };
        let (mut cold, mut warm, mut theirs, mut bare_folds) = (slowest, slowest, f64::INFINITY, 0);
        for _ in 0..7 {
            let c = ours(true)?;
            if c.total < cold.total {
                cold = c;
            }
            let w = ours(false)?;
            if w.total < warm.total {
                warm = w;
            }
            let (b, n) = bare(&s, bars).map_err(anyhow::Error::msg)?;
            theirs = theirs.min(b);
            bare_folds = n;
        }
        let folds = cold.folds;
        anyhow::ensure!(
            folds == bare_folds,
            "fold counts differ: {folds} vs {bare_folds}"
        );
        let per = |x: f64| 1e3 * x / folds as f64;
        println!(
            "| {name} | {} | {rounds:.0} | {folds} | {:.2} ms | {:.2} ms ({:+.1}%) | {:.2} ms ({:+.1}%) | {:.1} ms |",
            features.len(),
            per(theirs),
            per(cold.total),
            100.0 * (cold.total - theirs) / theirs,
            per(warm.total),
            100.0 * (warm.total - theirs) / theirs,
            1e3 * cold.features,
        );
        // Where a warm trial's time goes beyond LightGBM's (to stderr: the table stays whole).
        eprintln!(
            "  {name}, {rounds:.0} rounds, warm: total {:.1} ms = load {:.1} + features {:.1} + fits {:.1} + predict/trade {:.1} + kept model {:.1} + other {:.1}; bare {:.1}",
            1e3 * warm.total,
            1e3 * warm.load,
            1e3 * warm.features,
            1e3 * warm.fit,
            1e3 * warm.trade,
            1e3 * warm.keep,
            1e3 * (warm.total - warm.load - warm.features - warm.fit - warm.trade - warm.keep),
            1e3 * theirs,
        );
    }
    Ok(())
}

/// `mlt-cluster run` of examples/lgbm-spy.toml with `trials` trials and the given pruner
/// (`none` or its own Hyperband) on `data`: wall time, and the best trial's OOS Sharpe and
/// hold-out Sharpe.
fn sweep(trials: u32, prune: bool, data: Option<&Path>) -> anyhow::Result<(f64, f64, f64, u64)> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/lgbm-spy.toml");
    let mut text = std::fs::read_to_string(&example)?
        .replace("n_trials = 24", &format!("n_trials = {trials}"));
    if !prune {
        let start = text.find("[pruner]").expect("the example has a pruner");
        let end = text[start..].find("[space]").expect("then a space") + start;
        text.replace_range(start..end, "[pruner]\nkind = \"none\"\n\n");
    }
    let dir = tempfile::tempdir()?;
    let spec = dir.path().join("sweep.toml");
    std::fs::write(&spec, text)?;
    let store = dir.path().join("data");
    let mut cmd = std::process::Command::new(crate::mlt_binary()?);
    cmd.arg("run")
        .arg(&spec)
        .arg("--data-dir")
        .arg(&store)
        // One slot: trials run one after another, so TPE sees the same results in the same
        // order and the sweep is the same on every run.
        .arg("--slots")
        .arg("1");
    if let Some(d) = data {
        cmd.arg("--data").arg(d);
    }
    let t0 = Instant::now();
    let out = cmd.output()?;
    let wall = t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let best = std::process::Command::new(crate::mlt_binary()?)
        .args(["best", "lgbm-spy", "--json", "--data-dir"])
        .arg(&store)
        .output()?;
    let b: serde_json::Value = serde_json::from_slice(&best.stdout)?;
    let trials_out = std::process::Command::new(crate::mlt_binary()?)
        .args(["trials", "lgbm-spy", "--json", "--data-dir"])
        .arg(&store)
        .output()?;
    let ts: serde_json::Value = serde_json::from_slice(&trials_out.stdout)?;
    let steps: u64 = ts
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["origin"] == "sampler")
                .map(|t| t["intermediate"].as_object().map_or(0, |m| m.len() as u64))
                .sum()
        })
        .unwrap_or(0);
    Ok((
        wall,
        b[0]["values"][0].as_f64().unwrap_or(f64::NAN),
        b[0]["metrics"]["holdout_sharpe"]
            .as_f64()
            .unwrap_or(f64::NAN),
        steps,
    ))
}

/// Runs the LightGBM comparisons.
pub fn run(
    trials: u32,
    lstm_only: bool,
    lightgbm_only: bool,
    sweep_only: bool,
) -> anyhow::Result<()> {
    if lstm_only {
        return lstm_table();
    }
    let spy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/SPY.csv");
    if sweep_only {
        return sweep_table(trials, &spy);
    }
    println!(
        "### LightGBM: our walk-forward per fold vs bare lightgbm3 on the same arrays (1 thread)\n"
    );
    println!("| data | features | max rounds | folds | bare lightgbm3 per fold | ours, cold cache | ours, warm cache | features + guard, cold (whole trial) |");
    println!("|---|---|---|---|---|---|---|---|");
    let set = alpha_like();
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
    if lightgbm_only {
        return Ok(());
    }
    sweep_table(trials, &spy)?;
    lstm_table()
}

/// The sweep with Hyperband against the same sweep without pruning.
fn sweep_table(trials: u32, spy: &Path) -> anyhow::Result<()> {
    println!("\n### A {trials}-trial LightGBM sweep (examples/lgbm-spy.toml, TPE, 1 slot: the same trials in the same order): Hyperband vs no pruning\n");
    println!("| data | pruner | wall time | folds run | best OOS Sharpe | its hold-out Sharpe |");
    println!("|---|---|---|---|---|---|");
    let data = spy.exists().then_some(spy);
    let label = if data.is_some() {
        "SPY.csv"
    } else {
        "synthetic"
    };
    for (prune, name) in [(false, "none"), (true, "hyperband")] {
        let (wall, best, hold, steps) = sweep(trials, prune, data)?;
        println!("| {label} | {name} | {wall:.1} s | {steps} | {best:.3} | {hold:.3} |");
    }
    Ok(())
}

fn lstm_table() -> anyhow::Result<()> {
    println!("\n### LSTM training throughput on CPU (flex backend): ours vs burn's nn::Lstm\n");
    println!(
        "| layers × units | steps | features | batch | samples | ours | burn nn::Lstm | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    lstm_throughput(2048, 2)
}

/// Random sequences: `n` rows of `steps` × `features` values and binary labels.
fn sequences(n: usize, steps: usize, features: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let x: Vec<Vec<f64>> = (0..n)
        .map(|_| {
            (0..steps * features)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect()
        })
        .collect();
    let y = x.iter().map(|r| f64::from(u8::from(r[0] > 0.0))).collect();
    (x, y)
}

/// Training samples per second of our LSTM (fused gates) and of a model built on burn's
/// `nn::Lstm`, same sizes, same batches, same optimiser.
fn lstm_throughput(n: usize, epochs: usize) -> anyhow::Result<()> {
    use mlt_eval::models::lstm::Lstm;
    use mlt_eval::models::Model;
    let (steps, features, hidden, batch) = (50, 16, 64, 256);
    let (x, y) = sequences(n, steps, features);
    let settings = ModelSettings {
        name: mlt_protocol::spec::ModelKind::Lstm,
        classify: true,
        rows: mlt_eval::models::Rows {
            lookback: steps as u32,
            ..Default::default()
        },
        slot: Slot {
            seed: 1,
            ..Default::default()
        },
        params: [
            ("sequence", steps as f64),
            ("hidden", hidden as f64),
            ("layers", 2.0),
            ("epochs", epochs as f64),
            ("batch", batch as f64),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut m = Lstm::new(settings);
    m.fit(&x, &y, None).map_err(anyhow::Error::msg)?;
    let ours = (n * epochs) as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    burn_nn_lstm(&x, &y, steps, features, hidden, batch, epochs);
    let theirs = (n * epochs) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "| 2 × {hidden} | {steps} | {features} | {batch} | {n} × {epochs} epochs | {ours:.0} samples/s | {theirs:.0} samples/s | {:.2}× |",
        ours / theirs
    );
    Ok(())
}

/// The same training with burn's own `nn::Lstm` (two stacked layers, last hidden state, a
/// linear head, BCE on logits, Adam).
fn burn_nn_lstm(
    x: &[Vec<f64>],
    y: &[f64],
    steps: usize,
    features: usize,
    hidden: usize,
    batch: usize,
    epochs: usize,
) {
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig, LstmConfig};
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Device, Tensor, TensorData};

    #[derive(Module, Debug)]
    struct Net {
        l1: burn::nn::Lstm,
        l2: burn::nn::Lstm,
        head: Linear,
    }
    let device = Device::flex().autodiff();
    device.seed(1);
    let mut net = Net {
        l1: LstmConfig::new(features, hidden, true).init(&device),
        l2: LstmConfig::new(hidden, hidden, true).init(&device),
        head: LinearConfig::new(hidden, 1).init(&device),
    };
    let mut optim = AdamConfig::new().init();
    for _ in 0..epochs {
        for (xb, yb) in x.chunks(batch).zip(y.chunks(batch)) {
            let b = xb.len();
            let flat: Vec<f32> = xb.iter().flatten().map(|v| *v as f32).collect();
            let input =
                Tensor::<3>::from_data(TensorData::new(flat, [b, steps, features]), &device);
            let target = Tensor::<2>::from_data(
                TensorData::new(yb.iter().map(|v| *v as f32).collect::<Vec<_>>(), [b, 1]),
                &device,
            );
            let (h1, _) = net.l1.forward(input, None);
            let (_, s2) = net.l2.forward(h1, None);
            let z = net.head.forward(s2.hidden);
            let relu = z.clone().clamp_min(0.0);
            let soft = z.clone().abs().neg().exp().add_scalar(1.0).log();
            let loss = (relu - z * target + soft).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(1e-3, net, grads);
        }
    }
}
