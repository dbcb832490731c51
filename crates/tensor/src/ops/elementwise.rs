//! Elementwise f32 kernels (shaders/elementwise.wgsl): ReLU forward and backward, add,
//! add-assign and in-place scale. Every operand has the same shape; launchers check that,
//! and that no written tensor shares its buffer with another operand.

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument, shape_error};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::tensor::{DType, Tensor};

pub const SHADER: ShaderSource = ShaderSource {
    name: "elementwise",
    wgsl: include_str!("../../../../shaders/elementwise.wgsl"),
};

const WG: u32 = 256;

// Binding slots of shaders/elementwise.wgsl.
const SLOT_A: u32 = 0;
const SLOT_B: u32 = 1;
const SLOT_OUT: u32 = 2;
const SLOT_ACC: u32 = 3;
const SLOT_PARAMS: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementwiseParams {
    n: u32,
    scale: f32,
}

/// Error unless `t` is f32.
fn expect_f32(op: &'static str, t: &Tensor) -> Result<()> {
    t.expect_dtype(op, DType::F32)
}

/// Error when `t` has more elements than a u32 index reaches (the shaders index with u32;
/// only adapters that bind buffers over 4 GiB allow such tensors).
pub(crate) fn expect_u32_len(op: &'static str, name: &str, t: &Tensor) -> Result<()> {
    if u32::try_from(t.len()).is_err() {
        return Err(invalid_argument(
            op,
            format!(
                "{name} {:?} has {} elements, over the {} a u32 index reaches; split it",
                t.shape(),
                t.len(),
                u32::MAX
            ),
        ));
    }
    Ok(())
}

/// Error unless `a` and `b` have identical shapes; names both.
pub(crate) fn expect_same_shape(
    op: &'static str,
    a: (&str, &Tensor),
    b: (&str, &Tensor),
) -> Result<()> {
    if a.1.shape() != b.1.shape() {
        return Err(shape_error(
            op,
            format!(
                "{} is {:?} but {} is {:?} (shapes must match)",
                a.0,
                a.1.shape(),
                b.0,
                b.1.shape()
            ),
        ));
    }
    Ok(())
}

/// Error when the written tensor `out` views the same buffer as the operand `other`:
/// a writable storage binding may not alias another binding of one dispatch.
pub(crate) fn expect_distinct(
    op: &'static str,
    out: (&str, &Tensor),
    other: (&str, &Tensor),
) -> Result<()> {
    if out.1.same_buffer(other.1) {
        return Err(invalid_argument(
            op,
            format!(
                "{} and {} share one buffer; the output must be a separate tensor",
                out.0, other.0
            ),
        ));
    }
    Ok(())
}

