//! Multi-objective tools: Pareto dominance (with constraint-dominance), non-dominated sorting,
//! crowding distance and the hypervolume. Losses are minimised: callers negate maximised
//! objectives first (see [`losses`]).
#![allow(clippy::needless_range_loop)] // index loops read best in the linear algebra
use mlt_protocol::records::TrialRecord;
use mlt_protocol::spec::Direction;

/// A trial's values as losses (maximised objectives negated).
pub fn losses(t: &TrialRecord, dirs: &[Direction]) -> Option<Vec<f64>> {
    let v = t.values.as_ref()?;
    (v.len() == dirs.len() && v.iter().all(|x| x.is_finite()))
        .then(|| v.iter().zip(dirs).map(|(x, d)| d.loss(*x)).collect())
}

/// Total constraint violation: 0 for a feasible trial (or one without constraints).
pub fn violation(t: &TrialRecord) -> f64 {
    t.constraints.as_ref().map_or(0.0, |c| {
        c.iter()
            .map(|x| {
                if x.is_nan() {
                    f64::INFINITY
                } else {
                    x.max(0.0)
                }
            })
            .sum()
    })
}

/// Whether loss vector `a` Pareto-dominates `b`.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// Constraint-dominance (Deb): a feasible point beats an infeasible one, the smaller
/// violation wins between infeasible ones, and Pareto dominance decides between feasible ones.
pub fn constrained_dominates(a: &[f64], va: f64, b: &[f64], vb: f64) -> bool {
    match (va > 0.0, vb > 0.0) {
        (false, true) => true,
        (true, false) => false,
        (true, true) => va < vb,
        (false, false) => dominates(a, b),
    }
}

