//! The implicit-GEMM path of conv2d (shaders/conv2d_gemm.wgsl): the forward and the
//! stride-1 input gradient as one GEMM kernel over a zero-padded copy of the source, the
//! weight gradient as split GEMMs summed by conv2d.wgsl's reduction. Needs subgroups of at
//! least 8 lanes; [`unsupported`] says why it cannot run a shape, and the caller falls back
//! to the direct kernels.

use super::{Conv2dGeometry, Conv2dLaunch, Conv2dPath, ConvParams, SHADER as DIRECT_SHADER};
use crate::context::{GpuContext, ShaderSource};
use crate::error::Result;
use crate::kernel::{Binding, Dispatch, MAX_GROUPS_PER_DIM, grid_1d, groups_for};
use crate::ops::matmul::subgroups_of_eight;
use crate::ops::texture;
use crate::tensor::{DType, Tensor, UNIFORM_BLOCK_BYTES};

pub const SHADER: ShaderSource = ShaderSource {
    name: "conv2d_gemm",
    wgsl: include_str!("../../../../../shaders/conv2d_gemm.wgsl"),
};

/// Output positions (forward) or taps (weight gradient) per invocation.
const TN: usize = 8;
/// Invocations per workgroup of the forward GEMM.
const FORWARD_WG: usize = 64;
/// Invocations per workgroup of the padding and packing kernels.
const LINEAR_WG: usize = 64;
/// The weight gradient is split into about this many chunks over the batch (at least one
/// per image)... Each split writes a full set of partial sums that the reduction reads back:
/// at batch 128, one chunk per image measured 1.25x faster on lavapipe than two (32-channel
/// layer, BENCHMARKS.md).
const TARGET_SPLITS: usize = 128;
/// ...none shorter than this many output positions.
const MIN_CHUNK: usize = 64;
/// The few-tap-rows weight gradient is split into about this many invocations' chunks of
/// output rows (1,024 chunks of 3.5 rows ran 10% slower than 392 of 9 on lavapipe: each
/// chunk's partial sums are written and reduced).
const FEW_TAPS_SPLITS: usize = 512;
/// Rows (output channels) per workgroup of the few-tap-rows weight gradient.
const FEW_TAPS_ROWS: usize = 16;

/// Which product a launch computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Forward,
    InputGrad,
    WeightGrad,
}

/// How the forward-like GEMM reads its source: one gathered value per tap and position, or
/// (stride 1, kernels up to 8 wide) runs of a source row shared by 8 neighbouring windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Variant {
    Gathered,
    Window,
}

impl Variant {
    /// The path a launch of this variant reports.
    fn path(self) -> Conv2dPath {
        match self {
            Variant::Gathered => Conv2dPath::Gemm,
            Variant::Window => Conv2dPath::Window,
        }
    }
}

/// The kernel writing the weight gradient's partial sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightGradKernel {
    /// `conv_gemm_weight_grad`: splits of `chunk` positions of one image.
    Gathered,
    /// `conv_window_weight_grad`: splits of whole output rows of one image, a lane per tap row.
    Window,
    /// `conv_few_taps_weight_grad`, for at most 4 tap rows of at most 4 taps, where a lane per
    /// tap row would leave most lanes idle: splits of whole output rows of the batch, running
    /// over image boundaries.
    FewTaps,
}

impl WeightGradKernel {
    fn entry(self) -> &'static str {
        match self {
            WeightGradKernel::Gathered => "conv_gemm_weight_grad",
            WeightGradKernel::Window => "conv_window_weight_grad",
            WeightGradKernel::FewTaps => "conv_few_taps_weight_grad",
        }
    }
}

/// Widest kernel the window variant handles (its runs hold 16 values: 8 positions + 8 taps).
const WINDOW_MAX_KW: usize = 8;

/// One implicit GEMM: windows of `kernel_h x kernel_w` at `stride` over a batch of source
/// images `[batch, channels, height, width]` padded by `pad_h`, `pad_w`, giving `rows`
/// output channels of `out_h x out_w`.
#[derive(Clone, Copy, Debug)]
struct Gemm {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    pad_h: usize,
    pad_w: usize,
    kernel_h: usize,
    kernel_w: usize,
    stride: usize,
    rows: usize,
    out_h: usize,
    out_w: usize,
}

impl Gemm {
    /// The GEMM of `kind` for `g`; `None` where the input gradient is not a plain convolution
    /// (stride above 1, or padding beyond kernel - 1).
    fn of(g: &Conv2dGeometry, kind: Kind) -> Option<Self> {
        let forward = Self {
            batch: g.batch,
            channels: g.in_channels,
            height: g.height,
            width: g.width,
            pad_h: g.padding,
            pad_w: g.padding,
            kernel_h: g.kernel_h,
            kernel_w: g.kernel_w,
            stride: g.stride,
            rows: g.out_channels,
            out_h: g.out_height(),
            out_w: g.out_width(),
        };
        if kind != Kind::InputGrad {
            return Some(forward);
        }
        // dx is dy, fully padded, convolved with the flipped, transposed weights.
        (g.stride == 1 && g.padding < g.kernel_h && g.padding < g.kernel_w).then(|| Self {
            channels: g.out_channels,
            height: g.out_height(),
            width: g.out_width(),
            pad_h: g.kernel_h - 1 - g.padding,
            pad_w: g.kernel_w - 1 - g.padding,
            rows: g.in_channels,
            out_h: g.height,
            out_w: g.width,
            ..forward
        })
    }

