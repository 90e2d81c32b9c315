//! The search space as samplers see it: each parameter mapped to an internal number line
//! (log scale for `log`, widened by half a step for int and stepped floats so that every grid
//! point owns an equal interval, an index for categorical), and the unit cube over those lines.
use mlt_protocol::records::{ParamValue, Params, TrialRecord};
use mlt_protocol::spec::{Distribution, ParamSpec, SearchSpace};
use rand::Rng;

/// A parameter's internal line: continuous `[lo, hi]`, or `n` categories.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Line {
    /// Continuous bounds (already log / widened).
    Cont {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// A categorical parameter's choice count.
    Cat(usize),
    /// A fixed parameter: nothing to search.
    Fixed,
}

/// The internal line of `dist`.
pub fn line(dist: &Distribution) -> Line {
    match dist {
        Distribution::Float {
            low,
            high,
            log: true,
            ..
        } => Line::Cont {
            lo: low.ln(),
            hi: high.ln(),
        },
        Distribution::Float {
            low,
            high,
            step: Some(s),
            ..
        } => Line::Cont {
            lo: low - s / 2.0,
            hi: grid_top(*low, *high, *s) + s / 2.0,
        },
        Distribution::Float { low, high, .. } => Line::Cont {
            lo: *low,
            hi: *high,
        },
        Distribution::Int {
            low,
            high,
            log: true,
            ..
        } => Line::Cont {
            lo: (*low as f64 - 0.5).max(0.5).ln(),
            hi: (*high as f64 + 0.5).ln(),
        },
        Distribution::Int {
            low, high, step, ..
        } => {
            let top = low + (high - low) / step * step;
            Line::Cont {
                lo: *low as f64 - *step as f64 / 2.0,
                hi: top as f64 + *step as f64 / 2.0,
            }
        }
        Distribution::Categorical { choices } => Line::Cat(choices.len()),
        Distribution::Fixed { .. } => Line::Fixed,
    }
}

/// The largest grid point `low + k·step` not above `high`.
fn grid_top(low: f64, high: f64, step: f64) -> f64 {
    low + ((high - low) / step + 1e-9).floor() * step
}

/// A value's position on its internal line (`None` for a value the distribution cannot take,
/// e.g. from a warm start with another space).
pub fn encode(dist: &Distribution, v: &ParamValue) -> Option<f64> {
    let num = match v {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(f) => Some(*f),
        _ => None,
    };
    match dist {
        Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. } => {
            num.filter(|x| *x > 0.0).map(f64::ln)
        }
        Distribution::Float { .. } | Distribution::Int { .. } => num,
        Distribution::Categorical { choices } => {
            choices.iter().position(|c| c == v).map(|i| i as f64)
        }
        Distribution::Fixed { .. } => Some(0.0),
    }
}

/// The value at position `x` of the internal line: clamped, rounded to the grid.
pub fn decode(dist: &Distribution, x: f64) -> ParamValue {
    match dist {
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => {
            let v = if *log { x.exp() } else { x };
            let v = match step {
                Some(s) => {
                    let k = ((v - low) / s).round().max(0.0);
                    (low + k * s).min(grid_top(*low, *high, *s))
                }
                None => v,
            };
            ParamValue::Float(v.clamp(*low, *high))
        }
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => {
            let v = if *log { x.exp() } else { x };
            let k = ((v - *low as f64) / *step as f64).round().max(0.0) as i64;
            let top = (high - low) / step;
            ParamValue::Int(low + k.min(top) * step)
        }
        Distribution::Categorical { choices } => {
            let i = (x.round().max(0.0) as usize).min(choices.len() - 1);
            choices[i].clone()
        }
        Distribution::Fixed { value } => value.clone(),
    }
}

/// The value at `u ∈ [0, 1]` of the unit interval over the internal line (categorical: equal
/// slices).
pub fn from_unit(dist: &Distribution, u: f64) -> ParamValue {
    let u = u.clamp(0.0, 1.0);
    match line(dist) {
        Line::Cont { lo, hi } => decode(dist, lo + u * (hi - lo)),
        Line::Cat(n) => decode(dist, ((u * n as f64).floor()).min(n as f64 - 1.0)),
        Line::Fixed => decode(dist, 0.0),
    }
}

/// A value's position in the unit interval (categorical: the middle of its slice).
pub fn to_unit(dist: &Distribution, v: &ParamValue) -> Option<f64> {
    let x = encode(dist, v)?;
    Some(match line(dist) {
        Line::Cont { lo, hi } if hi > lo => ((x - lo) / (hi - lo)).clamp(0.0, 1.0),
        Line::Cont { .. } => 0.5,
        Line::Cat(n) => (x + 0.5) / n as f64,
        Line::Fixed => 0.5,
    })
}

/// Whether a parameter has something to search.
pub fn searchable(p: &ParamSpec) -> bool {
    line(&p.dist) != Line::Fixed
}

/// Turns a proposal for every parameter into a trial's parameters: walks the space parents
/// first, keeps the active ones, takes each from `preset` (an enqueued set), else from
/// `proposal`, else draws it at random.
pub fn assemble(
    space: &SearchSpace,
    preset: Option<&Params>,
    proposal: &Params,
    rng: &mut impl Rng,
) -> Params {
    let mut params = Params::new();
    for p in &space.params {
        if !SearchSpace::is_active(p, &params) {
            continue;
        }
        let v = preset
            .and_then(|s| s.get(&p.name))
            .or_else(|| proposal.get(&p.name))
            .cloned()
            .unwrap_or_else(|| draw(&p.dist, rng));
        params.insert(p.name.clone(), v);
    }
    params
}

