//! `matmul`: C = relu?((accumulate ? C : 0) + op(A) op(B) + bias) (shaders/matmul.wgsl).
//!
//! Three kernel shapes, each with a few tile sizes ([`MatmulVariant`]): register blocking
//! without workgroup memory and workgroup tiles in shared memory (both in
//! shaders/matmul.wgsl, correct for every shape), and a vec4 + subgroup-broadcast register
//! kernel (shaders/matmul_subgroup.wgsl) for shapes whose contiguous dimensions are
//! multiples of 4 on adapters with subgroups of at least 8 lanes. Software Vulkan such as
//! lavapipe, where every storage load is costly and barriers more so, wants the last; real
//! GPUs usually want shared-memory tiles. Which one runs is, in order of precedence:
//! [`MatmulOptions::variant`], the environment variable `DK_MATMUL_VARIANT=<name>`, or the
//! per-adapter choice made by timing the candidates once ([`tune_matmul`], cached on disk;
//! see [`tuning`]). A subgroup variant asked for a shape or adapter it cannot run falls
//! back to a general variant ([`MatmulVariant::runs`]).

pub mod tuning;

use crate::context::{GpuContext, ShaderSource};
use crate::error::{Result, invalid_argument, shape_error};
use crate::kernel::{Binding, Dispatch, MAX_GROUPS_PER_DIM, groups_for, record_all};
use crate::ops::texture;
use crate::tensor::{DType, Tensor};

pub use tuning::{ClassChoice, MatmulTuning, ShapeClass, retune_matmul, tune_matmul};

pub const SHADER: ShaderSource = ShaderSource {
    name: "matmul",
    wgsl: include_str!("../../../../../shaders/matmul.wgsl"),
};

/// The vec4 + subgroup fast path; a separate module because it needs the subgroup feature.
pub const SUBGROUP_SHADER: ShaderSource = ShaderSource {
    name: "matmul_subgroup",
    wgsl: include_str!("../../../../../shaders/matmul_subgroup.wgsl"),
};

const OP: &str = "matmul";

/// Environment variable that forces one variant by name (see [`MatmulVariant::name`]).
pub const VARIANT_ENV: &str = "DK_MATMUL_VARIANT";

/// A kernel shape and its tile sizes. Every variant gives correct results for every shape; a
/// subgroup variant does so by running its general fallback where it cannot ([`Self::runs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    /// 64x8 outputs per invocation, otherwise as `Subgroup32x8`: half the loads of B per
    /// multiply-add, for products of many rows.
    Subgroup64x8,
    /// 32x8 outputs per invocation, vec4 loads, rows of A shared by subgroup broadcast,
    /// 64 invocations per workgroup. Only for shapes and adapters where [`Self::runs`].
    Subgroup32x8,
    /// 16x8 outputs per invocation, otherwise as `Subgroup32x8` (cheaper to compile, more
    /// workgroups on small products).
    Subgroup16x8,
    /// 4x4 outputs per invocation, no workgroup memory, 8x8 invocations per workgroup.
    Register4x4,
    /// 8x8 outputs per invocation, no workgroup memory, 8x8 invocations per workgroup.
    Register8x8,
    /// 64x64 workgroup tiles in workgroup memory, 4x4 outputs per invocation, k slices of 16.
    Tiled64,
    /// 128x128 workgroup tiles in workgroup memory, 8x8 outputs per invocation, k slices of 8.
    Tiled128,
}

/// Shader, entry point and override constants of one variant.
struct VariantConfig {
    shader: &'static ShaderSource,
    entry: &'static str,
    tm: u32,
    tn: u32,
    wg_x: u32,
    wg_y: u32,
    bk: u32,
}

impl MatmulVariant {
    /// Every variant, in the order the tuner tries them: the fast paths first, since tuning
    /// stops trying candidates once its time budget is spent.
    pub const ALL: [MatmulVariant; 7] = [
        MatmulVariant::Subgroup64x8,
        MatmulVariant::Subgroup32x8,
        MatmulVariant::Subgroup16x8,
        MatmulVariant::Register4x4,
        MatmulVariant::Register8x8,
        MatmulVariant::Tiled64,
        MatmulVariant::Tiled128,
    ];

