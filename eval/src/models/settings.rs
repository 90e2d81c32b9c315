//! What a model is built from: the spec's choice and settings, the trial's parameters, the
//! slot's threads and GPU.
use mlt_protocol::spec::ModelKind;

/// What a model is built from: the spec's choice and settings merged with the trial's
/// parameters, how it trains, the rows it reads, and the worker slot it runs on.
#[derive(Clone, Debug, Default)]
pub struct ModelSettings {
    /// The model.
    pub name: ModelKind,
    /// Its settings by the names of mlt-spec's tables (the spec's, overridden by the trial's
    /// parameters); an ensemble's as `member.name`.
    pub params: std::collections::BTreeMap<String, f64>,
    /// Ridge penalty.
    pub alpha: f64,
    /// Predict the probability of "up" (binary) instead of the forward return.
    pub classify: bool,
    /// With `name = ensemble`: its members and how they are combined.
    pub ensemble: Option<mlt_protocol::spec::EnsembleSpec>,
    /// How it trains.
    pub training: Training,
    /// The rows it reads.
    pub rows: Rows,
    /// The worker slot it runs on.
    pub slot: Slot,
}

/// How a model trains.
#[derive(Clone, Debug, Default)]
pub struct Training {
    /// Rounds without improvement on the validation tail before stopping (0: never).
    pub early_stopping: u32,
    /// Train boosted models in stages (rounds as the pruning budget).
    pub staged: bool,
}

/// The rows a model reads.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    /// Feature names, in column order (kept in LightGBM's model text).
    pub features: Vec<String>,
    /// Columns LightGBM treats as categorical.
    pub categorical: Vec<usize>,
    /// Steps per input sequence (the LSTM); 1 for models of single rows.
    pub lookback: u32,
    /// Days ahead of each target a multi-step head is fitted on, shortest first, the label's
    /// horizon last ([`output_horizons`]); empty (or one) for models of the label alone.
    pub horizons: Vec<u32>,
    /// Training rows (in time order) whose labels reach the next `purge_rows` rows: the
    /// horizon times the instruments. Models that cut their training rows purge this many.
    pub purge_rows: usize,
}

/// The worker slot a model runs on.
#[derive(Clone, Debug, Default)]
pub struct Slot {
    /// Threads the model may use (the slot's CPUs).
    pub threads: u32,
    /// The slot's GPU, for models that use one (the LSTM with `cuda`).
    pub gpu: Option<u32>,
    /// Seed.
    pub seed: u64,
}

/// The days ahead of each of `outputs` targets for a label `horizon` days ahead: evenly
/// spaced, the last one the label's (`outputs` = 5, horizon 5: 1, 2, 3, 4, 5; `outputs` = 2,
/// horizon 10: 5, 10). Empty for one output. `outputs` may not exceed the horizon.
pub fn output_horizons(outputs: u32, horizon: u32) -> Result<Vec<u32>, String> {
    if outputs <= 1 {
        return Ok(Vec::new());
    }
    if outputs > horizon {
        return Err(format!(
            "`outputs` = {outputs} needs a horizon of at least {outputs} days (the horizon is {horizon})"
        ));
    }
    let (k, h) = (outputs as u64, horizon as u64);
    Ok((1..=k)
        .map(|i| ((i * h * 2 + k) / (2 * k)) as u32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_horizons_are_evenly_spaced_and_end_at_the_label() {
        assert_eq!(output_horizons(1, 5).unwrap(), Vec::<u32>::new());
        assert_eq!(output_horizons(5, 5).unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(output_horizons(2, 10).unwrap(), vec![5, 10]);
        assert_eq!(output_horizons(3, 10).unwrap(), vec![3, 7, 10]);
        assert_eq!(output_horizons(4, 7).unwrap(), vec![2, 4, 5, 7]);
        for h in 1..40 {
            for k in 2..=h {
                let v = output_horizons(k, h).unwrap();
                assert_eq!(v.len(), k as usize);
                assert_eq!(*v.last().unwrap(), h);
                assert!(
                    v[0] >= 1 && v.windows(2).all(|w| w[0] < w[1]),
                    "{k} of {h}: {v:?}"
                );
            }
        }
        let e = output_horizons(6, 5).unwrap_err();
        assert!(
            e.contains("`outputs` = 6") && e.contains("horizon is 5"),
            "{e}"
        );
    }
}
