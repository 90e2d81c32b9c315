//! Evolutionary samplers that work in generations: NSGA-II (Deb et al. 2002, with Deb's
//! constraint-dominance) and a generational genetic algorithm with elitism for mixed and
//! categorical single-objective spaces.
//!
//! Generation 0 is random. Once `population_size` trials of generation g have completed, new
//! trials belong to g + 1 and are bred from the parent population of g + 1, which is selected
//! from generation g's results together with g's own parents. Each trial carries its
//! generation, so the populations are replayed from the trials after a restart.
//!
//! Genes live in the unit cube of the space (categorical: equal slices). A child takes each
//! gene from its parents (uniform crossover, or SBX for numeric genes), and is then mutated;
//! a gene neither parent has (an inactive conditional parameter) is drawn at random.
#![allow(clippy::needless_range_loop)] // index loops read best in the linear algebra
use super::mo;
use super::space::{assemble, from_unit, line, normal, to_unit, Line};
use super::{trial_rng, Ask, Sampler, Suggestion};
use mlt_protocol::records::{Params, TrialRecord, TrialState};
use mlt_protocol::spec::{Crossover, GaSpec, Nsga2Spec, SearchSpace};
use rand::Rng;

/// One evaluated individual: trial index, genes (NaN = absent), losses, violation.
#[derive(Clone, Debug)]
struct Ind {
    idx: usize,
    genes: Vec<f64>,
    loss: Vec<f64>,
    violation: f64,
}

fn genes(space: &SearchSpace, t: &TrialRecord) -> Vec<f64> {
    space
        .params
        .iter()
        .map(|p| {
            t.params
                .get(&p.name)
                .and_then(|v| to_unit(&p.dist, v))
                .unwrap_or(f64::NAN)
        })
        .collect()
}

/// Populations by generation, replayed from the trials.
#[derive(Default)]
struct Generations {
    /// Parent population of generation `parents.len()`… (index g = parents of generation g).
    parents: Vec<Vec<Ind>>,
    seen: usize,
}

impl Generations {
    /// Advances while generation `g` has `size` complete trials; returns the current
    /// generation and its parents.
    fn current<'a>(
        &'a mut self,
        a: &Ask,
        size: usize,
        select: &dyn Fn(Vec<Ind>, usize) -> Vec<Ind>,
    ) -> (u32, &'a [Ind]) {
        if a.trials.len() < self.seen {
            self.parents.clear();
        }
        self.seen = a.trials.len();
        if self.parents.is_empty() {
            self.parents.push(Vec::new());
        }
        loop {
            let g = (self.parents.len() - 1) as u32;
            let members: Vec<Ind> = a
                .trials
                .iter()
                .enumerate()
                .filter(|(_, t)| t.generation == Some(g) && t.state == TrialState::Complete)
                .filter_map(|(i, t)| {
                    Some(Ind {
                        idx: i,
                        genes: genes(a.space, t),
                        loss: mo::losses(t, a.directions)?,
                        violation: mo::violation(t),
                    })
                })
                .collect();
            if members.len() < size {
                break;
            }
            let mut pool = members;
            pool.extend(self.parents[g as usize].iter().cloned());
            let next = select(pool, size);
            self.parents.push(next);
        }
        let g = self.parents.len() - 1;
        (g as u32, &self.parents[g])
    }
}

/// NSGA-II's elitist selection: fill by non-dominated rank, break the last rank by crowding.
fn nsga2_select(pool: Vec<Ind>, size: usize) -> Vec<Ind> {
    let pts: Vec<Vec<f64>> = pool.iter().map(|i| i.loss.clone()).collect();
    let viol: Vec<f64> = pool.iter().map(|i| i.violation).collect();
    let mut out = Vec::new();
    for front in mo::nondominated_sort(&pts, Some(&viol)) {
        if out.len() + front.len() <= size {
            out.extend(front.iter().map(|&k| pool[k].clone()));
            continue;
        }
        let refs: Vec<&[f64]> = front.iter().map(|&k| pool[k].loss.as_slice()).collect();
        let d = mo::crowding_distance(&refs);
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&x, &y| {
            d[y].total_cmp(&d[x])
                .then(pool[front[x]].idx.cmp(&pool[front[y]].idx))
        });
        for k in order.into_iter().take(size - out.len()) {
            out.push(pool[front[k]].clone());
        }
        break;
    }
    out
}

