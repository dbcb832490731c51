// conv2d.wgsl — 2-D convolution (cross-correlation, as in PyTorch) and its gradients.
//
// Layouts (all row-major f32):
//   x  [N, Cin, H, W]        input images, NCHW
//   w  [Cout, Cin, KH, KW]   weights, PyTorch layout
//   b  [Cout]                bias
//   y  [N, Cout, Ho, Wo]     output, Ho = (H + 2*pad - KH) / stride + 1 (floor), same for Wo
// Zero padding `pad` on every side, one `stride` for both axes.
//
// Design. Every entry point is register-blocked and uses no workgroup memory and no barriers
// (except the small bias reduction): on software Vulkan (lavapipe) a barrier costs more than the
// arithmetic it saves, while a block of accumulators held per invocation turns each loaded value
// into several multiply-adds on any device.
//   conv2d_forward      implicit GEMM: y viewed as [N*Ho*Wo, Cout] = X_im2col [N*Ho*Wo, Cin*KH*KW]
//                       x W^T, with im2col never materialised: each invocation owns PIX output
//                       pixels x CH output channels and walks k = (ci, ky, kx), loading PIX input
//                       values (zero outside the image) and CH weights per step.
//   conv2d_input_grad   the transposed convolution written as a gather: each invocation owns PIX
//                       input pixels x CH input channels and visits every (co, ky, kx) whose output
//                       position (iy + pad - ky) / stride, (ix + pad - kx) / stride is integral and
//                       inside the output; no atomics, every dx element is written exactly once.
//   conv2d_weight_grad  dW [Cout, Cin*KH*KW] = dY^T [Cout, N*Ho*Wo] x X_im2col, a reduction of
//                       length N*Ho*Wo per weight. There are few weights (400 for a 1->16 5x5
//                       conv), so the reduction is split into `splits` chunks of `chunk` output
//                       positions: each invocation owns CO_B output channels x K_B kernel taps for
//                       one chunk and writes a partial sum; conv2d_weight_grad_reduce then sums
//                       the partials per weight (and optionally adds the old dW).
//   conv2d_bias_grad    db[co] = sum over n, oy, ox of dy; one workgroup of 64 per channel, each
//                       invocation strides over the positions, then a tree reduction.
//
// Bindings (group 0; each entry point uses only the ones listed for it):
//   @binding(0)  x        : array<f32>, read        [N, Cin, H, W]        forward, weight_grad
//   @binding(1)  w        : array<f32>, read        [Cout, Cin, KH, KW]   forward, input_grad
//   @binding(2)  bias     : array<f32>, read        [Cout]                forward (bind any f32
//                                                   buffer, e.g. w, when HAS_BIAS is false)
//   @binding(3)  y        : array<f32>, read_write  [N, Cout, Ho, Wo]     forward
//   @binding(4)  dy       : array<f32>, read        [N, Cout, Ho, Wo]     input_grad, weight_grad,
//                                                                         bias_grad
//   @binding(5)  dx       : array<f32>, read_write  [N, Cin, H, W]        input_grad
//   @binding(6)  partials : array<f32>, read_write  [splits, Cout, Cin*KH*KW]
//                                                   weight_grad (writes), weight_grad_reduce (reads)
//   @binding(7)  dw       : array<f32>, read_write  [Cout, Cin, KH, KW]   weight_grad_reduce
//   @binding(8)  db       : array<f32>, read_write  [Cout]                bias_grad
//   @binding(15) params   : uniform ConvParams (16 u32, below); `splits` and `chunk` are read by
//                           the weight-gradient entry points only.
//
// Dispatch (linear workgroup index g = wid.x + wid.y * nwg.x, so a 2-D grid may be used when
// more than 65535 workgroups are needed; surplus invocations return early):
//   conv2d_forward      ceil(Cout / CH) * ceil(ceil(N*Ho*Wo / PIX) / WG) workgroups; workgroup g
//                       takes channel block g % ceil(Cout / CH) and WG consecutive pixel blocks
//   conv2d_input_grad   ceil(Cin / CH) * ceil(ceil(N*H*W / PIX) / WG) workgroups, likewise
//   conv2d_weight_grad  splits * ceil(Cout / CO_B) * ceil(Cin*KH*KW / K_B) invocations, WG per wg
//   conv2d_weight_grad_reduce  Cout*Cin*KH*KW invocations, WG per workgroup
//   conv2d_bias_grad    Cout workgroups of 64 (fixed)
// Overrides:
//   WG         invocations per workgroup (default 64) for all but conv2d_bias_grad
//   HAS_BIAS   forward adds bias[co] (default false)
//   RELU       forward applies max(0, .) after the bias (default false)
//   ACCUMULATE weight_grad_reduce adds into the existing dw instead of overwriting (default false)
// Block sizes are WGSL constants (function-scope arrays need constant sizes): PIX = 4, CH = 8,
// CO_B = 8, K_B = 4.

