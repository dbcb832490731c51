//! CPU references of the loss kernels. Slices are row-major `[rows, cols]`.
//!
//! The f32 functions follow the kernels' formulas (max-shifted sums, centred cross term);
//! the f64 functions are the textbook definitions through explicit log-softmaxes, used by
//! the tests as ground truth and for finite-difference gradient checks.

/// Gradient and batch statistics of one loss evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct LossOutput {
    /// `d(mean loss)/dz`, `[rows, cols]`.
    pub grad: Vec<f32>,
    /// Sum of the per-example losses.
    pub loss_sum: f32,
    /// Examples with `argmax z == label` (labels `>= cols` never count).
    pub correct: u32,
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = j;
        }
    }
    best
}

/// Distillation loss (f32, as the fused kernel computes it). `teacher: None` uses the student
/// in its place (the soft term is then only meaningful with `alpha == 0`).
pub fn distill_loss(
    student: &[f32],
    teacher: Option<&[f32]>,
    labels: &[u32],
    cols: usize,
    temperature: f32,
    alpha: f32,
) -> LossOutput {
    let teacher = teacher.unwrap_or(student);
    let rows = labels.len();
    let inv_t = 1.0 / temperature;
    let inv_batch = 1.0 / rows as f32;
    let mut grad = vec![0.0; rows * cols];
    let mut loss_sum = 0.0;
    let mut correct = 0;
    for r in 0..rows {
        let z = &student[r * cols..(r + 1) * cols];
        let t = &teacher[r * cols..(r + 1) * cols];
        let best = argmax(z);
        let max_z = z[best];
        let max_t = t.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum_soft: f32 = z.iter().map(|v| ((v - max_z) * inv_t).exp()).sum();
        let sum_hard: f32 = z.iter().map(|v| (v - max_z).exp()).sum();
        let weights: Vec<f32> = t.iter().map(|v| ((v - max_t) * inv_t).exp()).collect();
        let sum_teacher: f32 = weights.iter().sum();
        let cross: f32 = weights
            .iter()
            .zip(z)
            .map(|(w, v)| w * (v - max_z) * inv_t)
            .sum();
        let label = (labels[r] as usize).min(cols - 1);
        let soft_ce = sum_soft.ln() - cross / sum_teacher;
        let hard_ce = sum_hard.ln() - (z[label] - max_z);
        loss_sum += alpha * temperature * temperature * soft_ce + (1.0 - alpha) * hard_ce;
        if labels[r] as usize == best {
            correct += 1;
        }
        for j in 0..cols {
            let shift = z[j] - max_z;
            let q = (shift * inv_t).exp() / sum_soft;
            let p = weights[j] / sum_teacher;
            let q1 = shift.exp() / sum_hard;
            let target = if j == label { 1.0 } else { 0.0 };
            grad[r * cols + j] =
                (alpha * temperature * (q - p) + (1.0 - alpha) * (q1 - target)) * inv_batch;
        }
    }
    LossOutput {
        grad,
        loss_sum,
        correct,
    }
}

/// Logit matching (f32): per example `mean_j (z_j - t_j)^2`, grad `2 (z - t) / (C * B)`.
pub fn logit_mse(student: &[f32], teacher: &[f32], labels: &[u32], cols: usize) -> LossOutput {
    let rows = labels.len();
    let scale = 2.0 / (cols as f32 * rows as f32);
    let grad = student
        .iter()
        .zip(teacher)
        .map(|(z, t)| scale * (z - t))
        .collect();
    let mut loss_sum = 0.0;
    let mut correct = 0;
    for r in 0..rows {
        let z = &student[r * cols..(r + 1) * cols];
        let t = &teacher[r * cols..(r + 1) * cols];
        let squares: f32 = z.iter().zip(t).map(|(a, b)| (a - b) * (a - b)).sum();
        loss_sum += squares / cols as f32;
        if labels[r] as usize == argmax(z) {
            correct += 1;
        }
    }
    LossOutput {
        grad,
        loss_sum,
        correct,
    }
}

fn log_softmax_f64(x: &[f64], temperature: f64) -> Vec<f64> {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = x
        .iter()
        .map(|v| ((v - max) / temperature).exp())
        .sum::<f64>()
        .ln();
    x.iter()
        .map(|v| (v - max) / temperature - log_sum)
        .collect()
}

/// Distillation loss in f64 from the definitions: returns (per-example losses, grad of the
/// batch-mean loss). Labels are clamped to `cols - 1` like the kernels.
pub fn distill_loss_f64(
    student: &[f64],
    teacher: Option<&[f64]>,
    labels: &[u32],
    cols: usize,
    temperature: f64,
    alpha: f64,
) -> (Vec<f64>, Vec<f64>) {
    let teacher = teacher.unwrap_or(student);
    let rows = labels.len();
    let mut losses = Vec::with_capacity(rows);
    let mut grad = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let z = &student[r * cols..(r + 1) * cols];
        let log_q = log_softmax_f64(z, temperature);
        let log_p = log_softmax_f64(&teacher[r * cols..(r + 1) * cols], temperature);
        let log_q1 = log_softmax_f64(z, 1.0);
        let label = (labels[r] as usize).min(cols - 1);
        let soft_ce: f64 = -log_p
            .iter()
            .zip(&log_q)
            .map(|(lp, lq)| lp.exp() * lq)
            .sum::<f64>();
        let hard_ce = -log_q1[label];
        losses.push(alpha * temperature * temperature * soft_ce + (1.0 - alpha) * hard_ce);
        for j in 0..cols {
            let target = if j == label { 1.0 } else { 0.0 };
            grad.push(
                (alpha * temperature * (log_q[j].exp() - log_p[j].exp())
                    + (1.0 - alpha) * (log_q1[j].exp() - target))
                    / rows as f64,
            );
        }
    }
    (losses, grad)
}

/// Logit matching in f64: (per-example losses, grad of the batch-mean loss).
pub fn logit_mse_f64(student: &[f64], teacher: &[f64], cols: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = student.len() / cols;
    let losses = student
        .chunks(cols)
        .zip(teacher.chunks(cols))
        .map(|(z, t)| z.iter().zip(t).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / cols as f64)
        .collect();
    let grad = student
        .iter()
        .zip(teacher)
        .map(|(z, t)| 2.0 * (z - t) / (cols * rows) as f64)
        .collect();
    (losses, grad)
}
