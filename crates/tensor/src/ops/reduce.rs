//! Reductions (shaders/reduce.wgsl): column sums of a matrix (bias gradients) and the sum or
//! mean of all elements.
//!
//! Column sums are one dispatch. The sum and mean are a tree reduction that takes one pass
//! for short inputs and two for long ones (workgroup partial sums into a scratch buffer, then
//! one workgroup over the partials), so [`prepare_sum`] and [`prepare_mean`] return a
//! [`SumDispatch`] holding one or two [`Dispatch`]es that must be recorded in order.

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument, shape_error};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::tensor::{DType, Tensor};

pub const SHADER: ShaderSource = ShaderSource {
    name: "reduce",
    wgsl: include_str!("../../../../shaders/reduce.wgsl"),
};

/// Adjacent columns per column-sum workgroup.
const COL_WG: usize = 64;
/// Row slices per column-sum workgroup (COL_WG * ROW_SLICES <= 256).
const ROW_SLICES: usize = 4;
/// Threads per sum workgroup (power of two <= 256).
const SUM_WG: usize = 256;
/// Inputs up to this many elements per thread of one workgroup take a single pass.
const SINGLE_PASS_ITEMS_PER_THREAD: usize = 16;
/// Elements per thread aimed at in the first of two passes.
const ITEMS_PER_THREAD: usize = 4;
/// Most partial sums of the first pass: one per thread of the second pass.
const MAX_PARTIALS: usize = SUM_WG;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ColumnSumParams {
    rows: u32,
    cols: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SumParams {
    n: u32,
    groups: u32,
    divisor: f32,
}

fn check_distinct(op: &'static str, x: &Tensor, out: &Tensor) -> Result<()> {
    if x.same_buffer(out) {
        return Err(invalid_argument(
            op,
            "x and out share one buffer; out needs its own",
        ));
    }
    Ok(())
}

fn as_u32(op: &'static str, what: &str, value: usize) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| invalid_argument(op, format!("{what} = {value} does not fit in u32")))
}

/// Prepare `out[c] = (accumulate ? out[c] : 0) + sum_r x[r, c]` for f32 `x` [R, C] and
/// `out` [C] (the bias gradient of a linear layer from its output gradient).
pub fn prepare_column_sum(
    ctx: &GpuContext,
    x: &Tensor,
    out: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    const OP: &str = "column_sum";
    x.expect_dtype(OP, DType::F32)?;
    out.expect_dtype(OP, DType::F32)?;
    let &[rows, cols] = x.shape() else {
        return Err(shape_error(
            OP,
            format!("x must be a matrix [rows, cols], got {:?}", x.shape()),
        ));
    };
    if out.shape() != [cols] {
        return Err(shape_error(
            OP,
            format!(
                "x is {:?} but out is {:?} (expected [{cols}])",
                x.shape(),
                out.shape()
            ),
        ));
    }
    check_distinct(OP, x, out)?;
    as_u32(OP, "x elements", x.len())?;
    let params = ColumnSumParams {
        rows: rows as u32,
        cols: cols as u32,
    };
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        "column_sum",
        &[
            ("COL_WG", COL_WG as f64),
            ("ROW_SLICES", ROW_SLICES as f64),
            ("ACCUMULATE", f64::from(u8::from(accumulate))),
        ],
        &[(0, Binding::Tensor(x)), (1, Binding::Tensor(out))],
        Some((2, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(cols, COL_WG)),
    ))
}

/// A prepared sum or mean: one or two launches recorded in order (the second reads the
/// partial sums the first wrote into a scratch buffer this wrapper owns).
#[derive(Debug)]
pub struct SumDispatch {
    passes: Vec<Dispatch>,
    _partials: Option<Tensor>,
}

impl SumDispatch {
    /// The launches, in the order they must run.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.passes
    }

    /// Record every pass into an open compute pass (WebGPU orders the storage writes of one
    /// dispatch before the reads of the next).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.passes.iter().for_each(|d| d.record(pass));
    }

    /// Record every pass in a compute pass of its own.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        self.record(&mut pass);
    }
}