/// Fronts of non-dominated sorting (indices into `points`), best front first.
/// `violations`, when given, switches to constraint-dominance.
pub fn nondominated_sort(points: &[Vec<f64>], violations: Option<&[f64]>) -> Vec<Vec<usize>> {
    let n = points.len();
    let dom = |i: usize, j: usize| match violations {
        Some(v) => constrained_dominates(&points[i], v[i], &points[j], v[j]),
        None => dominates(&points[i], &points[j]),
    };
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (i + 1)..n {
            if dom(i, j) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            } else if dom(j, i) {
                dominating[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// Crowding distance of each point of one front (NSGA-II): boundary points get infinity.
pub fn crowding_distance(points: &[&[f64]]) -> Vec<f64> {
    let n = points.len();
    let mut d = vec![0.0; n];
    if n == 0 {
        return d;
    }
    let m = points[0].len();
    for k in 0..m {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| points[a][k].total_cmp(&points[b][k]));
        let lo = points[idx[0]][k];
        let hi = points[idx[n - 1]][k];
        d[idx[0]] = f64::INFINITY;
        d[idx[n - 1]] = f64::INFINITY;
        if hi - lo <= 0.0 || !(hi - lo).is_finite() {
            continue;
        }
        for w in 1..n.saturating_sub(1) {
            d[idx[w]] += (points[idx[w + 1]][k] - points[idx[w - 1]][k]) / (hi - lo);
        }
    }
    d
}

/// The hypervolume dominated by `points` (losses) and bounded by `reference`. Points not
/// strictly better than the reference in every objective contribute nothing.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    let pts: Vec<Vec<f64>> = points
        .iter()
        .filter(|p| p.iter().zip(reference).all(|(x, r)| x < r))
        .cloned()
        .collect();
    hv(pts, reference)
}

fn hv(mut pts: Vec<Vec<f64>>, r: &[f64]) -> f64 {
    if pts.is_empty() {
        return 0.0;
    }
    let d = r.len();
    if d == 1 {
        return r[0] - pts.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
    }
    if d == 2 {
        pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        let mut vol = 0.0;
        let mut best_y = r[1];
        for p in &pts {
            if p[1] < best_y {
                vol += (r[0] - p[0]) * (best_y - p[1]);
                best_y = p[1];
            }
        }
        return vol;
    }
    // Slice along the last objective: between consecutive levels, the (d-1)-dimensional
    // volume of the points already below the slice.
    pts.sort_by(|a, b| a[d - 1].total_cmp(&b[d - 1]));
    let mut vol = 0.0;
    for i in 0..pts.len() {
        let top = if i + 1 < pts.len() {
            pts[i + 1][d - 1]
        } else {
            r[d - 1]
        };
        let h = top - pts[i][d - 1];
        if h <= 0.0 {
            continue;
        }
        let proj: Vec<Vec<f64>> = pts[..=i].iter().map(|p| p[..d - 1].to_vec()).collect();
        let proj: Vec<Vec<f64>> = proj
            .iter()
            .filter(|p| !proj.iter().any(|q| dominates(q, p)))
            .cloned()
            .collect();
        vol += h * hv(proj, &r[..d - 1]);
    }
    vol
}

/// A reference point a little worse than the worst of `points` in every objective.
pub fn reference_point(points: &[Vec<f64>]) -> Vec<f64> {
    let m = points.first().map_or(0, |p| p.len());
    (0..m)
        .map(|k| {
            let w = points
                .iter()
                .map(|p| p[k])
                .fold(f64::NEG_INFINITY, f64::max);
            if w == 0.0 {
                1e-12
            } else if w > 0.0 {
                w * 1.1
            } else {
                w * 0.9
            }
        })
        .collect()
}

/// Each point's exclusive hypervolume contribution.
pub fn contributions(points: &[Vec<f64>], reference: &[f64]) -> Vec<f64> {
    let total = hypervolume(points, reference);
    (0..points.len())
        .map(|i| {
            let rest: Vec<Vec<f64>> = points
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| p.clone())
                .collect();
            (total - hypervolume(&rest, reference)).max(0.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nondominated_sort_by_hand() {
        // (1,4) (2,2) (4,1) are the first front; (3,3) is dominated by (2,2); (4,4) by all.
        let p = vec![
            vec![3.0, 3.0],
            vec![1.0, 4.0],
            vec![2.0, 2.0],
            vec![4.0, 4.0],
            vec![4.0, 1.0],
        ];
        assert_eq!(
            nondominated_sort(&p, None),
            vec![vec![1, 2, 4], vec![0], vec![3]]
        );
        // Constraint-dominance: an infeasible (4,1) falls behind every feasible point, and
        // the less violated of two infeasible points comes first.
        let v = [0.0, 0.0, 0.0, 0.0, 2.0];
        assert_eq!(
            nondominated_sort(&p, Some(&v)),
            vec![vec![1, 2], vec![0], vec![3], vec![4]]
        );
        let v = [0.5, 0.0, 0.0, 0.0, 2.0];
        assert_eq!(
            nondominated_sort(&p, Some(&v)),
            vec![vec![1, 2], vec![3], vec![0], vec![4]]
        );
    }

    #[test]
    fn crowding_distance_by_hand() {
        // Front (1,4) (2,2) (4,1): the ends are infinite; the middle one sees its neighbours'
        // spans: (4-1)/(4-1) in f0 + (4-1)/(4-1) in f1 = 2.
        let a = [1.0, 4.0];
        let b = [2.0, 2.0];
        let c = [4.0, 1.0];
        let d = crowding_distance(&[&a, &b, &c]);
        assert!(d[0].is_infinite() && d[2].is_infinite());
        assert!((d[1] - 2.0).abs() < 1e-12);
        // Four points on a line x + y = 4 at x = 0, 1, 3, 4: middles get (3-0)/4 · 2 and
        // (4-1)/4 · 2.
        let pts = [[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]];
        let refs: Vec<&[f64]> = pts.iter().map(|p| &p[..]).collect();
        let d = crowding_distance(&refs);
        assert!((d[1] - 1.5).abs() < 1e-12 && (d[2] - 1.5).abs() < 1e-12);
    }

    #[test]
    fn hypervolume_by_hand() {
        // Two objectives, reference (5,5): (1,4) (2,2) (4,1) cover 4·1 + 3·2 + 1·1 = 11.
        let p = vec![vec![1.0, 4.0], vec![2.0, 2.0], vec![4.0, 1.0]];
        assert!((hypervolume(&p, &[5.0, 5.0]) - 11.0).abs() < 1e-12);
        // A dominated point adds nothing; a point outside the reference adds nothing.
        let mut q = p.clone();
        q.push(vec![3.0, 3.0]);
        q.push(vec![6.0, 0.0]);
        assert!((hypervolume(&q, &[5.0, 5.0]) - 11.0).abs() < 1e-12);
        // Three objectives: two unit-offset boxes to (2,2,2): 1·2·2... by inclusion–exclusion
        // box A = [0,2]×[1,2]×[1,2] → from (0,1,1): 2·1·1 = 2; box B from (1,0,1): 1·2·1 = 2;
        // overlap [1,2]×[1,2]×[1,2] = 1 → 3.
        let p3 = vec![vec![0.0, 1.0, 1.0], vec![1.0, 0.0, 1.0]];
        assert!((hypervolume(&p3, &[2.0, 2.0, 2.0]) - 3.0).abs() < 1e-12);
        // Add (1,1,0): box 1·1·2 = 2, overlaps with A: [1,2]×[1,2]×[1,2] = 1, with B the
        // same cube, triple overlap the same cube: 3 + 2 − 1 − 1 + 1 = 4.
        let mut p4 = p3.clone();
        p4.push(vec![1.0, 1.0, 0.0]);
        assert!((hypervolume(&p4, &[2.0, 2.0, 2.0]) - 4.0).abs() < 1e-12);
        // Contributions of the 2-D front: (1,4) owns [1,2]×[4,5] = 1, (2,2) owns
        // [2,4]×[2,4] = 4, (4,1) owns [4,5]×[1,2] = 1.
        let c = contributions(&p, &[5.0, 5.0]);
        assert!(
            (c[0] - 1.0).abs() < 1e-12 && (c[1] - 4.0).abs() < 1e-12 && (c[2] - 1.0).abs() < 1e-12
        );
    }
}
