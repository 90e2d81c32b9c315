//! Every sampler against the same space (bounds, log, step, int, categorical, conditions,
//! determinism), driven through the real study lifecycle; and search quality against random
//! search on Branin and Hartmann-6 over 20 seeds.
use crate::store::StudyRow;
use crate::study::StudyCore;
use mlt_protocol::ids::{NodeId, SlotId, StudyId};
use mlt_protocol::messages::Outcome;
use mlt_protocol::records::{Metrics, ParamValue, Params, StudyState, TrialRecord, TrialState};
use mlt_protocol::spec::{BenchFunction, SearchSpace, Spec};
use mlt_spec::fits;
use mlt_spec::functions::Evaluate;
use std::collections::VecDeque;

pub fn row() -> StudyRow {
    StudyRow {
        id: StudyId(1),
        name: "t".into(),
        spec_toml: String::new(),
        source: "t.toml".into(),
        workdir: None,
        state: StudyState::Running,
        created_ms: 0,
    }
}

/// Runs a whole study in process: `parallel` trials in flight, the oldest finishing first.
pub fn drive(spec: &Spec, parallel: usize, f: &dyn Fn(&Params) -> Vec<f64>) -> Vec<TrialRecord> {
    drive_with(spec, parallel, &|p| (f(p), Metrics::new()))
}

/// [`drive`] with metrics reported beside the values.
pub fn drive_with(
    spec: &Spec,
    parallel: usize,
    f: &dyn Fn(&Params) -> (Vec<f64>, Metrics),
) -> Vec<TrialRecord> {
    let mut c = StudyCore::new(row(), spec.clone(), Vec::new());
    let mut ops = Vec::new();
    let mut pending = VecDeque::new();
    let mut now = 0;
    loop {
        while pending.len() < parallel {
            match c.ask(NodeId(1), SlotId(0), now, &mut ops) {
                Some(k) => pending.push_back(k),
                None => break,
            }
        }
        let Some(k) = pending.pop_front() else {
            break;
        };
        let (v, m) = f(&c.trials[k.trial.0 as usize].params);
        c.finish(NodeId(1), k, Outcome::Complete(v, m), now, &mut ops);
        ops.clear();
        now += 1;
    }
    c.trials
}

const MIXED_SPACE: &str = r#"
lr = { type = "float", low = 1e-4, high = 1e-1, log = true }
frac = { type = "float", low = 0.1, high = 0.9, step = 0.2 }
leaves = { type = "int", low = 4, high = 256, log = true }
depth = { type = "int", low = 2, high = 12, step = 2 }
model = { type = "categorical", choices = ["gbdt", "dart", "goss"] }
drop = { type = "float", low = 0.0, high = 0.5, when = { model = ["dart"] } }
skip = { type = "categorical", choices = [true, false], when = { model = ["dart"] } }
rate = { type = "float", low = 0.1, high = 0.2, when = { skip = [true] } }
const = { type = "fixed", value = 7 }
x = { type = "float", low = -3, high = 3 }
"#;

