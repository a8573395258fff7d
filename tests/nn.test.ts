import assert from "node:assert/strict";
import { Tensor, tidy } from "../engine/tensor.ts";
import { Rng } from "../engine/random.ts";
import { argmax, sum } from "../engine/ops/reduce.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { Module } from "../engine/nn/module.ts";
import { Linear } from "../engine/nn/linear.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { Dropout } from "../engine/nn/dropout.ts";
import { BatchNorm } from "../engine/nn/batchnorm.ts";
import { Flatten } from "../engine/nn/flatten.ts";
import { GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh } from "../engine/nn/activation.ts";
import { assertClose, randomData, settleGarbage, setup, testRng } from "./helpers.ts";

const rt = await setup();

/** x·W + b in float64, x: [rows, k], W: [k, n]. */
function affineRef(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, k: number) {
  const n = b.length;
  const rows = x.length / k;
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      let s = b[j];
      for (let i = 0; i < k; i++) s += x[r * k + i] * w[i * n + j];
      y[r * n + j] = s;
    }
  }
  return y;
}

/** TP1's MLP with a BatchNorm after the hidden layer (TP2) when `batchNorm` is set. */
class Mlp extends Module {
  readonly layers: Sequential;
  constructor(batchNorm: boolean, rng: Rng) {
    super();
    const hidden = [new Linear(784, 512, { activation: "relu", rng })];
    this.layers = this.addModule(
      "layers",
      new Sequential(
        ...hidden,
        ...(batchNorm ? [new BatchNorm(512)] : []),
        new Dropout(0.2, { rng }),
        new Linear(512, 10, { rng }),
      ),
    );
  }
  forward(x: Tensor): Tensor {
    return this.layers.forward(x);
  }
}

Deno.test("Linear forward equals x·W + b (rank 2 and 3, with and without activation)", async () => {
  const { rng, seed } = testRng();
  for (const [shape, activation] of [[[5, 7], undefined], [[2, 3, 7], "relu"]] as const) {
    const layer = new Linear(7, 3, { rng, activation });
    const b = randomData(3, rng);
    rt.upload(layer.bias!.storage, Float32Array.from(b));
    const xHost = randomData(shape.reduce((p, d) => p * d, 1), rng);
    const y = layer.forward(Tensor.from(xHost, shape));
    assert.deepEqual(y.shape, [...shape.slice(0, -1), 3]);
    let expected = affineRef(xHost, await layer.weight.data(), b, 7);
    if (activation === "relu") expected = expected.map((v) => Math.max(v, 0));
    assertClose(await y.data(), expected, { what: `seed ${seed}: Linear ${shape}` });
  }
});

Deno.test("Linear gradients: dW = xᵀ·g, db = Σ g over rows", async () => {
  const { rng, seed } = testRng();
  const layer = new Linear(6, 4, { rng });
  const xHost = randomData(9 * 6, rng);
  const y = layer.forward(Tensor.from(xHost, [9, 6]));
  sum(y).backward();
  const dW = new Float64Array(6 * 4);
  for (let i = 0; i < 6; i++) {
    for (let r = 0; r < 9; r++) for (let j = 0; j < 4; j++) dW[i * 4 + j] += xHost[r * 6 + i];
  }
  assertClose(await layer.weight.grad!.data(), dW, { what: `seed ${seed}: dW` });
  assertClose(await layer.bias!.grad!.data(), [9, 9, 9, 9], { what: "db" });
  layer.zeroGrad();
  assert.equal(layer.weight.grad, null);
});

Deno.test("Linear init: Glorot-uniform kernel within ±√(6/(in+out)), zero bias, seeded", async () => {
  const layer = new Linear(784, 512, { rng: new Rng(3) });
  const limit = Math.sqrt(6 / (784 + 512));
  const w = await layer.weight.data();
  let maxAbs = 0;
  let mean = 0;
  let meanSquare = 0;
  for (const v of w) {
    maxAbs = Math.max(maxAbs, Math.abs(v));
    mean += v / w.length;
    meanSquare += (v * v) / w.length;
  }
  assert.ok(maxAbs <= limit, `max |w| ${maxAbs} exceeds the Glorot limit ${limit}`);
  assert.ok(maxAbs > 0.999 * limit, `max |w| ${maxAbs} does not reach the limit ${limit}`);
  // U(−l, l): mean 0, E[w²] = l²/3; both within ~5 standard errors over 401,408 draws.
  assert.ok(Math.abs(mean) < 5 * limit / Math.sqrt(3 * w.length), `mean ${mean}`);
  assert.ok(Math.abs(meanSquare / (limit * limit / 3) - 1) < 0.01, `E[w²] ${meanSquare}`);
  assert.ok((await layer.bias!.data()).every((v) => v === 0));
  const again = await new Linear(784, 512, { rng: new Rng(3) }).weight.data();
  assert.deepEqual(again, w);
  const other = await new Linear(784, 512, { rng: new Rng(4) }).weight.data();
  assert.notDeepEqual(other, w);
});

