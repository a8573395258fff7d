// Matmul throughput: squares and the TP1 Dense layer (128×784 · 784×512) with its two backward
// products. Each timed region encodes REPS products on random inputs and waits for the GPU;
// GFLOP/s (2·M·N·K per product over the median region time) prints when the run ends.
import { init, Tensor } from "../engine/tensor.ts";
import { matmul, matmulFlops, type MatmulOptions } from "../engine/ops/matmul.ts";

const rt = await init();
/** Work per timed region, so one sync (~11 ms on lavapipe) stays small against it. */
const FLOPS_PER_REGION = 2e9;

interface Case {
  label: string;
  m: number;
  n: number;
  k: number;
  options?: Omit<MatmulOptions, "bias"> & { bias?: boolean };
}

const CASES: Case[] = [
  ...[256, 512, 1024, 2048].map((s): Case => ({ label: `${s}×${s}×${s}`, m: s, n: s, k: s })),
  {
    label: "Dense forward 128×784 · 784×512 + bias, relu",
    m: 128,
    n: 512,
    k: 784,
    options: { bias: true, activation: "relu" },
  },
  {
    label: "Dense dX = dY·Wᵀ: 128×512 · (784×512)ᵀ",
    m: 128,
    n: 784,
    k: 512,
    options: { transB: true },
  },
  {
    label: "Dense dW = Xᵀ·dY: (128×784)ᵀ · 128×512",
    m: 784,
    n: 512,
    k: 128,
    options: { transA: true },
  },
];

const results: string[] = [];
for (const c of CASES) {
  const { transA = false, transB = false, bias = false, ...rest } = c.options ?? {};
  const a = Tensor.uniform(transA ? [c.k, c.m] : [c.m, c.k], -1, 1).keep();
  const b = Tensor.uniform(transB ? [c.n, c.k] : [c.k, c.n], -1, 1).keep();
  const options: MatmulOptions = {
    ...rest,
    transA,
    transB,
    bias: bias ? Tensor.uniform([c.n], -1, 1).keep() : undefined,
  };
  const flops = matmulFlops(c.m, c.n, c.k);
  const reps = Math.max(1, Math.min(64, Math.round(FLOPS_PER_REGION / flops)));
  // Compile the pipeline and touch every buffer outside the timings.
  matmul(a, b, options).dispose();
  await rt.sync();
  const times: number[] = [];
  Deno.bench({
    name: `matmul ${c.label} ×${reps} + sync`,
    group: "matmul",
    n: 5,
    warmup: 1,
    async fn(ctx) {
      const start = performance.now();
      ctx.start();
      for (let i = 0; i < reps; i++) matmul(a, b, options).dispose();
      await rt.sync();
      ctx.end();
      times.push(performance.now() - start);
    },
  });
  globalThis.addEventListener("unload", () => {
    if (!times.length) return;
    times.sort((x, y) => x - y);
    const median = times[Math.floor(times.length / 2)];
    const gflops = (x: number) => (reps * flops / (x * 1e6)).toFixed(1);
    results.push(
      `${c.label.padEnd(48)} ${gflops(median).padStart(7)} GFLOP/s median, ` +
        `${gflops(times[0]).padStart(7)} best (${(median / reps).toFixed(2)} ms per product)`,
    );
    if (results.length === CASES.length) {
      const backend = Deno.env.get("DENO_WEBGPU_BACKEND") ?? "default";
      console.log(
        `\nmatmul on ${rt.ctx.report.description || "(unknown adapter)"}, backend ${backend}:`,
      );
      for (const line of results) console.log(`  ${line}`);
    }
  });
}
