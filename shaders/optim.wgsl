// optim.wgsl — fused optimizer updates, one dispatch per parameter tensor, and the max-norm
// constraint on each unit's incoming weights.
//
// All buffers are f32, flat, n elements, the same row-major shape as the parameter.
// Binding numbers are unique across the file; each entry point uses only its own subset
// (sgd: 0,1,2,3; adam: 0,1,2,4,5; max_norm: 0,6), so a layout derived per entry fits.
//
// Entry `sgd` — SGD with momentum, optional Nesterov, L2 weight decay added to the gradient:
//   g = grad[i] + weight_decay * p
//   v = momentum * v + g
//   p -= lr * (NESTEROV ? g + momentum * v : v)
//   (momentum = 0 gives plain SGD; v then just holds the last gradient.)
//   @binding(0) param    : array<f32>, read_write   n
//   @binding(1) grad     : array<f32>, read         n
//   @binding(2) velocity : array<f32>, read_write   n  (zero before the first step)
//   @binding(3) params   : uniform SgdParams { n: u32, lr: f32, momentum: f32, weight_decay: f32 }
//   Overrides: WG (default 256), NESTEROV (bool, default false).
//
// Entry `adam` — Adam / AdamW with bias correction:
//   g = grad[i] + (DECOUPLED ? 0 : weight_decay * p)            (Adam: L2 in the gradient)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   m_hat = m * inv_bias_correction1,  v_hat = v * inv_bias_correction2
//   p -= lr * (m_hat / (sqrt(v_hat) + eps) + (DECOUPLED ? weight_decay * p : 0))   (AdamW)
//   where inv_bias_correction1 = 1 / (1 - beta1^t), inv_bias_correction2 = 1 / (1 - beta2^t)
//   for the 1-based step t, computed by the host (the kernel needs no pow).
//   @binding(0) param  : array<f32>, read_write   n
//   @binding(1) grad   : array<f32>, read         n
//   @binding(2) m      : array<f32>, read_write   n  (first moment, zero before step 1)
//   @binding(4) v      : array<f32>, read_write   n  (second moment, zero before step 1)
//   @binding(5) params : uniform AdamParams { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32,
//                        weight_decay: f32, inv_bias_correction1: f32, inv_bias_correction2: f32 }
//   Overrides: WG (default 256), DECOUPLED (bool, default false; true = AdamW).
//
// sgd/adam dispatch: ceil(n / WG) workgroups, as a 2-D grid when that exceeds 65535:
//   x = min(groups, 65535), y = ceil(groups / x); index = (wid.x + wid.y * nwg.x) * WG + lid.
//
// Entry `max_norm` — for a weight viewed as [rows, cols] (linear [out, in], or conv
// [out, in, kh, kw] as [out, in*kh*kw]), every row whose L2 norm exceeds max_norm is scaled
// to norm max_norm; rows within the bound are not written at all (they stay bit-identical).
//   @binding(0) weight : array<f32>, read_write   [rows, cols]
//   @binding(6) params : uniform MaxNormParams { rows: u32, cols: u32, max_norm: f32 }
//   Dispatch: one workgroup per row, `rows` workgroups as a 2-D grid like above
//             (row = wid.x + wid.y * nwg.x). Sum of squares accumulated in f32.
//   Overrides: NORM_WG (workgroup size, a power of two <= 256, default 64).

override WG: u32 = 256u;
override NESTEROV: bool = false;
override DECOUPLED: bool = false;
override NORM_WG: u32 = 64u;

struct SgdParams {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

struct AdamParams {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    inv_bias_correction1: f32,
    inv_bias_correction2: f32,
}

struct MaxNormParams {
    rows: u32,
    cols: u32,
    max_norm: f32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> first_state: array<f32>;  // sgd: velocity, adam: m
@group(0) @binding(3) var<uniform> sgd_params: SgdParams;
@group(0) @binding(4) var<storage, read_write> second_moment: array<f32>;  // adam: v
@group(0) @binding(5) var<uniform> adam_params: AdamParams;
@group(0) @binding(6) var<uniform> norm_params: MaxNormParams;

fn element_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn sgd(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i >= sgd_params.n {
        return;
    }
    let p = param[i];
    let g = grad[i] + sgd_params.weight_decay * p;
    let v = sgd_params.momentum * first_state[i] + g;
    first_state[i] = v;
    var direction = v;
    if NESTEROV {
        direction = g + sgd_params.momentum * v;
    }
    param[i] = p - sgd_params.lr * direction;
}

@compute @workgroup_size(WG)
fn adam(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i >= adam_params.n {
        return;
    }
    let p = param[i];
    var g = grad[i];
    if !DECOUPLED {
        g += adam_params.weight_decay * p;
    }
    let m = adam_params.beta1 * first_state[i] + (1.0 - adam_params.beta1) * g;
    let v = adam_params.beta2 * second_moment[i] + (1.0 - adam_params.beta2) * g * g;
    first_state[i] = m;
    second_moment[i] = v;
    let m_hat = m * adam_params.inv_bias_correction1;
    let v_hat = v * adam_params.inv_bias_correction2;
    var update = m_hat / (sqrt(v_hat) + adam_params.eps);
    if DECOUPLED {
        update += adam_params.weight_decay * p;
    }
    param[i] = p - adam_params.lr * update;
}

var<workgroup> row_partial: array<f32, 256>;

@compute @workgroup_size(NORM_WG)
fn max_norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // `row` is uniform across the workgroup, so the early exit keeps barriers uniform.
    let row = wid.x + wid.y * nwg.x;
    if row >= norm_params.rows {
        return;
    }
    let cols = norm_params.cols;
    let base = row * cols;
    var sum_sq = 0.0;
    for (var c = lid; c < cols; c += NORM_WG) {
        let w = param[base + c];
        sum_sq += w * w;
    }
    row_partial[lid] = sum_sq;
    workgroupBarrier();
    for (var width = NORM_WG / 2u; width > 0u; width /= 2u) {
        if lid < width {
            row_partial[lid] += row_partial[lid + width];
        }
        workgroupBarrier();
    }
    let norm = sqrt(row_partial[0]);
    if norm > norm_params.max_norm {
        let scale = norm_params.max_norm / norm;
        for (var c = lid; c < cols; c += NORM_WG) {
            param[base + c] *= scale;
        }
    }
}
