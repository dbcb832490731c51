//! Seeded train/validation splits and subsamples, as lists of example indices.
//!
//! The validation set is carved out of the official training set (the test set is only used
//! for the final numbers). By default the split is **stratified**: each class gives the
//! same share of its examples to validation (quotas by largest remainder, so the sizes add up
//! exactly), which on balanced Fashion-MNIST means 500 per class for 5,000 validation
//! examples. A plain split (a seeded shuffle of all indices, first `k` to validation) is
//! available too. Both are deterministic for a given seed and independent of the platform
//! (ChaCha8). Returned index lists are sorted ascending, so they are easy to compare and to
//! cache; training shuffles them every epoch anyway.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// Indices into the full training set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SplitError {
    #[error(
        "validation size {validation} plus training size {train} exceeds the {available} examples available"
    )]
    TooLarge {
        validation: usize,
        train: usize,
        available: usize,
    },
}

/// Picks `count` of `indices` by seeded shuffle; stratified by `labels[index]` when asked.
/// Returns `(picked, rest)`, both sorted.
fn pick(
    indices: &[usize],
    labels: &[u8],
    count: usize,
    stratified: bool,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    let count = count.min(indices.len());
    let mut picked = Vec::with_capacity(count);
    let mut rest = Vec::with_capacity(indices.len() - count);
    if stratified && !indices.is_empty() {
        let classes = indices
            .iter()
            .map(|&i| labels[i] as usize + 1)
            .max()
            .unwrap_or(0);
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
        for &index in indices {
            by_class[labels[index] as usize].push(index);
        }
        // Largest-remainder quotas: floor shares first, then one more to the classes with
        // the largest fractional parts (ties to the lower class) until `count` is reached.
        let total = indices.len();
        let mut quotas: Vec<usize> = by_class.iter().map(|c| c.len() * count / total).collect();
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by_key(|&c| std::cmp::Reverse((by_class[c].len() * count) % total));
        let mut missing = count - quotas.iter().sum::<usize>();
        for &class in order.iter().cycle() {
            if missing == 0 {
                break;
            }
            if quotas[class] < by_class[class].len() {
                quotas[class] += 1;
                missing -= 1;
            }
        }
        for (members, quota) in by_class.iter_mut().zip(quotas) {
            members.shuffle(rng);
            picked.extend_from_slice(&members[..quota]);
            rest.extend_from_slice(&members[quota..]);
        }
    } else {
        let mut shuffled = indices.to_vec();
        shuffled.shuffle(rng);
        picked.extend_from_slice(&shuffled[..count]);
        rest.extend_from_slice(&shuffled[count..]);
    }
    picked.sort_unstable();
    rest.sort_unstable();
    (picked, rest)
}

