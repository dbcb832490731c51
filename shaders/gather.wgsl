// gather.wgsl — build one mini-batch from a data set resident on the GPU, through a
// (shuffled) index buffer: u8 images to f32 with optional random translation, f32 rows,
// u32 labels.
//
// Let pos = start + b be the position of batch row b in `indices` (M entries) and
// src = indices[pos]. A batch row is "empty" when pos >= M (the last, partial batch) or
// src >= num_rows (an out-of-range index is never read); empty rows are written as 0.
//   gather_images  out[b, p] = f32(byte(src, p')) * scale + offset
//       Each image has row_len = C * H * W bytes (channel planes of H x W, row-major).
//       With max_shift > 0 the image is translated by (dx, dy), both in [-max_shift, max_shift],
//       drawn from counter_hash(seed, pos): out(c, y, x) = in(c, y - dy, x - dx); pixels
//       taken from outside the image read as byte 0, i.e. come out as `offset`.
//       dx = (h & 0xffff) % (2 max_shift + 1) - max_shift, dy = (h >> 16) % (2 max_shift + 1) - max_shift.
//   gather_rows    out[b, d] = src_rows[src, d]                     d in [0, row_len)
//   gather_labels  out_labels[b] = src_labels[src]                  (row_len = 1)
// counter_hash is the same stateless integer hash as in dropout.wgsl.
// Bindings (group 0); each entry point uses only the ones it names:
//   @binding(0) data       : array<u32>, read        images, u8 [num_rows, row_len] packed four bytes
//                                                    per word, little-endian (byte j = word j/4, bits 8*(j%4))
//   @binding(1) indices    : array<u32>, read        [M]                      (all entry points)
//   @binding(2) out        : array<f32>, read_write  [batch, row_len]         (gather_images, gather_rows)
//   @binding(3) params     : uniform GatherParams                             (all entry points)
//   @binding(4) src_rows   : array<f32>, read        [num_rows, row_len]      (gather_rows)
//   @binding(5) src_labels : array<u32>, read        [num_rows]               (gather_labels)
//   @binding(6) out_labels : array<u32>, read_write  [batch]                  (gather_labels)
//   GatherParams { batch, row_len, width, height, num_rows, num_indices, start, seed: u32,
//                  scale, offset: f32, max_shift, _pad: u32 }  (width/height/scale/offset/
//                  max_shift/seed are used by gather_images only)
// Dispatch:  one invocation per output element, batch * row_len of them: ceil(that / WG)
//            workgroups, as a 2-D grid when over 65535: x = min(groups, 65535), y = ceil(groups / x).
//            Element = (wid.x + wid.y * nwg.x) * WG + lid.
// Overrides: WG (workgroup size, default 256).

override WG: u32 = 256u;

struct GatherParams {
    batch: u32,
    row_len: u32,
    width: u32,
    height: u32,
    num_rows: u32,
    num_indices: u32,
    start: u32,
    seed: u32,
    scale: f32,
    offset: f32,
    max_shift: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: GatherParams;
@group(0) @binding(4) var<storage, read> src_rows: array<f32>;
@group(0) @binding(5) var<storage, read> src_labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> out_labels: array<u32>;

const EMPTY_ROW: u32 = 0xffffffffu;

fn mix32(value: u32) -> u32 {
    var x = value;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

fn counter_hash(seed: u32, counter: u32) -> u32 {
    let key = mix32(seed ^ 0x9e3779b9u);
    return mix32(mix32(counter ^ key) ^ seed);
}

// The data-set row that batch row b copies, or EMPTY_ROW. Written to avoid overflow of start + b.
fn source_row(b: u32) -> u32 {
    if params.start >= params.num_indices || b >= params.num_indices - params.start {
        return EMPTY_ROW;
    }
    let src = indices[params.start + b];
    return select(EMPTY_ROW, src, src < params.num_rows);
}

fn element_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn read_byte(j: u32) -> u32 {
    return (data[j >> 2u] >> ((j & 3u) * 8u)) & 0xffu;
}

@compute @workgroup_size(WG)
fn gather_images(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i >= params.batch * params.row_len {
        return;
    }
    let b = i / params.row_len;
    let p = i % params.row_len;
    let src = source_row(b);
    if src == EMPTY_ROW {
        out[i] = 0.0;
        return;
    }
    let plane = params.width * params.height;
    let channel = p / plane;
    var y = i32((p % plane) / params.width);
    var x = i32(p % params.width);
    if params.max_shift > 0u {
        let h = counter_hash(params.seed, params.start + b);
        let span = 2u * params.max_shift + 1u;
        let shift = i32(params.max_shift);
        x -= i32((h & 0xffffu) % span) - shift;
        y -= i32((h >> 16u) % span) - shift;
    }
    var pixel = 0u;
    if x >= 0 && x < i32(params.width) && y >= 0 && y < i32(params.height) {
        pixel = read_byte(src * params.row_len + channel * plane + u32(y) * params.width + u32(x));
    }
    out[i] = f32(pixel) * params.scale + params.offset;
}

@compute @workgroup_size(WG)
fn gather_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element_index(wid, nwg, lid);
    if i >= params.batch * params.row_len {
        return;
    }
    let src = source_row(i / params.row_len);
    if src == EMPTY_ROW {
        out[i] = 0.0;
    } else {
        out[i] = src_rows[src * params.row_len + i % params.row_len];
    }
}

@compute @workgroup_size(WG)
fn gather_labels(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = element_index(wid, nwg, lid);
    if b >= params.batch {
        return;
    }
    let src = source_row(b);
    if src == EMPTY_ROW {
        out_labels[b] = 0u;
    } else {
        out_labels[b] = src_labels[src];
    }
}
