//! `mlt-bench eval`: the evaluation engine's own speed. Rows per second of computing an
//! Alpha158-like feature set (65 expressions: k-bar shapes and, for windows 5/10/20/30/60,
//! rate of change, moving averages, volatility, highs/lows, rank, stochastic position,
//! price–volume correlation, volume averages and volatility), and the walk-forward overhead per
//! fold — everything but the model fit — on ../shared/data/SPY.csv (when present) and on a
//! synthetic series 100× as long.
use mlt_eval::data::{read_csv, Bars};
use mlt_eval::features::{eval, parse};
use mlt_eval::synthetic::{generate, Synthetic};
use mlt_eval::{run_walk_forward_timed, Trial, TrialContext};
use mlt_protocol::messages::{Outcome, Verdict};
use mlt_protocol::records::Params;
use mlt_protocol::spec::{DataSource, WalkForwardSpec};
use std::path::Path;
use std::time::Instant;

/// The Alpha158-like set.
pub fn alpha_like() -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = vec![
        ("kmid".into(), "(close - open) / open".into()),
        ("klen".into(), "(high - low) / open".into()),
        ("khc".into(), "(high - close) / open".into()),
        ("klow".into(), "(close - low) / open".into()),
        ("ksft".into(), "(2 * close - high - low) / open".into()),
    ];
    for w in [5, 10, 20, 30, 60] {
        let add =
            |f: &mut Vec<(String, String)>, n: &str, e: String| f.push((format!("{n}{w}"), e));
        add(&mut f, "roc", format!("ret(close, {w})"));
        add(&mut f, "ma", format!("mean(close, {w}) / close"));
        add(&mut f, "std", format!("std(close, {w}) / close"));
        add(&mut f, "max", format!("max(high, {w}) / close"));
        add(&mut f, "min", format!("min(low, {w}) / close"));
        add(&mut f, "rank", format!("rank(close, {w})"));
        add(
            &mut f,
            "rsv",
            format!("(close - min(low, {w})) / (max(high, {w}) - min(low, {w}) + 0.000001)"),
        );
        add(&mut f, "corr", format!("corr(close, log(volume + 1), {w})"));
        add(&mut f, "vma", format!("mean(volume, {w}) / (volume + 1)"));
        add(&mut f, "vstd", format!("std(volume, {w}) / (volume + 1)"));
        add(&mut f, "ret_std", format!("std(returns, {w})"));
        add(&mut f, "zs", format!("zscore(close, {w})"));
    }
    f
}

/// A trial context that lets every trial run to its end.
pub(crate) struct Quiet;

impl TrialContext for Quiet {
    fn report(&mut self, _: u64, _: Vec<f64>) -> Verdict {
        Verdict::Continue
    }
    fn stopped(&self) -> bool {
        false
    }
}

/// No parameters: the benchmark's trials run their spec as it is.
pub(crate) static NO_PARAMS: Params = Params::new();

/// Trial 0 of a benchmark study, with no parameters.
pub(crate) fn trial() -> Trial<'static> {
    Trial {
        params: &NO_PARAMS,
        workdir: None,
        seed: 0,
        holdout: false,
    }
}

fn feature_throughput(name: &str, bars: &Bars, set: &[(String, String)]) -> Result<(), String> {
    let exprs: Vec<_> = set
        .iter()
        .map(|(_, e)| parse(e))
        .collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    let mut cells = 0usize;
    for e in &exprs {
        cells += eval(e, bars)?.len();
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "| {name} | {} rows | {} features | {:.3} s | {:.0} rows/s | {:.2e} values/s |",
        bars.len(),
        set.len(),
        s,
        bars.len() as f64 / s,
        cells as f64 / s
    );
    Ok(())
}

fn fold_overhead(
    name: &str,
    data: DataSource,
    features: &[(String, String)],
) -> Result<(), String> {
    let mut spec = WalkForwardSpec::new(data, features.to_vec());
    (spec.windows.test, spec.windows.step) = (126, 126);
    let (out, t) = run_walk_forward_timed(&spec, &trial(), &mut Quiet);
    if let Outcome::Failed(e) = out {
        return Err(e);
    }
    let other = t.total - t.load - t.features - t.fit;
    println!(
        "| {name} | {} features | {} folds | load {:.3} s | features + guard {:.3} s | fits {:.3} s | overhead per fold {:.3} ms |",
        features.len(),
        t.folds,
        t.load,
        t.features,
        t.fit,
        1e3 * other / t.folds.max(1) as f64
    );
    Ok(())
}

/// The benchmark.
pub fn run() -> anyhow::Result<()> {
    let set = alpha_like();
    let spy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/SPY.csv");
    println!("### Feature computation (Alpha158-like set)\n");
    println!("| data | rows | features | time | rows/s | values/s |");
    println!("|---|---|---|---|---|---|");
    let spy_bars = if spy.exists() {
        Some(read_csv(&spy, true).map_err(anyhow::Error::msg)?.0)
    } else {
        eprintln!("{} is absent: the SPY rows are skipped", spy.display());
        None
    };
    if let Some(b) = &spy_bars {
        feature_throughput("SPY.csv", b, &set).map_err(anyhow::Error::msg)?;
    }
    let long = generate(&Synthetic {
        days: 252_000,
        ..Default::default()
    })
    .map_err(anyhow::Error::msg)?;
    feature_throughput("synthetic ×100", &long, &set).map_err(anyhow::Error::msg)?;
    println!("\n### Walk-forward overhead per fold (everything but the ridge fit; 504/126-day windows)\n");
    println!("| data | features | folds | load | features + guard | fits | overhead per fold |");
    println!("|---|---|---|---|---|---|---|");
    let small: Vec<(String, String)> = set.iter().take(12).cloned().collect();
    if spy_bars.is_some() {
        fold_overhead(
            "SPY.csv",
            DataSource::Files {
                paths: vec![spy.display().to_string()],
                adjusted: true,
            },
            &set,
        )
        .map_err(anyhow::Error::msg)?;
    }
    fold_overhead(
        "synthetic ×100",
        DataSource::Synthetic {
            days: 252_000,
            seed: 7,
            strength: 0.05,
            instruments: 1,
        },
        &small,
    )
    .map_err(anyhow::Error::msg)?;
    pbo_cost();
    Ok(())
}

/// What `best` spends on PBO (CSCV, 16 blocks = 12,870 splits) for studies of several sizes.
fn pbo_cost() {
    use mlt_protocol::ids::TrialId;
    use mlt_protocol::records::ReturnSeries;
    use rand::{Rng, SeedableRng};
    println!("\n### PBO over a study's trials (CSCV, 16 blocks, 12,870 splits)\n");
    println!("| trials | days | time |");
    println!("|---|---|---|");
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for n in [100usize, 1000] {
        let days = 2520;
        let series: Vec<(TrialId, ReturnSeries)> = (0..n)
            .map(|i| {
                (
                    TrialId(i as u64),
                    ReturnSeries {
                        days: (0..days as i64).collect(),
                        values: (0..days).map(|_| rng.random_range(-0.02..0.02)).collect(),
                    },
                )
            })
            .collect();
        let t = std::time::Instant::now();
        let r = mlt_eval::selection::study_pbo(&series, 16).expect("enough data");
        println!(
            "| {n} | {days} | {:.3} s (PBO {:.2}) |",
            t.elapsed().as_secs_f64(),
            r.pbo
        );
    }
}
