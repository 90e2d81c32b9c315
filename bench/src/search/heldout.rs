//! Held-out problems for choosing defaults (ours only), never part of the quality table.
use super::*;

/// Held-out problems: never part of the quality table, used to choose our samplers' defaults
/// (so that the table's five problems judge defaults that were not tuned on them).
pub(super) struct HeldOut {
    pub(super) name: &'static str,
    pub(super) space: String,
    pub(super) f: Box<dyn Fn(&Params) -> f64 + Send + Sync>,
    pub(super) optimum: f64,
}

impl HeldOut {
    /// `f` on the box [lo, hi]^d.
    fn on_box(
        name: &'static str,
        d: usize,
        (lo, hi): (f64, f64),
        f: fn(&[f64]) -> f64,
        optimum: f64,
    ) -> Self {
        Self {
            name,
            space: box_space(d, lo, hi),
            f: Box::new(move |q| f(&box_point(q))),
            optimum,
        }
    }

    /// `f` (minimum 0) on [−half, half]^d with its minimiser moved by `SHIFT · 0.8 · half`.
    fn shifted(name: &'static str, d: usize, half: f64, f: fn(&[f64]) -> f64) -> Self {
        let moved = move |x: &[f64]| -> f64 {
            let z: Vec<f64> = x
                .iter()
                .zip(SHIFT)
                .map(|(v, s)| v - s * 0.8 * half)
                .collect();
            f(&z)
        };
        Self {
            name,
            space: box_space(d, -half, half),
            f: Box::new(move |q| moved(&box_point(q))),
            optimum: 0.0,
        }
    }
}

pub(super) fn choice<'a>(q: &'a Params, name: &str) -> &'a str {
    match q.get(name) {
        Some(ParamValue::Str(s)) => s,
        _ => "",
    }
}

pub(super) fn num(q: &Params, name: &str) -> Option<f64> {
    q.get(name).and_then(ParamValue::as_f64)
}

/// A training run's loss as a function of its settings: the optimiser decides which other
/// settings exist and where the best learning rate lies.
pub(super) const ML_SPACE: &str = r#"opt = { type = "categorical", choices = ["sgd", "adam", "rmsprop", "adagrad"] }
lr = { type = "float", low = 1e-5, high = 1.0, log = true }
momentum = { type = "float", low = 0.0, high = 1.0, when = { opt = ["sgd", "rmsprop"] } }
beta2 = { type = "float", low = 0.9, high = 0.9999, when = { opt = ["adam"] } }
layers = { type = "int", low = 1, high = 8 }
width = { type = "int", low = 16, high = 1024, log = true }
act = { type = "categorical", choices = ["relu", "tanh", "gelu", "elu"] }
dropout = { type = "float", low = 0.0, high = 0.7, step = 0.05 }
"#;

pub(super) fn ml_conditional(q: &Params) -> f64 {
    let (base, best_lr) = match choice(q, "opt") {
        "sgd" => (0.15, -1.5),
        "adam" => (0.0, -3.2),
        "rmsprop" => (0.05, -2.7),
        _ => (0.3, -1.0),
    };
    let mut f = base + 0.08 * (num(q, "lr").unwrap_or(1.0).log10() - best_lr).powi(2);
    if let Some(m) = num(q, "momentum") {
        f += 0.3 * (m - 0.9).powi(2);
    }
    if let Some(b) = num(q, "beta2") {
        f += 50.0 * (b - 0.995).powi(2);
    }
    f += 0.01 * (num(q, "layers").unwrap_or(1.0) - 4.0).powi(2);
    f += 0.05 * (num(q, "width").unwrap_or(16.0).ln() - 256f64.ln()).powi(2);
    f += match choice(q, "act") {
        "relu" => 0.02,
        "tanh" => 0.06,
        "gelu" => 0.0,
        _ => 0.01,
    };
    f + 0.4 * (num(q, "dropout").unwrap_or(0.0) - 0.2).powi(2)
}

pub(super) const CAT_SPACE: &str = r#"c0 = { type = "categorical", choices = ["a", "b", "c", "d", "e"] }
c1 = { type = "categorical", choices = ["a", "b", "c", "d", "e"] }
c2 = { type = "categorical", choices = ["a", "b", "c", "d", "e"] }
c3 = { type = "categorical", choices = ["a", "b", "c", "d", "e"] }
c4 = { type = "categorical", choices = ["a", "b", "c", "d", "e"] }
c5 = { type = "categorical", choices = ["a", "b", "c", "d", "e"] }
u0 = { type = "float", low = 0.0, high = 1.0 }
u1 = { type = "float", low = 0.0, high = 1.0 }
u2 = { type = "float", low = 0.0, high = 1.0 }
"#;

