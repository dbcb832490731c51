enable subgroups;
// conv2d_gemm.wgsl — 2-D convolution and its weight gradient as implicit GEMM, in the style of
// matmul_subgroup.wgsl (vec4 x mat4x4 register tiles, rows of the shared operand handed out by
// subgroupBroadcast, no workgroup memory, no barriers). The direct kernels of conv2d.wgsl are
// the reference and the fallback; this module needs the device feature `subgroups` with a
// minimum subgroup size of 8 (every subgroup has lanes 0..7). The module starts with
// `enable subgroups;` as the WGSL spec requires (Tint, browsers); naga 30 (wgpu 30) does not
// implement that directive yet, so dk-tensor blanks the line before handing the source to
// wgpu (`dk_tensor::wgsl_for_naga`), as for matmul_subgroup.wgsl.
//
// Computes (all tensors row-major f32, activations NCHW, zero padding already applied to the
// source image by pad_planes, so the GEMM kernels never test bounds):
//   conv_gemm_forward:      dst[n, r, p] = relu?(bias[r] + sum_k wmat[r, k] * src[n, col(p) + off[k]])
//       r < rows, p < plane_out = out_h * out_w, k < taps. With rows = Cout, src the padded x
//       and wmat the packed weights this is the forward convolution; with rows = Cin, src the
//       padded dy and wmat the flipped, transposed weights (pack_weights with FLIP) it is the
//       input gradient of a stride-1 convolution (a full-padded transposed convolution).
//   conv_window_forward:    the same product as conv_gemm_forward for stride 1 and KW <= 8,
//       reading each tap row (c, ky) of the source as runs of consecutive values shared by 8
//       neighbouring output positions; wmat packed with ROW_KW = KW (see below).
//   conv_window_weight_grad: the partial sums of conv_gemm_weight_grad for stride 1 and
//       KW <= 8 over runs of source rows, split by whole output rows (`chunk` rows per split),
//       written at k = t * KW + kx for tap row t = (c, ky).
//   conv_few_taps_weight_grad: the same partial sums as conv_window_weight_grad for layers of
//       at most 4 tap rows of at most 4 taps (one input channel, k <= 4), each split a run
//       of whole output rows over the batch, one invocation each (see its section).
//   conv_gemm_weight_grad:  partials[s, r, k] = sum over positions p of split s (one image n)
//       of dy[n, r, p] * src[n, col(p) + off[k]]; conv2d.wgsl's conv2d_weight_grad_reduce sums
//       the splits into dW.
//   Here col(p) = (p / out_w) * stride * src_w + (p % out_w) * stride is the top-left corner of
//   the window of output position p in a padded source plane, and off[k] (tap k = (c, ky, kx))
//   = c * src_h * src_w + ky * src_w + kx is the offset of tap k from that corner.
//   pad_planes:    padded[q, y, x] = raw[q, y - pad_h, x - pad_w] inside the raw plane, q < planes;
//                  the border is left as it is, zero in the fresh buffer the launcher creates.
//   pack_weights:  wpack[r, k] = w[r, k] for k < taps, 0 for taps <= k < taps4 (FLIP false);
//                  with FLIP, for w [Cout, Cin, KH, KW] and k = (co, ky, kx):
//                  wpack[ci, k] = w[co, ci, KH-1-ky, KW-1-kx] (rows = Cin).
//                  With ROW_KW > 0 the row is tap rows of ROW_KW taps, each padded with zeros
//                  to 4 or 8 (the window layout): wpack[r, t * KW4 + kx] = the value of tap
//                  t * ROW_KW + kx for kx < ROW_KW, 0 above; taps4 is then tap_rows * KW4.
//
// Bindings (group 0; each entry point uses only the ones listed for it):
//   @binding(0)  raw      : array<f32>, read        [planes, height, width]            pad_planes
//   @binding(1)  padded   : array<f32>, read_write  [planes, src_h, src_w]             pad_planes
//   @binding(2)  w        : array<f32>, read        [Cout, Cin, KH, KW]                pack_weights
//   @binding(3)  wpack    : array<f32>, read_write  [rows, taps4]                      pack_weights
//   @binding(4)  src      : array<f32>, read        [N, channels, src_h, src_w]        forward, weight_grad
//   @binding(5)  wmat     : array<vec4<f32>>, read  [rows, taps4]                      forward
//   @binding(6)  offsets  : array<u32>, read        [taps4] off[k] (0 for k >= taps)   forward, weight_grad
//                           (the conv_window_* kernels: [tap_rows] off of tap (c, ky, 0))
//   @binding(7)  bias     : array<f32>, read        [rows]; any f32 buffer without HAS_BIAS  forward
//   @binding(8)  dst      : array<f32>, read_write  [N, rows, out_h, out_w]            forward
//   @binding(9)  dy       : array<f32>, read        [N, rows, out_h, out_w]            weight_grad
//   @binding(10) partials : array<f32>, read_write  [splits, rows, taps]               weight_grad
//   @binding(11) corners  : array<u32>, read        [plane_out] col(p) (see above)     conv_gemm_weight_grad
//   @binding(12) wmat_block : uniform array<vec4<f32>, 4096> (64 KiB): wmat again, where
//                           it fits; with UNIFORM_WEIGHTS false any 64 KiB uniform buffer  forward
//   @binding(13) src_texture : texture_2d<f32>, r32float: src again, value i at texel
//                           (i % 4096, i / 4096), where SOURCE_TEXTURE; else any r32float
//                           texture                                                  forward, weight_grad
//   @binding(14) padded_texture : texture_storage_2d<r32float, write>: where pad_planes
//                           writes with SOURCE_TEXTURE (the layout of src_texture); else any
//                           r32float texture                                         pad_planes
//   @binding(15) params   : uniform GemmParams (20 u32, below)
//   @binding(16) dy_texture : texture_2d<f32>, rgba32float: dy again, as texture.wgsl's
//                           to_texture writes it (values 4t..4t+4 at texel (t % 4096,
//                           t / 4096)), where DY_TEXTURE; else any rgba32float texture
//                                                                                    the three weight_grad kernels
//
// Dispatch geometry:
//   pad_planes: one invocation per raw row (elements = planes * height), pack_weights: one
//       per output element; 64 per workgroup, linear workgroup index wid.x + wid.y * nwg.x
//       (a 2-D grid beyond 65535 workgroups).
//   conv_gemm_forward: workgroups of WG_X x 1; each invocation owns TM rows x 8 consecutive
//       output positions (flattened over the batch). Grid (ceil(N*plane_out / (8*WG_X)),
//       ceil(rows / TM), 1).
//   conv_window_forward: workgroups of WG_X x 1; each invocation owns TM rows x 8 * PB
//       consecutive positions of one output row. Grid (ceil(N * out_h * ceil(out_w / (8 * PB))
//       / WG_X), ceil(rows / TM), 1).
//   conv_window_weight_grad: each invocation owns TM rows x the taps of TG consecutive tap
//       rows for one split. Grid (ceil(tap_rows / (TG * WG_X)), ceil(rows / TM), splits).
//   conv_gemm_weight_grad: each invocation owns TM rows x 8 consecutive taps for one split of
//       `chunk` positions of one image. Grid (ceil(taps / (8*WG_X)), ceil(rows / TM), splits)
//       with splits = batch * chunks_per_image.
// Overrides: TM (8, 16 or 32, default 32); WG_X (a multiple of 8, default 64); HAS_BIAS, RELU
//   (forward kernels, default false: the accumulators start at the bias, the epilogue applies
//   the ReLU); FLIP (pack_weights, default false); ROW_KW
//   (pack_weights: 0 for the flat layout, else the kernel width of the window layout); KW
//   (the conv_window_* kernels: kernel width, 1..8); PB (conv_window_forward: blocks of 8
//   positions per invocation, 1, or 2 with TM <= 16, default 1); TG (conv_window_weight_grad:
//   tap rows per invocation, 1, or 2 with TM <= 16, default 1); FEW_TAP_ROWS
//   (conv_few_taps_weight_grad: tap rows, 1..4, default 3); UNIFORM_WEIGHTS (forward kernels:
//   read the packed weights from wmat_block rather than wmat, default false); SOURCE_TEXTURE
//   (pad_planes writes, and the GEMM kernels read, the padded source in the textures 14 and 13
//   rather than the buffers 1 and 4, default false); DY_TEXTURE (the three weight-gradient
//   kernels: read dy from texture 16 rather than buffer 9, default false; needs plane_out,
//   and for the window and few-taps kernels out_w, to be multiples of 4).
//
// Requires: taps4 = taps rounded up to a multiple of 4; chunk a multiple of 4. Edge rows and
// columns are clamped before loading and never stored, and every lane runs the whole loop, as
// subgroupBroadcast needs all lanes active. Why this shape is fast on lavapipe: see
// matmul_subgroup.wgsl; each loaded weight (forward) or dy value (weight gradient) feeds a
// whole subgroup, each gathered source value feeds TM multiply-adds.