override WG: u32 = 64u;
override HAS_BIAS: bool = false;
override RELU: bool = false;
override ACCUMULATE: bool = false;

const PIX: u32 = 4u;   // output (forward) or input (input_grad) pixels per invocation
const CH: u32 = 8u;    // output (forward) or input (input_grad) channels per invocation
const CO_B: u32 = 8u;  // output channels per invocation in weight_grad
const K_B: u32 = 4u;   // kernel taps (ci, ky, kx) per invocation in weight_grad
const BIAS_WG: u32 = 64u;

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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;
@group(0) @binding(15) var<uniform> p: ConvParams;

fn invocation_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Input value at (iy, ix) of the channel plane starting at `plane`, 0 in the zero padding.
fn x_or_zero(plane: u32, iy: i32, ix: i32) -> f32 {
    if iy >= 0 && iy < i32(p.height) && ix >= 0 && ix < i32(p.width) {
        return x[plane + u32(iy) * p.width + u32(ix)];
    }
    return 0.0;
}

// The forward's block is written out by hand (PIX = 4 pixels in the lanes of a vec4, CH = 8
// channels in eight named accumulators): function-scope arrays indexed in loops are not
// reliably kept in registers by every compiler (lavapipe spills them), named vectors are.
@compute @workgroup_size(WG)
fn conv2d_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let out_plane = p.out_height * p.out_width;
    let in_plane = p.height * p.width;
    let taps = p.kernel_h * p.kernel_w;
    let k_total = p.in_channels * taps;
    let m_total = p.batch * out_plane;
    // The channel block comes from the workgroup index, so weight reads are the same for the
    // whole workgroup (one broadcast load); the invocations take consecutive pixel blocks.
    let group = wid.x + wid.y * nwg.x;
    let ch_blocks = (p.out_channels + CH - 1u) / CH;
    let co0 = (group % ch_blocks) * CH;
    let pixel_block = (group / ch_blocks) * WG + lid;
    if pixel_block >= (m_total + PIX - 1u) / PIX {
        return;
    }
    let m0 = pixel_block * PIX;
    // Tail pixels and channels recompute the last valid one and are never stored.
    let m = min(vec4<u32>(m0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(m_total - 1u));
    let n = m / out_plane;
    let r = m % out_plane;
    let x_img = n * (p.in_channels * in_plane);
    let iy0 = vec4<i32>((r / p.out_width) * p.stride) - i32(p.padding);
    let ix0 = vec4<i32>((r % p.out_width) * p.stride) - i32(p.padding);
    let last = p.out_channels - 1u;
    let w0 = min(co0, last) * k_total;
    let w1 = min(co0 + 1u, last) * k_total;
    let w2 = min(co0 + 2u, last) * k_total;
    let w3 = min(co0 + 3u, last) * k_total;
    let w4 = min(co0 + 4u, last) * k_total;
    let w5 = min(co0 + 5u, last) * k_total;
    let w6 = min(co0 + 6u, last) * k_total;
    let w7 = min(co0 + 7u, last) * k_total;

    // acc_c holds output channel co0 + c for the four pixels.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.in_channels; ci++) {
        let plane = x_img + ci * in_plane;
        for (var ky = 0u; ky < p.kernel_h; ky++) {
            let iy = iy0 + i32(ky);
            for (var kx = 0u; kx < p.kernel_w; kx++) {
                let ix = ix0 + i32(kx);
                let xv = vec4<f32>(
                    x_or_zero(plane.x, iy.x, ix.x),
                    x_or_zero(plane.y, iy.y, ix.y),
                    x_or_zero(plane.z, iy.z, ix.z),
                    x_or_zero(plane.w, iy.w, ix.w),
                );
                let k = ci * taps + ky * p.kernel_w + kx;
                acc0 = fma(xv, vec4<f32>(w[w0 + k]), acc0);
                acc1 = fma(xv, vec4<f32>(w[w1 + k]), acc1);
                acc2 = fma(xv, vec4<f32>(w[w2 + k]), acc2);
                acc3 = fma(xv, vec4<f32>(w[w3 + k]), acc3);
                acc4 = fma(xv, vec4<f32>(w[w4 + k]), acc4);
                acc5 = fma(xv, vec4<f32>(w[w5 + k]), acc5);
                acc6 = fma(xv, vec4<f32>(w[w6 + k]), acc6);
                acc7 = fma(xv, vec4<f32>(w[w7 + k]), acc7);
            }
        }
    }

    let y_base = n * (p.out_channels * out_plane) + r;
    store_output(m0, m_total, y_base, co0, out_plane, acc0);
    store_output(m0, m_total, y_base, co0 + 1u, out_plane, acc1);
    store_output(m0, m_total, y_base, co0 + 2u, out_plane, acc2);
    store_output(m0, m_total, y_base, co0 + 3u, out_plane, acc3);
    store_output(m0, m_total, y_base, co0 + 4u, out_plane, acc4);
    store_output(m0, m_total, y_base, co0 + 5u, out_plane, acc5);
    store_output(m0, m_total, y_base, co0 + 6u, out_plane, acc6);
    store_output(m0, m_total, y_base, co0 + 7u, out_plane, acc7);
}