pub fn spec(sampler: &str, space: &str, directions: &str, n: u64, seed: u64) -> Spec {
    let text = format!(
        "[study]\nname = \"t\"\nn_trials = {n}\nseed = {seed}\ndirections = {directions}\n[sampler]\n{sampler}\n[space]\n{space}\n[objective]\nkind = \"command\"\ncommand = [\"true\"]\n"
    );
    mlt_spec::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// A loss over the mixed space that every sampler can make progress on.
fn mixed_loss(p: &Params) -> f64 {
    let f = |k: &str| p.get(k).and_then(ParamValue::as_f64).unwrap_or(0.0);
    let model = match p.get("model") {
        Some(ParamValue::Str(s)) if s == "dart" => 0.0,
        _ => 1.0,
    };
    (f("lr").ln() + 5.0).powi(2) + (f("x") - 1.0).powi(2) + model + (f("depth") - 6.0).abs() / 10.0
}

fn check_valid(space: &SearchSpace, t: &TrialRecord) {
    let mut decided = Params::new();
    for p in &space.params {
        let active = SearchSpace::is_active(p, &decided);
        match t.params.get(&p.name) {
            Some(v) => {
                assert!(active, "trial {} has inactive `{}`", t.number.0, p.name);
                if let Err(e) = fits(&p.dist, v) {
                    panic!("trial {} `{}` = {v}: {e}", t.number.0, p.name);
                }
                decided.insert(p.name.clone(), v.clone());
            }
            None => assert!(!active, "trial {} lacks active `{}`", t.number.0, p.name),
        }
    }
    assert_eq!(t.params.len(), decided.len());
}

const SAMPLERS: [&str; 10] = [
    "kind = \"random\"",
    "kind = \"grid\"\npoints = 3",
    "kind = \"qmc\"",
    "kind = \"tpe\"\nn_startup_trials = 5",
    "kind = \"tpe\"\nn_startup_trials = 5\nmultivariate = true\ngroup = true\nconstant_liar = true",
    "kind = \"cmaes\"\npopsize = 6",
    "kind = \"cmaes\"\npopsize = 4\nrestart = \"bipop\"",
    "kind = \"nsga2\"\npopulation_size = 8",
    "kind = \"ga\"\npopulation_size = 8",
    "kind = \"gp\"\nn_startup_trials = 5\nn_candidates = 256",
];

#[test]
fn every_sampler_honours_the_space_and_its_seed() {
    for sampler in SAMPLERS {
        let n = if sampler.contains("gp") { 20 } else { 60 };
        let s = spec(sampler, MIXED_SPACE, "[\"minimize\"]", n, 5);
        let loss = |p: &Params| vec![mixed_loss(p)];
        let a = drive(&s, 3, &loss);
        assert_eq!(a.len(), n as usize, "{sampler}");
        assert!(a.iter().all(|t| t.state == TrialState::Complete));
        for t in &a {
            check_valid(&s.space, t);
        }
        // Every categorical choice and both branches of the condition were explored.
        let dart = a
            .iter()
            .filter(|t| t.params["model"] == ParamValue::Str("dart".into()))
            .count();
        assert!(dart > 0 && dart < a.len(), "{sampler}: dart {dart}");
        // Same seed, same results order: the same trials. Another seed: other trials.
        let b = drive(&s, 3, &loss);
        let pa: Vec<&Params> = a.iter().map(|t| &t.params).collect();
        let pb: Vec<&Params> = b.iter().map(|t| &t.params).collect();
        assert_eq!(pa, pb, "{sampler}");
        let c = drive(
            &spec(sampler, MIXED_SPACE, "[\"minimize\"]", n, 6),
            3,
            &loss,
        );
        let pc: Vec<&Params> = c.iter().map(|t| &t.params).collect();
        assert_ne!(pa, pc, "{sampler}");
    }
}

#[test]
fn grid_hands_out_each_point_once_and_ends_with_the_grid() {
    let space = "a = { type = \"int\", low = 1, high = 4 }\nb = { type = \"categorical\", choices = [\"x\", \"y\", \"z\"] }\nc = { type = \"float\", low = 0, high = 1, when = { b = [\"x\"] } }";
    let s = spec(
        "kind = \"grid\"\npoints = 5",
        space,
        "[\"minimize\"]",
        1000,
        1,
    );
    // 4 × (5 for b = x + 1 + 1) = 28 points: the budget is capped at the grid.
    assert_eq!(s.study.n_trials, 28);
    let t = drive(&s, 8, &|_| vec![0.0]);
    assert_eq!(t.len(), 28);
    let mut seen: Vec<String> = t.iter().map(|t| format!("{:?}", t.params)).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 28);
    // A grid too large is refused naming the key.
    let big = "a = { type = \"int\", low = 1, high = 1000 }\nb = { type = \"int\", low = 1, high = 1000 }\nc = { type = \"int\", low = 1, high = 1000 }";
    let text = format!("[study]\nname = \"t\"\nn_trials = 5\n[sampler]\nkind = \"grid\"\n[space]\n{big}\n[objective]\nkind = \"command\"\ncommand = [\"true\"]\n");
    let e = mlt_spec::parse(&text, "g.toml").unwrap_err().to_string();
    assert!(e.contains("sampler.points"), "{e}");
}