override TM: u32 = 32u;
override WG_X: u32 = 64u;
override HAS_BIAS: bool = false;
override RELU: bool = false;
override FLIP: bool = false;
override ROW_KW: u32 = 0u;
override KW: u32 = 3u;
override PB: u32 = 1u;
override TG: u32 = 1u;

struct GemmParams {
    rows: u32,             // GEMM rows: Cout (forward, weight grad) or Cin (input grad)
    taps: u32,             // reduction length of the forward: channels * KH * KW
    taps4: u32,            // taps rounded up to 4: row length of wmat and length of offsets
    positions: u32,        // N * out_h * out_w (forward columns)
    plane_out: u32,        // out_h * out_w
    out_w: u32,
    stride: u32,
    src_w: u32,            // padded source width
    src_image: u32,        // channels * src_h * src_w
    chunk: u32,            // weight grad: positions per split (multiple of 4)
    chunks_per_image: u32, // weight grad: splits per image
    // pad_planes: raw plane size and padding; pack_weights (FLIP): w's Cin, KH, KW.
    height: u32,
    width: u32,
    pad_h: u32,
    pad_w: u32,
    elements: u32,         // pad_planes: raw rows copied; pack_weights: elements written
    // conv_window_forward only:
    tap_rows: u32,         // channels * KH: rows of taps, each KW taps long
    lines: u32,            // N * out_h: output rows over the batch
    out_h: u32,
    src_last: u32,         // index of the last element of src (loads past it are clamped)
}

@group(0) @binding(0) var<storage, read> raw: array<f32>;
@group(0) @binding(1) var<storage, read_write> padded: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> wpack: array<f32>;
@group(0) @binding(4) var<storage, read> src: array<f32>;
@group(0) @binding(5) var<storage, read> wmat: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> offsets: array<u32>;
@group(0) @binding(7) var<storage, read> bias: array<f32>;
@group(0) @binding(8) var<storage, read_write> dst: array<f32>;
@group(0) @binding(9) var<storage, read> dy: array<f32>;
@group(0) @binding(10) var<storage, read_write> partials: array<f32>;
@group(0) @binding(11) var<storage, read> corners: array<u32>;
@group(0) @binding(12) var<uniform> wmat_block: array<vec4<f32>, 4096>;
@group(0) @binding(13) var src_texture: texture_2d<f32>;
@group(0) @binding(14) var padded_texture: texture_storage_2d<r32float, write>;
@group(0) @binding(15) var<uniform> params: GemmParams;
@group(0) @binding(16) var dy_texture: texture_2d<f32>;

// Where the packed weights come from. On lavapipe every storage load is a loop over the
// lanes with a bounds check per lane, about 3.6 ns a float on 2 cores, while a load from a
// uniform block, even at a different index in each lane, is one vector gather, about 0.4 ns:
// the launcher sets this on CPU adapters where the weights fit 64 KiB. GPUs keep storage,
// where lanes reading different addresses of a uniform block can be served one at a time.
override UNIFORM_WEIGHTS: bool = false;

// Packed weights at vec4 index i.
fn packed_weight(i: u32) -> vec4<f32> {
    if UNIFORM_WEIGHTS {
        return wmat_block[min(i, 4095u)];
    }
    return wmat[i];
}

// Where the padded source lives. On lavapipe a scalar storage load costs about 3.7 ns and a
// texel load from an r32float texture 1.2-1.9 ns (in the scattered reads of a throwaway
// kernel); textures, unlike uniform blocks, hold a whole batch. The launcher sets this on CPU
// adapters; GPUs read storage.
override SOURCE_TEXTURE: bool = false;

