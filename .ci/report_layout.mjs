// Opens report.html files in headless Chromium at 1280 and 390 px wide and fails on:
// - a console error, page error or failed request;
// - an element wider than the viewport (at 390 px an element inside a container that scrolls
//   sideways, overflow-x auto or scroll, is allowed; at 1280 px no container may need to);
// - a plot series (SVG polyline, path, circle or line of class "series") that is not strictly
//   inside the plot area (the rect of class "plot-area") of its SVG, or a series without one.
// Closed <details> are opened first, so that what they hold is checked too.
//
// Usage: node .ci/report_layout.mjs REPORT.html...   (needs puppeteer-core from npm and
// /usr/bin/chromium, or the browser named by $CHROMIUM). With $REPORT_SCREENSHOTS set to a
// folder, a full-page screenshot per file and width is written there.

import { existsSync } from "node:fs";
import { join, resolve, basename } from "node:path";
import { pathToFileURL } from "node:url";
import { launchChromium } from "./chromium.mjs";

const WIDTHS = [1280, 390];
const reports = process.argv.slice(2);
if (reports.length === 0) {
  console.error("usage: node .ci/report_layout.mjs REPORT.html...");
  process.exit(2);
}
for (const report of reports) {
  if (!existsSync(report)) {
    console.error(`error: ${report}: no such file`);
    process.exit(2);
  }
}

const { browser, close } = await launchChromium("report-layout");

let failed = false;
try {
  for (const report of reports) {
    for (const width of WIDTHS) {
      const problems = await checkPage(report, width);
      const where = `${report} at ${width} px`;
      console.log(`${problems.length ? "FAIL" : "ok  "} ${where}`);
      for (const problem of problems.slice(0, 20)) console.log(`     ${problem}`);
      if (problems.length > 20) console.log(`     ... and ${problems.length - 20} more`);
      failed ||= problems.length > 0;
    }
  }
} finally {
  await close();
}
process.exit(failed ? 1 : 0);

async function checkPage(report, width) {
  const page = await browser.newPage();
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
  await page.setViewport({ width, height: 900 });
  await page.goto(pathToFileURL(resolve(report)).href, { waitUntil: "load" });
  const found = await page.evaluate(inspect, width < 800);
  problems.push(...found.problems);
  if (found.plots === 0) problems.push('no plot area (rect class="plot-area") on the page');
  if (process.env.REPORT_SCREENSHOTS) {
    const name = `${basename(report, ".html")}-${width}.png`;
    await page.screenshot({ path: join(process.env.REPORT_SCREENSHOTS, name), fullPage: true });
  }
  await page.close();
  return problems;
}

// Runs in the page. `narrow`: elements inside a sideways-scrolling container may be wider
// than the viewport.
function inspect(narrow) {
  const problems = [];
  const viewport = document.documentElement.clientWidth;
  const name = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const cls = el.getAttribute("class") ? `.${el.getAttribute("class").replace(/ /g, ".")}` : "";
    const text = (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 50);
    return `<${el.tagName.toLowerCase()}${id}${cls}> "${text}"`;
  };
  const scrollsSideways = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
  const inScroller = (el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (scrollsSideways(up)) return true;
    }
    return false;
  };
  for (const details of document.querySelectorAll("details")) details.open = true;

  if (document.documentElement.scrollWidth > viewport) {
    problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px wide`);
  }
  for (const el of document.body.querySelectorAll("*")) {
    // What an <svg> draws is clipped to it; the <svg> itself is checked.
    if (el.parentElement.closest("svg")) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    const outside = box.left < -0.5 || box.right > viewport + 0.5;
    if (outside && !(narrow && inScroller(el))) {
      problems.push(`wider than the viewport: ${name(el)} spans ${box.left.toFixed(0)}..${box.right.toFixed(0)} px`);
    }
    if (!narrow && scrollsSideways(el) && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`scrolls sideways: ${name(el)} holds ${el.scrollWidth} px in ${el.clientWidth} px`);
    }
  }

  let plots = 0;
  for (const svg of document.querySelectorAll("svg")) {
    const series = [...svg.querySelectorAll(".series")];
    const area = svg.querySelector("rect.plot-area");
    if (!area) {
      if (series.length) problems.push(`${series.length} series in an <svg> without a plot area`);
      continue;
    }
    plots += 1;
    const label = svg.getAttribute("aria-label") || `plot ${plots}`;
    if (series.length === 0) problems.push(`${label}: a plot area without any series`);
    const [ax, ay] = [area.x.baseVal.value, area.y.baseVal.value];
    const [aw, ah] = [area.width.baseVal.value, area.height.baseVal.value];
    for (const s of series) {
      const e = extent(s);
      const inside = e && e.every(Number.isFinite) &&
        e[0] > ax && e[2] < ax + aw && e[1] > ay && e[3] < ay + ah;
      if (!inside) {
        const shown = e ? e.map((v) => v.toFixed(1)).join(", ") : "none";
        problems.push(`${label}: <${s.tagName}> spans [${shown}] (x0, y0, x1, y1), plot area is [${ax}, ${ay}, ${ax + aw}, ${ay + ah}]`);
      }
    }
  }
  return { problems, plots };

  // [x0, y0, x1, y1] in the SVG's user units: the points of a polyline, the disc of a circle,
  // the box of a path, the ends of a line.
  function extent(s) {
    const tag = s.tagName.toLowerCase();
    let xs = [];
    let ys = [];
    if (tag === "polyline") {
      for (const p of s.points) { xs.push(p.x); ys.push(p.y); }
    } else if (tag === "circle") {
      const [cx, cy, r] = [s.cx.baseVal.value, s.cy.baseVal.value, s.r.baseVal.value];
      xs = [cx - r, cx + r];
      ys = [cy - r, cy + r];
    } else if (tag === "line") {
      xs = [s.x1.baseVal.value, s.x2.baseVal.value];
      ys = [s.y1.baseVal.value, s.y2.baseVal.value];
    } else {
      const b = s.getBBox();
      xs = [b.x, b.x + b.width];
      ys = [b.y, b.y + b.height];
    }
    if (xs.length === 0) return null;
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  }
}
