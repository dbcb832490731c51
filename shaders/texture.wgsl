// texture.wgsl — copy an f32 tensor into an rgba32float texture, four values a texel, so that
// a kernel reading it many times can fetch each group of four with one texel load.
//
// Computes:   texel (t % TEXTURE_WIDTH, t / TEXTURE_WIDTH) = src[4t .. 4t + 4]   for t < texels
//             Texels past `texels` (the rest of the last row) are not written.
// Layout:     element e of the tensor is component e % 4 of texel t = e / 4; a reader fetches
//             it as textureLoad(tex, vec2<u32>(t % 4096u, t / 4096u), 0)[e % 4u].
// Bindings (group 0):
//   @binding(0) src    : array<vec4<f32>>, read     the tensor; its length a multiple of 4
//   @binding(1) dst    : texture_storage_2d<rgba32float, write>, TEXTURE_WIDTH texels wide and
//                        at least ceil(texels / TEXTURE_WIDTH) rows high
//   @binding(2) params : uniform TextureParams { texels: u32 }
// Dispatch:   to_texture: ceil(texels / 64) workgroups of 64, as a 2-D grid when that exceeds
//             65535: x = min(groups, 65535), y = ceil(groups / x).
//
// Why: on CPU Vulkan (lavapipe, Mesa 22.3) every storage-buffer load is a loop over the SIMD
// lanes with a bounds check per lane, whatever its width, while a texel load is one gather:
// scattered vec4 loads measured 3.8 ns per float from storage and 0.56 from an rgba32float
// texture. A kernel that reads each value of an operand many times (a matrix product) pays
// for this copy many times over.

const TEXTURE_WIDTH: u32 = 4096u;
const WG: u32 = 64u;

struct TextureParams {
    texels: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var dst: texture_storage_2d<rgba32float, write>;
@group(0) @binding(2) var<uniform> params: TextureParams;

@compute @workgroup_size(WG)
fn to_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = (wid.x + wid.y * nwg.x) * WG + lid;
    if t < params.texels {
        textureStore(dst, vec2<u32>(t % TEXTURE_WIDTH, t / TEXTURE_WIDTH), src[t]);
    }
}
