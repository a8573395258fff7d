// The benchmark page in headless Chromium on WebGPU (Dawn/SwiftShader): bench/'s cases run in the
// page (the ceilings and the 256³ matmul here, short regions), the table fills in, and the
// downloaded file is a bench/results/ file: `deno task bench:compare` reads it beside a lavapipe
// result, and the UI's benchmarks page lists and shows it. Cost: about 20 s.
import assert from "node:assert/strict";
import * as path from "node:path";
import type { ResultFile } from "../bench/lib/report.ts";
import { collectPageErrors, launchWebGpuChromium } from "./browser_webgpu.ts";
import { baseUrl, BENCH_DIR, buildIslands, HYDRATION_MS, serveUi } from "./web_helpers.ts";

const FILTER = "matmul 256×256×256";

Deno.test({
  name: "benchmark page in Chromium: a results file that bench:compare and the UI read",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "denograd_bench_page_" });
    const benchDir = path.join(dir, "results");
    await Deno.mkdir(benchDir);
    await buildIslands();
    const server = serveUi(`file:${path.join(dir, "mlruns")}`, benchDir);
    const browser = await launchWebGpuChromium();
    let saved: string;
    try {
      const page = await browser.newPage({ acceptDownloads: true });
      const errors = collectPageErrors(page);
      const query = `filter=${encodeURIComponent(FILTER)}&region-ms=50&iterations=3`;
      await page.goto(`${baseUrl(server)}/benchmarks/browser?${query}`);
      await page.waitForSelector("html[data-hydrated]", { timeout: HYDRATION_MS });
      await page.click("button[data-run]");
      await page.waitForSelector("html[data-bench-done]", { timeout: 600_000 });
      const kernels = await page.locator("table.bench tbody tr td:first-child").allTextContents();
      assert.deepEqual(kernels, [
        "ceiling copy 1 vec4/thread",
        "ceiling copy 4 vec4/thread",
        "ceiling fma 8 vec4 chains × 64",
        "matmul",
      ]);
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.click("button[data-download]"),
      ]);
      saved = path.join(benchDir, download.suggestedFilename());
      await download.saveAs(saved);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }

    const result: ResultFile = JSON.parse(await Deno.readTextFile(saved));
    assert.match(path.basename(saved), /^google-swiftshader-browser-\d{4}-\d{2}-\d{2}\.json$/);
    assert.equal(result.schema, 1);
    assert.equal(result.adapter.architecture, "swiftshader");
    assert.ok(result.ceilings && result.ceilings.gbps > 0 && result.ceilings.gflops > 0);
    const matmul = result.results.find((r) => r.name === `matmul 256×256×256`)!;
    assert.ok(matmul.ms && matmul.ms.avg > 0 && matmul.gflops! > 0, JSON.stringify(matmul));
    assert.equal(matmul.n, 3);
    assert.equal(matmul.file, "matmul.bench.ts");
    assert.equal(matmul.flops, 2 * 256 ** 3);

    // The committed lavapipe result (the newest, when a session has added one).
    const committed = [...Deno.readDirSync(BENCH_DIR)].map((e) => e.name)
      .filter((name) => /^llvmpipe-vulkan-\d{4}-\d{2}-\d{2}\.json$/.test(name)).sort();
    assert.ok(committed.length > 0, `no llvmpipe-vulkan result in ${BENCH_DIR}`);
    const lavapipe = path.join(BENCH_DIR, committed[committed.length - 1]);
    const compare = await new Deno.Command(Deno.execPath(), {
      args: ["task", "bench:compare", lavapipe, saved],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const table = new TextDecoder().decode(compare.stdout);
    assert.equal(compare.code, 0, new TextDecoder().decode(compare.stderr));
    assert.match(table, /B: .*backend browser/);
    assert.match(table, /\| matmul +\| 256×256×256 +\| +[\d.]+ \| +[\d.]+ \| +[\d.]+×/);
    console.log(table.split("\n").filter((l) => /ceiling|256×256×256|^[AB]:/.test(l)).join("\n"));

    const response = await fetch(
      `${baseUrl(server)}/benchmarks?file=${encodeURIComponent(path.basename(saved))}`,
    );
    const html = await response.text();
    assert.equal(response.status, 200);
    assert.match(html, /backend browser/);
    assert.match(html, /256×256×256/);
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  },
});
