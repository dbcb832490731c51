//! Exact nearest neighbours by Euclidean distance, on the CPU.
//!
//! MUNGE (see [`super::munge`]) needs each example's nearest other example. For Fashion-MNIST
//! sized sets (n = 5,000 images of d = 784 pixels) that is about 10^10 multiply-adds, so the
//! squared distance is taken as `|a|^2 + |b|^2 - 2 a.b`: the norms once per row, then only dot
//! products, each pair once (distance is symmetric). Rows are processed in blocks small enough
//! for a block of rows to stay in cache while the other block streams past, and the blocks of
//! rows are handed out to `available_parallelism()` threads from a shared counter.
//!
//! Every dot product (norms included) goes through the same [`dots`], whose result does not
//! depend on which rows it was computed with, so a duplicated row is at distance exactly 0
//! from its twin; rounding can only make distances slightly negative, which are clamped to 0.
//! Ties go to the lowest index. The inner loop is written with SSE on x86_64 because the dev
//! profile (opt-level 1) does not vectorise; elsewhere a plain loop gives the same bits.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Rows per block: two blocks of 784 f32 pixels take about 200 KB, within a typical L2.
const BLOCK: usize = 32;
/// Independent accumulators per dot product, so the additions do not wait on each other.
const LANES: usize = 8;
/// Rows taken at once against one row (see [`dots`]).
const TILE: usize = 4;

/// The best neighbour seen so far for one row.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    distance: f32,
    index: usize,
}

impl Candidate {
    const NONE: Candidate = Candidate {
        distance: f32::INFINITY,
        index: usize::MAX,
    };

    fn offer(&mut self, other: Candidate) {
        if other.distance < self.distance
            || (other.distance == self.distance && other.index < self.index)
        {
            *self = other;
        }
    }
}

/// `a . b[r]` for each `r`, in f32. One row of `a` against several rows at once, so each
/// value of `a` is loaded once per `R` products. Every product goes through here, and the
/// summation order (lane sums, then the lanes in order, then the tail) does not depend on `R`,
/// so a pair's dot product is bitwise the same whichever rows it was computed with.
fn dots<const R: usize>(a: &[f32], b: [&[f32]; R]) -> [f32; R] {
    let body = a.len() - a.len() % LANES;
    let sums = lane_sums(&a[..body], b.map(|row| &row[..body]));
    std::array::from_fn(|r| {
        let tail: f32 = a[body..]
            .iter()
            .zip(&b[r][body..])
            .map(|(x, y)| x * y)
            .sum();
        sums[r].iter().sum::<f32>() + tail
    })
}

/// Per-lane sums of `a[i] * b[r][i]` over whole chunks of `LANES` values (`i % LANES` is
/// the lane). The dev profile builds at opt-level 1, where LLVM vectorises nothing, so on
/// x86_64 the lanes are SSE registers written out by hand (SSE2 is part of that target's
/// baseline); the results are bitwise those of [`lane_sums_portable`]: same products, same
/// additions, in the same order.
#[cfg(target_arch = "x86_64")]
fn lane_sums<const R: usize>(a: &[f32], b: [&[f32]; R]) -> [[f32; LANES]; R] {
    use std::arch::x86_64::{__m128, _mm_add_ps, _mm_mul_ps, _mm_setzero_ps};
    assert!(a.len().is_multiple_of(LANES) && b.iter().all(|row| row.len() == a.len()));
    let chunks = a.len() / LANES;
    let (a, b) = (a.as_ptr(), b.map(<[f32]>::as_ptr));
    // SAFETY: SSE2 is always available on x86_64. Every load reads 4 f32 at `start` or
    // `start + 4` with `start + LANES <= len` of `a` and of each row (asserted above).
    // Raw pointers because opt-level 1 keeps the bounds checks of slice indexing.
    unsafe {
        let mut acc = [[_mm_setzero_ps(); 2]; R];
        for chunk in 0..chunks {
            let start = chunk * LANES;
            let low = load4(a.add(start));
            let high = load4(a.add(start + 4));
            for r in 0..R {
                let row = b[r];
                acc[r][0] = _mm_add_ps(acc[r][0], _mm_mul_ps(low, load4(row.add(start))));
                acc[r][1] = _mm_add_ps(acc[r][1], _mm_mul_ps(high, load4(row.add(start + 4))));
            }
        }
        // Two __m128 are exactly the bits of 8 f32 lanes, in order.
        acc.map(|halves| std::mem::transmute::<[__m128; 2], [f32; LANES]>(halves))
    }
}

