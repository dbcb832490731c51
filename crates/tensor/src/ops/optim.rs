//! Optimizers fused per parameter tensor, and the max-norm weight constraint
//! (shaders/optim.wgsl).
//!
//! One [`OptimDispatch`] updates one parameter and its state from its gradient in a single
//! launch. The step counter and learning rate live in the uniform block and are rewritten on
//! the CPU with [`OptimDispatch::set_step`] before each submission, so learning-rate schedules
//! and Adam's bias corrections (`1 - beta^t`, computed here in f64) cost no kernel work.

use std::ops::Deref;

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument, shape_error};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::tensor::{DType, Tensor};

pub const SHADER: ShaderSource = ShaderSource {
    name: "optim",
    wgsl: include_str!("../../../../shaders/optim.wgsl"),
};

const WG: usize = 256;
/// Threads per row of the max-norm kernel; rows are a few hundred to a few thousand wide.
const NORM_WG: u32 = 64;

/// Settings of SGD. `momentum = 0` is plain SGD; `weight_decay` is L2, added to the gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdParams {
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
}

impl Default for SgdParams {
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// Settings of Adam (`decoupled = false`, weight decay added to the gradient) and AdamW
/// (`decoupled = true`, `p -= lr * weight_decay * p` beside the Adam step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdUniform {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamUniform {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    inv_bias_correction1: f32,
    inv_bias_correction2: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct MaxNormUniform {
    rows: u32,
    cols: u32,
    max_norm: f32,
}

#[derive(Debug)]
enum Rule {
    Sgd(SgdUniform),
    Adam(AdamUniform),
}

/// A prepared optimizer update of one parameter tensor. Derefs to its [`Dispatch`].
#[derive(Debug)]
pub struct OptimDispatch {
    dispatch: Dispatch,
    rule: Rule,
}

impl OptimDispatch {
    /// Set the 1-based step `t` (Adam's bias corrections `1 - beta^t`; SGD ignores it) and the
    /// learning rate for the next submission.
    ///
    /// # Panics
    /// When `step` is 0 or `lr` is negative or not finite; [`Self::try_set_step`] returns
    /// the error instead.
    pub fn set_step(&self, ctx: &GpuContext, step: u32, lr: f32) {
        if let Err(e) = self.try_set_step(ctx, step, lr) {
            panic!("{e}");
        }
    }

    /// [`Self::set_step`] that reports a bad step or learning rate as an error.
    pub fn try_set_step(&self, ctx: &GpuContext, step: u32, lr: f32) -> Result<()> {
        if step == 0 {
            return Err(invalid_argument(
                "OptimDispatch::set_step",
                "step is 1-based (the first update is step 1), got 0",
            ));
        }
        check_lr("OptimDispatch::set_step", lr)?;
        match self.rule {
            Rule::Sgd(base) => {
                let uniform = SgdUniform { lr, ..base };
                self.dispatch
                    .update_params(ctx, bytemuck::bytes_of(&uniform));
            }
            Rule::Adam(base) => {
                let uniform = adam_uniform_at(base, step, lr);
                self.dispatch
                    .update_params(ctx, bytemuck::bytes_of(&uniform));
            }
        }
        Ok(())
    }

    /// The prepared launch.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }
}

impl Deref for OptimDispatch {
    type Target = Dispatch;
    fn deref(&self) -> &Dispatch {
        &self.dispatch
    }
}

/// The uniform block for step `step` (1-based) with learning rate `lr`.
fn adam_uniform_at(base: AdamUniform, step: u32, lr: f32) -> AdamUniform {
    let t = step as i32; // beta^t underflows to 0 long before t leaves i32
    let correction1 = 1.0 - f64::from(base.beta1).powi(t);
    let correction2 = 1.0 - f64::from(base.beta2).powi(t);
    AdamUniform {
        lr,
        inv_bias_correction1: (1.0 / correction1) as f32,
        inv_bias_correction2: (1.0 / correction2) as f32,
        ..base
    }
}

fn check_lr(op: &'static str, lr: f32) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(invalid_argument(
            op,
            format!("learning rate lr must be finite and >= 0, got {lr}"),
        ));
    }
    Ok(())
}

