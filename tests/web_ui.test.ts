// The web UI in headless Chromium against a store written by the real labs (TP1, demo, TP2, TP5
// in --quick mode): every page renders and hydrates, the islands respond (sort, filter, select
// two runs and see both curves, hover an attention cell and read its weight), a RUNNING run's
// page follows new metrics without a reload, and no page logs a console error. A screenshot of
// each page is saved under the test's temp folder (printed at the end).
import assert from "node:assert/strict";
import * as path from "node:path";
import type { Page } from "playwright-core";
import { openStore, type TrackingStore } from "../tracking/store.ts";
import { latestPerAdapter, listResultFiles } from "../web/bench_results.ts";
import {
  baseUrl,
  BENCH_DIR,
  buildIslands,
  HYDRATION_MS,
  launchChromium,
  serveUi,
  writeLabStore,
} from "./web_helpers.ts";

async function runIdByName(store: TrackingStore, experiment: string, runName: string) {
  const exp = await store.getExperimentByName(experiment);
  assert.ok(exp, `experiment ${experiment}`);
  const runs = await store.searchRuns({ experimentIds: [exp.experimentId] });
  const run = runs.find((r) => r.info.runName === runName);
  assert.ok(run, `run ${runName} in ${experiment}: ${runs.map((r) => r.info.runName)}`);
  return { experimentId: exp.experimentId, runId: run.info.runId };
}

/** The legend labels of the chart of `metric` once vega-embed has drawn it. */
async function legendOf(page: Page, metric: string): Promise<string[]> {
  const chart = page.locator(`.chart[data-metric="${metric}"]`);
  await chart.locator("svg .role-legend-label text").first().waitFor();
  return chart.locator("svg .role-legend-label text").allTextContents();
}

