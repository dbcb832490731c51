// matmul.wgsl — general f32 matrix product with optional transposes and a fused epilogue.
//
// Computes:   C = relu?( (ACCUMULATE ? C : 0) + op(A) op(B) + bias )
//             op(A) is [m, k]: A is stored [m, k], or [k, m] when TRANS_A.
//             op(B) is [k, n]: B is stored [k, n], or [n, k] when TRANS_B.
//             bias is [n], added to every row. All matrices row-major, f32 accumulation.
// Bindings (group 0):
//   @binding(0) a      : array<f32>, read        A as stored (see above)
//   @binding(1) b      : array<f32>, read        B as stored (see above)
//   @binding(2) c      : array<f32>, read_write  [m, n]
//   @binding(3) bias   : array<f32>, read        [n]; any buffer of >= 4 bytes when flags bit 0 is clear
//   @binding(4) params : uniform MatmulParams { m: u32, n: u32, k: u32, flags: u32 }
//              flags: bit 0 = add bias, bit 1 = relu, bit 2 = accumulate into C.
// Entry points and dispatch geometry (every entry is correct for any m, n, k >= 1):
//   matmul_register: no workgroup memory. Each invocation owns a TM x TN block of C
//       (TN = 4 or 8), workgroup WG_X x WG_Y invocations.
//       Dispatch (ceil(n / (TN * WG_X)), ceil(m / (TM * WG_Y)), 1).
//   matmul_tiled: workgroup tiles of (TM * WG_Y) x (TN * WG_X) outputs; slices of BK along k
//       are staged in workgroup memory, then each invocation accumulates its TM x TN block
//       from there. Dispatch as matmul_register.
// Overrides: TRANS_A, TRANS_B (bool, default false); TM (1..8, default 8); TN (4 or 8,
//       default 8); WG_X, WG_Y (workgroup size, default 8 x 8); BK (k slice of
//       matmul_tiled, default 16). Workgroup memory of matmul_tiled: 4 * BK * (TM*WG_Y +
//       TN*WG_X) bytes.
// Why the transposes are override constants and the epilogue is a uniform: the transposes
// change the inner-loop addressing, so each layout gets its own specialised pipeline; the
// epilogue runs once per output element, where a uniform branch costs nothing and saves
// compiling eight times as many pipelines.
//
// See matmul_subgroup.wgsl for a faster kernel of the same product (vec4 loads, rows of A
// shared by subgroup broadcast) where the subgroup feature exists and the contiguous
// dimensions are multiples of 4; it is a separate file because it needs that feature.
//
// Edges: row and column indices are clamped into the matrix before the k loop, so the
// inner loop reads in bounds without a branch; results of clamped rows and columns are
// simply not stored.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override TM: u32 = 8u;
override TN: u32 = 8u;
override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
override BK: u32 = 16u;

// Register arrays need constant sizes; TM and TN only use the leading part.
const MAX_TM: u32 = 8u;
const MAX_TN: u32 = 8u;
const MAX_TN4: u32 = 2u;

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const FLAG_BIAS: u32 = 1u;
const FLAG_RELU: u32 = 2u;
const FLAG_ACCUMULATE: u32 = 4u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> params: MatmulParams;

// Strides of op(A)[row, kk] = a[row * a_row_stride() + kk * a_k_stride()], likewise for B.
fn a_row_stride() -> u32 { return select(params.k, 1u, TRANS_A); }
fn a_k_stride() -> u32 { return select(1u, params.m, TRANS_A); }
fn b_col_stride() -> u32 { return select(1u, params.k, TRANS_B); }
fn b_k_stride() -> u32 { return select(params.n, 1u, TRANS_B); }

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

