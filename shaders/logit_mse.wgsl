// logit_mse.wgsl — logit matching (Ba & Caruana 2014): L2 regression of student logits onto
// teacher logits, with gradient and batch statistics in one kernel.
//
// Computes, for each row r of student logits z [rows, cols], teacher logits t [rows, cols],
// label y = labels[r], B = rows, C = cols:
//   loss_r     = (1 / C) * sum_j (z[r, j] - t[r, j])^2
//   grad[r, j] = d(sum_r loss_r / B) / dz[r, j] = 2 (z[r, j] - t[r, j]) / (C * B)
//   stats: three sums (k = 0 loss, 1 hard, 2 soft) as 64-bit unsigned fixed point in two words
//   each (stats[2k] = lo, stats[2k + 1] = hi; sum = (hi * 2^32 + lo) / 2^16), two counts and
//   a flag word:
//   sum 0 (stats[0..2]) += sum_r loss_r
//   sum 1 (stats[2..4]) += sum_r -log softmax(z[r])_y  (the hard-label NLL, reported only: no
//                                                       gradient; labels >= C clamped to C - 1)
//   sum 2 (stats[4..6]) += sum_r loss_r                (the soft term is the MSE itself)
//   stats[6] += #{r : argmax_j z[r, j] == y}   (first index of the max; labels >= C never count)
//   stats[7] += B
//   stats[8] |= 1 << k when a row's f32 value for sum k is not finite, below -2^-10 or above
//               2^24 (that row is then left out of sum k), or when sum k passes 2^48; sum k
//               is then not usable.
//   Each row's value is rounded to the nearest multiple of 2^-16 (ties to even; values in
//   [-2^-10, 0), rounding of terms that are >= 0, count as 0) and added with integer atomics
//   (the lo word, then the carry into the hi word), so the sums are exact and do not depend
//   on the order in which rows are added: the same inputs give the same stats words.
//   The NLL subtracts the row max before exp(), so every exp() takes a value <= 0.
// Bindings (group 0):
//   @binding(0) student : array<f32>, read        [rows, cols]
//   @binding(1) teacher : array<f32>, read        [rows, cols]
//   @binding(2) labels  : array<u32>, read        [rows]
//   @binding(3) grad    : array<f32>, read_write  [rows, cols]  (must not alias any other binding)
//   @binding(4) stats   : array<atomic<u32>>, read_write [9]: loss lo, loss hi, hard lo, hard hi,
//                         soft lo, soft hi, correct, count, flags (see above; zero it to start)
//   @binding(5) params  : uniform MseParams { rows: u32, cols: u32, pad0: u32, pad1: u32 }
// Dispatch: a workgroup of WG invocations handles WG / ROW_THREADS consecutive rows with
//   ROW_THREADS invocations per row (one read of each row, then a tree merge in workgroup
//   memory). ceil(rows / (WG / ROW_THREADS)) workgroups, as a 2-D grid when that exceeds 65535:
//   x = min(groups, 65535), y = ceil(groups / x); group index = wid.x + wid.y * nwg.x.
// Overrides: WG (workgroup size, default 64); ROW_THREADS (power of two dividing WG, default 1:
//   one invocation per row and no barriers; 32-64 for long rows on GPUs).

override WG: u32 = 64u;
override ROW_THREADS: u32 = 1u;