/// Six categorical choices (each with its own cost table) and three floats.
pub(super) fn categorical6(q: &Params) -> f64 {
    const COST: [[f64; 5]; 6] = [
        [0.3, 0.0, 0.5, 0.2, 0.4],
        [0.1, 0.6, 0.0, 0.3, 0.2],
        [0.0, 0.2, 0.2, 0.7, 0.1],
        [0.5, 0.4, 0.3, 0.0, 0.6],
        [0.2, 0.1, 0.4, 0.3, 0.0],
        [0.4, 0.0, 0.1, 0.5, 0.3],
    ];
    const CENTRE: [f64; 3] = [0.23, 0.71, 0.52];
    let cats: f64 = (0..6)
        .map(|i| {
            let k = match choice(q, &format!("c{i}")) {
                "a" => 0,
                "b" => 1,
                "c" => 2,
                "d" => 3,
                _ => 4,
            };
            COST[i][k]
        })
        .sum();
    cats + (0..3)
        .map(|i| (num(q, &format!("u{i}")).unwrap_or(0.0) - CENTRE[i]).powi(2))
        .sum::<f64>()
}

pub(super) fn hartmann3(x: &[f64]) -> f64 {
    const A: [[f64; 3]; 4] = [
        [3.0, 10.0, 30.0],
        [0.1, 10.0, 35.0],
        [3.0, 10.0, 30.0],
        [0.1, 10.0, 35.0],
    ];
    const P: [[f64; 3]; 4] = [
        [0.3689, 0.1170, 0.2673],
        [0.4699, 0.4387, 0.7470],
        [0.1091, 0.8732, 0.5547],
        [0.0381, 0.5743, 0.8828],
    ];
    hartmann(x, &A, &P)
}

pub(super) fn ackley(x: &[f64]) -> f64 {
    use std::f64::consts::{E, PI};
    let d = x.len() as f64;
    let sq = x.iter().map(|v| v * v).sum::<f64>() / d;
    let cs = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
    -20.0 * (-0.2 * sq.sqrt()).exp() - cs.exp() + 20.0 + E
}

pub(super) fn levy(x: &[f64]) -> f64 {
    use std::f64::consts::PI;
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let d = w.len();
    let mut s = (PI * w[0]).sin().powi(2);
    for wi in &w[..d - 1] {
        s += (wi - 1.0).powi(2) * (1.0 + 10.0 * (PI * wi + 1.0).sin().powi(2));
    }
    s + (w[d - 1] - 1.0).powi(2) * (1.0 + (2.0 * PI * w[d - 1]).sin().powi(2))
}

pub(super) fn rastrigin(x: &[f64]) -> f64 {
    use std::f64::consts::PI;
    10.0 * x.len() as f64
        + x.iter()
            .map(|v| v * v - 10.0 * (2.0 * PI * v).cos())
            .sum::<f64>()
}

pub(super) fn six_hump_camel(x: &[f64]) -> f64 {
    let (a, b) = (x[0], x[1]);
    (4.0 - 2.1 * a * a + a.powi(4) / 3.0) * a * a + a * b + (-4.0 + 4.0 * b * b) * b * b
}

pub(super) fn goldstein_price(x: &[f64]) -> f64 {
    let (a, b) = (x[0], x[1]);
    let p = 1.0
        + (a + b + 1.0).powi(2)
            * (19.0 - 14.0 * a + 3.0 * a * a - 14.0 * b + 6.0 * a * b + 3.0 * b * b);
    let q = 30.0
        + (2.0 * a - 3.0 * b).powi(2)
            * (18.0 - 32.0 * a + 12.0 * a * a + 48.0 * b - 36.0 * a * b + 27.0 * b * b);
    (p * q).ln()
}

pub(super) fn michalewicz(x: &[f64]) -> f64 {
    use std::f64::consts::PI;
    -x.iter()
        .enumerate()
        .map(|(i, v)| v.sin() * ((i as f64 + 1.0) * v * v / PI).sin().powi(20))
        .sum::<f64>()
}

pub(super) fn zakharov(x: &[f64]) -> f64 {
    let s1 = x.iter().map(|v| v * v).sum::<f64>();
    let s2 = x
        .iter()
        .enumerate()
        .map(|(i, v)| 0.5 * (i as f64 + 1.0) * v)
        .sum::<f64>();
    s1 + s2.powi(2) + s2.powi(4)
}

/// A rotated ellipsoid (condition 1e3): correlated parameters.
pub(super) fn ellipsoid(x: &[f64]) -> f64 {
    let d = x.len();
    // A fixed rotation: the normalised Hadamard-like mixing of pairs, applied twice.
    let mut z: Vec<f64> = x.to_vec();
    for stride in [1, 2] {
        let mut y = z.clone();
        for i in 0..d {
            let j = i ^ stride;
            if j < d {
                y[i] = if i < j {
                    (z[i] + z[j]) / 2f64.sqrt()
                } else {
                    (z[j] - z[i]) / 2f64.sqrt()
                };
            }
        }
        z = y;
    }
    z.iter()
        .enumerate()
        .map(|(i, v)| 1e3f64.powf(i as f64 / (d - 1) as f64) * v * v)
        .sum()
}