/// Orders individuals by feasibility first, then loss.
fn scalar_key(i: &Ind) -> (f64, f64) {
    (i.violation, i.loss[0])
}

fn uniform_crossover(p1: &[f64], p2: &[f64], swap: f64, rng: &mut impl Rng) -> Vec<f64> {
    p1.iter()
        .zip(p2)
        .map(|(a, b)| if rng.random::<f64>() < swap { *b } else { *a })
        .collect()
}

/// Simulated binary crossover on numeric genes (η = 20), uniform on categorical ones.
fn sbx(p1: &[f64], p2: &[f64], lines: &[Line], rng: &mut impl Rng) -> Vec<f64> {
    let eta = 20.0;
    p1.iter()
        .zip(p2)
        .zip(lines)
        .map(|((a, b), ln)| match ln {
            Line::Cont { .. } if !a.is_nan() && !b.is_nan() => {
                let u: f64 = rng.random();
                let beta = if u <= 0.5 {
                    (2.0 * u).powf(1.0 / (eta + 1.0))
                } else {
                    (1.0 / (2.0 * (1.0 - u))).powf(1.0 / (eta + 1.0))
                };
                let c = 0.5 * ((1.0 + beta) * a + (1.0 - beta) * b);
                let c = if rng.random::<bool>() { c } else { a + b - c };
                c.clamp(0.0, 1.0)
            }
            _ => {
                if rng.random::<bool>() {
                    *b
                } else {
                    *a
                }
            }
        })
        .collect()
}

fn child_params(a: &Ask, genes: &[f64], rng: &mut impl Rng) -> Params {
    let mut proposal = Params::new();
    for (p, g) in a.space.params.iter().zip(genes) {
        if !g.is_nan() {
            proposal.insert(p.name.clone(), from_unit(&p.dist, *g));
        }
    }
    assemble(a.space, None, &proposal, rng)
}

/// The NSGA-II sampler.
pub struct Nsga2Sampler {
    cfg: Nsga2Spec,
    seed: u64,
    gens: Generations,
}

impl Nsga2Sampler {
    /// From the spec's settings.
    pub fn new(cfg: Nsga2Spec, seed: u64) -> Self {
        Self {
            cfg,
            seed,
            gens: Generations::default(),
        }
    }
}

impl Sampler for Nsga2Sampler {
    fn sample(&mut self, a: &Ask) -> Suggestion {
        let mut rng = trial_rng(self.seed, a.number);
        let (g, parents) = self
            .gens
            .current(a, self.cfg.population_size as usize, &nsga2_select);
        if g == 0 || parents.is_empty() {
            return Suggestion {
                params: assemble(a.space, None, &Params::new(), &mut rng),
                generation: Some(g),
            };
        }
        // Binary tournament by constraint-dominance (random between incomparable ones).
        let pick = |rng: &mut rand_chacha::ChaCha8Rng| {
            let x = &parents[rng.random_range(0..parents.len())];
            let y = &parents[rng.random_range(0..parents.len())];
            if mo::constrained_dominates(&x.loss, x.violation, &y.loss, y.violation) {
                x
            } else if mo::constrained_dominates(&y.loss, y.violation, &x.loss, x.violation) {
                y
            } else if rng.random::<bool>() {
                x
            } else {
                y
            }
        };
        let p1 = pick(&mut rng).genes.clone();
        let p2 = pick(&mut rng).genes.clone();
        let lines: Vec<Line> = a.space.params.iter().map(|p| line(&p.dist)).collect();
        let mut child = if rng.random::<f64>() < self.cfg.crossover_prob {
            match self.cfg.crossover {
                Crossover::Uniform => uniform_crossover(&p1, &p2, self.cfg.swapping_prob, &mut rng),
                Crossover::Sbx => sbx(&p1, &p2, &lines, &mut rng),
            }
        } else {
            p1
        };
        let d = lines.iter().filter(|l| **l != Line::Fixed).count().max(1);
        let pm = self.cfg.mutation_prob.unwrap_or(1.0 / d as f64);
        for gene in child.iter_mut() {
            if rng.random::<f64>() < pm {
                // Mutation resamples the gene (drawn anew by `assemble`).
                *gene = f64::NAN;
            }
        }
        Suggestion {
            params: child_params(a, &child, &mut rng),
            generation: Some(g),
        }
    }
}

