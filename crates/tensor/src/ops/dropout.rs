//! Inverted dropout (shaders/dropout.wgsl) with a counter-based mask: element `i` is kept
//! when a stateless hash of `(seed, i)` clears a threshold, so forward and backward with one
//! seed drop the same elements without storing a mask, and [`cpu::keep`] reproduces the GPU
//! mask exactly.

use std::ops::Deref;

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::ops::elementwise::{expect_distinct, expect_same_shape, expect_u32_len};
use crate::tensor::{DType, Tensor};

pub const SHADER: ShaderSource = ShaderSource {
    name: "dropout",
    wgsl: include_str!("../../../../shaders/dropout.wgsl"),
};

const WG: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct DropoutParams {
    n: u32,
    seed: u32,
    drop_threshold: u32,
    keep_scale: f32,
}

/// A prepared dropout launch whose seed can change between submissions.
#[derive(Debug)]
pub struct DropoutDispatch {
    dispatch: Dispatch,
    params: DropoutParams,
    rate: f32,
}

impl DropoutDispatch {
    /// Use `seed` from the next submission on (the write is ordered before it by the queue).
    /// Dispatches recorded into one encoder all see the seed set last before its submission.
    pub fn set_seed(&mut self, ctx: &GpuContext, seed: u32) {
        self.params.seed = seed;
        self.dispatch
            .update_params(ctx, bytemuck::bytes_of(&self.params));
    }

    /// The seed of the next submission.
    pub fn seed(&self) -> u32 {
        self.params.seed
    }

    /// The drop probability.
    pub fn rate(&self) -> f32 {
        self.rate
    }

    /// The underlying launch, for [`crate::record_all`].
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }
}

impl Deref for DropoutDispatch {
    type Target = Dispatch;
    fn deref(&self) -> &Dispatch {
        &self.dispatch
    }
}