// Texels per row of the source texture (a power of two), and its log2.
const TEXTURE_WIDTH: u32 = 4096u;
const TEXTURE_SHIFT: u32 = 12u;

// Texel of flat index i in the source texture.
fn texel_of(i: u32) -> vec2<u32> {
    return vec2<u32>(i & (TEXTURE_WIDTH - 1u), i >> TEXTURE_SHIFT);
}

// The padded source at flat index i.
fn source_at(i: u32) -> f32 {
    if SOURCE_TEXTURE {
        return textureLoad(src_texture, texel_of(i), 0).x;
    }
    return src[i];
}

// Where the weight gradients read dy. Every lane of a weight-gradient kernel loads the dy
// values of its rows, so each value is read once per lane of taps; an rgba32float texel load
// brings 4 of them for about a seventh of the cost of 4 storage loads on lavapipe. The
// launcher copies dy into the texture first on CPU adapters where the rows align.
override DY_TEXTURE: bool = false;

// dy[i .. i + 4] for i a multiple of 4: one texel, or four storage loads at the clamped
// indices `at` (at.x = i).
fn dy_quad(at: vec4<u32>) -> vec4<f32> {
    if DY_TEXTURE {
        return textureLoad(dy_texture, texel_of(at.x >> 2u), 0);
    }
    return vec4<f32>(dy[at.x], dy[at.y], dy[at.z], dy[at.w]);
}

const LINEAR_WG: u32 = 64u;

// One invocation per row of the raw planes, copied into the interior of its padded plane.
// The border is never written: the padded buffer is created zeroed and holds nothing else.
// By rows, one division per row replaces four per element; CPUs have no vector integer
// division, so lavapipe divides lane by lane, and that made this pass a quarter of a layer's.
@compute @workgroup_size(LINEAR_WG)
fn pad_planes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wid.x + wid.y * nwg.x) * LINEAR_WG + lid;
    if row >= params.elements {
        return;
    }
    let src_h = params.height + 2u * params.pad_h;
    let plane = row / params.height;
    let y = row % params.height;
    let source = row * params.width;
    let dest = (plane * src_h + y + params.pad_h) * params.src_w + params.pad_w;
    for (var x = 0u; x < params.width; x++) {
        let v = raw[source + x];
        if SOURCE_TEXTURE {
            textureStore(padded_texture, texel_of(dest + x), vec4<f32>(v));
        } else {
            padded[dest + x] = v;
        }
    }
}

@compute @workgroup_size(LINEAR_WG)
fn pack_weights(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * LINEAR_WG + lid;
    if i >= params.elements {
        return;
    }
    let r = i / params.taps4;
    var k = i % params.taps4;
    var real = k < params.taps;
    if ROW_KW > 0u {
        // Window layout: each row of KW taps padded to window_kw4() with zeros.
        let kw4 = window_kw4(ROW_KW);
        let kx = k % kw4;
        real = kx < ROW_KW;
        k = (k / kw4) * ROW_KW + kx;
    }
    var v = 0.0;
    if real {
        if FLIP {
            // r = ci, k = (co, ky, kx); height/width/pad_h carry Cin, KH, KW.
            let cin = params.height;
            let kh = params.width;
            let kw = params.pad_h;
            let co = k / (kh * kw);
            let ky = (k / kw) % kh;
            let kx = k % kw;
            v = w[((co * cin + r) * kh + (kh - 1u - ky)) * kw + (kw - 1u - kx)];
        } else {
            v = w[r * params.taps + k];
        }
    }
    wpack[i] = v;
}

// src at the four indices of `at`.
fn gather(at: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(source_at(at.x), source_at(at.y), source_at(at.z), source_at(at.w));
}

// B tile: column j holds src at `cols + steps[j]`, i.e. four columns of one reduction step.
fn gather_tile(cols: vec4<u32>, steps: vec4<u32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        gather(cols + steps.x),
        gather(cols + steps.y),
        gather(cols + steps.z),
        gather(cols + steps.w),
    );
}

// Tiles of rows row..row+4 and row+4..row+8 gathered from lanes 0..7: column i is the share of
// lane i (resp. 4 + i), that is A[row + i, four reduction steps].
fn a_tile_upper(share: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        subgroupBroadcast(share, 0u),
        subgroupBroadcast(share, 1u),
        subgroupBroadcast(share, 2u),
        subgroupBroadcast(share, 3u),
    );
}

fn a_tile_lower(share: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        subgroupBroadcast(share, 4u),
        subgroupBroadcast(share, 5u),
        subgroupBroadcast(share, 6u),
        subgroupBroadcast(share, 7u),
    );
}

// Accumulators of 8 rows x 8 columns: column i of a tile is C[row + i, col .. col + 4].
struct Rows8 {
    upper0: mat4x4<f32>,
    lower0: mat4x4<f32>,
    upper1: mat4x4<f32>,
    lower1: mat4x4<f32>,
}

fn accumulate_rows8(acc: ptr<function, Rows8>, share: vec4<f32>, b0: mat4x4<f32>, b1: mat4x4<f32>) {
    let upper = a_tile_upper(share);
    let lower = a_tile_lower(share);
    (*acc).upper0 += b0 * upper;
    (*acc).lower0 += b0 * lower;
    (*acc).upper1 += b1 * upper;
    (*acc).lower1 += b1 * lower;
}

// Column i of t, by selects rather than t[i]: a dynamic index puts the tile in memory.
fn column(t: mat4x4<f32>, i: u32) -> vec4<f32> {
    return select(select(t[0], t[1], i == 1u), select(t[2], t[3], i == 3u), i >= 2u);
}

// Entry e < 16 of one group's 8 x 8 outputs as rows of 4: row e / 2, columns 4 (e % 2) ..
// + 4. Each epilogue below loops over these once per group of 8 rows: the whole block
// gathered into one array first, or tiles indexed by the loop counter, made the pipelines
// several times slower to compile on lavapipe (see matmul_subgroup.wgsl).
fn rows8_entry(acc: Rows8, e: u32) -> vec4<f32> {
    let i = (e / 2u) & 3u;
    let high = e % 2u == 1u;
    let upper = select(column(acc.upper0, i), column(acc.upper1, i), high);
    let lower = select(column(acc.lower0, i), column(acc.lower1, i), high);
    return select(upper, lower, e >= 8u);
}

