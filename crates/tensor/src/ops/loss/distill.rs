//! Launchers of the distillation loss: the fused kernel and the same loss from simple kernels.

use super::{DISTILL_SHADER, DistillLossParams, WG, check_operands};
use crate::context::GpuContext;
use crate::error::{Result, invalid_argument};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::ops::softmax::{
    check_row_threads, check_temperature, default_row_threads, prepare_argmax, prepare_log_softmax,
};
use crate::tensor::{DType, Tensor};

const OP: &str = "distill_loss";

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DistillParams {
    rows: u32,
    cols: u32,
    temperature: f32,
    alpha: f32,
    label_smoothing: f32,
    pad: [u32; 3],
}

impl DistillParams {
    fn new(rows: usize, cols: usize, p: DistillLossParams) -> Self {
        // check_operands has bounded rows and rows * cols by u32::MAX.
        Self {
            rows: rows as u32,
            cols: cols as u32,
            temperature: p.temperature,
            alpha: p.alpha,
            label_smoothing: p.label_smoothing,
            pad: [0; 3],
        }
    }
}

fn check_params(teacher: Option<&Tensor>, p: DistillLossParams) -> Result<()> {
    check_temperature(OP, p.temperature)?;
    if !(0.0..=1.0).contains(&p.alpha) {
        return Err(invalid_argument(
            OP,
            format!("alpha must be in [0, 1], got {}", p.alpha),
        ));
    }
    if !(0.0..1.0).contains(&p.label_smoothing) {
        return Err(invalid_argument(
            OP,
            format!(
                "label_smoothing must be in [0, 1), got {}",
                p.label_smoothing
            ),
        ));
    }
    if teacher.is_none() && p.alpha != 0.0 {
        return Err(invalid_argument(
            OP,
            format!(
                "alpha is {} but no teacher logits were given (hard labels only need alpha = 0)",
                p.alpha
            ),
        ));
    }
    Ok(())
}

/// Prepare the fused distillation loss: one kernel reads student logits `z` and teacher
/// logits `t` (f32 `[B, C]`) and labels (U32 `[B]`), writes `grad = dL/dz` of the batch-mean
/// loss (f32 `[B, C]`) and adds the loss sum, correct count, `B`, the hard-label NLL sum and
/// the KL sum into `stats` (see [`LossStats`](super::LossStats)).
///
/// Per example: `alpha * T^2 * CE(softmax(t/T), softmax(z/T)) + (1 - alpha) * CE(h, softmax(z))`,
/// `h = (1 - eps) * onehot(y) + eps / C` with `eps = p.label_smoothing`.
/// The soft term is a cross-entropy, so the loss value includes the teacher's entropy
/// `H(softmax(t/T))` (constant for the student; the gradient equals that of the KL divergence);
/// the stats' soft sum is the KL divergence itself.
/// `teacher: None` means hard labels only and requires `alpha == 0`.
pub fn prepare_distill_loss(
    ctx: &GpuContext,
    student: &Tensor,
    teacher: Option<&Tensor>,
    labels: &Tensor,
    grad: &Tensor,
    stats: &Tensor,
    p: DistillLossParams,
) -> Result<Dispatch> {
    let cols = student.shape().last().copied().unwrap_or(1);
    let threads = default_row_threads(ctx, cols);
    prepare_distill_loss_with(ctx, student, teacher, labels, grad, stats, p, threads)
}