fn prepare(
    op: &'static str,
    ctx: &GpuContext,
    input: (&str, &Tensor),
    output: (&str, &Tensor),
    rate: f32,
    seed: u32,
) -> Result<DropoutDispatch> {
    check_operands(op, input, output, rate)?;
    let params = DropoutParams {
        n: input.1.len() as u32,
        seed,
        drop_threshold: cpu::drop_threshold(rate),
        keep_scale: cpu::keep_scale(rate),
    };
    let dispatch = Dispatch::new(
        ctx,
        &SHADER,
        "dropout",
        &[],
        &[
            (0, Binding::Tensor(input.1)),
            (1, Binding::Tensor(output.1)),
        ],
        Some((2, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(input.1.len(), WG)),
    );
    Ok(DropoutDispatch {
        dispatch,
        params,
        rate,
    })
}

/// The rate must be in [0, 1) and the named tensors F32 of one shape, within u32 indexing,
/// in separate buffers.
fn check_operands(
    op: &'static str,
    input: (&str, &Tensor),
    output: (&str, &Tensor),
    rate: f32,
) -> Result<()> {
    if !(0.0..1.0).contains(&rate) {
        return Err(invalid_argument(
            op,
            format!("rate is {rate}, it must lie in [0, 1) (0 keeps everything)"),
        ));
    }
    input.1.expect_dtype(op, DType::F32)?;
    output.1.expect_dtype(op, DType::F32)?;
    expect_same_shape(op, input, output)?;
    expect_u32_len(op, input.0, input.1)?;
    // Named input first, as the message reads: "x and y share one buffer".
    expect_distinct(op, input, output)
}

/// Prepare `y = x * mask(seed) / (1 - rate)`; `rate` in [0, 1), 0 is the identity.
pub fn prepare_dropout(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    rate: f32,
    seed: u32,
) -> Result<DropoutDispatch> {
    prepare("dropout", ctx, ("x", x), ("y", y), rate, seed)
}

/// Prepare `dx = dy * mask(seed) / (1 - rate)`: the gradient of [`prepare_dropout`] with the
/// same `rate` and `seed`.
pub fn prepare_dropout_backward(
    ctx: &GpuContext,
    dy: &Tensor,
    dx: &Tensor,
    rate: f32,
    seed: u32,
) -> Result<DropoutDispatch> {
    prepare("dropout_backward", ctx, ("dy", dy), ("dx", dx), rate, seed)
}

/// CPU reference, bit-identical to the shader (integer hash, one f32 multiply per element).
pub mod cpu {
    /// The avalanching 32-bit mixer of the shader.
    pub fn mix32(value: u32) -> u32 {
        let mut x = value;
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb_352d);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846c_a68b);
        x ^= x >> 16;
        x
    }

    /// Stateless random u32 for `(seed, counter)`, as `counter_hash` in the shaders
    /// (dropout.wgsl and gather.wgsl share it).
    pub fn counter_hash(seed: u32, counter: u32) -> u32 {
        let key = mix32(seed ^ 0x9e37_79b9);
        mix32(mix32(counter ^ key) ^ seed)
    }

    /// Hashes below this are dropped: floor(rate * 2^32).
    pub fn drop_threshold(rate: f32) -> u32 {
        // rate < 1, so the product stays below 2^32; `as` saturates regardless.
        (f64::from(rate) * 4_294_967_296.0).floor() as u32
    }

    /// The inverted-dropout factor applied to kept elements.
    pub fn keep_scale(rate: f32) -> f32 {
        1.0 / (1.0 - rate)
    }

    /// Whether element `index` survives dropout at `rate` with `seed`.
    pub fn keep(seed: u32, index: u32, rate: f32) -> bool {
        counter_hash(seed, index) >= drop_threshold(rate)
    }

    /// `out[i] = keep(seed, i) ? inp[i] / (1 - rate) : 0`, forward (x -> y) or backward (dy -> dx).
    pub fn dropout(inp: &[f32], out: &mut [f32], rate: f32, seed: u32) {
        let scale = keep_scale(rate);
        for (i, (o, &x)) in out.iter_mut().zip(inp).enumerate() {
            *o = if keep(seed, i as u32, rate) {
                x * scale
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx, random_f32};

    fn run(d: &Dispatch) {
        let mut enc = ctx().encoder();
        d.encode(&mut enc);
        ctx().submit_and_wait(enc);
    }

    /// Inputs with no zeros, so a zero output means exactly "dropped".
    fn nonzero_input(n: usize, seed: u64) -> Vec<f32> {
        random_f32(n, seed, 1.0)
            .into_iter()
            .map(|v| if v == 0.0 { 0.5 } else { v })
            .collect()
    }

    #[test]
    fn gpu_matches_cpu_forward_and_backward() {
        let ctx = ctx();
        for (shape, rate, seed) in [
            (vec![1usize], 0.5f32, 1u32),
            (vec![7, 13, 5], 0.2, 77),
            (vec![129, 65], 0.5, 0xdead_beef),
            (vec![301], 0.9, 3),
        ] {
            let n: usize = shape.iter().product();
            let x = nonzero_input(n, 1);
            let dy = nonzero_input(n, 2);
            let xt = Tensor::from_f32(ctx, &x, &shape).unwrap();
            let dyt = Tensor::from_f32(ctx, &dy, &shape).unwrap();
            let yt = Tensor::zeros(ctx, &shape, DType::F32).unwrap();
            let dxt = Tensor::zeros(ctx, &shape, DType::F32).unwrap();
            let mut enc = ctx.encoder();
            prepare_dropout(ctx, &xt, &yt, rate, seed)
                .unwrap()
                .encode(&mut enc);
            prepare_dropout_backward(ctx, &dyt, &dxt, rate, seed)
                .unwrap()
                .encode(&mut enc);
            ctx.submit_and_wait(enc);
            let (y, dx) = (yt.to_f32(ctx).unwrap(), dxt.to_f32(ctx).unwrap());

            let mut y_cpu = vec![0.0; n];
            cpu::dropout(&x, &mut y_cpu, rate, seed);
            let mut dx_cpu = vec![0.0; n];
            cpu::dropout(&dy, &mut dx_cpu, rate, seed);
            assert_eq!(y, y_cpu, "forward {shape:?} rate {rate} (exact)");
            assert_eq!(dx, dx_cpu, "backward {shape:?} rate {rate} (exact)");
            for i in 0..n {
                let kept = cpu::keep(seed, i as u32, rate);
                assert_eq!(y[i] != 0.0, kept, "forward mask at {i}");
                assert_eq!(dx[i] != 0.0, kept, "backward mask at {i}");
            }
        }
    }

    #[test]
    fn backward_is_the_derivative_of_forward() {
        // Dropout is linear in x, so a central difference on the CPU reference is exact up to
        // rounding; the GPU backward must equal it.
        let (n, rate, seed) = (40usize, 0.3f32, 9u32);
        let x: Vec<f64> = random_f32(n, 4, 1.0).iter().map(|&v| v.into()).collect();
        let forward = |x: &[f64]| -> Vec<f64> {
            let scale = f64::from(cpu::keep_scale(rate));
            x.iter()
                .enumerate()
                .map(|(i, &v)| {
                    if cpu::keep(seed, i as u32, rate) {
                        v * scale
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let ctx = ctx();
        let ones = Tensor::from_f32(ctx, &vec![1.0; n], &[n]).unwrap();
        let dx = Tensor::zeros(ctx, &[n], DType::F32).unwrap();
        run(&prepare_dropout_backward(ctx, &ones, &dx, rate, seed).unwrap());
        let dx = dx.to_f32(ctx).unwrap();
        let h = 1e-3;
        for i in 0..n {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (forward(&up)[i] - forward(&down)[i]) / (2.0 * h);
            assert!(
                (numeric - f64::from(dx[i])).abs() < 1e-6,
                "index {i}: numeric {numeric}, gpu {} (tolerance 1e-6)",
                dx[i]
            );
        }
    }

    #[test]
    fn seed_controls_the_mask() {
        let ctx = ctx();
        let n = 1000;
        let x = nonzero_input(n, 5);
        let xt = Tensor::from_f32(ctx, &x, &[n]).unwrap();
        let yt = Tensor::zeros(ctx, &[n], DType::F32).unwrap();
        let mut d = prepare_dropout(ctx, &xt, &yt, 0.5, 11).unwrap();
        run(&d);
        let first = yt.to_f32(ctx).unwrap();
        run(&d);
        assert_eq!(yt.to_f32(ctx).unwrap(), first, "same seed twice");

        d.set_seed(ctx, 12);
        assert_eq!(d.seed(), 12);
        run(&d);
        let second = yt.to_f32(ctx).unwrap();
        let mut expected = vec![0.0; n];
        cpu::dropout(&x, &mut expected, 0.5, 12);
        assert_eq!(second, expected, "after set_seed(12) (exact)");
        // Independent masks at rate 0.5 disagree on about half the elements.
        let differing = first
            .iter()
            .zip(&second)
            .filter(|(a, b)| (**a == 0.0) != (**b == 0.0))
            .count();
        assert!(
            (350..=650).contains(&differing),
            "{differing} of {n} mask bits differ between seeds 11 and 12 (expected ~500)"
        );
    }

    #[test]
    fn kept_fraction_is_one_minus_rate() {
        let ctx = ctx();
        let n = 10_000usize;
        let xt = Tensor::from_f32(ctx, &vec![1.0; n], &[n]).unwrap();
        let yt = Tensor::zeros(ctx, &[n], DType::F32).unwrap();
        for (rate, seed) in [(0.1f32, 1u32), (0.5, 2), (0.8, 3)] {
            run(&prepare_dropout(ctx, &xt, &yt, rate, seed).unwrap());
            let kept = yt
                .to_f32(ctx)
                .unwrap()
                .iter()
                .filter(|&&v| v != 0.0)
                .count();
            let p = 1.0 - f64::from(rate);
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            let deviation = (kept as f64 - n as f64 * p).abs();
            assert!(
                deviation < 5.0 * sd,
                "rate {rate}: kept {kept} of {n}, expected {:.0} +- 5 sd ({:.0})",
                n as f64 * p,
                5.0 * sd
            );
        }
    }

    #[test]
    fn rate_zero_is_the_identity() {
        let ctx = ctx();
        let x = random_f32(77, 8, 3.0);
        let xt = Tensor::from_f32(ctx, &x, &[7, 11]).unwrap();
        let yt = Tensor::zeros(ctx, &[7, 11], DType::F32).unwrap();
        run(&prepare_dropout(ctx, &xt, &yt, 0.0, 123).unwrap());
        assert_eq!(yt.to_f32(ctx).unwrap(), x, "rate 0 (exact)");
    }

    #[test]
    fn rejects_bad_rate_shape_and_aliasing() {
        let ctx = ctx();
        let x = Tensor::zeros(ctx, &[4, 5], DType::F32).unwrap();
        let y = Tensor::zeros(ctx, &[5, 4], DType::F32).unwrap();
        let z = Tensor::zeros(ctx, &[4, 5], DType::F32).unwrap();
        for rate in [1.0f32, -0.1, f32::NAN] {
            let err = prepare_dropout(ctx, &x, &z, rate, 0)
                .unwrap_err()
                .to_string();
            assert!(err.contains("[0, 1)"), "{err}");
        }
        let err = prepare_dropout_backward(ctx, &x, &y, 0.5, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[4, 5]") && err.contains("[5, 4]"), "{err}");
        let err = prepare_dropout(ctx, &x, &x, 0.5, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("share one buffer"), "{err}");
    }
}
