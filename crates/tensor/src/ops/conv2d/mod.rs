//! conv2d kernels (shaders/conv2d.wgsl): 2-D convolution forward (bias, fused ReLU), input,
//! weight and bias gradients, their CPU reference, and the tests holding the two together.
//!
//! Activations are NCHW, weights `[out, in, kh, kw]` (PyTorch layout), zero padding on every
//! side and one stride for both axes. The output size uses floor division, as PyTorch does.

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument, shape_error};
use crate::kernel::{Binding, Dispatch, grid_1d, groups_for, record_all};
use crate::tensor::{DType, Tensor};

mod gemm;
use gemm::Variant;

pub const SHADER: ShaderSource = ShaderSource {
    name: "conv2d",
    wgsl: include_str!("../../../../../shaders/conv2d.wgsl"),
};

/// Invocations per workgroup (override `WG`).
const WG: usize = 64;
/// Register block of the forward and input-gradient kernels: pixels x channels per invocation.
const PIX: usize = 4;
const CH: usize = 8;
/// Register block of the weight-gradient kernel: output channels x kernel taps per invocation.
const CO_B: usize = 8;
const K_B: usize = 4;
/// The weight-gradient reduction is split until about this many invocations run at once...
const WEIGHT_GRAD_TARGET_INVOCATIONS: usize = 16_384;
/// ...but never into chunks shorter than this many output positions.
const WEIGHT_GRAD_MIN_CHUNK: usize = 256;

/// Shape of one 2-D convolution: input `[batch, in_channels, height, width]`, weights
/// `[out_channels, in_channels, kernel_h, kernel_w]`, output `[batch, out_channels, out_height(),
/// out_width()]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2dGeometry {
    /// A stride-1 layer with square `k x k` kernels over `size x size` images, padded by
    /// `k / 2` so that odd kernels keep the image size (the presets' CNN layers).
    pub fn same_size(
        batch: usize,
        (in_channels, size, out_channels, k): (usize, usize, usize, usize),
    ) -> Self {
        Self {
            batch,
            in_channels,
            height: size,
            width: size,
            out_channels,
            kernel_h: k,
            kernel_w: k,
            stride: 1,
            padding: k / 2,
        }
    }

    /// Output rows: `(height + 2 * padding - kernel_h) / stride + 1` (floor).
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding).saturating_sub(self.kernel_h) / self.stride.max(1) + 1
    }

    /// Output columns: `(width + 2 * padding - kernel_w) / stride + 1` (floor).
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding).saturating_sub(self.kernel_w) / self.stride.max(1) + 1
    }

    /// Floating-point operations of the forward pass (2 per multiply-add, bias and ReLU not
    /// counted). The input and weight gradients cost the same.
    pub fn flops(&self) -> u64 {
        2 * (self.batch * self.out_channels * self.out_height() * self.out_width()) as u64
            * (self.in_channels * self.kernel_h * self.kernel_w) as u64
    }

    /// `[batch, in_channels, height, width]`
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.height, self.width]
    }

    /// `[out_channels, in_channels, kernel_h, kernel_w]`
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels,
            self.kernel_h,
            self.kernel_w,
        ]
    }

    /// `[batch, out_channels, out_height, out_width]`
    pub fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.out_height(),
            self.out_width(),
        ]
    }

    /// Kernel taps per output channel: `in_channels * kernel_h * kernel_w`.
    fn taps(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }

    fn validate(&self, op: &'static str) -> Result<()> {
        let dims = [
            self.batch,
            self.in_channels,
            self.height,
            self.width,
            self.out_channels,
            self.kernel_h,
            self.kernel_w,
            self.stride,
        ];
        if dims.contains(&0) {
            return Err(invalid_argument(
                op,
                format!("every size and the stride must be at least 1, got {self:?}"),
            ));
        }
        if self.height + 2 * self.padding < self.kernel_h
            || self.width + 2 * self.padding < self.kernel_w
        {
            return Err(invalid_argument(
                op,
                format!(
                    "kernel {}x{} is larger than the padded input {}x{} (padding {})",
                    self.kernel_h,
                    self.kernel_w,
                    self.height + 2 * self.padding,
                    self.width + 2 * self.padding,
                    self.padding
                ),
            ));
        }
        Ok(())
    }
}

/// The uniform block `ConvParams` of shaders/conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvParams {
    batch: u32,
    in_channels: u32,
    height: u32,
    width: u32,
    out_channels: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride: u32,
    padding: u32,
    out_height: u32,
    out_width: u32,
    splits: u32,
    chunk: u32,
    _pad: [u32; 3],
}

impl ConvParams {
    fn new(g: &Conv2dGeometry, splits: usize, chunk: usize) -> Self {
        let u = |v: usize| v as u32;
        Self {
            batch: u(g.batch),
            in_channels: u(g.in_channels),
            height: u(g.height),
            width: u(g.width),
            out_channels: u(g.out_channels),
            kernel_h: u(g.kernel_h),
            kernel_w: u(g.kernel_w),
            stride: u(g.stride),
            padding: u(g.padding),
            out_height: u(g.out_height()),
            out_width: u(g.out_width()),
            splits: u(splits),
            chunk: u(chunk),
            _pad: [0; 3],
        }
    }
}

/// Check that `t` is an f32 tensor of shape `expected`; the error names both shapes.
fn expect_shape(op: &'static str, what: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    t.expect_dtype(op, DType::F32)?;
    if t.shape() != expected {
        return Err(shape_error(
            op,
            format!(
                "{what} is {:?} but the geometry needs {expected:?}",
                t.shape()
            ),
        ));
    }
    Ok(())
}