fn sum_pass(
    ctx: &GpuContext,
    x: &Tensor,
    out: &Tensor,
    n: u32,
    groups: u32,
    divisor: f32,
) -> Dispatch {
    let params = SumParams { n, groups, divisor };
    Dispatch::new(
        ctx,
        &SHADER,
        "sum",
        &[("SUM_WG", SUM_WG as f64)],
        &[(0, Binding::Tensor(x)), (1, Binding::Tensor(out))],
        Some((3, bytemuck::bytes_of(&params))),
        [groups, 1, 1],
    )
}

fn prepare_total(
    op: &'static str,
    ctx: &GpuContext,
    x: &Tensor,
    out: &Tensor,
    mean: bool,
) -> Result<SumDispatch> {
    x.expect_dtype(op, DType::F32)?;
    out.expect_dtype(op, DType::F32)?;
    if out.len() != 1 {
        return Err(shape_error(
            op,
            format!(
                "x is {:?} but out is {:?} (expected one element, [1])",
                x.shape(),
                out.shape()
            ),
        ));
    }
    check_distinct(op, x, out)?;
    let n = x.len();
    if mean && n == 0 {
        return Err(invalid_argument(
            op,
            format!("the mean of an empty tensor {:?} is undefined", x.shape()),
        ));
    }
    let n32 = as_u32(op, "x elements", n)?;
    // The mean divides once, at the end, by the exact count (f32 holds it exactly below 2^24).
    let divisor = if mean { n as f32 } else { 1.0 };
    if n <= SUM_WG * SINGLE_PASS_ITEMS_PER_THREAD {
        return Ok(SumDispatch {
            passes: vec![sum_pass(ctx, x, out, n32, 1, divisor)],
            _partials: None,
        });
    }
    let groups = n.div_ceil(SUM_WG * ITEMS_PER_THREAD).min(MAX_PARTIALS);
    let partials = Tensor::zeros(ctx, &[groups], DType::F32)?;
    let first = sum_pass(ctx, x, &partials, n32, groups as u32, 1.0);
    let second = sum_pass(ctx, &partials, out, groups as u32, 1, divisor);
    Ok(SumDispatch {
        passes: vec![first, second],
        _partials: Some(partials),
    })
}

/// Prepare `out[0] = sum of all elements of x` (f32; `out` has one element).
pub fn prepare_sum(ctx: &GpuContext, x: &Tensor, out: &Tensor) -> Result<SumDispatch> {
    prepare_total("sum", ctx, x, out, false)
}

/// Prepare `out[0] = mean of all elements of x` (f32, non-empty; `out` has one element).
pub fn prepare_mean(ctx: &GpuContext, x: &Tensor, out: &Tensor) -> Result<SumDispatch> {
    prepare_total("mean", ctx, x, out, true)
}

/// CPU references, accumulated in f64.
pub mod cpu {
    /// `out[c] = (accumulate ? out[c] : 0) + sum_r x[r, c]` for `x` of `out.len()` columns.
    pub fn column_sum(x: &[f32], out: &mut [f32], accumulate: bool) {
        let cols = out.len();
        for (c, o) in out.iter_mut().enumerate() {
            let start = if accumulate { f64::from(*o) } else { 0.0 };
            let total: f64 = x
                .iter()
                .skip(c)
                .step_by(cols.max(1))
                .map(|&v| f64::from(v))
                .sum();
            *o = (start + total) as f32;
        }
    }

    pub fn sum(x: &[f32]) -> f64 {
        x.iter().map(|&v| f64::from(v)).sum()
    }

    pub fn mean(x: &[f32]) -> f64 {
        sum(x) / x.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, ctx, random_f32};