Deno.test("parameter names and Keras counts: 407,050 (TP1 MLP) and 409,098 (with BatchNorm)", () => {
  const mlp = new Mlp(false, new Rng(1));
  assert.deepEqual(mlp.namedParameters().map(([name, t]) => [name, t.shape]), [
    ["layers.0.weight", [784, 512]],
    ["layers.0.bias", [512]],
    ["layers.2.weight", [512, 10]],
    ["layers.2.bias", [10]],
  ]);
  assert.equal(mlp.trainableCount(), 407_050);
  assert.equal(mlp.nonTrainableCount(), 0);
  assert.ok(mlp.parameters().every((p) => p.requiresGrad));

  const bn = new Mlp(true, new Rng(1));
  assert.deepEqual(bn.namedParameters().map(([name]) => name), [
    "layers.0.weight",
    "layers.0.bias",
    "layers.1.weight",
    "layers.1.bias",
    "layers.3.weight",
    "layers.3.bias",
  ]);
  assert.deepEqual(bn.namedBuffers().map(([name]) => name), [
    "layers.1.running_mean",
    "layers.1.running_var",
  ]);
  assert.equal(bn.trainableCount(), 408_074);
  assert.equal(bn.nonTrainableCount(), 1_024);
  assert.equal(bn.trainableCount() + bn.nonTrainableCount(), 409_098);
  assert.deepEqual(bn.namedChildren().map(([name]) => name), ["layers"]);
  // A module used twice contributes its parameters once, under the first name.
  const shared = new Linear(4, 4);
  assert.deepEqual(new Sequential(shared, new ReLU(), shared).namedParameters().map(([n]) => n), [
    "0.weight",
    "0.bias",
  ]);
  mlp.dispose();
  bn.dispose();
});

Deno.test("parameters and buffers survive the tidy scope that created them", () => {
  const layer = tidy(() => new Sequential(new Linear(3, 2), new BatchNorm(2)));
  assert.ok([...layer.parameters(), ...layer.buffers()].every((t) => !t.isDisposed));
  layer.dispose();
  assert.ok(layer.parameters().every((t) => t.isDisposed));
});

Deno.test("train()/eval() switch Dropout and BatchNorm behaviour", async () => {
  const n = 64;
  const c = 4;
  const { rng } = testRng();
  const xHost = randomData(n * c, rng, 1, 2); // nonzero, so a dropped element reads 0
  const x = Tensor.from(xHost, [n, c]);
  const dropoutLayer = new Dropout(0.5, { seed: 77 });
  const norm = new BatchNorm(c);
  const model = new Sequential(dropoutLayer, norm);
  assert.ok(model.training && dropoutLayer.training && norm.training);

  // Training: dropout zeroes about half of x before BN; the running stats move.
  const dropped = await dropoutLayer.forward(x).data();
  assert.ok(dropped.some((v) => v === 0));
  const mask1 = dropped.map((v) => (v === 0 ? 0 : 1));
  const mask2 = (await dropoutLayer.forward(x).data()).map((v) => (v === 0 ? 0 : 1));
  assert.notDeepEqual(mask1, mask2, "each call must draw a new mask");
  const replay = new Dropout(0.5, { seed: 77 });
  assert.deepEqual((await replay.forward(x).data()).map((v) => (v === 0 ? 0 : 1)), mask1);

  model.forward(x);
  const meanAfterTraining = await norm.runningMean.data();
  assert.ok(meanAfterTraining.every((v) => v !== 0), "training must update the running mean");

  // Inference: dropout is the identity and BN uses (unchanged) running statistics.
  model.eval();
  assert.ok(!model.training && !dropoutLayer.training && !norm.training);
  assert.equal(dropoutLayer.forward(x), x);
  const y = await model.forward(x).data();
  const runningVar = await norm.runningVar.data();
  const expected = Array.from(
    xHost,
    (v, i) => (v - meanAfterTraining[i % c]) / Math.sqrt(runningVar[i % c] + 1e-3),
  );
  assertClose(y, expected, { what: "inference output" });
  assert.deepEqual(await norm.runningMean.data(), meanAfterTraining);
  model.train();
  assert.ok(dropoutLayer.training && norm.training);
});

