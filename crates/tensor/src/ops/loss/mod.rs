//! Training losses with their gradients and on-GPU batch statistics:
//! knowledge distillation (shaders/distill_loss.wgsl) and logit matching
//! (shaders/logit_mse.wgsl).
//!
//! Each loss kernel writes `dL/dz` of the batch-mean loss and adds the batch's loss sum,
//! correct-prediction count and example count into a small stats tensor
//! ([`new_loss_stats`]), which accumulates across dispatches until [`reset_loss_stats`], so
//! a training loop reads it back only every N steps ([`read_loss_stats`]). Beside the
//! objective it adds the two terms as people read them ([`LossStats::hard_sum`],
//! [`LossStats::soft_sum`]): the plain cross-entropy of the true label, and the
//! distance to the teacher (KL divergence at the temperature, or the logit MSE).
//!
//! Labels `>= classes` are clamped to `classes - 1` for the hard-label term (a data error
//! must not read out of bounds) and never count as correct predictions.

mod distill;
mod logit_mse;

pub mod cpu;
#[cfg(test)]
mod tests;

pub use distill::{prepare_distill_loss, prepare_distill_loss_unfused, prepare_distill_loss_with};
pub use logit_mse::{prepare_logit_mse, prepare_logit_mse_with};

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument, shape_error};
use crate::ops::softmax::logits_dims;
use crate::tensor::{DType, Tensor};

pub const DISTILL_SHADER: ShaderSource = ShaderSource {
    name: "distill_loss",
    wgsl: include_str!("../../../../../shaders/distill_loss.wgsl"),
};

pub const LOGIT_MSE_SHADER: ShaderSource = ShaderSource {
    name: "logit_mse",
    wgsl: include_str!("../../../../../shaders/logit_mse.wgsl"),
};

/// Workgroup size of the loss kernels.
const WG: u32 = 64;

/// Settings of the distillation loss
/// `alpha * T^2 * CE(softmax(t/T), softmax(z/T)) + (1 - alpha) * CE(h, softmax(z))` with the
/// hard target `h = (1 - label_smoothing) * onehot(y) + label_smoothing / C`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistillLossParams {
    /// Softening temperature `T`: finite and > 0.
    pub temperature: f32,
    /// Weight of the soft-target term, in `[0, 1]`; 0 = hard labels only.
    pub alpha: f32,
    /// Label smoothing `eps` of the hard target, in `[0, 1)`; 0 = one-hot.
    pub label_smoothing: f32,
}

impl DistillLossParams {
    /// Hard labels only (`T = 1`, `alpha = 0`), one-hot targets.
    pub const HARD_LABELS: Self = Self {
        temperature: 1.0,
        alpha: 0.0,
        label_smoothing: 0.0,
    };

    /// Distillation at temperature `temperature` with soft-term weight `alpha`, one-hot hard
    /// targets.
    pub fn distill(temperature: f32, alpha: f32) -> Self {
        Self {
            temperature,
            alpha,
            label_smoothing: 0.0,
        }
    }

    /// These settings with label smoothing `label_smoothing`.
    pub fn with_label_smoothing(self, label_smoothing: f32) -> Self {
        Self {
            label_smoothing,
            ..self
        }
    }
}

impl Default for DistillLossParams {
    fn default() -> Self {
        Self::HARD_LABELS
    }
}

/// Words of the stats tensor: the loss, hard-label and soft-term sums as 64-bit fixed point
/// in two words each (lo, hi), the correct count, the example count and the overflow flags:
/// `[loss lo, loss hi, hard lo, hard hi, soft lo, soft hi, correct, count, flags]`.
///
/// Sum `k` (0 loss, 1 hard, 2 soft) is `(hi * 2^32 + lo) / 2^LOSS_SUM_FRACTION_BITS`. The
/// kernels round each example's f32 value to the nearest multiple of `2^-16` (ties to even;
/// [`cpu::fixed_point`] is the reference) and add it with integer atomics, so the sums are
/// exact and the same inputs give the same words on every run. Bit `k` of the flag word is
/// set when an example's value was not finite, below `-2^-10` or above
/// [`LOSS_EXAMPLE_LIMIT`] (it is then left out), or the sum passed `2^48`;
/// [`read_loss_stats`] reports such a sum as infinite.
pub const LOSS_STATS_WORDS: usize = 9;

/// Fraction bits of the fixed-point loss sums (see [`LOSS_STATS_WORDS`]; the shaders'
/// `SUM_FRACTION_BITS`).
pub const LOSS_SUM_FRACTION_BITS: i32 = 16;

/// Largest value one example may add to a loss sum (`2^24`); a larger one sets the sum's
/// overflow flag (see [`LOSS_STATS_WORDS`]; the shaders' `ROW_LIMIT_BITS`).
pub const LOSS_EXAMPLE_LIMIT: f32 = 16_777_216.0;

/// Index of the flag word in the stats tensor.
const FLAGS_WORD: usize = 8;
/// Indices of the correct and example counts in the stats tensor.
const CORRECT_WORD: usize = 6;
const COUNT_WORD: usize = 7;

/// A zeroed stats tensor: U32 `[LOSS_STATS_WORDS]` (see [`LOSS_STATS_WORDS`] for the words).
pub fn new_loss_stats(ctx: &GpuContext) -> Result<Tensor> {
    Tensor::zeros(ctx, &[LOSS_STATS_WORDS], DType::U32)
}

/// Record clearing `stats` to zero into `encoder`.
pub fn reset_loss_stats(encoder: &mut wgpu::CommandEncoder, stats: &Tensor) {
    encoder.clear_buffer(stats.buffer(), 0, None);
}