/// Where the shifted problems have their optimum: away from the box's centre, where CMA-ES
/// starts and which a sampler with a central bias would find for free.
pub(super) const SHIFT: [f64; 8] = [0.62, -0.35, 0.81, -0.57, 0.44, -0.73, 0.29, -0.48];

pub(super) fn held_out() -> Vec<HeldOut> {
    let camel = "x0 = { type = \"float\", low = -3.0, high = 3.0 }\nx1 = { type = \"float\", low = -2.0, high = 2.0 }\n";
    vec![
        HeldOut::on_box("hartmann3", 3, (0.0, 1.0), hartmann3, -3.862_78),
        HeldOut::shifted("ackley5", 5, 32.768, ackley),
        HeldOut::shifted("levy6", 6, 10.0, levy),
        HeldOut::shifted("rastrigin4", 4, 5.12, rastrigin),
        HeldOut {
            name: "six_hump_camel",
            space: camel.into(),
            f: Box::new(|q| six_hump_camel(&box_point(q))),
            optimum: -1.031_628_5,
        },
        HeldOut::on_box(
            "goldstein_price",
            2,
            (-2.0, 2.0),
            goldstein_price,
            3f64.ln(),
        ),
        HeldOut::on_box(
            "michalewicz5",
            5,
            (0.0, std::f64::consts::PI),
            michalewicz,
            -4.687_658,
        ),
        HeldOut::shifted("zakharov8", 8, 10.0, zakharov),
        HeldOut::shifted("ellipsoid8", 8, 5.0, ellipsoid),
        HeldOut {
            name: "ml_conditional",
            space: ML_SPACE.into(),
            f: Box::new(ml_conditional),
            optimum: 0.0,
        },
        HeldOut {
            name: "categorical6",
            space: CAT_SPACE.into(),
            f: Box::new(categorical6),
            optimum: 0.0,
        },
    ]
}