/// Which kernels run a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conv2dPath {
    /// The register-blocked direct kernels of shaders/conv2d.wgsl: every shape, every adapter.
    Direct,
    /// Implicit GEMM with subgroup broadcast (shaders/conv2d_gemm.wgsl) over a zero-padded
    /// copy of the source: subgroups of at least 8 lanes, workspaces within the binding
    /// limit, and for the input gradient stride 1 and padding below the kernel size.
    Gemm,
    /// The implicit GEMM reading runs of source rows shared by 8 neighbouring windows
    /// (`conv_window_forward`, `conv_window_weight_grad`): stride-1 convolutions with kernels
    /// at most 8 wide, on the same adapters as [`Conv2dPath::Gemm`].
    Window,
}

/// Environment variable forcing a path (`direct`, `gemm` or `window`) wherever that path can run.
pub const PATH_ENV: &str = "DK_CONV_PATH";

impl Conv2dPath {
    pub const ALL: [Conv2dPath; 3] = [Conv2dPath::Direct, Conv2dPath::Gemm, Conv2dPath::Window];

    /// The automatic choice, fastest first: the first of these that can run a pass.
    const PREFERENCE: [Conv2dPath; 3] = [Conv2dPath::Window, Conv2dPath::Gemm, Conv2dPath::Direct];

    pub fn name(self) -> &'static str {
        match self {
            Conv2dPath::Direct => "direct",
            Conv2dPath::Gemm => "gemm",
            Conv2dPath::Window => "window",
        }
    }
}

impl Conv2dPath {
    /// How the GEMM kernels read their source, for the two GEMM paths.
    fn variant(self) -> Option<Variant> {
        match self {
            Conv2dPath::Direct => None,
            Conv2dPath::Gemm => Some(Variant::Gathered),
            Conv2dPath::Window => Some(Variant::Window),
        }
    }
}

impl std::fmt::Display for Conv2dPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a launcher computes, for choosing and checking a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv2dPass {
    Forward,
    InputGrad,
    WeightGrad,
}

impl Conv2dPass {
    fn gemm_kind(self) -> gemm::Kind {
        match self {
            Conv2dPass::Forward => gemm::Kind::Forward,
            Conv2dPass::InputGrad => gemm::Kind::InputGrad,
            Conv2dPass::WeightGrad => gemm::Kind::WeightGrad,
        }
    }
}

/// Why `path` cannot run `pass` of `geom` on `ctx`'s adapter, or `None` when it can.
pub fn path_unsupported(
    ctx: &GpuContext,
    path: Conv2dPath,
    pass: Conv2dPass,
    geom: &Conv2dGeometry,
) -> Option<String> {
    match path {
        Conv2dPath::Direct => None,
        Conv2dPath::Gemm => gemm::unsupported(ctx, geom, pass.gemm_kind(), Variant::Gathered),
        Conv2dPath::Window => gemm::unsupported(ctx, geom, pass.gemm_kind(), Variant::Window),
    }
}

/// The path that runs `pass` of `geom`: `DK_CONV_PATH` where that path can run it, else the
/// window path where it can and pays, else the implicit GEMM where it can, else the direct
/// kernels.
pub fn choose_path(
    ctx: &GpuContext,
    pass: Conv2dPass,
    geom: &Conv2dGeometry,
) -> Result<Conv2dPath> {
    let forced = match std::env::var(PATH_ENV) {
        Ok(name) if !name.trim().is_empty() => Some(
            Conv2dPath::ALL
                .into_iter()
                .find(|p| p.name() == name.trim().to_ascii_lowercase())
                .ok_or_else(|| {
                    invalid_argument(
                        "conv2d",
                        format!("{PATH_ENV}={name:?} is not a path; known: direct, gemm, window"),
                    )
                })?,
        ),
        _ => None,
    };
    let runs = |p: &Conv2dPath| path_unsupported(ctx, *p, pass, geom).is_none();
    if let Some(path) = forced.filter(runs) {
        return Ok(path);
    }
    let pays =
        |p: &Conv2dPath| *p != Conv2dPath::Window || gemm::window_pays(pass.gemm_kind(), geom);
    Ok(Conv2dPath::PREFERENCE
        .into_iter()
        .filter(pays)
        .find(runs)
        .unwrap_or(Conv2dPath::Direct))
}

/// One prepared convolution pass: its dispatches, in recording order, and the workspaces they
/// bind (a padded source, packed weights, partial sums).
#[derive(Debug)]
pub struct Conv2dLaunch {
    dispatches: Vec<Dispatch>,
    _workspaces: Vec<Tensor>,
    path: Conv2dPath,
    splits: usize,
}

/// The weight gradient's launch (partial sums, then their reduction).
pub type Conv2dWeightGrad = Conv2dLaunch;

impl Conv2dLaunch {
    fn single(dispatch: Dispatch) -> Self {
        Self {
            dispatches: vec![dispatch],
            _workspaces: Vec::new(),
            path: Conv2dPath::Direct,
            splits: 1,
        }
    }

    /// Record every dispatch, in order, into an open compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.record(pass);
        }
    }

    /// Record every dispatch in a compute pass of its own.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        record_all(encoder, &self.dispatches);
    }

    /// The dispatches in recording order, e.g. for [`record_all`].
    pub fn dispatches(&self) -> Vec<&Dispatch> {
        self.dispatches.iter().collect()
    }

    /// The kernels this launch runs on.
    pub fn path(&self) -> Conv2dPath {
        self.path
    }

    /// Into how many chunks a weight gradient's reduction was split (1 for other passes).
    pub fn splits(&self) -> usize {
        self.splits
    }
}