// This lane's share of wmat rows row..row+8 at reduction steps k0..k0+4.
fn weight_share(row: u32, k0: u32, lane: u32) -> vec4<f32> {
    return packed_weight((min(row + lane, params.rows - 1u) * params.taps4 + k0) >> 2u);
}

// Window corners of output positions col..col+4 (clamped into the batch) in the source.
fn window_corners(col: u32) -> vec4<u32> {
    let c = min(vec4<u32>(col, col + 1u, col + 2u, col + 3u), vec4<u32>(params.positions - 1u));
    let n = c / params.plane_out;
    let p = c % params.plane_out;
    let s = params.stride;
    return n * params.src_image + (p / params.out_w) * (s * params.src_w) + (p % params.out_w) * s;
}

// Index in dst of row 0 at output positions col..col+4 (clamped into the batch).
fn output_bases(col: u32) -> vec4<u32> {
    let c = min(vec4<u32>(col, col + 1u, col + 2u, col + 3u), vec4<u32>(params.positions - 1u));
    let plane = params.plane_out;
    return (c / plane) * (params.rows * plane) + c % plane;
}

// Accumulators of the 8 rows from `row` starting at their bias (0 without HAS_BIAS): 8 loads
// per group instead of one per output in the epilogue, where the loads cost more than the
// adds on CPU lanes.
fn bias_rows8(row: u32) -> Rows8 {
    var acc: Rows8;
    if HAS_BIAS {
        let last = params.rows - 1u;
        let upper = mat4x4<f32>(
            vec4<f32>(bias[min(row, last)]),
            vec4<f32>(bias[min(row + 1u, last)]),
            vec4<f32>(bias[min(row + 2u, last)]),
            vec4<f32>(bias[min(row + 3u, last)]),
        );
        let lower = mat4x4<f32>(
            vec4<f32>(bias[min(row + 4u, last)]),
            vec4<f32>(bias[min(row + 5u, last)]),
            vec4<f32>(bias[min(row + 6u, last)]),
            vec4<f32>(bias[min(row + 7u, last)]),
        );
        acc = Rows8(upper, lower, upper, lower);
    }
    return acc;
}

// Apply ReLU to one output element (its bias is already in) and store it at `index` (row
// `row`, position `col`); skips elements outside the output.
fn store_forward(row: u32, col: u32, index: u32, value: f32) {
    if row >= params.rows || col >= params.positions {
        return;
    }
    var v = value;
    if RELU {
        v = max(v, 0.0);
    }
    dst[index] = v;
}

// ReLU and store of the 8 rows from `row` at the lane's positions col0 .. col0 + 8,
// whose indices in dst at row 0 are bases0 and bases1.
fn store_forward_rows8(row: u32, col0: u32, bases0: vec4<u32>, bases1: vec4<u32>, acc: Rows8) {
    for (var e = 0u; e < 16u; e++) {
        let v = rows8_entry(acc, e);
        let r = row + e / 2u;
        let col = col0 + (e % 2u) * 4u;
        let at = select(bases0, bases1, e % 2u == 1u) + r * params.plane_out;
        store_forward(r, col, at.x, v.x);
        store_forward(r, col + 1u, at.y, v.y);
        store_forward(r, col + 2u, at.z, v.z);
        store_forward(r, col + 3u, at.w, v.w);
    }
}

@compute @workgroup_size(WG_X)
fn conv_gemm_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = wid.y * TM;
    let col0 = (wid.x * WG_X + lid.x) * 8u;
    let corners0 = window_corners(col0);
    let corners1 = window_corners(col0 + 4u);
    var rows0 = bias_rows8(row0);
    var rows1 = bias_rows8(row0 + 8u);
    var rows2 = bias_rows8(row0 + 16u);
    var rows3 = bias_rows8(row0 + 24u);
    for (var k0 = 0u; k0 < params.taps4; k0 += 4u) {
        let steps = vec4<u32>(offsets[k0], offsets[k0 + 1u], offsets[k0 + 2u], offsets[k0 + 3u]);
        let b0 = gather_tile(corners0, steps);
        let b1 = gather_tile(corners1, steps);
        accumulate_rows8(&rows0, weight_share(row0, k0, lane), b0, b1);
        if TM > 8u {
            accumulate_rows8(&rows1, weight_share(row0 + 8u, k0, lane), b0, b1);
        }
        if TM > 16u {
            accumulate_rows8(&rows2, weight_share(row0 + 16u, k0, lane), b0, b1);
            accumulate_rows8(&rows3, weight_share(row0 + 24u, k0, lane), b0, b1);
        }
    }
    // Output indices computed once per column, not per element (integer division is slow
    // where it is emulated, as on CPU SIMD lanes).
    let bases0 = output_bases(col0);
    let bases1 = output_bases(col0 + 4u);
    store_forward_rows8(row0, col0, bases0, bases1, rows0);
    if TM > 8u {
        store_forward_rows8(row0 + 8u, col0, bases0, bases1, rows1);
    }
    if TM > 16u {
        store_forward_rows8(row0 + 16u, col0, bases0, bases1, rows2);
        store_forward_rows8(row0 + 24u, col0, bases0, bases1, rows3);
    }
}

// This lane's share of dy rows row..row+8 at positions `p` of image n, 0 where not `live`.
fn grad_share(n: u32, row: u32, p: vec4<u32>, live: vec4<bool>, lane: u32) -> vec4<f32> {
    let base = (n * params.rows + min(row + lane, params.rows - 1u)) * params.plane_out;
    return select(vec4<f32>(0.0), dy_quad(base + p), live);
}

// Offsets of taps k..k+4 (clamped to the last tap).
fn tap_offsets(k: u32) -> vec4<u32> {
    let t = min(vec4<u32>(k, k + 1u, k + 2u, k + 3u), vec4<u32>(params.taps - 1u));
    return vec4<u32>(offsets[t.x], offsets[t.y], offsets[t.z], offsets[t.w]);
}

fn store_partial(split: u32, row: u32, col: u32, value: f32) {
    if row < params.rows && col < params.taps {
        partials[(split * params.rows + row) * params.taps + col] = value;
    }
}

