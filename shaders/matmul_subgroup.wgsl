enable subgroups;
// matmul_subgroup.wgsl — the vec4 + subgroup fast path of matmul.wgsl (same product, same
// epilogue), for shapes whose contiguous dimensions are multiples of 4 on adapters with
// subgroups. Kept in its own file because a module that uses subgroup operations cannot be
// created on a device without them; matmul.wgsl stays usable everywhere.
//
// Computes:   C = relu?( (ACCUMULATE ? C : 0) + op(A) op(B) + bias )
//             op(A) is [m, k]: A is stored [m, k], or [k, m] when TRANS_A.
//             op(B) is [k, n]: B is stored [k, n], or [n, k] when TRANS_B.
//             bias is [n], added to every row. All matrices row-major, f32 accumulation.
// Requires:   k % 4 == 0; m % 4 == 0 when TRANS_A; n % 4 == 0 unless TRANS_B (so every vec4
//             load below is aligned and inside its row). The device feature `subgroups`
//             with a minimum subgroup size of 8 (every subgroup has lanes 0..7), and the
//             `enable subgroups;` directive above, as the WGSL spec (and Tint) require.
//             wgpu 30's naga does not take that directive yet: dk-tensor blanks the line
//             before compiling (wgsl_for_naga); other wgpu 30 projects must do the same.
// Bindings (group 0), as in matmul.wgsl except that A and B are read as vec4:
//   @binding(0) a      : array<vec4<f32>>, read        A as stored (see above), 4 floats each;
//                        any buffer of >= 16 bytes with TEXTURE_A
//   @binding(1) b      : array<vec4<f32>>, read        B as stored (see above), 4 floats each;
//                        any buffer of >= 16 bytes with TEXTURE_B
//   @binding(2) c      : array<f32>, read_write        [m, n]
//   @binding(3) bias   : array<f32>, read              [n]; any buffer of >= 4 bytes when unused
//   @binding(4) params : uniform MatmulParams { m: u32, n: u32, k: u32, flags: u32 }
//              flags: bit 0 = add bias, bit 1 = relu, bit 2 = accumulate into C.
//   @binding(5) a_texture : texture_2d<f32>, rgba32float: A again, as texture.wgsl's
//                        to_texture writes it (floats 4t..4t+4 at texel (t % 4096, t / 4096)),
//                        read where TEXTURE_A; otherwise any rgba32float texture
//   @binding(6) b_texture : texture_2d<f32>, rgba32float: B again, where TEXTURE_B
// Entry point and dispatch geometry:
//   matmul_subgroup: workgroup of WG_X x 1 invocations; all of them share one block of TM
//       rows, and each owns TN consecutive columns of it (a TM x TN block of C).
//       Dispatch (ceil(n / (TN * WG_X)), ceil(m / TM), 1). No workgroup memory, no barriers.
// Overrides: TRANS_A, TRANS_B (bool, default false); TM (8, 16, 32 or 64, default 32);
//       TN (4 or 8, default 8); WG_X (workgroup width, >= 8, default 64); TEXTURE_A,
//       TEXTURE_B (bool, default false): read that operand from its texture, not storage.
//
// Why it is fast where invocations are SIMD lanes of a CPU (lavapipe): there every storage
// load costs about the same per component and lane, whatever its width, so the kernel
// minimises loads per multiply-add. The rows of op(A) are shared: each of a subgroup's lanes
// 0..7 loads one vec4 of the 8 x 4 slice of A for every 8 rows, and subgroupBroadcast (a
// register shuffle) hands it to all lanes, instead of every lane loading all TM rows. Each
// step of 4 along k works on 4 x 4 tiles held as mat4x4 and multiplied with `*`, which gives
// straight-line vector code with no indexed register arrays. Layouts differ only in which
// tile is transposed after loading. On lavapipe a texel load costs about a seventh of a vec4
// storage load (each storage load is a loop over the lanes), so on CPU adapters the launcher
// copies an operand into a texture first where the product reads it often enough.
//
// Edges: rows and columns are clamped into the matrix before loading (results of clamped
// ones are not stored); every lane runs the whole k loop, as subgroupBroadcast needs all
// lanes active.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override TM: u32 = 32u;
override TN: u32 = 8u;
override WG_X: u32 = 64u;
override TEXTURE_A: bool = false;
override TEXTURE_B: bool = false;

