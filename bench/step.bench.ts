// Training-step overhead: CPU time to encode one MNIST-MLP step (forward, loss, backward, Adam)
// without waiting for the GPU, and the full step time including the GPU (sync inside the region).
import { Linear } from "../engine/nn/linear.ts";
import { Dropout } from "../engine/nn/dropout.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { Rng } from "../engine/random.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { benchKernel, rt } from "./lib/kernel.ts";
import { denseStepWork } from "./lib/work.ts";

const rng = new Rng(1);
const model = new Sequential(
  new Linear(784, 512, { activation: "relu", rng }),
  new Dropout(0.2, { seed: 1 }),
  new Linear(512, 10, { rng }),
);
const opt = new Adam(model.parameters());
const x = Tensor.uniform([128, 784], 0, 1, rng).keep();
const y = Tensor.from(Array.from({ length: 128 }, () => rng.int(10)), [128], "i32").keep();

function step(): void {
  tidy(() => {
    const loss = softmaxCrossEntropy(model.forward(x), y);
    opt.zeroGrad();
    loss.backward();
    opt.step();
  });
}

// Warm-up compiles every pipeline; count the dispatches of one step.
step();
await rt.sync();
const before = rt.poolStats().dispatches;
step();
const dispatchesPerStep = rt.poolStats().dispatches - before;
await rt.sync();

const encodeMs: number[] = [];
Deno.bench({
  name: `MLP 784-512-10 step, encode only (${dispatchesPerStep} dispatches)`,
  group: "step",
  async fn(b) {
    b.start();
    const t0 = performance.now();
    step();
    encodeMs.push(performance.now() - t0);
    b.end();
    await rt.sync(); // outside the timed region: keep the queue short
  },
});

benchKernel({
  kernel: "MLP 784-512-10 step",
  variant: "encode + GPU",
  shape: "batch 128",
  work: denseStepWork(128, [784, 512, 10]),
  setup: () => step,
});

globalThis.addEventListener("unload", () => {
  if (!encodeMs.length) return; // filtered out
  encodeMs.sort((a, b) => a - b);
  const median = encodeMs[encodeMs.length >> 1];
  console.log(
    `step encode: median ${median?.toFixed(3)} ms CPU for ${dispatchesPerStep} dispatches ` +
      `(${(median / dispatchesPerStep * 1000).toFixed(1)} µs per dispatch)`,
  );
});