/// Four f32 from `p` into an SSE register. A plain read rather than `_mm_loadu_ps`, whose
/// inner copy is checked on every call when debug assertions are on (the dev profile), which
/// made the whole search three times slower.
///
/// # Safety
/// `p` must point to 4 readable f32.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load4(p: *const f32) -> std::arch::x86_64::__m128 {
    // SAFETY: the caller's promise; `[f32; 4]` needs only f32's alignment, and `__m128` is
    // the 16 bytes of four f32 lanes in memory order.
    unsafe {
        std::mem::transmute::<[f32; 4], std::arch::x86_64::__m128>(p.cast::<[f32; 4]>().read())
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn lane_sums<const R: usize>(a: &[f32], b: [&[f32]; R]) -> [[f32; LANES]; R] {
    lane_sums_portable(a, b)
}

/// The plain version of [`lane_sums`].
#[cfg(any(test, not(target_arch = "x86_64")))]
fn lane_sums_portable<const R: usize>(a: &[f32], b: [&[f32]; R]) -> [[f32; LANES]; R] {
    let mut acc = [[0f32; LANES]; R];
    for start in (0..a.len()).step_by(LANES) {
        for (row, acc) in b.iter().zip(&mut acc) {
            for lane in 0..LANES {
                acc[lane] += a[start + lane] * row[start + lane];
            }
        }
    }
    acc
}

/// For each of the `n` rows of `d` values (row-major), the index of the nearest other row by
/// Euclidean distance; ties go to the lowest index. Values must be finite.
///
/// Panics when `n < 2` (a row has no other row) or `rows.len() != n * d`; callers taking
/// user data check both first.
pub fn nearest_neighbours(rows: &[f32], n: usize, d: usize) -> Vec<usize> {
    assert!(n >= 2, "nearest_neighbours: needs at least 2 rows, got {n}");
    assert_eq!(
        Some(rows.len()),
        n.checked_mul(d),
        "nearest_neighbours: {} values are not {n} rows of {d}",
        rows.len()
    );
    let norms: Vec<f32> = (0..n)
        .map(|i| {
            let row = &rows[i * d..(i + 1) * d];
            dots(row, [row])[0]
        })
        .collect();
    let blocks = n.div_ceil(BLOCK);
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(blocks);
    // Block 0 pairs with every later block and the last block only with itself, so blocks
    // are taken from a counter rather than split evenly: the big ones go first.
    let next_block = AtomicUsize::new(0);
    let per_thread: Vec<Vec<Candidate>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut best = vec![Candidate::NONE; n];
                    loop {
                        let block = next_block.fetch_add(1, Ordering::Relaxed);
                        if block >= blocks {
                            return best;
                        }
                        scan_block(rows, d, &norms, block, &mut best);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .expect("nearest_neighbours: a worker panicked")
            })
            .collect()
    });
    (0..n)
        .map(|row| {
            let mut best = Candidate::NONE;
            for candidates in &per_thread {
                best.offer(candidates[row]);
            }
            best.index
        })
        .collect()
}