fn check_unit_interval(op: &'static str, name: &str, value: f32) -> Result<()> {
    if !(0.0..1.0).contains(&value) {
        return Err(invalid_argument(
            op,
            format!("{name} must be in [0, 1), got {value}"),
        ));
    }
    Ok(())
}

fn check_weight_decay(op: &'static str, weight_decay: f32) -> Result<()> {
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(invalid_argument(
            op,
            format!("weight_decay must be finite and >= 0, got {weight_decay}"),
        ));
    }
    Ok(())
}

/// Every tensor is f32, has the parameter's shape, and owns its buffer (a writable binding may
/// not alias another binding of the same launch).
fn check_tensors(op: &'static str, param: &Tensor, others: &[(&str, &Tensor)]) -> Result<()> {
    param.expect_dtype(op, DType::F32)?;
    for (name, t) in others {
        t.expect_dtype(op, DType::F32)?;
        if t.shape() != param.shape() {
            return Err(shape_error(
                op,
                format!(
                    "param is {:?} but {name} is {:?} (they must match)",
                    param.shape(),
                    t.shape()
                ),
            ));
        }
    }
    let all: Vec<(&str, &Tensor)> = std::iter::once(("param", param))
        .chain(others.iter().copied())
        .collect();
    for (i, (name_a, a)) in all.iter().enumerate() {
        for (name_b, b) in &all[i + 1..] {
            if a.same_buffer(b) {
                return Err(invalid_argument(
                    op,
                    format!("{name_a} and {name_b} share one buffer; each needs its own"),
                ));
            }
        }
    }
    Ok(())
}

fn element_count(op: &'static str, param: &Tensor) -> Result<u32> {
    u32::try_from(param.len()).map_err(|_| {
        invalid_argument(
            op,
            format!("tensor {:?} has more than 2^32 elements", param.shape()),
        )
    })
}

/// Prepare one SGD step on `param` from `grad`, keeping momentum in `velocity` (zero it before
/// the first step). All three are f32 of one shape. The step uses `p.lr` until
/// [`OptimDispatch::set_step`] changes it.
pub fn prepare_sgd(
    ctx: &GpuContext,
    param: &Tensor,
    grad: &Tensor,
    velocity: &Tensor,
    p: SgdParams,
) -> Result<OptimDispatch> {
    const OP: &str = "sgd";
    check_lr(OP, p.lr)?;
    check_unit_interval(OP, "momentum", p.momentum)?;
    check_weight_decay(OP, p.weight_decay)?;
    if p.nesterov && p.momentum == 0.0 {
        return Err(invalid_argument(
            OP,
            "nesterov needs momentum > 0, got momentum 0",
        ));
    }
    check_tensors(OP, param, &[("grad", grad), ("velocity", velocity)])?;
    let uniform = SgdUniform {
        n: element_count(OP, param)?,
        lr: p.lr,
        momentum: p.momentum,
        weight_decay: p.weight_decay,
    };
    let dispatch = Dispatch::new(
        ctx,
        &SHADER,
        "sgd",
        &[
            ("WG", WG as f64),
            ("NESTEROV", f64::from(u8::from(p.nesterov))),
        ],
        &[
            (0, Binding::Tensor(param)),
            (1, Binding::Tensor(grad)),
            (2, Binding::Tensor(velocity)),
        ],
        Some((3, bytemuck::bytes_of(&uniform))),
        grid_1d(groups_for(param.len(), WG)),
    );
    Ok(OptimDispatch {
        dispatch,
        rule: Rule::Sgd(uniform),
    })
}