    fn src_h(&self) -> usize {
        self.height + 2 * self.pad_h
    }

    fn src_w(&self) -> usize {
        self.width + 2 * self.pad_w
    }

    fn padded(&self) -> bool {
        self.pad_h > 0 || self.pad_w > 0
    }

    fn padded_len(&self) -> usize {
        self.batch * self.channels * self.src_h() * self.src_w()
    }

    fn taps(&self) -> usize {
        self.channels * self.kernel_h * self.kernel_w
    }

    fn taps4(&self) -> usize {
        self.taps().next_multiple_of(4)
    }

    fn plane_out(&self) -> usize {
        self.out_h * self.out_w
    }

    fn positions(&self) -> usize {
        self.batch * self.plane_out()
    }

    /// Rows per invocation: the smallest tile holding every row, at most 32.
    fn tile_rows(&self) -> usize {
        match self.rows {
            0..=8 => 8,
            9..=16 => 16,
            _ => 32,
        }
    }

    /// Blocks of 8 output positions per invocation of the window forward: two where the
    /// rows fit 16, so each loaded weight feeds 16 positions (the 8- and 16-row passes ran
    /// 6-26% faster, BENCHMARKS.md); 32-row tiles keep one, their accumulators already full.
    fn position_blocks(&self) -> usize {
        if self.tile_rows() <= 16 { 2 } else { 1 }
    }

    /// Offset of each tap `(c, ky, kx)` from its window's corner in the padded source,
    /// zero-extended to `taps4`.
    fn offsets(&self) -> Vec<u32> {
        let (kh, kw, sw) = (self.kernel_h, self.kernel_w, self.src_w());
        let mut off: Vec<u32> = (0..self.taps())
            .map(|k| {
                let (c, ky, kx) = (k / (kh * kw), (k / kw) % kh, k % kw);
                (c * self.src_h() * sw + ky * sw + kx) as u32
            })
            .collect();
        off.resize(self.taps4(), 0);
        off
    }

    /// `col(p)`: the top-left corner of output position `p`'s window in a padded plane.
    fn corners(&self) -> Vec<u32> {
        let (s, sw) = (self.stride, self.src_w());
        (0..self.plane_out())
            .map(|p| ((p / self.out_w) * s * sw + (p % self.out_w) * s) as u32)
            .collect()
    }

    /// Rows of taps `(c, ky)`, each `kernel_w` taps long.
    fn tap_rows(&self) -> usize {
        self.channels * self.kernel_h
    }

    /// Taps per packed tap row of the window variant: `kernel_w` rounded up to 4.
    fn window_kw4(&self) -> usize {
        self.kernel_w.next_multiple_of(4)
    }

    /// Length of a packed weight row: `taps4` for the gathered GEMM, whole tap rows of
    /// `window_kw4` for the window variant.
    fn packed_row(&self, variant: Variant) -> usize {
        match variant {
            Variant::Gathered => self.taps4(),
            Variant::Window => self.tap_rows() * self.window_kw4(),
        }
    }

    /// The uniform block for kernels reading weights packed for `variant`: `taps4` is then
    /// the packed row's length.
    fn packed_params(&self, variant: Variant) -> GemmParams {
        GemmParams {
            taps4: self.packed_row(variant) as u32,
            ..self.params()
        }
    }

    /// Offset of each tap row `(c, ky)` from its window's corner in the padded source.
    fn row_offsets(&self) -> Vec<u32> {
        let sw = self.src_w();
        (0..self.tap_rows())
            .map(|t| ((t / self.kernel_h) * self.src_h() * sw + (t % self.kernel_h) * sw) as u32)
            .collect()
    }

    /// The kernel of the weight gradient read as `variant` says.
    fn weight_grad_kernel(&self, variant: Variant) -> WeightGradKernel {
        match variant {
            Variant::Gathered => WeightGradKernel::Gathered,
            Variant::Window if self.tap_rows() <= 4 && self.kernel_w <= 4 => {
                WeightGradKernel::FewTaps
            }
            Variant::Window => WeightGradKernel::Window,
        }
    }

    /// Whether the packed weights of `variant` fit one uniform block, from which the forward
    /// kernels read them on CPU adapters (see `UNIFORM_WEIGHTS` in the shader).
    fn weights_fit_block(&self, variant: Variant) -> bool {
        4 * self.rows * self.packed_row(variant) <= UNIFORM_BLOCK_BYTES as usize
    }

    /// The weight gradient's split of each image: (positions per split, splits per image) for
    /// the gathered GEMM, (output rows per split, splits per image) for the window kernel;
    /// (output rows of the batch per split, splits in all) for the few-taps kernel.
    fn split_of(&self, kernel: WeightGradKernel) -> (usize, usize) {
        match kernel {
            WeightGradKernel::Gathered => self.chunking(),
            WeightGradKernel::FewTaps => {
                let lines = self.batch * self.out_h;
                let chunk = lines.div_ceil(FEW_TAPS_SPLITS);
                (chunk, lines.div_ceil(chunk))
            }
            WeightGradKernel::Window => {
                let per_image = TARGET_SPLITS.div_ceil(self.batch).clamp(1, self.out_h);
                let rows = self.out_h.div_ceil(per_image);
                (rows, self.out_h.div_ceil(rows))
            }
        }
    }