/// A suggestion from unit-cube coordinates `u` of the parameters `cols` (the others drawn at
/// random by `assemble`).
pub fn from_unit_cols(
    a: &super::Ask,
    cols: &[usize],
    u: &[f64],
    generation: Option<u32>,
    rng: &mut impl Rng,
) -> super::Suggestion {
    let mut proposal = Params::new();
    for (&j, x) in cols.iter().zip(u) {
        let p = &a.space.params[j];
        proposal.insert(p.name.clone(), from_unit(&p.dist, *x));
    }
    super::Suggestion {
        params: assemble(a.space, None, &proposal, rng),
        generation,
    }
}

/// Each trial's parameters on the internal lines (NaN where inactive or not encodable),
/// computed once per trial: parameters never change after a trial is created. Stored by
/// parameter (column), trials in number order.
#[derive(Default)]
pub struct Encoded {
    cols: Vec<Vec<f64>>,
}

impl Encoded {
    /// Brings the cache up to `trials` (which only ever grows).
    pub fn update(&mut self, space: &SearchSpace, trials: &[TrialRecord]) {
        if trials.len() < self.len() || self.cols.len() != space.params.len() {
            self.cols = vec![Vec::new(); space.params.len()];
        }
        for t in &trials[self.len()..] {
            for (c, p) in self.cols.iter_mut().zip(&space.params) {
                let x = t.params.get(&p.name).and_then(|v| encode(&p.dist, v));
                c.push(x.unwrap_or(f64::NAN));
            }
        }
    }

    /// Trials encoded so far.
    pub fn len(&self) -> usize {
        self.cols.first().map_or(0, Vec::len)
    }

    /// Whether no trial is encoded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Column `j`: every trial's value of parameter `j`, by trial number.
    pub fn col(&self, j: usize) -> &[f64] {
        &self.cols[j]
    }
}

/// A standard normal draw (Box–Muller; one of the pair is discarded for simplicity).
pub fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Draws one value of `dist`.
pub fn draw(dist: &Distribution, rng: &mut impl Rng) -> ParamValue {
    match dist {
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => {
            if low == high {
                return ParamValue::Float(*low);
            }
            let x = if *log {
                (rng.random_range(low.ln()..=high.ln()))
                    .exp()
                    .clamp(*low, *high)
            } else if let Some(s) = step {
                let n = ((high - low) / s + 1e-9).floor() as u64;
                (low + s * rng.random_range(0..=n) as f64).min(*high)
            } else {
                rng.random_range(*low..=*high)
            };
            ParamValue::Float(x)
        }
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => {
            let v = if *log {
                let x = rng
                    .random_range((*low as f64 - 0.5).max(0.5).ln()..(*high as f64 + 0.5).ln())
                    .exp();
                (x.round() as i64).clamp(*low, *high)
            } else {
                let n = (high - low) / step;
                low + step * rng.random_range(0..=n)
            };
            ParamValue::Int(v)
        }
        Distribution::Categorical { choices } => {
            choices[rng.random_range(0..choices.len())].clone()
        }
        Distribution::Fixed { value } => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trips_every_kind() {
        let f = Distribution::Float {
            low: 1e-4,
            high: 1.0,
            log: true,
            step: None,
        };
        let x = encode(&f, &ParamValue::Float(0.01)).unwrap();
        assert!((x - 0.01f64.ln()).abs() < 1e-12);
        assert!(matches!(decode(&f, x), ParamValue::Float(v) if (v - 0.01).abs() < 1e-15));
        let s = Distribution::Float {
            low: 0.1,
            high: 0.95,
            log: false,
            step: Some(0.2),
        };
        // Grid 0.1, 0.3, 0.5, 0.7, 0.9: the line is [0.0, 1.0].
        assert_eq!(line(&s), Line::Cont { lo: 0.0, hi: 1.0 });
        assert!(matches!(decode(&s, 0.99), ParamValue::Float(v) if (v - 0.9).abs() < 1e-12));
        assert!(matches!(decode(&s, 0.41), ParamValue::Float(v) if (v - 0.5).abs() < 1e-12));
        let i = Distribution::Int {
            low: 2,
            high: 11,
            log: false,
            step: 3,
        };
        // Grid 2, 5, 8, 11.
        assert_eq!(line(&i), Line::Cont { lo: 0.5, hi: 12.5 });
        assert_eq!(decode(&i, 12.4), ParamValue::Int(11));
        assert_eq!(decode(&i, 6.6), ParamValue::Int(8));
        assert_eq!(decode(&i, -3.0), ParamValue::Int(2));
        let il = Distribution::Int {
            low: 1,
            high: 1000,
            log: true,
            step: 1,
        };
        assert_eq!(
            decode(&il, encode(&il, &ParamValue::Int(37)).unwrap()),
            ParamValue::Int(37)
        );
        let c = Distribution::Categorical {
            choices: vec![ParamValue::Str("a".into()), ParamValue::Str("b".into())],
        };
        assert_eq!(encode(&c, &ParamValue::Str("b".into())), Some(1.0));
        assert_eq!(encode(&c, &ParamValue::Str("z".into())), None);
        assert_eq!(from_unit(&c, 0.49), ParamValue::Str("a".into()));
        assert_eq!(from_unit(&c, 1.0), ParamValue::Str("b".into()));
        assert_eq!(to_unit(&c, &ParamValue::Str("b".into())), Some(0.75));
    }
}
