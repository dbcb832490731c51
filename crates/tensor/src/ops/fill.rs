//! `fill`: set every element of an f32 tensor to one value (shaders/fill.wgsl).
//!
//! This module is the smallest complete example of the launcher pattern used by every
//! kernel family: a `SHADER` embedded from `shaders/`, a `prepare_<op>` that validates and
//! returns a reusable [`Dispatch`] (recorded into an encoder with [`Dispatch::encode`]), a
//! CPU reference in `cpu`, and tests holding the two together.

use crate::context::{GpuContext, ShaderSource};
use crate::error::Result;
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::tensor::{DType, Tensor};

pub const SHADER: ShaderSource = ShaderSource {
    name: "fill",
    wgsl: include_str!("../../../../shaders/fill.wgsl"),
};

const WG: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FillParams {
    n: u32,
    value: f32,
}

/// Prepare `out[i] = value` for every element of `out`.
pub fn prepare_fill(ctx: &GpuContext, out: &Tensor, value: f32) -> Result<Dispatch> {
    out.expect_dtype("fill", DType::F32)?;
    let params = FillParams {
        n: out.len() as u32,
        value,
    };
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        "fill",
        &[],
        &[(0, Binding::Tensor(out))],
        Some((1, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(out.len(), WG)),
    ))
}

/// CPU reference.
pub mod cpu {
    pub fn fill(out: &mut [f32], value: f32) {
        out.iter_mut().for_each(|x| *x = value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ctx;

    #[test]
    fn fill_matches_cpu_on_odd_lengths() {
        let ctx = ctx();
        for n in [1usize, 7, 257, 1000] {
            let t = Tensor::zeros(ctx, &[n], DType::F32).unwrap();
            let mut enc = ctx.encoder();
            prepare_fill(ctx, &t, 2.5).unwrap().encode(&mut enc);
            ctx.submit_and_wait(enc);
            let mut expected = vec![0.0; n];
            cpu::fill(&mut expected, 2.5);
            assert_eq!(t.to_f32(ctx).unwrap(), expected, "n = {n}");
        }
    }

    #[test]
    fn fill_rejects_integer_tensor() {
        let ctx = ctx();
        let t = Tensor::zeros(ctx, &[3], DType::U32).unwrap();
        let err = prepare_fill(ctx, &t, 1.0).unwrap_err().to_string();
        assert!(err.contains("F32") && err.contains("U32"), "{err}");
    }
}
