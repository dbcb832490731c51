//! CPU references of the loss kernels. Slices are row-major `[rows, cols]`.
//!
//! The f32 functions follow the kernels' formulas (max-shifted sums, centred cross term);
//! the f64 functions are the textbook definitions through explicit log-softmaxes, used by
//! the tests as ground truth and for finite-difference gradient checks.

use super::{
    CORRECT_WORD, COUNT_WORD, DistillLossParams, FLAGS_WORD, LOSS_EXAMPLE_LIMIT, LOSS_STATS_WORDS,
    LOSS_SUM_FRACTION_BITS,
};
use crate::ops::softmax::cpu::{argmax_row, log_softmax_f64};

/// Gradient and batch statistics of one loss evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct LossOutput {
    /// `d(mean loss)/dz`, `[rows, cols]`.
    pub grad: Vec<f32>,
    /// Sum of the per-example losses (the objective).
    pub loss_sum: f32,
    /// Examples with `argmax z == label` (labels `>= cols` never count).
    pub correct: u32,
    /// Sum of the plain hard-label cross-entropies `-log softmax(z)_y`.
    pub hard_sum: f32,
    /// Sum of the soft terms: `KL(softmax(t/T) || softmax(z/T))`, or the logit MSE.
    pub soft_sum: f32,
}

/// Per-example values and gradient of one loss evaluation, in f64 from the definitions.
#[derive(Clone, Debug, PartialEq)]
pub struct ExactLoss {
    /// Per-example losses (the objective).
    pub losses: Vec<f64>,
    /// Per-example plain hard-label cross-entropies `-log softmax(z)_y`.
    pub hard: Vec<f64>,
    /// Per-example soft terms: `KL(softmax(t/T) || softmax(z/T))`, or the logit MSE.
    pub soft: Vec<f64>,
    /// `d(mean loss)/dz`, `[rows, cols]`.
    pub grad: Vec<f64>,
}

/// Values down to `-2^-10` are rounding of terms that are >= 0 and add 0 to a loss sum (the
/// shaders' `NEGATIVE_SLACK_BITS`).
const NEGATIVE_SLACK: f32 = 1.0 / 1024.0;

/// One example's value in the fixed point of the loss sums, as the kernels form it (see
/// [`LOSS_STATS_WORDS`]): `value * 2^16` rounded to the nearest integer, ties to even;
/// values in `[-2^-10, 0)` give 0. `None` when the value is not finite, below `-2^-10` or
/// above [`LOSS_EXAMPLE_LIMIT`]: the kernels then set the sum's flag instead of adding.
pub fn fixed_point(value: f32) -> Option<u64> {
    // NaN is in no range.
    if !(-NEGATIVE_SLACK..=LOSS_EXAMPLE_LIMIT).contains(&value) {
        return None;
    }
    // Exact in f32: scaling by a power of two; the result is an integer below 2^41.
    let scaled = (value.max(0.0) * (1u32 << LOSS_SUM_FRACTION_BITS) as f32).round_ties_even();
    Some(scaled as u64)
}

/// A fixed-point loss sum as the kernels accumulate it: 64-bit wrapping, and a flag for a
/// value [`fixed_point`] rejects or a sum that passed `2^64` (`2^48` in value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FixedPointSum {
    /// The sum, `value * 2^16`, modulo `2^64`.
    pub total: u64,
    /// Whether a value was rejected or the sum wrapped.
    pub overflow: bool,
}

impl FixedPointSum {
    /// Add one example's value.
    pub fn add(&mut self, value: f32) {
        match fixed_point(value) {
            Some(scaled) => {
                let (total, wrapped) = self.total.overflowing_add(scaled);
                self.total = total;
                self.overflow |= wrapped;
            }
            None => self.overflow = true,
        }
    }

    /// The sum of `values`.
    pub fn of(values: &[f32]) -> Self {
        let mut sum = Self::default();
        values.iter().for_each(|&v| sum.add(v));
        sum
    }

    /// The two stats words of the sum: `[lo, hi]`.
    pub fn words(&self) -> [u32; 2] {
        [self.total as u32, (self.total >> 32) as u32]
    }
}

/// The stats words a kernel leaves in a zeroed stats tensor for examples with the given
/// per-example losses, hard-label and soft terms, correct count and example count.
pub fn stats_words(
    losses: &[f32],
    hard: &[f32],
    soft: &[f32],
    correct: u32,
    count: u32,
) -> [u32; LOSS_STATS_WORDS] {
    let sums = [losses, hard, soft].map(FixedPointSum::of);
    let mut words = [0; LOSS_STATS_WORDS];
    let mut flags = 0;
    for (k, sum) in sums.iter().enumerate() {
        words[2 * k..2 * k + 2].copy_from_slice(&sum.words());
        flags |= u32::from(sum.overflow) << k;
    }
    words[CORRECT_WORD] = correct;
    words[COUNT_WORD] = count;
    words[FLAGS_WORD] = flags;
    words
}

fn argmax(row: &[f32]) -> usize {
    argmax_row(row) as usize
}