    /// The name used by `DK_MATMUL_VARIANT` and the tuning cache.
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Subgroup64x8 => "subgroup64x8",
            MatmulVariant::Subgroup32x8 => "subgroup32x8",
            MatmulVariant::Subgroup16x8 => "subgroup16x8",
            MatmulVariant::Register4x4 => "register4x4",
            MatmulVariant::Register8x8 => "register8x8",
            MatmulVariant::Tiled64 => "tiled64",
            MatmulVariant::Tiled128 => "tiled128",
        }
    }

    /// The variant called `name` (case-insensitive), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Whether this variant runs every shape on every adapter (the subgroup ones do not).
    pub fn is_general(self) -> bool {
        !matches!(
            self,
            MatmulVariant::Subgroup64x8 | MatmulVariant::Subgroup32x8 | MatmulVariant::Subgroup16x8
        )
    }

    /// Whether this variant can compute an `m x k` by `k x n` product in the given layout on
    /// `ctx`'s adapter. The subgroup variants read A and B as vec4, so they need `k` and the
    /// stored row length of each operand to be multiples of 4, and subgroups of >= 8 lanes.
    pub fn runs(
        self,
        ctx: &GpuContext,
        [m, n, k]: [usize; 3],
        trans_a: bool,
        trans_b: bool,
    ) -> bool {
        if self.is_general() {
            return true;
        }
        let rows_of_four = k % 4 == 0 && (!trans_a || m % 4 == 0) && (trans_b || n % 4 == 0);
        rows_of_four && subgroups_of_eight(ctx)
    }

    /// The variant that runs in place of this one where it cannot ([`Self::runs`]).
    pub fn general_fallback(self) -> MatmulVariant {
        if self.is_general() {
            self
        } else {
            MatmulVariant::Register8x8
        }
    }

    /// The shortest subgroup variant that still covers `m` rows with one block, where this
    /// one's block is at least twice as tall as `m`: the rows past `m` would be computed and
    /// thrown away. Other variants are returned unchanged.
    pub fn fitted_to_rows(self, m: usize) -> MatmulVariant {
        let shorter = match self {
            MatmulVariant::Subgroup64x8 => MatmulVariant::Subgroup32x8,
            MatmulVariant::Subgroup32x8 => MatmulVariant::Subgroup16x8,
            _ => return self,
        };
        if m <= shorter.config().tm as usize {
            shorter.fitted_to_rows(m)
        } else {
            self
        }
    }

    fn config(self) -> VariantConfig {
        let (entry, tm, tn, wg_x, wg_y, bk) = match self {
            MatmulVariant::Subgroup64x8 => ("matmul_subgroup", 64, 8, 64, 1, 0),
            MatmulVariant::Subgroup32x8 => ("matmul_subgroup", 32, 8, 64, 1, 0),
            MatmulVariant::Subgroup16x8 => ("matmul_subgroup", 16, 8, 64, 1, 0),
            MatmulVariant::Register4x4 => ("matmul_register", 4, 4, 8, 8, 1),
            MatmulVariant::Register8x8 => ("matmul_register", 8, 8, 8, 8, 1),
            MatmulVariant::Tiled64 => ("matmul_tiled", 4, 4, 16, 16, 16),
            MatmulVariant::Tiled128 => ("matmul_tiled", 8, 8, 16, 16, 8),
        };
        VariantConfig {
            shader: if self.is_general() {
                &SHADER
            } else {
                &SUBGROUP_SHADER
            },
            entry,
            tm,
            tn,
            wg_x,
            wg_y,
            bk,
        }
    }
}

