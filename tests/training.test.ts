// Whole-engine behaviour: learning, memory flatness over many steps, determinism.
import assert from "node:assert/strict";
import { Linear } from "../engine/nn/linear.ts";
import { Dropout } from "../engine/nn/dropout.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import type { Module } from "../engine/nn/module.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { argmax } from "../engine/ops/reduce.ts";
import { equal } from "../engine/ops/elementwise.ts";
import { mean } from "../engine/ops/reduce.ts";
import { noGrad } from "../engine/autograd.ts";
import { Rng } from "../engine/random.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { settleGarbage, setup } from "./helpers.ts";
import { spirals } from "../labs/demo.ts";

const rt = await setup();

function mlp(seed: number, hidden: number, dropout = 0): Sequential {
  const rng = new Rng(seed);
  const layers: Module[] = [
    new Linear(2, hidden, { activation: "relu", rng }),
    new Linear(hidden, hidden, { activation: "relu", rng }),
    new Linear(hidden, 2, { rng }),
  ];
  if (dropout > 0) layers.splice(2, 0, new Dropout(dropout, { seed }));
  return new Sequential(...layers);
}

/** One training step in a scope: forward, loss, backward, update; returns the loss tensor. */
function step(model: Sequential, opt: Adam, x: Tensor, y: Tensor): Tensor {
  return tidy(() => {
    const loss = softmaxCrossEntropy(model.forward(x), y);
    opt.zeroGrad();
    loss.backward();
    opt.step();
    return loss;
  });
}

async function accuracy(model: Sequential, x: Tensor, y: Tensor): Promise<number> {
  model.eval();
  const acc = noGrad(() => tidy(() => mean(equal(argmax(model.forward(x), -1), y))));
  model.train();
  const value = await acc.item();
  acc.dispose();
  return value;
}

Deno.test("an MLP learns two spirals to ≥ 99 % accuracy", async () => {
  const { x, y } = spirals(300, new Rng(1));
  const xs = Tensor.from(x, [600, 2]);
  const ys = Tensor.from(y, [600], "i32");
  const model = mlp(7, 64);
  const opt = new Adam(model.parameters(), { lr: 0.01 });
  let first = NaN;
  for (let i = 0; i < 600; i++) {
    const loss = step(model, opt, xs, ys);
    if (i === 0) first = await loss.item();
    loss.dispose();
  }
  const acc = await accuracy(model, xs, ys);
  assert.ok(acc >= 0.99, `accuracy ${acc} (first loss ${first})`);
});

Deno.test("1,000 training steps leave the pool's live bytes flat", async () => {
  const rng = new Rng(3);
  const model = mlp(11, 32, 0.2);
  const opt = new Adam(model.parameters());
  const x = Tensor.uniform([64, 2], -1, 1, rng);
  const y = Tensor.from(Array.from({ length: 64 }, () => rng.int(2)), [64], "i32");
  await settleGarbage(); // earlier tests' garbage goes now, not in the middle of the count
  const live: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const loss = step(model, opt, x, y);
    if (i % 100 === 99) {
      await loss.item(); // the only sync: every 100 steps
      live.push(rt.poolStats().liveBytes);
    }
    loss.dispose();
  }
  assert.ok(live.every((b) => b === live[0]), `live bytes moved: ${live.join(", ")}`);
});

Deno.test("same seed, same adapter → identical loss curve (dropout and shuffling included)", async () => {
  const curve = async (seed: number) => {
    const rng = new Rng(seed);
    const { x, y } = spirals(64, rng);
    const model = mlp(seed, 16, 0.3);
    const opt = new Adam(model.parameters(), { lr: 0.01 });
    const losses: Tensor[] = [];
    for (let i = 0; i < 30; i++) {
      const order = rng.shuffle(Array.from({ length: 128 }, (_, k) => k)).slice(0, 32);
      const xb = Tensor.from(order.flatMap((k) => [x[2 * k], x[2 * k + 1]]), [32, 2]);
      const yb = Tensor.from(order.map((k) => y[k]), [32], "i32");
      losses.push(step(model, opt, xb, yb));
      xb.dispose();
      yb.dispose();
    }
    const values: number[] = [];
    for (const l of losses) values.push(await l.item());
    return values;
  };
  const a = await curve(5);
  const b = await curve(5);
  const c = await curve(6);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a[29] < a[0], `loss did not fall: ${a[0]} → ${a[29]}`);
});