/// Build one elementwise launch over `n` elements with workgroup size `wg`.
fn elementwise_dispatch(
    ctx: &GpuContext,
    entry: &'static str,
    bindings: &[(u32, Binding<'_>)],
    n: usize,
    scale: f32,
    wg: u32,
) -> Dispatch {
    let params = ElementwiseParams { n: n as u32, scale };
    Dispatch::new(
        ctx,
        &SHADER,
        entry,
        &[("WG", f64::from(wg))],
        bindings,
        Some((SLOT_PARAMS, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(n, wg as usize)),
    )
}

/// Validate a read-only `input` and a separate written `output` of the same f32 shape.
fn check_unary(op: &'static str, input: (&str, &Tensor), output: (&str, &Tensor)) -> Result<()> {
    expect_f32(op, input.1)?;
    expect_f32(op, output.1)?;
    expect_same_shape(op, input, output)?;
    expect_u32_len(op, input.0, input.1)?;
    expect_distinct(op, output, input)
}

fn relu_with_wg(ctx: &GpuContext, x: &Tensor, y: &Tensor, wg: u32) -> Result<Dispatch> {
    check_unary("relu", ("x", x), ("y", y))?;
    Ok(elementwise_dispatch(
        ctx,
        "relu",
        &[(SLOT_A, Binding::Tensor(x)), (SLOT_OUT, Binding::Tensor(y))],
        x.len(),
        0.0,
        wg,
    ))
}

/// Prepare `y = max(x, 0)` (NaN maps to 0). `x` and `y` are f32 of one shape, separate buffers.
pub fn prepare_relu(ctx: &GpuContext, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    relu_with_wg(ctx, x, y, WG)
}

/// Prepare the ReLU gradient `dx = dy where y > 0, else 0`, from the forward output `y`.
pub fn prepare_relu_backward(
    ctx: &GpuContext,
    y: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    let op = "relu_backward";
    expect_f32(op, y)?;
    check_unary(op, ("dy", dy), ("dx", dx))?;
    expect_same_shape(op, ("y", y), ("dy", dy))?;
    expect_distinct(op, ("dx", dx), ("y", y))?;
    Ok(elementwise_dispatch(
        ctx,
        op,
        &[
            (SLOT_A, Binding::Tensor(y)),
            (SLOT_B, Binding::Tensor(dy)),
            (SLOT_OUT, Binding::Tensor(dx)),
        ],
        y.len(),
        0.0,
        WG,
    ))
}

/// Prepare `out = a + b`. `a` and `b` may be the same tensor; `out` must be separate.
pub fn prepare_add(ctx: &GpuContext, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let op = "add";
    expect_f32(op, b)?;
    check_unary(op, ("a", a), ("out", out))?;
    expect_same_shape(op, ("a", a), ("b", b))?;
    expect_distinct(op, ("out", out), ("b", b))?;
    Ok(elementwise_dispatch(
        ctx,
        op,
        &[
            (SLOT_A, Binding::Tensor(a)),
            (SLOT_B, Binding::Tensor(b)),
            (SLOT_OUT, Binding::Tensor(out)),
        ],
        a.len(),
        0.0,
        WG,
    ))
}

/// Prepare `acc += x` (e.g. summing gradients of a residual branch). To double a tensor
/// use [`prepare_scale`] with 2; `acc` and `x` must be separate buffers.
pub fn prepare_add_assign(ctx: &GpuContext, acc: &Tensor, x: &Tensor) -> Result<Dispatch> {
    check_unary("add_assign", ("x", x), ("acc", acc))?;
    Ok(elementwise_dispatch(
        ctx,
        "add_assign",
        &[
            (SLOT_A, Binding::Tensor(x)),
            (SLOT_ACC, Binding::Tensor(acc)),
        ],
        acc.len(),
        0.0,
        WG,
    ))
}

fn scale_with_wg(ctx: &GpuContext, x: &Tensor, s: f32, wg: u32) -> Result<Dispatch> {
    expect_f32("scale", x)?;
    expect_u32_len("scale", "x", x)?;
    Ok(elementwise_dispatch(
        ctx,
        "scale",
        &[(SLOT_ACC, Binding::Tensor(x))],
        x.len(),
        s,
        wg,
    ))
}

/// Prepare `x *= s` in place.
pub fn prepare_scale(ctx: &GpuContext, x: &Tensor, s: f32) -> Result<Dispatch> {
    scale_with_wg(ctx, x, s, WG)
}

/// CPU reference, elementwise and exact (one IEEE operation per element, like the shader).
pub mod cpu {
    pub fn relu(x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = if x > 0.0 { x } else { 0.0 };
        }
    }

    pub fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
            *dx = if y > 0.0 { dy } else { 0.0 };
        }
    }

    pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a + b;
        }
    }

    pub fn add_assign(acc: &mut [f32], x: &[f32]) {
        for (acc, &x) in acc.iter_mut().zip(x) {
            *acc += x;
        }
    }

    pub fn scale(x: &mut [f32], s: f32) {
        x.iter_mut().for_each(|x| *x *= s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx, random_f32};

    /// Shapes that are not multiples of the workgroup size, including one element.
    const SHAPES: [&[usize]; 4] = [&[1], &[7, 13, 5], &[257], &[3, 129, 5]];

    fn upload(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_f32(ctx(), values, shape).unwrap()
    }

    fn run(d: &Dispatch) {
        let mut enc = ctx().encoder();
        d.encode(&mut enc);
        ctx().submit_and_wait(enc);
    }

    #[test]
    fn relu_forward_and_backward_match_cpu() {
        let ctx = ctx();
        for (k, shape) in SHAPES.iter().enumerate() {
            let n: usize = shape.iter().product();
            let x = random_f32(n, 10 + k as u64, 2.0);
            let dy = random_f32(n, 20 + k as u64, 1.0);
            let (xt, dyt) = (upload(&x, shape), upload(&dy, shape));
            let yt = Tensor::zeros(ctx, shape, DType::F32).unwrap();
            let dxt = Tensor::zeros(ctx, shape, DType::F32).unwrap();
            let mut enc = ctx.encoder();
            prepare_relu(ctx, &xt, &yt).unwrap().encode(&mut enc);
            prepare_relu_backward(ctx, &yt, &dyt, &dxt)
                .unwrap()
                .encode(&mut enc);
            ctx.submit_and_wait(enc);

            let mut y = vec![0.0; n];
            cpu::relu(&x, &mut y);
            let mut dx = vec![0.0; n];
            cpu::relu_backward(&y, &dy, &mut dx);
            assert_eq!(yt.to_f32(ctx).unwrap(), y, "relu {shape:?} (exact)");
            assert_eq!(
                dxt.to_f32(ctx).unwrap(),
                dx,
                "relu_backward {shape:?} (exact)"
            );
            // The input holds both signs, so both branches were exercised.
            assert!(n == 1 || (y.contains(&0.0) && y.iter().any(|&v| v > 0.0)));
        }
    }

    #[test]
    fn relu_backward_is_the_finite_difference_of_relu() {
        // Away from the kink, (relu(x + h) - relu(x - h)) / 2h is exactly 0 or 1.
        let n = 101;
        let x: Vec<f64> = random_f32(n, 3, 1.0)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let h = 1e-4;
        let y: Vec<f32> = x.iter().map(|&v| v.max(0.0) as f32).collect();
        let ones = vec![1.0f32; n];
        let mut dx = vec![0.0; n];
        cpu::relu_backward(&y, &ones, &mut dx);
        for (i, &v) in x.iter().enumerate() {
            if v.abs() < 2.0 * h {
                continue;
            }
            let numeric = ((v + h).max(0.0) - (v - h).max(0.0)) / (2.0 * h);
            assert!(
                (numeric - f64::from(dx[i])).abs() < 1e-9,
                "index {i}: numeric {numeric}, analytic {} (tolerance 1e-9)",
                dx[i]
            );
        }
    }

    #[test]
    fn add_add_assign_and_scale_match_cpu() {
        let ctx = ctx();
        for (k, shape) in SHAPES.iter().enumerate() {
            let n: usize = shape.iter().product();
            let a = random_f32(n, 30 + k as u64, 3.0);
            let b = random_f32(n, 40 + k as u64, 3.0);
            let (at, bt) = (upload(&a, shape), upload(&b, shape));
            let sum_t = Tensor::zeros(ctx, shape, DType::F32).unwrap();
            let acc_t = upload(&a, shape);
            let mut enc = ctx.encoder();
            prepare_add(ctx, &at, &bt, &sum_t).unwrap().encode(&mut enc);
            prepare_add_assign(ctx, &acc_t, &bt)
                .unwrap()
                .encode(&mut enc);
            prepare_scale(ctx, &acc_t, -0.75).unwrap().encode(&mut enc);
            ctx.submit_and_wait(enc);

            let mut sum = vec![0.0; n];
            cpu::add(&a, &b, &mut sum);
            let mut acc = a.clone();
            cpu::add_assign(&mut acc, &b);
            cpu::scale(&mut acc, -0.75);
            assert_eq!(sum_t.to_f32(ctx).unwrap(), sum, "add {shape:?} (exact)");
            assert_eq!(
                acc_t.to_f32(ctx).unwrap(),
                acc,
                "add_assign then scale {shape:?} (exact)"
            );
        }
    }

    #[test]
    fn add_accepts_one_tensor_as_both_inputs() {
        let ctx = ctx();
        let a = random_f32(9, 5, 1.0);
        let at = upload(&a, &[9]);
        let out = Tensor::zeros(ctx, &[9], DType::F32).unwrap();
        run(&prepare_add(ctx, &at, &at, &out).unwrap());
        let mut expected = vec![0.0; 9];
        cpu::add(&a, &a, &mut expected);
        assert_eq!(out.to_f32(ctx).unwrap(), expected, "a + a (exact)");
    }

    #[test]
    fn two_dimensional_grid_covers_every_element() {
        // A one-invocation workgroup makes 65_537 elements need a [65535, 2, 1] grid,
        // so the shader's `wid.x + wid.y * nwg.x` indexing is exercised cheaply.
        let ctx = ctx();
        let n = 65_537;
        let x = random_f32(n, 7, 1.0);
        let xt = upload(&x, &[n]);
        let yt = Tensor::zeros(ctx, &[n], DType::F32).unwrap();
        let relu = relu_with_wg(ctx, &xt, &yt, 1).unwrap();
        let scale = scale_with_wg(ctx, &xt, 0.5, 1).unwrap();
        assert_eq!(relu.groups(), [65_535, 2, 1], "grid shape");
        run(&relu);
        run(&scale);
        let mut y = vec![0.0; n];
        cpu::relu(&x, &mut y);
        let mut scaled = x.clone();
        cpu::scale(&mut scaled, 0.5);
        assert_eq!(yt.to_f32(ctx).unwrap(), y, "relu on a 2-D grid (exact)");
        assert_eq!(
            xt.to_f32(ctx).unwrap(),
            scaled,
            "scale on a 2-D grid (exact)"
        );
    }

    #[test]
    fn prepared_dispatch_replays() {
        let ctx = ctx();
        let xt = upload(&[1.0, -2.0, 4.0], &[3]);
        let d = prepare_scale(ctx, &xt, 2.0).unwrap();
        run(&d);
        run(&d);
        let mut expected = vec![1.0, -2.0, 4.0];
        cpu::scale(&mut expected, 2.0);
        cpu::scale(&mut expected, 2.0);
        assert_eq!(xt.to_f32(ctx).unwrap(), expected, "scale twice (exact)");
    }

    #[test]
    fn errors_name_shapes_dtypes_and_aliasing() {
        let ctx = ctx();
        let a = Tensor::zeros(ctx, &[7, 13], DType::F32).unwrap();
        let b = Tensor::zeros(ctx, &[13, 7], DType::F32).unwrap();
        let c = Tensor::zeros(ctx, &[7, 13], DType::F32).unwrap();
        let ints = Tensor::zeros(ctx, &[7, 13], DType::U32).unwrap();

        let err = prepare_add(ctx, &a, &b, &c).unwrap_err().to_string();
        assert!(err.contains("[7, 13]") && err.contains("[13, 7]"), "{err}");
        let err = prepare_relu(ctx, &a, &b).unwrap_err().to_string();
        assert!(err.contains("[7, 13]") && err.contains("[13, 7]"), "{err}");
        let err = prepare_relu_backward(ctx, &b, &a, &c)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[7, 13]") && err.contains("[13, 7]"), "{err}");
        let err = prepare_add_assign(ctx, &a, &b).unwrap_err().to_string();
        assert!(err.contains("[7, 13]") && err.contains("[13, 7]"), "{err}");
        let err = prepare_scale(ctx, &ints, 2.0).unwrap_err().to_string();
        assert!(err.contains("F32") && err.contains("U32"), "{err}");

        let err = prepare_add(ctx, &a, &c, &a).unwrap_err().to_string();
        assert!(err.contains("share one buffer"), "{err}");
        let err = prepare_add_assign(
            ctx,
            &a,
            &a.reshape(&[91]).unwrap().reshape(&[7, 13]).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("share one buffer"), "{err}");
        let err = prepare_relu(ctx, &a, &a).unwrap_err().to_string();
        assert!(err.contains("share one buffer"), "{err}");
    }
}
