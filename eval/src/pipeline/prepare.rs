//! A trial made ready for its folds: the bars (cut before the hold-out for search trials),
//! every instrument's feature columns (guarded, cached on the node), labels and next-day
//! returns, and the model's settings merged from the spec and the trial's parameters.
use super::traded::Regimes;
use super::trader::Trader;
use super::{Timings, Trial};
use crate::backtest::Sizing;
use crate::cache;
use crate::data::Bars;
use crate::features::{lookahead_check, parse, substitute};
use crate::labels::{direction, forward_return};
use crate::models::Factory;
use crate::models::{output_horizons, ModelSettings, Rows, Slot, Training};
use crate::universe::{data_key, load};
use mlt_protocol::records::{HoldoutWindow, ParamValue, Params};
use mlt_protocol::spec::{ModelKind, Sizing as SizingSpec, WalkForwardSpec};
use mlt_spec::tables::{member_key, member_setting, setting};

/// One instrument's features, labels and next-day returns.
pub(super) struct Inst {
    pub(super) cols: Vec<std::sync::Arc<Vec<f64>>>,
    pub(super) label: Vec<f64>,
    /// A multi-step head's targets: the label's kind over each of the model's horizons (the
    /// label's last); empty for models of the label alone.
    pub(super) paths: Vec<Vec<f64>>,
    pub(super) next: Vec<f64>,
    /// The forward return over the label's horizon (the IC's realised value).
    pub(super) fwd: Vec<f64>,
}

impl Inst {
    pub(super) fn row(&self, t: usize) -> Option<Vec<f64>> {
        let r: Vec<f64> = self.cols.iter().map(|c| c[t]).collect();
        r.iter().all(|v| v.is_finite()).then_some(r)
    }

    /// The rows of days t − lookback + 1 ..= t, step-major (one row when lookback is 1).
    pub(super) fn seq(&self, t: usize, lookback: usize) -> Option<Vec<f64>> {
        if lookback <= 1 {
            return self.row(t);
        }
        if t + 1 < lookback {
            return None;
        }
        let mut out = Vec::with_capacity(lookback * self.cols.len());
        for s in t + 1 - lookback..=t {
            out.extend(self.row(s)?);
        }
        Some(out)
    }
}

/// Everything a trial's folds need: the bars (cut before the hold-out for search trials),
/// features with the trial's parameters, labels, and the model's settings.
pub(super) struct Prepared<'a> {
    pub(super) trader: Trader<'a>,
    pub(super) days: Vec<i64>,
    pub(super) n: usize,
    /// The data the trial read (its lineage).
    pub(super) datasets: Vec<mlt_protocol::lineage::DatasetUse>,
}

/// Prepares `trial` on a worker slot's `(threads, gpu)`: its bars, every instrument's
/// features and labels, and its model's settings.
pub(super) fn prepare<'a>(
    spec: &'a WalkForwardSpec,
    trial: &Trial,
    (threads, gpu): (u32, Option<u32>),
    timings: &mut Timings,
    factory: Factory,
) -> Result<Prepared<'a>, String> {
    let clock = std::time::Instant::now();
    let (source, all_bars, datasets) = bars(spec, trial)?;
    timings.load = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let mut insts = Vec::new();
    for (i, b) in all_bars.iter().enumerate() {
        insts.push(instrument(spec, trial.params, &format!("{source}#{i}"), b)?);
    }
    timings.features = clock.elapsed().as_secs_f64();
    let mut model = model_settings(spec, trial.params, all_bars.len())?;
    model.slot = Slot {
        threads,
        gpu,
        seed: trial.seed,
    };
    // A multi-step head's targets: the label's kind over each of its horizons.
    for (inst, b) in insts.iter_mut().zip(&all_bars) {
        inst.paths = (model.rows.horizons.iter())
            .map(|&d| label(spec, &b.close, d as usize))
            .collect();
    }
    let mut features = Vec::new();
    for (name, text) in &spec.features {
        features.push((name.clone(), substitute(text, trial.params)?));
    }
    let n = all_bars.first().map_or(0, |b| b.len());
    let days = all_bars.first().map_or(Vec::new(), |b| b.days.clone());
    let holdout = (trial.holdout && spec.windows.holdout > 0 && n > 0).then(|| HoldoutWindow {
        data: content_hash(&all_bars),
        first: days[n.saturating_sub(spec.windows.holdout as usize)],
        last: days[n - 1],
    });
    // The benchmark's next-day return on each row: the instruments' equal-weight mean.
    let bench: Vec<f64> = (0..n)
        .map(|t| insts.iter().map(|i| i.next[t]).sum::<f64>() / insts.len().max(1) as f64)
        .collect();
    let regimes = Regimes::of(&bench);
    let trader = Trader {
        spec,
        insts,
        sizing: sizing(spec, trial.params),
        model,
        factory,
        features,
        days: days.clone(),
        instruments: all_bars.iter().map(|b| b.instrument.clone()).collect(),
        holdout,
        regimes,
    };
    Ok(Prepared {
        trader,
        days,
        n,
        datasets,
    })
}