/// Prepare one Adam/AdamW step on `param` from `grad`, with moments `m` and `v` (zero them
/// before the first step). All four are f32 of one shape. The dispatch starts at step 1 with
/// `p.lr`; call [`OptimDispatch::set_step`] before every later submission.
pub fn prepare_adam(
    ctx: &GpuContext,
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    p: AdamParams,
) -> Result<OptimDispatch> {
    const OP: &str = "adam";
    check_lr(OP, p.lr)?;
    check_unit_interval(OP, "beta1", p.beta1)?;
    check_unit_interval(OP, "beta2", p.beta2)?;
    if !(p.eps.is_finite() && p.eps > 0.0) {
        return Err(invalid_argument(
            OP,
            format!("eps must be finite and > 0, got {}", p.eps),
        ));
    }
    check_weight_decay(OP, p.weight_decay)?;
    check_tensors(OP, param, &[("grad", grad), ("m", m), ("v", v)])?;
    let base = AdamUniform {
        n: element_count(OP, param)?,
        lr: p.lr,
        beta1: p.beta1,
        beta2: p.beta2,
        eps: p.eps,
        weight_decay: p.weight_decay,
        inv_bias_correction1: 1.0,
        inv_bias_correction2: 1.0,
    };
    let uniform = adam_uniform_at(base, 1, p.lr);
    let dispatch = Dispatch::new(
        ctx,
        &SHADER,
        "adam",
        &[
            ("WG", WG as f64),
            ("DECOUPLED", f64::from(u8::from(p.decoupled))),
        ],
        &[
            (0, Binding::Tensor(param)),
            (1, Binding::Tensor(grad)),
            (2, Binding::Tensor(m)),
            (4, Binding::Tensor(v)),
        ],
        Some((5, bytemuck::bytes_of(&uniform))),
        grid_1d(groups_for(param.len(), WG)),
    );
    Ok(OptimDispatch {
        dispatch,
        rule: Rule::Adam(base),
    })
}

/// Prepare the max-norm constraint: every row of `weight` (viewed as `[shape[0], rest]`, so
/// linear `[out, in]` and conv `[out, in, kh, kw]` weights both constrain each output unit's
/// incoming weights) whose L2 norm exceeds `max_norm` is scaled to norm `max_norm`. Rows within
/// the bound are left untouched.
pub fn prepare_max_norm(ctx: &GpuContext, weight: &Tensor, max_norm: f32) -> Result<Dispatch> {
    const OP: &str = "max_norm";
    weight.expect_dtype(OP, DType::F32)?;
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(invalid_argument(
            OP,
            format!("max_norm must be finite and > 0, got {max_norm}"),
        ));
    }
    let shape = weight.shape();
    if shape.len() < 2 {
        return Err(shape_error(
            OP,
            format!("weight must be [out, in] or [out, in, kh, kw], got {shape:?}"),
        ));
    }
    element_count(OP, weight)?;
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    let uniform = MaxNormUniform {
        rows: rows as u32,
        cols: cols as u32,
        max_norm,
    };
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        "max_norm",
        &[("NORM_WG", f64::from(NORM_WG))],
        &[(0, Binding::Tensor(weight))],
        Some((6, bytemuck::bytes_of(&uniform))),
        grid_1d(groups_for(rows, 1)),
    ))
}

/// CPU references. State is kept in f32 like on the GPU; each update is computed in f64 and
/// rounded once, so the GPU should agree to a few f32 ulps per step.
pub mod cpu {
    use super::{AdamParams, SgdParams};

    /// One SGD step.
    pub fn sgd(param: &mut [f32], grad: &[f32], velocity: &mut [f32], p: SgdParams, lr: f32) {
        let (lr, momentum, wd) = (
            f64::from(lr),
            f64::from(p.momentum),
            f64::from(p.weight_decay),
        );
        for ((w, &g), vel) in param.iter_mut().zip(grad).zip(velocity.iter_mut()) {
            let g = f64::from(g) + wd * f64::from(*w);
            let v = momentum * f64::from(*vel) + g;
            *vel = v as f32;
            let step = if p.nesterov { g + momentum * v } else { v };
            *w = (f64::from(*w) - lr * step) as f32;
        }
    }

