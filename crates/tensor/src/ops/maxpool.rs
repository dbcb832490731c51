//! maxpool kernels (shaders/maxpool.wgsl): 2-D max pooling forward (recording the argmax of
//! each window) and backward (a gather through the argmax, no atomics), their CPU reference,
//! and tests.
//!
//! Windows are square (`kernel` x `kernel`), unpadded, with one `stride` for both axes. Like
//! PyTorch's default (`ceil_mode=False`) the output size is `(H - kernel) / stride + 1` rounded
//! down: a last window cut by the image edge is dropped, so the trailing rows/columns only it
//! would cover get no gradient. The argmax is the index `iy * W + ix` within the (n, c) plane,
//! as PyTorch's `return_indices=True` gives it.

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument, shape_error};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::tensor::{DType, Tensor};

pub const SHADER: ShaderSource = ShaderSource {
    name: "maxpool",
    wgsl: include_str!("../../../../shaders/maxpool.wgsl"),
};

const WG: usize = 256;

/// The uniform block `PoolParams` of shaders/maxpool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    planes: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    kernel: u32,
    stride: u32,
    _pad: u32,
}

/// Output side of a pooled axis of length `len` (floor mode).
pub fn pooled_len(len: usize, kernel: usize, stride: usize) -> usize {
    (len - kernel) / stride + 1
}

/// Check the input shape and settings; return `[N, C, Ho, Wo]` and the parameter block.
fn plan(
    op: &'static str,
    input_name: &str,
    input: &Tensor,
    kernel: usize,
    stride: usize,
) -> Result<([usize; 4], PoolParams)> {
    input.expect_dtype(op, DType::F32)?;
    let &[n, c, h, w] = input.shape() else {
        return Err(shape_error(
            op,
            format!("{input_name} must be [N, C, H, W], got {:?}", input.shape()),
        ));
    };
    if kernel == 0 || stride == 0 {
        return Err(invalid_argument(
            op,
            format!("kernel and stride must be at least 1, got kernel {kernel}, stride {stride}"),
        ));
    }
    if kernel > h || kernel > w {
        return Err(invalid_argument(
            op,
            format!(
                "kernel {kernel} is larger than the {h}x{w} image of {input_name} {:?}",
                input.shape()
            ),
        ));
    }
    let (ho, wo) = (pooled_len(h, kernel, stride), pooled_len(w, kernel, stride));
    let u = |v: usize| v as u32;
    let params = PoolParams {
        planes: u(n * c),
        height: u(h),
        width: u(w),
        out_height: u(ho),
        out_width: u(wo),
        kernel: u(kernel),
        stride: u(stride),
        _pad: 0,
    };
    Ok(([n, c, ho, wo], params))
}

/// Check that `t` has `dtype` and the pooled shape; the error names both shapes.
fn expect_pooled(
    op: &'static str,
    what: &str,
    t: &Tensor,
    dtype: DType,
    (input_name, input): (&str, &Tensor),
    pooled: &[usize; 4],
    (kernel, stride): (usize, usize),
) -> Result<()> {
    t.expect_dtype(op, dtype)?;
    if t.shape() != pooled {
        return Err(shape_error(
            op,
            format!(
                "{what} is {:?} but {input_name} {:?} pooled by kernel {kernel}, stride {stride} gives {pooled:?}",
                t.shape(),
                input.shape()
            ),
        ));
    }
    Ok(())
}

/// Output rows `N * C * Ho` of a pooled shape: the row-wise kernels run one invocation each.
fn output_rows(pooled: &[usize; 4]) -> usize {
    pooled[0] * pooled[1] * pooled[2]
}

/// Prepare `y = maxpool(x)` and `argmax` = index `iy * W + ix` of each window's maximum.
/// `x` is f32 `[N, C, H, W]`, `y` f32 and `argmax` U32 `[N, C, Ho, Wo]` (floor mode).
pub fn prepare_maxpool2d(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    argmax: &Tensor,
    kernel: usize,
    stride: usize,
) -> Result<Dispatch> {
    const OP: &str = "maxpool2d";
    let (pooled, params) = plan(OP, "x", x, kernel, stride)?;
    expect_pooled(OP, "y", y, DType::F32, ("x", x), &pooled, (kernel, stride))?;
    expect_pooled(
        OP,
        "argmax",
        argmax,
        DType::U32,
        ("x", x),
        &pooled,
        (kernel, stride),
    )?;
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        "maxpool_forward",
        &[("WG", WG as f64)],
        &[
            (0, Binding::Tensor(x)),
            (1, Binding::Tensor(y)),
            (2, Binding::Tensor(argmax)),
        ],
        Some((6, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(output_rows(&pooled), WG)),
    ))
}