impl VariantConfig {
    /// This geometry with the subgroup workgroup narrowed to the product's `n` columns: the
    /// widest of 64, 32, 16 or 8 invocations (the kernel needs 8) that leaves at most an
    /// eighth of the launched column lanes idle. A 64-wide workgroup on a 64-column product
    /// would otherwise compute 7 clamped, discarded columns for every useful one.
    fn narrowed_to(self, n: usize) -> VariantConfig {
        if self.bk != 0 {
            return self;
        }
        let lanes = n.div_ceil(self.tn as usize);
        let wasteful = |width: usize| {
            let launched = lanes.div_ceil(width) * width;
            8 * (launched - lanes) > launched
        };
        let mut wg_x = self.wg_x as usize;
        while wg_x > 8 && wasteful(wg_x) {
            wg_x /= 2;
        }
        VariantConfig {
            wg_x: wg_x as u32,
            ..self
        }
    }
}

impl std::fmt::Display for MatmulVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MatmulVariant {
    type Err = crate::error::TensorError;

    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s).ok_or_else(|| {
            invalid_argument(
                OP,
                format!("unknown variant {s:?}; known: {}", variant_names()),
            )
        })
    }
}

/// Subgroup operations are enabled on the device and every subgroup has lanes 0..7.
pub(crate) fn subgroups_of_eight(ctx: &GpuContext) -> bool {
    ctx.features.contains(wgpu::Features::SUBGROUP) && ctx.adapter.get_info().subgroup_min_size >= 8
}

fn variant_names() -> String {
    MatmulVariant::ALL.map(MatmulVariant::name).join(", ")
}

/// Options of one matmul. `Default` is a plain C = A B.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatmulOptions<'a> {
    /// A is stored [k, m] and used transposed.
    pub trans_a: bool,
    /// B is stored [n, k] and used transposed (a linear layer's `x W^T`).
    pub trans_b: bool,
    /// Added to every row of the product, shape [n].
    pub bias: Option<&'a Tensor>,
    /// Clamp the result at zero.
    pub relu: bool,
    /// Add the product to what C holds instead of overwriting it.
    pub accumulate: bool,
    /// Force a variant; `None` uses `DK_MATMUL_VARIANT` or the adapter's tuned choice.
    pub variant: Option<MatmulVariant>,
    /// Where the subgroup kernel reads A and B from.
    pub operands: Operands,
}

/// Where the vec4 subgroup kernel reads its operands from. The other variants always read
/// storage buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Operands {
    /// Storage buffers, except on CPU adapters, where an operand that the product reads often
    /// enough is first copied into a texture (see [`texture_pays`]).
    #[default]
    Auto,
    /// Storage buffers (what GPUs use).
    Storage,
    /// Textures, for every operand that fits one.
    Textures,
}

/// Whether copying an operand into a texture pays on a CPU adapter, for the subgroup kernel
/// of `tm` rows on an `m x n` output. That kernel loads A m n k / 64 times (a vec4 per lane for
/// every 8 rows and 4 steps of k, each lane owning 8 columns) and B m n k / tm times; the copy
/// loads and stores each value once. On lavapipe a value costs about 3.8 ns to load from
/// storage and 0.56 ns from a texture, and about 5 ns to copy, so A pays from about 100
/// columns and B from about 1.5 blocks of rows; the thresholds leave a margin.
pub fn texture_pays(m: usize, n: usize, tm: usize) -> (bool, bool) {
    (n >= 128, m >= 2 * tm)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const FLAG_BIAS: u32 = 1;
const FLAG_RELU: u32 = 2;
const FLAG_ACCUMULATE: u32 = 4;

/// The problem size `(m, n, k)` after checking dtypes, shapes and aliasing.
fn validate(a: &Tensor, b: &Tensor, c: &Tensor, opts: &MatmulOptions) -> Result<[usize; 3]> {
    for (name, t) in [("A", a), ("B", b), ("C", c)] {
        check_f32_matrix(name, t)?;
    }
    let [m, n, k] = product_size(a.shape(), b.shape(), c.shape(), opts)?;
    if let Some(bias) = opts.bias {
        check_bias(bias, c, n)?;
    }
    if c.same_buffer(a) || c.same_buffer(b) {
        return Err(invalid_argument(
            OP,
            format!(
                "C {:?} shares a buffer with A {:?} or B {:?}; the output must be a separate tensor",
                c.shape(),
                a.shape(),
                b.shape()
            ),
        ));
    }
    Ok([m, n, k])
}

fn check_f32_matrix(name: &str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(shape_error(
            OP,
            format!(
                "{name} must be F32, got {:?} of shape {:?}",
                t.dtype(),
                t.shape()
            ),
        ));
    }
    if t.shape().len() != 2 {
        return Err(shape_error(
            OP,
            format!("{name} must be a matrix, got shape {:?}", t.shape()),
        ));
    }
    Ok(())
}