/// Smoothed hard target of class `j`: `(1 - eps) * [j == label] + eps / cols`.
fn hard_target(j: usize, label: usize, cols: usize, eps: f32) -> f32 {
    let one_hot = if j == label { 1.0 - eps } else { 0.0 };
    one_hot + eps / cols as f32
}

/// Distillation loss (f32, as the fused kernel computes it). `teacher: None` uses the student
/// in its place (the soft term is then only meaningful with `alpha == 0`) and reports a soft
/// sum of 0.
pub fn distill_loss(
    student: &[f32],
    teacher: Option<&[f32]>,
    labels: &[u32],
    cols: usize,
    p: DistillLossParams,
) -> LossOutput {
    let has_teacher = teacher.is_some();
    let teacher = teacher.unwrap_or(student);
    let (temperature, alpha, eps) = (p.temperature, p.alpha, p.label_smoothing);
    let rows = labels.len();
    let inv_t = 1.0 / temperature;
    let inv_batch = 1.0 / rows as f32;
    let mut out = LossOutput {
        grad: vec![0.0; rows * cols],
        loss_sum: 0.0,
        correct: 0,
        hard_sum: 0.0,
        soft_sum: 0.0,
    };
    for r in 0..rows {
        let z = &student[r * cols..(r + 1) * cols];
        let s = RowSums::new(z, &teacher[r * cols..(r + 1) * cols], inv_t);
        let label = (labels[r] as usize).min(cols - 1);
        let spread = eps / cols as f32;
        let soft_ce = s.sum_soft.ln() - s.cross / s.sum_teacher;
        let label_shift = z[label] - s.max_z;
        let smoothed_ce = s.sum_hard.ln() - (1.0 - eps) * label_shift - spread * s.centred;
        out.loss_sum += alpha * temperature * temperature * soft_ce + (1.0 - alpha) * smoothed_ce;
        out.hard_sum += s.sum_hard.ln() - label_shift;
        if has_teacher {
            let kl = s.gap / s.sum_teacher + s.sum_soft.ln() - s.sum_teacher.ln();
            out.soft_sum += kl.max(0.0);
        }
        if labels[r] as usize == s.best {
            out.correct += 1;
        }
        let grad = &mut out.grad[r * cols..(r + 1) * cols];
        s.gradient(z, label, p, inv_batch, grad);
    }
    out
}

/// The max-shifted sums over one example's student row `z` and teacher row `t` that the
/// fused kernel forms.
struct RowSums {
    /// Index of the largest logit (first maximum wins).
    best: usize,
    max_z: f32,
    /// `sum_j exp((z_j - max z) / T)`.
    sum_soft: f32,
    /// `sum_j exp(z_j - max z)`.
    sum_hard: f32,
    /// `sum_j (z_j - max z)`.
    centred: f32,
    /// `w_j = exp((t_j - max t) / T)`, the teacher's unnormalised soft targets.
    weights: Vec<f32>,
    /// `sum_j w_j`.
    sum_teacher: f32,
    /// `sum_j w_j (z_j - max z) / T`.
    cross: f32,
    /// `sum_j w_j (log p_j - log q_j)` before normalisation; exactly 0 where z = t.
    gap: f32,
}

impl RowSums {
    fn new(z: &[f32], t: &[f32], inv_t: f32) -> Self {
        let best = argmax(z);
        let max_z = z[best];
        let max_t = t.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f32> = t.iter().map(|v| ((v - max_t) * inv_t).exp()).collect();
        Self {
            best,
            max_z,
            sum_soft: z.iter().map(|v| ((v - max_z) * inv_t).exp()).sum(),
            sum_hard: z.iter().map(|v| (v - max_z).exp()).sum(),
            centred: z.iter().map(|v| v - max_z).sum(),
            sum_teacher: weights.iter().sum(),
            cross: weights
                .iter()
                .zip(z)
                .map(|(w, v)| w * (v - max_z) * inv_t)
                .sum(),
            gap: weights
                .iter()
                .zip(t.iter().zip(z))
                .map(|(w, (tv, zv))| w * ((tv - max_t) - (zv - max_z)) * inv_t)
                .sum(),
            weights,
        }
    }

    /// Writes this example's row of `d(mean loss)/dz` to `grad`.
    fn gradient(
        &self,
        z: &[f32],
        label: usize,
        params: DistillLossParams,
        inv_batch: f32,
        grad: &mut [f32],
    ) {
        let (temperature, alpha, eps) = (params.temperature, params.alpha, params.label_smoothing);
        let inv_t = 1.0 / temperature;
        let cols = z.len();
        for j in 0..cols {
            let shift = z[j] - self.max_z;
            let q = (shift * inv_t).exp() / self.sum_soft;
            let p = self.weights[j] / self.sum_teacher;
            let q1 = shift.exp() / self.sum_hard;
            let target = hard_target(j, label, cols, eps);
            grad[j] = (alpha * temperature * (q - p) + (1.0 - alpha) * (q1 - target)) * inv_batch;
        }
    }
}