// The 8 rows from `row` at taps col0 .. col0 + 8 of split `split`.
fn store_partials_rows8(split: u32, row: u32, col0: u32, acc: Rows8) {
    for (var e = 0u; e < 16u; e++) {
        let v = rows8_entry(acc, e);
        let r = row + e / 2u;
        let col = col0 + (e % 2u) * 4u;
        store_partial(split, r, col, v.x);
        store_partial(split, r, col + 1u, v.y);
        store_partial(split, r, col + 2u, v.z);
        store_partial(split, r, col + 3u, v.w);
    }
}

@compute @workgroup_size(WG_X)
fn conv_gemm_weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let split = wid.z;
    let n = split / params.chunks_per_image;
    let begin = (split % params.chunks_per_image) * params.chunk;
    let end = min(begin + params.chunk, params.plane_out);
    let row0 = wid.y * TM;
    let col0 = (wid.x * WG_X + lid.x) * 8u;
    let taps0 = tap_offsets(col0) + n * params.src_image;
    let taps1 = tap_offsets(col0 + 4u) + n * params.src_image;
    var rows0: Rows8;
    var rows1: Rows8;
    var rows2: Rows8;
    var rows3: Rows8;
    for (var p0 = begin; p0 < end; p0 += 4u) {
        let q = vec4<u32>(p0, p0 + 1u, p0 + 2u, p0 + 3u);
        let live = q < vec4<u32>(end);
        let p = min(q, vec4<u32>(end - 1u));
        // Corners from a table: a vector division per step would cost more than the loads.
        let at = vec4<u32>(corners[p.x], corners[p.y], corners[p.z], corners[p.w]);
        let b0 = gather_tile(taps0, at);
        let b1 = gather_tile(taps1, at);
        accumulate_rows8(&rows0, grad_share(n, row0, p, live, lane), b0, b1);
        if TM > 8u {
            accumulate_rows8(&rows1, grad_share(n, row0 + 8u, p, live, lane), b0, b1);
        }
        if TM > 16u {
            accumulate_rows8(&rows2, grad_share(n, row0 + 16u, p, live, lane), b0, b1);
            accumulate_rows8(&rows3, grad_share(n, row0 + 24u, p, live, lane), b0, b1);
        }
    }
    store_partials_rows8(split, row0, col0, rows0);
    if TM > 8u {
        store_partials_rows8(split, row0 + 8u, col0, rows1);
    }
    if TM > 16u {
        store_partials_rows8(split, row0 + 16u, col0, rows2);
        store_partials_rows8(split, row0 + 24u, col0, rows3);
    }
}

// ---- conv_window_forward: stride-1 convolution over sliding windows of source rows ----
//
// Each invocation owns TM rows x 8 consecutive output positions of one output row (n, oy,
// ox0 .. ox0 + 8). For tap row t = (c, ky) the 8 windows overlap: positions ox0 + j at tap kx
// read src at corner + off[t] + j + kx, so 12 consecutive values (16 for KW > 5) serve all
// KW taps of all 8 positions, where the plain GEMM gathers 8 x KW values. The weights are
// packed (pack_weights with ROW_KW = KW) as rows of tap rows, each KW taps padded with zeros
// to window_kw4(KW), so a lane's share of 4 taps is one vec4.

// Taps per packed tap row: KW rounded up to 4 (KW <= 8).
fn window_kw4(kw: u32) -> u32 {
    return select(4u, 8u, kw > 4u);
}

// src[i .. i + 4], every index clamped to the last element of src.
fn load_run(i: u32) -> vec4<f32> {
    let at = min(vec4<u32>(i, i + 1u, i + 2u, i + 3u), vec4<u32>(params.src_last));
    return gather(at);
}

// Four values starting `s` places into the 8 values a, b (s constant after inlining).
fn shifted1(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(a.yzw, b.x);
}

fn shifted2(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(a.zw, b.xy);
}

fn shifted3(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(a.w, b.xyz);
}

// B tile of four taps kx..kx+4 for four positions whose windows start at run a: column j is
// the positions' values at tap kx + j, i.e. the run shifted by j.
fn window_tile(a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(a, shifted1(a, b), shifted2(a, b), shifted3(a, b));
}

// One reduction step: rows row..row+8 (a: this lane's weight, handed out by lanes 0..7) times
// positions 0..4 (c0) and 4..8 (c1).
fn accumulate_step(acc: ptr<function, Rows8>, a: f32, c0: vec4<f32>, c1: vec4<f32>) {
    let a0 = subgroupBroadcast(a, 0u);
    let a1 = subgroupBroadcast(a, 1u);
    let a2 = subgroupBroadcast(a, 2u);
    let a3 = subgroupBroadcast(a, 3u);
    let a4 = subgroupBroadcast(a, 4u);
    let a5 = subgroupBroadcast(a, 5u);
    let a6 = subgroupBroadcast(a, 6u);
    let a7 = subgroupBroadcast(a, 7u);
    (*acc).upper0 += mat4x4<f32>(c0 * a0, c0 * a1, c0 * a2, c0 * a3);
    (*acc).lower0 += mat4x4<f32>(c0 * a4, c0 * a5, c0 * a6, c0 * a7);
    (*acc).upper1 += mat4x4<f32>(c1 * a0, c1 * a1, c1 * a2, c1 * a3);
    (*acc).lower1 += mat4x4<f32>(c1 * a4, c1 * a5, c1 * a6, c1 * a7);
}

// Taps 4 .. KW of one tap row for 8 rows: `share` holds this lane's weights at taps 4..8,
// r1..r3 the source runs at 4, 8 and 12 places from the windows' start.
fn accumulate_high_taps(
    acc: ptr<function, Rows8>,
    share: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
) {
    if KW >= 7u {
        accumulate_rows8(acc, share, window_tile(r1, r2), window_tile(r2, r3));
        return;
    }
    accumulate_step(acc, share.x, r1, r2);
    if KW == 6u {
        accumulate_step(acc, share.y, shifted1(r1, r2), shifted1(r2, r3));
    }
}

// This lane's share of packed weight rows row..row+8 at taps 4q..4q+4 of tap row t.
fn window_share(row: u32, t: u32, q: u32, lane: u32) -> vec4<f32> {
    let per_row = window_kw4(KW) / 4u;
    return packed_weight((min(row + lane, params.rows - 1u) * params.tap_rows + t) * per_row + q);
}

