//! MUNGE: a synthetic transfer set made from the training data (Bucila, Caruana and
//! Niculescu-Mizil, "Model Compression", KDD 2006).
//!
//! A student mimics its teacher best where it sees many inputs near the real data, and the
//! labelled data alone is often too little. MUNGE makes more by mixing each example with its
//! nearest neighbour: in each of `k` passes the data is copied; then for every example `e`,
//! with `e'` its nearest neighbour (Euclidean, in the original data), each attribute `a` is,
//! with probability `p`, resampled in the copy as
//!
//! ```text
//! sd   = |e_a - e'_a| / s
//! e_a  <- Normal(e'_a, sd)
//! e'_a <- Normal(e_a,  sd)      (both from the values before this swap)
//! ```
//!
//! so the two trade values, blurred by a spread proportional to how far apart they were
//! (the local variance `s` divides it). The copy is modified in place, as in the paper: an
//! example may be touched again later as someone else's neighbour. The `k` copies,
//! concatenated, are the synthetic set; the teacher then labels it.
//!
//! Attributes are continuous (pixels in [0, 1], standardised features); nothing is clamped
//! here, the caller converts back. Output is deterministic for a seed: one ChaCha8 stream,
//! consumed in a fixed order, and normal deviates by Box-Muller in f64.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use super::neighbours::nearest_neighbours;

/// The settings of MUNGE, named as in the paper.
#[derive(Debug, Clone, PartialEq)]
pub struct MungeParams {
    /// `p`: probability that one attribute of an example is swapped with its neighbour's.
    pub swap_probability: f32,
    /// `s`: the local variance; the resampling spread is `|e_a - e'_a| / s`.
    pub local_variance: f32,
    /// `k`: number of passes; the output has `k` times as many examples as the input.
    pub multiplier: usize,
    pub seed: u64,
}

/// Bad MUNGE settings or data. Each message names the setting and what was expected.
#[derive(Debug, Error, PartialEq)]
pub enum MungeError {
    #[error("MUNGE swap probability p: found {0}, expected a number in [0, 1]")]
    SwapProbability(f32),
    #[error("MUNGE local variance s: found {0}, expected a finite number > 0")]
    LocalVariance(f32),
    #[error("MUNGE multiplier k: found 0, expected at least 1")]
    Multiplier,
    #[error(
        "MUNGE examples n: found {0}, expected at least 2 (each example needs a nearest neighbour)"
    )]
    TooFewExamples(usize),
    #[error("MUNGE rows: found {found} values, expected n * d = {n} * {d}")]
    Shape { found: usize, n: usize, d: usize },
    #[error(
        "MUNGE rows: example {example} attribute {attribute} is {value}, expected a finite number"
    )]
    NonFinite {
        example: usize,
        attribute: usize,
        value: f32,
    },
    #[error("MUNGE output: k * n * d = {k} * {n} * {d} values does not fit in memory")]
    TooLarge { k: usize, n: usize, d: usize },
}

fn validate(rows: &[f32], n: usize, d: usize, params: &MungeParams) -> Result<(), MungeError> {
    let p = params.swap_probability;
    if !(0.0..=1.0).contains(&p) {
        return Err(MungeError::SwapProbability(p));
    }
    let s = params.local_variance;
    if !(s.is_finite() && s > 0.0) {
        return Err(MungeError::LocalVariance(s));
    }
    if params.multiplier == 0 {
        return Err(MungeError::Multiplier);
    }
    if n < 2 {
        return Err(MungeError::TooFewExamples(n));
    }
    if n.checked_mul(d) != Some(rows.len()) {
        return Err(MungeError::Shape {
            found: rows.len(),
            n,
            d,
        });
    }
    if let Some(position) = rows.iter().position(|v| !v.is_finite()) {
        return Err(MungeError::NonFinite {
            example: position / d,
            attribute: position % d,
            value: rows[position],
        });
    }
    if rows.len().checked_mul(params.multiplier).is_none() {
        return Err(MungeError::TooLarge {
            k: params.multiplier,
            n,
            d,
        });
    }
    Ok(())
}

/// The MUNGE synthetic set of `rows` (`n` examples of `d` values, row-major): `k * n` rows
/// of `d` values, pass after pass (see the module doc).
pub fn munge(
    rows: &[f32],
    n: usize,
    d: usize,
    params: &MungeParams,
) -> Result<Vec<f32>, MungeError> {
    validate(rows, n, d, params)?;
    let neighbours = nearest_neighbours(rows, n, d);
    let p = params.swap_probability as f64;
    let s = params.local_variance as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut out = Vec::with_capacity(rows.len() * params.multiplier);
    for _ in 0..params.multiplier {
        let start = out.len();
        out.extend_from_slice(rows);
        let copy = &mut out[start..];
        for (example, &neighbour) in neighbours.iter().enumerate() {
            for attribute in 0..d {
                if !rng.random_bool(p) {
                    continue;
                }
                let (mine, theirs) = (example * d + attribute, neighbour * d + attribute);
                let (e, e_prime) = (copy[mine] as f64, copy[theirs] as f64);
                let sd = (e - e_prime).abs() / s;
                copy[mine] = (e_prime + sd * standard_normal(&mut rng)) as f32;
                copy[theirs] = (e + sd * standard_normal(&mut rng)) as f32;
            }
        }
    }
    Ok(out)
}