/// Splits the `labels.len()` training examples into validation (`validation_size`) and
/// training (`train_size`, or everything left when `None`).
pub fn train_validation_split(
    labels: &[u8],
    validation_size: usize,
    train_size: Option<usize>,
    stratified: bool,
    seed: u64,
) -> Result<Split, SplitError> {
    let available = labels.len();
    let train_wanted = train_size.unwrap_or(available.saturating_sub(validation_size));
    // Checked: both sizes may come straight from the command line.
    if validation_size
        .checked_add(train_wanted)
        .is_none_or(|total| total > available)
    {
        return Err(SplitError::TooLarge {
            validation: validation_size,
            train: train_wanted,
            available,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let all: Vec<usize> = (0..available).collect();
    let (validation, rest) = pick(&all, labels, validation_size, stratified, &mut rng);
    let train = if train_wanted == rest.len() {
        rest
    } else {
        pick(&rest, labels, train_wanted, stratified, &mut rng).0
    };
    Ok(Split { train, validation })
}

/// A seeded subsample of `count` of `indices` (all of them when `count >= indices.len()`),
/// stratified by label when asked. Used by presets that train on fewer examples and to cut
/// the test set down for quick runs.
pub fn subsample(
    indices: &[usize],
    labels: &[u8],
    count: usize,
    stratified: bool,
    seed: u64,
) -> Vec<usize> {
    if count >= indices.len() {
        let mut all = indices.to_vec();
        all.sort_unstable();
        return all;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    pick(indices, labels, count, stratified, &mut rng).0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 examples: class 0 has 50, class 1 has 30, class 2 has 20.
    fn labels() -> Vec<u8> {
        (0..100u32)
            .map(|i| match i % 10 {
                0..=4 => 0,
                5..=7 => 1,
                _ => 2,
            })
            .collect()
    }

    fn count_class(indices: &[usize], labels: &[u8], class: u8) -> usize {
        indices.iter().filter(|&&i| labels[i] == class).count()
    }

    #[test]
    fn stratified_split_keeps_class_shares_and_partitions() {
        let labels = labels();
        let split = train_validation_split(&labels, 10, None, true, 7).unwrap();
        // 10% of each class: 5, 3, 2.
        let counts: Vec<usize> = (0..3)
            .map(|c| count_class(&split.validation, &labels, c))
            .collect();
        assert_eq!(counts, vec![5, 3, 2]);
        assert_eq!(split.train.len(), 90);
        let mut all: Vec<usize> = split
            .train
            .iter()
            .chain(&split.validation)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..100).collect::<Vec<_>>(),
            "train and validation partition the set"
        );
    }

    #[test]
    fn largest_remainder_quotas_add_up() {
        let labels = labels();
        // 7% of 50/30/20 is 3.5/2.1/1.4: floors 3+2+1 = 6, the extra goes to class 0 (0.5).
        let split = train_validation_split(&labels, 7, Some(20), true, 1).unwrap();
        let counts: Vec<usize> = (0..3)
            .map(|c| count_class(&split.validation, &labels, c))
            .collect();
        assert_eq!(counts, vec![4, 2, 1]);
        assert_eq!(split.train.len(), 20);
        assert!(split.train.iter().all(|i| !split.validation.contains(i)));
    }

    #[test]
    fn seeded_and_deterministic() {
        let labels = labels();
        for stratified in [true, false] {
            let a = train_validation_split(&labels, 10, None, stratified, 3).unwrap();
            let b = train_validation_split(&labels, 10, None, stratified, 3).unwrap();
            let c = train_validation_split(&labels, 10, None, stratified, 4).unwrap();
            assert_eq!(a, b);
            assert_ne!(a.validation, c.validation, "another seed, another split");
        }
    }

    #[test]
    fn plain_split_and_errors() {
        let labels = labels();
        let split = train_validation_split(&labels, 25, Some(75), false, 9).unwrap();
        assert_eq!((split.validation.len(), split.train.len()), (25, 75));
        let err = train_validation_split(&labels, 50, Some(60), true, 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            "validation size 50 plus training size 60 exceeds the 100 examples available"
        );
        // Sizes from the command line may add past usize::MAX: an error, not an overflow.
        let err = train_validation_split(&labels, usize::MAX, Some(1), true, 9).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "validation size {} plus training size 1 exceeds the 100 examples available",
                usize::MAX
            )
        );
    }

    #[test]
    fn subsample_is_a_stratified_subset() {
        let labels = labels();
        let pool: Vec<usize> = (0..100).step_by(2).collect(); // 30 / 10 / 10 of each class
        let picked = subsample(&pool, &labels, 10, true, 5);
        assert_eq!(picked.len(), 10);
        assert!(picked.iter().all(|i| pool.contains(i)));
        let counts: Vec<usize> = (0..3).map(|c| count_class(&picked, &labels, c)).collect();
        assert_eq!(counts, vec![6, 2, 2]);
        assert_eq!(subsample(&pool, &labels, 500, true, 5), pool);
        assert_eq!(subsample(&pool, &labels, 10, false, 5).len(), 10);
    }
}