#[test]
fn enqueued_trials_come_first_and_missing_values_are_sampled() {
    let text = "[study]\nname = \"t\"\nn_trials = 6\n[sampler]\nkind = \"tpe\"\n[space]\nx = { type = \"float\", low = 0, high = 1 }\nm = { type = \"categorical\", choices = [\"a\", \"b\"] }\nk = { type = \"int\", low = 1, high = 5, when = { m = [\"b\"] } }\n[[enqueue]]\nx = 0.25\nm = \"b\"\nk = 3\n[[enqueue]]\nm = \"b\"\n[objective]\nkind = \"command\"\ncommand = [\"true\"]\n";
    let s = mlt_spec::parse(text, "e.toml").unwrap();
    let t = drive(&s, 1, &|_| vec![1.0]);
    assert_eq!(t[0].params["x"], ParamValue::Float(0.25));
    assert_eq!(t[0].params["k"], ParamValue::Int(3));
    assert_eq!(t[0].origin, mlt_protocol::records::TrialOrigin::Enqueued(0));
    assert_eq!(t[1].params["m"], ParamValue::Str("b".into()));
    assert!(t[1].params.contains_key("x") && t[1].params.contains_key("k"));
    assert_eq!(t[2].origin, mlt_protocol::records::TrialOrigin::Sampler);
    for tr in &t {
        check_valid(&s.space, tr);
    }
    // Bad enqueued values are spec errors naming the entry and key.
    let bad = text.replace("k = 3", "k = 9").replace("x = 0.25", "y = 1");
    let e = mlt_spec::parse(&bad, "e.toml").unwrap_err().to_string();
    assert!(e.contains("`enqueue[0].k`: 9 is outside [1, 5]"), "{e}");
    assert!(e.contains("`enqueue[0].y`: is not a parameter"), "{e}");
}

fn branin_space() -> &'static str {
    "x0 = { type = \"float\", low = -5, high = 10 }\nx1 = { type = \"float\", low = 0, high = 15 }"
}

fn hartmann_space() -> String {
    (0..6)
        .map(|i| format!("x{i} = {{ type = \"float\", low = 0, high = 1 }}\n"))
        .collect()
}

/// Mean best regret over 20 seeds.
fn mean_regret(sampler: &str, space: &str, f: BenchFunction, optimum: f64, n: u64) -> f64 {
    let mut total = 0.0;
    for seed in 0..20 {
        let s = spec(sampler, space, "[\"minimize\"]", n, seed);
        let t = drive(&s, 1, &|p| vec![f.evaluate(p).unwrap()]);
        let best = t
            .iter()
            .filter_map(|t| t.values.as_ref().map(|v| v[0]))
            .fold(f64::INFINITY, f64::min);
        total += best - optimum;
    }
    total / 20.0
}

#[test]
fn model_based_samplers_beat_random_on_branin_and_hartmann6() {
    let hart = hartmann_space();
    let problems: [(&str, &str, BenchFunction, f64); 2] = [
        ("branin", branin_space(), BenchFunction::Branin, 0.397_887),
        ("hartmann6", &hart, BenchFunction::Hartmann6, -3.322_37),
    ];
    for (name, space, f, opt) in problems {
        for (sampler, n) in [
            ("kind = \"tpe\"", 60),
            ("kind = \"cmaes\"", 60),
            ("kind = \"gp\"\nn_candidates = 512", 30),
        ] {
            let ours = mean_regret(sampler, space, f, opt, n);
            let random = mean_regret("kind = \"random\"", space, f, opt, n);
            eprintln!("{name} n={n} {sampler:?}: regret {ours:.4} vs random {random:.4}");
            assert!(ours < random, "{name} {sampler}: {ours} !< random {random}");
        }
    }
}

fn num(p: &Params, k: &str) -> f64 {
    p.get(k).and_then(ParamValue::as_f64).unwrap_or(f64::NAN)
}