/// Statistics accumulated on the GPU since the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossStats {
    /// Sum of the per-example losses: the objective being minimised (each example's value
    /// computed in f32 and rounded to a multiple of `2^-16`, then summed exactly; infinite
    /// when an example's value was not finite or too large, see [`LOSS_STATS_WORDS`]).
    pub loss_sum: f64,
    /// Examples whose student argmax equals the label.
    pub correct: u32,
    /// Examples seen.
    pub count: u32,
    /// Sum of the plain hard-label cross-entropies `-log softmax(z)_y` (at T = 1, without
    /// label smoothing or weights), whatever the objective. Summed like `loss_sum`.
    pub hard_sum: f64,
    /// Sum of the soft terms without weights: `KL(softmax(t/T) || softmax(z/T))` for
    /// distillation (0 when the student matches the teacher; 0 without a teacher), the
    /// per-example logit MSE for logit matching. Summed like `loss_sum`.
    pub soft_sum: f64,
}

impl LossStats {
    /// Mean loss per example (0 when nothing was counted).
    pub fn mean_loss(&self) -> f64 {
        self.per_example(self.loss_sum)
    }

    /// Mean hard-label cross-entropy per example (0 when nothing was counted).
    pub fn mean_hard_loss(&self) -> f64 {
        self.per_example(self.hard_sum)
    }

    /// Mean soft term (KL divergence or logit MSE) per example (0 when nothing was counted).
    pub fn mean_soft_loss(&self) -> f64 {
        self.per_example(self.soft_sum)
    }

    fn per_example(&self, sum: f64) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            sum / f64::from(self.count)
        }
    }

    /// Fraction of examples predicted correctly (0 when nothing was counted).
    pub fn accuracy(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            f64::from(self.correct) / f64::from(self.count)
        }
    }
}

/// Read the stats back (blocks until the GPU is done).
pub fn read_loss_stats(ctx: &GpuContext, stats: &Tensor) -> Result<LossStats> {
    check_stats("read_loss_stats", stats)?;
    let words = stats.to_u32(ctx)?;
    let sum = |k: usize| {
        if words[FLAGS_WORD] & (1 << k) != 0 {
            f64::INFINITY
        } else {
            fixed_point_value(words[2 * k], words[2 * k + 1])
        }
    };
    Ok(LossStats {
        loss_sum: sum(0),
        correct: words[CORRECT_WORD],
        count: words[COUNT_WORD],
        hard_sum: sum(1),
        soft_sum: sum(2),
    })
}

/// The value of a fixed-point loss sum held in the words `lo`, `hi` (see
/// [`LOSS_STATS_WORDS`]): `(hi * 2^32 + lo) / 2^16`, exact in f64 below `2^37`.
pub fn fixed_point_value(lo: u32, hi: u32) -> f64 {
    let total = (u64::from(hi) << 32) | u64::from(lo);
    total as f64 / f64::from(1u32 << LOSS_SUM_FRACTION_BITS)
}

fn check_stats(op: &'static str, stats: &Tensor) -> Result<()> {
    stats.expect_dtype(op, DType::U32)?;
    if stats.shape() != [LOSS_STATS_WORDS] {
        return Err(shape_error(
            op,
            format!(
                "stats must be U32 [{LOSS_STATS_WORDS}] (see new_loss_stats), got {:?}",
                stats.shape()
            ),
        ));
    }
    Ok(())
}

/// Validate the operands shared by the loss kernels; returns `(rows, cols)`.
fn check_operands(
    op: &'static str,
    student: &Tensor,
    teacher: Option<&Tensor>,
    labels: &Tensor,
    grad: &Tensor,
    stats: &Tensor,
) -> Result<(usize, usize)> {
    let (rows, cols) = logits_dims(op, "student logits", student)?;
    if let Some(teacher) = teacher {
        check_like_student(op, student, teacher, "teacher logits are")?;
    }
    labels.expect_dtype(op, DType::U32)?;
    if labels.shape() != [rows] {
        return Err(shape_error(
            op,
            format!(
                "student logits are {:?} so labels must be [{rows}], got {:?}",
                student.shape(),
                labels.shape()
            ),
        ));
    }
    check_like_student(op, student, grad, "grad is")?;
    check_stats(op, stats)?;
    check_outputs_unshared(op, [Some(student), teacher, Some(labels)], grad, stats)?;
    if rows > u32::MAX as usize || rows * cols > u32::MAX as usize {
        return Err(shape_error(
            op,
            format!("student logits {:?} exceed u32 indexing", student.shape()),
        ));
    }
    Ok((rows, cols))
}

/// `other` must be F32 of the student's shape; `described` names it with its verb
/// ("grad is").
fn check_like_student(
    op: &'static str,
    student: &Tensor,
    other: &Tensor,
    described: &str,
) -> Result<()> {
    other.expect_dtype(op, DType::F32)?;
    if other.shape() != student.shape() {
        return Err(shape_error(
            op,
            format!(
                "student logits are {:?} but {described} {:?} (must match)",
                student.shape(),
                other.shape()
            ),
        ));
    }
    Ok(())
}

/// Writable bindings must not alias any other binding of the dispatch.
fn check_outputs_unshared(
    op: &'static str,
    inputs: [Option<&Tensor>; 3],
    grad: &Tensor,
    stats: &Tensor,
) -> Result<()> {
    for (name, written) in [("grad", grad), ("stats", stats)] {
        if inputs.iter().flatten().any(|t| t.same_buffer(written)) || grad.same_buffer(stats) {
            return Err(invalid_argument(
                op,
                format!("{name} must be its own buffer, not shared with another operand"),
            ));
        }
    }
    Ok(())
}
