//! Launchers of logit matching (Ba & Caruana 2014): mean squared error between logits.

use super::{LOGIT_MSE_SHADER, WG, check_operands};
use crate::context::GpuContext;
use crate::error::Result;
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::ops::softmax::{check_row_threads, default_row_threads};
use crate::tensor::Tensor;

const OP: &str = "logit_mse";

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MseParams {
    rows: u32,
    cols: u32,
    pad: [u32; 2],
}

/// Prepare logit matching: per example `mean_j (z_j - t_j)^2`, `grad = 2 (z - t) / (C * B)`
/// (f32 `[B, C]`), and loss sum, correct count (`argmax z == y`) and `B` added into `stats`.
pub fn prepare_logit_mse(
    ctx: &GpuContext,
    student: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    grad: &Tensor,
    stats: &Tensor,
) -> Result<Dispatch> {
    let cols = student.shape().last().copied().unwrap_or(1);
    let threads = default_row_threads(ctx, cols);
    prepare_logit_mse_with(ctx, student, teacher, labels, grad, stats, threads)
}

/// [`prepare_logit_mse`] with an explicit number of invocations per row (power of two <= 64).
pub fn prepare_logit_mse_with(
    ctx: &GpuContext,
    student: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    grad: &Tensor,
    stats: &Tensor,
    threads_per_row: u32,
) -> Result<Dispatch> {
    let (rows, cols) = check_operands(OP, student, Some(teacher), labels, grad, stats)?;
    check_row_threads(OP, threads_per_row)?;
    let params = MseParams {
        rows: rows as u32,
        cols: cols as u32,
        pad: [0; 2],
    };
    let constants = [
        ("WG", f64::from(WG)),
        ("ROW_THREADS", f64::from(threads_per_row)),
    ];
    Ok(Dispatch::new(
        ctx,
        &LOGIT_MSE_SHADER,
        "logit_mse",
        &constants,
        &[
            (0, Binding::Tensor(student)),
            (1, Binding::Tensor(teacher)),
            (2, Binding::Tensor(labels)),
            (3, Binding::Tensor(grad)),
            (4, Binding::Tensor(stats)),
        ],
        Some((5, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(rows, (WG / threads_per_row) as usize)),
    ))
}