const TEXTURE_WIDTH: u32 = 4096u;

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_RELU: u32 = 2u;
const FLAG_ACCUMULATE: u32 = 4u;

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> params: MatmulParams;
@group(0) @binding(5) var a_texture: texture_2d<f32>;
@group(0) @binding(6) var b_texture: texture_2d<f32>;

// Texel t of an operand texture.
fn texel(t: u32) -> vec2<u32> {
    return vec2<u32>(t % TEXTURE_WIDTH, t / TEXTURE_WIDTH);
}

// The 4 floats of A (or B) starting at element `e`, a multiple of 4.
fn load_a(e: u32) -> vec4<f32> {
    if TEXTURE_A {
        return textureLoad(a_texture, texel(e >> 2u), 0);
    }
    return a[e >> 2u];
}

fn load_b(e: u32) -> vec4<f32> {
    if TEXTURE_B {
        return textureLoad(b_texture, texel(e >> 2u), 0);
    }
    return b[e >> 2u];
}

// Tile of op(B) at columns col..col+4, k0..k0+4: column kk is op(B)[k0 + kk, col .. col + 4].
fn b_tile(col: u32, k0: u32) -> mat4x4<f32> {
    let n = params.n;
    let k = params.k;
    if TRANS_B {
        return transpose(mat4x4<f32>(
            load_b(min(col, n - 1u) * k + k0),
            load_b(min(col + 1u, n - 1u) * k + k0),
            load_b(min(col + 2u, n - 1u) * k + k0),
            load_b(min(col + 3u, n - 1u) * k + k0),
        ));
    }
    let col4 = min(col, n - 4u);
    return mat4x4<f32>(
        load_b(k0 * n + col4),
        load_b((k0 + 1u) * n + col4),
        load_b((k0 + 2u) * n + col4),
        load_b((k0 + 3u) * n + col4),
    );
}

// This lane's share of the 8 x 4 slice of op(A) at rows row..row+8, k0..k0+4: row row+lane
// (plain), or k0 + lane/2 and rows row + 4 (lane % 2) .. + 4 (transposed).
fn a_share(row: u32, k0: u32, lane: u32) -> vec4<f32> {
    let m = params.m;
    if TRANS_A {
        return load_a((k0 + (lane >> 1u)) * m + min(row + 4u * (lane & 1u), m - 4u));
    }
    return load_a(min(row + lane, m - 1u) * params.k + k0);
}

// Tiles of the upper and lower 4 of those 8 rows, gathered from lanes 0..7: column i is
// op(A)[row + i (+ 4), k0 .. k0 + 4].
fn a_tile_upper(share: vec4<f32>) -> mat4x4<f32> {
    if TRANS_A {
        return transpose(mat4x4<f32>(
            subgroupBroadcast(share, 0u),
            subgroupBroadcast(share, 2u),
            subgroupBroadcast(share, 4u),
            subgroupBroadcast(share, 6u),
        ));
    }
    return mat4x4<f32>(
        subgroupBroadcast(share, 0u),
        subgroupBroadcast(share, 1u),
        subgroupBroadcast(share, 2u),
        subgroupBroadcast(share, 3u),
    );
}

fn a_tile_lower(share: vec4<f32>) -> mat4x4<f32> {
    if TRANS_A {
        return transpose(mat4x4<f32>(
            subgroupBroadcast(share, 1u),
            subgroupBroadcast(share, 3u),
            subgroupBroadcast(share, 5u),
            subgroupBroadcast(share, 7u),
        ));
    }
    return mat4x4<f32>(
        subgroupBroadcast(share, 4u),
        subgroupBroadcast(share, 5u),
        subgroupBroadcast(share, 6u),
        subgroupBroadcast(share, 7u),
    );
}

// Accumulators of 8 rows x TN columns: column i of a tile is C[row + i, col .. col + 4],
// so tile += b_tile * a_tile adds op(A) op(B) for one step of 4 along k.
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
    if TN > 4u {
        (*acc).upper1 += b1 * upper;
        (*acc).lower1 += b1 * lower;
    }
}

