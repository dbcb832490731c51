// distill_loss.wgsl — knowledge-distillation loss (Hinton et al. 2015): forward, backward and
// batch statistics fused into one kernel; plus the same loss split into simple kernels.
//
// Computes, for each row r of student logits z [rows, cols], teacher logits t [rows, cols],
// label y = labels[r], temperature T > 0, weight alpha in [0, 1], label smoothing eps in
// [0, 1), C = cols, B = rows:
//   p = softmax(t / T),  q = softmax(z / T),  q1 = softmax(z)
//   h = (1 - eps) * onehot(y) + eps / C              (smoothed hard target; eps = 0: onehot)
//   loss_r = alpha * T^2 * CE(p, q) + (1 - alpha) * CE(h, q1)
//          = alpha * T^2 * (-sum_j p_j log q_j) + (1 - alpha) * (-sum_j h_j log q1_j)
//     CE(p, q) = KL(p || q) + H(p): the value includes the teacher's entropy (constant for
//     the student, so the gradient is that of the KL divergence).
//   grad[r, j] = d(sum_r loss_r / B) / dz[r, j]
//              = (alpha * T * (q_j - p_j) + (1 - alpha) * (q1_j - h_j)) / B
//   stats: three sums (k = 0 loss, 1 hard, 2 soft) as 64-bit unsigned fixed point in two words
//   each (stats[2k] = lo, stats[2k + 1] = hi; sum = (hi * 2^32 + lo) / 2^16), two counts and
//   a flag word:
//   sum 0 (stats[0..2]) += sum_r loss_r
//   sum 1 (stats[2..4]) += sum_r -log q1_y     (the plain hard-label NLL at T = 1, without
//                                               smoothing or weights)
//   sum 2 (stats[4..6]) += sum_r KL(p || q)    (at T, without weights; 0 when the student
//                                               matches the teacher; not added when
//                                               HAS_TEACHER = false)
//     KL(p || q) = sum_j p_j (log p_j - log q_j) with both log-softmaxes max-subtracted,
//     0 log 0 = 0; a row's value is clamped at 0 against rounding.
//   stats[6] += #{r : argmax_j z[r, j] == y}   (first index of the max)
//   stats[7] += B
//   stats[8] |= 1 << k when a row's f32 value for sum k is not finite, below -2^-10 or above
//               2^24 (that row is then left out of sum k), or when sum k passes 2^48; sum k
//               is then not usable.
//   Each row's value is rounded to the nearest multiple of 2^-16 (ties to even; values in
//   [-2^-10, 0), rounding of terms that are >= 0, count as 0) and added with integer atomics
//   (the lo word, then the carry into the hi word), so the sums are exact and do not depend
//   on the order in which rows are added: the same inputs give the same stats words.
// Labels >= cols are clamped to cols - 1 for the hard-label terms and never count as correct.
// Stability: every exp() takes (x - row max) / T <= 0; every log() takes a sum >= 1; log q is
// formed as (z - max) / T - log(sum), so |logits| up to 1e4 and T in [0.5, 100] stay finite.
//
// Bindings (group 0):
//   @binding(0) student  : array<f32>, read        [rows, cols]
//   @binding(1) teacher  : array<f32>, read        [rows, cols]  (unused when HAS_TEACHER = false;
//                                                     bind the student buffer there)
//   @binding(2) labels   : array<u32>, read        [rows]
//   @binding(3) grad     : array<f32>, read_write  [rows, cols]  (must not alias any other binding)
//   @binding(4) stats    : array<atomic<u32>>, read_write [9]: loss lo, loss hi, hard lo, hard hi,
//                          soft lo, soft hi, correct, count, flags (see above; zero it to start)
//   @binding(5) params   : uniform DistillParams { rows: u32, cols: u32, temperature: f32,
//                          alpha: f32, label_smoothing: f32, pad0: u32, pad1: u32, pad2: u32 }
//   Unfused entry points only:
//   @binding(6) log_q1   : array<f32>, read        [rows, cols]  log softmax(z)
//   @binding(7) row_loss : array<f32>, read_write  [rows, cols]  per-element loss terms
//   @binding(8) argmax   : array<u32>, read        [rows]        argmax_j z[r, j]
//
// Entry points and dispatch (2-D grids: when groups exceed 65535, x = min(groups, 65535),
// y = ceil(groups / x), group index = wid.x + wid.y * nwg.x):
//   distill_loss (fused; bindings 0-5): a workgroup of WG invocations handles WG / ROW_THREADS
//     consecutive rows, ROW_THREADS invocations per row. Each row is read once to build the
//     three softmax normalisers, the teacher-weighted cross term and the argmax online, then
//     once more to write the gradient. ceil(rows / (WG / ROW_THREADS)) workgroups.
//   distill_terms (unfused step 2 of 3; bindings 1 = log p, 0 = log q, 6, 2, 3, 7, 5): one
//     invocation per element, writes grad and row_loss from log-softmaxes computed by
//     softmax.wgsl. ceil(rows * cols / WG) workgroups.
//   distill_stats (unfused step 3 of 3; bindings 7, 8, 2, 4, 5, 6 and 1 = log p, 0 = log q):
//     one invocation per row sums row_loss, the KL terms and -log q1_y and counts
//     argmax == label. ceil(rows / WG) workgroups.
// Overrides: WG (workgroup size, default 64); ROW_THREADS (power of two dividing WG, default 1:
//   one invocation per row and no barriers, best for short rows and CPU rasterizers; 32-64
//   for long rows on GPUs); HAS_TEACHER (bool, default true; false = hard labels only, alpha = 0).