#[test]
fn tpe_weights_and_split_by_hand() {
    use super::tpe::{default_weights, split};
    use mlt_protocol::spec::{Direction, SamplerSpec};
    assert_eq!(default_weights(3), vec![1.0; 3]);
    let w = default_weights(30);
    assert_eq!(w.len(), 30);
    assert!((w[0] - 1.0 / 30.0).abs() < 1e-12 && (w[4] - 1.0).abs() < 1e-12);
    assert!(w[1] > w[0] && w[2] > w[1] && w[5..].iter().all(|x| *x == 1.0));

    let s = spec(
        "kind = \"tpe\"\nn_startup_trials = 0\ngamma = 0.3\nconstant_liar = true",
        "x = { type = \"float\", low = 0, high = 1 }",
        "[\"minimize\"]",
        20,
        0,
    );
    let SamplerSpec::Tpe(cfg) = s.sampler.clone() else {
        panic!()
    };
    // Ten trials: complete with values 9, 8, …, 3 (numbers 0–6), one pruned at step 5, one
    // infeasible complete with value -1, one running.
    let mut trials = drive(
        &spec(
            "kind = \"random\"",
            "x = { type = \"float\", low = 0, high = 1 }",
            "[\"minimize\"]",
            10,
            0,
        ),
        1,
        &|_| vec![0.0],
    );
    for (i, t) in trials.iter_mut().enumerate().take(7) {
        t.values = Some(vec![9.0 - i as f64]);
    }
    trials[7].state = TrialState::Pruned;
    trials[7].intermediate.insert(5, vec![0.0]);
    trials[8].values = Some(vec![-1.0]);
    trials[8].constraints = Some(vec![0.5]);
    trials[9].state = TrialState::Running;
    let ask = super::Ask {
        space: &s.space,
        directions: &[Direction::Minimize],
        number: mlt_protocol::ids::TrialId(10),
        trials: &trials,
    };
    let sp = split(&cfg, &ask).unwrap();
    // n = 9 finished → ⌈0.3·9⌉ = 3 good: the three best complete trials (values 3, 4, 5),
    // even though the pruned and the infeasible trial have lower values.
    assert_eq!(sp.below, vec![4, 5, 6]);
    assert_eq!(sp.above, vec![0, 1, 2, 3, 7, 8, 9]);
    // Without the liar the running trial is left out; with too few trials, no model.
    let mut no_liar = cfg.clone();
    no_liar.constant_liar = false;
    assert!(!split(&no_liar, &ask).unwrap().above.contains(&9));
    no_liar.n_startup_trials = 10;
    assert!(split(&no_liar, &ask).is_none());
}

/// Mean hypervolume (reference (1.1, 1.1) after scaling) of a two-objective study.
fn mean_hv(sampler: &str, n: u64, seeds: u64) -> f64 {
    let space = "x = { type = \"float\", low = 0, high = 1 }\ny = { type = \"float\", low = 0, high = 1 }\nz = { type = \"float\", low = 0, high = 1 }";
    let mut total = 0.0;
    for seed in 0..seeds {
        let s = spec(sampler, space, "[\"minimize\", \"minimize\"]", n, seed);
        // ZDT1-like: f1 = x, f2 = g (1 − √(x/g)), g = 1 + 9 (y + z)/2.
        let t = drive(&s, 1, &|p| {
            let (x, y, z) = (num(p, "x"), num(p, "y"), num(p, "z"));
            let g = 1.0 + 9.0 * (y + z) / 2.0;
            vec![x, g * (1.0 - (x / g).sqrt())]
        });
        let pts: Vec<Vec<f64>> = t.iter().filter_map(|t| t.values.clone()).collect();
        total += super::mo::hypervolume(&pts, &[1.1, 10.0]);
    }
    total / seeds as f64
}

#[test]
fn multi_objective_samplers_beat_random_by_hypervolume() {
    let random = mean_hv("kind = \"random\"", 80, 10);
    let motpe = mean_hv("kind = \"tpe\"", 80, 10);
    let nsga = mean_hv("kind = \"nsga2\"\npopulation_size = 10", 80, 10);
    eprintln!(
        "hypervolume after 80 trials: random {random:.3}, MOTPE {motpe:.3}, NSGA-II {nsga:.3}"
    );
    assert!(motpe > random, "MOTPE {motpe} vs random {random}");
    assert!(nsga > random, "NSGA-II {nsga} vs random {random}");
}

