//! `to_texture`: an f32 tensor copied into an rgba32float texture, four values a texel and
//! [`TEXTURE_WIDTH`] texels a row (shaders/texture.wgsl), for kernels that read an operand
//! many times on adapters where texel loads are cheaper than storage loads (CPU Vulkan).

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::tensor::{DType, Tensor};

pub const SHADER: ShaderSource = ShaderSource {
    name: "texture",
    wgsl: include_str!("../../../../shaders/texture.wgsl"),
};

/// Texels per row (the shader's TEXTURE_WIDTH).
pub const TEXTURE_WIDTH: usize = 4096;

const OP: &str = "to_texture";
const WG: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TextureParams {
    texels: u32,
}

/// Texture rows that hold `values` f32 values (at least one).
pub fn texture_rows(values: usize) -> usize {
    values.div_ceil(4 * TEXTURE_WIDTH).max(1)
}

/// Whether `values` values (a multiple of 4) fit one texture on `ctx`'s adapter.
pub fn fits(ctx: &GpuContext, values: usize) -> bool {
    let side = ctx.limits.max_texture_dimension_2d as usize;
    values.is_multiple_of(4) && TEXTURE_WIDTH <= side && texture_rows(values) <= side
}

/// A zeroed rgba32float texture with room for `values` values, `TEXTURE_WIDTH` texels a row.
fn vec4_texture(ctx: &GpuContext, values: usize) -> wgpu::TextureView {
    let size = [TEXTURE_WIDTH, texture_rows(values)];
    ctx.texture_2d("vec4 texture", wgpu::TextureFormat::Rgba32Float, size)
}

/// A texture holding `src`'s values and the dispatch that copies them there; record the
/// dispatch whenever `src` has changed, before the kernels that read the texture.
pub fn prepare_to_texture(ctx: &GpuContext, src: &Tensor) -> Result<(wgpu::TextureView, Dispatch)> {
    src.expect_dtype(OP, DType::F32)?;
    if !fits(ctx, src.len()) {
        return Err(invalid_argument(
            OP,
            format!(
                "{} values do not fill whole texels or need more than max_texture_dimension_2d = {} rows of {TEXTURE_WIDTH} texels",
                src.len(),
                ctx.limits.max_texture_dimension_2d
            ),
        ));
    }
    let texels = src.len() / 4;
    let view = vec4_texture(ctx, src.len());
    let params = TextureParams {
        texels: u32::try_from(texels).map_err(|_| invalid_argument(OP, "over 2^32 texels"))?,
    };
    let dispatch = Dispatch::new(
        ctx,
        &SHADER,
        "to_texture",
        &[],
        &[(0, Binding::Tensor(src)), (1, Binding::Texture(&view))],
        Some((2, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(texels, WG)),
    );
    Ok((view, dispatch))
}

/// CPU reference.
pub mod cpu {
    use super::TEXTURE_WIDTH;

    /// Column, row and component of value `e` in the texture.
    pub fn texel_of(e: usize) -> (usize, usize, usize) {
        let t = e / 4;
        (t % TEXTURE_WIDTH, t / TEXTURE_WIDTH, e % 4)
    }

    /// The texture's contents, row by row, four floats a texel, of `rows` rows after copying
    /// `values` into a zeroed texture.
    pub fn to_texture(values: &[f32], rows: usize) -> Vec<f32> {
        let mut texture = vec![0.0; rows * TEXTURE_WIDTH * 4];
        for (e, &v) in values.iter().enumerate() {
            let (x, y, c) = texel_of(e);
            texture[(y * TEXTURE_WIDTH + x) * 4 + c] = v;
        }
        texture
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ctx, random_f32};

    /// Every texel of `view`'s texture, row by row.
    fn read_texture(ctx: &GpuContext, view: &wgpu::TextureView, rows: usize) -> Vec<f32> {
        let out = Tensor::zeros(ctx, &[rows * TEXTURE_WIDTH * 4], DType::F32).unwrap();
        let mut encoder = ctx.encoder();
        encoder.copy_texture_to_buffer(
            view.texture().as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: out.buffer(),
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some((TEXTURE_WIDTH * 16) as u32),
                    rows_per_image: None,
                },
            },
            view.texture().size(),
        );
        ctx.submit_and_wait(encoder);
        out.to_f32(ctx).unwrap()
    }

    #[test]
    fn to_texture_matches_cpu_on_ragged_rows() {
        let ctx = ctx();
        // Part of one row, one row and a texel, three rows with a ragged last one.
        for values in [8, 4 * (TEXTURE_WIDTH + 1), 4 * (2 * TEXTURE_WIDTH + 37)] {
            let data = random_f32(values, values as u64, 1.0);
            let src = Tensor::from_f32(ctx, &data, &[values]).unwrap();
            let (view, copy) = prepare_to_texture(ctx, &src).unwrap();
            let mut encoder = ctx.encoder();
            copy.encode(&mut encoder);
            ctx.submit_and_wait(encoder);
            let rows = texture_rows(values);
            assert_eq!(
                read_texture(ctx, &view, rows),
                cpu::to_texture(&data, rows),
                "{values} values"
            );
        }
    }

    #[test]
    fn tensors_that_do_not_fill_whole_texels_are_refused() {
        let ctx = ctx();
        let src = Tensor::zeros(ctx, &[6], DType::F32).unwrap();
        let err = prepare_to_texture(ctx, &src).unwrap_err().to_string();
        assert!(err.contains("6 values do not fill whole texels"), "{err}");
    }
}
