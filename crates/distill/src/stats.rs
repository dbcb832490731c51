//! Statistics for comparing two models on the same test examples, and for repeated runs.
//!
//! Both tests work on the paired correctness of two models A and B (`a[i]`: A classifies
//! test example `i` correctly), so they account for the examples being shared:
//!
//! - [`paired_bootstrap_interval`]: a 95% percentile bootstrap interval of
//!   `accuracy(A) - accuracy(B)`. Each resample draws `n` test examples with replacement
//!   (the same draws for both models) and records the difference on them; the interval is
//!   the 2.5th and 97.5th percentiles of the recorded differences (linear interpolation
//!   between order statistics, numpy's default). The draws come from a seeded ChaCha8
//!   stream, so an interval is repeatable. Cost: `resamples x n` index draws and additions,
//!   no allocation per resample.
//! - [`mcnemar_exact_p`]: McNemar's exact test. Only the discordant examples carry
//!   information: `b` = A right and B wrong, `c` = A wrong and B right. Under the null
//!   hypothesis of equal accuracy each discordant example goes either way with probability
//!   1/2, so the two-sided p-value is `min(1, 2 P(X <= min(b, c)))` with
//!   `X ~ Binomial(b + c, 1/2)` (1 when `b + c = 0`).
//!
//! [`mean_and_sd`] summarises the test accuracies of students trained with different seeds;
//! [`paired_t_test`] compares two students over those seeds (the students of one repeat share
//! initial weights and batch order, so their per-repeat differences are paired).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Resamples of [`paired_bootstrap_interval`] unless the caller says otherwise: enough for
/// the 2.5% and 97.5% percentiles to move by well under a tenth of the interval's width
/// between seeds, and fast (2,000 x 10,000 draws for the full Fashion-MNIST test set).
pub const DEFAULT_RESAMPLES: usize = 2_000;

/// Coverage of the bootstrap interval.
pub const CONFIDENCE: f64 = 0.95;

/// Level below which a p-value counts as significant in reports and warnings.
pub const SIGNIFICANCE_LEVEL: f64 = 0.05;

/// Discordant pairs: (A right and B wrong, A wrong and B right).
pub fn discordant_counts(a: &[bool], b: &[bool]) -> (usize, usize) {
    check_paired(a, b);
    a.iter()
        .zip(b)
        .fold((0, 0), |(only_a, only_b), (&a, &b)| match (a, b) {
            (true, false) => (only_a + 1, only_b),
            (false, true) => (only_a, only_b + 1),
            _ => (only_a, only_b),
        })
}

fn check_paired(a: &[bool], b: &[bool]) {
    assert_eq!(
        a.len(),
        b.len(),
        "stats: paired predictions of different lengths ({} and {})",
        a.len(),
        b.len()
    );
}

/// McNemar's exact two-sided p-value for `b` and `c` discordant pairs (see the module doc).
///
/// The binomial tail is summed from `k = min(b, c)` downwards as ratios to `P(X = k)`
/// (each ratio `j / (n - j + 1)` is at most 1, so nothing overflows), and `P(X = k)` is
/// taken in log space; this stays accurate for `b + c` in the tens of thousands. A p-value
/// below about 1e-308 underflows to 0.
pub fn mcnemar_exact_p(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    let ln_at_k = ln_binomial(n, k) - n as f64 * std::f64::consts::LN_2;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for j in (1..=k).rev() {
        term *= j as f64 / (n - j + 1) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    (2.0 * (ln_at_k + sum.ln()).exp()).min(1.0)
}

/// `ln C(n, k)` as a sum of logs of ratios that are each at least 1 for `k <= n / 2`.
fn ln_binomial(n: usize, k: usize) -> f64 {
    (1..=k).map(|i| ((n - k + i) as f64 / i as f64).ln()).sum()
}

/// A confidence interval `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The [`CONFIDENCE`] percentile bootstrap interval of `accuracy(a) - accuracy(b)` over
/// `resamples` resamples seeded by `seed` (see the module doc). Empty inputs give `[0, 0]`.
pub fn paired_bootstrap_interval(a: &[bool], b: &[bool], resamples: usize, seed: u64) -> Interval {
    check_paired(a, b);
    assert!(
        resamples > 0,
        "stats: the bootstrap needs at least one resample"
    );
    let n = a.len();
    if n == 0 {
        return Interval {
            low: 0.0,
            high: 0.0,
        };
    }
    // Per example: +1 where only A is right, -1 where only B is, 0 otherwise.
    let delta: Vec<i64> = a
        .iter()
        .zip(b)
        .map(|(&a, &b)| i64::from(a) - i64::from(b))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sums: Vec<f64> = (0..resamples)
        .map(|_| {
            let sum: i64 = (0..n).map(|_| delta[rng.random_range(0..n)]).sum();
            sum as f64
        })
        .collect();
    sums.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Interval {
        low: percentile(&sums, tail) / n as f64,
        high: percentile(&sums, 1.0 - tail) / n as f64,
    }
}

/// The `q`-quantile (`q` in [0, 1]) of ascending `sorted` values, interpolating linearly
/// between the order statistics at `q (m - 1)` (numpy's default method).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "stats: percentile of no values");
    assert!(
        (0.0..=1.0).contains(&q),
        "stats: quantile {q} outside [0, 1]"
    );
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + fraction * (sorted[above] - sorted[below])
}

