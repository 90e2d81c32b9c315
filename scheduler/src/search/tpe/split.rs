//! The split of a study's trials into good and bad ones, and the weights of old observations.
use super::EPS;
use crate::search::mo;
use crate::search::Ask;
use mlt_protocol::records::TrialState;
use mlt_protocol::spec::TpeSpec;

/// Optuna's weights: flat for the newest 25 observations, a linear ramp from 1/n for older.
pub fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

/// The good and bad trials (indices into the trials), each sorted by trial number, and the
/// good trials' weights when several objectives set them.
#[derive(Debug, PartialEq)]
pub struct Split {
    /// Good.
    pub below: Vec<usize>,
    /// Bad (including running trials under `constant_liar`).
    pub above: Vec<usize>,
    /// MOTPE weights of `below` (same order), if any.
    pub below_weights: Option<Vec<f64>>,
    /// Per trial: 0 = not used, 1 = good, 2 = bad.
    pub mask: Vec<u8>,
    /// Per bad trial: its age rank among the bad trials.
    pub rank: Vec<u32>,
}

/// Splits the trials as described in the module docs; `None` before `n_startup_trials`.
pub fn split(cfg: &TpeSpec, a: &Ask) -> Option<Split> {
    let dirs = a.directions;
    let single = dirs.len() == 1;
    let mut feasible: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut feasible1: Vec<(f64, usize)> = Vec::new();
    let mut pruned: Vec<(usize, u64, f64)> = Vec::new();
    let mut infeasible: Vec<(usize, f64)> = Vec::new();
    let mut running: Vec<usize> = Vec::new();
    let sign = |k: usize, v: f64| dirs[k].loss(v);
    for (i, t) in a.trials.iter().enumerate() {
        match t.state {
            TrialState::Complete => {
                let v = mo::violation(t);
                if single {
                    let Some(x) = t.values.as_ref().and_then(|v| v.first().copied()) else {
                        continue;
                    };
                    if !x.is_finite() {
                        continue;
                    }
                    if v > 0.0 {
                        infeasible.push((i, v));
                    } else {
                        feasible1.push((sign(0, x), i));
                    }
                    continue;
                }
                let Some(l) = mo::losses(t, dirs) else {
                    continue;
                };
                if v > 0.0 {
                    infeasible.push((i, v));
                } else {
                    feasible.push((i, l));
                }
            }
            TrialState::Pruned => {
                let last = t
                    .intermediate
                    .iter()
                    .rev()
                    .find(|(_, v)| v.first().is_some_and(|x| !x.is_nan()));
                match last {
                    Some((step, v)) => pruned.push((i, *step, sign(0, v[0]))),
                    None => pruned.push((i, 0, f64::INFINITY)),
                }
            }
            TrialState::Running | TrialState::Waiting if cfg.constant_liar => running.push(i),
            _ => {}
        }
    }
    let n = feasible.len() + feasible1.len() + pruned.len() + infeasible.len();
    if n < cfg.n_startup_trials as usize || n == 0 {
        return None;
    }
    let n_below = ((cfg.gamma * n as f64).ceil() as usize)
        .min(cfg.gamma_max as usize)
        .max(1);
    pruned.sort_by(|x, y| y.1.cmp(&x.1).then(x.2.total_cmp(&y.2)).then(x.0.cmp(&y.0)));
    infeasible.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
    let (mut below, mut below_weights): (Vec<usize>, Option<Vec<f64>>);
    let mut rest: Vec<usize>;
    if single {
        // Only the good set needs ordering: select it, then sort it.
        let cmp = |x: &(f64, usize), y: &(f64, usize)| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1));
        if n_below < feasible1.len() {
            feasible1.select_nth_unstable_by(n_below, cmp);
            feasible1[..n_below].sort_by(cmp);
        } else {
            feasible1.sort_by(cmp);
        }
        let mut order = feasible1.iter().map(|x| x.1);
        below = order.by_ref().take(n_below).collect();
        let short = n_below - below.len();
        rest = order.collect();
        let mut tail = pruned
            .iter()
            .map(|x| x.0)
            .chain(infeasible.iter().map(|x| x.0));
        below.extend(tail.by_ref().take(short));
        rest.extend(tail);
        below_weights = None;
    } else {
        let pts: Vec<Vec<f64>> = feasible.iter().map(|x| x.1.clone()).collect();
        let mut chosen: Vec<usize> = Vec::new();
        for front in mo::nondominated_sort(&pts, None) {
            if chosen.len() + front.len() <= n_below {
                chosen.extend(front);
                continue;
            }
            // Fill the rest greedily by hypervolume contribution.
            let need = n_below - chosen.len();
            let fpts: Vec<Vec<f64>> = front.iter().map(|&k| pts[k].clone()).collect();
            let r = mo::reference_point(&fpts);
            let mut picked: Vec<usize> = Vec::new();
            for _ in 0..need {
                let base: Vec<Vec<f64>> = picked.iter().map(|&k| fpts[k].clone()).collect();
                let hv0 = mo::hypervolume(&base, &r);
                let best = (0..front.len())
                    .filter(|k| !picked.contains(k))
                    .map(|k| {
                        let mut with = base.clone();
                        with.push(fpts[k].clone());
                        (k, mo::hypervolume(&with, &r) - hv0)
                    })
                    .fold(None::<(usize, f64)>, |acc, x| match acc {
                        Some(a) if a.1 >= x.1 => Some(a),
                        _ => Some(x),
                    });
                if let Some((k, _)) = best {
                    picked.push(k);
                }
            }
            chosen.extend(picked.into_iter().map(|k| front[k]));
            break;
        }
        let chosen_set: std::collections::BTreeSet<usize> = chosen.iter().copied().collect();
        below = chosen.iter().map(|&k| feasible[k].0).collect();
        rest = (0..feasible.len())
            .filter(|k| !chosen_set.contains(k))
            .map(|k| feasible[k].0)
            .chain(pruned.iter().map(|x| x.0))
            .chain(infeasible.iter().map(|x| x.0))
            .collect();
        if below.len() < n_below {
            let more = n_below - below.len();
            let take = more.min(rest.len());
            below.extend(rest.drain(..take));
        }
        // Weights by hypervolume contribution among the good feasible points.
        let good: Vec<Vec<f64>> = chosen.iter().map(|&k| pts[k].clone()).collect();
        let mut w = vec![EPS; below.len()];
        if !good.is_empty() {
            let r = mo::reference_point(&good);
            let c = mo::contributions(&good, &r);
            let max = c.iter().copied().fold(0.0, f64::max);
            for (k, ck) in c.iter().enumerate() {
                w[k] = if max > 0.0 {
                    (ck / max).clamp(EPS, 1.0)
                } else {
                    1.0
                };
            }
        }
        let mut pairs: Vec<(usize, f64)> = below.iter().copied().zip(w).collect();
        pairs.sort_by_key(|p| p.0);
        below = pairs.iter().map(|p| p.0).collect();
        below_weights = Some(pairs.iter().map(|p| p.1).collect());
    }
    rest.extend(running);
    if below_weights.is_none() {
        below.sort_unstable();
    }
    below_weights = below_weights.filter(|w| w.len() == below.len());
    let mut mask = vec![0u8; a.trials.len()];
    for &i in &rest {
        mask[i] = 2;
    }
    for &i in &below {
        mask[i] = 1;
    }
    // Bad trials in number order (weights ramp with age).
    let above: Vec<usize> = (0..a.trials.len()).filter(|&i| mask[i] == 2).collect();
    let mut rank = vec![u32::MAX; a.trials.len()];
    for (r, &i) in above.iter().enumerate() {
        rank[i] = r as u32;
    }
    Some(Split {
        below,
        above,
        below_weights,
        mask,
        rank,
    })
}

/// [`default_weights`] without the vector: the weight of age rank `rank` (0 = oldest).
pub(super) struct RampWeights {
    flat_from: usize,
    base: f64,
    slope: f64,
}

impl RampWeights {
    pub(crate) fn new(n: usize) -> Self {
        let ramp = n.saturating_sub(25);
        let base = 1.0 / n.max(1) as f64;
        let slope = if ramp > 1 {
            (1.0 - base) / (ramp - 1) as f64
        } else {
            0.0
        };
        Self {
            flat_from: if n < 25 { 0 } else { ramp },
            base,
            slope,
        }
    }

    #[inline]
    pub(crate) fn at(&self, rank: usize) -> f64 {
        if rank >= self.flat_from {
            1.0
        } else {
            self.base + self.slope * rank as f64
        }
    }
}
