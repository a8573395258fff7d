// Adam step bandwidth: each step reads w, g, m, v and writes w, m, v (7 × 4 bytes per element).
// The timed region runs STEPS steps and waits for the GPU; GB/s is printed when the run ends.
import { init, type Shape, sizeOf, Tensor } from "../engine/tensor.ts";
import { Adam } from "../engine/optim/optimizers.ts";

const rt = await init();
const STEPS = 10;
const BYTES_PER_ELEMENT = 7 * 4;

const CASES: Record<string, Shape[]> = {
  "TP1 MLP (784×512, 512, 512×10, 10)": [[784, 512], [512], [512, 10], [10]],
  "one 4M-element parameter": [[4 * 1024 * 1024]],
};

const results: string[] = [];
for (const [label, shapes] of Object.entries(CASES)) {
  const params = shapes.map((s) => Tensor.uniform(s, -0.1, 0.1).requireGrad().keep());
  for (const p of params) p.grad = Tensor.uniform(p.shape, -1, 1).keep();
  const opt = new Adam(params);
  opt.step(); // compile the pipeline outside the timings
  await rt.sync();
  const elements = shapes.reduce((n, s) => n + sizeOf(s), 0);
  const times: number[] = [];
  Deno.bench({
    name: `Adam ×${STEPS} steps + sync, ${label}`,
    group: "adam",
    async fn(b) {
      const start = performance.now();
      b.start();
      for (let i = 0; i < STEPS; i++) opt.step();
      await rt.sync();
      b.end();
      times.push(performance.now() - start);
    },
  });
  globalThis.addEventListener("unload", () => {
    if (!times.length) return;
    const median = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
    const gbps = (STEPS * elements * BYTES_PER_ELEMENT) / (median * 1e6);
    results.push(
      `${label}: ${elements} elements, ${(median / STEPS).toFixed(3)} ms/step, ` +
        `${gbps.toFixed(2)} GB/s`,
    );
    if (results.length === Object.keys(CASES).length) {
      console.log(`\nAdam step bandwidth on ${rt.ctx.report.description || "(unknown adapter)"}:`);
      for (const line of results) console.log(`  ${line}`);
    }
  });
}
