//! Batch gather (shaders/gather.wgsl): builds each mini-batch on the GPU from a data set that
//! stays resident there, through a (shuffled) index buffer.
//!
//! - [`prepare_gather_images`]: u8 images `[N, H, W]` or `[N, C, H, W]` to f32, scaled,
//!   optionally translated by a random (dx, dy) per image (the "jitter" augmentation).
//! - [`prepare_gather_rows`]: f32 rows `[N, D]`, e.g. cached teacher logits per example.
//! - [`prepare_gather_labels`]: u32 labels `[N]`.
//!
//! Batch row `b` copies data-set row `indices[start + b]`. Two cases write zeros instead,
//! and never read the data set: `start + b >= M` (the last, partial batch of an epoch) and an
//! index `>= N` (out of range). For labels that zero is label 0, so a partial batch's
//! padding rows must be excluded from loss and accuracy by the caller (e.g. by batch size).
//! For images it is 0.0, not `offset`. Every dispatch starts at `start = 0`, `seed = 0`;
//! [`GatherDispatch::set_batch`] moves it.

use std::ops::Deref;

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument, shape_error};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for};
use crate::ops::elementwise::expect_u32_len;
use crate::tensor::{DType, Tensor};

pub const SHADER: ShaderSource = ShaderSource {
    name: "gather",
    wgsl: include_str!("../../../../shaders/gather.wgsl"),
};

const WG: usize = 256;

// Binding slots of shaders/gather.wgsl.
const SLOT_DATA: u32 = 0;
const SLOT_INDICES: u32 = 1;
const SLOT_OUT: u32 = 2;
const SLOT_PARAMS: u32 = 3;
const SLOT_SRC_ROWS: u32 = 4;
const SLOT_SRC_LABELS: u32 = 5;
const SLOT_OUT_LABELS: u32 = 6;

/// How gathered u8 pixels become f32: `pixel * scale + offset`, then a random translation
/// of up to `max_shift` pixels in x and in y (0 = none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GatherImageParams {
    pub scale: f32,
    pub offset: f32,
    pub max_shift: u32,
}