/// Logit matching (f32): per example `mean_j (z_j - t_j)^2`, grad `2 (z - t) / (C * B)`; the
/// soft sum is the loss sum, the hard sum the cross-entropy of the (clamped) label.
pub fn logit_mse(student: &[f32], teacher: &[f32], labels: &[u32], cols: usize) -> LossOutput {
    let rows = labels.len();
    let scale = 2.0 / (cols as f32 * rows as f32);
    let grad = student
        .iter()
        .zip(teacher)
        .map(|(z, t)| scale * (z - t))
        .collect();
    let mut loss_sum = 0.0;
    let mut hard_sum = 0.0;
    let mut correct = 0;
    for r in 0..rows {
        let z = &student[r * cols..(r + 1) * cols];
        let t = &teacher[r * cols..(r + 1) * cols];
        let squares: f32 = z.iter().zip(t).map(|(a, b)| (a - b) * (a - b)).sum();
        loss_sum += squares / cols as f32;
        let best = argmax(z);
        let sum_hard: f32 = z.iter().map(|v| (v - z[best]).exp()).sum();
        let label = (labels[r] as usize).min(cols - 1);
        hard_sum += sum_hard.ln() - (z[label] - z[best]);
        if labels[r] as usize == best {
            correct += 1;
        }
    }
    LossOutput {
        grad,
        loss_sum,
        correct,
        hard_sum,
        soft_sum: loss_sum,
    }
}

/// `KL(p || q) = sum_j p_j (log p_j - log q_j)` from log-probabilities, with 0 log 0 = 0.
fn kl_f64(log_p: &[f64], log_q: &[f64]) -> f64 {
    log_p
        .iter()
        .zip(log_q)
        .map(|(lp, lq)| {
            let p = lp.exp();
            if p > 0.0 { p * (lp - lq) } else { 0.0 }
        })
        .sum()
}

/// Distillation loss in f64 from the definitions (labels clamped to `cols - 1` like the
/// kernels): per example `alpha T^2 CE(p, q) + (1 - alpha) CE(h, q1)` with the smoothed target
/// `h`, the plain NLL `-log q1_y` and `KL(p || q)` (0 without a teacher), and the gradient of
/// the batch-mean loss.
pub fn distill_loss_f64(
    student: &[f64],
    teacher: Option<&[f64]>,
    labels: &[u32],
    cols: usize,
    p: DistillLossParams,
) -> ExactLoss {
    let teacher = teacher.unwrap_or(student);
    let temperature = f64::from(p.temperature);
    let alpha = f64::from(p.alpha);
    let eps = f64::from(p.label_smoothing);
    let rows = labels.len();
    let mut out = ExactLoss {
        losses: Vec::with_capacity(rows),
        hard: Vec::with_capacity(rows),
        soft: Vec::with_capacity(rows),
        grad: Vec::with_capacity(rows * cols),
    };
    for r in 0..rows {
        let z = &student[r * cols..(r + 1) * cols];
        let log_q = log_softmax_f64(z, temperature);
        let log_p = log_softmax_f64(&teacher[r * cols..(r + 1) * cols], temperature);
        let log_q1 = log_softmax_f64(z, 1.0);
        let label = (labels[r] as usize).min(cols - 1);
        let target = |j: usize| (if j == label { 1.0 - eps } else { 0.0 }) + eps / cols as f64;
        let soft_ce: f64 = -log_p
            .iter()
            .zip(&log_q)
            .map(|(lp, lq)| lp.exp() * lq)
            .sum::<f64>();
        let hard_ce: f64 = -(0..cols).map(|j| target(j) * log_q1[j]).sum::<f64>();
        out.losses
            .push(alpha * temperature * temperature * soft_ce + (1.0 - alpha) * hard_ce);
        out.hard.push(-log_q1[label]);
        out.soft.push(kl_f64(&log_p, &log_q));
        for j in 0..cols {
            out.grad.push(
                (alpha * temperature * (log_q[j].exp() - log_p[j].exp())
                    + (1.0 - alpha) * (log_q1[j].exp() - target(j)))
                    / rows as f64,
            );
        }
    }
    out
}

/// Logit matching in f64: per-example losses (also the soft terms), the label's NLL (labels
/// clamped) and the gradient of the batch-mean loss.
pub fn logit_mse_f64(student: &[f64], teacher: &[f64], labels: &[u32], cols: usize) -> ExactLoss {
    let rows = labels.len();
    let losses: Vec<f64> = student
        .chunks(cols)
        .zip(teacher.chunks(cols))
        .map(|(z, t)| z.iter().zip(t).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / cols as f64)
        .collect();
    let hard = student
        .chunks(cols)
        .zip(labels)
        .map(|(z, &y)| -log_softmax_f64(z, 1.0)[(y as usize).min(cols - 1)])
        .collect();
    let grad = student
        .iter()
        .zip(teacher)
        .map(|(z, t)| 2.0 * (z - t) / (cols * rows) as f64)
        .collect();
    ExactLoss {
        soft: losses.clone(),
        losses,
        hard,
        grad,
    }
}
