//! Grid enumeration: the values each parameter takes on a grid, and the grid's points.
use mlt_protocol::records::{ParamValue, Params};
use mlt_protocol::spec::{Distribution, SearchSpace};

/// Most grid points a grid study may have.
pub const MAX_GRID_POINTS: usize = 1_000_000;

/// The values a parameter takes on a grid: every value of an int, stepped float or
/// categorical parameter (when there are at most `MAX_GRID_POINTS`), else `points` evenly
/// spaced ones (log-spaced for `log`).
pub fn grid_values(dist: &Distribution, points: u32) -> Vec<ParamValue> {
    use Distribution as D;
    use ParamValue as V;
    let n = points.max(1) as usize;
    let spaced = |lo: f64, hi: f64, log: bool| -> Vec<f64> {
        if n == 1 || lo == hi {
            return vec![if log {
                (lo.ln() + hi.ln()) / 2.0
            } else {
                (lo + hi) / 2.0
            }]
            .into_iter()
            .map(|x| if log { x.exp() } else { x })
            .collect();
        }
        let (a, b) = if log { (lo.ln(), hi.ln()) } else { (lo, hi) };
        (0..n)
            .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
            .map(|x| if log { x.exp().clamp(lo, hi) } else { x })
            .collect()
    };
    match dist {
        D::Float {
            low,
            high,
            step: Some(s),
            ..
        } => {
            let k = ((high - low) / s + 1e-9).floor() as usize;
            if k < MAX_GRID_POINTS {
                (0..=k).map(|i| V::Float(low + s * i as f64)).collect()
            } else {
                spaced(*low, *high, false)
                    .into_iter()
                    .map(V::Float)
                    .collect()
            }
        }
        D::Float { low, high, log, .. } => spaced(*low, *high, *log)
            .into_iter()
            .map(V::Float)
            .collect(),
        D::Int {
            low,
            high,
            step,
            log,
        } => {
            let k = ((high - low) / step) as usize;
            if k < MAX_GRID_POINTS && (!*log || k < n) {
                (0..=k).map(|i| V::Int(low + step * i as i64)).collect()
            } else {
                let mut v: Vec<i64> = spaced(*low as f64, *high as f64, *log)
                    .into_iter()
                    .map(|x| {
                        let j = ((x - *low as f64) / *step as f64).round() as i64;
                        low + j.clamp(0, (high - low) / step) * step
                    })
                    .collect();
                v.dedup();
                v.into_iter().map(V::Int).collect()
            }
        }
        D::Categorical { choices } => choices.clone(),
        D::Fixed { value } => vec![value.clone()],
    }
}

/// Every point of the grid over `space` in a fixed order, conditional parameters included
/// only where active; `Err(n)` when there are more than `MAX_GRID_POINTS` (n counts so far).
pub fn grid_points(space: &SearchSpace, points: u32) -> Result<Vec<Params>, usize> {
    let values: Vec<Vec<ParamValue>> = space
        .params
        .iter()
        .map(|p| grid_values(&p.dist, points))
        .collect();
    let mut out = vec![Params::new()];
    for (p, vals) in space.params.iter().zip(&values) {
        let mut next = Vec::new();
        for base in out {
            if !SearchSpace::is_active(p, &base) {
                next.push(base);
                continue;
            }
            for v in vals {
                let mut q = base.clone();
                q.insert(p.name.clone(), v.clone());
                next.push(q);
                if next.len() > MAX_GRID_POINTS {
                    return Err(next.len());
                }
            }
        }
        out = next;
    }
    Ok(out)
}