// All taps of tap row t for one block of 8 rows.
fn accumulate_tap_row(
    acc: ptr<function, Rows8>,
    row: u32,
    t: u32,
    lane: u32,
    runs: array<vec4<f32>, 4>,
) {
    accumulate_rows8(
        acc,
        window_share(row, t, 0u, lane),
        window_tile(runs[0], runs[1]),
        window_tile(runs[1], runs[2]),
    );
    if KW > 4u {
        accumulate_high_taps(acc, window_share(row, t, 1u, lane), runs[1], runs[2], runs[3]);
    }
}

// The first `count` (2..4, constant after inlining) runs of 4 source values from `base`;
// the others are left zero.
fn source_runs(base: u32, count: u32) -> array<vec4<f32>, 4> {
    var runs: array<vec4<f32>, 4>;
    runs[0] = load_run(base);
    runs[1] = load_run(base + 4u);
    if count > 2u {
        runs[2] = load_run(base + 8u);
    }
    if count > 3u {
        runs[3] = load_run(base + 12u);
    }
    return runs;
}

// The runs that the windows of 8 positions starting at `base` read (runs[3] only where
// KW > 5 or a second block follows, which starts with it).
fn block_runs(base: u32) -> array<vec4<f32>, 4> {
    return source_runs(base, select(3u, 4u, KW > 5u || PB == 2u));
}

// The runs of the next 8 positions (starting at `base`): two shared with `runs`, the block
// before.
fn next_block_runs(runs: array<vec4<f32>, 4>, base: u32) -> array<vec4<f32>, 4> {
    var next = array<vec4<f32>, 4>(runs[2], runs[3], load_run(base + 8u), vec4<f32>());
    if KW > 5u {
        next[3] = load_run(base + 12u);
    }
    return next;
}

// Epilogue and store of the 8 rows from `row0` at positions ox0 .. ox0 + 8 of output row
// `line`.
fn store_window_rows8(row0: u32, line: u32, ox0: u32, acc: Rows8) {
    let n = line / params.out_h;
    let at0 = n * params.rows * params.plane_out + (line % params.out_h) * params.out_w + ox0;
    for (var e = 0u; e < 16u; e++) {
        let v = rows8_entry(acc, e);
        let row = row0 + e / 2u;
        let ox = ox0 + (e % 2u) * 4u;
        let at = at0 + row * params.plane_out + (e % 2u) * 4u;
        for (var j = 0u; j < 4u; j++) {
            if line < params.lines && ox + j < params.out_w {
                store_forward(row, 0u, at + j, v[j]);
            }
        }
    }
}

@compute @workgroup_size(WG_X)
fn conv_window_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = wid.y * TM;
    let span = 8u * PB;
    let xblocks = (params.out_w + span - 1u) / span;
    let slot = wid.x * WG_X + lid.x;
    let line = slot / xblocks;
    let ox0 = (slot % xblocks) * span;
    // Lanes past the batch compute a clamped line (subgroupBroadcast needs every lane).
    let safe = min(line, params.lines - 1u);
    let corner = (safe / params.out_h) * params.src_image + (safe % params.out_h) * params.src_w + ox0;
    // Accumulators 2 and 3 hold rows 16..32 (PB 1) or the second 8 positions of rows 0..16.
    let far = select(16u, 0u, PB == 2u);
    var rows0 = bias_rows8(row0);
    var rows1 = bias_rows8(row0 + 8u);
    var rows2 = bias_rows8(row0 + far);
    var rows3 = bias_rows8(row0 + far + 8u);
    for (var t = 0u; t < params.tap_rows; t++) {
        let base = corner + offsets[t];
        let near_runs = block_runs(base);
        accumulate_tap_row(&rows0, row0, t, lane, near_runs);
        if TM > 8u {
            accumulate_tap_row(&rows1, row0 + 8u, t, lane, near_runs);
        }
        if TM > 16u || PB == 2u {
            var far_runs = near_runs;
            if PB == 2u {
                far_runs = next_block_runs(near_runs, base + 8u);
            }
            accumulate_tap_row(&rows2, row0 + far, t, lane, far_runs);
            if TM > 8u {
                accumulate_tap_row(&rows3, row0 + far + 8u, t, lane, far_runs);
            }
        }
    }
    store_window_rows8(row0, line, ox0, rows0);
    if TM > 8u {
        store_window_rows8(row0 + 8u, line, ox0, rows1);
    }
    if TM > 16u || PB == 2u {
        let far_x = ox0 + 8u * (PB - 1u);
        store_window_rows8(row0 + far, line, far_x, rows2);
        if TM > 8u {
            store_window_rows8(row0 + far + 8u, line, far_x, rows3);
        }
    }
}

// ---- conv_window_weight_grad: the weight gradient over runs of source rows (stride 1) ----
//
// partials[s, r, t * KW + kx] = sum over the output rows oy of split s (image n, `chunk`
// output rows from (s % chunks_per_image) * chunk) and all ox of
// dy[n, r, oy, ox] * src[n, corner(oy, ox) + off[t] + kx]. Each invocation owns TM rows x the
// taps kx < 8 of TG tap rows t; for 4 neighbouring positions the 4 x KW source values of one
// tap row are one run of 8 (12 for KW > 4) consecutive values. With TG = 2 each dy value
// handed out feeds both tap rows.

// Tap 4 alone (KW = 5) of 8 rows: each row's dy at 4 positions (the columns of `upper`,
// `lower`) dotted with the source values there at tap 4.
fn accumulate_tap4(acc: ptr<function, Rows8>, upper: mat4x4<f32>, lower: mat4x4<f32>, at4: vec4<f32>) {
    (*acc).upper1[0].x += dot(at4, upper[0]);
    (*acc).upper1[1].x += dot(at4, upper[1]);
    (*acc).upper1[2].x += dot(at4, upper[2]);
    (*acc).upper1[3].x += dot(at4, upper[3]);
    (*acc).lower1[0].x += dot(at4, lower[0]);
    (*acc).lower1[1].x += dot(at4, lower[1]);
    (*acc).lower1[2].x += dot(at4, lower[2]);
    (*acc).lower1[3].x += dot(at4, lower[3]);
}