    /// The weight gradient's partial sums: how many splits write them.
    fn weight_grad_splits(&self, kernel: WeightGradKernel) -> usize {
        let (_, splits) = self.split_of(kernel);
        match kernel {
            WeightGradKernel::FewTaps => splits,
            _ => self.batch * splits,
        }
    }

    /// Positions per split of the weight gradient and splits per image.
    fn chunking(&self) -> (usize, usize) {
        let plane = self.plane_out();
        let per_image = TARGET_SPLITS
            .div_ceil(self.batch)
            .clamp(1, plane.div_ceil(MIN_CHUNK).max(1));
        let chunk = plane.div_ceil(per_image).next_multiple_of(4);
        (chunk, plane.div_ceil(chunk))
    }

    /// Workgroup width of the window weight gradient: a lane per tap row, a multiple of 8, at
    /// most 64, with the tap rows spread evenly over the workgroups (96 tap rows take two of
    /// 48 lanes rather than 64 and 32 of 64, which left a quarter of the lanes idle).
    fn window_weight_grad_wg(&self) -> usize {
        let lanes = self.tap_row_lanes();
        let groups = lanes.div_ceil(64);
        lanes.div_ceil(groups).next_multiple_of(8)
    }

    /// Tap rows per lane of the window weight gradient: two where the rows fit 16 and there
    /// are tap rows for a subgroup of 8 lanes at two each, so each dy value handed out feeds
    /// both (the 16-channel 28x28 layer's pass ran 23% faster, BENCHMARKS.md); 32-row tiles
    /// keep one, their accumulators already full.
    fn tap_group(&self) -> usize {
        if self.tile_rows() <= 16 && self.tap_rows() >= 16 {
            2
        } else {
            1
        }
    }

    /// Lanes of the window weight gradient: one per group of tap rows.
    fn tap_row_lanes(&self) -> usize {
        self.tap_rows().div_ceil(self.tap_group())
    }

    /// Workgroup width of the weight gradient: enough lanes for every tap, a multiple of 8.
    fn weight_grad_wg(&self) -> usize {
        self.taps().div_ceil(TN).next_multiple_of(8).min(64)
    }

    fn params(&self) -> GemmParams {
        let u = |v: usize| v as u32;
        let (chunk, chunks_per_image) = self.chunking();
        GemmParams {
            rows: u(self.rows),
            taps: u(self.taps()),
            taps4: u(self.taps4()),
            positions: u(self.positions()),
            plane_out: u(self.plane_out()),
            out_w: u(self.out_w),
            stride: u(self.stride),
            src_w: u(self.src_w()),
            src_image: u(self.channels * self.src_h() * self.src_w()),
            chunk: u(chunk),
            chunks_per_image: u(chunks_per_image),
            height: u(self.height),
            width: u(self.width),
            pad_h: u(self.pad_h),
            pad_w: u(self.pad_w),
            elements: 0,
            tap_rows: u(self.tap_rows()),
            lines: u(self.batch * self.out_h),
            out_h: u(self.out_h),
            src_last: u(self.padded_len() - 1),
        }
    }

    /// Bytes of each workspace this launch allocates, by name.
    fn workspaces(&self, kind: Kind, variant: Variant) -> Vec<(&'static str, usize)> {
        let mut spaces = Vec::new();
        if self.padded() {
            spaces.push(("padded source", 4 * self.padded_len()));
        }
        match kind {
            Kind::Forward | Kind::InputGrad => {
                spaces.push(("packed weights", 4 * self.rows * self.packed_row(variant)))
            }
            Kind::WeightGrad => {
                let kernel = self.weight_grad_kernel(variant);
                let partials = self.weight_grad_splits(kernel) * self.rows * self.taps();
                spaces.push(("partial sums", 4 * partials));
            }
        }
        spaces
    }

    /// Workgroup grid of the GEMM kernel.
    fn grid(&self, kind: Kind, variant: Variant) -> [usize; 3] {
        let row_blocks = self.rows.div_ceil(self.tile_rows());
        match (kind, variant) {
            (Kind::WeightGrad, _) => self.weight_grad_grid(self.weight_grad_kernel(variant)),
            (_, Variant::Window) => {
                let slots =
                    self.batch * self.out_h * self.out_w.div_ceil(TN * self.position_blocks());
                [slots.div_ceil(FORWARD_WG), row_blocks, 1]
            }
            (_, Variant::Gathered) => [self.positions().div_ceil(TN * FORWARD_WG), row_blocks, 1],
        }
    }

    /// Workgroup grid of the weight gradient's partial sums.
    fn weight_grad_grid(&self, kernel: WeightGradKernel) -> [usize; 3] {
        let row_blocks = self.rows.div_ceil(self.tile_rows());
        let splits = self.weight_grad_splits(kernel);
        match kernel {
            WeightGradKernel::FewTaps => [
                splits.div_ceil(LINEAR_WG),
                self.rows.div_ceil(FEW_TAPS_ROWS),
                1,
            ],
            WeightGradKernel::Window => [
                self.tap_row_lanes().div_ceil(self.window_weight_grad_wg()),
                row_blocks,
                splits,
            ],
            WeightGradKernel::Gathered => [
                self.taps().div_ceil(TN * self.weight_grad_wg()),
                row_blocks,
                splits,
            ],
        }
    }

    /// Lanes of `kernel` that each load every dy value of their rows: one per 8 taps, or per
    /// group of tap rows; the few-taps kernel loads each value once.
    fn dy_readers(&self, kernel: WeightGradKernel) -> usize {
        match kernel {
            WeightGradKernel::Gathered => self.taps().div_ceil(TN),
            WeightGradKernel::Window => self.tap_row_lanes(),
            WeightGradKernel::FewTaps => 1,
        }
    }

