//! Row-wise softmax and log-softmax with a temperature, and row-wise argmax
//! (shaders/softmax.wgsl), for inference and for building soft targets.
//!
//! Rows of any length are handled: each row is split over `ROW_THREADS` invocations (one on
//! CPU rasterizers, where barriers are costly; up to 64 on GPUs for long rows).

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument, shape_error};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::tensor::{DType, Tensor};

pub const SHADER: ShaderSource = ShaderSource {
    name: "softmax",
    wgsl: include_str!("../../../../shaders/softmax.wgsl"),
};

/// Workgroup size of every kernel in the file.
const WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SoftmaxParams {
    rows: u32,
    cols: u32,
    temperature: f32,
    pad: u32,
}

/// Invocations that share one row of `cols` elements on this adapter: one on CPU rasterizers
/// (no barriers), otherwise a power of two up to the workgroup size, about one per 8 columns.
pub fn default_row_threads(ctx: &GpuContext, cols: usize) -> u32 {
    if ctx.summary.is_cpu {
        1
    } else {
        (cols / 8).clamp(1, WG as usize).next_power_of_two() as u32
    }
}

/// Error unless `threads_per_row` is a power of two that divides the workgroup size.
pub(crate) fn check_row_threads(op: &'static str, threads_per_row: u32) -> Result<()> {
    if !threads_per_row.is_power_of_two() || threads_per_row > WG {
        return Err(invalid_argument(
            op,
            format!("threads per row must be a power of two in 1..={WG}, got {threads_per_row}"),
        ));
    }
    Ok(())
}

/// Error unless `temperature` is finite and positive.
pub(crate) fn check_temperature(op: &'static str, temperature: f32) -> Result<()> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(invalid_argument(
            op,
            format!("temperature must be finite and > 0, got {temperature}"),
        ));
    }
    Ok(())
}

/// `(rows, cols)` of a 2-D f32 logits tensor.
pub(crate) fn logits_dims(op: &'static str, what: &str, logits: &Tensor) -> Result<(usize, usize)> {
    logits.expect_dtype(op, DType::F32)?;
    match *logits.shape() {
        [rows, cols] if rows > 0 && cols > 0 => Ok((rows, cols)),
        _ => Err(shape_error(
            op,
            format!(
                "{what} must be [batch, classes] with both > 0, got {:?}",
                logits.shape()
            ),
        )),
    }
}

fn row_grid(rows: usize, threads_per_row: u32) -> [u32; 3] {
    grid_1d(groups_for(rows, (WG / threads_per_row) as usize))
}

fn constants(threads_per_row: u32, log_output: bool) -> Vec<(&'static str, f64)> {
    vec![
        ("WG", f64::from(WG)),
        ("ROW_THREADS", f64::from(threads_per_row)),
        ("LOG_OUTPUT", if log_output { 1.0 } else { 0.0 }),
    ]
}

fn prepare_rows(
    ctx: &GpuContext,
    op: &'static str,
    logits: &Tensor,
    out: &Tensor,
    temperature: f32,
    log_output: bool,
    threads_per_row: u32,
) -> Result<Dispatch> {
    let (rows, cols) = logits_dims(op, "logits", logits)?;
    out.expect_dtype(op, DType::F32)?;
    if out.shape() != logits.shape() {
        return Err(shape_error(
            op,
            format!(
                "logits are {:?} but out is {:?} (must match)",
                logits.shape(),
                out.shape()
            ),
        ));
    }
    if out.same_buffer(logits) {
        return Err(invalid_argument(
            op,
            "out must be a different buffer from logits (no in-place softmax)",
        ));
    }
    check_temperature(op, temperature)?;
    check_row_threads(op, threads_per_row)?;
    let params = SoftmaxParams {
        rows: rows as u32,
        cols: cols as u32,
        temperature,
        pad: 0,
    };
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        "softmax_rows",
        &constants(threads_per_row, log_output),
        &[(0, Binding::Tensor(logits)), (1, Binding::Tensor(out))],
        Some((3, bytemuck::bytes_of(&params))),
        row_grid(rows, threads_per_row),
    ))
}