    #[test]
    fn column_sum_matches_cpu_with_and_without_accumulate() {
        let ctx = ctx();
        for (rows, cols) in [(1, 1), (7, 13), (129, 65), (300, 1200)] {
            let data = random_f32(rows * cols, (rows * cols) as u64, 1.0);
            let x = Tensor::from_f32(ctx, &data, &[rows, cols]).unwrap();
            let start = random_f32(cols, 5, 1.0);
            for accumulate in [false, true] {
                let out = Tensor::from_f32(ctx, &start, &[cols]).unwrap();
                let mut enc = ctx.encoder();
                prepare_column_sum(ctx, &x, &out, accumulate)
                    .unwrap()
                    .encode(&mut enc);
                ctx.submit_and_wait(enc);
                let mut expected = start.clone();
                cpu::column_sum(&data, &mut expected, accumulate);
                // f32 sums of `rows` terms in [-1, 1]: error well under 1e-6 * rows
                let atol = 1e-6 * rows as f32;
                assert_close(
                    &out.to_f32(ctx).unwrap(),
                    &expected,
                    atol,
                    1e-6,
                    &format!(
                        "[{rows}, {cols}] accumulate={accumulate} (tol {atol} + 1e-6 * |cpu|)"
                    ),
                );
            }
        }
    }

    #[test]
    fn sum_and_mean_match_cpu() {
        let ctx = ctx();
        for n in [1usize, 1000, 100_003] {
            // Signed values make the sum cancel; shifted ones make it large: test both.
            for offset in [0.0f32, 1.0] {
                let data: Vec<f32> = random_f32(n, n as u64 + 3, 1.0)
                    .into_iter()
                    .map(|v| v + offset)
                    .collect();
                let x = Tensor::from_f32(ctx, &data, &[n]).unwrap();
                let sum_out = Tensor::zeros(ctx, &[1], DType::F32).unwrap();
                let mean_out = Tensor::zeros(ctx, &[1], DType::F32).unwrap();
                let sum = prepare_sum(ctx, &x, &sum_out).unwrap();
                let mean = prepare_mean(ctx, &x, &mean_out).unwrap();
                let expected_passes = if n > SUM_WG * SINGLE_PASS_ITEMS_PER_THREAD {
                    2
                } else {
                    1
                };
                assert_eq!(
                    sum.dispatches().len(),
                    expected_passes,
                    "passes for n = {n}"
                );
                let mut enc = ctx.encoder();
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                    sum.record(&mut pass);
                    mean.record(&mut pass);
                }
                ctx.submit_and_wait(enc);
                // f32 tree reduction: error bounded by ~20 ulps of the sum of magnitudes.
                let magnitude: f64 = data.iter().map(|v| f64::from(v.abs())).sum();
                let tol = 1e-6 * magnitude + 1e-6;
                let got_sum = f64::from(sum_out.to_f32(ctx).unwrap()[0]);
                let want_sum = cpu::sum(&data);
                assert!(
                    (got_sum - want_sum).abs() <= tol,
                    "sum n = {n}, offset {offset}: got {got_sum}, expected {want_sum} (tol {tol})"
                );
                let got_mean = f64::from(mean_out.to_f32(ctx).unwrap()[0]);
                let want_mean = cpu::mean(&data);
                let tol = tol / n as f64;
                assert!(
                    (got_mean - want_mean).abs() <= tol,
                    "mean n = {n}, offset {offset}: got {got_mean}, expected {want_mean} (tol {tol})"
                );
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors_naming_both() {
        let ctx = ctx();
        let x = Tensor::zeros(ctx, &[4, 3], DType::F32).unwrap();
        let wrong = Tensor::zeros(ctx, &[4], DType::F32).unwrap();
        let err = prepare_column_sum(ctx, &x, &wrong, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[4, 3]") && err.contains("[4]"), "{err}");
        let err = prepare_column_sum(ctx, &wrong, &wrong, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("matrix"), "{err}");
        let err = prepare_sum(ctx, &x, &wrong).unwrap_err().to_string();
        assert!(err.contains("[4, 3]") && err.contains("[4]"), "{err}");
        let one = Tensor::zeros(ctx, &[1], DType::F32).unwrap();
        let err = prepare_sum(ctx, &one, &one).unwrap_err().to_string();
        assert!(err.contains("share one buffer"), "{err}");
        let empty = Tensor::zeros(ctx, &[0], DType::F32).unwrap();
        let err = prepare_mean(ctx, &empty, &one).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        let ints = Tensor::zeros(ctx, &[4, 3], DType::U32).unwrap();
        let err = prepare_sum(ctx, &ints, &one).unwrap_err().to_string();
        assert!(err.contains("U32"), "{err}");
    }
}