/// Share of feasible trials among trials 20.. of a constrained Branin, and the best feasible
/// value, averaged over seeds.
fn constrained(sampler: &str) -> (f64, f64) {
    let mut feasible = 0.0;
    let mut best = 0.0;
    let seeds = 10;
    for seed in 0..seeds {
        let mut s = spec(sampler, branin_space(), "[\"minimize\"]", 60, seed);
        // Feasible: x0 + x1 ≤ 6 (excludes two of Branin's three minima).
        s.constraints = vec![mlt_protocol::spec::ConstraintSpec {
            metric: "sum".into(),
            min: None,
            max: Some(6.0),
        }];
        let t = drive_with(&s, 1, &|p| {
            let m: Metrics = [("sum".to_string(), num(p, "x0") + num(p, "x1"))]
                .into_iter()
                .collect();
            (vec![BenchFunction::Branin.evaluate(p).unwrap()], m)
        });
        let late = &t[20..];
        feasible += late
            .iter()
            .filter(|t| super::mo::violation(t) <= 0.0)
            .count() as f64
            / late.len() as f64;
        best += t
            .iter()
            .filter(|t| super::mo::violation(t) <= 0.0)
            .filter_map(|t| t.values.as_ref().map(|v| v[0]))
            .fold(f64::INFINITY, f64::min);
    }
    (feasible / seeds as f64, best / seeds as f64)
}

#[test]
fn constraint_aware_samplers_use_infeasible_trials_as_evidence() {
    let (fr, br) = constrained("kind = \"random\"");
    let (ft, bt) = constrained("kind = \"tpe\"");
    let (fn2, _) = constrained("kind = \"nsga2\"\npopulation_size = 10");
    eprintln!("feasible share after 20 trials: random {fr:.2}, c-TPE {ft:.2}, NSGA-II {fn2:.2}; best feasible: random {br:.3}, c-TPE {bt:.3}");
    assert!(ft > fr + 0.1, "TPE {ft} vs random {fr}");
    assert!(fn2 > fr, "NSGA-II {fn2} vs random {fr}");
    assert!(bt < br, "TPE best {bt} vs random {br}");
    // The constraint values are stored on the trial, and a missing metric fails the trial
    // with the metric's name.
    let mut s = spec("kind = \"random\"", branin_space(), "[\"minimize\"]", 3, 0);
    s.constraints = vec![mlt_protocol::spec::ConstraintSpec {
        metric: "dd".into(),
        min: Some(-0.25),
        max: None,
    }];
    let t = drive_with(&s, 1, &|_| {
        (vec![1.0], [("dd".to_string(), -0.5)].into_iter().collect())
    });
    assert_eq!(t[0].constraints, Some(vec![0.25]));
    assert_eq!(t[0].metrics["dd"], -0.5);
    let t = drive_with(&s, 1, &|_| (vec![1.0], Metrics::new()));
    assert_eq!(t[0].state, TrialState::Failed);
    // `best` never reports an infeasible trial, however good its value.
    let mut c = StudyCore::new(row(), s.clone(), Vec::new());
    let mut ops = Vec::new();
    for (v, dd) in [(0.5, -0.5), (2.0, -0.1), (3.0, -0.2)] {
        let k = c.ask(NodeId(1), SlotId(0), 0, &mut ops).unwrap();
        let m: Metrics = [("dd".to_string(), dd)].into_iter().collect();
        c.finish(NodeId(1), k, Outcome::Complete(vec![v], m), 0, &mut ops);
    }
    let best = c.best();
    assert_eq!(best.len(), 1);
    assert_eq!(best[0].values, Some(vec![2.0]));
    assert!(t[0].message.as_deref().unwrap().contains("`dd`"));
}

