// fill.wgsl — set every element of an f32 buffer to one value.
//
// Computes:   out[i] = value            for i in [0, n)
// Bindings (group 0):
//   @binding(0) out    : array<f32>, read_write   n elements
//   @binding(1) params : uniform FillParams { n: u32, value: f32 }
// Dispatch:  ceil(n / WG) workgroups, as a 2-D grid when that exceeds 65535:
//            x = min(groups, 65535), y = ceil(groups / x). Index = (wid.x + wid.y * nwg.x) * WG + lid.x.
// Overrides: WG (workgroup size, default 256).

override WG: u32 = 256u;

struct FillParams {
    n: u32,
    value: f32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> params: FillParams;

@compute @workgroup_size(WG)
fn fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if i < params.n {
        out[i] = params.value;
    }
}