/// Prepare `dx` from `dy` through the forward's `argmax`: each input element receives the sum
/// of `dy` over the windows that picked it, 0 otherwise (`dx` is overwritten).
/// `dx` is f32 `[N, C, H, W]`; `dy` f32 and `argmax` U32 `[N, C, Ho, Wo]`.
///
/// With `relu_mask = Some(y)` (the forward's output, f32 `[N, C, Ho, Wo]`) `dy` counts only
/// where `y > 0`: the gradient through a ReLU that precedes the pooling, in the same pass.
/// Windows that tile the image exactly (kernel == stride, sides multiples of it) are written
/// window by window; others gather per input element.
pub fn prepare_maxpool2d_backward(
    ctx: &GpuContext,
    dy: &Tensor,
    argmax: &Tensor,
    relu_mask: Option<&Tensor>,
    dx: &Tensor,
    kernel: usize,
    stride: usize,
) -> Result<Dispatch> {
    const OP: &str = "maxpool2d_backward";
    let (pooled, params) = plan(OP, "dx", dx, kernel, stride)?;
    let check = |what: &str, t: &Tensor, dtype: DType| {
        expect_pooled(OP, what, t, dtype, ("dx", dx), &pooled, (kernel, stride))
    };
    check("dy", dy, DType::F32)?;
    check("argmax", argmax, DType::U32)?;
    if let Some(y) = relu_mask {
        check("relu_mask", y, DType::F32)?;
    }
    let (h, w) = (dx.shape()[2], dx.shape()[3]);
    let tiles = kernel == stride && h.is_multiple_of(kernel) && w.is_multiple_of(kernel);
    let (entry, invocations) = if tiles {
        ("maxpool_backward_tiles", output_rows(&pooled))
    } else {
        ("maxpool_backward", dx.len())
    };
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        entry,
        &[
            ("WG", WG as f64),
            ("RELU_MASK", f64::from(u8::from(relu_mask.is_some()))),
        ],
        &[
            (3, Binding::Tensor(dy)),
            (4, Binding::Tensor(argmax)),
            (5, Binding::Tensor(dx)),
            // Without a mask the shader never reads binding 7; dy stands in (both read-only).
            (7, Binding::Tensor(relu_mask.unwrap_or(dy))),
        ],
        Some((6, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(invocations, WG)),
    ))
}

/// CPU reference.
pub mod cpu {
    use super::pooled_len;

