// Compiles every shaders/*.wgsl with a browser's WebGPU (Tint, Chromium's WGSL compiler) in
// headless Chromium on SwiftShader, and fails on any compilation error. naga's view is the
// test in crates/tensor/tests/shaders_validate.rs; this is the other implementation.
// Then runs the matmul (every variant, through examples/webgpu/matmul.mjs), distillation-loss
// and softmax kernels on odd shapes against CPU references (.ci/webgpu_checks.mjs), and fails
// on any mismatch, WebGPU error or console error of the page.
//
// Usage: node .ci/webgpu_shaders.mjs   (needs puppeteer-core from npm and /usr/bin/chromium,
// or the browser named by $CHROMIUM). Run from the repository root.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { launchChromium } from "./chromium.mjs";

const SHADER_DIR = "shaders";
const EXAMPLE = "examples/webgpu/matmul.mjs";
const shaders = readdirSync(SHADER_DIR)
  .filter((name) => name.endsWith(".wgsl"))
  .sort()
  .map((name) => ({ name, code: readFileSync(join(SHADER_DIR, name), "utf8") }));
if (shaders.length === 0) {
  console.error(`error: no .wgsl files in ${SHADER_DIR}/`);
  process.exit(1);
}

// WebGPU exists only in secure contexts: serve an empty page from localhost, and the files
// the checks import or fetch (and nothing else of the repository).
const SERVED = [".ci/webgpu_checks.mjs", EXAMPLE, ...shaders.map((s) => `${SHADER_DIR}/${s.name}`)];
for (const path of SERVED) {
  if (!existsSync(path)) {
    console.error(`error: ${path} is missing (run from the repository root)`);
    process.exit(1);
  }
}
const readmeOk = readmeQuotesExample();
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, "http://localhost").pathname).slice(1);
  if (path === "") return res.end("<!doctype html><title>wgsl</title>");
  if (path === "favicon.ico") {
    res.statusCode = 204; // asked for by the browser itself; a 404 would be a console error
    return res.end();
  }
  if (!SERVED.includes(path)) {
    res.statusCode = 404;
    return res.end();
  }
  res.setHeader("Content-Type", path.endsWith(".mjs") ? "text/javascript" : "text/plain");
  res.end(readFileSync(path));
});
await new Promise((done) => server.listen(0, "127.0.0.1", done));
const { browser, close } = await launchChromium("webgpu-shaders", [
  "--enable-unsafe-webgpu",
  "--use-webgpu-adapter=swiftshader",
]);

let failed = !readmeOk;
try {
  const page = await browser.newPage();
  // Any error the page reports fails the run (WebGPU prints uncaught ones to the console).
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    console.log(`FAIL console error: ${message.text()}`);
    failed = true;
  });
  page.on("pageerror", (error) => {
    console.log(`FAIL page error: ${error.message}`);
    failed = true;
  });
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const result = await page.evaluate(compileAll, shaders);
  if (result.error) {
    console.error(`error: ${result.error}`);
    failed = true;
  } else {
    console.log(`WebGPU adapter: ${result.adapter}; features: ${result.features.join(", ")}`);
    for (const { name, errors } of result.shaders) {
      console.log(`${errors.length ? "FAIL" : "ok  "} ${name}`);
      for (const message of errors) console.log(`     ${name}:${message}`);
      failed ||= errors.length > 0;
    }
  }
  failed = (await runKernels(page)) || failed;
} finally {
  await close();
  server.close();
}
process.exit(failed ? 1 : 0);

// README.md's "Reusing the shaders" shows the example's code: every line of its js blocks must
// be a line of the example (or of its usage comment), so the README shows what the test runs.
function readmeQuotesExample() {
  const readme = readFileSync("README.md", "utf8");
  const section = readme.split(/^## Reusing the shaders$/m)[1]?.split(/^## /m)[0] ?? "";
  const quoted = [...section.matchAll(/^```js\n([\s\S]*?)^```$/gm)].flatMap((m) => m[1].split("\n"));
  const example = new Set(
    readFileSync(EXAMPLE, "utf8").split("\n").flatMap((line) => [line.replace(/^export /, ""), line.replace(/^\/\/ {3}/, "")]),
  );
  const missing = quoted.filter((line) => line.trim() !== "" && !example.has(line));
  if (quoted.length === 0) missing.push("(no js code block in the section)");
  for (const line of missing) console.log(`FAIL README.md "Reusing the shaders" quotes a line not in ${EXAMPLE}: ${line}`);
  if (missing.length === 0) console.log(`ok   README.md "Reusing the shaders" quotes ${EXAMPLE} (${quoted.length} lines)`);
  return missing.length === 0;
}

// Runs .ci/webgpu_checks.mjs in the page and prints one line per check; true on any failure.
// A check that cannot run on this adapter says so ("not run") and does not fail the run.
async function runKernels(page) {
  const result = await page.evaluate(async () => (await import("/.ci/webgpu_checks.mjs")).runChecks());
  if (result.error) {
    console.log(`FAIL kernels: ${result.error}`);
    return true;
  }
  console.log(`Kernels on ${result.adapter}, ${result.subgroups}:`);
  for (const { line, ok } of result.results) {
    console.log(`${ok === null ? "skip" : ok ? "ok  " : "FAIL"} ${line}`);
  }
  for (const error of result.errors) console.log(`FAIL ${error}`);
  return result.errors.length > 0 || result.results.some((r) => r.ok === false);
}

// Runs in the page: one device with the subgroups feature, then each module's compilation
// messages. A module needing a feature the adapter lacks is an error too, not a skip.
async function compileAll(shaders) {
  if (!navigator.gpu) return { error: "navigator.gpu is missing (WebGPU not enabled)" };
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return { error: "no WebGPU adapter (SwiftShader)" };
  const wanted = ["subgroups"].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredFeatures: wanted });
  const out = [];
  for (const { name, code } of shaders) {
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ label: name, code });
    const info = await module.getCompilationInfo();
    const scope = await device.popErrorScope();
    const errors = info.messages
      .filter((m) => m.type === "error")
      .map((m) => `${m.lineNum}:${m.linePos}: ${m.message}`);
    if (scope && errors.length === 0) errors.push(scope.message);
    out.push({ name, errors });
  }
  const info = adapter.info || {};
  return {
    adapter: [info.vendor, info.architecture, info.description].filter(Boolean).join(" "),
    features: [...device.features].sort(),
    shaders: out,
  };
}