struct MseParams {
    rows: u32,
    cols: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> student: array<f32>;
@group(0) @binding(1) var<storage, read> teacher: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<atomic<u32>>;
@group(0) @binding(5) var<uniform> params: MseParams;

// Squared-error sum, student argmax and sum_hard = sum exp(z - max_z) over part of a row;
// count == 0 means empty.
struct RowState {
    squares: f32,
    max_z: f32,
    argmax: u32,
    count: u32,
    sum_hard: f32,
}

var<workgroup> partials: array<RowState, WG>;

fn merge(a: RowState, b: RowState) -> RowState {
    if b.count == 0u {
        return a;
    }
    if a.count == 0u {
        return b;
    }
    let take_b = b.max_z > a.max_z || (b.max_z == a.max_z && b.argmax < a.argmax);
    let max_z = max(a.max_z, b.max_z);
    return RowState(
        a.squares + b.squares,
        max_z,
        select(a.argmax, b.argmax, take_b),
        a.count + b.count,
        a.sum_hard * exp(a.max_z - max_z) + b.sum_hard * exp(b.max_z - max_z),
    );
}

// The fixed-point sums (see the header): 16 fraction bits, a row adds at most 2^24, values
// down to -2^-10 count as 0. The limits are f32 bits: non-negative floats order like their
// bits, and integer compares also catch NaN and inf whatever the compiler assumes of floats.
const SUM_FRACTION_BITS: i32 = 16;
const ROW_LIMIT_BITS: u32 = 0x4b800000u; // 2^24
const NEGATIVE_SLACK_BITS: u32 = 0x3a800000u; // 2^-10
const FLAGS_WORD: u32 = 8u;

// Sum k (words 2k = lo, 2k + 1 = hi) += value in fixed point, or bit k of the flag word set
// when the value is out of range or the sum passes 2^48.
fn add_fixed(k: u32, value: f32) {
    let bits = bitcast<u32>(value);
    let magnitude = bits & 0x7fffffffu;
    let negative = bits != magnitude;
    if (negative && magnitude > NEGATIVE_SLACK_BITS) || (!negative && bits > ROW_LIMIT_BITS) {
        atomicOr(&stats[FLAGS_WORD], 1u << k);
        return;
    }
    // All exact: scaling by powers of two, and scaled - hi * 2^32 fits the f32 significand.
    let scaled = round(ldexp(select(value, 0.0, negative), SUM_FRACTION_BITS));
    let hi = floor(ldexp(scaled, -32));
    let lo = u32(scaled - ldexp(hi, 32));
    let old_lo = atomicAdd(&stats[2u * k], lo);
    let add_hi = u32(hi) + select(0u, 1u, old_lo + lo < old_lo);
    if add_hi != 0u {
        let old_hi = atomicAdd(&stats[2u * k + 1u], add_hi);
        if old_hi + add_hi < old_hi {
            atomicOr(&stats[FLAGS_WORD], 1u << k);
        }
    }
}

@compute @workgroup_size(WG)
fn logit_mse(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let lane = lid % ROW_THREADS;
    let row = (wid.x + wid.y * nwg.x) * (WG / ROW_THREADS) + lid / ROW_THREADS;
    let cols = params.cols;
    let base = row * cols;
    let grad_scale = 2.0 / (f32(cols) * f32(params.rows));

    var state = RowState(0.0, 0.0, 0u, 0u, 0.0);
    if row < params.rows {
        for (var j = lane; j < cols; j += ROW_THREADS) {
            let z = student[base + j];
            let diff = z - teacher[base + j];
            grad[base + j] = grad_scale * diff;
            state.squares += diff * diff;
            if state.count == 0u {
                state.max_z = z;
                state.argmax = j;
                state.sum_hard = 1.0;
            } else if z > state.max_z {
                state.sum_hard = state.sum_hard * exp(state.max_z - z) + 1.0;
                state.max_z = z;
                state.argmax = j;
            } else {
                state.sum_hard += exp(z - state.max_z);
            }
            state.count += 1u;
        }
    }
    if ROW_THREADS > 1u {
        partials[lid] = state;
        for (var stride = ROW_THREADS / 2u; stride > 0u; stride >>= 1u) {
            workgroupBarrier();
            if lane < stride {
                partials[lid] = merge(partials[lid], partials[lid + stride]);
            }
        }
        workgroupBarrier();
        state = partials[lid - lane];
    }
    if row >= params.rows || lane != 0u {
        return;
    }
    let loss = state.squares / f32(cols);
    let label = min(labels[row], cols - 1u);
    add_fixed(0u, loss);
    add_fixed(1u, log(state.sum_hard) - (student[base + label] - state.max_z));
    add_fixed(2u, loss);
    if labels[row] < cols && state.argmax == labels[row] {
        atomicAdd(&stats[6], 1u);
    }
    if row == 0u {
        atomicAdd(&stats[7], params.rows);
    }
}