/// `[m, n, k]` of op(A) op(B) for matrices of shapes `sa` and `sb`, once their inner
/// dimensions agree and C (shape `sc`) is `[m, n]`.
fn product_size(
    sa: &[usize],
    sb: &[usize],
    sc: &[usize],
    opts: &MatmulOptions,
) -> Result<[usize; 3]> {
    let (m, ka) = used_shape(sa, opts.trans_a);
    let (kb, n) = used_shape(sb, opts.trans_b);
    if ka != kb {
        return Err(shape_error(
            OP,
            format!(
                "{} but {} (inner dims {ka} != {kb})",
                describe_operand("A", sa, opts.trans_a),
                describe_operand("B", sb, opts.trans_b)
            ),
        ));
    }
    if sc != [m, n] {
        return Err(shape_error(
            OP,
            format!(
                "C is {sc:?} but op(A) op(B) is [{m}, {n}] ({}, {})",
                describe_operand("A", sa, opts.trans_a),
                describe_operand("B", sb, opts.trans_b)
            ),
        ));
    }
    Ok([m, n, ka])
}

/// (rows, columns) of a stored `[rows, columns]` matrix as the product uses it.
fn used_shape(shape: &[usize], trans: bool) -> (usize, usize) {
    if trans {
        (shape[1], shape[0])
    } else {
        (shape[0], shape[1])
    }
}

fn describe_operand(name: &str, shape: &[usize], trans: bool) -> String {
    format!(
        "{name} is {shape:?}{}",
        if trans { " (transposed)" } else { "" }
    )
}

/// The bias must be F32 `[n]` and not alias C, which the kernel writes while reading it.
fn check_bias(bias: &Tensor, c: &Tensor, n: usize) -> Result<()> {
    bias.expect_dtype(OP, DType::F32)?;
    if bias.shape() != [n] {
        return Err(shape_error(
            OP,
            format!(
                "bias is {:?} but C is {:?} (bias must be [{n}])",
                bias.shape(),
                c.shape()
            ),
        ));
    }
    if bias.same_buffer(c) {
        return Err(invalid_argument(OP, "bias and C share a buffer"));
    }
    Ok(())
}

/// The variant that runs this shape: the one `opts`, the environment or the adapter's
/// tuning picks, or its general fallback where that one cannot run the shape.
pub fn choose_variant(
    ctx: &GpuContext,
    m: usize,
    n: usize,
    k: usize,
    opts: &MatmulOptions,
) -> Result<MatmulVariant> {
    let runs = |v: MatmulVariant| v.runs(ctx, [m, n, k], opts.trans_a, opts.trans_b);
    if let Some(v) = opts
        .variant
        .map_or_else(variant_from_env, |v| Ok(Some(v)))?
    {
        return Ok(if runs(v) { v } else { v.general_fallback() });
    }
    let tuning = tune_matmul(ctx)?;
    let class = ShapeClass::of(m, n, k);
    let best = tuning.choice(class).fitted_to_rows(m);
    Ok(if runs(best) {
        best
    } else {
        tuning.general_choice(class)
    })
}

