// softmax.wgsl — row-wise softmax / log-softmax with a temperature, and row-wise argmax.
//
// Computes, for every row r of x [rows, cols] (row-major) and temperature T > 0:
//   softmax_rows (LOG_OUTPUT = false): out[r, j] = exp((x[r, j] - m_r) / T) / s_r
//   softmax_rows (LOG_OUTPUT = true):  out[r, j] = (x[r, j] - m_r) / T - log(s_r)
//     where m_r = max_j x[r, j] and s_r = sum_j exp((x[r, j] - m_r) / T) (>= 1, so log is safe).
//     The max is subtracted before exp(), so no exp() of a positive number: stable for any
//     finite logits and temperature. One read for (m, s) with an online update, one to write.
//   argmax_rows: indices[r] = the first j with x[r, j] == max_j x[r, j] (rows with
//     NaNs give an unspecified index: WGSL implementations may assume floats are never NaN).
// Bindings (group 0):
//   @binding(0) x       : array<f32>, read        [rows, cols]
//   @binding(1) out     : array<f32>, read_write  [rows, cols]   (softmax_rows only; must not alias x)
//   @binding(2) indices : array<u32>, read_write  [rows]         (argmax_rows only)
//   @binding(3) params  : uniform SoftmaxParams { rows: u32, cols: u32, temperature: f32, pad: u32 }
// Dispatch: a workgroup of WG invocations handles WG / ROW_THREADS consecutive rows with
//   ROW_THREADS invocations per row (strided over the columns, then a tree merge in workgroup
//   memory). ceil(rows / (WG / ROW_THREADS)) workgroups, as a 2-D grid when that exceeds 65535:
//   x = min(groups, 65535), y = ceil(groups / x); group index = wid.x + wid.y * nwg.x.
// Overrides: WG (workgroup size, default 64); ROW_THREADS (power of two dividing WG, default 1:
//   one invocation per row and no barriers, best for short rows and CPU rasterizers; 32-64 for
//   long rows on GPUs); LOG_OUTPUT (bool, default false).

override WG: u32 = 64u;
override ROW_THREADS: u32 = 1u;
override LOG_OUTPUT: bool = false;

struct SoftmaxParams {
    rows: u32,
    cols: u32,
    temperature: f32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<u32>;
@group(0) @binding(3) var<uniform> params: SoftmaxParams;

// Running max and sum of exp((x - max) / T) over part of a row; count == 0 means empty.
struct SumState {
    max_x: f32,
    sum: f32,
    count: u32,
}

// Running max and its first index over part of a row; count == 0 means empty.
struct MaxState {
    max_x: f32,
    index: u32,
    count: u32,
}

var<workgroup> sum_partials: array<SumState, WG>;
var<workgroup> max_partials: array<MaxState, WG>;

fn merge_sums(a: SumState, b: SumState, inv_t: f32) -> SumState {
    if b.count == 0u {
        return a;
    }
    if a.count == 0u {
        return b;
    }
    let m = max(a.max_x, b.max_x);
    let s = a.sum * exp((a.max_x - m) * inv_t) + b.sum * exp((b.max_x - m) * inv_t);
    return SumState(m, s, a.count + b.count);
}

fn merge_maxes(a: MaxState, b: MaxState) -> MaxState {
    if b.count == 0u {
        return a;
    }
    if a.count == 0u {
        return b;
    }
    let take_b = b.max_x > a.max_x || (b.max_x == a.max_x && b.index < a.index);
    return MaxState(
        select(a.max_x, b.max_x, take_b),
        select(a.index, b.index, take_b),
        a.count + b.count,
    );
}

@compute @workgroup_size(WG)
fn softmax_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let lane = lid % ROW_THREADS;
    let row = (wid.x + wid.y * nwg.x) * (WG / ROW_THREADS) + lid / ROW_THREADS;
    let cols = params.cols;
    let base = row * cols;
    let inv_t = 1.0 / params.temperature;

    var state = SumState(0.0, 0.0, 0u);
    if row < params.rows && lane < cols {
        state = SumState(x[base + lane], 1.0, 1u);
        for (var j = lane + ROW_THREADS; j < cols; j += ROW_THREADS) {
            let v = x[base + j];
            if v > state.max_x {
                state.sum = state.sum * exp((state.max_x - v) * inv_t) + 1.0;
                state.max_x = v;
            } else {
                state.sum += exp((v - state.max_x) * inv_t);
            }
            state.count += 1u;
        }
    }
    if ROW_THREADS > 1u {
        sum_partials[lid] = state;
        for (var stride = ROW_THREADS / 2u; stride > 0u; stride >>= 1u) {
            workgroupBarrier();
            if lane < stride {
                sum_partials[lid] = merge_sums(sum_partials[lid], sum_partials[lid + stride], inv_t);
            }
        }
        workgroupBarrier();
        state = sum_partials[lid - lane];
    }
    if row >= params.rows {
        return;
    }
    let log_sum = log(state.sum);
    let inv_sum = 1.0 / state.sum;
    for (var j = lane; j < cols; j += ROW_THREADS) {
        let shifted = (x[base + j] - state.max_x) * inv_t;
        if LOG_OUTPUT {
            out[base + j] = shifted - log_sum;
        } else {
            out[base + j] = exp(shifted) * inv_sum;
        }
    }
}

@compute @workgroup_size(WG)
fn argmax_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let lane = lid % ROW_THREADS;
    let row = (wid.x + wid.y * nwg.x) * (WG / ROW_THREADS) + lid / ROW_THREADS;
    let cols = params.cols;
    let base = row * cols;

    var state = MaxState(0.0, 0u, 0u);
    if row < params.rows {
        for (var j = lane; j < cols; j += ROW_THREADS) {
            let v = x[base + j];
            if state.count == 0u || v > state.max_x {
                state.max_x = v;
                state.index = j;
            }
            state.count += 1u;
        }
    }
    if ROW_THREADS > 1u {
        max_partials[lid] = state;
        for (var stride = ROW_THREADS / 2u; stride > 0u; stride >>= 1u) {
            workgroupBarrier();
            if lane < stride {
                max_partials[lid] = merge_maxes(max_partials[lid], max_partials[lid + stride]);
            }
        }
        workgroupBarrier();
        state = max_partials[lid - lane];
    }
    if row < params.rows && lane == 0u {
        indices[row] = state.index;
    }
}