Deno.test({
  name: "web UI in Chromium: every page on a lab-written store, islands respond, live runs",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "denograd_web_ui_" });
    const shots = path.join(dir, "screenshots");
    await Deno.mkdir(shots);
    const [mlruns] = await Promise.all([writeLabStore(dir), buildIslands()]);
    const store = openStore(mlruns);
    const server = serveUi(mlruns);
    const base = baseUrl(server);
    const browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
    const visit = async (url: string) => {
      const response = await page.goto(base + url);
      assert.equal(response?.status(), 200, url);
      await page.waitForSelector("html[data-hydrated]", { timeout: HYDRATION_MS });
    };
    const shoot = async (name: string) => {
      await page.waitForTimeout(300);
      await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
    };
    const optimizers = await store.getExperimentByName("Optimizer Comparison");
    assert.ok(optimizers);

    try {
      await t.step("experiments list with run counts", async () => {
        await visit("/");
        const row = page.locator("table.experiments tr", { hasText: "Optimizer Comparison" });
        assert.equal(await row.locator("td.number").textContent(), "3");
        assert.ok(await page.locator("text=TP5_Part3_HTAP").count());
        await shoot("experiments");
      });

      await t.step("runs table: sort, filter, select two runs to compare", async () => {
        await visit(`/experiments/${optimizers.experimentId}`);
        const names = () => page.locator("tbody tr td:nth-child(2)").allTextContents();
        await page.click("th[data-column='name']");
        const ascending = await names();
        assert.equal(ascending.length, 3);
        assert.deepEqual(ascending, [...ascending].sort());
        await page.click("th[data-column='name']");
        assert.deepEqual(await names(), [...ascending].reverse());
        await page.fill("input[name='filter']", "comparison_rms");
        assert.deepEqual(await names(), ["Optimizer_Comparison_RMSprop"]);
        await page.fill("input[name='filter']", "");
        const optimizerColumn = page.locator("th[data-column='params.optimizer']");
        assert.equal(await optimizerColumn.count(), 1);
        await page.click("details.column-picker summary");
        await page.uncheck("input[name='params.optimizer']");
        assert.equal(await optimizerColumn.count(), 0);
        await page.check("input[name='params.optimizer']");
        assert.equal(await optimizerColumn.count(), 1);
        await page.check("input[aria-label='select Optimizer_Comparison_Adam']");
        await page.check("input[aria-label='select Optimizer_Comparison_RMSprop']");
        await shoot("runs_table");
        await page.click("#compare-link");
        await page.waitForSelector("html[data-hydrated]", { timeout: HYDRATION_MS });
        // --quick trains one epoch: each metric is one value, shown per run in a table.
        const columns = await page.locator("table.single-values thead th").allTextContents();
        assert.deepEqual(columns.slice(1).sort(), [
          "Optimizer_Comparison_Adam",
          "Optimizer_Comparison_RMSprop",
        ]);
        const lossRow = page.locator("table.single-values tr[data-metric='training_loss'] td");
        assert.equal(await lossRow.count(), 2);
        const optimizerRow = page.locator("table.diff tbody tr")
          .filter({ has: page.locator("th", { hasText: /^optimizer$/ }) });
        assert.equal(await optimizerRow.getAttribute("class"), "differs");
        await page.locator(".param-scatter svg").waitFor();
        await shoot("compare_tp2");
      });

      await t.step("compare TP5 seeds' models: both loss curves drawn", async () => {
        const a = await runIdByName(store, "TP5_Part3_HTAP", "HTAP_seed0");
        const b = await runIdByName(store, "TP5_Part3_HTAP", "GRU64_seed0");
        await visit(`/compare?runs=${a.runId},${b.runId}`);
        assert.deepEqual((await legendOf(page, "loss")).sort(), ["GRU64_seed0", "HTAP_seed0"]);
        const lines = page.locator(`.chart[data-metric="loss"] .mark-line path`);
        assert.equal(await lines.count(), 2);
        await shoot("compare_tp5");
      });

      await t.step("run page: charts with smoothing and log scale, artifacts", async () => {
        const { runId } = await runIdByName(store, "demo", "demo-seed0");
        await visit(`/runs/${runId}`);
        const lossLines = page.locator(`.chart[data-metric="loss"] .mark-line path`);
        await lossLines.first().waitFor();
        assert.equal(await lossLines.count(), 1);
        await page.locator("input[name='smoothing']").fill("0.6");
        await page.waitForFunction(() =>
          document.querySelectorAll('.chart[data-metric="loss"] .mark-line path').length === 2
        );
        await page.check("input[name='log']");
        await page.selectOption("select[name='axis']", "time");
        await page.locator(`.chart[data-metric="loss"] text:has-text("wall time")`).waitFor();
        const safetensors = page.locator(".artifact table.safetensors tbody tr");
        assert.ok(await safetensors.count() > 0, "the model's tensors are listed");
        assert.match(await safetensors.first().textContent() ?? "", /F32\[\d+(, \d+)*\]\d+/);
        await shoot("run_demo");
      });

      await t.step("run page: report.md rendered, PNG figures inline", async () => {
        const { runId } = await runIdByName(store, "TP5_Part3_HTAP", "LOP120_summary");
        await visit(`/runs/${runId}`);
        assert.ok(await page.locator(".report h2").count() > 0, "report.md has headings");
        const images = page.locator(".artifact img");
        assert.ok(await images.count() > 0);
        const loaded = await images.evaluateAll((els) =>
          els.every((el) =>
            (el as HTMLImageElement).complete && (el as HTMLImageElement).naturalWidth > 0
          )
        );
        assert.ok(loaded, "every inline PNG loaded");
        await page.locator(".artifact[data-artifact='p3_horizon_error.json'] svg").waitFor();
        await page.screenshot({
          path: path.join(shots, "run_lop120_top.png"),
          clip: { x: 0, y: 0, width: 1280, height: 2400 },
          fullPage: true,
        });
      });

      await t.step("attention explorer: hover a cell and read its weight", async () => {
        const { runId } = await runIdByName(store, "TP5_Part3_HTAP", "LOP120_summary");
        const reentry = JSON.parse(
          new TextDecoder().decode(await store.readArtifact(runId, "p3_attention_reentry.json")),
        );
        await visit(`/runs/${runId}/attention`);
        const readout = page.locator("#attention-readout");
        for (const sample of [0, 2]) {
          await page.selectOption("select[name='sample']", String(sample));
          await page.hover("rect.cell[data-query='99'][data-key='7']");
          const weight = reentry.htap[sample][7].toPrecision(4);
          assert.equal(await readout.textContent(), `query t=99 · key s=7 · α=${weight}`);
        }
        assert.ok(await page.locator("rect.key-span").count() > 0, "key frames marked");
        assert.ok(await page.locator("rect.lure-span").count() > 0, "lure frames marked");
        await shoot("attention_lop120");
        await page.selectOption("select[name='source']", {
          label: "Part 3: H-TAP attention over memory frames",
        });
        await page.locator("input[name='query']").fill("5");
        await page.hover("rect.cell[data-query='85'][data-key='40']");
        assert.match(await readout.textContent() ?? "", /^query t=85 · key s=40 · α=0\.\d+/);
        await shoot("attention_heatmap");
        const p2 = await runIdByName(store, "TP5_Part2_Seq2Seq", "seq2seq_learned-scalar_50to20");
        await visit(`/runs/${p2.runId}/attention`);
        await page.selectOption("select[name='head']", "1");
        await page.hover("rect.cell[data-query='3'][data-key='10']");
        assert.match(await readout.textContent() ?? "", /^query t=3 · key s=10 · α=/);
        await shoot("attention_seq2seq");
      });

      await t.step("every run's page (and attention explorer) renders and hydrates", async () => {
        const experiments = await store.listExperiments();
        const runs = await store.searchRuns({
          experimentIds: experiments.map((e) => e.experimentId),
        });
        assert.ok(runs.length >= 20, `${runs.length} runs`);
        for (const run of runs) {
          await visit(`/runs/${run.info.runId}`);
          const attention = page.locator("a", { hasText: "attention explorer" });
          if (await attention.count()) {
            await attention.click();
            await page.waitForSelector("html[data-hydrated] rect.cell");
          }
        }
      });

      await t.step("benchmarks: table, roofline, two files side by side", async () => {
        await visit("/benchmarks");
        const rooflines = page.locator(".chart.roofline");
        const adapters = latestPerAdapter(await listResultFiles(BENCH_DIR));
        assert.ok(adapters.length >= 2);
        assert.equal(await rooflines.count(), adapters.length, "one roofline per adapter");
        await rooflines.nth(1).locator("svg .mark-symbol").first().waitFor();
        assert.ok(await page.locator("table.bench tbody tr").count() > 10);
        const speedups = await page.locator("table.bench-compare tbody td:nth-child(5)")
          .allTextContents();
        assert.ok(speedups.some((s) => /^\d+(\.\d+)?×$/.test(s)), "ratios shown");
        await shoot("benchmarks");
      });

      await t.step(
        "live: a RUNNING run's page follows appended metrics without reloading",
        async () => {
          const exp = await store.getOrCreateExperiment("live");
          const run = await store.createRun(exp, { userId: "test", startTime: Date.now() });
          const now = Date.now();
          await store.logBatch(run.runId, {
            params: [{ key: "epochs", value: "5" }],
            metrics: [{ key: "loss", value: 1, step: 0, timestamp: now }],
          });
          await visit(`/runs/${run.runId}`);
          const progress = page.locator("#run-progress");
          assert.match(await progress.textContent() ?? "", /^RUNNING: step 0 \(epoch 1 of 5\)/);
          assert.equal(await page.locator("#run-status").textContent(), "RUNNING");
          await page.evaluate(() => (globalThis as { marker?: number }).marker = 42);
          await store.logBatch(run.runId, {
            metrics: [1, 2].map((step) => ({
              key: "loss",
              value: 1 / (step + 1),
              step,
              timestamp: now + step,
            })),
          });
          await page.waitForFunction(() =>
            document.getElementById("run-progress")?.textContent?.startsWith(
              "RUNNING: step 2 (epoch 3 of 5)",
            )
          );
          await page.locator(`.chart[data-metric="loss"] .mark-symbol path`).nth(2).waitFor();
          await store.setTerminated(run.runId, "FINISHED", Date.now());
          await page.waitForFunction(() =>
            document.getElementById("run-progress")?.textContent?.startsWith("FINISHED")
          );
          assert.equal(await page.evaluate(() => (globalThis as { marker?: number }).marker), 42);
          assert.equal(await page.locator("#run-status").textContent(), "FINISHED");
          await shoot("live_run");
        },
      );
    } finally {
      await browser.close();
      await server.shutdown();
      console.log(`web UI screenshots: ${shots}`);
    }
    assert.deepEqual(errors, []);
  },
});