/// The variant forced by `DK_MATMUL_VARIANT`, if set and not empty.
pub fn variant_from_env() -> Result<Option<MatmulVariant>> {
    match std::env::var(VARIANT_ENV) {
        Ok(name) if !name.trim().is_empty() => {
            MatmulVariant::from_name(&name).map(Some).ok_or_else(|| {
                invalid_argument(
                    OP,
                    format!(
                        "{VARIANT_ENV}={name:?} is not a variant; known: {}",
                        variant_names()
                    ),
                )
            })
        }
        _ => Ok(None),
    }
}

/// One prepared matmul: the copies of its operands into textures, where it reads them from
/// there, then the product. Record it whole, after A and B hold their values.
#[derive(Debug)]
pub struct MatmulLaunch {
    dispatches: Vec<Dispatch>,
}

impl MatmulLaunch {
    /// The dispatches in recording order.
    pub fn dispatches(&self) -> Vec<&Dispatch> {
        self.dispatches.iter().collect()
    }

    /// Record the launch into an open compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.record(pass);
        }
    }

    /// Record the launch in a compute pass of its own.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        record_all(encoder, &self.dispatches);
    }
}

/// Prepare C = relu?((accumulate ? C : 0) + op(A) op(B) + bias); see [`MatmulOptions`].
pub fn prepare_matmul(
    ctx: &GpuContext,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: &MatmulOptions,
) -> Result<MatmulLaunch> {
    let [m, n, k] = validate(a, b, c, opts)?;
    let variant = choose_variant(ctx, m, n, k, opts)?;
    let cfg = variant.config().narrowed_to(n);
    let groups = grid(&cfg, variant, m, n)?;
    let params = MatmulParams::new([m, n, k], opts);
    let (texture_a, texture_b) = operand_textures(ctx, variant, &cfg, [m, n, k], opts.operands);
    let mut dispatches = Vec::new();
    let a_texture = operand_texture(ctx, a, texture_a, &mut dispatches)?;
    let b_texture = operand_texture(ctx, b, texture_b, &mut dispatches)?;
    // WebGPU needs every binding of the layout; without a bias a one-element stand-in is bound.
    let dummy_bias;
    let bias = match opts.bias {
        Some(bias) => bias,
        None => {
            dummy_bias = Tensor::zeros(ctx, &[1], DType::F32)?;
            &dummy_bias
        }
    };
    let mut bindings = vec![
        (0, Binding::Tensor(a)),
        (1, Binding::Tensor(b)),
        (2, Binding::Tensor(c)),
        (3, Binding::Tensor(bias)),
    ];
    let mut constants = override_constants(&cfg, variant, opts);
    // Only the subgroup kernel has operand textures.
    if !variant.is_general() {
        bindings.extend([
            (5, Binding::Texture(&a_texture)),
            (6, Binding::Texture(&b_texture)),
        ]);
        constants.extend([
            ("TEXTURE_A", flag(texture_a)),
            ("TEXTURE_B", flag(texture_b)),
        ]);
    }
    dispatches.push(Dispatch::new(
        ctx,
        cfg.shader,
        cfg.entry,
        &constants,
        &bindings,
        Some((4, bytemuck::bytes_of(&params))),
        groups,
    ));
    Ok(MatmulLaunch { dispatches })
}

/// Which of A and B the subgroup kernel reads from textures (see [`Operands`]).
fn operand_textures(
    ctx: &GpuContext,
    variant: MatmulVariant,
    cfg: &VariantConfig,
    [m, n, k]: [usize; 3],
    operands: Operands,
) -> (bool, bool) {
    if variant.is_general() {
        return (false, false);
    }
    let fit = (texture::fits(ctx, m * k), texture::fits(ctx, k * n));
    let wanted = match operands {
        Operands::Storage => (false, false),
        Operands::Textures => (true, true),
        Operands::Auto if ctx.summary.is_cpu => texture_pays(m, n, cfg.tm as usize),
        Operands::Auto => (false, false),
    };
    (wanted.0 && fit.0, wanted.1 && fit.1)
}

