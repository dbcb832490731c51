// reduce.wgsl — sums over f32 buffers: column sums of a matrix (bias gradients) and the sum
// or mean of all elements (two passes for long inputs).
//
// Binding numbers are unique across the file; each entry point uses only its own subset
// (column_sum: 0,1,2; sum: 0,1,3), so a layout derived per entry fits.
//
// Entry `column_sum` — out[c] = (ACCUMULATE ? out[c] : 0) + sum_r x[r, c]:
//   @binding(0) x      : array<f32>, read         [rows, cols] row-major
//   @binding(1) out    : array<f32>, read_write   [cols]
//   @binding(2) params : uniform ColumnSumParams { rows: u32, cols: u32 }
//   Workgroup (COL_WG, ROW_SLICES): COL_WG adjacent columns (coalesced reads along a row) times
//   ROW_SLICES interleaved row slices; slice s sums rows s, s + ROW_SLICES, ..., then the
//   slices are added in workgroup memory. COL_WG * ROW_SLICES must be <= 256.
//   Dispatch: ceil(cols / COL_WG) workgroups, as a 2-D grid when that exceeds 65535:
//             x = min(groups, 65535), y = ceil(groups / x); group = wid.x + wid.y * nwg.x.
//   Overrides: COL_WG (default 64), ROW_SLICES (default 4), ACCUMULATE (bool, default false).
//
// Entry `sum` — one pass of a tree reduction: workgroup g writes
//   out[g] = (sum of x[i] for i = g*SUM_WG + lid + k*groups*SUM_WG, i < n) / divisor
//   @binding(0) x      : array<f32>, read         n
//   @binding(1) out    : array<f32>, read_write   groups (>= 1)
//   @binding(3) params : uniform SumParams { n: u32, groups: u32, divisor: f32 }
//   Dispatch: `groups` workgroups in x (groups <= 65535).
//   A long input takes two passes: (1) `groups` workgroups write `groups` partial sums with
//   divisor 1, (2) one workgroup reduces the partials into out[0] with divisor 1 for the sum
//   or the element count for the mean. A short input takes pass (2) alone on x.
//   Overrides: SUM_WG (power of two <= 256, default 256).

override COL_WG: u32 = 64u;
override ROW_SLICES: u32 = 4u;
override ACCUMULATE: bool = false;
override SUM_WG: u32 = 256u;

struct ColumnSumParams {
    rows: u32,
    cols: u32,
}

struct SumParams {
    n: u32,
    groups: u32,
    divisor: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> column_params: ColumnSumParams;
@group(0) @binding(3) var<uniform> sum_params: SumParams;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(COL_WG, ROW_SLICES)
fn column_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let rows = column_params.rows;
    let cols = column_params.cols;
    let col = (wid.x + wid.y * nwg.x) * COL_WG + lid.x;
    // Columns past the end still take part in the barrier below; they just add nothing.
    var total = 0.0;
    if col < cols {
        for (var r = lid.y; r < rows; r += ROW_SLICES) {
            total += x[r * cols + col];
        }
    }
    partial[lid.y * COL_WG + lid.x] = total;
    workgroupBarrier();
    if lid.y == 0u && col < cols {
        var column_total = 0.0;
        for (var s = 0u; s < ROW_SLICES; s++) {
            column_total += partial[s * COL_WG + lid.x];
        }
        if ACCUMULATE {
            column_total += out[col];
        }
        out[col] = column_total;
    }
}

@compute @workgroup_size(SUM_WG)
fn sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = sum_params.n;
    let stride = sum_params.groups * SUM_WG;
    var total = 0.0;
    for (var i = wid.x * SUM_WG + lid; i < n; i += stride) {
        total += x[i];
    }
    partial[lid] = total;
    workgroupBarrier();
    for (var width = SUM_WG / 2u; width > 0u; width /= 2u) {
        if lid < width {
            partial[lid] += partial[lid + width];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        out[wid.x] = partial[0] / sum_params.divisor;
    }
}
