//! Training losses with their gradients and on-GPU batch statistics:
//! knowledge distillation (shaders/distill_loss.wgsl) and logit matching
//! (shaders/logit_mse.wgsl).
//!
//! Each loss kernel writes `dL/dz` of the batch-mean loss and adds the batch's loss sum,
//! correct-prediction count and example count into a small stats tensor
//! ([`new_loss_stats`]), which accumulates across dispatches until [`reset_loss_stats`], so
//! a training loop reads it back only every N steps ([`read_loss_stats`]).
//!
//! Labels `>= classes` are clamped to `classes - 1` for the hard-label term (a data error
//! must not read out of bounds) and never count as correct predictions.

mod distill;
mod logit_mse;

pub mod cpu;
#[cfg(test)]
mod tests;

pub use distill::{
    call_distill_loss, prepare_distill_loss, prepare_distill_loss_unfused,
    prepare_distill_loss_with,
};
pub use logit_mse::{call_logit_mse, prepare_logit_mse, prepare_logit_mse_with};

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
/// `alpha * T^2 * CE(softmax(t/T), softmax(z/T)) + (1 - alpha) * CE(onehot(y), softmax(z))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistillLossParams {
    /// Softening temperature `T`: finite and > 0.
    pub temperature: f32,
    /// Weight of the soft-target term, in `[0, 1]`; 0 = hard labels only.
    pub alpha: f32,
}

/// A zeroed stats tensor: U32 `[4]` = f32 bits of the loss sum, correct count, example count, 0.
pub fn new_loss_stats(ctx: &GpuContext) -> Result<Tensor> {
    Tensor::zeros(ctx, &[4], DType::U32)
}

/// Record clearing `stats` to zero into `encoder`.
pub fn reset_loss_stats(encoder: &mut wgpu::CommandEncoder, stats: &Tensor) {
    encoder.clear_buffer(stats.buffer(), 0, None);
}

/// Statistics accumulated on the GPU since the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossStats {
    /// Sum of the per-example losses (accumulated in f32 on the GPU).
    pub loss_sum: f64,
    /// Examples whose student argmax equals the label.
    pub correct: u32,
    /// Examples seen.
    pub count: u32,
}

impl LossStats {
    /// Mean loss per example (0 when nothing was counted).
    pub fn mean_loss(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.loss_sum / f64::from(self.count)
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
    Ok(LossStats {
        loss_sum: f64::from(f32::from_bits(words[0])),
        correct: words[1],
        count: words[2],
    })
}

fn check_stats(op: &'static str, stats: &Tensor) -> Result<()> {
    stats.expect_dtype(op, DType::U32)?;
    if stats.shape() != [4] {
        return Err(shape_error(
            op,
            format!(
                "stats must be U32 [4] (see new_loss_stats), got {:?}",
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
        teacher.expect_dtype(op, DType::F32)?;
        if teacher.shape() != student.shape() {
            return Err(shape_error(
                op,
                format!(
                    "student logits are {:?} but teacher logits are {:?} (must match)",
                    student.shape(),
                    teacher.shape()
                ),
            ));
        }
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
    grad.expect_dtype(op, DType::F32)?;
    if grad.shape() != student.shape() {
        return Err(shape_error(
            op,
            format!(
                "student logits are {:?} but grad is {:?} (must match)",
                student.shape(),
                grad.shape()
            ),
        ));
    }
    check_stats(op, stats)?;
    // Writable bindings must not alias any other binding of the dispatch.
    let inputs = [Some(student), teacher, Some(labels)];
    for (name, written) in [("grad", grad), ("stats", stats)] {
        if inputs.iter().flatten().any(|t| t.same_buffer(written)) || grad.same_buffer(stats) {
            return Err(invalid_argument(
                op,
                format!("{name} must be its own buffer, not shared with another operand"),
            ));
        }
    }
    if rows > u32::MAX as usize || rows * cols > u32::MAX as usize {
        return Err(shape_error(
            op,
            format!("student logits {:?} exceed u32 indexing", student.shape()),
        ));
    }
    Ok((rows, cols))
}
