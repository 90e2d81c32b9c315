//! The analytic test functions of the `benchmark` objective, shared by nodes (which evaluate
//! trials), the search tests and the benchmarks.
use mlt_protocol::records::{ParamValue, Params};
use mlt_protocol::spec::BenchFunction;

fn num(p: &Params, name: &str) -> Result<f64, String> {
    p.get(name)
        .and_then(ParamValue::as_f64)
        .ok_or_else(|| format!("parameter `{name}` is missing or not numeric"))
}

/// The coordinates x0, x1, … of a point of a box problem, up to the first missing one.
pub fn box_point(p: &Params) -> Vec<f64> {
    (0..)
        .map_while(|i| p.get(&format!("x{i}")).and_then(ParamValue::as_f64))
        .collect()
}

/// The Hartmann family in `D` dimensions: −Σᵢ αᵢ exp(−Σⱼ Aᵢⱼ (xⱼ − Pᵢⱼ)²), α = (1, 1.2, 3, 3.2).
pub fn hartmann<const D: usize>(x: &[f64], a: &[[f64; D]; 4], p: &[[f64; D]; 4]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    -(0..4)
        .map(|i| {
            ALPHA[i]
                * (-(0..D)
                    .map(|j| a[i][j] * (x[j] - p[i][j]).powi(2))
                    .sum::<f64>())
                .exp()
        })
        .sum::<f64>()
}

/// Evaluating a benchmark function.
pub trait Evaluate {
    /// The function's value at `p` (all functions are minimised).
    fn evaluate(self, p: &Params) -> Result<f64, String>;
}

impl Evaluate for BenchFunction {
    fn evaluate(self, p: &Params) -> Result<f64, String> {
        let f = self;
        use std::f64::consts::PI;
        Ok(match f {
            BenchFunction::Branin => {
                let (x, y) = (num(p, "x0")?, num(p, "x1")?);
                let (a, b, c, r, s, t) = (
                    1.0,
                    5.1 / (4.0 * PI * PI),
                    5.0 / PI,
                    6.0,
                    10.0,
                    1.0 / (8.0 * PI),
                );
                a * (y - b * x * x + c * x - r).powi(2) + s * (1.0 - t) * x.cos() + s
            }
            BenchFunction::Hartmann6 => {
                const A: [[f64; 6]; 4] = [
                    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
                    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
                    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
                    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
                ];
                const P: [[f64; 6]; 4] = [
                    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
                    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
                    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
                    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
                ];
                let x: Vec<f64> = (0..6)
                    .map(|i| num(p, &format!("x{i}")))
                    .collect::<Result<_, _>>()?;
                hartmann(&x, &A, &P)
            }
            BenchFunction::Rosenbrock => {
                let x = box_point(p);
                x.windows(2)
                    .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                    .sum()
            }
            BenchFunction::StyblinskiTang => {
                box_point(p)
                    .iter()
                    .map(|x| x.powi(4) - 16.0 * x * x + 5.0 * x)
                    .sum::<f64>()
                    / 2.0
            }
            BenchFunction::Mixed => {
                let x = num(p, "x")?;
                let n = num(p, "n")?;
                let kind = match p.get("kind") {
                    Some(ParamValue::Str(s)) => s.as_str(),
                    _ => return Err("parameter `kind` is missing or not a string".into()),
                };
                let base = (x - 0.3).powi(2) + 0.1 * (n - 3.0).powi(2);
                base + match kind {
                    "a" => p
                        .get("y")
                        .and_then(ParamValue::as_f64)
                        .map_or(1.0, |y| (y - 0.7).powi(2)),
                    "b" => 0.5,
                    _ => 1.0,
                }
            }
        })
    }
}