override WG: u32 = 64u;
override ROW_THREADS: u32 = 1u;
override HAS_TEACHER: bool = true;

struct DistillParams {
    rows: u32,
    cols: u32,
    temperature: f32,
    alpha: f32,
    label_smoothing: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> student: array<f32>;
@group(0) @binding(1) var<storage, read> teacher: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<atomic<u32>>;
@group(0) @binding(5) var<uniform> params: DistillParams;
@group(0) @binding(6) var<storage, read> log_q1: array<f32>;
@group(0) @binding(7) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(8) var<storage, read> argmax: array<u32>;

// Online statistics of part of a row. With m = max z, mt = max t, w = exp((t - mt) / T):
//   sum_soft = sum exp((z - m) / T), sum_hard = sum exp(z - m), sum_teacher = sum w,
//   cross = sum w (z - m) / T, so that CE(p, q) = log(sum_soft) - cross / sum_teacher;
//   gap = sum w ((t - mt) - (z - m)) / T, so that
//     KL(p || q) = gap / sum_teacher + log(sum_soft) - log(sum_teacher);
//   centred = sum (z - m), so that sum_j log q1_j = centred - C log(sum_hard) (smoothing).
// Keeping cross, gap and centred relative to the maxima (not to 0) avoids cancelling two
// numbers of size |z| / T; gap is exactly 0 where z = t.
struct RowState {
    max_z: f32,
    argmax: u32,
    sum_soft: f32,
    sum_hard: f32,
    max_t: f32,
    sum_teacher: f32,
    cross: f32,
    gap: f32,
    centred: f32,
    count: u32,
}

var<workgroup> partials: array<RowState, WG>;

fn teacher_logit(i: u32) -> f32 {
    if HAS_TEACHER {
        return teacher[i];
    }
    return student[i];
}

// The first element of a row part.
fn first_state(z: f32, t: f32, j: u32) -> RowState {
    return RowState(z, j, 1.0, 1.0, t, 1.0, 0.0, 0.0, 0.0, 1u);
}

// Add element j (student z, teacher t) to a non-empty state. `moved` is how far the student
// max moves (<= 0); the gap update takes the difference of both moves first, so it stays
// exactly 0 where z = t.
fn push(state: RowState, z: f32, t: f32, j: u32, inv_t: f32) -> RowState {
    var s = state;
    var moved = 0.0;
    if z > s.max_z {
        moved = s.max_z - z;
        s.sum_soft = s.sum_soft * exp(moved * inv_t) + 1.0;
        s.sum_hard = s.sum_hard * exp(moved) + 1.0;
        s.cross += s.sum_teacher * moved * inv_t;
        s.centred += f32(s.count) * moved;
        s.max_z = z;
        s.argmax = j;
    } else {
        let shift = z - s.max_z;
        s.sum_soft += exp(shift * inv_t);
        s.sum_hard += exp(shift);
        s.centred += shift;
    }
    let z_shift = z - s.max_z;
    if t > s.max_t {
        let t_moved = s.max_t - t;
        let scale = exp(t_moved * inv_t);
        s.cross = s.cross * scale + z_shift * inv_t;
        s.gap = (s.gap + s.sum_teacher * (t_moved - moved) * inv_t) * scale - z_shift * inv_t;
        s.sum_teacher = s.sum_teacher * scale + 1.0;
        s.max_t = t;
    } else {
        let t_shift = t - s.max_t;
        let weight = exp(t_shift * inv_t);
        s.cross += weight * z_shift * inv_t;
        s.gap += weight * (t_shift - z_shift) * inv_t - s.sum_teacher * moved * inv_t;
        s.sum_teacher += weight;
    }
    s.count += 1u;
    return s;
}

fn merge(a: RowState, b: RowState, inv_t: f32) -> RowState {
    if b.count == 0u {
        return a;
    }
    if a.count == 0u {
        return b;
    }
    var s: RowState;
    s.max_z = max(a.max_z, b.max_z);
    let take_b = b.max_z > a.max_z || (b.max_z == a.max_z && b.argmax < a.argmax);
    s.argmax = select(a.argmax, b.argmax, take_b);
    let shift_a = a.max_z - s.max_z;
    let shift_b = b.max_z - s.max_z;
    s.sum_soft = a.sum_soft * exp(shift_a * inv_t) + b.sum_soft * exp(shift_b * inv_t);
    s.sum_hard = a.sum_hard * exp(shift_a) + b.sum_hard * exp(shift_b);
    s.centred = a.centred + f32(a.count) * shift_a + b.centred + f32(b.count) * shift_b;
    s.max_t = max(a.max_t, b.max_t);
    let t_shift_a = a.max_t - s.max_t;
    let t_shift_b = b.max_t - s.max_t;
    let scale_a = exp(t_shift_a * inv_t);
    let scale_b = exp(t_shift_b * inv_t);
    s.sum_teacher = a.sum_teacher * scale_a + b.sum_teacher * scale_b;
    s.cross = (a.cross + a.sum_teacher * shift_a * inv_t) * scale_a
        + (b.cross + b.sum_teacher * shift_b * inv_t) * scale_b;
    s.gap = (a.gap + a.sum_teacher * (t_shift_a - shift_a) * inv_t) * scale_a
        + (b.gap + b.sum_teacher * (t_shift_b - shift_b) * inv_t) * scale_b;
    s.count = a.count + b.count;
    return s;
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

// Correct count and example count of one row (the count once per dispatch, by row 0).
fn count_row(row: u32, prediction: u32) {
    let label = labels[row];
    if label < params.cols && prediction == label {
        atomicAdd(&stats[6], 1u);
    }
    if row == 0u {
        atomicAdd(&stats[7], params.rows);
    }
}

@compute @workgroup_size(WG)
fn distill_loss(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let lane = lid % ROW_THREADS;
    let row = (wid.x + wid.y * nwg.x) * (WG / ROW_THREADS) + lid / ROW_THREADS;
    let cols = params.cols;
    let base = row * cols;
    let temperature = params.temperature;
    let inv_t = 1.0 / temperature;

    var state: RowState;
    state.count = 0u;
    if row < params.rows && lane < cols {
        let z = student[base + lane];
        state = first_state(z, teacher_logit(base + lane), lane);
        for (var j = lane + ROW_THREADS; j < cols; j += ROW_THREADS) {
            state = push(state, student[base + j], teacher_logit(base + j), j, inv_t);
        }
    }
    if ROW_THREADS > 1u {
        partials[lid] = state;
        for (var stride = ROW_THREADS / 2u; stride > 0u; stride >>= 1u) {
            workgroupBarrier();
            if lane < stride {
                partials[lid] = merge(partials[lid], partials[lid + stride], inv_t);
            }
        }
        workgroupBarrier();
        state = partials[lid - lane];
    }
    if row >= params.rows {
        return;
    }

    let alpha = params.alpha;
    let label = min(labels[row], cols - 1u);
    let smoothing = params.label_smoothing;
    let spread = smoothing / f32(cols);
    let inv_batch = 1.0 / f32(params.rows);
    let soft_weight = alpha * temperature * inv_batch;
    let hard_weight = (1.0 - alpha) * inv_batch;
    let inv_soft = 1.0 / state.sum_soft;
    let inv_hard = 1.0 / state.sum_hard;
    let inv_teacher = 1.0 / state.sum_teacher;
    for (var j = lane; j < cols; j += ROW_THREADS) {
        let shift = student[base + j] - state.max_z;
        let q = exp(shift * inv_t) * inv_soft;
        let p = exp((teacher_logit(base + j) - state.max_t) * inv_t) * inv_teacher;
        let q1 = exp(shift) * inv_hard;
        let hard_target = select(0.0, 1.0 - smoothing, j == label) + spread;
        grad[base + j] = soft_weight * (q - p) + hard_weight * (q1 - hard_target);
    }

    if lane == 0u {
        let log_soft = log(state.sum_soft);
        let log_hard = log(state.sum_hard);
        let soft_ce = log_soft - state.cross * inv_teacher;
        let label_shift = student[base + label] - state.max_z;
        let hard_nll = log_hard - label_shift;
        let smoothed_ce = log_hard - (1.0 - smoothing) * label_shift - spread * state.centred;
        add_fixed(0u, alpha * temperature * temperature * soft_ce + (1.0 - alpha) * smoothed_ce);
        add_fixed(1u, hard_nll);
        if HAS_TEACHER {
            let kl = state.gap * inv_teacher + log_soft - log(state.sum_teacher);
            add_fixed(2u, max(kl, 0.0));
        }
        count_row(row, state.argmax);
    }
}

// Unfused step 2: elementwise gradient and loss terms from log p (binding 1), log q (binding 0)
// and log q1 (binding 6).
@compute @workgroup_size(WG)
fn distill_terms(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let cols = params.cols;
    if i >= params.rows * cols {
        return;
    }
    let row = i / cols;
    let j = i - row * cols;
    let label = min(labels[row], cols - 1u);
    let temperature = params.temperature;
    let alpha = params.alpha;
    let smoothing = params.label_smoothing;
    let inv_batch = 1.0 / f32(params.rows);
    let log_p = teacher[i];
    let log_q = student[i];
    let p = exp(log_p);
    let hard_target = select(0.0, 1.0 - smoothing, j == label) + smoothing / f32(cols);
    // -hard_target * log_q1 without 0 * (-inf) when a probability underflows.
    let hard_term = select(0.0, -hard_target * log_q1[i], hard_target > 0.0);
    grad[i] = (alpha * temperature * (exp(log_q) - p)
        + (1.0 - alpha) * (exp(log_q1[i]) - hard_target)) * inv_batch;
    row_loss[i] = alpha * temperature * temperature * (-p * log_q) + (1.0 - alpha) * hard_term;
}

// Unfused step 3: per-row loss sums, hard NLL, KL(p || q) and correct counts into the stats.
@compute @workgroup_size(WG)
fn distill_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wid.x + wid.y * nwg.x) * WG + lid;
    if row >= params.rows {
        return;
    }
    let cols = params.cols;
    let base = row * cols;
    var total = 0.0;
    var kl = 0.0;
    for (var j = 0u; j < cols; j += 1u) {
        total += row_loss[base + j];
        let log_p = teacher[base + j];
        let p = exp(log_p);
        kl += select(0.0, p * (log_p - student[base + j]), p > 0.0);
    }
    add_fixed(0u, total);
    add_fixed(1u, -log_q1[base + min(labels[row], cols - 1u)]);
    add_fixed(2u, max(kl, 0.0));
    count_row(row, argmax[row]);
}
