//! Ceiling micro-kernels (shaders/ceiling.wgsl): a copy for memory bandwidth, summing reads
//! for the rate of loads alone (from storage and from a uniform block), and a pure-FMA chain
//! for arithmetic rate. Benchmarks report
//! every kernel as a share of the copy's or the FMA chain's rate.

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, shape_error};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::tensor::{DType, Tensor, UNIFORM_BLOCK_BYTES};

pub const SHADER: ShaderSource = ShaderSource {
    name: "ceiling",
    wgsl: include_str!("../../../../shaders/ceiling.wgsl"),
};

const WG: usize = 256;
/// Reads per invocation of `load_sum` (the shader's LOADS override).
pub const LOAD_SUM_READS: usize = 8;
/// The shader's BLOCK_STEP: vec4s between one invocation's reads of the uniform block.
const BLOCK_STEP: usize = 521;
/// FMA rounds per invocation (the shader's ITERS override).
pub const FMA_ITERS: u32 = 256;
/// Independent vec4 chains per invocation in the shader.
const FMA_CHAINS: u64 = 8;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CeilingParams {
    n_vec4: u32,
    seed: f32,
}

fn check_vec4(op: &'static str, t: &Tensor) -> Result<u32> {
    t.expect_dtype(op, DType::F32)?;
    if !t.len().is_multiple_of(4) || t.is_empty() {
        return Err(shape_error(
            op,
            format!(
                "needs a non-empty f32 tensor whose length is a multiple of 4, got shape {:?}",
                t.shape()
            ),
        ));
    }
    Ok((t.len() / 4) as u32)
}

/// Prepare `dst = src` (same length, a multiple of 4 elements).
pub fn prepare_copy(ctx: &GpuContext, src: &Tensor, dst: &Tensor) -> Result<Dispatch> {
    let n_vec4 = check_vec4("copy", src)?;
    if dst.len() != src.len() || dst.dtype() != DType::F32 {
        return Err(shape_error(
            "copy",
            format!(
                "src is {:?} but dst is {:?} {:?}",
                src.shape(),
                dst.dtype(),
                dst.shape()
            ),
        ));
    }
    let params = CeilingParams { n_vec4, seed: 0.0 };
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        "copy",
        &[],
        &[(0, Binding::Tensor(src)), (1, Binding::Tensor(dst))],
        Some((2, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(n_vec4 as usize, WG)),
    ))
}

/// Prepare `dst[i] = sum over j < LOAD_SUM_READS of src[i + j * dst.len()]` (vec4-wise): `src`
/// is `LOAD_SUM_READS` times as long as `dst`, whose length is a multiple of 4.
pub fn prepare_load_sum(ctx: &GpuContext, src: &Tensor, dst: &Tensor) -> Result<Dispatch> {
    let n_vec4 = check_vec4("load_sum", dst)?;
    src.expect_dtype("load_sum", DType::F32)?;
    if Some(src.len()) != dst.len().checked_mul(LOAD_SUM_READS) {
        return Err(shape_error(
            "load_sum",
            format!(
                "src must hold {LOAD_SUM_READS} times dst's {} elements, got {}",
                dst.len(),
                src.len()
            ),
        ));
    }
    let bindings = [(0, Binding::Tensor(src)), (1, Binding::Tensor(dst))];
    Ok(summing_reads(ctx, "load_sum", &bindings, n_vec4))
}