    /// One Adam/AdamW step; `step` is 1-based.
    pub fn adam(
        param: &mut [f32],
        grad: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        p: AdamParams,
        step: u32,
        lr: f32,
    ) {
        let (b1, b2) = (f64::from(p.beta1), f64::from(p.beta2));
        let (lr, eps, wd) = (f64::from(lr), f64::from(p.eps), f64::from(p.weight_decay));
        let correction1 = 1.0 - b1.powi(step as i32);
        let correction2 = 1.0 - b2.powi(step as i32);
        for (((w, &g), m), v) in param
            .iter_mut()
            .zip(grad)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            let w64 = f64::from(*w);
            let g = f64::from(g) + if p.decoupled { 0.0 } else { wd * w64 };
            let m_new = b1 * f64::from(*m) + (1.0 - b1) * g;
            let v_new = b2 * f64::from(*v) + (1.0 - b2) * g * g;
            *m = m_new as f32;
            *v = v_new as f32;
            let mut update = (m_new / correction1) / ((v_new / correction2).sqrt() + eps);
            if p.decoupled {
                update += wd * w64;
            }
            *w = (w64 - lr * update) as f32;
        }
    }

    /// Scale every row of `weight` (`rows` rows of `weight.len() / rows`) whose L2 norm
    /// exceeds `max_norm` to norm `max_norm`.
    pub fn max_norm(weight: &mut [f32], rows: usize, max_norm: f32) {
        if rows == 0 {
            return;
        }
        let cols = weight.len() / rows;
        for row in weight.chunks_mut(cols.max(1)) {
            let norm = row
                .iter()
                .map(|&w| f64::from(w) * f64::from(w))
                .sum::<f64>()
                .sqrt();
            if norm > f64::from(max_norm) {
                let scale = f64::from(max_norm) / norm;
                row.iter_mut()
                    .for_each(|w| *w = (f64::from(*w) * scale) as f32);
            }
        }
    }

    /// L2 norm of each row, in f64.
    pub fn row_norms(weight: &[f32], rows: usize) -> Vec<f64> {
        let cols = weight.len() / rows.max(1);
        weight
            .chunks(cols.max(1))
            .map(|row| {
                row.iter()
                    .map(|&w| f64::from(w) * f64::from(w))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, ctx, random_f32};

    const LENGTHS: [usize; 4] = [1, 7, 1000, 1031];
    /// Learning rate of steps 1, 2, 3: a schedule set through `set_step`.
    const LR_SCHEDULE: [f32; 3] = [0.05, 0.03, 0.01];

    fn upload(data: &[f32]) -> Tensor {
        Tensor::from_f32(ctx(), data, &[data.len()]).unwrap()
    }

    fn run_sgd(p: SgdParams) {
        let ctx = ctx();
        for (case, &n) in LENGTHS.iter().enumerate() {
            let seed = 100 * case as u64;
            let mut param = random_f32(n, seed, 1.0);
            let mut velocity = vec![0.0; n];
            let param_gpu = upload(&param);
            let grad_gpu = upload(&vec![0.0; n]);
            let velocity_gpu = upload(&velocity);
            let update = prepare_sgd(ctx, &param_gpu, &grad_gpu, &velocity_gpu, p).unwrap();
            for (step, &lr) in LR_SCHEDULE.iter().enumerate() {
                let grad = random_f32(n, seed + 1 + step as u64, 1.0);
                grad_gpu.write_f32(ctx, &grad).unwrap();
                update.set_step(ctx, step as u32 + 1, lr);
                let mut enc = ctx.encoder();
                update.encode(&mut enc);
                ctx.submit_and_wait(enc);
                cpu::sgd(&mut param, &grad, &mut velocity, p, lr);
            }
            let what = format!("{p:?}, n = {n}, after 3 steps; tolerance 1e-6 + 1e-5 * |cpu|");
            let got_param = param_gpu.to_f32(ctx).unwrap();
            let got_velocity = velocity_gpu.to_f32(ctx).unwrap();
            assert_close(&got_param, &param, 1e-6, 1e-5, &format!("param: {what}"));
            assert_close(
                &got_velocity,
                &velocity,
                1e-6,
                1e-5,
                &format!("velocity: {what}"),
            );
        }
    }

    #[test]
    fn sgd_plain_matches_cpu() {
        run_sgd(SgdParams::default());
    }

    #[test]
    fn sgd_plain_with_weight_decay_matches_cpu() {
        run_sgd(SgdParams {
            weight_decay: 0.1,
            ..SgdParams::default()
        });
    }

    #[test]
    fn sgd_momentum_matches_cpu() {
        run_sgd(SgdParams {
            momentum: 0.9,
            ..SgdParams::default()
        });
    }

    #[test]
    fn sgd_momentum_with_weight_decay_matches_cpu() {
        run_sgd(SgdParams {
            momentum: 0.9,
            weight_decay: 0.05,
            ..SgdParams::default()
        });
    }

    #[test]
    fn sgd_nesterov_matches_cpu() {
        run_sgd(SgdParams {
            momentum: 0.9,
            nesterov: true,
            ..SgdParams::default()
        });
        run_sgd(SgdParams {
            momentum: 0.5,
            nesterov: true,
            weight_decay: 0.1,
            ..SgdParams::default()
        });
    }

    fn run_adam(p: AdamParams) {
        let ctx = ctx();
        for (case, &n) in LENGTHS.iter().enumerate() {
            let seed = 200 * case as u64 + 7;
            let mut param = random_f32(n, seed, 1.0);
            let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
            let param_gpu = upload(&param);
            let grad_gpu = upload(&vec![0.0; n]);
            let (m_gpu, v_gpu) = (upload(&m), upload(&v));
            let update = prepare_adam(ctx, &param_gpu, &grad_gpu, &m_gpu, &v_gpu, p).unwrap();
            for (step, &lr) in LR_SCHEDULE.iter().enumerate() {
                let step = step as u32 + 1;
                let grad = random_f32(n, seed + u64::from(step), 1.0);
                grad_gpu.write_f32(ctx, &grad).unwrap();
                update.set_step(ctx, step, lr);
                let mut enc = ctx.encoder();
                update.encode(&mut enc);
                ctx.submit_and_wait(enc);
                cpu::adam(&mut param, &grad, &mut m, &mut v, p, step, lr);
            }
            let what = format!("{p:?}, n = {n}, after 3 steps");
            let got = |t: &Tensor| t.to_f32(ctx).unwrap();
            assert_close(
                &got(&param_gpu),
                &param,
                1e-6,
                1e-5,
                &format!("param (tolerance 1e-6 + 1e-5 * |cpu|): {what}"),
            );
            assert_close(
                &got(&m_gpu),
                &m,
                1e-7,
                1e-5,
                &format!("m (tolerance 1e-7 + 1e-5 * |cpu|): {what}"),
            );
            assert_close(
                &got(&v_gpu),
                &v,
                1e-9,
                1e-5,
                &format!("v (tolerance 1e-9 + 1e-5 * |cpu|): {what}"),
            );
        }
    }

    #[test]
    fn adam_matches_cpu() {
        run_adam(AdamParams::default());
    }

    #[test]
    fn adam_with_l2_weight_decay_matches_cpu() {
        run_adam(AdamParams {
            weight_decay: 0.1,
            ..AdamParams::default()
        });
    }

    #[test]
    fn adamw_matches_cpu() {
        run_adam(AdamParams {
            weight_decay: 0.1,
            decoupled: true,
            beta1: 0.8,
            beta2: 0.99,
            ..AdamParams::default()
        });
    }

    #[test]
    fn adam_first_step_moves_each_weight_by_lr() {
        // With bias correction, step 1 gives m_hat / sqrt(v_hat) = sign(g): every weight moves
        // by lr (up to eps). Without it the move would be (1 - beta1) / sqrt(1 - beta2) * lr.
        let ctx = ctx();
        let n = 37;
        let start = random_f32(n, 11, 1.0);
        let grad = random_f32(n, 12, 1.0);
        let param_gpu = upload(&start);
        let grad_gpu = upload(&grad);
        let (m_gpu, v_gpu) = (upload(&vec![0.0; n]), upload(&vec![0.0; n]));
        let mut enc = ctx.encoder();
        let p = AdamParams::default();
        let update = prepare_adam(ctx, &param_gpu, &grad_gpu, &m_gpu, &v_gpu, p).unwrap();
        update.set_step(ctx, 1, p.lr);
        update.encode(&mut enc);
        ctx.submit_and_wait(enc);
        let got = param_gpu.to_f32(ctx).unwrap();
        let expected: Vec<f32> = start
            .iter()
            .zip(&grad)
            .map(|(w, g)| w - p.lr * g.signum())
            .collect();
        assert_close(&got, &expected, 1e-6, 0.0, "adam step 1 (tolerance 1e-6)");
    }

    /// Run steps 1, 2, 3 of `update` (its gradient unchanged) at the rates of
    /// [`LR_SCHEDULE`] and return the parameter.
    fn run_three_steps(update: &OptimDispatch, param: &Tensor) -> Vec<f32> {
        let ctx = ctx();
        for (step, &lr) in LR_SCHEDULE.iter().enumerate() {
            update.set_step(ctx, step as u32 + 1, lr);
            let mut enc = ctx.encoder();
            update.encode(&mut enc);
            ctx.submit_and_wait(enc);
        }
        param.to_f32(ctx).unwrap()
    }

    #[test]
    fn adamw_decays_weights_apart_from_the_gradient() {
        // With a zero gradient the Adam step is 0 / (0 + eps) = 0, so AdamW only decays:
        // p_k = p_0 * prod (1 - lr_i * wd), independently of the moments (PyTorch's AdamW).
        // Adam with L2 instead feeds wd * p into the moments and moves each weight by about
        // lr_i (the first step is lr * sign(p)).
        let ctx = ctx();
        let n = 1031;
        let start = random_f32(n, 21, 1.0);
        let wd = 0.1;
        for decoupled in [true, false] {
            let p = AdamParams {
                weight_decay: wd,
                decoupled,
                ..AdamParams::default()
            };
            let param = upload(&start);
            let grad = upload(&vec![0.0; n]);
            let (m, v) = (upload(&vec![0.0; n]), upload(&vec![0.0; n]));
            let update = prepare_adam(ctx, &param, &grad, &m, &v, p).unwrap();
            let got = run_three_steps(&update, &param);
            let factor: f64 = LR_SCHEDULE
                .iter()
                .map(|&lr| 1.0 - f64::from(lr) * f64::from(wd))
                .product();
            for (i, (&g, &w)) in got.iter().zip(&start).enumerate() {
                let decayed = f64::from(w) * factor;
                let err = (f64::from(g) - decayed).abs();
                if decoupled {
                    assert!(
                        err <= 1e-6 * f64::from(w).abs() + 1e-7,
                        "AdamW [{i}]: {g}, expected {w} * {factor} = {decayed} (tol 1e-6 rel)"
                    );
                } else if w.abs() > 0.1 {
                    // L2 through the moments: every step moves sign(p) * ~lr, far more
                    // than the decoupled decay of |p| * lr * wd.
                    let moved = f64::from(w - g) * f64::from(w.signum());
                    assert!(
                        moved > 0.05,
                        "Adam+L2 [{i}]: {w} -> {g} should move towards 0 by about 0.09"
                    );
                }
            }
        }
    }

    #[test]
    fn nesterov_matches_its_closed_form_under_a_constant_gradient() {
        // PyTorch's Nesterov SGD (dampening 0): v_k = mu v_{k-1} + g, p -= lr_k (g + mu v_k).
        // With v_0 = 0 and a constant g: v_k = g (1 - mu^k) / (1 - mu).
        let ctx = ctx();
        let n = 1031;
        let mu = 0.9f64;
        let start = random_f32(n, 31, 1.0);
        let gradient = random_f32(n, 32, 1.0);
        let param = upload(&start);
        let grad = upload(&gradient);
        let velocity = upload(&vec![0.0; n]);
        let p = SgdParams {
            momentum: mu as f32,
            nesterov: true,
            ..SgdParams::default()
        };
        let update = prepare_sgd(ctx, &param, &grad, &velocity, p).unwrap();
        let got = run_three_steps(&update, &param);
        // Sum over steps of lr_k * (1 + mu (1 - mu^k) / (1 - mu)), times g.
        let total: f64 = LR_SCHEDULE
            .iter()
            .enumerate()
            .map(|(k, &lr)| {
                let v = (1.0 - mu.powi(k as i32 + 1)) / (1.0 - mu);
                f64::from(lr) * (1.0 + mu * v)
            })
            .sum();
        let expected: Vec<f32> = start
            .iter()
            .zip(&gradient)
            .map(|(&w, &g)| (f64::from(w) - total * f64::from(g)) as f32)
            .collect();
        assert_close(
            &got,
            &expected,
            1e-6,
            1e-5,
            "Nesterov after 3 steps of a constant gradient (tolerance 1e-6 + 1e-5 * |expected|)",
        );
        let mut cpu_param = start.clone();
        let mut cpu_velocity = vec![0.0; n];
        for &lr in &LR_SCHEDULE {
            cpu::sgd(&mut cpu_param, &gradient, &mut cpu_velocity, p, lr);
        }
        assert_close(
            &cpu_param,
            &expected,
            1e-6,
            1e-5,
            "the CPU reference against the closed form",
        );
    }

    /// Rows scaled to norms alternating below and above `bound`.
    fn rows_around_bound(rows: usize, cols: usize, bound: f32, seed: u64) -> Vec<f32> {
        let mut weight = random_f32(rows * cols, seed, 1.0);
        let norms = cpu::row_norms(&weight, rows);
        let targets = random_f32(rows, seed + 1, 1.0);
        for (r, row) in weight.chunks_mut(cols).enumerate() {
            // below: 0.2..0.9 of the bound; above: 1.2..4 times it
            let unit = (targets[r] + 1.0) / 2.0;
            let factor = if r % 3 == 0 {
                0.2 + 0.7 * unit
            } else {
                1.2 + 2.8 * unit
            };
            let scale = (f64::from(bound * factor) / norms[r].max(1e-30)) as f32;
            row.iter_mut().for_each(|w| *w *= scale);
        }
        weight
    }

    #[test]
    fn max_norm_matches_cpu_and_keeps_rows_within_bound() {
        let ctx = ctx();
        let bound = 1.5;
        for shape in [vec![7, 13], vec![300, 65], vec![5, 3, 3, 3]] {
            let rows = shape[0];
            let cols: usize = shape[1..].iter().product();
            let weight = rows_around_bound(rows, cols, bound, rows as u64);
            let gpu = Tensor::from_f32(ctx, &weight, &shape).unwrap();
            let mut enc = ctx.encoder();
            prepare_max_norm(ctx, &gpu, bound).unwrap().encode(&mut enc);
            ctx.submit_and_wait(enc);
            let got = gpu.to_f32(ctx).unwrap();
            let mut expected = weight.clone();
            cpu::max_norm(&mut expected, rows, bound);
            let before = cpu::row_norms(&weight, rows);
            let after = cpu::row_norms(&got, rows);
            for r in 0..rows {
                let row = r * cols..(r + 1) * cols;
                if before[r] <= f64::from(bound) {
                    assert!(
                        got[row.clone()]
                            .iter()
                            .zip(&weight[row])
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{shape:?} row {r} (norm {}) is within the bound but changed",
                        before[r]
                    );
                } else {
                    let rel = (after[r] / f64::from(bound) - 1.0).abs();
                    assert!(
                        rel < 1e-5,
                        "{shape:?} row {r}: norm {} became {}, expected {bound} (rel tol 1e-5)",
                        before[r],
                        after[r]
                    );
                }
            }
            assert_close(
                &got,
                &expected,
                1e-7,
                1e-5,
                &format!("max_norm {shape:?} (tolerance 1e-7 + 1e-5 * |cpu|)"),
            );
        }
    }

    fn error_of<T: std::fmt::Debug>(result: Result<T>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn bad_shapes_and_settings_are_errors_naming_them() {
        let ctx = ctx();
        let param = upload(&[0.0; 6]).reshape(&[2, 3]).unwrap();
        let same = || Tensor::zeros(ctx, &[2, 3], DType::F32).unwrap();
        let (grad, state, state2) = (same(), same(), same());
        let wrong = Tensor::zeros(ctx, &[3, 2], DType::F32).unwrap();

        let err = error_of(prepare_sgd(
            ctx,
            &param,
            &wrong,
            &state,
            SgdParams::default(),
        ));
        assert!(
            err.contains("[2, 3]") && err.contains("[3, 2]") && err.contains("grad"),
            "{err}"
        );
        let err = error_of(prepare_adam(
            ctx,
            &param,
            &grad,
            &state,
            &wrong,
            AdamParams::default(),
        ));
        assert!(
            err.contains("[2, 3]") && err.contains("[3, 2]") && err.contains("but v is"),
            "{err}"
        );
        let ints = Tensor::zeros(ctx, &[2, 3], DType::U32).unwrap();
        let err = error_of(prepare_sgd(
            ctx,
            &param,
            &ints,
            &state,
            SgdParams::default(),
        ));
        assert!(err.contains("U32"), "{err}");
        let err = error_of(prepare_sgd(
            ctx,
            &param,
            &param,
            &state,
            SgdParams::default(),
        ));
        assert!(err.contains("share one buffer"), "{err}");

        let sgd = |p: SgdParams| error_of(prepare_sgd(ctx, &param, &grad, &state, p));
        let base = SgdParams::default();
        assert!(sgd(SgdParams { lr: -1.0, ..base }).contains("lr"));
        assert!(
            sgd(SgdParams {
                lr: f32::NAN,
                ..base
            })
            .contains("lr")
        );
        assert!(
            sgd(SgdParams {
                momentum: 1.0,
                ..base
            })
            .contains("momentum")
        );
        assert!(
            sgd(SgdParams {
                weight_decay: -0.1,
                ..base
            })
            .contains("weight_decay")
        );
        assert!(
            sgd(SgdParams {
                nesterov: true,
                ..base
            })
            .contains("nesterov")
        );

        let adam = |p: AdamParams| error_of(prepare_adam(ctx, &param, &grad, &state, &state2, p));
        let base = AdamParams::default();
        assert!(adam(AdamParams { beta1: 1.0, ..base }).contains("beta1"));
        assert!(
            adam(AdamParams {
                beta2: -0.5,
                ..base
            })
            .contains("beta2")
        );
        assert!(adam(AdamParams { eps: 0.0, ..base }).contains("eps"));
        assert!(
            adam(AdamParams {
                lr: f32::INFINITY,
                ..base
            })
            .contains("lr")
        );

        let update = prepare_adam(ctx, &param, &grad, &state, &state2, base).unwrap();
        assert!(error_of(update.try_set_step(ctx, 0, 0.1)).contains("step"));
        assert!(error_of(update.try_set_step(ctx, 2, -0.1)).contains("lr"));

        let err = error_of(prepare_max_norm(ctx, &param, 0.0));
        assert!(err.contains("max_norm"), "{err}");
        let err = error_of(prepare_max_norm(ctx, &upload(&[1.0; 4]), 1.0));
        assert!(err.contains("[4]"), "{err}");
    }
}