/// Prepare `out = softmax(logits / temperature)` row by row; logits and out are f32 `[B, C]`.
pub fn prepare_softmax(
    ctx: &GpuContext,
    logits: &Tensor,
    out: &Tensor,
    temperature: f32,
) -> Result<Dispatch> {
    let cols = logits.shape().last().copied().unwrap_or(1);
    prepare_softmax_with(
        ctx,
        logits,
        out,
        temperature,
        default_row_threads(ctx, cols),
    )
}

/// [`prepare_softmax`] with an explicit number of invocations per row (power of two, <= 64).
pub fn prepare_softmax_with(
    ctx: &GpuContext,
    logits: &Tensor,
    out: &Tensor,
    temperature: f32,
    threads_per_row: u32,
) -> Result<Dispatch> {
    prepare_rows(
        ctx,
        "softmax",
        logits,
        out,
        temperature,
        false,
        threads_per_row,
    )
}

/// Prepare `out = log_softmax(logits / temperature)` row by row; f32 `[B, C]`.
pub fn prepare_log_softmax(
    ctx: &GpuContext,
    logits: &Tensor,
    out: &Tensor,
    temperature: f32,
) -> Result<Dispatch> {
    let cols = logits.shape().last().copied().unwrap_or(1);
    prepare_log_softmax_with(
        ctx,
        logits,
        out,
        temperature,
        default_row_threads(ctx, cols),
    )
}

/// [`prepare_log_softmax`] with an explicit number of invocations per row.
pub fn prepare_log_softmax_with(
    ctx: &GpuContext,
    logits: &Tensor,
    out: &Tensor,
    temperature: f32,
    threads_per_row: u32,
) -> Result<Dispatch> {
    prepare_rows(
        ctx,
        "log_softmax",
        logits,
        out,
        temperature,
        true,
        threads_per_row,
    )
}

/// Prepare `out[r] = argmax_j logits[r, j]` (first index of the max); logits f32 `[B, C]`,
/// out U32 `[B]`.
pub fn prepare_argmax(ctx: &GpuContext, logits: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let cols = logits.shape().last().copied().unwrap_or(1);
    prepare_argmax_with(ctx, logits, out, default_row_threads(ctx, cols))
}

/// [`prepare_argmax`] with an explicit number of invocations per row.
pub fn prepare_argmax_with(
    ctx: &GpuContext,
    logits: &Tensor,
    out: &Tensor,
    threads_per_row: u32,
) -> Result<Dispatch> {
    let op = "argmax";
    let (rows, cols) = logits_dims(op, "logits", logits)?;
    out.expect_dtype(op, DType::U32)?;
    if out.shape() != [rows] {
        return Err(shape_error(
            op,
            format!(
                "logits are {:?} so out must be [{rows}], got {:?}",
                logits.shape(),
                out.shape()
            ),
        ));
    }
    check_row_threads(op, threads_per_row)?;
    let params = SoftmaxParams {
        rows: rows as u32,
        cols: cols as u32,
        temperature: 1.0,
        pad: 0,
    };
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        "argmax_rows",
        &constants(threads_per_row, false),
        &[(0, Binding::Tensor(logits)), (2, Binding::Tensor(out))],
        Some((3, bytemuck::bytes_of(&params))),
        row_grid(rows, threads_per_row),
    ))
}

/// CPU references. Slices are row-major `[rows, cols]`. The f32 functions follow the
/// kernels' formulas; the f64 one is the textbook definition the loss references build on.
pub mod cpu {
    /// `log_softmax(x / temperature)` of one row.
    pub fn log_softmax_row(x: &[f32], temperature: f32) -> Vec<f32> {
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let inv_t = 1.0 / temperature;
        let sum: f32 = x.iter().map(|v| ((v - max) * inv_t).exp()).sum();
        let log_sum = sum.ln();
        x.iter().map(|v| (v - max) * inv_t - log_sum).collect()
    }