// Taps 0..3 (KW = 3) of 8 rows, where a whole tile would also compute tap 3.
fn accumulate_taps3(acc: ptr<function, Rows8>, upper: mat4x4<f32>, lower: mat4x4<f32>, b0: mat4x4<f32>) {
    let taps = mat4x3<f32>(b0[0].xyz, b0[1].xyz, b0[2].xyz, b0[3].xyz);
    let u = taps * upper;
    let l = taps * lower;
    (*acc).upper0[0] += vec4<f32>(u[0], 0.0);
    (*acc).upper0[1] += vec4<f32>(u[1], 0.0);
    (*acc).upper0[2] += vec4<f32>(u[2], 0.0);
    (*acc).upper0[3] += vec4<f32>(u[3], 0.0);
    (*acc).lower0[0] += vec4<f32>(l[0], 0.0);
    (*acc).lower0[1] += vec4<f32>(l[1], 0.0);
    (*acc).lower0[2] += vec4<f32>(l[2], 0.0);
    (*acc).lower0[3] += vec4<f32>(l[3], 0.0);
}

// One step of 4 positions for 8 rows (`dy_rows`: their dy at the 4 positions). Taps
// past KW are never stored, and the compiler does not drop their multiply-adds: the 3- and
// 5-wide kernels compute only their own (5-11% and 15-21% faster, BENCHMARKS.md).
fn accumulate_grad_runs(acc: ptr<function, Rows8>, dy_rows: DyRows8, runs: array<vec4<f32>, 4>) {
    let b0 = window_tile(runs[0], runs[1]);
    let upper = dy_rows.upper;
    let lower = dy_rows.lower;
    if KW == 3u {
        accumulate_taps3(acc, upper, lower, b0);
        return;
    }
    (*acc).upper0 += b0 * upper;
    (*acc).lower0 += b0 * lower;
    if KW == 5u {
        accumulate_tap4(acc, upper, lower, runs[1]);
    } else if KW > 4u {
        let b1 = window_tile(runs[1], runs[2]);
        (*acc).upper1 += b1 * upper;
        (*acc).lower1 += b1 * lower;
    }
}

// The source runs of one tap row that 4 positions from `base` read: 8 values, 12 for
// KW > 5 (tap 4 of KW = 5 reaches only the 8th).
fn grad_runs(base: u32) -> array<vec4<f32>, 4> {
    return source_runs(base, select(2u, 3u, KW > 5u));
}

// dy of 8 rows at 4 positions, handed out by lanes 0..7: column i is row i's 4 values.
struct DyRows8 {
    upper: mat4x4<f32>,
    lower: mat4x4<f32>,
}

// dy rows row..row+8 at positions ox0..ox0+4 of the output row starting at dy index
// `line_base` (row 0), every lane loading its share.
fn dy_rows8(line_base: u32, row: u32, ox0: u32, lane: u32) -> DyRows8 {
    let share = window_grad_share(line_base, row, ox0, lane);
    return DyRows8(a_tile_upper(share), a_tile_lower(share));
}

// This lane's share of dy rows row..row+8 at positions ox0..ox0+4 of the output row starting
// at dy index `line_base` (row 0); 0 past the row's end.
fn window_grad_share(line_base: u32, row: u32, ox0: u32, lane: u32) -> vec4<f32> {
    let base = line_base + min(row + lane, params.rows - 1u) * params.plane_out;
    let ox = vec4<u32>(ox0, ox0 + 1u, ox0 + 2u, ox0 + 3u);
    let at = min(ox, vec4<u32>(params.out_w - 1u)) + base;
    return select(vec4<f32>(0.0), dy_quad(at), ox < vec4<u32>(params.out_w));
}

// The 8 rows from `row0` at the taps of tap row t of split `split`.
fn store_window_partials_rows8(split: u32, row0: u32, t: u32, acc: Rows8) {
    for (var e = 0u; e < 16u; e++) {
        let v = rows8_entry(acc, e);
        let row = row0 + e / 2u;
        for (var j = 0u; j < 4u; j++) {
            let kx = (e % 2u) * 4u + j;
            if kx < KW && row < params.rows && t < params.tap_rows {
                partials[(split * params.rows + row) * params.taps + t * KW + kx] = v[j];
            }
        }
    }
}

@compute @workgroup_size(WG_X)
fn conv_window_weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let split = wid.z;
    let n = split / params.chunks_per_image;
    let first = (split % params.chunks_per_image) * params.chunk;
    let end = min(first + params.chunk, params.out_h);
    let row0 = wid.y * TM;
    let t = (wid.x * WG_X + lid.x) * TG;
    // Lanes past the last tap row compute a clamped one (subgroupBroadcast needs every lane).
    let last = params.tap_rows - 1u;
    let tap_base = n * params.src_image + offsets[min(t, last)];
    let next_base = n * params.src_image + offsets[min(t + 1u, last)];
    // Accumulators 2 and 3 hold rows 16..32 (TG 1) or tap row t + 1 of rows 0..16 (TG 2).
    var rows0: Rows8;
    var rows1: Rows8;
    var rows2: Rows8;
    var rows3: Rows8;
    for (var oy = first; oy < end; oy++) {
        let line_base = n * params.rows * params.plane_out + oy * params.out_w;
        for (var ox0 = 0u; ox0 < params.out_w; ox0 += 4u) {
            let runs = grad_runs(tap_base + oy * params.src_w + ox0);
            let near = dy_rows8(line_base, row0, ox0, lane);
            accumulate_grad_runs(&rows0, near, runs);
            var far: DyRows8;
            if TM > 8u {
                far = dy_rows8(line_base, row0 + 8u, ox0, lane);
                accumulate_grad_runs(&rows1, far, runs);
            }
            if TG == 2u {
                let next = grad_runs(next_base + oy * params.src_w + ox0);
                accumulate_grad_runs(&rows2, near, next);
                if TM > 8u {
                    accumulate_grad_runs(&rows3, far, next);
                }
            } else if TM > 16u {
                accumulate_grad_runs(&rows2, dy_rows8(line_base, row0 + 16u, ox0, lane), runs);
                accumulate_grad_runs(&rows3, dy_rows8(line_base, row0 + 24u, ox0, lane), runs);
            }
        }
    }
    store_window_partials_rows8(split, row0, t, rows0);
    if TM > 8u {
        store_window_partials_rows8(split, row0 + 8u, t, rows1);
    }
    if TG == 2u {
        store_window_partials_rows8(split, row0, t + 1u, rows2);
        if TM > 8u {
            store_window_partials_rows8(split, row0 + 8u, t + 1u, rows3);
        }
    } else if TM > 16u {
        store_window_partials_rows8(split, row0 + 16u, t, rows2);
        store_window_partials_rows8(split, row0 + 24u, t, rows3);
    }
}