/// [`prepare_distill_loss`] with an explicit number of invocations per row (power of two <= 64).
#[allow(clippy::too_many_arguments)]
pub fn prepare_distill_loss_with(
    ctx: &GpuContext,
    student: &Tensor,
    teacher: Option<&Tensor>,
    labels: &Tensor,
    grad: &Tensor,
    stats: &Tensor,
    p: DistillLossParams,
    threads_per_row: u32,
) -> Result<Dispatch> {
    let (rows, cols) = check_operands(OP, student, teacher, labels, grad, stats)?;
    check_params(teacher, p)?;
    check_row_threads(OP, threads_per_row)?;
    let params = DistillParams::new(rows, cols, p);
    let constants = [
        ("WG", f64::from(WG)),
        ("ROW_THREADS", f64::from(threads_per_row)),
        ("HAS_TEACHER", if teacher.is_some() { 1.0 } else { 0.0 }),
    ];
    Ok(Dispatch::new(
        ctx,
        &DISTILL_SHADER,
        "distill_loss",
        &constants,
        &[
            (0, Binding::Tensor(student)),
            (1, Binding::Tensor(teacher.unwrap_or(student))),
            (2, Binding::Tensor(labels)),
            (3, Binding::Tensor(grad)),
            (4, Binding::Tensor(stats)),
        ],
        Some((5, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(rows, (WG / threads_per_row) as usize)),
    ))
}

/// The same loss, gradient and stats as [`prepare_distill_loss`], composed of simple kernels
/// (for comparing fused against unfused): log-softmax of `z/T`, `t/T` and `z`, argmax of `z`,
/// an elementwise gradient/loss-term kernel, then a per-row reduction into the stats (which
/// also forms the hard-label NLL and the KL divergence).
/// Allocates its scratch tensors (4 x `[B, C]` f32 and `[B]` u32); the dispatches keep them
/// alive. Record the returned dispatches in order (e.g. with `record_all`).
pub fn prepare_distill_loss_unfused(
    ctx: &GpuContext,
    student: &Tensor,
    teacher: Option<&Tensor>,
    labels: &Tensor,
    grad: &Tensor,
    stats: &Tensor,
    p: DistillLossParams,
) -> Result<Vec<Dispatch>> {
    let (rows, cols) = check_operands(OP, student, teacher, labels, grad, stats)?;
    check_params(teacher, p)?;
    let (scratch, mut dispatches) =
        UnfusedScratch::prepare(ctx, student, teacher, [rows, cols], p.temperature)?;
    let params = DistillParams::new(rows, cols, p);
    dispatches.push(scratch.terms(ctx, labels, grad, &params));
    dispatches.push(scratch.stats(ctx, labels, stats, &params));
    Ok(dispatches)
}

/// Intermediates of the unfused loss, `[B, C]` f32 unless noted.
struct UnfusedScratch {
    rows: usize,
    cols: usize,
    /// `log softmax(z / T)`.
    log_q: Tensor,
    /// `log softmax(t / T)`; without a teacher alpha is 0 and the soft term vanishes, so
    /// this is `log_q` again.
    log_p: Tensor,
    /// `log softmax(z)`.
    log_q1: Tensor,
    /// Each element's loss term, summed per row by the stats kernel.
    row_loss: Tensor,
    /// `argmax z`, U32 `[B]`.
    argmax: Tensor,
}

impl UnfusedScratch {
    /// Allocates the intermediates and prepares the kernels that fill the log-softmaxes and
    /// the argmax.
    fn prepare(
        ctx: &GpuContext,
        student: &Tensor,
        teacher: Option<&Tensor>,
        [rows, cols]: [usize; 2],
        temperature: f32,
    ) -> Result<(Self, Vec<Dispatch>)> {
        let scratch = || Tensor::zeros(ctx, &[rows, cols], DType::F32);
        let log_q = scratch()?;
        let log_q1 = scratch()?;
        let row_loss = scratch()?;
        let argmax = Tensor::zeros(ctx, &[rows], DType::U32)?;
        let mut dispatches = vec![
            prepare_log_softmax(ctx, student, &log_q, temperature)?,
            prepare_log_softmax(ctx, student, &log_q1, 1.0)?,
            prepare_argmax(ctx, student, &argmax)?,
        ];
        let log_p = match teacher {
            Some(teacher) => {
                let log_p = scratch()?;
                dispatches.push(prepare_log_softmax(ctx, teacher, &log_p, temperature)?);
                log_p
            }
            None => log_q.clone(),
        };
        let scratch = Self {
            rows,
            cols,
            log_q,
            log_p,
            log_q1,
            row_loss,
            argmax,
        };
        Ok((scratch, dispatches))
    }

    /// The elementwise kernel: the gradient and each element's loss term.
    fn terms(
        &self,
        ctx: &GpuContext,
        labels: &Tensor,
        grad: &Tensor,
        params: &DistillParams,
    ) -> Dispatch {
        let invocations = self.rows * self.cols;
        self.dispatch(
            ctx,
            "distill_terms",
            labels,
            &[(3, grad)],
            params,
            invocations,
        )
    }

    /// The per-row reduction of the loss terms into `stats`.
    fn stats(
        &self,
        ctx: &GpuContext,
        labels: &Tensor,
        stats: &Tensor,
        params: &DistillParams,
    ) -> Dispatch {
        let own = [(4, stats), (8, &self.argmax)];
        self.dispatch(ctx, "distill_stats", labels, &own, params, self.rows)
    }

    /// One of the two kernels: both bind the log-softmaxes, the labels and the loss terms,
    /// and each its own tensors (`(binding, tensor)`); one invocation each of `invocations`.
    fn dispatch(
        &self,
        ctx: &GpuContext,
        entry: &'static str,
        labels: &Tensor,
        own: &[(u32, &Tensor)],
        params: &DistillParams,
        invocations: usize,
    ) -> Dispatch {
        let mut bindings = vec![
            (0, Binding::Tensor(&self.log_q)),
            (1, Binding::Tensor(&self.log_p)),
            (2, Binding::Tensor(labels)),
            (6, Binding::Tensor(&self.log_q1)),
            (7, Binding::Tensor(&self.row_loss)),
        ];
        bindings.extend(own.iter().map(|&(at, t)| (at, Binding::Tensor(t))));
        Dispatch::new(
            ctx,
            &DISTILL_SHADER,
            entry,
            &[("WG", f64::from(WG))],
            &bindings,
            Some((5, bytemuck::bytes_of(params))),
            grid_1d(groups_for(invocations, WG as usize)),
        )
    }
}