impl Default for GatherImageParams {
    /// Pixels to [0, 1], no translation.
    fn default() -> Self {
        Self {
            scale: 1.0 / 255.0,
            offset: 0.0,
            max_shift: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherParams {
    batch: u32,
    row_len: u32,
    width: u32,
    height: u32,
    num_rows: u32,
    num_indices: u32,
    start: u32,
    seed: u32,
    scale: f32,
    offset: f32,
    max_shift: u32,
    _pad: u32,
}

/// A prepared gather whose batch position and shift seed can change between submissions.
#[derive(Debug)]
pub struct GatherDispatch {
    dispatch: Dispatch,
    params: GatherParams,
}

impl GatherDispatch {
    /// Gather rows `indices[start..start + B]` with shift seed `seed` from the next submission
    /// on. Dispatches recorded into one encoder all see the values set last before its
    /// submission, so submit once per batch.
    pub fn set_batch(&mut self, ctx: &GpuContext, start: u32, seed: u32) {
        self.params.start = start;
        self.params.seed = seed;
        self.dispatch
            .update_params(ctx, bytemuck::bytes_of(&self.params));
    }

    /// Position in `indices` of the next batch's first row.
    pub fn start(&self) -> u32 {
        self.params.start
    }

    /// Seed of the next batch's random translations.
    pub fn seed(&self) -> u32 {
        self.params.seed
    }

    /// Rows per batch (B).
    pub fn batch(&self) -> usize {
        self.params.batch as usize
    }

    /// The underlying launch, for [`crate::record_all`].
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }
}

impl Deref for GatherDispatch {
    type Target = Dispatch;
    fn deref(&self) -> &Dispatch {
        &self.dispatch
    }
}

fn expect_rank(
    op: &'static str,
    name: &str,
    t: &Tensor,
    ranks: &[usize],
    form: &str,
) -> Result<()> {
    if !ranks.contains(&t.shape().len()) {
        return Err(shape_error(
            op,
            format!("{name} must be {form}, got {:?}", t.shape()),
        ));
    }
    Ok(())
}

fn expect_indices(op: &'static str, indices: &Tensor) -> Result<()> {
    indices.expect_dtype(op, DType::U32)?;
    expect_rank(op, "indices", indices, &[1], "[M]")?;
    expect_u32_len(op, "indices", indices)
}

/// Error unless `out` is `[B, ...]` with the per-row dims of `src` (`src.shape()[1..]`).
fn expect_batch_of(op: &'static str, src: (&str, &Tensor), out: &Tensor) -> Result<()> {
    let row_dims = &src.1.shape()[1..];
    let out_shape = out.shape();
    if out_shape.is_empty() || &out_shape[1..] != row_dims {
        return Err(shape_error(
            op,
            format!(
                "out is {out_shape:?} but {} is {:?}: out must be [B, {}]",
                src.0,
                src.1.shape(),
                row_dims
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}

fn expect_distinct(op: &'static str, out: (&str, &Tensor), other: (&str, &Tensor)) -> Result<()> {
    if out.1.same_buffer(other.1) {
        return Err(invalid_argument(
            op,
            format!(
                "{} and {} share one buffer; out must be a separate tensor",
                out.0, other.0
            ),
        ));
    }
    Ok(())
}

fn build(
    ctx: &GpuContext,
    entry: &'static str,
    bindings: &[(u32, Binding<'_>)],
    params: GatherParams,
) -> GatherDispatch {
    let elements = params.batch as usize * params.row_len as usize;
    let dispatch = Dispatch::new(
        ctx,
        &SHADER,
        entry,
        &[],
        bindings,
        Some((SLOT_PARAMS, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(elements, WG)),
    );
    GatherDispatch { dispatch, params }
}

/// Prepare `out[b] = shift(data[indices[start + b]]) * scale + offset` for u8 images.
///
/// `data` is U8 `[N, H, W]` or `[N, C, H, W]`, `indices` U32 `[M]`, `out` F32 `[B, ...]` with
/// the image dims of `data`. With `max_shift > 0` each image moves by (dx, dy) in
/// `[-max_shift, max_shift]` drawn from `cpu::shift(seed, start + b, max_shift)`, the same
/// shift for all its channels; uncovered pixels become `offset`. `max_shift` must be below
/// both H and W.
pub fn prepare_gather_images(
    ctx: &GpuContext,
    data: &Tensor,
    indices: &Tensor,
    out: &Tensor,
    p: GatherImageParams,
) -> Result<GatherDispatch> {
    let op = "gather_images";
    data.expect_dtype(op, DType::U8)?;
    expect_rank(op, "data", data, &[3, 4], "[N, H, W] or [N, C, H, W]")?;
    expect_indices(op, indices)?;
    out.expect_dtype(op, DType::F32)?;
    expect_batch_of(op, ("data", data), out)?;
    expect_u32_len(op, "data", data)?;
    expect_u32_len(op, "out", out)?;
    let shape = data.shape();
    let (height, width) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    if p.max_shift > 0 && (p.max_shift as usize >= height.min(width) || p.max_shift > 0x7fff) {
        return Err(invalid_argument(
            op,
            format!(
                "max_shift is {} pixels, it must be below the image height {height} and width {width}",
                p.max_shift
            ),
        ));
    }
    if !p.scale.is_finite() || !p.offset.is_finite() {
        return Err(invalid_argument(
            op,
            format!("scale {} and offset {} must be finite", p.scale, p.offset),
        ));
    }
    let params = GatherParams {
        batch: out.shape()[0] as u32,
        row_len: shape[1..].iter().product::<usize>() as u32,
        width: width as u32,
        height: height as u32,
        num_rows: shape[0] as u32,
        num_indices: indices.len() as u32,
        start: 0,
        seed: 0,
        scale: p.scale,
        offset: p.offset,
        max_shift: p.max_shift,
        _pad: 0,
    };
    Ok(build(
        ctx,
        "gather_images",
        &[
            (SLOT_DATA, Binding::Tensor(data)),
            (SLOT_INDICES, Binding::Tensor(indices)),
            (SLOT_OUT, Binding::Tensor(out)),
        ],
        params,
    ))
}

/// Params of the row and label gathers: only the geometry and the index range matter.
fn plain_params(batch: usize, row_len: usize, num_rows: usize, num_indices: usize) -> GatherParams {
    GatherParams {
        batch: batch as u32,
        row_len: row_len as u32,
        width: 0,
        height: 0,
        num_rows: num_rows as u32,
        num_indices: num_indices as u32,
        start: 0,
        seed: 0,
        scale: 1.0,
        offset: 0.0,
        max_shift: 0,
        _pad: 0,
    }
}

/// Prepare `out[b, :] = src[indices[start + b], :]` for f32 rows: `src` `[N, D]`,
/// `indices` U32 `[M]`, `out` `[B, D]`.
pub fn prepare_gather_rows(
    ctx: &GpuContext,
    src: &Tensor,
    indices: &Tensor,
    out: &Tensor,
) -> Result<GatherDispatch> {
    let op = "gather_rows";
    src.expect_dtype(op, DType::F32)?;
    expect_rank(op, "src", src, &[2], "[N, D]")?;
    expect_indices(op, indices)?;
    out.expect_dtype(op, DType::F32)?;
    expect_batch_of(op, ("src", src), out)?;
    expect_u32_len(op, "src", src)?;
    expect_u32_len(op, "out", out)?;
    expect_distinct(op, ("out", out), ("src", src))?;
    let params = plain_params(
        out.shape()[0],
        src.shape()[1],
        src.shape()[0],
        indices.len(),
    );
    Ok(build(
        ctx,
        "gather_rows",
        &[
            (SLOT_INDICES, Binding::Tensor(indices)),
            (SLOT_OUT, Binding::Tensor(out)),
            (SLOT_SRC_ROWS, Binding::Tensor(src)),
        ],
        params,
    ))
}

/// Prepare `out[b] = labels[indices[start + b]]`: `labels` U32 `[N]`, `out` U32 `[B]`.
/// Padding rows (past M, or an index >= N) get label 0.
pub fn prepare_gather_labels(
    ctx: &GpuContext,
    labels: &Tensor,
    indices: &Tensor,
    out: &Tensor,
) -> Result<GatherDispatch> {
    let op = "gather_labels";
    labels.expect_dtype(op, DType::U32)?;
    expect_rank(op, "labels", labels, &[1], "[N]")?;
    expect_u32_len(op, "labels", labels)?;
    expect_indices(op, indices)?;
    out.expect_dtype(op, DType::U32)?;
    expect_batch_of(op, ("labels", labels), out)?;
    expect_distinct(op, ("out", out), ("labels", labels))?;
    expect_distinct(op, ("out", out), ("indices", indices))?;
    let params = plain_params(out.shape()[0], 1, labels.len(), indices.len());
    Ok(build(
        ctx,
        "gather_labels",
        &[
            (SLOT_INDICES, Binding::Tensor(indices)),
            (SLOT_SRC_LABELS, Binding::Tensor(labels)),
            (SLOT_OUT_LABELS, Binding::Tensor(out)),
        ],
        params,
    ))
}

/// CPU reference, mirroring the shader (same hash, same zero rows).
pub mod cpu {
    use super::GatherImageParams;
    use crate::ops::dropout::cpu::counter_hash;

    /// The data-set row that batch row `b` copies; `None` past the index list or out of range.
    pub fn source_row(indices: &[u32], num_rows: usize, start: u32, b: usize) -> Option<usize> {
        let pos = start as usize + b;
        let src = *indices.get(pos)? as usize;
        (src < num_rows).then_some(src)
    }

    /// The translation (dx, dy) of the image at index position `pos`, each in
    /// `[-max_shift, max_shift]`: low and high 16 bits of `counter_hash(seed, pos)`.
    pub fn shift(seed: u32, pos: u32, max_shift: u32) -> (i32, i32) {
        if max_shift == 0 {
            return (0, 0);
        }
        let h = counter_hash(seed, pos);
        let span = 2 * max_shift + 1;
        let shift = max_shift as i32;
        (
            ((h & 0xffff) % span) as i32 - shift,
            ((h >> 16) % span) as i32 - shift,
        )
    }

    /// One batch of images: `data` holds `N * prod(image_dims)` bytes, `image_dims` is
    /// `[H, W]` or `[C, H, W]`; returns `batch * prod(image_dims)` f32 values.
    pub fn gather_images(
        data: &[u8],
        image_dims: &[usize],
        indices: &[u32],
        batch: usize,
        start: u32,
        seed: u32,
        p: GatherImageParams,
    ) -> Vec<f32> {
        let row_len: usize = image_dims.iter().product();
        let (height, width) = (
            image_dims[image_dims.len() - 2],
            image_dims[image_dims.len() - 1],
        );
        let channels = row_len / (height * width);
        let num_rows = data.len() / row_len;
        let mut out = vec![0.0; batch * row_len];
        for (b, image) in out.chunks_mut(row_len).enumerate() {
            let Some(src) = source_row(indices, num_rows, start, b) else {
                continue;
            };
            let source = &data[src * row_len..(src + 1) * row_len];
            let (dx, dy) = shift(seed, start.wrapping_add(b as u32), p.max_shift);
            for c in 0..channels {
                for y in 0..height {
                    for x in 0..width {
                        let (sx, sy) = (x as i64 - i64::from(dx), y as i64 - i64::from(dy));
                        let inside =
                            (0..width as i64).contains(&sx) && (0..height as i64).contains(&sy);
                        let pixel = if inside {
                            source[(c * height + sy as usize) * width + sx as usize]
                        } else {
                            0
                        };
                        image[(c * height + y) * width + x] = f32::from(pixel) * p.scale + p.offset;
                    }
                }
            }
        }
        out
    }

    /// One batch of rows of `src` (`row_len` values each).
    pub fn gather_rows(
        src: &[f32],
        row_len: usize,
        indices: &[u32],
        batch: usize,
        start: u32,
    ) -> Vec<f32> {
        let num_rows = src.len() / row_len;
        let mut out = vec![0.0; batch * row_len];
        for (b, row) in out.chunks_mut(row_len).enumerate() {
            if let Some(s) = source_row(indices, num_rows, start, b) {
                row.copy_from_slice(&src[s * row_len..(s + 1) * row_len]);
            }
        }
        out
    }

    /// One batch of labels; padding rows get 0.
    pub fn gather_labels(labels: &[u32], indices: &[u32], batch: usize, start: u32) -> Vec<u32> {
        (0..batch)
            .map(|b| source_row(indices, labels.len(), start, b).map_or(0, |s| labels[s]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, ctx, random_f32};

    /// Deterministic test bytes covering 0..=255.
    fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        random_f32(n, seed, 1.0)
            .iter()
            .map(|v| ((v + 1.0) * 127.999) as u8)
            .collect()
    }

    /// A permutation of 0..n (Fisher-Yates driven by the dropout hash).
    fn permutation(n: usize, seed: u32) -> Vec<u32> {
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = crate::ops::dropout::cpu::counter_hash(seed, i as u32) as usize % (i + 1);
            p.swap(i, j);
        }
        p
    }

    /// Gather every batch of an epoch on the GPU with one prepared dispatch, moving it with
    /// `set_batch`, and compare each against the CPU reference.
    fn check_image_epoch(data_shape: &[usize], batch: usize, p: GatherImageParams, seed: u32) {
        let ctx = ctx();
        let n = data_shape[0];
        let image_dims = &data_shape[1..];
        let bytes = random_bytes(data_shape.iter().product(), u64::from(seed));
        let indices = permutation(n, seed);
        let data = Tensor::from_u8(ctx, &bytes, data_shape).unwrap();
        let index_t = Tensor::from_u32(ctx, &indices, &[n]).unwrap();
        let mut out_shape = vec![batch];
        out_shape.extend_from_slice(image_dims);
        let out = Tensor::zeros(ctx, &out_shape, DType::F32).unwrap();
        let mut d = prepare_gather_images(ctx, &data, &index_t, &out, p).unwrap();
        for (step, start) in (0..n).step_by(batch).enumerate() {
            let batch_seed = seed.wrapping_mul(31).wrapping_add(step as u32);
            d.set_batch(ctx, start as u32, batch_seed);
            let mut enc = ctx.encoder();
            d.encode(&mut enc);
            ctx.submit_and_wait(enc);
            let expected = cpu::gather_images(
                &bytes,
                image_dims,
                &indices,
                batch,
                start as u32,
                batch_seed,
                p,
            );
            assert_close(
                &out.to_f32(ctx).unwrap(),
                &expected,
                1e-6,
                1e-6,
                &format!("images {data_shape:?} batch at {start}, {p:?} (atol 1e-6, rtol 1e-6)"),
            );
        }
    }

    #[test]
    fn images_match_cpu_without_shift() {
        let p = GatherImageParams::default();
        check_image_epoch(&[13, 5, 7], 4, p, 1);
        check_image_epoch(&[13, 28, 28], 5, p, 2);
    }

    #[test]
    fn images_match_cpu_with_shift() {
        let p = GatherImageParams {
            scale: 2.0 / 255.0,
            offset: -1.0,
            max_shift: 2,
        };
        check_image_epoch(&[13, 5, 7], 4, p, 3);
        check_image_epoch(&[13, 28, 28], 6, p, 4);
        check_image_epoch(&[5, 3, 5, 7], 2, GatherImageParams { max_shift: 1, ..p }, 5);
    }

    #[test]
    fn shift_translates_the_image_and_fills_borders_with_offset() {
        // Check the CPU reference's geometry independently: find a position whose shift is
        // (dx, dy) = nonzero on both axes and compare pixels directly.
        let (h, w, max_shift) = (5usize, 7usize, 2u32);
        let seed = 17;
        let pos = (0..1000u32)
            .find(|&pos| {
                let (dx, dy) = cpu::shift(seed, pos, max_shift);
                dx != 0 && dy != 0
            })
            .expect("some position shifts on both axes");
        let (dx, dy) = cpu::shift(seed, pos, max_shift);
        let image: Vec<u8> = (0..(h * w) as u8).map(|v| v + 1).collect();
        let mut indices = vec![0u32; pos as usize + 1];
        indices[pos as usize] = 0;
        let p = GatherImageParams {
            scale: 1.0,
            offset: -0.5,
            max_shift,
        };
        let out = cpu::gather_images(&image, &[h, w], &indices, 1, pos, seed, p);
        for y in 0..h as i32 {
            for x in 0..w as i32 {
                let (sx, sy) = (x - dx, y - dy);
                let expected = if (0..w as i32).contains(&sx) && (0..h as i32).contains(&sy) {
                    f32::from(image[(sy * w as i32 + sx) as usize]) - 0.5
                } else {
                    -0.5
                };
                assert_eq!(
                    out[(y * w as i32 + x) as usize],
                    expected,
                    "pixel ({x}, {y}), shift ({dx}, {dy})"
                );
            }
        }
    }

    #[test]
    fn shift_moves_each_channel_plane_within_itself() {
        // Three planes of 5x7 whose bytes say plane, row and column: a pixel that bled
        // across planes, or wrapped around a row, would show another plane's or row's code.
        let (c, h, w, max_shift) = (3usize, 5usize, 7usize, 2u32);
        let code = |plane: usize, y: usize, x: usize| (100 * plane + 10 * y + x + 1) as u8;
        let image: Vec<u8> = (0..c * h * w)
            .map(|i| code(i / (h * w), (i / w) % h, i % w))
            .collect();
        let seed = 5;
        let p = GatherImageParams {
            scale: 1.0,
            offset: -1.0,
            max_shift,
        };
        let mut shifted_both_ways = false;
        for pos in 0..40u32 {
            let (dx, dy) = cpu::shift(seed, pos, max_shift);
            shifted_both_ways |= dx != 0 && dy != 0;
            let mut indices = vec![0u32; pos as usize + 1];
            indices[pos as usize] = 0;
            let out = cpu::gather_images(&image, &[c, h, w], &indices, 1, pos, seed, p);
            for plane in 0..c {
                for y in 0..h as i32 {
                    for x in 0..w as i32 {
                        let (sx, sy) = (x - dx, y - dy);
                        let inside = (0..w as i32).contains(&sx) && (0..h as i32).contains(&sy);
                        // Uncovered pixels read as byte 0, i.e. come out as the offset.
                        let byte = if inside {
                            code(plane, sy as usize, sx as usize)
                        } else {
                            0
                        };
                        let expected = f32::from(byte) + p.offset;
                        let at = (plane * h + y as usize) * w + x as usize;
                        assert_eq!(
                            out[at], expected,
                            "plane {plane} pixel ({x}, {y}), shift ({dx}, {dy})"
                        );
                    }
                }
            }
        }
        assert!(shifted_both_ways, "some position shifts on both axes");
    }

    #[test]
    fn colour_images_match_cpu_on_an_odd_shape() {
        // 11 images of 3 planes of 7x9 (693 bytes each, an odd total), batches of 4 with a
        // partial last one, shifts up to 3 px.
        let p = GatherImageParams {
            max_shift: 3,
            ..GatherImageParams::default()
        };
        check_image_epoch(&[11, 3, 7, 9], 4, p, 21);
        check_image_epoch(&[11, 3, 7, 9], 4, GatherImageParams::default(), 22);
    }

    #[test]
    fn shifts_cover_the_whole_range() {
        let mut seen = [[false; 5]; 2];
        for pos in 0..400 {
            let (dx, dy) = cpu::shift(99, pos, 2);
            seen[0][(dx + 2) as usize] = true;
            seen[1][(dy + 2) as usize] = true;
        }
        assert!(seen.iter().flatten().all(|&s| s), "shifts seen: {seen:?}");
    }

    #[test]
    fn rows_and_labels_match_cpu_with_partial_batch_and_bad_index() {
        let ctx = ctx();
        let (n, d, batch) = (13usize, 10usize, 5usize);
        let src = random_f32(n * d, 8, 4.0);
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 3) % 10).collect();
        let mut indices = permutation(n, 6);
        indices[3] = 1000; // out of range: zero row, label 0, nothing read
        let src_t = Tensor::from_f32(ctx, &src, &[n, d]).unwrap();
        let labels_t = Tensor::from_u32(ctx, &labels, &[n]).unwrap();
        let index_t = Tensor::from_u32(ctx, &indices, &[n]).unwrap();
        let rows_out = Tensor::zeros(ctx, &[batch, d], DType::F32).unwrap();
        let labels_out = Tensor::zeros(ctx, &[batch], DType::U32).unwrap();
        let mut rows = prepare_gather_rows(ctx, &src_t, &index_t, &rows_out).unwrap();
        let mut labs = prepare_gather_labels(ctx, &labels_t, &index_t, &labels_out).unwrap();
        for start in [0u32, 5, 10, 13, 40] {
            rows.set_batch(ctx, start, 0);
            labs.set_batch(ctx, start, 0);
            let mut enc = ctx.encoder();
            crate::kernel::record_all(&mut enc, [rows.dispatch(), labs.dispatch()]);
            ctx.submit_and_wait(enc);
            let expected_rows = cpu::gather_rows(&src, d, &indices, batch, start);
            let expected_labels = cpu::gather_labels(&labels, &indices, batch, start);
            assert_eq!(
                rows_out.to_f32(ctx).unwrap(),
                expected_rows,
                "rows at {start} (exact)"
            );
            assert_eq!(
                labels_out.to_u32(ctx).unwrap(),
                expected_labels,
                "labels at {start}"
            );
            if start == 10 {
                // Rows 3 and 4 lie past M = 13: zeros.
                assert!(expected_rows[3 * d..].iter().all(|&v| v == 0.0));
            }
        }
        // The out-of-range index produced a zero row rather than data.
        let expected = cpu::gather_rows(&src, d, &indices, batch, 0);
        assert!(expected[3 * d..4 * d].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn prepared_gather_with_a_batch_set_gathers_that_batch() {
        let ctx = ctx();
        let bytes = random_bytes(6 * 4 * 3, 12);
        let indices = vec![5u32, 0, 3, 2, 1, 4];
        let data = Tensor::from_u8(ctx, &bytes, &[6, 4, 3]).unwrap();
        let index_t = Tensor::from_u32(ctx, &indices, &[6]).unwrap();
        let out = Tensor::zeros(ctx, &[4, 4, 3], DType::F32).unwrap();
        let p = GatherImageParams {
            max_shift: 1,
            ..Default::default()
        };
        let mut enc = ctx.encoder();
        let mut gather = prepare_gather_images(ctx, &data, &index_t, &out, p).unwrap();
        gather.set_batch(ctx, 4, 77);
        gather.encode(&mut enc);
        ctx.submit_and_wait(enc);
        let expected = cpu::gather_images(&bytes, &[4, 3], &indices, 4, 4, 77, p);
        assert_close(
            &out.to_f32(ctx).unwrap(),
            &expected,
            1e-6,
            1e-6,
            "gather_images (atol 1e-6, rtol 1e-6)",
        );
    }

    #[test]
    fn errors_name_dtypes_and_shapes() {
        let ctx = ctx();
        let data = Tensor::zeros(ctx, &[13, 5, 7], DType::U8).unwrap();
        let data_f32 = Tensor::zeros(ctx, &[13, 5, 7], DType::F32).unwrap();
        let indices = Tensor::zeros(ctx, &[13], DType::U32).unwrap();
        let indices_f32 = Tensor::zeros(ctx, &[13], DType::F32).unwrap();
        let out = Tensor::zeros(ctx, &[4, 5, 7], DType::F32).unwrap();
        let bad_out = Tensor::zeros(ctx, &[4, 7, 5], DType::F32).unwrap();
        let p = GatherImageParams::default();

        let err = prepare_gather_images(ctx, &data_f32, &indices, &out, p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("U8") && err.contains("F32"), "{err}");
        let err = prepare_gather_images(ctx, &data, &indices_f32, &out, p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("U32") && err.contains("F32"), "{err}");
        let err = prepare_gather_images(ctx, &data, &indices, &bad_out, p)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[4, 7, 5]") && err.contains("[13, 5, 7]"),
            "{err}"
        );
        let big_shift = GatherImageParams { max_shift: 5, ..p };
        let err = prepare_gather_images(ctx, &data, &indices, &out, big_shift)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_shift"), "{err}");

        let src = Tensor::zeros(ctx, &[13, 10], DType::F32).unwrap();
        let rows_out = Tensor::zeros(ctx, &[4, 9], DType::F32).unwrap();
        let err = prepare_gather_rows(ctx, &src, &indices, &rows_out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[4, 9]") && err.contains("[13, 10]"), "{err}");
        let labels = Tensor::zeros(ctx, &[13], DType::U32).unwrap();
        let err = prepare_gather_labels(ctx, &labels, &indices, &labels)
            .unwrap_err()
            .to_string();
        assert!(err.contains("share one buffer"), "{err}");
    }
}