    /// Whether `kernel` may read dy from a texture: its runs of 4 dy values (a position
    /// chunk's, or an output row's) start at multiples of 4.
    fn dy_quads_aligned(&self, kernel: WeightGradKernel) -> bool {
        match kernel {
            WeightGradKernel::Gathered => self.plane_out().is_multiple_of(4),
            WeightGradKernel::Window | WeightGradKernel::FewTaps => self.out_w.is_multiple_of(4),
        }
    }

    /// Whether copying dy into a texture for `kernel` pays on a CPU adapter: enough lanes read
    /// each value (`DY_TEXTURE_READERS`) and its runs of 4 align.
    fn dy_texture_pays(&self, kernel: WeightGradKernel) -> bool {
        self.dy_readers(kernel) >= DY_TEXTURE_READERS && self.dy_quads_aligned(kernel)
    }

    /// Workgroup width of the weight gradient's kernel.
    fn weight_grad_lanes(&self, kernel: WeightGradKernel) -> usize {
        match kernel {
            WeightGradKernel::Gathered => self.weight_grad_wg(),
            WeightGradKernel::Window => self.window_weight_grad_wg(),
            WeightGradKernel::FewTaps => LINEAR_WG,
        }
    }
}

/// The uniform block `GemmParams` of shaders/conv2d_gemm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GemmParams {
    rows: u32,
    taps: u32,
    taps4: u32,
    positions: u32,
    plane_out: u32,
    out_w: u32,
    stride: u32,
    src_w: u32,
    src_image: u32,
    chunk: u32,
    chunks_per_image: u32,
    height: u32,
    width: u32,
    pad_h: u32,
    pad_w: u32,
    elements: u32,
    tap_rows: u32,
    lines: u32,
    out_h: u32,
    src_last: u32,
}

/// Whether the window variant is the faster choice where both run. Measured on lavapipe
/// (BENCHMARKS.md, 2026-11-30 conv rows): for the forward and input gradient always; for the
/// weight gradient on layers of up to 16 output channels (1.3-2.4x faster there), not on
/// 32 (0.6-0.9x: its 32-row tiles hold twice the accumulators of the gathered kernel's).
pub(super) fn window_pays(kind: Kind, g: &Conv2dGeometry) -> bool {
    kind != Kind::WeightGrad || g.out_channels <= 16
}

/// Why the GEMM path cannot compute `kind` for `g` on `ctx`'s adapter, or `None` if it can.
pub(super) fn unsupported(
    ctx: &GpuContext,
    g: &Conv2dGeometry,
    kind: Kind,
    variant: Variant,
) -> Option<String> {
    if !subgroups_of_eight(ctx) {
        return Some("the adapter has no subgroups of at least 8 lanes".into());
    }
    if ctx.limits.max_uniform_buffer_binding_size < UNIFORM_BLOCK_BYTES {
        return Some(format!(
            "the adapter's uniform blocks are smaller than the {UNIFORM_BLOCK_BYTES} bytes the kernels declare"
        ));
    }
    if variant == Variant::Window && (g.stride != 1 || g.kernel_w > WINDOW_MAX_KW) {
        return Some(format!(
            "it needs stride 1 and kernels at most {WINDOW_MAX_KW} wide, got {g:?}"
        ));
    }
    let Some(gemm) = Gemm::of(g, kind) else {
        return Some(format!(
            "the input gradient needs stride 1 and padding below the kernel size, got {g:?}"
        ));
    };
    let limit = ctx.max_binding_bytes().min(u64::from(u32::MAX));
    for (name, bytes) in gemm.workspaces(kind, variant) {
        if bytes as u64 > limit {
            return Some(format!(
                "its {name} workspace of {bytes} bytes for {g:?} exceeds the adapter's limit of {limit} bytes per binding"
            ));
        }
    }
    let grid = gemm.grid(kind, variant);
    if grid.iter().any(|&n| n > MAX_GROUPS_PER_DIM as usize) {
        return Some(format!(
            "{g:?} needs a grid of {grid:?} workgroups, over {MAX_GROUPS_PER_DIM} per dimension"
        ));
    }
    None
}

fn grid_u32([x, y, z]: [usize; 3]) -> [u32; 3] {
    [x as u32, y as u32, z as u32]
}

