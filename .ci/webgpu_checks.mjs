// Runs the matmul, distillation-loss and softmax kernels in the browser's WebGPU on odd shapes
// and compares them with CPU references in f64 at the tolerances of the Rust tests. A browser
// module, imported by the page that .ci/webgpu_shaders.mjs opens; the matmul goes through
// examples/webgpu/matmul.mjs, the example the README shows.

import { MATMUL_VARIANTS, matmul, matmulBindings, matmulPipeline, readBuffer, storageBuffer, variantGeometry, variantRuns } from "/examples/webgpu/matmul.mjs";

// m x n x k: no dimension a multiple of any tile; every dimension a multiple of 4 for the vec4
// subgroup kernel (8-wide workgroups); the same, wide enough for 32-wide ones.
const MATMUL_SHAPES = [[37, 19, 45], [36, 44, 52], [20, 244, 28]];
// Plain, A transposed, B transposed, each with a different epilogue.
const LAYOUTS = [
  { name: "plain +bias +relu", transA: false, transB: false, bias: true, relu: true },
  { name: "A^T +accumulate", transA: true, transB: false, accumulate: true },
  { name: "B^T +bias", transA: false, transB: true, bias: true },
];
const WG = 64;

/** Every check as { line, ok } (ok: true, false, or null when it cannot run here). */
export async function runChecks() {
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return { error: "no WebGPU adapter" };
  const requiredFeatures = ["subgroups"].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredFeatures });
  const errors = [];
  device.addEventListener("uncapturederror", (e) => errors.push(`uncaptured WebGPU error: ${e.error.message}`));
  device.lost.then((info) => errors.push(`device lost: ${info.message}`));
  const code = {};
  for (const name of ["matmul.wgsl", "matmul_subgroup.wgsl", "distill_loss.wgsl", "softmax.wgsl"]) {
    code[name] = await (await fetch(`/shaders/${name}`)).text();
  }
  const results = [];
  const run = async (label, body) => {
    for (const filter of ["validation", "out-of-memory", "internal"]) device.pushErrorScope(filter);
    let outcome;
    try {
      outcome = await body();
    } catch (e) {
      outcome = { ok: false, detail: `exception: ${String(e.message ?? e).replace(/\s+/g, " ")}` };
    }
    for (let i = 0; i < 3; i++) {
      const scoped = await device.popErrorScope();
      if (scoped) outcome = { ok: false, detail: `WebGPU error: ${scoped.message.replace(/\s+/g, " ")}` };
    }
    results.push({ line: `${label}: ${outcome.detail}`, ok: outcome.ok });
  };
  await matmulChecks(device, adapter, code, run);
  await distillChecks(device, code["distill_loss.wgsl"], run);
  await softmaxChecks(device, code["softmax.wgsl"], run);
  await device.queue.onSubmittedWorkDone();
  const info = adapter.info;
  return {
    adapter: `${info.vendor} ${info.architecture} ${info.description}`.trim(),
    subgroups: `subgroups ${info.subgroupMinSize ?? "?"}..${info.subgroupMaxSize ?? "?"} lanes`,
    results,
    errors,
  };
}

// Deterministic values in [-scale, scale].
function randomF32(count, seed, scale) {
  let s = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/** Largest |got - want| and whether every element is within atol + rtol * |want|. */
function compare(got, want, atol, rtol) {
  let maxErr = 0;
  let ok = got.length === want.length;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= atol + rtol * Math.abs(want[i]))) ok = false;
    maxErr = Math.max(maxErr, Number.isNaN(err) ? Infinity : err);
  }
  return { ok, maxErr };
}

function describe({ ok, maxErr }, tolerance) {
  return { ok, detail: `max abs error ${maxErr.toExponential(2)} (${tolerance})` };
}

// --- matmul ---

/** CPU reference: C = relu?((c ? c : 0) + op(A) op(B) + bias), summed in f64. */
function matmulReference({ a, b, m, n, k, transA, transB, bias, relu, c }) {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = c ? c[i * n + j] : 0;
      for (let p = 0; p < k; p++) {
        sum += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
      }
      if (bias) sum += bias[j];
      out[i * n + j] = relu ? Math.max(sum, 0) : sum;
    }
  }
  return out;
}