/// The genetic algorithm.
pub struct GaSampler {
    cfg: GaSpec,
    seed: u64,
    gens: Generations,
}

impl GaSampler {
    /// From the spec's settings.
    pub fn new(cfg: GaSpec, seed: u64) -> Self {
        Self {
            cfg,
            seed,
            gens: Generations::default(),
        }
    }
}

impl Sampler for GaSampler {
    fn sample(&mut self, a: &Ask) -> Suggestion {
        let mut rng = trial_rng(self.seed, a.number);
        let elite = self.cfg.elite as usize;
        // Next parents: the `elite` best of everything so far, then the best of the newest
        // generation.
        let select = move |pool: Vec<Ind>, size: usize| -> Vec<Ind> {
            let mut all = pool;
            all.sort_by(|x, y| {
                let (a, b) = (scalar_key(x), scalar_key(y));
                a.0.total_cmp(&b.0)
                    .then(a.1.total_cmp(&b.1))
                    .then(x.idx.cmp(&y.idx))
            });
            all.dedup_by_key(|i| i.idx);
            let mut out: Vec<Ind> = all.iter().take(elite).cloned().collect();
            for i in all.iter().skip(elite) {
                if out.len() >= size {
                    break;
                }
                out.push(i.clone());
            }
            out
        };
        let (g, parents) = self
            .gens
            .current(a, self.cfg.population_size as usize, &select);
        if g == 0 || parents.is_empty() {
            return Suggestion {
                params: assemble(a.space, None, &Params::new(), &mut rng),
                generation: Some(g),
            };
        }
        let k = (self.cfg.tournament_size as usize).max(1);
        let pick = |rng: &mut rand_chacha::ChaCha8Rng| {
            (0..k)
                .map(|_| &parents[rng.random_range(0..parents.len())])
                .min_by(|x, y| {
                    let (a, b) = (scalar_key(x), scalar_key(y));
                    a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
                })
                .expect("k >= 1")
        };
        let p1 = pick(&mut rng).genes.clone();
        let p2 = pick(&mut rng).genes.clone();
        let lines: Vec<Line> = a.space.params.iter().map(|p| line(&p.dist)).collect();
        let mut child = if rng.random::<f64>() < self.cfg.crossover_prob {
            uniform_crossover(&p1, &p2, 0.5, &mut rng)
        } else {
            p1
        };
        let d = lines.iter().filter(|l| **l != Line::Fixed).count().max(1);
        let pm = self.cfg.mutation_prob.unwrap_or(1.0 / d as f64);
        for (gene, ln) in child.iter_mut().zip(&lines) {
            if rng.random::<f64>() >= pm {
                continue;
            }
            *gene = match ln {
                // Numeric genes move by a Gaussian step of 0.1 in the unit interval.
                Line::Cont { .. } if !gene.is_nan() => {
                    (*gene + 0.1 * normal(&mut rng)).clamp(0.0, 1.0)
                }
                // Categorical (and absent) genes are drawn anew.
                _ => f64::NAN,
            };
        }
        Suggestion {
            params: child_params(a, &child, &mut rng),
            generation: Some(g),
        }
    }
}
