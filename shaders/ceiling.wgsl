// ceiling.wgsl — three micro-kernels that measure an adapter's ceilings, so that kernel
// throughput can be reported as a share of what the hardware reaches.
//
// copy:  dst[i] = src[i] for i in [0, n_vec4)                 (memory bandwidth, GB/s)
// load_sum: dst[i] = sum over j < LOADS of src[i + j * n_vec4], summed in order of j, for i in
//        [0, n_vec4): LOADS reads per write, neighbouring invocations reading neighbouring
//        vec4s, so the rate is what loads alone reach (GB/s read). On a CPU adapter loads
//        cost far more than stores, and this, not the copy, bounds a kernel that must read
//        every element of a large tensor once.
// block_load_sum: dst[i] = sum over j < LOADS of block[(i + j * BLOCK_STEP) % BLOCK_VEC4S],
//        summed in order of j, for i in [0, n_vec4): the same reads as load_sum, neighbouring
//        invocations at neighbouring vec4s, but from a 64 KiB uniform block. On lavapipe a
//        storage load runs a loop over the lanes, a uniform load one vector gather; the
//        convolutions read their packed weights this way on CPU adapters.
// fma_chain: each invocation runs ITERS rounds of 8 independent vec4 fused multiply-adds and
//        writes one vec4, so the work is pure arithmetic        (compute rate, GFLOP/s)
//        FLOPs per dispatch = invocations * ITERS * 8 chains * 4 lanes * 2.
//
// Bindings (group 0):
//   @binding(0) src    : array<vec4<f32>>, read        n_vec4 elements (copy), LOADS * n_vec4 (load_sum)
//   @binding(1) dst    : array<vec4<f32>>, read_write  n_vec4 elements (copy, load_sum) or one per
//                        invocation (fma)
//   @binding(2) params : uniform CeilingParams { n_vec4: u32, seed: f32 }
//   @binding(3) block  : uniform array<vec4<f32>, BLOCK_VEC4S>        (block_load_sum)
// Dispatch: ceil(n / WG) workgroups as a 2-D grid when over 65535 (x = min(groups, 65535),
//           y = ceil(groups / x)); linear index = (wid.x + wid.y * nwg.x) * WG + lid.
//           For fma, n is the number of invocations wanted.
// Overrides: WG (workgroup size, default 256), ITERS (fma rounds, default 256), LOADS
//            (load_sum reads per invocation, default 8).

override WG: u32 = 256u;
override ITERS: u32 = 256u;
override LOADS: u32 = 8u;

struct CeilingParams {
    n_vec4: u32,
    seed: f32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: CeilingParams;
@group(0) @binding(3) var<uniform> block: array<vec4<f32>, BLOCK_VEC4S>;

// vec4s of a 64 KiB uniform block, and the stride between an invocation's reads of it.
const BLOCK_VEC4S: u32 = 4096u;
const BLOCK_STEP: u32 = 521u;

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn copy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i < params.n_vec4 {
        dst[i] = src[i];
    }
}

@compute @workgroup_size(WG)
fn load_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i < params.n_vec4 {
        var sum = vec4<f32>();
        for (var j = 0u; j < LOADS; j++) {
            sum += src[i + j * params.n_vec4];
        }
        dst[i] = sum;
    }
}

@compute @workgroup_size(WG)
fn block_load_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i < params.n_vec4 {
        var sum = vec4<f32>();
        for (var j = 0u; j < LOADS; j++) {
            sum += block[(i + j * BLOCK_STEP) % BLOCK_VEC4S];
        }
        dst[i] = sum;
    }
}

@compute @workgroup_size(WG)
fn fma_chain(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wid, nwg, lid);
    if i >= params.n_vec4 {
        return;
    }
    // Multipliers just below 1 keep the chains finite for any ITERS.
    let a = vec4<f32>(0.9999, 0.9998, 0.9997, 0.9996);
    let b = vec4<f32>(params.seed) + f32(i) * 1e-7;
    var x0 = b;
    var x1 = b + 1.0;
    var x2 = b + 2.0;
    var x3 = b + 3.0;
    var x4 = b + 4.0;
    var x5 = b + 5.0;
    var x6 = b + 6.0;
    var x7 = b + 7.0;
    for (var k = 0u; k < ITERS; k++) {
        x0 = fma(x0, a, b);
        x1 = fma(x1, a, b);
        x2 = fma(x2, a, b);
        x3 = fma(x3, a, b);
        x4 = fma(x4, a, b);
        x5 = fma(x5, a, b);
        x6 = fma(x6, a, b);
        x7 = fma(x7, a, b);
    }
    dst[i] = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7));
}