    /// `(y, argmax)` of max pooling `x` `[planes, h, w]` (planes = N*C), floor mode.
    /// Ties keep the first maximum in row-major window order; a NaN wins.
    pub fn maxpool2d(
        x: &[f32],
        (planes, h, w): (usize, usize, usize),
        kernel: usize,
        stride: usize,
    ) -> (Vec<f32>, Vec<u32>) {
        let (ho, wo) = (pooled_len(h, kernel, stride), pooled_len(w, kernel, stride));
        let mut y = Vec::with_capacity(planes * ho * wo);
        let mut argmax = Vec::with_capacity(planes * ho * wo);
        for plane in x.chunks(h * w).take(planes) {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut best_index = oy * stride * w + ox * stride;
                    for ky in 0..kernel {
                        for kx in 0..kernel {
                            let index = (oy * stride + ky) * w + ox * stride + kx;
                            let (v, best) = (plane[index], plane[best_index]);
                            if !best.is_nan() && (v > best || v.is_nan()) {
                                best_index = index;
                            }
                        }
                    }
                    y.push(plane[best_index]);
                    argmax.push(best_index as u32);
                }
            }
        }
        (y, argmax)
    }

    /// `dx` `[planes, h, w]`: `dy` scattered to each window's argmax and summed.
    pub fn maxpool2d_backward(
        dy: &[f32],
        argmax: &[u32],
        (planes, h, w): (usize, usize, usize),
    ) -> Vec<f32> {
        let mut dx = vec![0.0f32; planes * h * w];
        let pooled = dy.len() / planes.max(1);
        for (o, (g, &index)) in dy.iter().zip(argmax).enumerate() {
            dx[(o / pooled) * h * w + index as usize] += g;
        }
        dx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, ctx, random_f32};

    /// (N, C, H, W, kernel, stride): odd sizes that cut the last window, overlapping windows,
    /// a window larger than the stride, and one window covering the whole image.
    const CASES: [(usize, usize, usize, usize, usize, usize); 7] = [
        (2, 3, 7, 9, 2, 2),
        (1, 2, 6, 9, 3, 3),
        (1, 2, 13, 11, 3, 2),
        (2, 1, 8, 8, 2, 2),
        (1, 3, 9, 10, 3, 3),
        (1, 2, 6, 7, 2, 1),
        (1, 1, 5, 5, 5, 1),
    ];
    /// More output rows (3 * 40 * 4 = 480) than a workgroup of the row-wise kernels holds, the
    /// last workgroup partly past the end, in windows that tile the image (the row-wise
    /// backward); too large for the finite-difference test.
    const MANY_ROWS: (usize, usize, usize, usize, usize, usize) = (3, 40, 8, 10, 2, 2);

    fn run_forward(
        x: &[f32],
        shape: [usize; 4],
        kernel: usize,
        stride: usize,
    ) -> (Tensor, Vec<f32>, Vec<u32>) {
        let ctx = ctx();
        let [n, c, h, w] = shape;
        let pooled = [
            n,
            c,
            pooled_len(h, kernel, stride),
            pooled_len(w, kernel, stride),
        ];
        let xt = Tensor::from_f32(ctx, x, &shape).unwrap();
        let yt = Tensor::zeros(ctx, &pooled, DType::F32).unwrap();
        let at = Tensor::zeros(ctx, &pooled, DType::U32).unwrap();
        let mut enc = ctx.encoder();
        prepare_maxpool2d(ctx, &xt, &yt, &at, kernel, stride)
            .unwrap()
            .encode(&mut enc);
        ctx.submit_and_wait(enc);
        (at.clone(), yt.to_f32(ctx).unwrap(), at.to_u32(ctx).unwrap())
    }

    #[test]
    fn forward_and_backward_match_cpu() {
        let ctx = ctx();
        let cases = CASES.iter().chain([&MANY_ROWS]);
        for (case, &(n, c, h, w, kernel, stride)) in cases.enumerate() {
            let what = format!("maxpool N={n} C={c} {h}x{w} kernel {kernel} stride {stride}");
            let mut x = random_f32(n * c * h * w, 200 + case as u64, 1.0);
            // Ties: the first maximum must win on both sides.
            x[1] = x[0];
            let (argmax_t, y, argmax) = run_forward(&x, [n, c, h, w], kernel, stride);
            let (expected_y, expected_argmax) = cpu::maxpool2d(&x, (n * c, h, w), kernel, stride);
            assert_eq!(y, expected_y, "{what}: y (exact)");
            assert_eq!(argmax, expected_argmax, "{what}: argmax (exact)");

            let dy = random_f32(y.len(), 300 + case as u64, 1.0);
            let dyt = Tensor::from_f32(ctx, &dy, argmax_t.shape()).unwrap();
            let yt = Tensor::from_f32(ctx, &y, argmax_t.shape()).unwrap();
            // With the mask: the gradient of a ReLU's output (y <= 0 passes nothing).
            let mut masked_dy = vec![0.0; dy.len()];
            crate::ops::elementwise::cpu::relu_backward(&y, &dy, &mut masked_dy);
            for (mask, grad) in [(None, &dy), (Some(&yt), &masked_dy)] {
                let dxt = Tensor::from_f32(ctx, &vec![7.0; x.len()], &[n, c, h, w]).unwrap();
                let mut enc = ctx.encoder();
                prepare_maxpool2d_backward(ctx, &dyt, &argmax_t, mask, &dxt, kernel, stride)
                    .unwrap()
                    .encode(&mut enc);
                ctx.submit_and_wait(enc);
                let expected_dx = cpu::maxpool2d_backward(grad, &expected_argmax, (n * c, h, w));
                // Sums of at most ceil(kernel/stride)^2 terms, in a different order.
                let what = format!(
                    "{what}: dx, ReLU mask {} (atol 1e-6, rtol 1e-6)",
                    mask.is_some()
                );
                assert_close(&dxt.to_f32(ctx).unwrap(), &expected_dx, 1e-6, 1e-6, &what);
            }
        }
    }

    #[test]
    fn floor_mode_drops_the_cut_window() {
        // 7 wide, kernel 2, stride 2: windows start at 0, 2, 4; column 6 is never pooled.
        assert_eq!(pooled_len(7, 2, 2), 3);
        let (n, c, h, w) = (1, 1, 7, 7);
        let mut x = random_f32(n * c * h * w, 400, 1.0);
        x[6] = 10.0; // the largest value, in the dropped last column
        let (_, y, argmax) = run_forward(&x, [n, c, h, w], 2, 2);
        assert_eq!(y.len(), 9);
        assert!(
            y.iter().all(|&v| v < 10.0),
            "the cut window was pooled: {y:?}"
        );
        assert!(
            argmax.iter().all(|&i| i % 7 != 6 && i / 7 != 6),
            "{argmax:?}"
        );
    }

    #[test]
    fn cpu_backward_matches_finite_differences() {
        for (case, &(n, c, h, w, kernel, stride)) in CASES.iter().enumerate() {
            // Distinct values 0.01 apart in shuffled order, so no step below 0.005 changes
            // which element wins a window.
            let keys = random_f32(n * c * h * w, 500 + case as u64, 1.0);
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
            let mut x = vec![0.0f32; keys.len()];
            for (rank, &i) in order.iter().enumerate() {
                x[i] = rank as f32 * 0.01 - 1.0;
            }
            let (y, argmax) = cpu::maxpool2d(&x, (n * c, h, w), kernel, stride);
            let probe = random_f32(y.len(), 600 + case as u64, 1.0);
            let loss = |xs: &[f32]| -> f64 {
                let (ys, _) = cpu::maxpool2d(xs, (n * c, h, w), kernel, stride);
                ys.iter()
                    .zip(&probe)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum()
            };
            // Max pooling is piecewise linear; a step below half the gap between values stays
            // on one piece, so central differences are exact up to f32 rounding.
            const STEP: f32 = 1e-3;
            let mut shifted = x.clone();
            let numeric: Vec<f32> = (0..x.len())
                .map(|i| {
                    shifted[i] = x[i] + STEP;
                    let up = loss(&shifted);
                    shifted[i] = x[i] - STEP;
                    let down = loss(&shifted);
                    shifted[i] = x[i];
                    ((up - down) / (2.0 * f64::from(STEP))) as f32
                })
                .collect();
            let analytic = cpu::maxpool2d_backward(&probe, &argmax, (n * c, h, w));
            let what = format!(
                "maxpool backward vs finite differences, case {case} (atol 1e-3, rtol 1e-3)"
            );
            assert_close(&analytic, &numeric, 1e-3, 1e-3, &what);
        }
    }

    #[test]
    fn mismatched_shapes_are_rejected_naming_both() {
        let ctx = ctx();
        let x = Tensor::zeros(ctx, &[2, 3, 7, 9], DType::F32).unwrap();
        let y = Tensor::zeros(ctx, &[2, 3, 4, 4], DType::F32).unwrap();
        let argmax = Tensor::zeros(ctx, &[2, 3, 3, 4], DType::U32).unwrap();
        let err = prepare_maxpool2d(ctx, &x, &y, &argmax, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[2, 3, 4, 4]")
                && err.contains("[2, 3, 3, 4]")
                && err.contains("[2, 3, 7, 9]"),
            "{err}"
        );

        let dy = Tensor::zeros(ctx, &[2, 3, 3, 4], DType::F32).unwrap();
        let float_argmax = Tensor::zeros(ctx, &[2, 3, 3, 4], DType::F32).unwrap();
        let err = prepare_maxpool2d_backward(ctx, &dy, &float_argmax, None, &x, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("F32") && err.contains("U32"), "{err}");

        let err = prepare_maxpool2d(ctx, &x, &y, &argmax, 8, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kernel 8") && err.contains("7x9"), "{err}");
    }
}
