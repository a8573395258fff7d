// The op checks of tests/op_checks/ (the same definitions `deno test` runs) inside headless
// Chromium on Dawn (SwiftShader here): Tint compiles every kernel they use, and the browser's
// limits (10 storage buffers per stage, 256-byte offsets) apply. One case per kernel variant
// class per test runs (OpCheck.variant), since Chromium builds pipelines ~6× slower than Deno.
// Cost: about 4 minutes on this project's 2-core machine shared with other jobs
// (206 op checks, ~330 kernels compiled by Tint); the page's `?all` runs every case (1036).
import assert from "node:assert/strict";
import { ALL_OP_CHECKS, type OpSuiteOutcome, type OpSuiteReport } from "./op_checks/run.ts";
import {
  bundleForBrowser,
  collectPageErrors,
  launchWebGpuChromium,
  servePageScript,
} from "./browser_webgpu.ts";

const SUITE_TIMEOUT_MS = 15 * 60_000;

function countsByFamily(report: OpSuiteReport): string {
  const rows = new Map<string, { tests: number; ok: number; run: number; passed: number }>();
  for (const r of report.results) {
    const row = rows.get(r.family) ?? { tests: 0, ok: 0, run: 0, passed: 0 };
    row.tests++;
    if (!r.error) row.ok++;
    row.run += r.run;
    row.passed += r.passed;
    rows.set(r.family, row);
  }
  return [...rows].map(([family, r]) =>
    `${family.padEnd(12)} tests ${r.ok}/${r.tests}  op checks ${r.passed}/${r.run}`
  ).join("\n");
}

Deno.test({
  name: "browser op suite: every family's op checks pass in Chromium (Dawn/Tint)",
  async fn() {
    const server = servePageScript(await bundleForBrowser("tests/browser/op_suite_page.ts"));
    const browser = await launchWebGpuChromium();
    try {
      const page = await browser.newPage();
      const errors = collectPageErrors(page);
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      const outcome = () => (globalThis as { opSuite?: OpSuiteOutcome }).opSuite;
      await page.waitForFunction(outcome, null, {
        timeout: SUITE_TIMEOUT_MS,
        polling: 500,
      });
      const report = (await page.evaluate(outcome))!;
      if ("error" in report) throw new Error(`the op suite did not start: ${report.error}`);
      const failures = report.results.filter((r) => r.error).map((r) => `${r.name}: ${r.error}`);
      assert.deepEqual(failures, []);
      assert.deepEqual(errors, [], "the page logged errors (GPU validation, compile, uncaught)");
      const families = new Set(ALL_OP_CHECKS.map((t) => t.family));
      assert.deepEqual(new Set(report.results.map((r) => r.family)), families);
      const run = report.results.reduce((s, r) => s + r.run, 0);
      const passed = report.results.reduce((s, r) => s + r.passed, 0);
      const sampledOut = report.results.reduce((s, r) => s + r.sampledOut, 0);
      assert.ok(run > 0 && passed === run, `op checks: ${passed} of ${run} passed`);
      console.log(
        `Chromium (${report.adapter.architecture || report.adapter.vendor}): ` +
          `${report.results.length} tests passed, op checks ${passed}/${run} ` +
          `(${sampledOut} left to deno test), ${report.kernels.length} kernels compiled, ` +
          `${report.seconds.toFixed(0)} s\n${countsByFamily(report)}`,
      );
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