/// Mean and sample standard deviation (divisor `m - 1`) of `values`; the deviation is
/// `None` for fewer than two values, the mean `NaN` for none.
pub fn mean_and_sd(values: &[f64]) -> (f64, Option<f64>) {
    let m = values.len();
    let mean = values.iter().sum::<f64>() / m as f64;
    if m < 2 {
        return (mean, None);
    }
    let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, Some((squares / (m - 1) as f64).sqrt()))
}

/// A paired t-test of per-seed differences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    pub mean: f64,
    /// Sample standard deviation of the differences (divisor `m - 1`).
    pub sd: f64,
    /// `mean / (sd / sqrt(m))`.
    pub t: f64,
    /// Degrees of freedom, `m - 1`.
    pub df: usize,
    /// Two-sided p-value from Student's t distribution with `df` degrees of freedom (statrs).
    pub p_value: f64,
}

/// Below this standard deviation the differences count as all equal (a millionth of a
/// thousandth of a point; rounding alone leaves about 1e-17).
const DEGENERATE_SD: f64 = 1e-12;

/// The paired t-test of `differences` (one per seed) against a mean of 0; `None` for fewer
/// than two differences, or when they are all equal: without spread there is nothing to test
/// against (two repeats that each gain one test example would otherwise give p = 0).
pub fn paired_t_test(differences: &[f64]) -> Option<TTest> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let (mean, sd) = mean_and_sd(differences);
    let sd = sd.filter(|&sd| sd > DEGENERATE_SD)?;
    let df = differences.len() - 1;
    let t = mean / (sd / (differences.len() as f64).sqrt());
    let dist = StudentsT::new(0.0, 1.0, df as f64).expect("df >= 1 and unit scale");
    let p_value = (2.0 * dist.sf(t.abs())).min(1.0);
    Some(TTest {
        mean,
        sd,
        t,
        df,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected two-sided p-values from the closed forms of Student's t CDF: for 2 degrees of
    /// freedom `p = 1 - t / sqrt(2 + t^2)`, for 4 `p = 1 - t (6 + t^2) / (4 + t^2)^(3/2)`.
    #[test]
    fn paired_t_test_matches_closed_forms() {
        // [1, 2, 3]: mean 2, sd 1, t = 2 sqrt(3), df 2.
        let three = paired_t_test(&[1.0, 2.0, 3.0]).unwrap();
        let t: f64 = 2.0 * 3f64.sqrt();
        assert!(close(three.t, t, 1e-12) && three.df == 2, "{three:?}");
        assert!(
            close(three.p_value, 1.0 - t / (2.0 + t * t).sqrt(), 1e-9),
            "{three:?}"
        );
        // Five differences: mean 0.3, sd 0.158, t = 4.24 at df 4.
        let five = paired_t_test(&[0.1, 0.2, 0.3, 0.4, 0.5]).unwrap();
        let t = five.t;
        let closed = 1.0 - t * (6.0 + t * t) / (4.0 + t * t).powf(1.5);
        assert!(
            five.df == 4 && close(five.p_value, closed, 1e-9),
            "{five:?} {closed}"
        );
        let negative = paired_t_test(&[-0.1, -0.2, -0.3, -0.4, -0.5]).unwrap();
        assert_eq!((negative.t, negative.p_value), (-five.t, five.p_value));
        assert!(paired_t_test(&[0.0, 0.0]).is_none());
        assert!(
            paired_t_test(&[0.01, 0.01, 0.01]).is_none(),
            "no spread, no test"
        );
        assert!(paired_t_test(&[0.3]).is_none());
    }

    fn close(a: f64, b: f64, relative: f64) -> bool {
        (a - b).abs() <= relative * b.abs()
    }

    /// Expected values: exact rationals `min(1, 2 sum_{j <= min(b,c)} C(b+c, j) / 2^(b+c))`
    /// computed once with Python's `fractions.Fraction` and `math.comb`, then rounded to f64
    /// (the same formula as statsmodels' `mcnemar(exact=True)`).
    #[test]
    fn mcnemar_matches_exact_binomial_tails() {
        let cases: [(usize, usize, f64); 12] = [
            (5, 0, 0.0625),
            (10, 2, 0.03857421875),
            (2, 10, 0.03857421875),
            (7, 7, 1.0),
            (8, 7, 1.0),
            (1, 0, 1.0),
            (60, 40, 0.05688793364098079),
            (120, 80, 0.0056851559967503055),
            (530, 470, 0.06202319509836318),
            (5100, 4900, 0.04658552770494739),
            (5200, 4800, 6.593515598672442e-05),
            (3000, 2000, 1.3002310005203771e-45),
        ];
        for (b, c, expected) in cases {
            let p = mcnemar_exact_p(b, c);
            assert!(close(p, expected, 1e-9), "b {b} c {c}: {p} vs {expected}");
        }
        assert!(close(
            mcnemar_exact_p(300, 100),
            2.5918869069720767e-24,
            1e-9
        ));
        assert_eq!(mcnemar_exact_p(0, 0), 1.0, "no discordant pair");
        // 2 / 2^20000 is far below the smallest f64: it underflows to 0, not to NaN.
        assert_eq!(mcnemar_exact_p(20_000, 0), 0.0);
    }

    #[test]
    fn discordant_pairs_are_counted_each_way() {
        let a = [true, true, false, false, true];
        let b = [true, false, true, false, false];
        assert_eq!(discordant_counts(&a, &b), (2, 1));
        assert_eq!(discordant_counts(&b, &a), (1, 2));
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 50, 97.5]): positions 0.075, 1.5, 2.925 on
        // 0-based order statistics, so 1.075, 2.5, 3.925.
        let values = [1.0, 2.0, 3.0, 4.0];
        assert!(close(percentile(&values, 0.025), 1.075, 1e-12));
        assert!(close(percentile(&values, 0.5), 2.5, 1e-12));
        assert!(close(percentile(&values, 0.975), 3.925, 1e-12));
        assert_eq!(
            (percentile(&values, 0.0), percentile(&values, 1.0)),
            (1.0, 4.0)
        );
        assert_eq!(percentile(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn bootstrap_of_degenerate_pairs_is_a_point() {
        // Identical predictions: every resample has difference 0.
        let same = [true, false, true, true];
        let interval = paired_bootstrap_interval(&same, &same, 500, 3);
        assert_eq!((interval.low, interval.high), (0.0, 0.0));
        // A always right, B always wrong: every resample has difference 1.
        let interval = paired_bootstrap_interval(&[true; 9], &[false; 9], 500, 3);
        assert_eq!((interval.low, interval.high), (1.0, 1.0));
    }

    /// n = 10,000 examples, 300 where only A is right and 200 where only B is: the
    /// difference is 0.01, the per-example differences have variance
    /// 500/10000 - 0.01^2 = 0.0499, so the normal approximation of the interval is
    /// 0.01 -+ 1.959964 sqrt(0.0499 / 10000) = [0.0056218, 0.0143782]. The bootstrap
    /// percentiles of 2,000 resamples agree within their Monte Carlo error (sd about
    /// 0.00014 for each end), whatever the seed.
    #[test]
    fn bootstrap_matches_the_normal_approximation_on_a_large_set() {
        let n = 10_000;
        let a: Vec<bool> = (0..n).map(|i| !(300..500).contains(&i)).collect();
        let b: Vec<bool> = (0..n).map(|i| i >= 300).collect();
        assert_eq!(discordant_counts(&a, &b), (300, 200));
        for seed in [1, 2, 3] {
            let interval = paired_bootstrap_interval(&a, &b, DEFAULT_RESAMPLES, seed);
            assert!(
                (interval.low - 0.0056218).abs() < 6e-4 && (interval.high - 0.0143782).abs() < 6e-4,
                "seed {seed}: {interval:?}"
            );
        }
        let once = paired_bootstrap_interval(&a, &b, 200, 9);
        assert_eq!(once, paired_bootstrap_interval(&a, &b, 200, 9), "seeded");
        // Swapping the models mirrors the interval.
        let mirrored = paired_bootstrap_interval(&b, &a, 200, 9);
        assert!(
            (mirrored.low + once.high).abs() < 1e-12 && (mirrored.high + once.low).abs() < 1e-12,
            "{mirrored:?} vs {once:?}"
        );
    }

    /// Expected values from Python's `statistics.mean` and `statistics.stdev`.
    #[test]
    fn mean_and_sample_sd() {
        let (mean, sd) = mean_and_sd(&[0.851, 0.862, 0.874]);
        assert!(close(mean, 0.8623333333333333, 1e-12), "{mean}");
        assert!(close(sd.unwrap(), 0.011503622617824942, 1e-9), "{sd:?}");
        let (mean, sd) = mean_and_sd(&[0.9012, 0.8975, 0.9033, 0.8991]);
        assert!(close(mean, 0.9002749999999999, 1e-12), "{mean}");
        assert!(close(sd.unwrap(), 0.002522399651125896, 1e-9), "{sd:?}");
        assert_eq!(mean_and_sd(&[0.5]), (0.5, None));
    }
}