// ---- conv_few_taps_weight_grad: the weight gradient of layers with at most 4 tap rows ----
//
// partials[s, r, t * KW + kx] = sum over the positions of split s of
// dy[n, r, oy, ox] * src[n, corner(oy, ox) + off[t] + kx], for the workgroup's block of 16
// rows r and every tap row t < FEW_TAP_ROWS (<= 4), kx < KW (<= 4). A layer with
// one input channel has 3 or 5 tap rows: conv_window_weight_grad gives each lane a tap row,
// so 5 of 8 lanes idle and load the same source run again. Here each invocation owns a split
// of its own: `chunk` consecutive output rows of the batch, walked in blocks of 4 positions;
// it reads each dy value once and, per tap row and block, the next 4 source values (the 4
// before are the previous block's), and keeps every (row, tap) sum. No subgroup operations:
// the splits are summed by conv2d_weight_grad_reduce. Here `chunk` counts output rows per
// split: splits = ceil(lines / chunk). Grid (ceil(splits / WG_X), ceil(rows / 16), 1).

override FEW_TAP_ROWS: u32 = 3u;

// 16 rows x 4 (positions or taps) as four 4 x 4 tiles; column i of tile g is row 4 g + i.
struct Rows16 {
    g0: mat4x4<f32>,
    g1: mat4x4<f32>,
    g2: mat4x4<f32>,
    g3: mat4x4<f32>,
}

// dy of rows row .. row + 4 (the columns) at the 4 positions from ox0 of the output row
// starting at dy index `line_base` (row 0); 0 past the row's end.
fn few_taps_dy4(line_base: u32, row: u32, ox0: u32) -> mat4x4<f32> {
    return mat4x4<f32>(
        window_grad_share(line_base, row, ox0, 0u),
        window_grad_share(line_base, row, ox0, 1u),
        window_grad_share(line_base, row, ox0, 2u),
        window_grad_share(line_base, row, ox0, 3u),
    );
}

fn few_taps_dy(line_base: u32, row0: u32, ox0: u32) -> Rows16 {
    return Rows16(
        few_taps_dy4(line_base, row0, ox0),
        few_taps_dy4(line_base, row0 + 4u, ox0),
        few_taps_dy4(line_base, row0 + 8u, ox0),
        few_taps_dy4(line_base, row0 + 12u, ox0),
    );
}

// Adds tap row t's sums of the block at ox0 .. ox0 + 4 of an output row whose tap row t
// starts at `line_base` in the source: column i of tile g gets, at component kx, the sum over
// the 4 positions of dy (row 4 g + i) times the source at tap kx. `run` holds the source at
// ox0 .. ox0 + 4 and moves on by 4 (neighbouring blocks share it: one load of 4 a block).
fn few_taps_accumulate(acc: ptr<function, Rows16>, run: ptr<function, vec4<f32>>, line_base: u32, ox0: u32, d: Rows16) {
    let next = load_run(line_base + ox0 + 4u);
    let taps = transpose(window_tile(*run, next));
    *run = next;
    (*acc).g0 += taps * d.g0;
    (*acc).g1 += taps * d.g1;
    (*acc).g2 += taps * d.g2;
    (*acc).g3 += taps * d.g3;
}

// Writes the sums of tap row t for rows row .. row + 4 (the columns of `tile`).
fn few_taps_store4(split: u32, row: u32, t: u32, tile: mat4x4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        let sums = column(tile, i);
        for (var kx = 0u; kx < KW; kx++) {
            if row + i < params.rows {
                partials[(split * params.rows + row + i) * params.taps + t * KW + kx] = sums[kx];
            }
        }
    }
}

// Writes the sums of tap row t for rows row0 .. row0 + 16 of split `split`.
fn few_taps_store(split: u32, row0: u32, t: u32, acc: Rows16) {
    few_taps_store4(split, row0, t, acc.g0);
    few_taps_store4(split, row0 + 4u, t, acc.g1);
    few_taps_store4(split, row0 + 8u, t, acc.g2);
    few_taps_store4(split, row0 + 12u, t, acc.g3);
}

@compute @workgroup_size(WG_X)
fn conv_few_taps_weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let split = wid.x * WG_X + lid.x;
    let row0 = wid.y * 16u;
    if split * params.chunk >= params.lines {
        return;
    }
    var acc0: Rows16;
    var acc1: Rows16;
    var acc2: Rows16;
    var acc3: Rows16;
    let first = split * params.chunk;
    for (var line = first; line < min(first + params.chunk, params.lines); line++) {
        let n = line / params.out_h;
        let oy = line % params.out_h;
        let corner = n * params.src_image + oy * params.src_w;
        let at = n * params.rows * params.plane_out + oy * params.out_w;
        let base = vec4<u32>(offsets[0u], offsets[min(1u, FEW_TAP_ROWS - 1u)],
            offsets[min(2u, FEW_TAP_ROWS - 1u)], offsets[FEW_TAP_ROWS - 1u]) + corner;
        var run0 = load_run(base.x);
        var run1 = load_run(base.y);
        var run2 = load_run(base.z);
        var run3 = load_run(base.w);
        for (var ox0 = 0u; ox0 < params.out_w; ox0 += 4u) {
            let d = few_taps_dy(at, row0, ox0);
            few_taps_accumulate(&acc0, &run0, base.x, ox0, d);
            if FEW_TAP_ROWS > 1u {
                few_taps_accumulate(&acc1, &run1, base.y, ox0, d);
            }
            if FEW_TAP_ROWS > 2u {
                few_taps_accumulate(&acc2, &run2, base.z, ox0, d);
            }
            if FEW_TAP_ROWS > 3u {
                few_taps_accumulate(&acc3, &run3, base.w, ox0, d);
            }
        }
    }
    few_taps_store(split, row0, 0u, acc0);
    if FEW_TAP_ROWS > 1u {
        few_taps_store(split, row0, 1u, acc1);
    }
    if FEW_TAP_ROWS > 2u {
        few_taps_store(split, row0, 2u, acc2);
    }
    if FEW_TAP_ROWS > 3u {
        few_taps_store(split, row0, 3u, acc3);
    }
}
