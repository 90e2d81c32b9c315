//! The quality table's problems: their spaces, functions and optima.
use super::*;

/// A benchmark problem: its space, its function and its optimum.
pub(super) struct Problem {
    pub(super) name: &'static str,
    pub(super) space: String,
    pub(super) f: BenchFunction,
    pub(super) optimum: f64,
}

pub(super) fn box_space(d: usize, lo: f64, hi: f64) -> String {
    (0..d)
        .map(|i| format!("x{i} = {{ type = \"float\", low = {lo:?}, high = {hi:?} }}\n"))
        .collect()
}

pub(super) fn problems() -> Vec<Problem> {
    vec![
        Problem {
            name: "branin",
            space: "x0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n".into(),
            f: BenchFunction::Branin,
            optimum: 0.397_887,
        },
        Problem {
            name: "hartmann6",
            space: box_space(6, 0.0, 1.0),
            f: BenchFunction::Hartmann6,
            optimum: -3.322_37,
        },
        Problem {
            name: "rosenbrock10",
            space: box_space(10, -5.0, 10.0),
            f: BenchFunction::Rosenbrock,
            optimum: 0.0,
        },
        Problem {
            name: "styblinski_tang10",
            space: box_space(10, -5.0, 5.0),
            f: BenchFunction::StyblinskiTang,
            optimum: -391.661_7,
        },
        Problem {
            name: "mixed",
            space: "x = { type = \"float\", low = 0.0, high = 1.0 }\nn = { type = \"int\", low = 0, high = 10 }\nkind = { type = \"categorical\", choices = [\"a\", \"b\", \"c\"] }\ny = { type = \"float\", low = 0.0, high = 1.0, when = { kind = [\"a\"] } }\n".into(),
            f: BenchFunction::Mixed,
            optimum: 0.0,
        },
    ]
}

pub(super) fn zdt1(p: &Params) -> Vec<f64> {
    let g = |k: &str| p.get(k).and_then(ParamValue::as_f64).unwrap_or(0.0);
    let (x, y, z) = (g("x"), g("y"), g("z"));
    let gg = 1.0 + 9.0 * (y + z) / 2.0;
    vec![x, gg * (1.0 - (x / gg).sqrt())]
}
