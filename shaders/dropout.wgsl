// dropout.wgsl — inverted dropout with a counter-based (stateless) random mask.
//
// Computes:   out[i] = keep(seed, i) ? inp[i] * keep_scale : 0      for i in [0, n)
//   keep(seed, i) = counter_hash(seed, i) >= drop_threshold
//   drop_threshold = floor(rate * 2^32) (computed by the host, so keep() is pure integer work
//   and a CPU can reproduce the mask bit for bit); keep_scale = 1 / (1 - rate).
// The mask depends only on (seed, element index), so the forward pass (inp = x, out = y) and
// the backward pass (inp = dy, out = dx) use the same entry point and seed and drop the same
// elements; nothing is stored between them. rate 0 means threshold 0: every element kept, scale 1.
// counter_hash is two rounds of a 32-bit xor-shift-multiply mixer keyed by the seed; each
// seed gives a different bijection of the index, so masks of different seeds are unrelated.
// Bindings (group 0):
//   @binding(0) inp    : array<f32>, read        n elements, any shape (row-major)
//   @binding(1) out    : array<f32>, read_write  n elements, same shape; must not alias `inp`
//   @binding(2) params : uniform DropoutParams { n: u32, seed: u32, drop_threshold: u32, keep_scale: f32 }
// Dispatch:  ceil(n / WG) workgroups, as a 2-D grid when that exceeds 65535:
//            x = min(groups, 65535), y = ceil(groups / x). Index = (wid.x + wid.y * nwg.x) * WG + lid.
// Overrides: WG (workgroup size, default 256).

override WG: u32 = 256u;

struct DropoutParams {
    n: u32,
    seed: u32,
    drop_threshold: u32,
    keep_scale: f32,
}

@group(0) @binding(0) var<storage, read> inp: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: DropoutParams;

// Avalanching 32-bit mixer: every input bit flips each output bit with probability ~1/2.
fn mix32(value: u32) -> u32 {
    var x = value;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// Stateless random u32 for (seed, counter).
fn counter_hash(seed: u32, counter: u32) -> u32 {
    let key = mix32(seed ^ 0x9e3779b9u);
    return mix32(mix32(counter ^ key) ^ seed);
}

@compute @workgroup_size(WG)
fn dropout(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i < params.n {
        let keep = counter_hash(params.seed, i) >= params.drop_threshold;
        out[i] = select(0.0, inp[i] * params.keep_scale, keep);
    }
}
