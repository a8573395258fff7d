// The engine's pages in headless Chromium on WebGPU (Dawn/SwiftShader), against a store written by
// the real labs (TP1, demo and TP5's burst_simple unit, --quick): the playground classifies real
// MNIST test digits painted into its canvas with the same probabilities as Deno's forward pass of
// the same model (and the server's answer beside them agrees), the spirals page trains the demo
// MLP with `fit` until its loss is below a bar while the page keeps turning its event loop, the
// attention demo's weights equal Deno's for the same generated sequences, and a browser without
// WebGPU gets the page's message instead of an error. Cost: about 1 minute (three quick lab runs,
// the bundles, ~35 pipelines built by SwiftShader).
import assert from "node:assert/strict";
import { noGrad } from "../engine/autograd.ts";
import { loadModelState } from "../engine/io/checkpoint.ts";
import { decodeSafetensors } from "../engine/io/safetensors.ts";
import { Tensor } from "../engine/tensor.ts";
import { burstTask } from "../labs/data/attention_tasks.ts";
import { loadMnist } from "../labs/data/mnist.ts";
import { PART1_EXPERIMENT } from "../labs/tp5/part1.ts";
import { AttentionGru } from "../models/attention_gru.ts";
import { openStore } from "../tracking/store.ts";
import { Predictor } from "../web/predict.ts";
import { TP1_MODEL_ARTIFACT } from "../web/routes/run_predict.ts";
import type { TrainReport } from "../web/islands/TrainSpirals.tsx";
import { collectPageErrors, launchWebGpuChromium } from "./browser_webgpu.ts";
import { setup } from "./helpers.ts";
import { runLab } from "./lab_runner.ts";
import { baseUrl, buildIslands, HYDRATION_MS, launchChromium, serveUi } from "./web_helpers.ts";

const DIGITS = 6;
/** Demo lab, quick data (320 training points), 16 hidden units: 40 epochs get below this. */
const SPIRALS_LOSS_BAR = 0.5;
const TRAIN_EPOCHS = 40;
/** A frame at 60 Hz: the median gap between event-loop turns while training stays under it. */
const FRAME_MS = 1000 / 60;

async function labStore(dir: string): Promise<string> {
  const mlruns = `${dir}/mlruns`;
  for (const lab of [["tp1"], ["demo"], ["tp5", "--unit", "burst_simple"]]) {
    const args = [...lab, "--quick", "--checkpoint-dir", `${dir}/checkpoints`];
    const out = await runLab(args, mlruns);
    if (out.code !== 0) throw new Error(`lab ${lab} failed:\n${out.stderr.slice(-2000)}`);
  }
  return mlruns;
}

