//! Random search. Each trial's generator is seeded from (study seed, trial number), so a
//! trial's parameters do not depend on the order in which workers asked, and a restarted
//! scheduler continues the same sequence.
use super::space::assemble;
use super::{trial_rng, Ask, Sampler, Suggestion};
use mlt_protocol::records::Params;

/// Independent uniform (log-uniform) sampling.
pub struct RandomSampler {
    seed: u64,
}

impl RandomSampler {
    /// A sampler for a study seed.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl Sampler for RandomSampler {
    fn sample(&mut self, a: &Ask) -> Suggestion {
        let mut rng = trial_rng(self.seed, a.number);
        Suggestion {
            params: assemble(a.space, None, &Params::new(), &mut rng),
            generation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::ids::TrialId;
    use mlt_protocol::records::ParamValue;
    use mlt_protocol::spec::{Direction, SearchSpace};

    fn ask(s: &mut RandomSampler, space: &SearchSpace, n: u64) -> Params {
        s.sample(&Ask {
            space,
            directions: &[Direction::Minimize],
            number: TrialId(n),
            trials: &[],
        })
        .params
    }

    const SPEC: &str = r#"
[study]
name = "t"
n_trials = 10
seed = 3
[space]
lr = { type = "float", low = 1e-4, high = 1e-1, log = true }
frac = { type = "float", low = 0.1, high = 0.9, step = 0.2 }
leaves = { type = "int", low = 4, high = 256, log = true }
depth = { type = "int", low = 2, high = 12, step = 2 }
model = { type = "categorical", choices = ["gbdt", "dart"] }
drop = { type = "float", low = 0.0, high = 0.5, when = { model = ["dart"] } }
skip = { type = "int", low = 1, high = 3, when = { depth = [2] } }
const = { type = "fixed", value = 7 }
x0 = { type = "float", low = -5, high = 10 }
x1 = { type = "float", low = 0, high = 15 }
[objective]
kind = "benchmark"
function = "branin"
"#;

    #[test]
    fn samples_respect_bounds_log_step_int_and_conditions() {
        let spec = mlt_spec::parse(SPEC, "t.toml").unwrap();
        let mut s = RandomSampler::new(3);
        let mut saw_dart = false;
        let mut saw_gbdt = false;
        let mut lr_small = 0;
        for n in 0..2000 {
            let p = ask(&mut s, &spec.space, n);
            let lr = p["lr"].as_f64().unwrap();
            assert!((1e-4..=1e-1).contains(&lr));
            if lr < 1e-3 {
                lr_small += 1;
            }
            let frac = p["frac"].as_f64().unwrap();
            let k = (frac - 0.1) / 0.2;
            assert!(
                (k - k.round()).abs() < 1e-9 && (0.1..=0.9 + 1e-12).contains(&frac),
                "{frac}"
            );
            let ParamValue::Int(leaves) = p["leaves"] else {
                panic!("int")
            };
            assert!((4..=256).contains(&leaves));
            let ParamValue::Int(depth) = p["depth"] else {
                panic!("int")
            };
            assert!((2..=12).contains(&depth) && depth % 2 == 0);
            assert_eq!(p["const"], ParamValue::Int(7));
            match &p["model"] {
                ParamValue::Str(m) if m == "dart" => {
                    saw_dart = true;
                    assert!(p.contains_key("drop"));
                }
                _ => {
                    saw_gbdt = true;
                    assert!(!p.contains_key("drop"));
                }
            }
            // `skip` is active exactly when depth = 2.
            assert_eq!(p.contains_key("skip"), depth == 2);
        }
        assert!(saw_dart && saw_gbdt);
        // Log-uniform: a third of the draws fall in the lowest decade of three.
        assert!((500..830).contains(&lr_small), "{lr_small}");
    }

    #[test]
    fn same_seed_same_trials_other_seed_other_trials() {
        let spec = mlt_spec::parse(SPEC, "t.toml").unwrap();
        let a: Vec<Params> = (0..20)
            .map(|n| ask(&mut RandomSampler::new(3), &spec.space, n))
            .collect();
        let b: Vec<Params> = (0..20)
            .map(|n| ask(&mut RandomSampler::new(3), &spec.space, n))
            .collect();
        let c: Vec<Params> = (0..20)
            .map(|n| ask(&mut RandomSampler::new(4), &spec.space, n))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
