// Headless Chromium for the CI browser checks (.ci/webgpu_shaders.mjs, .ci/report_layout.mjs):
// /usr/bin/chromium or the browser named by $CHROMIUM, a throwaway profile, no background
// traffic. `close()` shuts the browser and removes the profile.
//
// Usage: const { browser, close } = await launchChromium("tag", ["--extra-flag"]);

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

export async function launchChromium(tag, extraArgs = []) {
  const profile = mkdtempSync(join(tmpdir(), `${tag}-`));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      ...extraArgs,
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
    ],
  });
  const close = async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { browser, close };
}