async function matmulChecks(device, adapter, code, run) {
  for (const [m, n, k] of MATMUL_SHAPES) {
    for (const [li, layout] of LAYOUTS.entries()) {
      const seed = m * 1000 + n * 10 + li;
      const problem = {
        a: randomF32(m * k, seed, 1), b: randomF32(k * n, seed + 1, 1), m, n, k,
        transA: layout.transA, transB: layout.transB, relu: !!layout.relu,
        bias: layout.bias ? randomF32(n, seed + 2, 1) : null,
        c: layout.accumulate ? randomF32(m * n, seed + 3, 1) : null,
      };
      const want = matmulReference(problem);
      // f32 sums of k products of values in [-1, 1] drift by about sqrt(k) ulps of the terms.
      const tol = 1e-4 * Math.sqrt(k);
      for (const variant of Object.keys(MATMUL_VARIANTS)) {
        const label = `matmul ${variant.padEnd(12)} ${m}x${n}x${k} ${layout.name}`;
        if (!variantRuns(variant, adapter, problem)) {
          await run(label, () => notRunnable(device, adapter, code, variant, problem));
          continue;
        }
        await run(label, async () => {
          const got = await matmul(device, code[MATMUL_VARIANTS[variant].file], { ...problem, variant });
          return describe(compare(got, want, tol, tol), `tolerance ${tol.toExponential(1)} * (1 + |C|)`);
        });
      }
    }
  }
}

// A subgroup variant that cannot run this product here still gets its pipeline created (so
// Tint compiles it with these constants); the line says why it did not run.
async function notRunnable(device, adapter, code, variant, problem) {
  const { m, n, k } = problem;
  const reasons = [];
  if (!(k % 4 === 0 && (!problem.transA || m % 4 === 0) && (problem.transB || n % 4 === 0))) {
    reasons.push("shape not in rows of 4 (the crate falls back to a general variant there)");
  }
  const lanes = adapter.info.subgroupMinSize;
  if (!adapter.features.has("subgroups")) reasons.push("no subgroups feature");
  else if (!(lanes >= 8)) reasons.push(`subgroups of ${lanes ?? "unknown"} lanes, needs >= 8`);
  if (adapter.features.has("subgroups")) {
    const cfg = variantGeometry(variant, n);
    const pipeline = await matmulPipeline(device, code[cfg.file], cfg, problem);
    // The example's bind group must satisfy the layout, operand textures included.
    const buffers = [0, 1, 2, 3].map(() => storageBuffer(device, new Float32Array(4)));
    buffers.push(uniformBuffer(device, new Uint32Array([m, n, k, 0])));
    device.pushErrorScope("validation");
    const { textures } = matmulBindings(device, pipeline, cfg, buffers);
    const error = await device.popErrorScope();
    for (const resource of [...buffers, ...textures]) resource.destroy();
    if (error) return { ok: false, detail: `bind group refused: ${error.message}` };
    reasons.push(`pipeline and bind group created (WG_X ${cfg.WG_X})`);
  }
  return { ok: null, detail: `NOT RUN: ${reasons.join("; ")}` };
}

// --- one dispatch of a kernel with an "auto" layout ---

async function dispatch(device, code, entryPoint, constants, bindings, groups) {
  const module = device.createShaderModule({ code });
  const pipeline = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint, constants } });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: Object.entries(bindings).map(([binding, buffer]) => ({ binding: Number(binding), resource: { buffer } })),
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(...groups);
  pass.end();
  device.queue.submit([encoder.finish()]);
}