/// A dispatch of one of the summing-read kernels: `LOAD_SUM_READS` reads per vec4 written.
fn summing_reads(
    ctx: &GpuContext,
    entry: &'static str,
    bindings: &[(u32, Binding<'_>)],
    n_vec4: u32,
) -> Dispatch {
    let params = CeilingParams { n_vec4, seed: 0.0 };
    Dispatch::new(
        ctx,
        &SHADER,
        entry,
        &[("LOADS", LOAD_SUM_READS as f64)],
        bindings,
        Some((2, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(n_vec4 as usize, WG)),
    )
}

/// Prepare `block_load_sum`: `dst[i] = sum over j < LOAD_SUM_READS of block[(i + j * 521) %
/// 4096]` (vec4-wise), `block` a whole uniform block ([`Tensor::zeros_uniform_block`] of
/// 16,384 f32), `dst` a multiple of 4 elements.
pub fn prepare_block_load_sum(ctx: &GpuContext, block: &Tensor, dst: &Tensor) -> Result<Dispatch> {
    let n_vec4 = check_vec4("block_load_sum", dst)?;
    block.expect_dtype("block_load_sum", DType::F32)?;
    let whole = block.len() as u64 * 4 == UNIFORM_BLOCK_BYTES;
    if !whole || !block.buffer().usage().contains(wgpu::BufferUsages::UNIFORM) {
        return Err(shape_error(
            "block_load_sum",
            format!(
                "the block must be a whole uniform block of {UNIFORM_BLOCK_BYTES} bytes (Tensor::zeros_uniform_block), got shape {:?}",
                block.shape()
            ),
        ));
    }
    let bindings = [(1, Binding::Tensor(dst)), (3, Binding::Tensor(block))];
    Ok(summing_reads(ctx, "block_load_sum", &bindings, n_vec4))
}

/// Prepare the FMA chain: one invocation per vec4 of `out`.
pub fn prepare_fma(ctx: &GpuContext, out: &Tensor, seed: f32) -> Result<Dispatch> {
    let n_vec4 = check_vec4("fma", out)?;
    let params = CeilingParams { n_vec4, seed };
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        "fma_chain",
        &[("ITERS", f64::from(FMA_ITERS))],
        &[(1, Binding::Tensor(out))],
        Some((2, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(n_vec4 as usize, WG)),
    ))
}

/// Floating-point operations of one FMA dispatch over `out_len` f32 outputs.
pub fn fma_flops(out_len: usize) -> u64 {
    (out_len as u64 / 4) * u64::from(FMA_ITERS) * FMA_CHAINS * 4 * 2
}

/// CPU references.
pub mod cpu {
    /// What `load_sum` writes for `src` (`reads` times as long as the result), in its order.
    pub fn load_sum(src: &[f32], reads: usize) -> Vec<f32> {
        let n = src.len() / reads;
        (0..n)
            .map(|i| (0..reads).fold(0.0f32, |sum, j| sum + src[i + j * n]))
            .collect()
    }

    /// What `block_load_sum` writes: `n` values (a multiple of 4) from the block's values.
    pub fn block_load_sum(block: &[f32], n: usize, reads: usize) -> Vec<f32> {
        let vec4s = block.len() / 4;
        (0..n)
            .map(|k| {
                let (i, lane) = (k / 4, k % 4);
                (0..reads).fold(0.0f32, |sum, j| {
                    sum + block[4 * ((i + j * super::BLOCK_STEP) % vec4s) + lane]
                })
            })
            .collect()
    }

    /// What the FMA kernel writes for invocation `i` (one lane, `lane` in 0..4).
    pub fn fma_chain(seed: f32, i: usize, lane: usize, iters: u32) -> f32 {
        let a = [0.9999f32, 0.9998, 0.9997, 0.9996][lane];
        let b = seed + i as f32 * 1e-7;
        let mut chains: Vec<f32> = (0..8).map(|c| b + c as f32).collect();
        for _ in 0..iters {
            for x in chains.iter_mut() {
                *x = x.mul_add(a, b);
            }
        }
        ((chains[0] + chains[1]) + (chains[2] + chains[3]))
            + ((chains[4] + chains[5]) + (chains[6] + chains[7]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, ctx, random_f32};

    #[test]
    fn copy_reproduces_the_source() {
        let ctx = ctx();
        let data = random_f32(4 * 301, 1, 3.0);
        let src = Tensor::from_f32(ctx, &data, &[data.len()]).unwrap();
        let dst = Tensor::zeros(ctx, &[data.len()], DType::F32).unwrap();
        let mut enc = ctx.encoder();
        prepare_copy(ctx, &src, &dst).unwrap().encode(&mut enc);
        ctx.submit_and_wait(enc);
        assert_eq!(dst.to_f32(ctx).unwrap(), data);
    }

    #[test]
    fn load_sum_matches_cpu() {
        let ctx = ctx();
        // 4 * 67 outputs: a partial last workgroup.
        let data = random_f32(4 * 67 * LOAD_SUM_READS, 2, 3.0);
        let src = Tensor::from_f32(ctx, &data, &[data.len()]).unwrap();
        let dst = Tensor::zeros(ctx, &[4 * 67], DType::F32).unwrap();
        let mut enc = ctx.encoder();
        prepare_load_sum(ctx, &src, &dst).unwrap().encode(&mut enc);
        ctx.submit_and_wait(enc);
        let expected = cpu::load_sum(&data, LOAD_SUM_READS);
        assert_close(&dst.to_f32(ctx).unwrap(), &expected, 1e-6, 1e-6, "load_sum");
    }

    #[test]
    fn load_sum_rejects_a_source_of_the_wrong_length() {
        let ctx = ctx();
        let src = Tensor::zeros(ctx, &[4 * LOAD_SUM_READS + 1], DType::F32).unwrap();
        let dst = Tensor::zeros(ctx, &[4], DType::F32).unwrap();
        let err = prepare_load_sum(ctx, &src, &dst).unwrap_err().to_string();
        assert!(err.contains("load_sum") && err.contains("8 times"), "{err}");
    }

    #[test]
    fn block_load_sum_matches_cpu_and_needs_a_whole_block() {
        let ctx = ctx();
        let values = random_f32((UNIFORM_BLOCK_BYTES / 4) as usize, 3, 3.0);
        let block = Tensor::zeros_uniform_block(ctx, &[values.len()], DType::F32).unwrap();
        block.write_f32(ctx, &values).unwrap();
        // 4 * 1031 outputs: reads wrap around the block; a partial last workgroup.
        let dst = Tensor::zeros(ctx, &[4 * 1031], DType::F32).unwrap();
        let mut enc = ctx.encoder();
        prepare_block_load_sum(ctx, &block, &dst)
            .unwrap()
            .encode(&mut enc);
        ctx.submit_and_wait(enc);
        let expected = cpu::block_load_sum(&values, 4 * 1031, LOAD_SUM_READS);
        assert_close(
            &dst.to_f32(ctx).unwrap(),
            &expected,
            1e-6,
            1e-6,
            "block_load_sum",
        );
        let storage = Tensor::zeros(ctx, &[values.len()], DType::F32).unwrap();
        let err = prepare_block_load_sum(ctx, &storage, &dst)
            .unwrap_err()
            .to_string();
        assert!(err.contains("whole uniform block"), "{err}");
    }

    #[test]
    fn fma_matches_cpu_chain() {
        let ctx = ctx();
        let out = Tensor::zeros(ctx, &[4 * 37], DType::F32).unwrap();
        let mut enc = ctx.encoder();
        prepare_fma(ctx, &out, 0.5).unwrap().encode(&mut enc);
        ctx.submit_and_wait(enc);
        let expected: Vec<f32> = (0..4 * 37)
            .map(|k| cpu::fma_chain(0.5, k / 4, k % 4, FMA_ITERS))
            .collect();
        // A GPU may contract or reorder differently; the chain is well conditioned.
        assert_close(
            &out.to_f32(ctx).unwrap(),
            &expected,
            1e-3,
            1e-4,
            "fma chain",
        );
    }

    #[test]
    fn copy_rejects_mismatched_lengths() {
        let ctx = ctx();
        let src = Tensor::zeros(ctx, &[8], DType::F32).unwrap();
        let dst = Tensor::zeros(ctx, &[12], DType::F32).unwrap();
        let err = prepare_copy(ctx, &src, &dst).unwrap_err().to_string();
        assert!(err.contains("[8]") && err.contains("[12]"), "{err}");
    }
}
