// Reduction, softmax and cross-entropy bandwidth. Each timed region runs REPS ops and waits for
// the GPU (the sync is inside the timing); GB/s — the bytes each op must read and write over
// the median time — prints at the end.
import { init, Tensor } from "../engine/tensor.ts";
import { noGrad } from "../engine/autograd.ts";
import { softmax, sum } from "../engine/ops/reduce.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";

const rt = await init();
// One sync costs ≈ 11 ms on lavapipe: small cases repeat more so it does not dominate.
const repsFor = (bytes: number) => (bytes < 1e6 ? 100 : 10);

interface Case {
  label: string;
  /** Bytes one op moves at least (inputs read once, outputs written once). */
  bytes: number;
  setup: () => () => void;
}

const CASES: Case[] = [
  {
    label: "sum over rows of [4096, 1024] → [4096]",
    bytes: 4 * (4096 * 1024 + 4096),
    setup: () => {
      const x = Tensor.uniform([4096, 1024]).keep();
      return () => sum(x, 1).dispose();
    },
  },
  {
    label: "sum over the batch axis of [4096, 1024] → [1024]",
    bytes: 4 * (4096 * 1024 + 1024),
    setup: () => {
      const x = Tensor.uniform([4096, 1024]).keep();
      return () => sum(x, 0).dispose();
    },
  },
  {
    label: "sum of all of [4096, 1024] → []",
    bytes: 4 * 4096 * 1024,
    setup: () => {
      const x = Tensor.uniform([4096, 1024]).keep();
      return () => sum(x).dispose();
    },
  },
  {
    label: "softmax over the last axis of [4096, 1000]",
    bytes: 4 * 2 * 4096 * 1000,
    setup: () => {
      const x = Tensor.uniform([4096, 1000], -5, 5).keep();
      return () => softmax(x).dispose();
    },
  },
  ...[[128, 10], [1024, 1000]].map(([n, c]): Case => ({
    label: `softmax cross-entropy fwd+bwd, [${n}, ${c}] logits, class ids`,
    // forward reads the logits; backward reads them again and writes their gradient.
    bytes: 4 * (3 * n * c + 2 * n),
    setup: () => {
      const logits = Tensor.uniform([n, c], -3, 3).requireGrad().keep();
      const labels = Tensor.from(
        Array.from({ length: n }, (_, i) => (i * 7) % c),
        [n],
        "i32",
      ).keep();
      return () => {
        const loss = softmaxCrossEntropy(logits, labels);
        loss.backward();
        noGrad(() => loss.dispose());
        logits.grad!.dispose();
        logits.grad = null;
      };
    },
  })),
];

const results: string[] = [];
for (const { label, bytes, setup } of CASES) {
  const run = setup();
  run(); // compile pipelines outside the timings
  await rt.sync();
  const times: number[] = [];
  const REPS = repsFor(bytes);
  Deno.bench({
    name: `${label} ×${REPS} + sync`,
    group: "reduce",
    async fn(b) {
      const start = performance.now();
      b.start();
      for (let i = 0; i < REPS; i++) run();
      await rt.sync();
      b.end();
      times.push(performance.now() - start);
    },
  });
  globalThis.addEventListener("unload", () => {
    if (!times.length) return;
    const median = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
    const gbps = (REPS * bytes) / (median * 1e6);
    results.push(`${label}: ${(median / REPS).toFixed(3)} ms, ${gbps.toFixed(2)} GB/s`);
    if (results.length === CASES.length) {
      console.log(`\nReductions on ${rt.ctx.report.description || "(unknown adapter)"}:`);
      for (const line of results) console.log(`  ${line}`);
    }
  });
}