    /// Row-wise `log_softmax(x / temperature)`.
    pub fn log_softmax(x: &[f32], cols: usize, temperature: f32) -> Vec<f32> {
        x.chunks(cols)
            .flat_map(|row| log_softmax_row(row, temperature))
            .collect()
    }

    /// Row-wise `softmax(x / temperature)`.
    pub fn softmax(x: &[f32], cols: usize, temperature: f32) -> Vec<f32> {
        log_softmax(x, cols, temperature)
            .into_iter()
            .map(f32::exp)
            .collect()
    }

    /// Row-wise `log_softmax(x / temperature)` with the sum of exponentials taken in f64:
    /// each shifted, scaled value `(x - max) / temperature` is formed in f32, and the result
    /// rounded to f32 once. What the evaluation metrics report.
    pub fn log_softmax_f64_sum(x: &[f32], cols: usize, temperature: f32) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(cols) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let log_sum: f64 = row
                .iter()
                .map(|&v| (((v - max) / temperature) as f64).exp())
                .sum::<f64>()
                .ln();
            out.extend(
                row.iter()
                    .map(|&v| ((((v - max) / temperature) as f64) - log_sum) as f32),
            );
        }
        out
    }

    /// Row-wise `softmax(x / temperature)`: the exponential of [`log_softmax_f64_sum`].
    pub fn softmax_f64_sum(x: &[f32], cols: usize, temperature: f32) -> Vec<f32> {
        log_softmax_f64_sum(x, cols, temperature)
            .into_iter()
            .map(f32::exp)
            .collect()
    }

    /// Log-softmax of `x / temperature` in f64, max-subtracted.
    pub fn log_softmax_f64(x: &[f64], temperature: f64) -> Vec<f64> {
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

    /// First index of the maximum of one row, scanning from index 0 like the kernel.
    pub fn argmax_row<T: PartialOrd>(x: &[T]) -> u32 {
        let mut best = 0;
        for (j, v) in x.iter().enumerate() {
            if *v > x[best] {
                best = j;
            }
        }
        best as u32
    }

    /// Row-wise argmax.
    pub fn argmax(x: &[f32], cols: usize) -> Vec<u32> {
        x.chunks(cols).map(argmax_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, ctx, random_f32};

    const SHAPES: [(usize, usize); 5] = [(1, 1), (7, 10), (3, 1000), (2, 1001), (129, 33)];

    #[test]
    fn softmax_and_log_softmax_match_cpu_on_odd_rows() {
        let ctx = ctx();
        for (rows, cols) in SHAPES {
            let x = random_f32(rows * cols, (rows * 31 + cols) as u64, 8.0);
            let input = Tensor::from_f32(ctx, &x, &[rows, cols]).unwrap();
            let out = Tensor::zeros(ctx, &[rows, cols], DType::F32).unwrap();
            for threads in [1, 8, 64] {
                for temperature in [0.5, 1.0, 20.0] {
                    let what = format!("[{rows}, {cols}] T={temperature} threads={threads}");
                    let mut enc = ctx.encoder();
                    prepare_softmax_with(ctx, &input, &out, temperature, threads)
                        .unwrap()
                        .encode(&mut enc);
                    ctx.submit_and_wait(enc);
                    let expected = cpu::softmax(&x, cols, temperature);
                    let got = out.to_f32(ctx).unwrap();
                    assert_close(
                        &got,
                        &expected,
                        1e-6,
                        1e-4,
                        &format!("softmax {what}, atol 1e-6 rtol 1e-4"),
                    );

                    let mut enc = ctx.encoder();
                    prepare_log_softmax_with(ctx, &input, &out, temperature, threads)
                        .unwrap()
                        .encode(&mut enc);
                    ctx.submit_and_wait(enc);
                    let expected = cpu::log_softmax(&x, cols, temperature);
                    let got = out.to_f32(ctx).unwrap();
                    assert_close(
                        &got,
                        &expected,
                        1e-4,
                        1e-5,
                        &format!("log_softmax {what}, atol 1e-4 rtol 1e-5"),
                    );
                }
            }
        }
    }

    #[test]
    fn log_softmax_is_finite_at_huge_logits() {
        let ctx = ctx();
        let x = [1e4f32, -1e4, 0.0, 1e4, -1e4, 3.0, 2.0];
        let input = Tensor::from_f32(ctx, &x, &[1, 7]).unwrap();
        let out = Tensor::zeros(ctx, &[1, 7], DType::F32).unwrap();
        for temperature in [0.5, 1.0, 100.0] {
            let mut enc = ctx.encoder();
            prepare_log_softmax(ctx, &input, &out, temperature)
                .unwrap()
                .encode(&mut enc);
            ctx.submit_and_wait(enc);
            let got = out.to_f32(ctx).unwrap();
            let expected = cpu::log_softmax(&x, 7, temperature);
            assert!(
                got.iter().all(|v| v.is_finite()),
                "T={temperature}: {got:?}"
            );
            assert_close(
                &got,
                &expected,
                1e-3,
                1e-5,
                &format!("T={temperature}, atol 1e-3 rtol 1e-5"),
            );
        }
    }

    #[test]
    fn argmax_matches_cpu_including_ties() {
        let ctx = ctx();
        for (rows, cols) in SHAPES {
            // Quantised values make ties common; the first index must win.
            let x: Vec<f32> = random_f32(rows * cols, cols as u64, 3.0)
                .into_iter()
                .map(f32::round)
                .collect();
            let input = Tensor::from_f32(ctx, &x, &[rows, cols]).unwrap();
            let out = Tensor::zeros(ctx, &[rows], DType::U32).unwrap();
            for threads in [1, 4, 64] {
                let mut enc = ctx.encoder();
                prepare_argmax_with(ctx, &input, &out, threads)
                    .unwrap()
                    .encode(&mut enc);
                ctx.submit_and_wait(enc);
                assert_eq!(
                    out.to_u32(ctx).unwrap(),
                    cpu::argmax(&x, cols),
                    "[{rows}, {cols}] threads={threads}"
                );
            }
        }
        let input = Tensor::from_f32(ctx, &[1.0, 2.0, 3.0], &[1, 3]).unwrap();
        let out = Tensor::zeros(ctx, &[1], DType::U32).unwrap();
        let mut enc = ctx.encoder();
        prepare_argmax(ctx, &input, &out).unwrap().encode(&mut enc);
        ctx.submit_and_wait(enc);
        assert_eq!(out.to_u32(ctx).unwrap(), cpu::argmax(&[1.0, 2.0, 3.0], 3));
    }

    #[test]
    fn bad_settings_and_shapes_are_errors() {
        let ctx = ctx();
        let x = Tensor::zeros(ctx, &[4, 5], DType::F32).unwrap();
        let out = Tensor::zeros(ctx, &[4, 5], DType::F32).unwrap();
        for t in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let err = prepare_softmax(ctx, &x, &out, t).unwrap_err().to_string();
            assert!(err.contains("temperature"), "{err}");
        }
        let wrong = Tensor::zeros(ctx, &[5, 4], DType::F32).unwrap();
        let err = prepare_log_softmax(ctx, &x, &wrong, 1.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[4, 5]") && err.contains("[5, 4]"), "{err}");
        let err = prepare_softmax(ctx, &x, &x, 1.0).unwrap_err().to_string();
        assert!(err.contains("different buffer"), "{err}");
        let indices = Tensor::zeros(ctx, &[5], DType::U32).unwrap();
        let err = prepare_argmax(ctx, &x, &indices).unwrap_err().to_string();
        assert!(err.contains("[4, 5]") && err.contains("[5]"), "{err}");
        let err = prepare_softmax_with(ctx, &x, &out, 1.0, 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("threads per row"), "{err}");
    }
}
