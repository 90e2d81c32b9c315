//! Quasi-Monte Carlo: trial `n` gets point `n` of a Sobol sequence (Joe–Kuo direction numbers,
//! Gray-code order as in SciPy), one dimension per searchable parameter, mapped through the
//! unit cube of the space. Scrambling (on by default) applies a random linear matrix scramble
//! and a digital shift, both seeded by the study seed, so different seeds give different but
//! equally even point sets. Beyond 256 parameters the extra dimensions are drawn at random.
use super::sobol_table::{DIMS, POLY, VINIT};
use super::space::{from_unit_cols, searchable};
use super::{trial_rng, Ask, Sampler, Suggestion};
use mlt_protocol::spec::QmcSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BITS: usize = 32;

/// Direction numbers v[j] (j = 0..32) of dimension `d`, left-aligned in 32 bits.
pub fn directions(d: usize) -> [u32; BITS] {
    let mut v = [0u32; BITS];
    if d == 0 {
        for (j, vj) in v.iter_mut().enumerate() {
            *vj = 1 << (BITS - 1 - j);
        }
        return v;
    }
    let poly = POLY[d];
    let m = (32 - poly.leading_zeros() - 1) as usize;
    for j in 0..m.min(BITS) {
        v[j] = VINIT[d][j] << (BITS - 1 - j);
    }
    for j in m..BITS {
        let mut x = v[j - m] ^ (v[j - m] >> m);
        for k in 1..m {
            if (poly >> (m - k)) & 1 == 1 {
                x ^= v[j - k];
            }
        }
        v[j] = x;
    }
    v
}

/// One Sobol coordinate for point `n` from its direction numbers.
pub fn coordinate(v: &[u32; BITS], n: u64, shift: u32) -> f64 {
    let g = n ^ (n >> 1);
    let mut x = shift;
    for (j, vj) in v.iter().enumerate() {
        if (g >> j) & 1 == 1 {
            x ^= vj;
        }
    }
    (x as f64 + 0.5 * (shift != 0) as u32 as f64) / 4_294_967_296.0
}

/// The QMC sampler.
pub struct QmcSampler {
    cfg: QmcSpec,
    seed: u64,
    dirs: Vec<([u32; BITS], u32)>,
}

impl QmcSampler {
    /// From the spec's settings.
    pub fn new(cfg: QmcSpec, seed: u64) -> Self {
        Self {
            cfg,
            seed,
            dirs: Vec::new(),
        }
    }

    fn prepare(&mut self, dims: usize) {
        if self.dirs.len() == dims {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5EED_50B0);
        self.dirs = (0..dims.min(DIMS))
            .map(|d| {
                let v = directions(d);
                if !self.cfg.scramble {
                    return (v, 0);
                }
                // Linear matrix scramble: a random lower-triangular bit matrix with a unit
                // diagonal applied to every direction number (bit 31 is the first digit).
                let rows: Vec<u32> = (0..BITS)
                    .map(|i| {
                        let below: u32 = if i == 0 {
                            0
                        } else {
                            rng.random::<u32>() & (u32::MAX << (BITS - i))
                        };
                        below | (1 << (BITS - 1 - i))
                    })
                    .collect();
                let mut s = [0u32; BITS];
                for (j, vj) in v.iter().enumerate() {
                    let mut out = 0u32;
                    for (i, row) in rows.iter().enumerate() {
                        if (row & vj).count_ones() % 2 == 1 {
                            out |= 1 << (BITS - 1 - i);
                        }
                    }
                    s[j] = out;
                }
                (s, rng.random::<u32>() | 1)
            })
            .collect();
    }
}

impl Sampler for QmcSampler {
    fn sample(&mut self, a: &Ask) -> Suggestion {
        let cols: Vec<usize> = (0..a.space.params.len())
            .filter(|&j| searchable(&a.space.params[j]))
            .collect();
        self.prepare(cols.len());
        let mut rng = trial_rng(self.seed, a.number);
        let u: Vec<f64> = (0..cols.len())
            .map(|d| match self.dirs.get(d) {
                Some((v, shift)) => coordinate(v, a.number.0, *shift),
                None => rng.random::<f64>(),
            })
            .collect();
        from_unit_cols(a, &cols, &u, None, &mut rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscrambled_points_match_scipy() {
        // scipy.stats.qmc.Sobol(d=6, scramble=False).random(8)
        let want = [
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
            [0.75, 0.25, 0.25, 0.25, 0.75, 0.75],
            [0.25, 0.75, 0.75, 0.75, 0.25, 0.25],
            [0.375, 0.375, 0.625, 0.875, 0.375, 0.125],
            [0.875, 0.875, 0.125, 0.375, 0.875, 0.625],
            [0.625, 0.125, 0.875, 0.625, 0.625, 0.875],
            [0.125, 0.625, 0.375, 0.125, 0.125, 0.375],
        ];
        for (n, row) in want.iter().enumerate() {
            for (d, w) in row.iter().enumerate() {
                assert_eq!(
                    coordinate(&directions(d), n as u64, 0),
                    *w,
                    "point {n} dim {d}"
                );
            }
        }
        // Sobol(d=40).random(1000): point 999 in dims 0, 7, 39 and point 517 in 3, 20, 33.
        let c = |n: u64, d: usize| coordinate(&directions(d), n, 0);
        assert_eq!(
            [c(999, 0), c(999, 7), c(999, 39)],
            [0.1572265625, 0.7119140625, 0.7919921875]
        );
        assert_eq!(
            [c(517, 3), c(517, 20), c(517, 33)],
            [0.6162109375, 0.8291015625, 0.0087890625]
        );
    }

    #[test]
    fn scrambled_points_stay_stratified() {
        // Any 2^k consecutive points from 0 put exactly one point in each 1/2^k interval of
        // every dimension, scrambled or not.
        let mut s = QmcSampler::new(QmcSpec { scramble: true }, 11);
        s.prepare(8);
        for (v, shift) in &s.dirs {
            let mut seen = [0u32; 64];
            for n in 0..64 {
                let u = coordinate(v, n, *shift);
                assert!((0.0..1.0).contains(&u));
                seen[(u * 64.0) as usize] += 1;
            }
            assert!(seen.iter().all(|&k| k == 1), "{seen:?}");
        }
        let mut other = QmcSampler::new(QmcSpec { scramble: true }, 12);
        other.prepare(8);
        assert_ne!(s.dirs[1], other.dirs[1]);
    }
}