/// Compares every row of block `block` with every later row (its own block included) and
/// records each pair in both rows' candidates.
fn scan_block(rows: &[f32], d: usize, norms: &[f32], block: usize, best: &mut [Candidate]) {
    let n = norms.len();
    let row = |i: usize| &rows[i * d..(i + 1) * d];
    let own = block * BLOCK..((block + 1) * BLOCK).min(n);
    for other_start in (own.start..n).step_by(BLOCK) {
        let other_end = (other_start + BLOCK).min(n);
        for i in own.clone() {
            let a = row(i);
            let mut offer = |j: usize, dot: f32| {
                let distance = (norms[i] + norms[j] - 2.0 * dot).max(0.0);
                best[i].offer(Candidate { distance, index: j });
                best[j].offer(Candidate { distance, index: i });
            };
            let first = other_start.max(i + 1);
            let tiled_end = first + (other_end - first) / TILE * TILE;
            for j in (first..tiled_end).step_by(TILE) {
                let products = dots(a, std::array::from_fn::<_, TILE, _>(|t| row(j + t)));
                for (t, dot) in products.into_iter().enumerate() {
                    offer(j + t, dot);
                }
            }
            for j in tiled_end..other_end {
                offer(j, dots(a, [row(j)])[0]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn squared_distance_f64(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum()
    }

    #[test]
    fn dot_products_are_bitwise_the_same_however_computed() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut values = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random()).collect() };
        let len = 5 * LANES + 3;
        let a = values(len);
        let b: Vec<Vec<f32>> = (0..TILE).map(|_| values(len)).collect();
        let b: [&[f32]; TILE] = std::array::from_fn(|r| b[r].as_slice());
        let body = len - len % LANES;
        let trimmed = b.map(|row| &row[..body]);
        assert_eq!(
            lane_sums(&a[..body], trimmed),
            lane_sums_portable(&a[..body], trimmed)
        );
        let tiled = dots(&a, b);
        let single = b.map(|row| dots(&a, [row])[0]);
        assert_eq!(tiled.map(f32::to_bits), single.map(f32::to_bits));
        let exact: f64 = a.iter().zip(b[0]).map(|(&x, &y)| x as f64 * y as f64).sum();
        assert!(
            (tiled[0] as f64 - exact).abs() < 1e-4 * exact,
            "{} vs {exact}",
            tiled[0]
        );
    }

    #[test]
    fn matches_brute_force_in_f64_with_a_duplicate_row() {
        let (n, d) = (37, 13);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut rows: Vec<f32> = (0..n * d).map(|_| rng.random::<f32>()).collect();
        // Row 30 duplicates row 4: they must find each other at distance 0.
        rows.copy_within(4 * d..5 * d, 30 * d);
        let row = |i: usize| &rows[i * d..(i + 1) * d];
        let found = nearest_neighbours(&rows, n, d);
        for (i, &j) in found.iter().enumerate() {
            let mut distances: Vec<(f64, usize)> = (0..n)
                .filter(|&k| k != i)
                .map(|k| (squared_distance_f64(row(i), row(k)), k))
                .collect();
            distances.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let (nearest, runner_up) = (distances[0], distances[1]);
            assert_ne!(i, j, "row {i} is its own neighbour");
            // f32 rounding may only confuse candidates that are nearly tied in f64.
            if runner_up.0 - nearest.0 > 1e-4 {
                assert_eq!(j, nearest.1, "row {i}: {distances:?}");
            } else {
                assert!(squared_distance_f64(row(i), row(j)) - nearest.0 <= 1e-4);
            }
        }
        assert_eq!((found[4], found[30]), (30, 4));
    }

    #[test]
    fn ties_go_to_the_lowest_index() {
        // Points 0, 1, 2, 3 and a second 3 on a line (exact in f32): row 1 is equally far from
        // rows 0 and 2, row 2 equally far from 1 and 3; rows 3 and 4 coincide.
        let rows = [0.0, 1.0, 2.0, 3.0, 3.0];
        assert_eq!(nearest_neighbours(&rows, 5, 1), vec![1, 0, 1, 4, 3]);
        // Every row the same: each picks the first other row.
        assert_eq!(nearest_neighbours(&[7.0; 6], 3, 2), vec![1, 0, 0]);
    }

    #[test]
    fn rows_spanning_several_blocks_and_threads() {
        // Rows come in pairs 1 apart, pairs 3 apart (x = 3m and 3m + 1): each row's neighbour
        // is its partner. Pair (31, 32) straddles the first block boundary; the odd row out
        // at the end is nearest to the row just before it.
        let n = 3 * BLOCK + 5;
        let rows: Vec<f32> = (0..n)
            .flat_map(|i| [(3 * (i / 2) + i % 2) as f32, 0.5])
            .collect();
        let found = nearest_neighbours(&rows, n, 2);
        let expected: Vec<usize> = (0..n)
            .map(|i| if i == n - 1 { i - 1 } else { i ^ 1 })
            .collect();
        assert_eq!(found, expected);
    }
}