/// The texture an operand is read from, its copy appended to `dispatches`; where it is read
/// from storage, a 1 x 1 stand-in for the binding.
fn operand_texture(
    ctx: &GpuContext,
    operand: &Tensor,
    in_texture: bool,
    dispatches: &mut Vec<Dispatch>,
) -> Result<wgpu::TextureView> {
    if !in_texture {
        return Ok(ctx.stand_in_texture(wgpu::TextureFormat::Rgba32Float));
    }
    let (view, copy) = texture::prepare_to_texture(ctx, operand)?;
    dispatches.push(copy);
    Ok(view)
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

impl MatmulParams {
    fn new([m, n, k]: [usize; 3], opts: &MatmulOptions) -> Self {
        let flags = opts.bias.map_or(0, |_| FLAG_BIAS)
            | if opts.relu { FLAG_RELU } else { 0 }
            | if opts.accumulate { FLAG_ACCUMULATE } else { 0 };
        MatmulParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            flags,
        }
    }
}

/// Workgroups covering the `[m, n]` output, refused past the per-dimension limit.
fn grid(cfg: &VariantConfig, variant: MatmulVariant, m: usize, n: usize) -> Result<[u32; 3]> {
    let groups = [
        groups_for(n, (cfg.tn * cfg.wg_x) as usize),
        groups_for(m, (cfg.tm * cfg.wg_y) as usize),
        1,
    ];
    if groups[0] > MAX_GROUPS_PER_DIM || groups[1] > MAX_GROUPS_PER_DIM {
        return Err(invalid_argument(
            OP,
            format!(
                "C of [{m}, {n}] needs a grid of {groups:?} workgroups with {variant}, over {MAX_GROUPS_PER_DIM} per dimension"
            ),
        ));
    }
    Ok(groups)
}

fn override_constants(
    cfg: &VariantConfig,
    variant: MatmulVariant,
    opts: &MatmulOptions,
) -> Vec<(&'static str, f64)> {
    let mut constants = vec![
        ("TRANS_A", flag(opts.trans_a)),
        ("TRANS_B", flag(opts.trans_b)),
        ("TM", f64::from(cfg.tm)),
        ("TN", f64::from(cfg.tn)),
        ("WG_X", f64::from(cfg.wg_x)),
    ];
    // The subgroup kernel's workgroup is one row wide and has no k slices.
    if variant.is_general() {
        constants.extend([("WG_Y", f64::from(cfg.wg_y)), ("BK", f64::from(cfg.bk))]);
    }
    constants
}

/// CPU reference.
pub mod cpu {
    /// Options of the reference, mirroring [`super::MatmulOptions`].
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Options<'a> {
        pub trans_a: bool,
        pub trans_b: bool,
        pub bias: Option<&'a [f32]>,
        pub relu: bool,
        pub accumulate: bool,
    }

    /// C[m, n] = relu?((accumulate ? C : 0) + op(A) op(B) + bias), summed in f64.
    pub fn matmul(
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        m: usize,
        n: usize,
        k: usize,
        opts: Options,
    ) {
        assert_eq!(a.len(), m * k, "A length");
        assert_eq!(b.len(), k * n, "B length");
        assert_eq!(c.len(), m * n, "C length");
        let a_at = |i: usize, p: usize| {
            if opts.trans_a {
                a[p * m + i]
            } else {
                a[i * k + p]
            }
        };
        let b_at = |p: usize, j: usize| {
            if opts.trans_b {
                b[j * k + p]
            } else {
                b[p * n + j]
            }
        };
        for i in 0..m {
            for j in 0..n {
                let mut sum: f64 = (0..k)
                    .map(|p| f64::from(a_at(i, p)) * f64::from(b_at(p, j)))
                    .sum();
                if opts.accumulate {
                    sum += f64::from(c[i * n + j]);
                }
                if let Some(bias) = opts.bias {
                    sum += f64::from(bias[j]);
                }
                if opts.relu {
                    sum = sum.max(0.0);
                }
                c[i * n + j] = sum as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests;