// Apply the epilogue to one output element and store it; skips elements outside C.
fn store_output(row: u32, col: u32, value: f32) {
    if row >= params.m || col >= params.n {
        return;
    }
    let index = row * params.n + col;
    var v = value;
    if (params.flags & FLAG_ACCUMULATE) != 0u {
        v += c[index];
    }
    if (params.flags & FLAG_BIAS) != 0u {
        v += bias[col];
    }
    if (params.flags & FLAG_RELU) != 0u {
        v = max(v, 0.0);
    }
    c[index] = v;
}

// Apply the epilogue to C[row, col .. col + 4] and store its elements that lie inside C.
fn store_vec4(row: u32, col: u32, value: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        store_output(row, col + j, value[j]);
    }
}

// Store one group's 8 rows x TN columns, as a loop over the columns of its tiles. On lavapipe
// this shape of epilogue keeps the pipeline quick to compile: every output unrolled took
// about 12x as long at 64 rows, the block first gathered into one array 5x, and indexing a
// tile's column with the loop counter (t[i]) 2.5x.
fn store_rows8(row: u32, col: u32, acc: Rows8) {
    for (var i = 0u; i < 4u; i++) {
        store_vec4(row + i, col, column(acc.upper0, i));
        store_vec4(row + 4u + i, col, column(acc.lower0, i));
        if TN > 4u {
            store_vec4(row + i, col + 4u, column(acc.upper1, i));
            store_vec4(row + 4u + i, col + 4u, column(acc.lower1, i));
        }
    }
}

// Column i of t, by selects rather than t[i]: a dynamic index puts the tile in memory.
fn column(t: mat4x4<f32>, i: u32) -> vec4<f32> {
    return select(select(t[0], t[1], i == 1u), select(t[2], t[3], i == 3u), i >= 2u);
}

@compute @workgroup_size(WG_X)
fn matmul_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = wid.y * TM;
    let col0 = (wid.x * WG_X + lid.x) * TN;
    // Up to 64 rows as eight groups of 8; TM picks how many are used (constant-folded).
    // More rows per lane means fewer loads of B per multiply-add: 64 rows load a B tile once
    // for every 512 multiply-adds, 32 rows for every 256.
    var rows0: Rows8;
    var rows1: Rows8;
    var rows2: Rows8;
    var rows3: Rows8;
    var rows4: Rows8;
    var rows5: Rows8;
    var rows6: Rows8;
    var rows7: Rows8;
    for (var k0 = 0u; k0 < params.k; k0 += 4u) {
        let b0 = b_tile(col0, k0);
        var b1: mat4x4<f32>;
        if TN > 4u {
            b1 = b_tile(col0 + 4u, k0);
        }
        accumulate_rows8(&rows0, a_share(row0, k0, lane), b0, b1);
        if TM > 8u {
            accumulate_rows8(&rows1, a_share(row0 + 8u, k0, lane), b0, b1);
        }
        if TM > 16u {
            accumulate_rows8(&rows2, a_share(row0 + 16u, k0, lane), b0, b1);
            accumulate_rows8(&rows3, a_share(row0 + 24u, k0, lane), b0, b1);
        }
        if TM > 32u {
            accumulate_rows8(&rows4, a_share(row0 + 32u, k0, lane), b0, b1);
            accumulate_rows8(&rows5, a_share(row0 + 40u, k0, lane), b0, b1);
            accumulate_rows8(&rows6, a_share(row0 + 48u, k0, lane), b0, b1);
            accumulate_rows8(&rows7, a_share(row0 + 56u, k0, lane), b0, b1);
        }
    }
    store_rows8(row0, col0, rows0);
    if TM > 8u {
        store_rows8(row0 + 8u, col0, rows1);
    }
    if TM > 16u {
        store_rows8(row0 + 16u, col0, rows2);
        store_rows8(row0 + 24u, col0, rows3);
    }
    if TM > 32u {
        store_rows8(row0 + 32u, col0, rows4);
        store_rows8(row0 + 40u, col0, rows5);
        store_rows8(row0 + 48u, col0, rows6);
        store_rows8(row0 + 56u, col0, rows7);
    }
}