/// The held-out table: each sampler against the first one on the held-out problems, and
/// against Optuna's counterpart when `python` is given: mean regret at `trials` and one-sided
/// Mann–Whitney p both ways.
pub fn held_out_table(
    python: Option<&Path>,
    trials: u64,
    seeds: u64,
    samplers: &[String],
) -> anyhow::Result<()> {
    let Some(base) = samplers.first() else {
        bail!("--samplers names no sampler");
    };
    let names: Vec<&str> = held_out().iter().map(|p| p.name).collect();
    let theirs = optuna(
        python,
        &[
            "quality",
            "--no-mo",
            "--trials",
            &trials.to_string(),
            "--seeds",
            &seeds.to_string(),
            "--problems",
            &names.join(","),
            "--samplers",
            &optuna_names(samplers),
        ],
    )?;
    println!("\n### Held-out problems: mean regret at {trials} trials over {seeds} seeds, against `{base}` and Optuna\n");
    println!("| problem | sampler | mean regret ± s.e. | ratio to base | p (worse) | p (better) | Optuna's counterpart | Optuna ± s.e. | p (worse than Optuna) | p (better than Optuna) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut tally: BTreeMap<&str, (u32, u32, u32)> = BTreeMap::new();
    let mut vs_optuna: BTreeMap<&str, (u32, u32, u32, u32)> = BTreeMap::new();
    for p in held_out() {
        let mut base_final: Vec<f64> = Vec::new();
        let mut base_mean = 0.0;
        for kind in samplers {
            let finals = parallel_seeds(seeds, |seed| {
                let s = spec(
                    &sampler_toml(kind),
                    &p.space,
                    "[\"minimize\"]",
                    "kind = \"none\"",
                    trials,
                    seed,
                );
                let c = best_so_far(&run_study(&s, &|q| vec![(p.f)(q)]));
                at(&c, trials as usize) - p.optimum
            });
            let m = mean(&finals);
            if kind == base {
                base_final = finals.clone();
                base_mean = m;
            }
            let (pw, pb) = (
                mann_whitney_greater(&finals, &base_final),
                mann_whitney_greater(&base_final, &finals),
            );
            if kind != base {
                let e = tally.entry(kind.as_str()).or_default();
                e.0 += u32::from(m <= base_mean);
                e.1 += u32::from(pb < 0.05);
                e.2 += u32::from(pw < 0.05);
            }
            let key = format!("{}/{}", optuna_name(kind), p.name);
            let their = their_regrets(theirs.as_ref(), &key, trials as usize, p.optimum);
            let (tm, tse, tw, tb) = if their.is_empty() {
                (
                    "–".to_string(),
                    "–".to_string(),
                    "–".to_string(),
                    "–".to_string(),
                )
            } else {
                let (w, b) = (
                    mann_whitney_greater(&finals, &their),
                    mann_whitney_greater(&their, &finals),
                );
                let e = vs_optuna.entry(kind.as_str()).or_default();
                e.0 += 1;
                e.1 += u32::from(m <= mean(&their));
                e.2 += u32::from(b < 0.05);
                e.3 += u32::from(w < 0.05);
                (
                    fmt(Some(mean(&their))),
                    fmt(Some(std_err(&their))),
                    format!("{w:.2}"),
                    format!("{b:.2}"),
                )
            };
            println!(
                "| {} | {kind} | {} ± {} | {:.2} | {pw:.2} | {pb:.2} | {} | {tm} ± {tse} | {tw} | {tb} |",
                p.name,
                fmt(Some(m)),
                fmt(Some(std_err(&finals))),
                m / base_mean.max(1e-300),
                optuna_name(kind),
            );
        }
    }
    println!();
    for (k, (le, better, worse)) in tally {
        println!("* {k}: mean regret ≤ `{base}`'s on {le} of {} problems; significantly better on {better}, worse on {worse}", held_out().len());
    }
    for (k, (n, le, better, worse)) in vs_optuna {
        println!("* {k} against Optuna's `{}`: mean regret ≤ Optuna's on {le} of {n} problems; significantly better (one-sided Mann–Whitney p < 0.05) on {better}, worse on {worse}", optuna_name(k));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, ParamValue)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn boxed(x: &[f64]) -> Params {
        x.iter()
            .enumerate()
            .map(|(i, v)| (format!("x{i}"), ParamValue::Float(*v)))
            .collect()
    }

    /// Each held-out problem reaches its stated optimum at its known minimiser, and no point
    /// a random search finds lies below it (so regrets are regrets).
    #[test]
    fn held_out_problems_have_the_stated_optima() {
        let shift = |half: f64, at: f64, d: usize| -> Vec<f64> {
            (0..d).map(|i| at + SHIFT[i] * half).collect()
        };
        let s = |v: &str| ParamValue::Str(v.into());
        let minimisers: Vec<(&str, Params)> = vec![
            ("hartmann3", boxed(&[0.114_614, 0.555_649, 0.852_547])),
            ("ackley5", boxed(&shift(32.768 * 0.8, 0.0, 5))),
            ("levy6", boxed(&shift(10.0 * 0.8, 1.0, 6))),
            ("rastrigin4", boxed(&shift(5.12 * 0.8, 0.0, 4))),
            ("six_hump_camel", boxed(&[0.089_842, -0.712_656])),
            ("goldstein_price", boxed(&[0.0, -1.0])),
            (
                "michalewicz5",
                boxed(&[
                    2.202_906,
                    std::f64::consts::FRAC_PI_2,
                    1.284_992,
                    1.923_058,
                    1.720_470,
                ]),
            ),
            ("zakharov8", boxed(&shift(10.0 * 0.8, 0.0, 8))),
            ("ellipsoid8", boxed(&shift(5.0 * 0.8, 0.0, 8))),
            (
                "ml_conditional",
                params(&[
                    ("opt", s("adam")),
                    ("lr", ParamValue::Float(10f64.powf(-3.2))),
                    ("beta2", ParamValue::Float(0.995)),
                    ("layers", ParamValue::Int(4)),
                    ("width", ParamValue::Int(256)),
                    ("act", s("gelu")),
                    ("dropout", ParamValue::Float(0.2)),
                ]),
            ),
            (
                "categorical6",
                params(&[
                    ("c0", s("b")),
                    ("c1", s("c")),
                    ("c2", s("a")),
                    ("c3", s("d")),
                    ("c4", s("e")),
                    ("c5", s("b")),
                    ("u0", ParamValue::Float(0.23)),
                    ("u1", ParamValue::Float(0.71)),
                    ("u2", ParamValue::Float(0.52)),
                ]),
            ),
        ];
        let problems = held_out();
        assert_eq!(problems.len(), minimisers.len());
        for (p, (name, at)) in problems.iter().zip(&minimisers) {
            assert_eq!(p.name, *name);
            let v = (p.f)(at);
            assert!((v - p.optimum).abs() < 1e-4, "{name}: {v} at its minimiser");
            let s = spec(
                "kind = \"random\"",
                &p.space,
                "[\"minimize\"]",
                "kind = \"none\"",
                300,
                1,
            );
            for v in run_study(&s, &|q| vec![(p.f)(q)]) {
                assert!(
                    v[0] >= p.optimum - 1e-6,
                    "{name}: {} below the optimum",
                    v[0]
                );
            }
        }
    }
}
