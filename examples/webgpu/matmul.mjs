// A complete WebGPU launcher of shaders/matmul.wgsl and shaders/matmul_subgroup.wgsl in plain
// JavaScript: C = relu?(op(A) op(B) + bias), with the tile sizes of every variant dk-tensor
// picks from (crates/tensor/src/ops/matmul/mod.rs). It runs in any browser with WebGPU;
// .ci/webgpu_shaders.mjs runs this very file in headless Chromium and checks its results
// against a CPU reference, and checks that README.md quotes it word for word. Use:
//
//   import { matmul } from "./examples/webgpu/matmul.mjs";
//   const adapter = await navigator.gpu.requestAdapter();
//   const device = await adapter.requestDevice(); // + { requiredFeatures: ["subgroups"] } for the subgroup* variants
//   const code = await (await fetch("shaders/matmul.wgsl")).text();
//   const c = await matmul(device, code, { a, b, m, n, k, bias, relu: true, variant: "register8x8" });

/** Entry point and override constants of each variant (as dk-tensor's MatmulVariant). */
export const MATMUL_VARIANTS = {
  subgroup64x8: { file: "matmul_subgroup.wgsl", entry: "matmul_subgroup", TM: 64, TN: 8, WG_X: 64, WG_Y: 1 },
  subgroup32x8: { file: "matmul_subgroup.wgsl", entry: "matmul_subgroup", TM: 32, TN: 8, WG_X: 64, WG_Y: 1 },
  subgroup16x8: { file: "matmul_subgroup.wgsl", entry: "matmul_subgroup", TM: 16, TN: 8, WG_X: 64, WG_Y: 1 },
  register4x4: { file: "matmul.wgsl", entry: "matmul_register", TM: 4, TN: 4, WG_X: 8, WG_Y: 8, BK: 1 },
  register8x8: { file: "matmul.wgsl", entry: "matmul_register", TM: 8, TN: 8, WG_X: 8, WG_Y: 8, BK: 1 },
  tiled64: { file: "matmul.wgsl", entry: "matmul_tiled", TM: 4, TN: 4, WG_X: 16, WG_Y: 16, BK: 16 },
  tiled128: { file: "matmul.wgsl", entry: "matmul_tiled", TM: 8, TN: 8, WG_X: 16, WG_Y: 16, BK: 8 },
};

const FLAG_BIAS = 1;
const FLAG_RELU = 2;
const FLAG_ACCUMULATE = 4;

/**
 * Whether `variant` can compute this product on `adapter`: the subgroup kernel reads A and B
 * as vec4 (k and each stored row length a multiple of 4) and broadcasts from lanes 0..7
 * (subgroups of at least 8 lanes, and a device created with the "subgroups" feature).
 */
export function variantRuns(variant, adapter, { m, n, k, transA = false, transB = false }) {
  if (MATMUL_VARIANTS[variant].file === "matmul.wgsl") return true;
  const rowsOfFour = k % 4 === 0 && (!transA || m % 4 === 0) && (transB || n % 4 === 0);
  return rowsOfFour && adapter.features.has("subgroups") && (adapter.info.subgroupMinSize ?? 0) >= 8;
}

/**
 * Workgroup geometry for `n` columns: the subgroup kernel's width is narrowed to the widest of
 * 64, 32, 16 or 8 that leaves at most an eighth of the launched column lanes idle.
 */
export function variantGeometry(variant, n) {
  const cfg = { ...MATMUL_VARIANTS[variant] };
  if (cfg.BK !== undefined) return cfg;
  const lanes = Math.ceil(n / cfg.TN);
  const wasteful = (width) => {
    const launched = Math.ceil(lanes / width) * width;
    return 8 * (launched - lanes) > launched;
  };
  while (cfg.WG_X > 8 && wasteful(cfg.WG_X)) cfg.WG_X /= 2;
  return cfg;
}

/** The compute pipeline of one variant and layout; `code` is the text of `cfg.file`. */
export function matmulPipeline(device, code, cfg, { transA = false, transB = false }) {
  const constants = { TRANS_A: Number(transA), TRANS_B: Number(transB), TM: cfg.TM, TN: cfg.TN, WG_X: cfg.WG_X };
  // The subgroup kernel's workgroup is one row wide and has no k slices.
  if (cfg.BK !== undefined) Object.assign(constants, { WG_Y: cfg.WG_Y, BK: cfg.BK });
  const module = device.createShaderModule({ label: cfg.file, code });
  return device.createComputePipelineAsync({
    label: `${cfg.entry} TM${cfg.TM} TN${cfg.TN}`,
    layout: "auto",
    compute: { module, entryPoint: cfg.entry, constants },
  });
}

/**
 * The bind group of `buffers` (A, B, C, bias and the parameters, bindings 0-4) for a pipeline
 * of `cfg`. The subgroup kernel also binds operand textures at 5 and 6, read only with
 * TEXTURE_A and TEXTURE_B (dk-tensor's path on CPU adapters), so it gets 1 x 1 stand-ins,
 * returned to be destroyed with the buffers.
 */
export function matmulBindings(device, pipeline, cfg, buffers) {
  const entries = buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
  const usage = GPUTextureUsage.TEXTURE_BINDING;
  const textures = cfg.BK === undefined ? [5, 6].map(() => device.createTexture({ size: [1, 1], format: "rgba32float", usage })) : [];
  textures.forEach((texture, i) => entries.push({ binding: 5 + i, resource: texture.createView() }));
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
  return { bindGroup, textures };
}

/** A storage buffer holding `data` (a typed array; at least 4 bytes are allocated). */
export function storageBuffer(device, data, usage = 0) {
  const buffer = device.createBuffer({
    size: Math.max(4, data.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | usage,
  });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** The first `bytes` bytes of `buffer` (which has COPY_SRC), copied back to the CPU. */
export async function readBuffer(device, buffer, bytes) {
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = staging.getMappedRange().slice(0);
  staging.destroy();
  return copy;
}

/**
 * C = relu?((c ? c : 0) + op(A) op(B) + bias) on the GPU, returned as a Float32Array [m, n].
 * a: Float32Array, [m, k] or [k, m] when transA; b: [k, n] or [n, k] when transB; bias: [n]
 * or null; c: an initial C to accumulate into, or null; variant: a key of MATMUL_VARIANTS
 * (default "register8x8"), whose file's text `code` is.
 */
export async function matmul(device, code, options) {
  const { a, b, m, n, k, transA = false, transB = false, bias = null, relu = false, c = null } = options;
  const cfg = variantGeometry(options.variant ?? "register8x8", n);
  const pipeline = await matmulPipeline(device, code, cfg, { transA, transB });
  const flags = (bias ? FLAG_BIAS : 0) | (relu ? FLAG_RELU : 0) | (c ? FLAG_ACCUMULATE : 0);
  const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array([m, n, k, flags]));
  const out = storageBuffer(device, c ?? new Float32Array(m * n));
  // Every binding of the layout must be bound: without a bias, a one-element stand-in.
  const biasBuffer = storageBuffer(device, bias ?? new Float32Array(1));
  const buffers = [storageBuffer(device, a), storageBuffer(device, b), out, biasBuffer, params];
  const { bindGroup, textures } = matmulBindings(device, pipeline, cfg, buffers);
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(n / (cfg.TN * cfg.WG_X)), Math.ceil(m / (cfg.TM * cfg.WG_Y)), 1);
  pass.end();
  device.queue.submit([encoder.finish()]);
  const result = new Float32Array(await readBuffer(device, out, m * n * 4));
  for (const resource of [...buffers, ...textures]) resource.destroy();
  return result;
}
