//! Seeded parameter initialisation on the CPU, reproducible bit for bit from the seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::spec::{ModelSpec, ParamKind};

/// He (Kaiming) normal initialisation for ReLU networks: weights drawn from
/// N(0, 2 / fan_in), biases zero. Returns one vector per entry of
/// [`ModelSpec::parameters`], in that order. The same spec and seed give bitwise the same
/// values on every machine: ChaCha20 is a portable stream and the normal deviates come
/// from Box-Muller in f64, rounded once to f32.
pub fn he_normal(spec: &ModelSpec, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    spec.parameters()
        .iter()
        .map(|p| match p.kind {
            ParamKind::Bias => vec![0.0; p.len()],
            ParamKind::Weight => {
                let std = (2.0 / p.fan_in as f64).sqrt();
                (0..p.len())
                    .map(|_| (standard_normal(&mut rng) * std) as f32)
                    .collect()
            }
        })
        .collect()
}

/// One N(0, 1) deviate by the Box-Muller transform (the cosine branch only, so every
/// deviate consumes exactly two uniforms and the stream position is easy to reason about).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bits_other_seed_other_values() {
        let spec = ModelSpec::parse("1x6x6-c4k3-p2-12-5").unwrap();
        let a = he_normal(&spec, 42);
        let b = he_normal(&spec, 42);
        let c = he_normal(&spec, 43);
        let bits =
            |v: &[Vec<f32>]| -> Vec<u32> { v.iter().flatten().map(|x| x.to_bits()).collect() };
        assert_eq!(bits(&a), bits(&b), "same seed must give identical bits");
        assert_ne!(bits(&a), bits(&c), "different seeds must differ");
    }

    #[test]
    fn weights_have_he_variance_and_biases_are_zero() {
        let spec = ModelSpec::parse("400-300-10").unwrap();
        let params = he_normal(&spec, 7);
        for (values, p) in params.iter().zip(spec.parameters()) {
            let n = values.len() as f64;
            let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = values
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            match p.kind {
                ParamKind::Bias => assert!(values.iter().all(|&v| v == 0.0), "{} not zero", p.name),
                ParamKind::Weight => {
                    let expected = 2.0 / p.fan_in as f64;
                    // Sampling error of a variance over n >= 3000 draws is about sqrt(2/n) ~ 2.6%.
                    assert!(
                        (var / expected - 1.0).abs() < 0.1 && mean.abs() < 0.1 * expected.sqrt(),
                        "{}: mean {mean}, variance {var}, expected variance {expected} (10% tolerance)",
                        p.name
                    );
                }
            }
        }
    }
}