/// One N(0, 1) deviate by Box-Muller (cosine branch only: always two uniforms per deviate).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: f32, s: f32, k: usize, seed: u64) -> MungeParams {
        MungeParams {
            swap_probability: p,
            local_variance: s,
            multiplier: k,
            seed,
        }
    }

    fn random_rows(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d).map(|_| rng.random::<f32>()).collect()
    }

    #[test]
    fn no_swaps_give_k_copies() {
        let rows = random_rows(9, 5, 1);
        let out = munge(&rows, 9, 5, &params(0.0, 1.0, 3, 7)).unwrap();
        assert_eq!(out, [rows.as_slice(); 3].concat());
    }

    #[test]
    fn output_has_k_times_n_rows() {
        let rows = random_rows(11, 4, 2);
        let out = munge(&rows, 11, 4, &params(0.3, 2.0, 5, 7)).unwrap();
        assert_eq!(out.len(), 5 * 11 * 4);
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn certain_swaps_with_tiny_spread_trade_values_with_the_neighbour() {
        // Points 0, 1, 3 on a line; neighbours 0 -> 1, 1 -> 0, 2 -> 1. With p = 1 and a
        // negligible spread each step swaps: e = 0 gives [1, 0, 3], e = 1 swaps back to
        // [0, 1, 3], e = 2 trades with row 1: [0, 3, 1].
        let out = munge(&[0.0, 1.0, 3.0], 3, 1, &params(1.0, 1e9, 2, 3)).unwrap();
        for (found, expected) in out.iter().zip([0.0, 3.0, 1.0, 0.0, 3.0, 1.0]) {
            assert!((found - expected).abs() < 1e-6, "{out:?}");
        }
        // In general every pass then permutes each column of the data.
        let (n, d) = (23, 6);
        let rows = random_rows(n, d, 4);
        let out = munge(&rows, n, d, &params(1.0, 1e9, 2, 3)).unwrap();
        let sorted_column = |data: &[f32], a: usize| {
            let mut column: Vec<f32> = data.iter().skip(a).step_by(d).copied().collect();
            column.sort_by(f32::total_cmp);
            column
        };
        for pass in out.chunks_exact(n * d) {
            for a in 0..d {
                let (found, original) = (sorted_column(pass, a), sorted_column(&rows, a));
                let gap = found.iter().zip(&original).map(|(x, y)| (x - y).abs());
                assert!(gap.fold(0.0, f32::max) < 1e-6, "attribute {a}");
            }
        }
    }

    #[test]
    fn same_seed_same_output_other_seed_other_output() {
        let rows = random_rows(15, 7, 5);
        let run = |seed| munge(&rows, 15, 7, &params(0.5, 1.0, 2, seed)).unwrap();
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
    }

    #[test]
    fn each_swap_decision_has_probability_p() {
        // An entry of row r is touched by r's own pass and by every row whose neighbour is r;
        // each touch swaps it with probability p, and a swap with a spread > 0 changes it
        // almost surely. So it keeps its value with probability (1 - p)^(1 + in-degree).
        let (n, d, k, p) = (50, 40, 4, 0.5f64);
        let rows = random_rows(n, d, 6);
        let mut touches = vec![1i32; n];
        for neighbour in nearest_neighbours(&rows, n, d) {
            touches[neighbour] += 1;
        }
        let expected_changed = touches
            .iter()
            .map(|&t| 1.0 - (1.0 - p).powi(t))
            .sum::<f64>()
            / n as f64;
        let out = munge(&rows, n, d, &params(p as f32, 1.0, k, 8)).unwrap();
        let changed = out
            .chunks_exact(n * d)
            .flat_map(|pass| pass.iter().zip(&rows).filter(|(a, b)| a != b))
            .count() as f64
            / (k * n * d) as f64;
        // 8,000 entries: one standard deviation of the share is about 0.005.
        assert!(
            (changed - expected_changed).abs() < 0.03,
            "{changed} vs {expected_changed}"
        );
    }

    #[test]
    fn normal_deviates_have_mean_0_and_variance_1() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let draws: Vec<f64> = (0..20_000).map(|_| standard_normal(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let variance = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        // Standard errors: about 0.007 for the mean, 0.01 for the variance.
        assert!(
            mean.abs() < 0.05 && (variance - 1.0).abs() < 0.05,
            "{mean} {variance}"
        );
    }

    #[test]
    fn bad_settings_and_data_are_named() {
        let rows = random_rows(4, 3, 1);
        let ok = params(0.5, 1.0, 2, 0);
        let err = |rows: &[f32], n, d, p: MungeParams| munge(rows, n, d, &p).unwrap_err();
        assert_eq!(
            err(&rows, 4, 3, params(1.5, 1.0, 2, 0)),
            MungeError::SwapProbability(1.5)
        );
        assert_eq!(
            err(&rows, 4, 3, params(-0.1, 1.0, 2, 0)),
            MungeError::SwapProbability(-0.1)
        );
        assert!(matches!(
            err(&rows, 4, 3, params(f32::NAN, 1.0, 2, 0)),
            MungeError::SwapProbability(_)
        ));
        assert_eq!(
            err(&rows, 4, 3, params(0.5, 0.0, 2, 0)),
            MungeError::LocalVariance(0.0)
        );
        let infinite = params(0.5, f32::INFINITY, 2, 0);
        assert_eq!(
            err(&rows, 4, 3, infinite),
            MungeError::LocalVariance(f32::INFINITY)
        );
        assert_eq!(
            err(&rows, 4, 3, params(0.5, 1.0, 0, 0)),
            MungeError::Multiplier
        );
        assert_eq!(
            err(&rows[..3], 1, 3, ok.clone()),
            MungeError::TooFewExamples(1)
        );
        let shape = MungeError::Shape {
            found: 12,
            n: 4,
            d: 4,
        };
        assert_eq!(err(&rows, 4, 4, ok.clone()), shape);
        let mut bad = rows.clone();
        bad[7] = f32::NAN;
        let message = err(&bad, 4, 3, ok).to_string();
        assert!(message.contains("example 2 attribute 1"), "{message}");
        assert!(!message.contains('\n'));
    }
}