/// `path`, or an error naming the pass, the shape and why that path cannot run it.
fn check_path(
    ctx: &GpuContext,
    op: &'static str,
    path: Conv2dPath,
    pass: Conv2dPass,
    geom: &Conv2dGeometry,
) -> Result<()> {
    match path_unsupported(ctx, path, pass, geom) {
        None => Ok(()),
        Some(why) => Err(invalid_argument(
            op,
            format!("the {path} path cannot run here: {why}"),
        )),
    }
}

/// Prepare `y = relu?(conv2d(x, w) + bias)` on the path [`choose_path`] picks.
///
/// `x` is `[N, Cin, H, W]`, `w` `[Cout, Cin, kh, kw]`, `bias` `[Cout]`, `y` `[N, Cout, Ho, Wo]`,
/// all f32 and matching `geom`.
pub fn prepare_conv2d(
    ctx: &GpuContext,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    y: &Tensor,
    relu: bool,
    geom: &Conv2dGeometry,
) -> Result<Conv2dLaunch> {
    let path = choose_path(ctx, Conv2dPass::Forward, geom)?;
    prepare_conv2d_on(ctx, path, x, w, bias, y, relu, geom)
}

/// [`prepare_conv2d`] on a given path; an error if that path cannot run it here.
#[allow(clippy::too_many_arguments)]
pub fn prepare_conv2d_on(
    ctx: &GpuContext,
    path: Conv2dPath,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    y: &Tensor,
    relu: bool,
    geom: &Conv2dGeometry,
) -> Result<Conv2dLaunch> {
    const OP: &str = "conv2d";
    geom.validate(OP)?;
    expect_shape(OP, "x", x, &geom.input_shape())?;
    expect_shape(OP, "w", w, &geom.weight_shape())?;
    expect_shape(OP, "y", y, &geom.output_shape())?;
    if let Some(b) = bias {
        expect_shape(OP, "bias", b, &[geom.out_channels])?;
    }
    check_path(ctx, OP, path, Conv2dPass::Forward, geom)?;
    if let Some(variant) = path.variant() {
        return gemm::forward_like(ctx, gemm::Kind::Forward, variant, x, w, bias, y, relu, geom);
    }
    let pixels = geom.batch * geom.out_height() * geom.out_width();
    let groups = groups_for(pixels.div_ceil(PIX), WG) * geom.out_channels.div_ceil(CH) as u32;
    let params = ConvParams::new(geom, 1, 0);
    Ok(Conv2dLaunch::single(Dispatch::new(
        ctx,
        &SHADER,
        "conv2d_forward",
        &[
            ("WG", WG as f64),
            ("HAS_BIAS", f64::from(u8::from(bias.is_some()))),
            ("RELU", f64::from(u8::from(relu))),
        ],
        &[
            (0, Binding::Tensor(x)),
            (1, Binding::Tensor(w)),
            // Without a bias the shader never reads binding 2; w stands in (both read-only).
            (2, Binding::Tensor(bias.unwrap_or(w))),
            (3, Binding::Tensor(y)),
        ],
        Some((15, bytemuck::bytes_of(&params))),
        grid_1d(groups),
    )))
}

/// Prepare `dx = conv2d_transpose(dy, w)`, the gradient of the (pre-ReLU) output with respect to
/// the input, on the path [`choose_path`] picks. `dy` is `[N, Cout, Ho, Wo]`, `w`
/// `[Cout, Cin, kh, kw]`, `dx` `[N, Cin, H, W]`; `dx` is overwritten.
pub fn prepare_conv2d_input_grad(
    ctx: &GpuContext,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    geom: &Conv2dGeometry,
) -> Result<Conv2dLaunch> {
    let path = choose_path(ctx, Conv2dPass::InputGrad, geom)?;
    prepare_conv2d_input_grad_on(ctx, path, dy, w, dx, geom)
}

/// [`prepare_conv2d_input_grad`] on a given path; an error if that path cannot run it here.
pub fn prepare_conv2d_input_grad_on(
    ctx: &GpuContext,
    path: Conv2dPath,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    geom: &Conv2dGeometry,
) -> Result<Conv2dLaunch> {
    const OP: &str = "conv2d_input_grad";
    geom.validate(OP)?;
    expect_shape(OP, "dy", dy, &geom.output_shape())?;
    expect_shape(OP, "w", w, &geom.weight_shape())?;
    expect_shape(OP, "dx", dx, &geom.input_shape())?;
    check_path(ctx, OP, path, Conv2dPass::InputGrad, geom)?;
    if let Some(variant) = path.variant() {
        let kind = gemm::Kind::InputGrad;
        return gemm::forward_like(ctx, kind, variant, dy, w, None, dx, false, geom);
    }
    let pixels = geom.batch * geom.height * geom.width;
    let groups = groups_for(pixels.div_ceil(PIX), WG) * geom.in_channels.div_ceil(CH) as u32;
    let params = ConvParams::new(geom, 1, 0);
    Ok(Conv2dLaunch::single(Dispatch::new(
        ctx,
        &SHADER,
        "conv2d_input_grad",
        &[("WG", WG as f64)],
        &[
            (1, Binding::Tensor(w)),
            (4, Binding::Tensor(dy)),
            (5, Binding::Tensor(dx)),
        ],
        Some((15, bytemuck::bytes_of(&params))),
        grid_1d(groups),
    )))
}

/// Prepare `dw (+)= dY^T im2col(x)` on the path [`choose_path`] picks: the weight gradient,
/// summed over the batch and all output positions. `x` is `[N, Cin, H, W]`, `dy`
/// `[N, Cout, Ho, Wo]`, `dw` `[Cout, Cin, kh, kw]`; with `accumulate` the result is added to
/// `dw`, otherwise it overwrites it.
pub fn prepare_conv2d_weight_grad(
    ctx: &GpuContext,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    accumulate: bool,
    geom: &Conv2dGeometry,
) -> Result<Conv2dLaunch> {
    let path = choose_path(ctx, Conv2dPass::WeightGrad, geom)?;
    prepare_conv2d_weight_grad_on(ctx, path, x, dy, dw, accumulate, geom)
}