/// The bars of the study's data source (read once per node and kept, the key changing when a
/// file does), cut before the hold-out unless `trial` evaluates it; the source's key; and
/// each instrument's lineage: the SHA-256 of all its bars as read (dates and prices, as
/// [`content_hash`]) and the days the trial saw of them.
type Loaded = (String, Vec<Bars>, Vec<mlt_protocol::lineage::DatasetUse>);

fn bars(spec: &WalkForwardSpec, trial: &Trial) -> Result<Loaded, String> {
    let source = data_key(&spec.data, trial.workdir);
    let mut all = cache::bars(&source, || load(&spec.data, trial.workdir))?.to_vec();
    let hashes: Vec<String> = all
        .iter()
        .map(|b| content_hash(std::slice::from_ref(b)))
        .collect();
    let n_all = all.first().map_or(0, |b| b.len());
    let holdout = spec.windows.holdout as usize;
    if holdout > 0 && !trial.holdout {
        // The search never sees the hold-out: not its features, labels or returns.
        if n_all <= holdout {
            return Err(format!(
                "{n_all} bars leave nothing before a {holdout}-day hold-out"
            ));
        }
        all = all.iter().map(|b| b.head(n_all - holdout)).collect();
    }
    let datasets = all
        .iter()
        .zip(hashes)
        .map(|(b, sha256)| mlt_protocol::lineage::DatasetUse {
            name: b.instrument.clone(),
            sha256,
            first_day: b.days.first().copied().unwrap_or(0),
            last_day: b.days.last().copied().unwrap_or(0),
            rows: b.len() as u64,
        })
        .collect();
    Ok((source, all, datasets))
}

/// SHA-256 of the aligned bars (hex): every instrument's dates and open, high, low and close,
/// in order. Names and file paths are left out: a renamed copy of the same data is the same
/// data, and its hold-out is the same hold-out.
pub(crate) fn content_hash(bars: &[Bars]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for b in bars {
        h.update((b.len() as u64).to_le_bytes());
        for d in &b.days {
            h.update(d.to_le_bytes());
        }
        for col in [&b.open, &b.high, &b.low, &b.close] {
            for v in col {
                h.update(v.to_bits().to_le_bytes());
            }
        }
    }
    h.finalize().iter().map(|x| format!("{x:02x}")).collect()
}

/// The label over `days` days: the forward return, or its direction for a classifier.
fn label(spec: &WalkForwardSpec, close: &[f64], days: usize) -> Vec<f64> {
    if spec.label.classify {
        direction(close, days)
    } else {
        forward_return(close, days)
    }
}

/// One instrument's feature columns (each guarded against look-ahead on all the data, and
/// kept on the node under `source` for later trials with the same data and expression), its
/// label and its next-day returns.
fn instrument(
    spec: &WalkForwardSpec,
    params: &Params,
    source: &str,
    bars: &Bars,
) -> Result<Inst, String> {
    let mut cols = Vec::new();
    for (name, text) in &spec.features {
        let text = substitute(text, params).map_err(|e| format!("feature `{name}`: {e}"))?;
        let e = parse(&text).map_err(|e| format!("feature `{name}` = `{text}`: {e}"))?;
        let key = (format!("{source}#{}", bars.len()), text.clone());
        cols.push(cache::get_or_compute(key, || {
            lookahead_check(name, &e, bars)
        })?);
    }
    Ok(Inst {
        cols,
        label: label(spec, &bars.close, spec.label.horizon as usize),
        paths: Vec::new(),
        next: forward_return(&bars.close, 1),
        fwd: forward_return(&bars.close, spec.label.horizon as usize),
    })
}