// Write channel `co` of the four pixels m0.. (bias, ReLU), skipping those past the end.
fn store_output(m0: u32, m_total: u32, y_base: vec4<u32>, co: u32, out_plane: u32, acc: vec4<f32>) {
    if co >= p.out_channels {
        return;
    }
    var v = acc;
    if HAS_BIAS {
        v += vec4<f32>(bias[co]);
    }
    if RELU {
        v = max(v, vec4<f32>(0.0));
    }
    for (var q = 0u; q < PIX; q++) {
        if m0 + q < m_total {
            y[y_base[q] + co * out_plane] = v[q];
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_input_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let out_plane = p.out_height * p.out_width;
    let in_plane = p.height * p.width;
    let taps = p.kernel_h * p.kernel_w;
    let k_total = p.in_channels * taps;
    let pixels = p.batch * in_plane;
    // Channel block per workgroup, pixel blocks per invocation, as in conv2d_forward.
    let group = wid.x + wid.y * nwg.x;
    let ch_blocks = (p.in_channels + CH - 1u) / CH;
    let ci0 = (group % ch_blocks) * CH;
    let pixel_block = (group / ch_blocks) * WG + lid;
    if pixel_block >= (pixels + PIX - 1u) / PIX {
        return;
    }
    let m0 = pixel_block * PIX;

    var dy_base: array<u32, PIX>;  // offset of image n in dy
    var dx_base: array<u32, PIX>;  // offset of (n, ci = 0, iy, ix) in dx
    var ty0: array<i32, PIX>;      // iy + pad: output row oy is reached through ky when oy*stride + ky == ty0
    var tx0: array<i32, PIX>;
    for (var q = 0u; q < PIX; q++) {
        let m = min(m0 + q, pixels - 1u);
        let n = m / in_plane;
        let r = m % in_plane;
        dy_base[q] = n * p.out_channels * out_plane;
        dx_base[q] = n * p.in_channels * in_plane + r;
        ty0[q] = i32(r / p.width + p.padding);
        tx0[q] = i32(r % p.width + p.padding);
    }
    var w_col: array<u32, CH>;
    for (var c = 0u; c < CH; c++) {
        w_col[c] = min(ci0 + c, p.in_channels - 1u) * taps;
    }
    let s = i32(p.stride);

    var acc: array<f32, PIX * CH>;  // pixel-major
    for (var i = 0u; i < PIX * CH; i++) {
        acc[i] = 0.0;
    }
    for (var ky = 0u; ky < p.kernel_h; ky++) {
        for (var kx = 0u; kx < p.kernel_w; kx++) {
            // Output position each pixel reaches through this tap, or none.
            var dy_off: array<u32, PIX>;
            var reached: array<bool, PIX>;
            for (var q = 0u; q < PIX; q++) {
                let ty = ty0[q] - i32(ky);
                let tx = tx0[q] - i32(kx);
                let oy = ty / s;
                let ox = tx / s;
                reached[q] = ty >= 0 && tx >= 0 && oy * s == ty && ox * s == tx
                    && oy < i32(p.out_height) && ox < i32(p.out_width);
                dy_off[q] = dy_base[q] + u32(max(oy, 0)) * p.out_width + u32(max(ox, 0));
            }
            for (var co = 0u; co < p.out_channels; co++) {
                var g: array<f32, PIX>;
                for (var q = 0u; q < PIX; q++) {
                    g[q] = 0.0;
                    if reached[q] {
                        g[q] = dy[dy_off[q] + co * out_plane];
                    }
                }
                let w_tap = co * k_total + ky * p.kernel_w + kx;
                for (var c = 0u; c < CH; c++) {
                    let wv = w[w_tap + w_col[c]];
                    for (var q = 0u; q < PIX; q++) {
                        acc[q * CH + c] = fma(g[q], wv, acc[q * CH + c]);
                    }
                }
            }
        }
    }

    for (var q = 0u; q < PIX; q++) {
        if m0 + q >= pixels {
            break;
        }
        for (var c = 0u; c < CH; c++) {
            if ci0 + c >= p.in_channels {
                break;
            }
            dx[dx_base[q] + (ci0 + c) * in_plane] = acc[q * CH + c];
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = invocation_index(wid, nwg, lid);
    let out_plane = p.out_height * p.out_width;
    let in_plane = p.height * p.width;
    let taps = p.kernel_h * p.kernel_w;
    let k_total = p.in_channels * taps;
    let m_total = p.batch * out_plane;
    let k_blocks = (k_total + K_B - 1u) / K_B;
    let co_blocks = (p.out_channels + CO_B - 1u) / CO_B;
    if t >= p.splits * co_blocks * k_blocks {
        return;
    }
    let k0 = (t % k_blocks) * K_B;
    let co0 = ((t / k_blocks) % co_blocks) * CO_B;
    let split = t / (k_blocks * co_blocks);

    // Each tap j reads x at (ci, oy*stride + dy_tap, ox*stride + dx_tap).
    var x_chan: array<u32, K_B>;
    var y_tap: array<i32, K_B>;
    var x_tap: array<i32, K_B>;
    for (var j = 0u; j < K_B; j++) {
        let k = min(k0 + j, k_total - 1u);
        let tap = k % taps;
        x_chan[j] = (k / taps) * in_plane;
        y_tap[j] = i32(tap / p.kernel_w) - i32(p.padding);
        x_tap[j] = i32(tap % p.kernel_w) - i32(p.padding);
    }
    var dy_chan: array<u32, CO_B>;
    for (var c = 0u; c < CO_B; c++) {
        dy_chan[c] = min(co0 + c, p.out_channels - 1u) * out_plane;
    }

    var acc: array<f32, CO_B * K_B>;  // channel-major
    for (var i = 0u; i < CO_B * K_B; i++) {
        acc[i] = 0.0;
    }
    let m_start = min(split * p.chunk, m_total);
    let m_end = min(m_start + p.chunk, m_total);
    // Walk the chunk with running (n, oy, ox) counters instead of dividing at every step.
    var n = m_start / out_plane;
    var oy = (m_start % out_plane) / p.out_width;
    var ox = m_start % p.out_width;
    for (var m = m_start; m < m_end; m++) {
        let dy_img = n * p.out_channels * out_plane + oy * p.out_width + ox;
        let x_img = n * p.in_channels * in_plane;
        let iy_base = i32(oy * p.stride);
        let ix_base = i32(ox * p.stride);
        var xv: array<f32, K_B>;
        for (var j = 0u; j < K_B; j++) {
            let iy = iy_base + y_tap[j];
            let ix = ix_base + x_tap[j];
            xv[j] = 0.0;
            if iy >= 0 && iy < i32(p.height) && ix >= 0 && ix < i32(p.width) {
                xv[j] = x[x_img + x_chan[j] + u32(iy) * p.width + u32(ix)];
            }
        }
        for (var c = 0u; c < CO_B; c++) {
            let g = dy[dy_img + dy_chan[c]];
            for (var j = 0u; j < K_B; j++) {
                acc[c * K_B + j] = fma(g, xv[j], acc[c * K_B + j]);
            }
        }
        ox += 1u;
        if ox == p.out_width {
            ox = 0u;
            oy += 1u;
            if oy == p.out_height {
                oy = 0u;
                n += 1u;
            }
        }
    }

    let split_base = split * p.out_channels * k_total;
    for (var c = 0u; c < CO_B; c++) {
        if co0 + c >= p.out_channels {
            break;
        }
        for (var j = 0u; j < K_B; j++) {
            if k0 + j >= k_total {
                break;
            }
            partials[split_base + (co0 + c) * k_total + k0 + j] = acc[c * K_B + j];
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_weight_grad_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation_index(wid, nwg, lid);
    let weights = p.out_channels * p.in_channels * p.kernel_h * p.kernel_w;
    if i >= weights {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        sum += partials[s * weights + i];
    }
    if ACCUMULATE {
        sum += dw[i];
    }
    dw[i] = sum;
}

var<workgroup> bias_sums: array<f32, BIAS_WG>;

@compute @workgroup_size(BIAS_WG)
fn conv2d_bias_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform per workgroup, so the early return keeps the barriers below in uniform control flow.
    let co = wid.x + wid.y * nwg.x;
    if co >= p.out_channels {
        return;
    }
    let out_plane = p.out_height * p.out_width;
    var sum = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        let base = (n * p.out_channels + co) * out_plane;
        for (var r = lid; r < out_plane; r += BIAS_WG) {
            sum += dy[base + r];
        }
    }
    bias_sums[lid] = sum;
    for (var span = BIAS_WG / 2u; span > 0u; span /= 2u) {
        workgroupBarrier();
        if lid < span {
            bias_sums[lid] += bias_sums[lid + span];
        }
    }
    if lid == 0u {
        db[co] = bias_sums[0];
    }
}
