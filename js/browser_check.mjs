#!/usr/bin/env node
// Drive the bundle's web page in headless Chromium (playwright-core, the system /usr/bin/chromium; no
// browser download) and print what it showed as JSON.
//
//   node js/browser_check.mjs --url http://127.0.0.1:PORT/web/index.html --texts TEXTS.json \
//        --screenshot out.png [--bulk MORE_TEXTS.json] [--explain-bulk TEXTS.json] [--chromium /usr/bin/chromium]
//        [--timeout-ms 60000] [--node-modules js/node_modules]
//
// --texts are typed into the page and read back from the DOM, with the word highlighting ("explanation":
// what the page rendered, "highlighted": [{word, attribution}] read from the coloured spans); --bulk texts go
// straight to the page's classifier (window.zuoxiao.predict, the same code the UI calls) and come back as
// "bulk" ([{probs, logits}]); --explain-bulk texts through window.zuoxiao.explain as "explanations".
//
// Every request that does not go to the page's own host is aborted and listed in "external_requests"
// (the page must work offline). Output: {"ready_ms", "results": [{"text", "label", "probs", "ms"}],
// "wasm_content_type", "console_errors", "page_errors", "external_requests", "browser_version"}.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const opts = { chromium: "/usr/bin/chromium", timeoutMs: 60000, nodeModules: resolve(here, "node_modules") };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  opts[key] = argv[++i];
}
if (!opts.url || !opts.texts || !opts.screenshot) {
  console.error("usage: browser_check.mjs --url URL --texts TEXTS.json --screenshot OUT.png [--chromium PATH]");
  process.exit(2);
}
const timeout = Number(opts.timeoutMs);
const require = createRequire(join(resolve(opts.nodeModules), "noop.js"));
const { chromium } = require("playwright-core");

const texts = JSON.parse(readFileSync(opts.texts, "utf8"));
const pageHost = new URL(opts.url).host;
const report = { console_errors: [], page_errors: [], external_requests: [], wasm_content_type: null, results: [] };
const profile = mkdtempSync(join(tmpdir(), "zuoxiao-chromium-"));  // fresh --user-data-dir every run
const context = await chromium.launchPersistentContext(profile, {
  executablePath: opts.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
  viewport: { width: 900, height: 700 },
  timeout,
});
try {
  report.browser_version = context.browser()?.version() ?? null;
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("console", (m) => { if (m.type() === "error") report.console_errors.push(m.text()); });
  page.on("pageerror", (e) => report.page_errors.push(String(e)));
  page.on("response", (r) => {
    if (r.url().endsWith(".wasm")) report.wasm_content_type = r.headers()["content-type"] ?? null;
  });
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === "data:" || url.protocol === "blob:" || url.host === pageHost) return route.continue();
    report.external_requests.push(url.href);
    return route.abort();
  });
  const t0 = Date.now();
  await page.goto(opts.url);
  await page.waitForFunction(() => ["ready", "error"].includes(document.getElementById("status")?.dataset.state));
  report.ready_ms = Date.now() - t0;
  report.status = await page.locator("#status").textContent();
  report.browser_version ??= await page.evaluate(() => navigator.userAgent);
  if ((await page.locator("#status").getAttribute("data-state")) === "ready") {
    for (const [i, text] of texts.entries()) {
      const box = page.locator("#text");
      const t1 = Date.now();
      if (i === 0) await box.pressSequentially(text, { delay: 5 });  // real key presses for the first text
      else await box.fill(text);
      await page.locator("#classify").click();
      await page.waitForFunction((t) => {
        const r = document.getElementById("result");
        const why = document.getElementById("why");
        return r && !r.hidden && r.dataset.text === t && why && !why.hidden && why.dataset.text === t;
      }, text);
      const result = await page.evaluate(() => {
        const r = document.getElementById("result");
        const spans = [...document.querySelectorAll("#explanation .word")];
        return { label: document.getElementById("top-label").textContent, dom_label: r.dataset.label,
                 probs: JSON.parse(r.dataset.probs), details: document.getElementById("details").textContent,
                 explanation: JSON.parse(document.getElementById("why").dataset.explanation),
                 highlighted: spans.map((s) => ({ word: s.textContent, attribution: Number(s.dataset.attribution),
                                                  background: s.style.backgroundColor })) };
      });
      report.results.push({ text, ...result, ms: Date.now() - t1 });
    }
  }
  if (opts.bulk && (await page.locator("#status").getAttribute("data-state")) === "ready") {
    const bulk = JSON.parse(readFileSync(opts.bulk, "utf8"));
    const t2 = Date.now();
    report.bulk = await page.evaluate(async (items) => {
      const out = [];
      for (const t of items) {
        const r = await window.zuoxiao.predict(t);
        out.push({ probs: r.probs, logits: Array.from(r.logits) });
      }
      return out;
    }, bulk);
    report.bulk_ms = Date.now() - t2;
  }
  if (opts.explainBulk && (await page.locator("#status").getAttribute("data-state")) === "ready") {
    const items = JSON.parse(readFileSync(opts.explainBulk, "utf8"));
    const t3 = Date.now();
    report.explanations = await page.evaluate(async (list) => {
      const out = [];
      for (const t of list) out.push(await window.zuoxiao.explain(t));
      return out;
    }, items);
    report.explain_ms = Date.now() - t3;
  }
  await page.screenshot({ path: opts.screenshot, fullPage: true });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