/// A number among the trial's parameters, else `default`.
fn number(params: &Params, name: &str, default: f64) -> f64 {
    match params.get(name) {
        Some(ParamValue::Float(x)) => *x,
        Some(ParamValue::Int(x)) => *x as f64,
        _ => default,
    }
}

/// How the trial's predictions become positions.
fn sizing(spec: &WalkForwardSpec, params: &Params) -> Sizing {
    match spec.trading.sizing {
        SizingSpec::Sign => Sizing::Sign,
        SizingSpec::Threshold => {
            Sizing::Threshold(number(params, "threshold", spec.trading.threshold))
        }
        SizingSpec::Probability => Sizing::Probability,
    }
}

/// The model's settings: the spec's, then the trial's parameters of those names (or
/// aliases). An ensemble's settings are per member (`lightgbm.learning_rate`); an unprefixed
/// name reaches every member that has the setting. The slot is left to the caller.
fn model_settings(
    spec: &WalkForwardSpec,
    params: &Params,
    instruments: usize,
) -> Result<ModelSettings, String> {
    let mut settings = spec.model.settings.clone();
    let members: Vec<ModelKind> = match &spec.model.ensemble {
        Some(e) => e.members.clone(),
        None => vec![spec.model.kind],
    };
    for (name, v) in params {
        for member in &members {
            let bare = match name.split_once('.') {
                Some(_) => match member_setting(*member, name) {
                    Some(k) => k,
                    None => continue,
                },
                None => name.as_str(),
            };
            let Some(canonical) = setting(*member, bare).map(|s| s.name) else {
                continue;
            };
            let x = match v {
                ParamValue::Float(x) => *x,
                ParamValue::Int(x) => *x as f64,
                ParamValue::Bool(b) => f64::from(u8::from(*b)),
                ParamValue::Str(s) => {
                    return Err(format!("parameter `{name}` must be a number, got `{s}`"))
                }
            };
            let key = if spec.model.ensemble.is_some() {
                member_key(*member, canonical)
            } else {
                canonical.to_string()
            };
            settings.insert(key, x);
        }
    }
    let lstm = spec.model.kind == ModelKind::Lstm;
    let of_lstm = |name: &str| setting(ModelKind::Lstm, name).and_then(|s| s.value(&settings));
    // The LSTM reads sequences of this many days; other models one day's row.
    let lookback = if lstm {
        of_lstm("sequence").unwrap_or(1.0) as u32
    } else {
        1
    };
    // A multi-step head (the LSTM's `outputs`) is fitted on the label over each of its
    // horizons; all of them reach no further than the label, so the purging is the label's.
    let horizons = if lstm {
        let outputs = of_lstm("outputs").unwrap_or(1.0);
        output_horizons(outputs as u32, spec.label.horizon)
            .map_err(|e| format!("the LSTM's head: {e}"))?
    } else {
        Vec::new()
    };
    Ok(ModelSettings {
        name: spec.model.kind,
        alpha: number(params, "alpha", spec.model.alpha),
        classify: spec.label.classify,
        params: settings,
        ensemble: spec.model.ensemble.clone(),
        training: Training {
            early_stopping: spec.model.early_stopping,
            staged: spec.report.budget_epochs,
        },
        rows: Rows {
            features: spec.features.iter().map(|(n, _)| n.clone()).collect(),
            categorical: (spec.model.categorical.iter())
                .filter_map(|c| spec.features.iter().position(|(f, _)| f == c))
                .collect(),
            lookback,
            horizons,
            // Rows per day and the label's reach, for purging inside the training rows.
            purge_rows: (spec.label.horizon as usize) * instruments,
        },
        slot: Slot::default(),
    })
}