Deno.test("Sequential with BatchNorm and Dropout learns a toy problem; memory stays flat", async () => {
  // Three Gaussian blobs in 2-D, 40 points each.
  const rng = new Rng(5);
  const centres = [[2, 0], [-1, 1.7], [-1, -1.7]];
  const xHost: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < 120; i++) {
    const k = i % 3;
    xHost.push(centres[k][0] + rng.normal(0, 0.6), centres[k][1] + rng.normal(0, 0.6));
    labels.push(k);
  }
  const x = Tensor.from(xHost, [120, 2]);
  const y = Tensor.from(labels, [120], "i32");
  const model = new Sequential(
    new Linear(2, 32, { activation: "relu", rng }),
    new BatchNorm(32),
    new Dropout(0.1, { rng }),
    new Linear(32, 3, { rng }),
  );
  const opt = new Adam(model.parameters(), { lr: 0.02 });
  const losses: number[] = [];
  const live: number[] = [];
  await settleGarbage(); // earlier tests' dropped tensors return to the pool now, not mid-count
  for (let step = 0; step < 60; step++) {
    const loss = tidy(() => {
      opt.zeroGrad();
      const loss = softmaxCrossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      return loss;
    });
    losses.push(await loss.item());
    loss.dispose();
    live.push(rt.poolStats().liveBytes);
  }
  assert.ok(losses[59] < 0.3 * losses[0], `loss ${losses[0]} → ${losses[59]}`);
  assert.ok(live.every((b) => b === live[0]), `live bytes per step: ${live}`);

  model.eval();
  const predicted = await argmax(model.forward(x), -1).data();
  const accuracy = predicted.filter((p, i) => p === labels[i]).length / labels.length;
  assert.ok(accuracy > 0.9, `inference accuracy ${accuracy}`);
  model.dispose();
  opt.dispose();
});

Deno.test("activation modules and Flatten", async () => {
  const xHost = [-2, -0.5, 0, 0.5, 2, 3];
  const x = Tensor.from(xHost, [2, 3]);
  const cases: [Module, (v: number) => number][] = [
    [new ReLU(), (v) => Math.max(v, 0)],
    [new LeakyReLU(), (v) => (v > 0 ? v : 0.3 * v)],
    [new Sigmoid(), (v) => 1 / (1 + Math.exp(-v))],
    [new Tanh(), Math.tanh],
  ];
  for (const [layer, f] of cases) {
    assertClose(await layer.forward(x).data(), xHost.map(f), { what: layer.constructor.name });
  }
  const gelu = await new GELU().forward(x).data();
  assert.ok(gelu[0] < 0 && gelu[0] > -0.1 && Math.abs(gelu[5] - 2.9960) < 1e-3, `GELU ${gelu}`);
  const softmax = await new Softmax().forward(x).data();
  for (const row of [0, 1]) {
    const e = xHost.slice(row * 3, row * 3 + 3).map(Math.exp);
    const z = e.reduce((a, b) => a + b);
    assertClose(softmax.slice(row * 3, row * 3 + 3), e.map((v) => v / z), { what: "Softmax" });
  }
  const flat = new Flatten().forward(Tensor.zeros([2, 3, 4, 5]));
  assert.deepEqual(flat.shape, [2, 60]);
});

Deno.test("module errors name the layer and what was expected", () => {
  assert.throws(() => new Linear(0, 3), /Linear: inFeatures 0, expected an integer ≥ 1/);
  assert.throws(
    () => new Linear(4, 3).forward(Tensor.zeros([2, 5])),
    /Linear: input \[2, 5\] does not end in inFeatures = 4/,
  );
  assert.throws(() => new Dropout(1), /Dropout: rate 1 is outside \[0, 1\)/);
  assert.throws(() => new BatchNorm(0), /BatchNorm: numFeatures 0/);
  class Twice extends Module {
    constructor() {
      super();
      this.addModule("a", new ReLU());
      this.addModule("a", new ReLU());
    }
    forward(x: Tensor): Tensor {
      return x;
    }
  }
  assert.throws(() => new Twice(), /Twice: 'a' is already registered/);
});