/// [`prepare_conv2d_weight_grad`] on a given path; an error if that path cannot run it here.
pub fn prepare_conv2d_weight_grad_on(
    ctx: &GpuContext,
    path: Conv2dPath,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    accumulate: bool,
    geom: &Conv2dGeometry,
) -> Result<Conv2dLaunch> {
    const OP: &str = "conv2d_weight_grad";
    geom.validate(OP)?;
    expect_shape(OP, "x", x, &geom.input_shape())?;
    expect_shape(OP, "dy", dy, &geom.output_shape())?;
    expect_shape(OP, "dw", dw, &geom.weight_shape())?;
    check_path(ctx, OP, path, Conv2dPass::WeightGrad, geom)?;
    if let Some(variant) = path.variant() {
        return gemm::weight_grad(ctx, variant, x, dy, dw, accumulate, geom);
    }
    direct_weight_grad(ctx, x, dy, dw, accumulate, geom)
}

/// The direct path of the weight gradient. Weights are few and each sums over every output
/// position, so the positions are split into chunks that run in parallel, each writing its
/// partial sums to its own slice of a scratch tensor; a second kernel adds the slices into `dw`.
fn direct_weight_grad(
    ctx: &GpuContext,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    accumulate: bool,
    geom: &Conv2dGeometry,
) -> Result<Conv2dLaunch> {
    let blocks = geom.out_channels.div_ceil(CO_B) * geom.taps().div_ceil(K_B);
    let weights = geom.out_channels * geom.taps();
    let (splits, chunk) = weight_grad_chunks(ctx, geom, blocks);
    let partials = Tensor::zeros(ctx, &[splits, geom.out_channels, geom.taps()], DType::F32)?;
    let params = ConvParams::new(geom, splits, chunk);
    let partial = Dispatch::new(
        ctx,
        &SHADER,
        "conv2d_weight_grad",
        &[("WG", WG as f64)],
        &[
            (0, Binding::Tensor(x)),
            (4, Binding::Tensor(dy)),
            (6, Binding::Tensor(&partials)),
        ],
        Some((15, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(splits * blocks, WG)),
    );
    let reduce = Dispatch::new(
        ctx,
        &SHADER,
        "conv2d_weight_grad_reduce",
        &[
            ("WG", WG as f64),
            ("ACCUMULATE", f64::from(u8::from(accumulate))),
        ],
        &[(6, Binding::Tensor(&partials)), (7, Binding::Tensor(dw))],
        Some((15, bytemuck::bytes_of(&params))),
        grid_1d(groups_for(weights, WG)),
    );
    Ok(Conv2dLaunch {
        dispatches: vec![partial, reduce],
        _workspaces: vec![partials],
        path: Conv2dPath::Direct,
        splits,
    })
}

/// `(splits, positions per split)` of the direct weight gradient, which runs one invocation
/// per split and block of `CO_B x K_B` weights (`blocks` per split).
fn weight_grad_chunks(ctx: &GpuContext, geom: &Conv2dGeometry, blocks: usize) -> (usize, usize) {
    let positions = geom.batch * geom.out_height() * geom.out_width();
    let weights = geom.out_channels * geom.taps();
    // Enough chunks to fill the device, none shorter than the minimum, and a scratch buffer
    // that fits one binding.
    let max_splits_by_memory = (ctx.max_binding_bytes() as usize / (4 * weights)).max(1);
    let wanted = WEIGHT_GRAD_TARGET_INVOCATIONS
        .div_ceil(blocks)
        .min(positions.div_ceil(WEIGHT_GRAD_MIN_CHUNK))
        .min(max_splits_by_memory)
        .max(1);
    let chunk = positions.div_ceil(wanted);
    (positions.div_ceil(chunk), chunk)
}

/// Prepare `db[co] = sum over n, oy, ox of dy[n, co, oy, ox]` (overwrites `db`).
/// `dy` is `[N, Cout, Ho, Wo]`, `db` `[Cout]`.
pub fn prepare_conv2d_bias_grad(
    ctx: &GpuContext,
    dy: &Tensor,
    db: &Tensor,
    geom: &Conv2dGeometry,
) -> Result<Dispatch> {
    const OP: &str = "conv2d_bias_grad";
    geom.validate(OP)?;
    expect_shape(OP, "dy", dy, &geom.output_shape())?;
    expect_shape(OP, "db", db, &[geom.out_channels])?;
    let params = ConvParams::new(geom, 1, 0);
    Ok(Dispatch::new(
        ctx,
        &SHADER,
        "conv2d_bias_grad",
        &[],
        &[(4, Binding::Tensor(dy)), (8, Binding::Tensor(db))],
        Some((15, bytemuck::bytes_of(&params))),
        grid_1d(geom.out_channels as u32),
    ))
}

/// CPU reference: direct loops over the definition, f32 like the kernels.
pub mod cpu {
    use super::Conv2dGeometry;

    /// Input row and column read by output `(oy, ox)` through tap `(ky, kx)`, if inside the image.
    fn source(g: &Conv2dGeometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let iy = (oy * g.stride + ky).checked_sub(g.padding)?;
        let ix = (ox * g.stride + kx).checked_sub(g.padding)?;
        (iy < g.height && ix < g.width).then_some(iy * g.width + ix)
    }

    /// Visit every (n, co, ci, ky, kx, output index, input index) term of the convolution.
    fn for_each_term(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (ho, wo) = (g.out_height(), g.out_width());
        let taps = g.kernel_h * g.kernel_w;
        for n in 0..g.batch {
            for co in 0..g.out_channels {
                for ci in 0..g.in_channels {
                    for ky in 0..g.kernel_h {
                        for kx in 0..g.kernel_w {
                            let w_index = (co * g.in_channels + ci) * taps + ky * g.kernel_w + kx;
                            for oy in 0..ho {
                                for ox in 0..wo {
                                    if let Some(pixel) = source(g, oy, ox, ky, kx) {
                                        let x_index =
                                            (n * g.in_channels + ci) * g.height * g.width + pixel;
                                        let y_index =
                                            ((n * g.out_channels + co) * ho + oy) * wo + ox;
                                        f(x_index, w_index, y_index, co);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `y = relu?(conv2d(x, w) + bias)`.
    pub fn conv2d(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        relu: bool,
        g: &Conv2dGeometry,
    ) -> Vec<f32> {
        let plane = g.out_height() * g.out_width();
        let mut y = vec![0.0f32; g.batch * g.out_channels * plane];
        for_each_term(g, |xi, wi, yi, _| y[yi] += x[xi] * w[wi]);
        for (i, v) in y.iter_mut().enumerate() {
            if let Some(b) = bias {
                *v += b[(i / plane) % g.out_channels];
            }
            if relu {
                *v = v.max(0.0);
            }
        }
        y
    }

    /// `dx` of the pre-activation output: sum over the outputs each input pixel contributed to.
    pub fn conv2d_input_grad(dy: &[f32], w: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
        let mut dx = vec![0.0f32; g.batch * g.in_channels * g.height * g.width];
        for_each_term(g, |xi, wi, yi, _| dx[xi] += dy[yi] * w[wi]);
        dx
    }

    /// `dw[co, ci, ky, kx] = sum over n, oy, ox of dy * x` (not accumulated).
    pub fn conv2d_weight_grad(x: &[f32], dy: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
        let mut dw = vec![0.0f32; g.out_channels * g.in_channels * g.kernel_h * g.kernel_w];
        for_each_term(g, |xi, wi, yi, _| dw[wi] += dy[yi] * x[xi]);
        dw
    }

    /// `db[co] = sum over n, oy, ox of dy[n, co, oy, ox]`.
    pub fn conv2d_bias_grad(dy: &[f32], g: &Conv2dGeometry) -> Vec<f32> {
        let plane = g.out_height() * g.out_width();
        let mut db = vec![0.0f32; g.out_channels];
        for (i, v) in dy.iter().enumerate() {
            db[(i / plane) % g.out_channels] += v;
        }
        db
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, ctx, random_f32};

    /// f32 sums of up to a few hundred products of values in [-1, 1].
    const ATOL: f32 = 1e-4;
    const RTOL: f32 = 1e-4;

    fn geom(
        (batch, in_channels, height, width): (usize, usize, usize, usize),
        (out_channels, kernel_h, kernel_w): (usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> Conv2dGeometry {
        Conv2dGeometry {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel_h,
            kernel_w,
            stride,
            padding,
        }
    }

    /// Odd geometries: none is a multiple of the register blocks (4 pixels x 8 channels).
    fn geometries() -> Vec<Conv2dGeometry> {
        vec![
            geom((2, 3, 7, 9), (5, 3, 3), 1, 1),
            geom((2, 3, 11, 9), (5, 5, 5), 2, 0),
            geom((3, 4, 5, 7), (9, 1, 1), 1, 0),
            geom((1, 2, 6, 8), (3, 3, 2), 3, 2),
            geom((1, 1, 1, 1), (1, 1, 1), 1, 0),
            // The implicit GEMM's row tiles (8, 16, 32 rows, two tiles of 32) and 5x5 'same'.
            geom((2, 1, 9, 8), (8, 5, 5), 1, 2),
            geom((1, 5, 6, 5), (17, 3, 3), 1, 1),
            geom((1, 2, 5, 6), (33, 5, 5), 1, 2),
            // The window path's tap runs: kernels 6 and 7 wide, rows of 9 to 17 positions.
            geom((2, 2, 4, 17), (6, 2, 6), 1, 1),
            geom((1, 3, 5, 9), (10, 3, 7), 1, 3),
            // Two tap rows per lane of the window weight gradient, 21 of them (the last lane's
            // second one past the end).
            geom((2, 7, 5, 6), (9, 3, 3), 1, 1),
            geom((1, 4, 6, 7), (6, 5, 5), 1, 2),
        ]
    }

    /// `geometries()` and a layer whose packed weights overflow a 64 KiB uniform block, so
    /// that the forward-like kernels read them from storage on every adapter.
    fn forward_geometries() -> Vec<Conv2dGeometry> {
        let mut cases = geometries();
        cases.push(geom((1, 40, 3, 5), (70, 3, 3), 1, 1));
        cases
    }

    /// Every path that can run `pass` of `g` on this adapter (the direct one always can).
    fn paths(ctx: &GpuContext, pass: Conv2dPass, g: &Conv2dGeometry) -> Vec<Conv2dPath> {
        Conv2dPath::ALL
            .into_iter()
            .filter(|p| path_unsupported(ctx, *p, pass, g).is_none())
            .collect()
    }

    fn numel(shape: [usize; 4]) -> usize {
        shape.iter().product()
    }

    #[test]
    fn geometry_sizes_and_flops() {
        let g = geom((128, 1, 28, 28), (16, 5, 5), 1, 2);
        assert_eq!((g.out_height(), g.out_width()), (28, 28));
        assert_eq!(g.flops(), 2 * 128 * 16 * 28 * 28 * 25);
        let g = geom((1, 1, 11, 10), (1, 5, 3), 2, 0);
        assert_eq!((g.out_height(), g.out_width()), (4, 4));
    }

    #[test]
    fn forward_matches_cpu() {
        check_forward_matches_cpu();
    }

    /// The GPUs' path for padded sources: storage buffers instead of textures.
    #[test]
    fn forward_matches_cpu_from_storage() {
        gemm::STORAGE_SOURCES.set(true);
        check_forward_matches_cpu();
    }

    fn check_forward_matches_cpu() {
        let ctx = ctx();
        for (case, g) in forward_geometries().iter().enumerate() {
            for (bias_on, relu) in [(true, true), (false, false)] {
                let x = random_f32(numel(g.input_shape()), 10 + case as u64, 1.0);
                let w = random_f32(numel(g.weight_shape()), 20 + case as u64, 1.0);
                let b = random_f32(g.out_channels, 30 + case as u64, 1.0);
                let xt = Tensor::from_f32(ctx, &x, &g.input_shape()).unwrap();
                let wt = Tensor::from_f32(ctx, &w, &g.weight_shape()).unwrap();
                let bt = Tensor::from_f32(ctx, &b, &[g.out_channels]).unwrap();
                let bias = bias_on.then_some(&bt);
                let expected = cpu::conv2d(&x, &w, bias_on.then_some(&b[..]), relu, g);
                for path in paths(ctx, Conv2dPass::Forward, g) {
                    let yt = Tensor::zeros(ctx, &g.output_shape(), DType::F32).unwrap();
                    let launch =
                        prepare_conv2d_on(ctx, path, &xt, &wt, bias, &yt, relu, g).unwrap();
                    assert_eq!(launch.path(), path);
                    let mut enc = ctx.encoder();
                    launch.encode(&mut enc);
                    ctx.submit_and_wait(enc);
                    let what = format!(
                        "conv2d {path} {g:?} bias {bias_on} relu {relu} (atol {ATOL}, rtol {RTOL})"
                    );
                    assert_close(&yt.to_f32(ctx).unwrap(), &expected, ATOL, RTOL, &what);
                }
            }
        }
    }

    #[test]
    fn input_grad_matches_cpu() {
        check_input_grad_matches_cpu();
    }

    /// The GPUs' path for padded sources: storage buffers instead of textures.
    #[test]
    fn input_grad_matches_cpu_from_storage() {
        gemm::STORAGE_SOURCES.set(true);
        check_input_grad_matches_cpu();
    }

    fn check_input_grad_matches_cpu() {
        let ctx = ctx();
        for (case, g) in forward_geometries().iter().enumerate() {
            let dy = random_f32(numel(g.output_shape()), 40 + case as u64, 1.0);
            let w = random_f32(numel(g.weight_shape()), 50 + case as u64, 1.0);
            let dyt = Tensor::from_f32(ctx, &dy, &g.output_shape()).unwrap();
            let wt = Tensor::from_f32(ctx, &w, &g.weight_shape()).unwrap();
            let expected = cpu::conv2d_input_grad(&dy, &w, g);
            for path in paths(ctx, Conv2dPass::InputGrad, g) {
                // Start from garbage: the kernel must overwrite every element, including pixels
                // no window reaches (stride 3 skips some).
                let garbage = vec![7.0; numel(g.input_shape())];
                let dxt = Tensor::from_f32(ctx, &garbage, &g.input_shape()).unwrap();
                let launch = prepare_conv2d_input_grad_on(ctx, path, &dyt, &wt, &dxt, g).unwrap();
                let mut enc = ctx.encoder();
                launch.encode(&mut enc);
                ctx.submit_and_wait(enc);
                let what = format!("conv2d_input_grad {path} {g:?} (atol {ATOL}, rtol {RTOL})");
                assert_close(&dxt.to_f32(ctx).unwrap(), &expected, ATOL, RTOL, &what);
            }
        }
    }

    #[test]
    fn weight_grad_matches_cpu_and_accumulates() {
        check_weight_grad_matches_cpu_and_accumulates();
    }

    /// The GPUs' path for padded sources: storage buffers instead of textures.
    #[test]
    fn weight_grad_matches_cpu_and_accumulates_from_storage() {
        gemm::STORAGE_SOURCES.set(true);
        check_weight_grad_matches_cpu_and_accumulates();
    }

    fn check_weight_grad_matches_cpu_and_accumulates() {
        let ctx = ctx();
        let mut cases = geometries();
        // Long enough (2*30*30 = 1800 positions) for the reduction to be split into chunks.
        cases.push(geom((2, 2, 30, 30), (3, 3, 3), 1, 1));
        // Enough images for the window path to split each into chunks of 3 output rows and 1.
        let split_case = cases.len();
        cases.push(geom((40, 1, 10, 7), (3, 3, 3), 1, 1));
        // 72 tap rows: the window path's two workgroups of 40 lanes, the last one part-filled.
        cases.push(geom((1, 24, 5, 6), (3, 3, 3), 1, 1));
        // Few tap rows (conv_few_taps_weight_grad): 20 rows in blocks of 16 and 4, rows of 11.
        cases.push(geom((3, 1, 6, 11), (20, 3, 3), 1, 1));
        // Output rows of 12 (runs of 4 dy values aligned): 18 tap rows, so the window path
        // reads dy from a texture on CPU adapters; 20 rows in tiles of 16 and 4.
        cases.push(geom((2, 6, 8, 12), (20, 3, 3), 1, 1));
        // 63 taps, 8 GEMM lanes reading each dy value, 144 positions in chunks: both the GEMM
        // and the window path read dy from a texture there, chunks starting past 0.
        cases.push(geom((2, 7, 12, 12), (5, 3, 3), 1, 1));
        for (case, g) in cases.iter().enumerate() {
            let x = random_f32(numel(g.input_shape()), 60 + case as u64, 1.0);
            let dy = random_f32(numel(g.output_shape()), 70 + case as u64, 1.0);
            let old = random_f32(numel(g.weight_shape()), 80 + case as u64, 1.0);
            let xt = Tensor::from_f32(ctx, &x, &g.input_shape()).unwrap();
            let dyt = Tensor::from_f32(ctx, &dy, &g.output_shape()).unwrap();
            let expected = cpu::conv2d_weight_grad(&x, &dy, g);
            let positions = (g.batch * g.out_height() * g.out_width()) as f32;
            let tol = ATOL * positions.sqrt().max(1.0);
            let runs = paths(ctx, Conv2dPass::WeightGrad, g);
            for (path, accumulate) in runs.iter().flat_map(|p| [(*p, false), (*p, true)]) {
                let dwt = Tensor::from_f32(ctx, &old, &g.weight_shape()).unwrap();
                let wg = prepare_conv2d_weight_grad_on(ctx, path, &xt, &dyt, &dwt, accumulate, g)
                    .unwrap();
                if case == split_case {
                    assert!(
                        wg.splits() > 1,
                        "expected a split reduction for {g:?} ({path})"
                    );
                }
                let mut enc = ctx.encoder();
                wg.encode(&mut enc);
                ctx.submit_and_wait(enc);
                let want: Vec<f32> = if accumulate {
                    expected.iter().zip(&old).map(|(e, o)| e + o).collect()
                } else {
                    expected.clone()
                };
                let what = format!(
                    "conv2d_weight_grad {path} {g:?} accumulate {accumulate} (atol {tol}, rtol {RTOL})"
                );
                assert_close(&dwt.to_f32(ctx).unwrap(), &want, tol, RTOL, &what);
            }
        }
    }

    #[test]
    fn bias_grad_matches_cpu() {
        let ctx = ctx();
        let mut cases = geometries();
        cases.push(geom((3, 1, 20, 20), (2, 1, 1), 1, 0)); // planes longer than the workgroup
        for (case, g) in cases.iter().enumerate() {
            let dy = random_f32(numel(g.output_shape()), 90 + case as u64, 1.0);
            let dyt = Tensor::from_f32(ctx, &dy, &g.output_shape()).unwrap();
            let dbt = Tensor::from_f32(ctx, &vec![7.0; g.out_channels], &[g.out_channels]).unwrap();
            let mut enc = ctx.encoder();
            prepare_conv2d_bias_grad(ctx, &dyt, &dbt, g)
                .unwrap()
                .encode(&mut enc);
            ctx.submit_and_wait(enc);
            let what = format!("conv2d_bias_grad {g:?} (atol {ATOL}, rtol {RTOL})");
            let expected = cpu::conv2d_bias_grad(&dy, g);
            assert_close(&dbt.to_f32(ctx).unwrap(), &expected, ATOL, RTOL, &what);
        }
    }

    /// `L = sum(conv2d(x, w, b) * probe)`, accumulated in f64.
    fn probe_loss(x: &[f32], w: &[f32], b: &[f32], probe: &[f32], g: &Conv2dGeometry) -> f64 {
        let y = cpu::conv2d(x, w, Some(b), false, g);
        y.iter()
            .zip(probe)
            .map(|(a, p)| f64::from(*a) * f64::from(*p))
            .sum()
    }

    /// Central differences of `probe_loss` along every coordinate of one operand.
    fn numeric_grad(values: &[f32], loss: impl Fn(&[f32]) -> f64) -> Vec<f32> {
        // The loss is linear in each operand, so central differences are exact up to f32
        // rounding of the outputs; a large step keeps that rounding small relative to it.
        const STEP: f32 = 0.05;
        let mut shifted = values.to_vec();
        (0..values.len())
            .map(|i| {
                shifted[i] = values[i] + STEP;
                let up = loss(&shifted);
                shifted[i] = values[i] - STEP;
                let down = loss(&shifted);
                shifted[i] = values[i];
                ((up - down) / (2.0 * f64::from(STEP))) as f32
            })
            .collect()
    }

    #[test]
    fn cpu_gradients_match_finite_differences() {
        for (case, g) in geometries().iter().enumerate() {
            let x = random_f32(numel(g.input_shape()), 100 + case as u64, 1.0);
            let w = random_f32(numel(g.weight_shape()), 110 + case as u64, 1.0);
            let b = random_f32(g.out_channels, 120 + case as u64, 1.0);
            let probe = random_f32(numel(g.output_shape()), 130 + case as u64, 1.0);
            // Differences of f32 outputs divided by a 0.1 span: about 1e-6 * |L| / 0.1 of noise.
            let (atol, rtol) = (2e-3, 1e-3);
            let what = |name: &str| {
                format!("{name} vs finite differences, {g:?} (atol {atol}, rtol {rtol})")
            };

            let numeric_dx = numeric_grad(&x, |xs| probe_loss(xs, &w, &b, &probe, g));
            let dx = cpu::conv2d_input_grad(&probe, &w, g);
            assert_close(&dx, &numeric_dx, atol, rtol, &what("input grad"));

            let numeric_dw = numeric_grad(&w, |ws| probe_loss(&x, ws, &b, &probe, g));
            let dw = cpu::conv2d_weight_grad(&x, &probe, g);
            assert_close(&dw, &numeric_dw, atol, rtol, &what("weight grad"));

            let numeric_db = numeric_grad(&b, |bs| probe_loss(&x, &w, bs, &probe, g));
            let db = cpu::conv2d_bias_grad(&probe, g);
            assert_close(&db, &numeric_db, atol, rtol, &what("bias grad"));
        }
    }

    #[test]
    fn mismatched_shapes_are_rejected_naming_both() {
        let ctx = ctx();
        let g = geom((2, 3, 7, 9), (5, 3, 3), 1, 1);
        let x = Tensor::zeros(ctx, &[2, 3, 7, 8], DType::F32).unwrap();
        let w = Tensor::zeros(ctx, &g.weight_shape(), DType::F32).unwrap();
        let y = Tensor::zeros(ctx, &g.output_shape(), DType::F32).unwrap();
        let err = prepare_conv2d(ctx, &x, &w, None, &y, false, &g)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[2, 3, 7, 8]") && err.contains("[2, 3, 7, 9]"),
            "{err}"
        );

        let x = Tensor::zeros(ctx, &g.input_shape(), DType::F32).unwrap();
        let bad_bias = Tensor::zeros(ctx, &[4], DType::F32).unwrap();
        let err = prepare_conv2d(ctx, &x, &w, Some(&bad_bias), &y, true, &g)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[4]") && err.contains("[5]"), "{err}");

        let bad_dw = Tensor::zeros(ctx, &[5, 3, 3, 2], DType::F32).unwrap();
        let err = prepare_conv2d_weight_grad(ctx, &x, &y, &bad_dw, false, &g)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[5, 3, 3, 2]") && err.contains("[5, 3, 3, 3]"),
            "{err}"
        );

        let int_dy = Tensor::zeros(ctx, &g.output_shape(), DType::U32).unwrap();
        let err = prepare_conv2d_input_grad(ctx, &int_dy, &w, &x, &g)
            .unwrap_err()
            .to_string();
        assert!(err.contains("F32") && err.contains("U32"), "{err}");

        let too_big_kernel = geom((1, 1, 2, 2), (1, 5, 5), 1, 1);
        let err = too_big_kernel.validate("conv2d").unwrap_err().to_string();
        assert!(err.contains("5x5") && err.contains("4x4"), "{err}");
    }

    /// Where the adapter has subgroups of 8 lanes, the default CNN's 32-channel layers take the
    /// window path for the forward and input gradient and the GEMM path for the weight
    /// gradient (the window one pays up to 16 channels); elsewhere every pass falls back to the
    /// direct kernels.
    #[test]
    fn paths_are_chosen_by_adapter_and_shape() {
        let ctx = ctx();
        let fast = crate::ops::matmul::subgroups_of_eight(ctx);
        let g = geom((8, 16, 14, 14), (32, 3, 3), 1, 1);
        for pass in [
            Conv2dPass::Forward,
            Conv2dPass::InputGrad,
            Conv2dPass::WeightGrad,
        ] {
            let want = match (fast, pass) {
                (false, _) => Conv2dPath::Direct,
                (true, Conv2dPass::WeightGrad) => Conv2dPath::Gemm,
                (true, _) => Conv2dPath::Window,
            };
            if std::env::var_os(PATH_ENV).is_none() {
                assert_eq!(choose_path(ctx, pass, &g).unwrap(), want, "{pass:?}");
            }
            assert_eq!(path_unsupported(ctx, Conv2dPath::Direct, pass, &g), None);
        }
        // A layer of 8 output channels takes the window path for its weight gradient too.
        let first = geom((8, 1, 28, 28), (8, 5, 5), 1, 2);
        if fast && std::env::var_os(PATH_ENV).is_none() {
            let path = choose_path(ctx, Conv2dPass::WeightGrad, &first).unwrap();
            assert_eq!(path, Conv2dPath::Window);
        }
        // The GEMM input gradient needs stride 1: asked for explicitly, it is refused by name.
        let strided = geom((2, 3, 11, 9), (5, 5, 5), 2, 0);
        let dy = Tensor::zeros(ctx, &strided.output_shape(), DType::F32).unwrap();
        let w = Tensor::zeros(ctx, &strided.weight_shape(), DType::F32).unwrap();
        let dx = Tensor::zeros(ctx, &strided.input_shape(), DType::F32).unwrap();
        let err = prepare_conv2d_input_grad_on(ctx, Conv2dPath::Gemm, &dy, &w, &dx, &strided)
            .unwrap_err()
            .to_string();
        let why = if fast { "stride 1" } else { "subgroups" };
        assert!(err.contains("gemm path") && err.contains(why), "{err}");
        let auto = prepare_conv2d_input_grad(ctx, &dy, &w, &dx, &strided).unwrap();
        assert_eq!(auto.path(), Conv2dPath::Direct);
    }

    /// A workspace over the binding limit is refused with the shape and the limit (checked
    /// before anything is allocated), and the automatic choice falls back to direct kernels.
    #[test]
    fn oversized_workspaces_are_refused_by_name() {
        let ctx = ctx();
        let huge = geom((1 << 20, 64, 64, 64), (64, 3, 3), 1, 1);
        let why = path_unsupported(ctx, Conv2dPath::Gemm, Conv2dPass::Forward, &huge).unwrap();
        if crate::ops::matmul::subgroups_of_eight(ctx) {
            let limit = ctx.max_binding_bytes().min(u64::from(u32::MAX));
            assert!(
                why.contains("padded source") && why.contains(&limit.to_string()),
                "{why}"
            );
            assert!(why.contains("batch: 1048576"), "{why}");
        } else {
            assert!(why.contains("subgroups"), "{why}");
        }
        if std::env::var_os(PATH_ENV).is_none() {
            let path = choose_path(ctx, Conv2dPass::WeightGrad, &huge).unwrap();
            assert_eq!(path, Conv2dPath::Direct);
        }
    }
}
