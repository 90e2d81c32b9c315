//! `mlt-bench search`: our samplers and pruners next to a pinned Optuna on the same problems,
//! budgets and seeds, in one run on one machine. Our side runs in process through the real
//! study lifecycle (`StudyCore`: ask, report, finish); Optuna's side runs
//! bench/optuna/search_bench.py in its own virtual environment and answers in JSON.
//!
//! Seven tables (Markdown on stdout):
//! 1. mean best-so-far regret at 50/100/200 trials per problem and sampler, and the
//!    hypervolume of a two-objective problem for NSGA-II and MOTPE;
//! 2. the cost of one suggestion (ask + tell) at 100, 1,000 and 10,000 completed trials with
//!    10 parameters;
//! 3. pruning on synthetic learning curves: steps consumed and best value found;
//! 4. proposals: one history, both TPEs' suggestions compared as distributions;
//! 5. held-out problems, for choosing defaults;
//! 6. several trials in flight (the constant liar);
//! 7. the whole system against Optuna's in-memory study.
mod cost;
mod heldout;
mod optuna;
mod parallel;
mod problems;
mod proposals;
mod pruning;
mod quality;
mod stats;
mod system;

pub use cost::cost;
pub use heldout::held_out_table;
pub use parallel::parallel;
pub use proposals::proposals;
pub use pruning::pruning;
pub use quality::quality;
pub use system::system;

use anyhow::{bail, Context};
use mlt_protocol::ids::{NodeId, SlotId, StudyId, TrialId};
use mlt_protocol::messages::{Outcome, Verdict};
use mlt_protocol::records::{
    Metrics, ParamValue, Params, StudyState, TrialOrigin, TrialRecord, TrialState,
};
use mlt_protocol::spec::{BenchFunction, Spec};
use mlt_scheduler::search::mo::hypervolume;
use mlt_scheduler::store::StudyRow;
use mlt_scheduler::study::StudyCore;
use mlt_spec::functions::{box_point, hartmann, Evaluate};
use optuna::*;
use problems::*;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use stats::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Our sampler settings for each name used in the tables (Optuna's counterpart in brackets).
pub(super) fn sampler_toml(kind: &str) -> String {
    // `raw:kind = "tpe";n_ei_candidates = 64`: any settings, for exploring (ours only).
    if let Some(x) = kind.strip_prefix("raw:") {
        return x.replace(';', "\n");
    }
    match kind {
        "tpe" => "kind = \"tpe\"",
        "tpe-uni" => "kind = \"tpe\"\nmultivariate = false",
        "tpe-nolie" => "kind = \"tpe\"\nconstant_liar = false",
        "tpe-ei24" => "kind = \"tpe\"\nmultivariate = false\nn_ei_candidates = 24",
        "cmaes-rand" => "kind = \"cmaes\"\nindependent = \"random\"",
        "tpe-mv" => "kind = \"tpe\"\nmultivariate = true\ngroup = true",
        "cmaes" => "kind = \"cmaes\"",
        "gp" => "kind = \"gp\"",
        "qmc" => "kind = \"qmc\"",
        "nsga2" => "kind = \"nsga2\"\npopulation_size = 20",
        _ => "kind = \"random\"",
    }
    .to_string()
}

/// The Optuna sampler a row is compared with: `tpe` is both sides' default (multivariate TPE
/// with constant liar in Optuna 5.0 and here), `tpe-uni` both univariate TPEs; our variants
/// with Optuna's settings (`tpe-ei24`: univariate with 24 candidates; `cmaes-rand`: the
/// parameters CMA-ES leaves out drawn at random) share the row of the sampler they vary.
pub(super) fn optuna_name(kind: &str) -> &str {
    match kind {
        "tpe-ei24" => "tpe-uni",
        "cmaes-rand" => "cmaes",
        k => k,
    }
}

/// The Optuna samplers `samplers` are compared with, each once, comma-separated (the
/// script's `--samplers`).
pub(super) fn optuna_names(samplers: &[String]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for k in samplers {
        if !names.contains(&optuna_name(k)) {
            names.push(optuna_name(k));
        }
    }
    names.join(",")
}

pub(super) fn spec(
    sampler: &str,
    space: &str,
    directions: &str,
    pruner: &str,
    n: u64,
    seed: u64,
) -> Spec {
    let text = format!(
        "[study]\nname = \"b\"\nn_trials = {n}\nseed = {seed}\ndirections = {directions}\n[sampler]\n{sampler}\n[pruner]\n{pruner}\n[space]\n{space}\n[objective]\nkind = \"command\"\ncommand = [\"true\"]\n"
    );
    mlt_spec::parse(&text, "bench.toml").expect("bench specs are valid")
}

pub(super) fn row() -> StudyRow {
    StudyRow {
        id: StudyId(1),
        name: "b".into(),
        spec_toml: String::new(),
        source: "bench.toml".into(),
        workdir: None,
        state: StudyState::Running,
        created_ms: 0,
    }
}

pub(super) const N: NodeId = NodeId(1);

pub(super) const S: SlotId = SlotId(0);

/// One study, trial after trial; returns the values in trial order.
pub(super) fn run_study(spec: &Spec, f: &dyn Fn(&Params) -> Vec<f64>) -> Vec<Vec<f64>> {
    let mut core = StudyCore::new(row(), spec.clone(), Vec::new());
    let mut ops = Vec::new();
    let mut out = Vec::new();
    while let Some(k) = core.ask(N, S, 0, &mut ops) {
        let v = f(&core.trials[k.trial.0 as usize].params);
        core.finish(
            N,
            k,
            Outcome::Complete(v.clone(), Metrics::new()),
            0,
            &mut ops,
        );
        ops.clear();
        out.push(v);
    }
    out
}

/// `f(seed)` for every seed, spread over the machine's cores, in seed order.
pub(super) fn parallel_seeds<T: Send>(seeds: u64, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seeds as usize)
        .max(1);
    let mut out: Vec<(u64, T)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                sc.spawn(move || {
                    (0..seeds)
                        .filter(|s| (*s as usize) % threads == t)
                        .map(|s| (s, f(s)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("bench thread"))
            .collect()
    });
    out.sort_by_key(|x| x.0);
    out.into_iter().map(|x| x.1).collect()
}

/// Trial `i`, complete with `params` and `value`, as a study loaded from the store holds it.
pub(super) fn complete_trial(i: usize, params: Params, value: f64) -> TrialRecord {
    TrialRecord {
        study: StudyId(1),
        number: TrialId(i as u64),
        state: TrialState::Complete,
        attempt: 1,
        values: Some(vec![value]),
        params,
        intermediate: BTreeMap::new(),
        node: None,
        slot: None,
        message: None,
        created_ms: 0,
        started_ms: None,
        finished_ms: Some(i as u64),
        origin: TrialOrigin::Sampler,
        generation: None,
        constraints: None,
        metrics: Metrics::new(),
    }
}