fn store_block(row0: u32, col0: u32, acc: ptr<function, array<vec4<f32>, 16>>) {
    for (var i = 0u; i < TM; i++) {
        for (var j4 = 0u; j4 < TN / 4u; j4++) {
            let v = (*acc)[i * MAX_TN4 + j4];
            let col = col0 + j4 * 4u;
            store_output(row0 + i, col, v.x);
            store_output(row0 + i, col + 1u, v.y);
            store_output(row0 + i, col + 2u, v.z);
            store_output(row0 + i, col + 3u, v.w);
        }
    }
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_register(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * TM;
    let col0 = gid.x * TN;
    if row0 >= params.m || col0 >= params.n {
        return;
    }
    let k = params.k;
    let a_ks = a_k_stride();
    let b_ks = b_k_stride();

    // Element offsets of this block's (clamped) rows of op(A) and columns of op(B).
    var a_base: array<u32, MAX_TM>;
    for (var i = 0u; i < TM; i++) {
        a_base[i] = min(row0 + i, params.m - 1u) * a_row_stride();
    }
    var b_base: array<u32, MAX_TN>;
    for (var j = 0u; j < TN; j++) {
        b_base[j] = min(col0 + j, params.n - 1u) * b_col_stride();
    }

    var acc: array<vec4<f32>, 16>;
    for (var kk = 0u; kk < k; kk++) {
        let a_off = kk * a_ks;
        let b_off = kk * b_ks;
        var bv: array<vec4<f32>, MAX_TN4>;
        for (var j4 = 0u; j4 < TN / 4u; j4++) {
            bv[j4] = vec4<f32>(
                b[b_base[j4 * 4u] + b_off],
                b[b_base[j4 * 4u + 1u] + b_off],
                b[b_base[j4 * 4u + 2u] + b_off],
                b[b_base[j4 * 4u + 3u] + b_off],
            );
        }
        for (var i = 0u; i < TM; i++) {
            let av = a[a_base[i] + a_off];
            for (var j4 = 0u; j4 < TN / 4u; j4++) {
                acc[i * MAX_TN4 + j4] = fma(vec4<f32>(av), bv[j4], acc[i * MAX_TN4 + j4]);
            }
        }
    }
    store_block(row0, col0, &acc);
}

// Staged slices of op(A) as [BK][TM * WG_Y] and op(B) as [BK][TN * WG_X].
var<workgroup> tile_a: array<f32, BK * TM * WG_Y>;
var<workgroup> tile_b: array<f32, BK * TN * WG_X>;

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) lindex: u32,
) {
    let tile_m = TM * WG_Y;
    let tile_n = TN * WG_X;
    let threads = WG_X * WG_Y;
    let tile_row0 = wid.y * tile_m;
    let tile_col0 = wid.x * tile_n;
    let k = params.k;
    let a_rs = a_row_stride();
    let a_ks = a_k_stride();
    let b_cs = b_col_stride();
    let b_ks = b_k_stride();

    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < k; k0 += BK) {
        // Stage the slices; rows/columns past the matrix are clamped (their results are
        // discarded), k past the end reads as zero so it adds nothing.
        // Consecutive invocations take consecutive rows (A transposed) or k (A plain).
        for (var e = lindex; e < BK * tile_m; e += threads) {
            var kk: u32;
            var r: u32;
            if TRANS_A {
                kk = e / tile_m;
                r = e % tile_m;
            } else {
                kk = e % BK;
                r = e / BK;
            }
            let row = min(tile_row0 + r, params.m - 1u);
            var v = 0.0;
            if k0 + kk < k {
                v = a[row * a_rs + (k0 + kk) * a_ks];
            }
            tile_a[kk * tile_m + r] = v;
        }
        for (var e = lindex; e < BK * tile_n; e += threads) {
            var kk: u32;
            var cc: u32;
            if TRANS_B {
                kk = e % BK;
                cc = e / BK;
            } else {
                kk = e / tile_n;
                cc = e % tile_n;
            }
            let col = min(tile_col0 + cc, params.n - 1u);
            var v = 0.0;
            if k0 + kk < k {
                v = b[col * b_cs + (k0 + kk) * b_ks];
            }
            tile_b[kk * tile_n + cc] = v;
        }
        workgroupBarrier();

        for (var kk = 0u; kk < BK; kk++) {
            var bv: array<vec4<f32>, MAX_TN4>;
            for (var j4 = 0u; j4 < TN / 4u; j4++) {
                let base = kk * tile_n + lid.x * TN + j4 * 4u;
                bv[j4] = vec4<f32>(tile_b[base], tile_b[base + 1u], tile_b[base + 2u], tile_b[base + 3u]);
            }
            for (var i = 0u; i < TM; i++) {
                let av = tile_a[kk * tile_m + lid.y * TM + i];
                for (var j4 = 0u; j4 < TN / 4u; j4++) {
                    acc[i * MAX_TN4 + j4] = fma(vec4<f32>(av), bv[j4], acc[i * MAX_TN4 + j4]);
                }
            }
        }
        workgroupBarrier();
    }
    store_block(tile_row0 + lid.y * TM, tile_col0 + lid.x * TN, &acc);
}
