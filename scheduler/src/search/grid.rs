//! Grid search: every point of the grid (see `grid_points`) in an order shuffled by the study
//! seed. Trial `n` gets point `n` of that order, so no point is handed out twice, however
//! many workers ask; the spec caps the study's budget at the number of points.
use super::{Ask, Sampler, Suggestion};
use mlt_protocol::records::Params;
use mlt_protocol::spec::GridSpec;
use mlt_spec::grid_points;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The grid sampler.
pub struct GridSampler {
    cfg: GridSpec,
    seed: u64,
    points: Option<Vec<Params>>,
}

impl GridSampler {
    /// From the spec's settings.
    pub fn new(cfg: GridSpec, seed: u64) -> Self {
        Self {
            cfg,
            seed,
            points: None,
        }
    }
}

impl Sampler for GridSampler {
    fn sample(&mut self, a: &Ask) -> Suggestion {
        let points = self.points.get_or_insert_with(|| {
            // The spec refuses grids over the limit; should one get here, its first
            // MAX_GRID_POINTS are still a grid worth walking.
            let mut pts = grid_points(a.space, self.cfg.points).unwrap_or_else(|_| {
                grid_points(a.space, 2).unwrap_or_else(|_| vec![Params::new()])
            });
            pts.shuffle(&mut ChaCha8Rng::seed_from_u64(self.seed));
            pts
        });
        let params = points[(a.number.0 % points.len() as u64) as usize].clone();
        Suggestion {
            params,
            generation: None,
        }
    }
}