#[test]
fn cmaes_handles_integers_and_restarts() {
    // Integers: Σ (x_i − 3)² on [-10, 10]^4 reaches 0 (the margin keeps it moving).
    let space: String = (0..4)
        .map(|i| format!("x{i} = {{ type = \"int\", low = -10, high = 10 }}\n"))
        .collect();
    let mut hits = 0;
    for seed in 0..10 {
        let s = spec("kind = \"cmaes\"", &space, "[\"minimize\"]", 150, seed);
        let t = drive(&s, 1, &|p| {
            vec![(0..4)
                .map(|i| (num(p, &format!("x{i}")) - 3.0).powi(2))
                .sum()]
        });
        let best = t
            .iter()
            .filter_map(|t| t.values.as_ref().map(|v| v[0]))
            .fold(f64::INFINITY, f64::min);
        hits += (best == 0.0) as u32;
    }
    assert!(hits >= 7, "integer optimum found in {hits}/10 runs");
    // IPOP: a flat objective converges (TolFun) and restarts with a doubled population.
    let s = spec(
        "kind = \"cmaes\"\npopsize = 6\nrestart = \"ipop\"",
        branin_space(),
        "[\"minimize\"]",
        400,
        1,
    );
    let t = drive(&s, 1, &|_| vec![1.0]);
    let mut sizes: std::collections::BTreeMap<u32, usize> = Default::default();
    for g in t.iter().filter_map(|t| t.generation) {
        *sizes.entry(g).or_default() += 1;
    }
    let sizes: Vec<usize> = sizes.values().copied().collect();
    assert_eq!(sizes[0], 6);
    assert!(sizes.contains(&12) && sizes.contains(&24), "{sizes:?}");
    // Without restarts the population never grows.
    let s = spec(
        "kind = \"cmaes\"\npopsize = 6",
        branin_space(),
        "[\"minimize\"]",
        200,
        1,
    );
    let t = drive(&s, 1, &|_| vec![1.0]);
    let mut sizes: std::collections::BTreeMap<u32, usize> = Default::default();
    for g in t.iter().filter_map(|t| t.generation) {
        *sizes.entry(g).or_default() += 1;
    }
    // (The last generation is cut short by the budget.)
    let full: Vec<usize> = sizes.values().copied().collect();
    assert!(full[..full.len() - 1].iter().all(|n| *n == 6), "{sizes:?}");
}

#[test]
fn cmaes_learns_the_parameters_it_does_not_model_through_tpe() {
    // CMA-ES models `x`; `kind` (categorical) and `y` (active only for kind = "c") are left
    // to the independent sampler. TPE learns that "c" is the good choice; random cannot.
    let space = r#"
x = { type = "float", low = 0.0, high = 1.0 }
kind = { type = "categorical", choices = ["a", "b", "c", "d"] }
y = { type = "float", low = 0.0, high = 1.0, when = { kind = ["c"] } }
"#;
    let share_of_c = |sampler: &str| {
        let (mut c, mut all) = (0, 0);
        for seed in 0..8 {
            let s = spec(sampler, space, "[\"minimize\"]", 80, seed);
            let t = drive(&s, 1, &|p| {
                let good = p.get("kind") == Some(&ParamValue::Str("c".into()));
                let y = p.get("y").and_then(ParamValue::as_f64).unwrap_or(1.0);
                vec![(num(p, "x") - 0.3).powi(2) + if good { (y - 0.6).powi(2) } else { 1.0 }]
            });
            for tr in &t[40..] {
                check_valid(&s.space, tr);
                all += 1;
                c += (tr.params.get("kind") == Some(&ParamValue::Str("c".into()))) as u32;
                // `y` exists exactly when kind = "c".
                let is_c = tr.params.get("kind") == Some(&ParamValue::Str("c".into()));
                assert_eq!(tr.params.contains_key("y"), is_c);
            }
        }
        c as f64 / all as f64
    };
    let tpe = share_of_c("kind = \"cmaes\"");
    let random = share_of_c("kind = \"cmaes\"\nindependent = \"random\"");
    assert!(
        tpe > 0.6,
        "TPE chose the good category in {tpe:.2} of the later trials"
    );
    assert!(random < 0.4, "random chose it in {random:.2}");
}