Deno.test({
  name: "engine pages in Chromium: playground and attention match Deno, spirals train in the page",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "denograd_engine_pages_" });
    const [mlruns] = await Promise.all([labStore(dir), buildIslands(), setup()]);
    const store = openStore(mlruns);
    const server = serveUi(mlruns);
    const base = baseUrl(server);
    const browser = await launchWebGpuChromium();
    try {
      await t.step(
        "playground: MNIST test digits, in-page probabilities equal Deno's",
        async () => {
          const page = await browser.newPage();
          const errors = collectPageErrors(page);
          const [tp1] = await store.searchRuns({
            experimentIds: (await store.listExperiments()).map((e) => e.experimentId),
            where: [{ field: "tags.denograd.lab", op: "=", value: "tp1" }],
          });
          const deno = Predictor.load(
            await store.readArtifact(tp1.info.runId, TP1_MODEL_ARTIFACT),
            "deno",
          );
          const mnist = await loadMnist();
          await page.goto(`${base}/playground`);
          await page.waitForSelector("html[data-playground='ready']", { timeout: 300_000 });
          for (let d = 0; d < DIGITS; d++) {
            const pixels = Array.from(
              mnist.testImages.subarray(d * 784, (d + 1) * 784),
              (v) => Math.round(v * 255),
            );
            // Each MNIST pixel as a 10×10 block: the page's 28×28 reading gives it back exactly.
            await page.evaluate((values) => {
              const canvas = document.querySelector<HTMLCanvasElement>(
                "canvas[data-digit-canvas]",
              )!;
              const ctx = canvas.getContext("2d")!;
              values.forEach((v, i) => {
                ctx.fillStyle = `rgb(${v}, ${v}, ${v})`;
                ctx.fillRect((i % 28) * 10, Math.floor(i / 28) * 10, 10, 10);
              });
            }, pixels);
            await page.click("button[data-classify]");
            await page.waitForSelector(`html[data-classified="${d + 1}"]`, { timeout: 60_000 });
            const [inPage, server] = await page.locator(".playground-bars").evaluateAll((els) =>
              els.map((e) => JSON.parse((e as HTMLElement).dataset.probabilities ?? "null"))
            );
            const expected = await deno.predict(Float32Array.from(pixels, (v) => v / 255), 1);
            for (const [who, got] of [["page", inPage], ["server", server]] as const) {
              assert.equal(got.length, 10, who);
              got.forEach((p: number, c: number) =>
                assert.ok(
                  Math.abs(p - expected[c]) <= 1e-5,
                  `digit ${d} (label ${mnist.testLabels[d]}), class ${c}: ${who} ${p}, Deno ${
                    expected[c]
                  }`,
                )
              );
            }
          }
          const latency = await page.locator("[data-title^='in this page'] p").textContent();
          const first = await page.locator("[data-first-result-ms]").getAttribute(
            "data-first-result-ms",
          );
          const ready = await page.evaluate(() => document.documentElement.dataset.readyMs);
          console.log(
            `playground: ready ${ready} ms after load (engine, model, pipelines); first result ` +
              `${first} ms after load; last inference ${latency}`,
          );
          deno.dispose();
          assert.deepEqual(errors, []);
          await page.close();
        },
      );

      await t.step("train in the page: the demo MLP's loss falls below the bar", async () => {
        const page = await browser.newPage();
        const errors = collectPageErrors(page);
        await page.goto(`${base}/train?epochs=${TRAIN_EPOCHS}`);
        await page.waitForSelector("html[data-hydrated]", { timeout: HYDRATION_MS });
        await page.click("button[data-train]");
        await page.waitForSelector("html[data-trained]", { timeout: 600_000 });
        const report: TrainReport = JSON.parse(
          (await page.evaluate(() => document.documentElement.dataset.trained))!,
        );
        assert.equal(report.losses.length, TRAIN_EPOCHS);
        const last = report.losses.at(-1)!;
        assert.ok(last < SPIRALS_LOSS_BAR && last < report.losses[0], `losses ${report.losses}`);
        assert.ok(report.pipelines > 0, "no pipeline was built before training");
        assert.ok(report.blockMs.median < FRAME_MS, `event loop ${JSON.stringify(report.blockMs)}`);
        const epochMs = report.epochMs.reduce((a, b) => a + b, 0) / report.epochMs.length;
        console.log(
          `spirals in the page: loss ${report.losses[0].toFixed(3)} → ${last.toFixed(3)}, ` +
            `${epochMs.toFixed(0)} ms/epoch, ${report.pipelines} pipelines prepared in ` +
            `${(report.prepareMs / 1000).toFixed(1)} s, event-loop gaps ` +
            `${JSON.stringify(report.blockMs)}`,
        );
        assert.deepEqual(errors, []);
        await page.close();
      });
      await t.step("attention demo: TP5 Part 1's weights in the page equal Deno's", async () => {
        const page = await browser.newPage();
        const errors = collectPageErrors(page);
        await page.goto(`${base}/attention-demo`);
        await page.waitForSelector("html[data-attention-drawn='1']", { timeout: 300_000 });
        const inPage: number[][] = JSON.parse(
          (await page.locator("[data-attention-weights]").getAttribute("data-attention-weights"))!,
        );
        const [run] = await store.searchRuns({
          experimentIds: [(await store.getExperimentByName(PART1_EXPERIMENT))!.experimentId],
        });
        const p = run.params;
        const [steps, features] = [Number(p.time_steps), Number(p.features)];
        const model = new AttentionGru({
          steps,
          features,
          units: Number(p.gru_units),
          head: { kind: "classes", classes: 3 },
          seed: Number(p.model_seed),
        });
        const weights = await store.readArtifact(run.info.runId, "model/weights.safetensors");
        loadModelState(model, decodeSafetensors(weights).tensors);
        model.eval();
        // The page's first draw: 8 burst sequences of seed 1.
        const task = burstTask(1, { samples: inPage.length, steps, features });
        const x = Tensor.from(task.x, [inPage.length, steps, features]);
        const expected = await noGrad(() => model.attend(x)).weights.data();
        inPage.flat().forEach((w, i) =>
          assert.ok(
            Math.abs(w - expected[i]) <= 1e-5,
            `weight ${i}: page ${w}, Deno ${expected[i]}`,
          )
        );
        model.dispose();
        assert.deepEqual(errors, []);
        await page.close();
      });
    } finally {
      await browser.close();
    }

    await t.step("a browser without WebGPU gets the page's message", async () => {
      const plain = await launchChromium(); // no --enable-unsafe-webgpu: SwiftShader is blocked
      try {
        const page = await plain.newPage();
        await page.goto(`${base}/playground`);
        await page.locator("[data-status]", { hasText: /WebGPU/ }).waitFor({ timeout: 60_000 });
        const status = await page.locator("[data-status]").textContent();
        assert.match(status!, /no WebGPU|no adapter/, status!);
      } finally {
        await plain.close();
      }
    });
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  },
});