#[cfg(test)]
thread_local! {
    /// Set by a test to run the storage path of padded sources and of the weight gradients'
    /// dy (the GPUs' path) on a CPU adapter; per thread, so tests running beside it keep the
    /// texture path.
    pub(super) static STORAGE_SOURCES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a padded source or dy may go into a texture (always, outside tests).
fn textures_allowed() -> bool {
    #[cfg(test)]
    return !STORAGE_SOURCES.get();
    #[cfg(not(test))]
    true
}

/// Texels per row of the source texture (the shader's TEXTURE_WIDTH).
const TEXTURE_WIDTH: usize = 4096;

/// What the GEMM kernels read their source from: a tensor (binding 4) or, on CPU adapters
/// where the padded source fits, the r32float texture (binding 13) that pad_planes wrote,
/// `TEXTURE_WIDTH` values a row. The binding not read gets a stand-in.
struct Source {
    tensor: Tensor,
    texture: wgpu::TextureView,
    in_texture: bool,
}

/// A zeroed r32float texture of at least `values` texels, `TEXTURE_WIDTH` a row.
fn source_texture(ctx: &GpuContext, values: usize) -> wgpu::TextureView {
    let rows = values.div_ceil(TEXTURE_WIDTH);
    ctx.texture_2d(
        "conv source",
        wgpu::TextureFormat::R32Float,
        [TEXTURE_WIDTH, rows],
    )
}

impl Source {
    /// The raw source, read from storage.
    fn raw(ctx: &GpuContext, raw: &Tensor) -> Self {
        Self {
            tensor: raw.clone(),
            texture: ctx.stand_in_texture(wgpu::TextureFormat::R32Float),
            in_texture: false,
        }
    }

    /// Zeroed room for the padded source of `gemm`: a texture on CPU adapters where it fits.
    fn padded(ctx: &GpuContext, gemm: &Gemm) -> Result<Self> {
        let rows = gemm.padded_len().div_ceil(TEXTURE_WIDTH) as u64;
        let side = u64::from(ctx.limits.max_texture_dimension_2d);
        let fits = TEXTURE_WIDTH as u64 <= side && rows <= side;
        if ctx.summary.is_cpu && fits && textures_allowed() {
            return Ok(Self {
                tensor: Tensor::zeros(ctx, &[1], DType::F32)?,
                texture: source_texture(ctx, gemm.padded_len()),
                in_texture: true,
            });
        }
        let shape = [gemm.batch, gemm.channels, gemm.src_h(), gemm.src_w()];
        Ok(Self {
            tensor: Tensor::zeros(ctx, &shape, DType::F32)?,
            texture: ctx.stand_in_texture(wgpu::TextureFormat::R32Float),
            in_texture: false,
        })
    }

    /// The shader's SOURCE_TEXTURE override.
    fn constant(&self) -> (&'static str, f64) {
        ("SOURCE_TEXTURE", f64::from(u8::from(self.in_texture)))
    }
}

/// The padded source (and its dispatch), or `None` when the GEMM needs no padding.
fn pad_source(ctx: &GpuContext, gemm: &Gemm, raw: &Tensor) -> Result<Option<(Source, Dispatch)>> {
    if !gemm.padded() {
        return Ok(None);
    }
    // Zeroed at creation: pad_planes writes only the interior, so the border stays zero.
    let padded = Source::padded(ctx, gemm)?;
    let raw_rows = gemm.batch * gemm.channels * gemm.height;
    let params = GemmParams {
        elements: raw_rows as u32,
        ..gemm.params()
    };
    let dispatch = Dispatch::new(
        ctx,
        &SHADER,
        "pad_planes",
        &[padded.constant()],
        &[
            (0, Binding::Tensor(raw)),
            (1, Binding::Tensor(&padded.tensor)),
            (14, Binding::Texture(&padded.texture)),
        ],
        Some((15, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(raw_rows, LINEAR_WG)),
    );
    Ok(Some((padded, dispatch)))
}

/// The packed weights, and the 64 KiB uniform block that the forward kernels bind beside them:
/// the same buffer where the weights fit one, else an empty stand-in.
struct PackedWeights {
    packed: Tensor,
    block: Tensor,
    /// Whether the kernel reads the weights from the block (`UNIFORM_WEIGHTS`): on CPU
    /// adapters, where they fit.
    uniform: bool,
}

impl PackedWeights {
    /// Zeroed room for packed weights of `shape`: in a uniform block where they `fit` one.
    fn zeros(ctx: &GpuContext, shape: [usize; 2], fit: bool) -> Result<Self> {
        if fit {
            let packed = Tensor::zeros_uniform_block(ctx, &shape, DType::F32)?;
            return Ok(Self {
                block: packed.clone(),
                packed,
                uniform: ctx.summary.is_cpu,
            });
        }
        Ok(Self {
            packed: Tensor::zeros(ctx, &shape, DType::F32)?,
            block: Tensor::zeros_uniform_block(ctx, &[1], DType::F32)?,
            uniform: false,
        })
    }
}

/// Weights as `[rows, taps4]` rows of the GEMM, zero-extended; flipped and transposed for the
/// input gradient.
fn pack_weights(
    ctx: &GpuContext,
    gemm: &Gemm,
    g: &Conv2dGeometry,
    w: &Tensor,
    flip: bool,
    variant: Variant,
) -> Result<(PackedWeights, Dispatch)> {
    let row = gemm.packed_row(variant);
    let weights = PackedWeights::zeros(ctx, [gemm.rows, row], gemm.weights_fit_block(variant))?;
    let mut params = gemm.packed_params(variant);
    params.elements = (gemm.rows * row) as u32;
    if flip {
        (params.height, params.width, params.pad_h) =
            (g.in_channels as u32, g.kernel_h as u32, g.kernel_w as u32);
    }
    let dispatch = Dispatch::new(
        ctx,
        &SHADER,
        "pack_weights",
        &[
            ("FLIP", f64::from(u8::from(flip))),
            ("ROW_KW", window_kw(gemm, variant) as f64),
        ],
        &[
            (2, Binding::Tensor(w)),
            (3, Binding::Tensor(&weights.packed)),
        ],
        Some((15, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(gemm.rows * row, LINEAR_WG)),
    );
    Ok((weights, dispatch))
}

/// The shader's `ROW_KW`: the kernel width for the window variant, 0 for the flat packing.
fn window_kw(gemm: &Gemm, variant: Variant) -> usize {
    match variant {
        Variant::Gathered => 0,
        Variant::Window => gemm.kernel_w,
    }
}

/// Collects the dispatches of one launch and the workspaces they bind.
#[derive(Default)]
struct Builder {
    dispatches: Vec<Dispatch>,
    workspaces: Vec<Tensor>,
}

impl Builder {
    /// Pad `raw` if the GEMM needs it; the source the GEMM then reads.
    fn source(&mut self, ctx: &GpuContext, gemm: &Gemm, raw: &Tensor) -> Result<Source> {
        Ok(match pad_source(ctx, gemm, raw)? {
            Some((padded, dispatch)) => {
                self.dispatches.push(dispatch);
                self.workspaces.push(padded.tensor.clone());
                padded
            }
            None => Source::raw(ctx, raw),
        })
    }

    fn finish(self, variant: Variant, splits: usize) -> Conv2dLaunch {
        Conv2dLaunch {
            dispatches: self.dispatches,
            _workspaces: self.workspaces,
            path: variant.path(),
            splits,
        }
    }
}

/// `out = relu?(conv(src, wmat) + bias)` for the forward (`kind` Forward, `w` as stored) or the
/// input gradient (`kind` InputGrad, `src` = dy, no bias or ReLU), read as `variant` says.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_like(
    ctx: &GpuContext,
    kind: Kind,
    variant: Variant,
    src: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    relu: bool,
    g: &Conv2dGeometry,
) -> Result<Conv2dLaunch> {
    let gemm = Gemm::of(g, kind).expect("checked by unsupported()");
    let mut b = Builder::default();
    let source = b.source(ctx, &gemm, src)?;
    let (weights, pack) = pack_weights(ctx, &gemm, g, w, kind == Kind::InputGrad, variant)?;
    b.dispatches.push(pack);
    let (entry, offsets, len) = match variant {
        Variant::Gathered => ("conv_gemm_forward", gemm.offsets(), gemm.taps4()),
        Variant::Window => ("conv_window_forward", gemm.row_offsets(), gemm.tap_rows()),
    };
    let offsets = Tensor::from_u32(ctx, &offsets, &[len])?;
    let params = gemm.packed_params(variant);
    let gemm_dispatch = Dispatch::new(
        ctx,
        &SHADER,
        entry,
        &[
            ("TM", gemm.tile_rows() as f64),
            ("WG_X", FORWARD_WG as f64),
            ("HAS_BIAS", f64::from(u8::from(bias.is_some()))),
            ("RELU", f64::from(u8::from(relu))),
            ("KW", gemm.kernel_w as f64),
            ("PB", gemm.position_blocks() as f64),
            ("UNIFORM_WEIGHTS", f64::from(u8::from(weights.uniform))),
            source.constant(),
        ],
        &[
            (4, Binding::Tensor(&source.tensor)),
            (13, Binding::Texture(&source.texture)),
            (5, Binding::Tensor(&weights.packed)),
            (6, Binding::Tensor(&offsets)),
            // Without a bias the shader never reads binding 7; the packed weights stand in.
            (7, Binding::Tensor(bias.unwrap_or(&weights.packed))),
            (8, Binding::Tensor(out)),
            (12, Binding::Tensor(&weights.block)),
        ],
        Some((15, bytemuck::bytes_of(&params))),
        grid_u32(gemm.grid(kind, variant)),
    );
    b.dispatches.push(gemm_dispatch);
    b.workspaces
        .extend([weights.packed, weights.block, offsets]);
    Ok(b.finish(variant, 1))
}

/// `dw (+)= dY^T im2col(x)`: split GEMMs into partial sums, then conv2d.wgsl's reduction.
pub(super) fn weight_grad(
    ctx: &GpuContext,
    variant: Variant,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    accumulate: bool,
    g: &Conv2dGeometry,
) -> Result<Conv2dLaunch> {
    let gemm = Gemm::of(g, Kind::WeightGrad).expect("forward geometry always exists");
    let mut b = Builder::default();
    let source = b.source(ctx, &gemm, x)?;
    let kernel = gemm.weight_grad_kernel(variant);
    let splits = gemm.weight_grad_splits(kernel);
    let partials = Tensor::zeros(ctx, &[splits, gemm.rows, gemm.taps()], DType::F32)?;
    let (partial, tables) = partial_sums(ctx, &gemm, kernel, &source, dy, &partials)?;
    b.dispatches.extend(partial);
    let weights = g.out_channels * gemm.taps();
    b.dispatches.push(Dispatch::new(
        ctx,
        &DIRECT_SHADER,
        "conv2d_weight_grad_reduce",
        &[
            ("WG", super::WG as f64),
            ("ACCUMULATE", f64::from(u8::from(accumulate))),
        ],
        &[(6, Binding::Tensor(&partials)), (7, Binding::Tensor(dw))],
        Some((15, bytemuck::bytes_of(&ConvParams::new(g, splits, 0)))),
        grid_1d(groups_for(weights, super::WG)),
    ));
    b.workspaces.extend(tables);
    b.workspaces.push(partials);
    Ok(b.finish(variant, splits))
}

/// Lanes reading each dy value from which copying dy into a texture pays on CPU adapters.
/// Timed against storage in one process: the 16-channel 28x28 layer's window pass (24 lanes)
/// took 0.77-0.80 of its time, the GEMM passes (18-36 lanes) 0.93 on average; the 5x5
/// one-channel window pass (5 lanes) 1.14 and the few-taps kernel (each value read once) 1.37.
const DY_TEXTURE_READERS: usize = 8;

/// The texture `kernel` reads dy from (`DY_TEXTURE`) and the dispatch copying dy there: on
/// CPU adapters, where enough lanes read each value and its runs of 4 align; otherwise a
/// stand-in for the binding and no copy.
fn dy_texture(
    ctx: &GpuContext,
    gemm: &Gemm,
    kernel: WeightGradKernel,
    dy: &Tensor,
) -> Result<(wgpu::TextureView, Option<Dispatch>)> {
    if ctx.summary.is_cpu
        && gemm.dy_texture_pays(kernel)
        && textures_allowed()
        && texture::fits(ctx, dy.len())
    {
        let (view, copy) = texture::prepare_to_texture(ctx, dy)?;
        return Ok((view, Some(copy)));
    }
    Ok((ctx.stand_in_texture(wgpu::TextureFormat::Rgba32Float), None))
}

/// The dispatches writing the weight gradient's partial sums (after copying dy into a
/// texture, where it is read from there), and the tables they bind.
fn partial_sums(
    ctx: &GpuContext,
    gemm: &Gemm,
    kernel: WeightGradKernel,
    source: &Source,
    dy: &Tensor,
    partials: &Tensor,
) -> Result<(Vec<Dispatch>, Vec<Tensor>)> {
    let mut params = gemm.params();
    (params.chunk, params.chunks_per_image) = {
        let (chunk, per_image) = gemm.split_of(kernel);
        (chunk as u32, per_image as u32)
    };
    let tables = offset_tables(ctx, gemm, kernel)?;
    let mut bindings = vec![
        (4, Binding::Tensor(&source.tensor)),
        (13, Binding::Texture(&source.texture)),
        (9, Binding::Tensor(dy)),
        (10, Binding::Tensor(partials)),
    ];
    bindings.extend(
        tables
            .iter()
            .map(|(at, table)| (*at, Binding::Tensor(table))),
    );
    let (dy_view, dy_copy) = dy_texture(ctx, gemm, kernel, dy)?;
    bindings.push((16, Binding::Texture(&dy_view)));
    let partial = Dispatch::new(
        ctx,
        &SHADER,
        kernel.entry(),
        &[
            ("TM", gemm.tile_rows() as f64),
            ("WG_X", gemm.weight_grad_lanes(kernel) as f64),
            ("KW", gemm.kernel_w as f64),
            ("TG", gemm.tap_group() as f64),
            ("FEW_TAP_ROWS", gemm.tap_rows().min(4) as f64),
            ("DY_TEXTURE", f64::from(u8::from(dy_copy.is_some()))),
            source.constant(),
        ],
        &bindings,
        Some((15, bytemuck::bytes_of(&params))),
        grid_u32(gemm.weight_grad_grid(kernel)),
    );
    let tables = tables.into_iter().map(|(_, table)| table).collect();
    Ok((dy_copy.into_iter().chain([partial]).collect(), tables))
}

/// The tap tables `kernel` binds, with their binding indices: tap offsets (6) and window
/// corners (11) for the gathered kernel, tap-row offsets (6) for the window kernels.
fn offset_tables(
    ctx: &GpuContext,
    gemm: &Gemm,
    kernel: WeightGradKernel,
) -> Result<Vec<(u32, Tensor)>> {
    Ok(if kernel == WeightGradKernel::Gathered {
        vec![
            (6, Tensor::from_u32(ctx, &gemm.offsets(), &[gemm.taps4()])?),
            (
                11,
                Tensor::from_u32(ctx, &gemm.corners(), &[gemm.plane_out()])?,
            ),
        ]
    } else {
        vec![(
            6,
            Tensor::from_u32(ctx, &gemm.row_offsets(), &[gemm.tap_rows()])?,
        )]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(
        cin: usize,
        size: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Conv2dGeometry {
        Conv2dGeometry {
            batch: 3,
            in_channels: cin,
            height: size,
            width: size + 1,
            out_channels: cout,
            kernel_h: k,
            kernel_w: k,
            stride,
            padding: pad,
        }
    }

    #[test]
    fn the_teacher_layers_weights_fit_a_uniform_block_and_large_layers_do_not() {
        // Both presets' CNN layers, forward and input gradient: at most 48 KiB packed.
        for (cin, cout, k) in [
            (1, 16, 3),
            (16, 16, 3),
            (16, 32, 3),
            (32, 32, 3),
            (1, 8, 5),
            (8, 16, 5),
        ] {
            let g = geom(cin, 14, cout, k, 1, k / 2);
            for kind in [Kind::Forward, Kind::InputGrad] {
                let gemm = Gemm::of(&g, kind).unwrap();
                assert!(gemm.weights_fit_block(Variant::Window), "{g:?} {kind:?}");
                assert!(gemm.weights_fit_block(Variant::Gathered), "{g:?} {kind:?}");
            }
        }
        // conv2d's test geometry (40 -> 70, 3x3): 134 KiB in the window layout.
        let large = Gemm::of(&geom(40, 3, 70, 3, 1, 1), Kind::Forward).unwrap();
        assert!(!large.weights_fit_block(Variant::Window));
        assert!(!large.weights_fit_block(Variant::Gathered));
    }

    #[test]
    fn dy_goes_into_a_texture_where_many_lanes_read_aligned_runs() {
        let texture = |g: &Conv2dGeometry, kernel| {
            Gemm::of(g, Kind::WeightGrad)
                .unwrap()
                .dy_texture_pays(kernel)
        };
        let layer = |cin, size, cout, k| Conv2dGeometry::same_size(128, (cin, size, cout, k));
        use WeightGradKernel::{FewTaps, Gathered, Window};
        // The default CNN's 16-channel window pass and its 14x14 GEMM passes.
        assert!(texture(&layer(16, 28, 16, 3), Window));
        assert!(texture(&layer(16, 14, 32, 3), Gathered));
        assert!(texture(&layer(32, 14, 32, 3), Gathered));
        // Each dy value read once, or by 5 lanes only.
        assert!(!texture(&layer(1, 28, 16, 3), FewTaps));
        assert!(!texture(&layer(1, 28, 8, 5), Window));
        // Output rows of 14 leave the window kernel's runs unaligned.
        assert!(!texture(&layer(8, 14, 16, 5), Window));
        assert!(texture(&layer(8, 14, 16, 5), Gathered));
        // The weight-gradient test's case for both texture paths, and its 30x30 case.
        let small = |cin, size, cout| Conv2dGeometry::same_size(2, (cin, size, cout, 3));
        assert!(texture(&small(7, 12, 5), Gathered) && texture(&small(7, 12, 5), Window));
        assert!(!texture(&small(2, 30, 3), Gathered));
    }

    #[test]
    fn input_grad_gemm_is_a_same_size_convolution() {
        for g in [
            geom(3, 7, 5, 3, 1, 1),
            geom(2, 9, 4, 5, 1, 0),
            geom(1, 6, 3, 5, 1, 4),
        ] {
            let gemm = Gemm::of(&g, Kind::InputGrad).unwrap();
            assert_eq!((gemm.rows, gemm.channels), (g.in_channels, g.out_channels));
            // The full-padded transposed convolution has the input's size.
            let back = Conv2dGeometry {
                in_channels: gemm.channels,
                height: gemm.height,
                width: gemm.width,
                out_channels: gemm.rows,
                padding: gemm.pad_h,
                ..g
            };
            assert_eq!((back.out_height(), back.out_width()), (g.height, g.width));
        }
        assert!(
            Gemm::of(&geom(2, 9, 4, 3, 2, 1), Kind::InputGrad).is_none(),
            "stride 2"
        );
        assert!(
            Gemm::of(&geom(2, 9, 4, 3, 1, 3), Kind::InputGrad).is_none(),
            "pad 3, k 3"
        );
    }

    #[test]
    fn offsets_address_taps_in_the_padded_plane() {
        let g = geom(2, 4, 3, 3, 1, 1); // padded plane 6 x 7
        let off = Gemm::of(&g, Kind::Forward).unwrap().offsets();
        assert_eq!(off.len(), 20); // 18 taps rounded up to 4
        assert_eq!(&off[..4], &[0, 1, 2, 7]);
        assert_eq!(off[9], 42); // channel 1, tap (0, 0)
        assert_eq!(off[17], 42 + 2 * 7 + 2);
        assert_eq!(&off[18..], &[0, 0]);
        // Stride 2 over the same 6 x 7 padded plane: output 2 x 3, corners 2 apart.
        let strided = Gemm::of(&geom(2, 4, 3, 3, 2, 1), Kind::Forward).unwrap();
        assert_eq!(strided.corners(), vec![0, 2, 4, 14, 16, 18]);
    }

    #[test]
    fn weight_grad_chunks_cover_every_position_once() {
        for (batch, size) in [(1, 1), (2, 30), (128, 28), (3, 7)] {
            let g = Conv2dGeometry {
                batch,
                ..geom(2, size, 3, 1, 1, 0)
            };
            let gemm = Gemm::of(&g, Kind::WeightGrad).unwrap();
            let (chunk, per_image) = gemm.chunking();
            let plane = gemm.plane_out();
            assert_eq!(chunk % 4, 0);
            assert!(
                chunk * per_image >= plane && chunk * (per_image - 1) < plane,
                "{g:?}"
            );
        }
    }

    #[test]
    fn window_weight_grad_spreads_tap_rows_evenly_over_workgroups() {
        // tap rows = channels x 3: 3, 48, 63, 72, 96 and 201; output channels 4 (two tap
        // rows per lane from 16 tap rows on) and 32 (one).
        for (channels, cout) in [1, 16, 21, 24, 32, 67]
            .into_iter()
            .flat_map(|c| [(c, 4), (c, 32)])
        {
            let gemm = Gemm::of(&geom(channels, 6, cout, 3, 1, 1), Kind::WeightGrad).unwrap();
            // Only the single channel's 3 tap rows are too few for two per lane.
            let group = if cout == 4 && channels > 1 { 2 } else { 1 };
            assert_eq!(gemm.tap_group(), group, "{channels} channels, {cout} out");
            let (rows, lanes) = (
                gemm.tap_rows().div_ceil(group),
                gemm.window_weight_grad_wg(),
            );
            let groups = rows.div_ceil(lanes);
            assert_eq!(lanes % 8, 0, "{rows} tap rows");
            assert!(lanes <= 64, "{rows} tap rows: {lanes} lanes");
            assert_eq!(groups, rows.div_ceil(64), "{rows} tap rows: {lanes} lanes");
            assert!(
                groups * lanes - rows < 8 * groups,
                "{rows} tap rows: {lanes} lanes"
            );
        }
    }
}