function uniformBuffer(device, bytes) {
  const buffer = device.createBuffer({ size: bytes.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(buffer, 0, bytes);
  return buffer;
}

// --- distillation loss ---

function logSoftmax(row, temperature) {
  const max = Math.max(...row);
  const logSum = Math.log(row.reduce((s, v) => s + Math.exp((v - max) / temperature), 0));
  return Array.from(row, (v) => (v - max) / temperature - logSum);
}

function firstArgmax(row) {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
  return best;
}

/** The loss from its definition in f64 (as dk-tensor's cpu::distill_loss_f64). */
function distillReference(z, t, labels, cols, { temperature: T, alpha, smoothing: eps }) {
  const rows = labels.length;
  const out = { losses: [], hard: [], soft: [], grad: new Float64Array(rows * cols), correct: 0 };
  for (let r = 0; r < rows; r++) {
    const zr = z.subarray(r * cols, (r + 1) * cols);
    const logQ = logSoftmax(zr, T);
    const logP = logSoftmax((t ?? z).subarray(r * cols, (r + 1) * cols), T);
    const logQ1 = logSoftmax(zr, 1);
    const label = Math.min(labels[r], cols - 1);
    const target = (j) => (j === label ? 1 - eps : 0) + eps / cols;
    let softCe = 0, hardCe = 0, kl = 0;
    for (let j = 0; j < cols; j++) {
      const p = Math.exp(logP[j]);
      softCe -= p * logQ[j];
      hardCe -= target(j) * logQ1[j];
      if (p > 0) kl += p * (logP[j] - logQ[j]);
      out.grad[r * cols + j] = (alpha * T * (Math.exp(logQ[j]) - p) + (1 - alpha) * (Math.exp(logQ1[j]) - target(j))) / rows;
    }
    out.losses.push(alpha * T * T * softCe + (1 - alpha) * hardCe);
    out.hard.push(-logQ1[label]);
    out.soft.push(t ? kl : 0);
    if (labels[r] === firstArgmax(zr)) out.correct++;
  }
  return out;
}

// The stats words of distill_loss.wgsl (see its header): three 64-bit fixed-point sums with 16
// fraction bits as (lo, hi) pairs, the correct and example counts, and the overflow flags.
const STATS_WORDS = 9;

function decodeStats(words) {
  const flags = words[8];
  const fixed = (k) => ((flags >> k) & 1 ? Infinity : (words[2 * k + 1] * 2 ** 32 + words[2 * k]) / 2 ** 16);
  return { lossSum: fixed(0), hardSum: fixed(1), softSum: fixed(2), correct: words[6], count: words[7], flags };
}

const sum = (values) => values.reduce((s, v) => s + v, 0);
const absSum = (values) => values.reduce((s, v) => s + Math.abs(v), 0);

async function distillChecks(device, code, run) {
  const cases = [
    { rows: 37, cols: 19, temperature: 4, alpha: 0.7, smoothing: 0.1, teacher: true, rowThreads: 1 },
    { rows: 37, cols: 19, temperature: 4, alpha: 0.7, smoothing: 0.1, teacher: true, rowThreads: 8 },
    { rows: 13, cols: 1001, temperature: 2.5, alpha: 0.5, smoothing: 0, teacher: true, rowThreads: 32 },
    { rows: 37, cols: 19, temperature: 1, alpha: 0, smoothing: 0, teacher: false, rowThreads: 1 },
  ];
  for (const p of cases) {
    const label = `distill_loss ${p.rows}x${p.cols} T=${p.temperature} alpha=${p.alpha} eps=${p.smoothing}` +
      `${p.teacher ? "" : " no teacher"} ROW_THREADS=${p.rowThreads}`;
    await run(label, () => distillCheck(device, code, p));
  }
}

async function distillCheck(device, code, p) {
  const { rows, cols } = p;
  const z = randomF32(rows * cols, rows * 7 + cols, 5);
  const t = randomF32(rows * cols, rows * 11 + cols, 5);
  const labels = Uint32Array.from({ length: rows }, (_, r) => (r * 7 + 3) % cols);
  // Make a few predictions correct so the count is checked on both outcomes.
  for (let r = 0; r < rows; r += 3) labels[r] = firstArgmax(z.subarray(r * cols, (r + 1) * cols));
  labels[rows - 1] = cols + 2; // out of range: clamped for the loss, never correct
  const params = new ArrayBuffer(32);
  new Uint32Array(params, 0, 2).set([rows, cols]);
  new Float32Array(params, 8, 3).set([p.temperature, p.alpha, p.smoothing]);
  const student = storageBuffer(device, z);
  const grad = storageBuffer(device, new Float32Array(rows * cols));
  const constants = { WG, ROW_THREADS: p.rowThreads, HAS_TEACHER: p.teacher ? 1 : 0 };
  const bindings = {
    0: student, 1: p.teacher ? storageBuffer(device, t) : student, 2: storageBuffer(device, labels),
    3: grad, 5: uniformBuffer(device, new Uint8Array(params)),
  };
  // Twice, into two stats buffers: the fixed-point sums must come out word for word the same.
  const runs = [];
  for (let i = 0; i < 2; i++) {
    const stats = storageBuffer(device, new Uint32Array(STATS_WORDS));
    await dispatch(device, code, "distill_loss", constants, { ...bindings, 4: stats }, [Math.ceil(rows / (WG / p.rowThreads)), 1, 1]);
    runs.push(new Uint32Array(await readBuffer(device, stats, STATS_WORDS * 4)));
  }
  const gotGrad = new Float32Array(await readBuffer(device, grad, rows * cols * 4));
  const { lossSum, hardSum, softSum, correct, count, flags } = decodeStats(runs[0]);
  const repeated = runs[0].every((w, i) => w === runs[1][i]);

  const want = distillReference(z, p.teacher ? t : null, labels, cols, p);
  const gradAtol = (1e-5 * (p.alpha * p.temperature + 1)) / rows;
  const gradCmp = compare(gotGrad, want.grad, gradAtol, 1e-3);
  const sums = [
    ["loss", lossSum, sum(want.losses), 1e-5 * absSum(want.losses) + 1e-5 * rows * (p.alpha * p.temperature ** 2 + 1)],
    ["hard", hardSum, sum(want.hard), 1e-5 * absSum(want.hard) + 1e-5 * rows],
    ["soft", softSum, sum(want.soft), 1e-5 * absSum(want.soft) + 2e-5 * rows],
  ];
  const sumErrors = sums.map(([name, got, expected, tol]) => ({ name, err: Math.abs(got - expected), tol }));
  const ok = gradCmp.ok && sumErrors.every((s) => s.err <= s.tol) && correct === want.correct && count === rows &&
    flags === 0 && repeated;
  const detail = `grad max abs error ${gradCmp.maxErr.toExponential(2)} (atol ${gradAtol.toExponential(1)} rtol 1e-3); ` +
    sumErrors.map((s) => `${s.name} sum error ${s.err.toExponential(2)} (tol ${s.tol.toExponential(1)})`).join(", ") +
    `; correct ${correct} (expected ${want.correct}), count ${count} (expected ${rows}), flags ${flags}` +
    ` (expected 0); a second run's stats words ${repeated ? "identical" : "DIFFER"}`;
  return { ok, detail };
}

// --- softmax ---

async function softmaxChecks(device, code, run) {
  const cases = [[37, 19, 2.5], [5, 1001, 0.5], [129, 33, 1]];
  for (const [rows, cols, temperature] of cases) {
    for (const rowThreads of [1, 16]) {
      const shape = `${rows}x${cols} T=${temperature} ROW_THREADS=${rowThreads}`;
      const x = randomF32(rows * cols, rows * 31 + cols, 8);
      for (const log of [false, true]) {
        await run(`${log ? "log_softmax" : "softmax    "} ${shape}`, () => softmaxCheck(device, code, x, rows, cols, temperature, rowThreads, log));
      }
      // Rounded values make ties common; the first index of the max must win.
      const ties = x.map(Math.round);
      await run(`argmax      ${shape.replace(/ T=\S+/, "")} (ties)`, () => argmaxCheck(device, code, ties, rows, cols, rowThreads));
    }
  }
}

function softmaxParams(device, rows, cols, temperature) {
  const params = new ArrayBuffer(16);
  new Uint32Array(params, 0, 2).set([rows, cols]);
  new Float32Array(params, 8, 1).set([temperature]);
  return uniformBuffer(device, new Uint8Array(params));
}

async function softmaxCheck(device, code, x, rows, cols, temperature, rowThreads, log) {
  const out = storageBuffer(device, new Float32Array(rows * cols));
  const constants = { WG, ROW_THREADS: rowThreads, LOG_OUTPUT: log ? 1 : 0 };
  const bindings = { 0: storageBuffer(device, x), 1: out, 3: softmaxParams(device, rows, cols, temperature) };
  await dispatch(device, code, "softmax_rows", constants, bindings, [Math.ceil(rows / (WG / rowThreads)), 1, 1]);
  const got = new Float32Array(await readBuffer(device, out, rows * cols * 4));
  const want = [];
  for (let r = 0; r < rows; r++) {
    const row = logSoftmax(x.subarray(r * cols, (r + 1) * cols), temperature);
    want.push(...(log ? row : row.map(Math.exp)));
  }
  const [atol, rtol] = log ? [1e-4, 1e-5] : [1e-6, 1e-4];
  return describe(compare(got, want, atol, rtol), `atol ${atol.toExponential(0)} rtol ${rtol.toExponential(0)}`);
}

async function argmaxCheck(device, code, x, rows, cols, rowThreads) {
  const indices = storageBuffer(device, new Uint32Array(rows));
  const bindings = { 0: storageBuffer(device, x), 2: indices, 3: softmaxParams(device, rows, cols, 1) };
  await dispatch(device, code, "argmax_rows", { WG, ROW_THREADS: rowThreads }, bindings, [Math.ceil(rows / (WG / rowThreads)), 1, 1]);
  const got = new Uint32Array(await readBuffer(device, indices, rows * 4));
  const want = Array.from({ length: rows }, (_, r) => firstArgmax(x.subarray(r * cols, (r + 1) * cols)));
  const wrong = want.filter((w, r) => got[r] !== w).length;
  return { ok: wrong === 0, detail: `${wrong} of ${rows} indices differ (exact)` };
}
