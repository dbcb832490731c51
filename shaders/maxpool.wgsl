// maxpool.wgsl — 2-D max pooling over square windows, forward (with argmax) and backward.
//
// Computes (NCHW, row-major f32; no padding; floor mode as PyTorch's default, ceil_mode=False):
//   Ho = (H - K) / S + 1, Wo = (W - K) / S + 1 (integer division), so a last window that would
//   be cut by the image edge is dropped and the rows/columns only it would cover are ignored.
//   maxpool_forward:   y[n,c,oy,ox]      = max over ky, kx < K of x[n,c,oy*S+ky,ox*S+kx]
//                      argmax[n,c,oy,ox] = iy*W + ix of that maximum within its (n,c) plane
//                      (PyTorch's index convention). Ties keep the first in row-major window
//                      order; a NaN in the window wins (propagates), as in PyTorch.
//   maxpool_backward:  dx[n,c,iy,ix] = sum of dy[n,c,oy,ox] over the windows that contain
//                      (iy,ix) and whose argmax is iy*W+ix. Written as a gather: each input
//                      element visits only the windows oy in [ceil((iy-K+1)/S), iy/S] (clipped
//                      to [0, Ho)), likewise ox, so overlapping windows (K > S) need no atomics.
//                      Every dx element is written (0 where no window picked it).
//   maxpool_backward_tiles: the same dx for non-overlapping windows that tile the image
//                      exactly (K == S, H and W multiples of K), written by the windows: each
//                      output element's K x K block of dx is dy at the argmax, 0 elsewhere.
//   With RELU_MASK, both backward kernels read dy[o] as 0 where pooled[o] <= 0: the gradient
//   through a ReLU before the pooling (max and ReLU commute, so the ReLU's output at the
//   argmax is pooled[o]), which then needs no pass of its own.
// Bindings (group 0):
//   @binding(0) x       : array<f32>, read        [N, C, H, W]     forward
//   @binding(1) y       : array<f32>, read_write  [N, C, Ho, Wo]   forward
//   @binding(2) argmax  : array<u32>, read_write  [N, C, Ho, Wo]   forward
//   @binding(3) dy      : array<f32>, read        [N, C, Ho, Wo]   backward
//   @binding(4) argmax_in : array<u32>, read      [N, C, Ho, Wo]   backward (forward's argmax)
//   @binding(5) dx      : array<f32>, read_write  [N, C, H, W]     backward
//   @binding(7) pooled  : array<f32>, read        [N, C, Ho, Wo]   backward (the forward's y; any
//                                                  f32 buffer without RELU_MASK)
//   @binding(6) params  : uniform PoolParams { planes = N*C, height, width, out_height,
//                                              out_width, kernel, stride, _pad }
// Dispatch: one invocation per output row (forward and maxpool_backward_tiles: planes*Ho,
//           each looping over its Wo windows) or per input element (maxpool_backward:
//           planes*H*W); ceil(count / WG) workgroups as a 2-D grid when over 65535:
//           index = (wid.x + wid.y * nwg.x) * WG + lid.x; surplus invocations return.
// Overrides: WG (workgroup size, default 256); RELU_MASK (backward, default false).

override WG: u32 = 256u;
override RELU_MASK: bool = false;

struct PoolParams {
    planes: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    kernel: u32,
    stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> argmax_in: array<u32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<uniform> p: PoolParams;
@group(0) @binding(7) var<storage, read> pooled: array<f32>;

// dy of output element o, 0 where RELU_MASK and the pooled value is not positive.
fn grad_at(o: u32) -> f32 {
    if RELU_MASK && !(pooled[o] > 0.0) {
        return 0.0;
    }
    return dy[o];
}

// The output row (plane, oy) of invocation `line` of the row-wise kernels: x = the index of
// its plane's first input element, y = the top-left input element of its first window within
// the plane (oy * S * W). One division per row; CPUs have no vector integer division, so
// lavapipe divides lane by lane, and per element it took as long as the pooling.
fn row_origin(line: u32) -> vec2<u32> {
    let plane = line / p.out_height;
    let oy = line % p.out_height;
    return vec2<u32>(plane * p.height * p.width, oy * p.stride * p.width);
}

// Max and argmax of the window at `corner` (iy * W + ix) of the plane at `plane_base`,
// stored at output element o.
fn pool_window(plane_base: u32, corner: u32, o: u32) {
    var best_index = corner;
    var best = x[plane_base + best_index];
    for (var ky = 0u; ky < p.kernel; ky++) {
        for (var kx = 0u; kx < p.kernel; kx++) {
            let index = corner + ky * p.width + kx;
            let v = x[plane_base + index];
            // `best != best` keeps a NaN once found; `v != v` takes the first NaN.
            if (v > best || v != v) && best == best {
                best = v;
                best_index = index;
            }
        }
    }
    y[o] = best;
    argmax[o] = best_index;
}

@compute @workgroup_size(WG)
fn maxpool_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let line = (wid.x + wid.y * nwg.x) * WG + lid;
    if line >= p.planes * p.out_height {
        return;
    }
    let origin = row_origin(line);
    for (var ox = 0u; ox < p.out_width; ox++) {
        pool_window(origin.x, origin.y + ox * p.stride, line * p.out_width + ox);
    }
}

@compute @workgroup_size(WG)
fn maxpool_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let in_plane = p.height * p.width;
    if i >= p.planes * in_plane {
        return;
    }
    let out_base = (i / in_plane) * p.out_height * p.out_width;
    let index = i % in_plane;
    let iy = index / p.width;
    let ix = index % p.width;
    // Windows oy with oy*S <= iy < oy*S + K.
    let oy_first = select(0u, (iy + 1u - p.kernel + p.stride - 1u) / p.stride, iy + 1u > p.kernel);
    let ox_first = select(0u, (ix + 1u - p.kernel + p.stride - 1u) / p.stride, ix + 1u > p.kernel);
    let oy_end = min(iy / p.stride + 1u, p.out_height);
    let ox_end = min(ix / p.stride + 1u, p.out_width);
    var sum = 0.0;
    for (var oy = oy_first; oy < oy_end; oy++) {
        for (var ox = ox_first; ox < ox_end; ox++) {
            let o = out_base + oy * p.out_width + ox;
            if argmax_in[o] == index {
                sum += grad_at(o);
            }
        }
    }
    dx[i] = sum;
}

// dx of the K x K block of output element o (at `corner` of the plane at `plane_base`): its
// dy at the argmax, 0 elsewhere.
fn scatter_window(plane_base: u32, corner: u32, o: u32) {
    let hit = argmax_in[o];
    let g = grad_at(o);
    for (var ky = 0u; ky < p.kernel; ky++) {
        let row = corner + ky * p.width;
        for (var kx = 0u; kx < p.kernel; kx++) {
            dx[plane_base + row + kx] = select(0.0, g, row + kx == hit);
        }
    }
}

@compute @workgroup_size(WG)
fn maxpool_backward_tiles(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let line = (wid.x + wid.y * nwg.x) * WG + lid;
    if line >= p.planes * p.out_height {
        return;
    }
    // Windows tile the image here (stride == kernel), so every dx element has one owner.
    let origin = row_origin(line);
    for (var ox = 0u; ox < p.out_width; ox++) {
        scatter_window(origin.x, origin.y + ox * p.stride, line * p.out_width + ox);
    }
}
