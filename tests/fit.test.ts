// fit / evaluate / predict numbers against hand-computed expectations, metrics, callbacks,
// progress display and summary().
import assert from "node:assert/strict";
import { Linear } from "../engine/nn/linear.ts";
import { BatchNorm } from "../engine/nn/batchnorm.ts";
import { Dropout } from "../engine/nn/dropout.ts";
import { ReLU } from "../engine/nn/activation.ts";
import { Sequential } from "../engine/nn/sequential.ts";
import { summary } from "../engine/nn/summary.ts";
import { mse, softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { fill } from "../engine/ops/elementwise.ts";
import { l2Penalty, SGD } from "../engine/optim/optimizers.ts";
import { Rng } from "../engine/random.ts";
import { runtime } from "../engine/runtime.ts";
import { Tensor } from "../engine/tensor.ts";
import {
  type Callback,
  EarlyStopping,
  LearningRateScheduler,
  type Logs,
  ModelCheckpoint,
  type TrainContext,
} from "../engine/train/callbacks.ts";
import { evaluate, fit, predict } from "../engine/train/fit.ts";
import {
  accuracy,
  binaryAccuracy,
  categoricalAccuracy,
  type Metric,
  sparseCategoricalAccuracy,
} from "../engine/train/metrics.ts";
import { ProgressBar } from "../engine/train/progress.ts";
import { TensorDataset } from "../engine/train/dataset.ts";
import { writeFileAtomic } from "../tracking/files.ts";
import { assertClose, setup, testRng } from "./helpers.ts";

await setup();

/** y = w·x, no bias: every number of a training run can be followed by hand. */
function scalarModel(w: number): Linear {
  const model = new Linear(1, 1, { bias: false });
  setWeight(model, w);
  return model;
}

function setWeight(model: Linear, w: number): void {
  runtime().upload(model.weight.storage, new Float32Array([w]));
}

async function weightOf(model: Linear): Promise<number> {
  return (await model.weight.data())[0];
}

/** Reports the batch size as its "value": its weighted mean is Σ n_b² / Σ n_b. */
const batchSizeMetric: Metric = {
  name: "batch",
  fn: (pred) => fill([], pred.shape[0]),
  direction: "down",
};

interface Simulated {
  w: number;
  loss: number[];
  mae: number[];
  valLoss: number[];
}

/**
 * Float64 replay of fit() with MSE, SGD, no shuffling: per-batch loss mean((w·x − y)²) + λw²,
 * gradient mean(2(w·x − y)·x) + 2λw, running means weighted by batch size.
 */
function simulate(
  w: number,
  x: number[],
  y: number[],
  { batchSize, lrs, trainCount, lambda = 0 }: {
    batchSize: number;
    lrs: number[];
    trainCount: number;
    lambda?: number;
  },
): Simulated {
  const out: Simulated = { w, loss: [], mae: [], valLoss: [] };
  for (const lr of lrs) {
    let lossSum = 0;
    let maeSum = 0;
    for (let start = 0; start < trainCount; start += batchSize) {
      const rows = [];
      for (let i = start; i < Math.min(start + batchSize, trainCount); i++) rows.push(i);
      const err = rows.map((i) => w * x[i] - y[i]);
      const loss = err.reduce((s, e) => s + e * e, 0) / rows.length + lambda * w * w;
      const mae = err.reduce((s, e) => s + Math.abs(e), 0) / rows.length;
      const grad = rows.reduce((s, i, k) => s + 2 * err[k] * x[i], 0) / rows.length +
        2 * lambda * w;
      lossSum += loss * rows.length;
      maeSum += mae * rows.length;
      w -= lr * grad;
    }
    out.loss.push(lossSum / trainCount);
    out.mae.push(maeSum / trainCount);
    let val = 0;
    for (let i = trainCount; i < x.length; i++) val += (w * x[i] - y[i]) ** 2;
    out.valLoss.push(val / (x.length - trainCount) + lambda * w * w);
  }
  out.w = w;
  return out;
}

function randomSet(n: number, rng: Rng): { x: number[]; y: number[] } {
  const x = Array.from({ length: n }, () => Math.fround(rng.uniform(-1, 1)));
  const y = x.map((v) => Math.fround(1.5 * v + rng.normal(0, 0.1)));
  return { x, y };
}

const column = (v: number[]) => Tensor.from(v, [v.length, 1]);

Deno.test("fit: running means weighted by batch size (partial last batch), last-fraction validation", async () => {
  const { rng, seed } = testRng();
  const { x, y } = randomSet(10, rng);
  const model = scalarModel(0.25);
  const opt = new SGD(model.parameters(), { lr: 0.3 });
  const history = await fit(model, opt, { x: column(x), y: column(y) }, {
    loss: mse,
    epochs: 3,
    batchSize: 3,
    validationSplit: 0.3, // floor(10 · 0.7) = 7 training rows → batches 3, 3, 1
    shuffle: false,
    metrics: ["mae", batchSizeMetric],
  });
  const expected = simulate(0.25, x, y, { batchSize: 3, lrs: [0.3, 0.3, 0.3], trainCount: 7 });
  const what = `seed ${seed}`;
  assert.deepEqual(history.epoch, [0, 1, 2]);
  assert.deepEqual(Object.keys(history.history).sort(), [
    "batch",
    "loss",
    "mae",
    "val_batch",
    "val_loss",
    "val_mae",
  ]);
  assertClose(history.history.loss, expected.loss, { what: `loss, ${what}` });
  assertClose(history.history.mae, expected.mae, { what: `mae, ${what}` });
  assertClose(history.history.val_loss, expected.valLoss, { what: `val_loss, ${what}` });
  // (3·3 + 3·3 + 1·1) / 7, not the unweighted (3 + 3 + 1) / 3; validation: one batch of 3.
  assertClose(history.history.batch, [19 / 7, 19 / 7, 19 / 7]);
  assertClose(history.history.val_batch, [3, 3, 3]);
  assertClose([await weightOf(model)], [expected.w], { what: `final weight, ${what}` });
});

Deno.test("fit: validation rows are never trained on, even when shuffling", async () => {
  const { rng } = testRng();
  const { x, y } = randomSet(20, rng);
  const model = scalarModel(0.5);
  const opt = new SGD(model.parameters(), { lr: 0 }); // frozen: losses are plain means
  const history = await fit(model, opt, { x: column(x), y: column(y) }, {
    loss: mse,
    epochs: 2,
    batchSize: 4,
    validationSplit: 0.25,
    seed: 3,
  });
  const sq = x.map((v, i) => (0.5 * v - y[i]) ** 2);
  const meanOf = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  assertClose(history.history.loss, [meanOf(sq.slice(0, 15)), meanOf(sq.slice(0, 15))]);
  assertClose(history.history.val_loss, [meanOf(sq.slice(15)), meanOf(sq.slice(15))]);
});

Deno.test("fit: the same seed gives the same run; another seed another order", async () => {
  const { rng } = testRng();
  const { x, y } = randomSet(24, rng);
  const run = async (seed: number) => {
    const model = scalarModel(0);
    const opt = new SGD(model.parameters(), { lr: 0.2 });
    const h = await fit(model, opt, { x: column(x), y: column(y) }, {
      loss: mse,
      epochs: 2,
      batchSize: 5,
      seed,
    });
    return [...h.history.loss, await weightOf(model)];
  };
  const a = await run(1);
  assert.deepEqual(await run(1), a);
  assert.notDeepEqual(await run(2), a);
});

Deno.test("fit: a GPU-resident TensorDataset gives the same run as tensors", async () => {
  const { rng } = testRng();
  const { x, y } = randomSet(13, rng);
  const run = async (data: Parameters<typeof fit>[2]) => {
    const model = scalarModel(0.3);
    const opt = new SGD(model.parameters(), { lr: 0.2 });
    const h = await fit(model, opt, data, {
      loss: mse,
      epochs: 2,
      batchSize: 4,
      validationSplit: 0.2,
      seed: 9,
      metrics: ["mae"],
    });
    return { history: h.history, w: await weightOf(model) };
  };
  const dataset = new TensorDataset([
    { data: Float32Array.from(x), shape: [13, 1] },
    { data: Float32Array.from(y), shape: [13, 1] },
  ]);
  assert.deepEqual(await run(dataset), await run({ x: column(x), y: column(y) }));
  dataset.dispose();
});

Deno.test("fit: live GPU memory stays flat across epochs", async () => {
  const rt = runtime();
  const model = new Sequential(
    new Linear(4, 16, { activation: "relu" }),
    new Dropout(0.2),
    new Linear(16, 3),
  );
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const rng = new Rng(2);
  const live: number[] = [];
  await fit(model, opt, {
    x: Tensor.uniform([50, 4], -1, 1, rng),
    y: Tensor.from(Array.from({ length: 50 }, () => rng.int(3)), [50], "i32"),
  }, {
    loss: (p, t) => softmaxCrossEntropy(p, t),
    epochs: 12,
    batchSize: 8,
    validationSplit: 0.2,
    readEvery: 2,
    metrics: ["accuracy"],
    callbacks: [{ onEpochEnd: () => void live.push(rt.poolStats().liveBytes) }],
  });
  assert.ok(live.slice(2).every((b) => b <= live[1]), `live bytes grew: ${live.join(", ")}`);
});

Deno.test("fit: extraLoss (L2) is trained on and reported, in fit and evaluate", async () => {
  const { rng, seed } = testRng();
  const { x, y } = randomSet(9, rng);
  const model = scalarModel(0.8);
  const opt = new SGD(model.parameters(), { lr: 0.1 });
  const lambda = 0.05;
  const extraLoss = () => l2Penalty([model.weight], lambda);
  const history = await fit(model, opt, { x: column(x), y: column(y) }, {
    loss: mse,
    epochs: 2,
    batchSize: 4,
    validationSplit: 1 / 3,
    shuffle: false,
    extraLoss,
  });
  const expected = simulate(0.8, x, y, { batchSize: 4, lrs: [0.1, 0.1], trainCount: 6, lambda });
  assertClose(history.history.loss, expected.loss, { what: `loss, seed ${seed}` });
  assertClose(history.history.val_loss, expected.valLoss, { what: `val_loss, seed ${seed}` });
  const w = await weightOf(model);
  const evaluated = await evaluate(model, column(x), column(y), { loss: mse, extraLoss });
  const full = x.reduce((s, v, i) => s + (w * v - y[i]) ** 2, 0) / x.length + lambda * w * w;
  assertClose([evaluated.loss], [full]);
});

Deno.test("evaluate: batch size 32 by default, batch-size-weighted means; predict", async () => {
  const { rng } = testRng();
  const { x, y } = randomSet(40, rng);
  const model = scalarModel(1.25);
  const logs = await evaluate(model, column(x), column(y), {
    loss: mse,
    metrics: ["mse", "mae", batchSizeMetric],
  });
  const err = x.map((v, i) => 1.25 * v - y[i]);
  const mseValue = err.reduce((s, e) => s + e * e, 0) / 40;
  assertClose([logs.loss, logs.mse], [mseValue, mseValue]);
  assertClose([logs.mae], [err.reduce((s, e) => s + Math.abs(e), 0) / 40]);
  assertClose([logs.batch], [(32 * 32 + 8 * 8) / 40]); // batches of 32 and 8
  const small = await evaluate(model, column(x), column(y), {
    loss: mse,
    batchSize: 7,
    metrics: [batchSizeMetric],
  });
  assertClose([small.batch], [(5 * 49 + 25) / 40]);

  const out = predict(model, column(x), { batchSize: 6 });
  assert.deepEqual(out.shape, [40, 1]);
  assertClose(await out.data(), x.map((v) => Math.fround(1.25 * v)));
  assert.throws(
    () => evaluate(model, column(x), column(y.slice(1)), { loss: mse }),
    /evaluate: x \[40, 1\] and y \[39, 1\]/,
  );
});

Deno.test("fit: bad options fail before training", async () => {
  const model = scalarModel(1);
  const opt = new SGD(model.parameters());
  const data = { x: column([1, 2, 3]), y: column([1, 2, 3]) };
  await assert.rejects(
    () => fit(model, opt, data, { loss: mse, validationSplit: 0.9 }),
    /splitValidation: 3 samples cannot be split/,
  );
  await assert.rejects(() => fit(model, opt, data, { loss: mse, batchSize: 0 }), /batchSize = 0/);
  await assert.rejects(
    () => fit(model, opt, data, { loss: mse, metrics: ["f1" as "mae"] }),
    /unknown metric 'f1'/,
  );
});

Deno.test("metrics: accuracy for integer, [N, 1], one-hot and binary labels", async () => {
  const pred = Tensor.from([0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.1, 0.1, 0.8, 0.3, 0.3, 0.4], [4, 3]);
  const ids = [1, 0, 2, 0];
  const value = async (t: Tensor) => (await t.data())[0];
  assert.equal(await value(accuracy(pred, Tensor.from(ids, [4], "i32"))), 0.75);
  assert.equal(await value(sparseCategoricalAccuracy(pred, Tensor.from(ids, [4, 1], "i32"))), 0.75);
  const oneHot = ids.flatMap((c) => [0, 1, 2].map((k) => (k === c ? 1 : 0)));
  assert.equal(await value(accuracy(pred, Tensor.from(oneHot, [4, 3]))), 0.75);
  assert.equal(await value(categoricalAccuracy(pred, Tensor.from(oneHot, [4, 3]))), 0.75);
  // Binary: strictly above 0.5 is class 1 (Keras), so 0.5 counts as 0.
  const probs = Tensor.from([0.9, 0.5, 0.2, 0.51, 0.49], [5, 1]);
  const targets = Tensor.from([1, 0, 1, 1, 0], [5, 1]);
  assertClose([await value(accuracy(probs, targets))], [0.8]);
  assertClose([await value(binaryAccuracy(probs, Tensor.from([1, 1, 0, 1, 0], [5])))], [0.8]);
  assert.throws(() => categoricalAccuracy(pred, Tensor.from(ids, [4])), /categoricalAccuracy/);
});

// ---- callbacks --------------------------------------------------------------------------------

/** Overwrites val_loss with a script and stamps the weight with epoch + 1 (for restore checks). */
function scripted(model: Linear, valLosses: number[]): Callback {
  return {
    onEpochEnd(epoch: number, logs: Logs) {
      logs.val_loss = valLosses[epoch];
      setWeight(model, epoch + 1);
    },
  };
}

async function earlyStopRun(
  valLosses: number[],
  options: ConstructorParameters<typeof EarlyStopping>[0],
) {
  const model = scalarModel(0);
  const opt = new SGD(model.parameters(), { lr: 0 });
  const stopper = new EarlyStopping(options);
  const history = await fit(model, opt, { x: column([1, 2]), y: column([1, 2]) }, {
    loss: mse,
    epochs: valLosses.length,
    callbacks: [scripted(model, valLosses), stopper],
  });
  return { epochs: history.epoch.length, stopper, weight: await weightOf(model) };
}

Deno.test("EarlyStopping: Keras 3 stop epochs, min_delta, baseline, mode", async () => {
  // patience 2: best at epoch 1, no improvement at 2 (wait 1) and 3 (wait 2) → stop at 3.
  let r = await earlyStopRun([1, 0.8, 0.9, 0.85, 0.7, 0.6], { patience: 2 });
  assert.equal(r.stopper.stoppedEpoch, 3);
  assert.equal(r.epochs, 4);
  assert.equal(r.stopper.bestEpoch, 1);
  assert.equal(r.weight, 4, "without restoreBestWeights the last weights stay");
  // patience 0 stops at the first epoch without improvement.
  r = await earlyStopRun([1, 0.9, 0.95, 0.5], { patience: 0 });
  assert.equal(r.stopper.stoppedEpoch, 2);
  // min_delta: 0.95 is not better than 1 by more than 0.1.
  r = await earlyStopRun([1, 0.95, 0.5, 0.4], { patience: 1, minDelta: 0.1 });
  assert.equal(r.stopper.stoppedEpoch, 1);
  // Improvements that miss the baseline do not reset the wait: stop at 2, not 3.
  r = await earlyStopRun([0.9, 0.8, 0.85, 0.84, 0.83], { patience: 2, baseline: 0.5 });
  assert.equal(r.stopper.stoppedEpoch, 2);
  r = await earlyStopRun([0.9, 0.8, 0.85, 0.84, 0.83], { patience: 2 });
  assert.equal(r.stopper.stoppedEpoch, 3);
  // mode max on a scripted "val_loss" that should rise.
  r = await earlyStopRun([0.1, 0.3, 0.2, 0.25], { patience: 1, mode: "max" });
  assert.equal(r.stopper.stoppedEpoch, 2);
  // Never stopped.
  r = await earlyStopRun([1, 0.9, 0.8], { patience: 1 });
  assert.equal(r.stopper.stoppedEpoch, 0);
  assert.equal(r.epochs, 3);
});

Deno.test("EarlyStopping: restores the best weights at the end, stopped early or not", async () => {
  let r = await earlyStopRun([1, 0.8, 0.9, 0.85, 0.7], { patience: 2, restoreBestWeights: true });
  assert.equal(r.stopper.stoppedEpoch, 3);
  assert.equal(r.weight, 2, "weights of epoch 1 (stamped 2)");
  r = await earlyStopRun([1, 0.5, 0.7, 0.6], { patience: 10, restoreBestWeights: true });
  assert.equal(r.epochs, 4);
  assert.equal(r.stopper.stoppedEpoch, 0);
  assert.equal(r.weight, 2, "restored although training ran to the end (Keras 3)");
});

Deno.test("EarlyStopping: restoreBestWeights includes buffers (BatchNorm moving stats)", async () => {
  const bn = new BatchNorm(2);
  const model = new Sequential(new Linear(2, 2), bn);
  const opt = new SGD(model.parameters(), { lr: 0.1 });
  const losses = [1, 0.5, 0.9, 0.9];
  let best: number[] = [];
  const record: Callback = {
    async onEpochEnd(epoch: number, logs: Logs) {
      logs.val_loss = losses[epoch];
      if (epoch === 1) best = [...await bn.runningMean.data()];
    },
  };
  await fit(model, opt, { x: Tensor.uniform([8, 2], -1, 1, new Rng(1)), y: Tensor.zeros([8, 2]) }, {
    loss: mse,
    epochs: 4,
    batchSize: 4,
    callbacks: [record, new EarlyStopping({ patience: 5, restoreBestWeights: true })],
  });
  assert.deepEqual([...await bn.runningMean.data()], best);
});

Deno.test("ModelCheckpoint: every epoch or best only; paths formatted with the epoch", async () => {
  const model = scalarModel(0);
  const opt = new SGD(model.parameters(), { lr: 0 });
  const writes: [string, number][] = [];
  const make = (saveBestOnly: boolean) =>
    new ModelCheckpoint({
      path: "ckpt-{epoch}.bin",
      saveBestOnly,
      serialize: async (m) => new Uint8Array((await (m as Linear).weight.data()).buffer),
      write: (path, data) => {
        writes.push([path, new Float32Array(data.buffer)[0]]);
        return Promise.resolve();
      },
    });
  const losses = [0.5, 0.7, 0.4, 0.45];
  const best = make(true);
  await fit(model, opt, { x: column([1]), y: column([1]) }, {
    loss: mse,
    epochs: 4,
    callbacks: [scripted(model, losses), best],
  });
  assert.deepEqual(writes, [["ckpt-01.bin", 1], ["ckpt-03.bin", 3]]);
  assert.equal(best.best, 0.4);
  writes.length = 0;
  await fit(model, opt, { x: column([1]), y: column([1]) }, {
    loss: mse,
    epochs: 2,
    callbacks: [scripted(model, losses), make(false)],
  });
  assert.deepEqual(writes.map(([p]) => p), ["ckpt-01.bin", "ckpt-02.bin"]);
});

Deno.test("ModelCheckpoint: a write that fails midway leaves the previous file", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/last.bin`;
  const model = scalarModel(0);
  const opt = new SGD(model.parameters(), { lr: 0 });
  let crash = false;
  const checkpoint = new ModelCheckpoint({
    path: file,
    serialize: async (m) => new Uint8Array((await (m as Linear).weight.data()).buffer),
    write: (target, data) =>
      writeFileAtomic(
        target,
        crash
          ? (async function* () {
            yield data.subarray(0, 2);
            throw new Error("disk full");
          })()
          : data,
      ),
  });
  const crashAtEpoch2: Callback = { onEpochEnd: (epoch) => void (crash = epoch === 2) };
  await assert.rejects(
    () =>
      fit(model, opt, { x: column([1]), y: column([1]) }, {
        loss: mse,
        epochs: 4,
        callbacks: [scripted(model, [1, 1, 1, 1]), crashAtEpoch2, checkpoint],
      }),
    /disk full/,
  );
  assert.deepEqual([...new Float32Array((await Deno.readFile(file)).buffer)], [2]);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["last.bin"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LearningRateScheduler: the schedule sets each epoch's rate and is logged", async () => {
  const { rng, seed } = testRng();
  const { x, y } = randomSet(8, rng);
  const model = scalarModel(0.1);
  const opt = new SGD(model.parameters(), { lr: 0.4 });
  const seen: number[] = [];
  const history = await fit(model, opt, { x: column(x), y: column(y) }, {
    loss: mse,
    epochs: 3,
    batchSize: 3,
    shuffle: false,
    callbacks: [
      new LearningRateScheduler((epoch, lr) => {
        seen.push(lr);
        return epoch === 0 ? lr : lr / 2;
      }),
    ],
  });
  assert.deepEqual(seen, [0.4, 0.4, 0.2]);
  assertClose(history.history.learning_rate, [0.4, 0.2, 0.1]);
  const expected = simulate(0.1, x, y, { batchSize: 3, lrs: [0.4, 0.2, 0.1], trainCount: 8 });
  assertClose(history.history.loss, expected.loss, { what: `loss, seed ${seed}` });
  assertClose([await weightOf(model)], [expected.w]);
});

Deno.test("onBatchEnd: every step, running means arrive lagged from asynchronous readbacks", async () => {
  const model = scalarModel(0.5);
  const opt = new SGD(model.parameters(), { lr: 0 });
  const batches: { step: number; seen: number; runningSeen: number; loss?: number }[] = [];
  const x = Array.from({ length: 20 }, (_, i) => i / 20);
  const history = await fit(model, opt, { x: column(x), y: column(x) }, {
    loss: mse,
    batchSize: 2,
    shuffle: false,
    readEvery: 2,
    callbacks: [{
      onBatchEnd: (step, logs) => {
        batches.push({
          step,
          seen: logs.seen,
          runningSeen: logs.runningSeen,
          loss: logs.running?.loss,
        });
      },
    }],
  });
  assert.deepEqual(batches.map((b) => b.step), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(batches.map((b) => b.seen), [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
  assert.ok(batches.every((b) => b.runningSeen <= b.seen));
  const last = batches.findLast((b) => b.runningSeen > 0);
  assert.ok(last, "no readback landed during the epoch");
  const mean = x.slice(0, last.runningSeen).reduce((s, v) => s + 0.25 * v * v, 0) /
    last.runningSeen;
  assertClose([last.loss!], [mean]);
  assertClose(history.history.loss, [x.reduce((s, v) => s + 0.25 * v * v, 0) / 20]);
});

Deno.test("fit: no readback per step — one per epoch, one per validation pass, one per readEvery", async () => {
  const rt = runtime();
  const model = scalarModel(0.5);
  const opt = new SGD(model.parameters(), { lr: 0.01 });
  const x = Array.from({ length: 50 }, (_, i) => i / 50);
  const reads: number[] = [];
  const read = rt.read;
  let step = -1;
  rt.read = (...args) => {
    reads.push(step);
    return read.apply(rt, args);
  };
  try {
    await fit(model, opt, { x: column(x), y: column(x) }, {
      loss: mse,
      epochs: 2,
      batchSize: 2,
      validationSplit: 0.2, // 40 training rows: 20 steps per epoch
      shuffle: false,
      readEvery: 8,
      callbacks: [{ onBatchEnd: (s) => void (step = s) }],
    });
  } finally {
    rt.read = read;
  }
  // Per epoch: asynchronous reads issued after steps 7 and 15, then the totals and validation.
  assert.deepEqual(reads, [6, 14, 19, 19, 6, 14, 19, 19]);
});

// ---- progress ---------------------------------------------------------------------------------

function captured(isTTY: boolean) {
  let text = "";
  return { writer: { isTTY, write: (s: string) => void (text += s) }, text: () => text };
}

Deno.test("ProgressBar: one plain line per epoch without a TTY", async () => {
  const out = captured(false);
  let clock = 0;
  const model = scalarModel(1);
  const opt = new SGD(model.parameters(), { lr: 0 });
  await fit(model, opt, { x: column([1, 2, 3, 4, 5]), y: column([1, 2, 3, 4, 5]) }, {
    loss: mse,
    epochs: 2,
    batchSize: 2,
    validationSplit: 0.2,
    metrics: ["mae"],
    callbacks: [
      { onBatchEnd: () => void (clock += 250) },
      new ProgressBar({ ...out, now: () => clock }),
    ],
  });
  const lines = out.text().split("\n");
  assert.equal(lines.length, 3);
  assert.equal(
    lines[0],
    "Epoch 1/2 - 2 steps - 1s 250ms/step - 8 samples/s - loss: 0.0000 - mae: 0.0000 - " +
      "val_loss: 0.0000 - val_mae: 0.0000",
  );
  assert.ok(!out.text().includes("\r"));
});

Deno.test("ProgressBar: a live bar with step, ETA, samples/s and running metrics on a TTY", () => {
  const out = captured(true);
  let clock = 0;
  const ctx = { epochs: 3, stepsPerEpoch: 4 } as TrainContext;
  const bar = new ProgressBar({ ...out, now: () => clock, refreshMs: 0 });
  bar.onEpochBegin(0, ctx);
  clock = 1000;
  bar.onBatchEnd(0, {
    step: 0,
    steps: 4,
    seen: 32,
    size: 32,
    running: { loss: 0.5 },
    runningSeen: 32,
  });
  bar.onEpochEnd(0, { loss: 0.25, val_loss: 0.375 }, ctx);
  assert.equal(
    out.text(),
    "Epoch 1/3\n" +
      "\r1/4 [=====>..............] - ETA 3s - 32 samples/s - loss: 0.5000\x1b[K" +
      "\r4/4 [====================] - 1s 250ms/step - 32 samples/s - loss: 0.2500 - " +
      "val_loss: 0.3750\x1b[K\n",
  );
});

// ---- summary ----------------------------------------------------------------------------------

Deno.test("summary: Keras counts for the TP1 MLP (407,050) and the TP2 BatchNorm MLP (409,098)", () => {
  const mlp = new Sequential(
    new Linear(784, 512, { activation: "relu" }),
    new Dropout(0.2),
    new Linear(512, 10),
  );
  const s = summary(mlp, [784]);
  assert.equal(s.total, 407_050);
  assert.equal(s.trainable, 407_050);
  assert.equal(s.nonTrainable, 0);
  assert.deepEqual(s.rows.map((r) => [r.name, r.type, r.outputShape, r.params]), [
    ["0", "Linear", [null, 512], 401_920],
    ["1", "Dropout", [null, 512], 0],
    ["2", "Linear", [null, 10], 5_130],
  ]);
  assert.ok(mlp.training, "training mode is restored");

  const bn = new Sequential(
    new Linear(784, 512),
    new BatchNorm(512),
    new ReLU(),
    new Dropout(0.2),
    new Linear(512, 10),
  );
  const t = summary(bn, [784], { name: "tp2_batchnorm" });
  assert.equal(t.total, 409_098);
  assert.equal(t.trainable, 407_050 + 1024);
  assert.equal(t.nonTrainable, 1024);
  assert.equal(t.rows[1].params, 2048);
  assert.equal(
    t.text,
    [
      'Model: "tp2_batchnorm"',
      "┏━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━┓",
      "┃ Layer (type)  ┃ Output Shape ┃ Param # ┃",
      "┡━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━┩",
      "│ 0 (Linear)    │ (None, 512)  │ 401,920 │",
      "├───────────────┼──────────────┼─────────┤",
      "│ 1 (BatchNorm) │ (None, 512)  │   2,048 │",
      "├───────────────┼──────────────┼─────────┤",
      "│ 2 (ReLU)      │ (None, 512)  │       0 │",
      "├───────────────┼──────────────┼─────────┤",
      "│ 3 (Dropout)   │ (None, 512)  │       0 │",
      "├───────────────┼──────────────┼─────────┤",
      "│ 4 (Linear)    │ (None, 10)   │   5,130 │",
      "└───────────────┴──────────────┴─────────┘",
      " Total params: 409,098 (1.56 MB)",
      " Trainable params: 408,074 (1.56 MB)",
      " Non-trainable params: 1,024 (4.00 KB)",
    ].join("\n"),
  );
  // The forward wrappers are gone: the layers' own forward runs again.
  assert.ok(!Object.hasOwn(bn.layers[0], "forward"));
  mlp.dispose();
  bn.dispose();
});
