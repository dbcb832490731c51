// elementwise.wgsl — f32 elementwise kernels: ReLU forward/backward, add, add-assign, scale.
//
// Computes (i in [0, n), every tensor holds n f32 values, any shape, row-major):
//   relu            out[i] = a[i] if a[i] > 0 else 0           (NaN -> 0)
//   relu_backward   out[i] = b[i] if a[i] > 0 else 0           (a = ReLU output y, b = dy)
//   add             out[i] = a[i] + b[i]
//   add_assign      acc[i] = acc[i] + a[i]
//   scale           acc[i] = acc[i] * params.scale             (in place)
// Bindings (group 0); each entry point uses only the ones it names above:
//   @binding(0) a      : array<f32>, read        n elements (relu: x, relu_backward: y, add: a, add_assign: x)
//   @binding(1) b      : array<f32>, read        n elements (relu_backward: dy, add: b)
//   @binding(2) out    : array<f32>, read_write  n elements (relu: y, relu_backward: dx, add: out)
//   @binding(3) acc    : array<f32>, read_write  n elements (add_assign: acc, scale: x)
//   @binding(4) params : uniform ElementwiseParams { n: u32, scale: f32 }  (scale used by `scale` only)
// A read_write binding must not share a buffer with another binding of the same dispatch,
// which is why the in-place kernels read and write through `acc` alone.
// Dispatch:  ceil(n / WG) workgroups, as a 2-D grid when that exceeds 65535:
//            x = min(groups, 65535), y = ceil(groups / x). Index = (wid.x + wid.y * nwg.x) * WG + lid.
// Overrides: WG (workgroup size, default 256).

override WG: u32 = 256u;

struct ElementwiseParams {
    n: u32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;
@group(0) @binding(4) var<uniform> params: ElementwiseParams;

fn element_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn relu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i < params.n {
        let x = a[i];
        out[i] = select(0.0, x, x > 0.0);
    }
}

@compute @workgroup_size(WG)
fn relu_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i < params.n {
        out[i] = select(0.0, b[i], a[i] > 0.0);
    }
}

@compute @workgroup_size(WG)
fn add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i < params.n {
        out[i] = a[i] + b[i];
    }
}

@compute @workgroup_size(WG)
fn add_assign(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i < params.n {
        acc[i] = acc[i] + a[i];
    }
}

@compute @workgroup_size(WG)
fn scale(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i < params.n {
        acc[i] = acc[i] * params.scale;
    }
}
