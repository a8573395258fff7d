// Keras-style fit / evaluate / predict. Losses and metrics are accumulated on the GPU
// (Σ value·batchSize in a small tensor) and read back asynchronously every `readEvery` steps
// and once at the end of each epoch: a training step never waits for the GPU.
import { noGrad } from "../autograd.ts";
import type { Module } from "../nn/module.ts";
import { add, mul } from "../ops/elementwise.ts";
import { gather, stack } from "../ops/shape.ts";
import type { Optimizer } from "../optim/optimizers.ts";
import { Rng } from "../random.ts";
import { runtime } from "../runtime.ts";
import { formatShape, Tensor, tidy } from "../tensor.ts";
import type { BatchLogs, Callback, Logs, TrainContext } from "./callbacks.ts";
import { shuffledIndices, splitValidation, TensorDataset } from "./dataset.ts";
import { type Metric, type MetricSpec, resolveMetrics } from "./metrics.ts";

/** (prediction, target) → the batch's mean loss as a 0-d tensor. */
export type LossFn = (pred: Tensor, target: Tensor) => Tensor;

/** Inputs and targets with the samples on axis 0. */
export interface Data {
  x: Tensor;
  y: Tensor;
}

/** Tensors, or a GPU-resident dataset of two arrays (inputs, targets). */
export type FitData = Data | TensorDataset;

export interface FitOptions {
  loss: LossFn;
  /** Train until this epoch (exclusive), from `initialEpoch`. Default 1. */
  epochs?: number;
  /** Default 32, as Keras. */
  batchSize?: number;
  /** Keras: the LAST fraction of the samples, taken before any shuffling. */
  validationSplit?: number;
  validationData?: Data;
  /** Reshuffle the training samples every epoch (default true). */
  shuffle?: boolean;
  /** Seeds the shuffling; epoch e's order depends only on (seed, e), so resuming replays it. */
  seed?: number;
  metrics?: readonly MetricSpec[];
  callbacks?: readonly Callback[];
  /** Added to the loss and to the reported loss (Keras regularisation losses, e.g. l2Penalty). */
  extraLoss?: () => Tensor;
  /** First epoch (Keras `initial_epoch`), for resuming. */
  initialEpoch?: number;
  /**
   * Steps between asynchronous readbacks of the running means (for the progress display);
   * default min(16, a quarter of the epoch).
   */
  readEvery?: number;
}

/** Keras `History`: the epoch indices and, per key, one value per epoch. */
export interface History {
  epoch: number[];
  history: Record<string, number[]>;
}

export interface EvaluateOptions {
  loss: LossFn;
  /** Default 32, as Keras. */
  batchSize?: number;
  metrics?: readonly MetricSpec[];
  extraLoss?: () => Tensor;
}

function checkData(op: string, data: FitData): number {
  if (data instanceof TensorDataset) {
    if (data.sampleShapes.length !== 2) {
      throw new Error(
        `${op}: the dataset has ${data.sampleShapes.length} arrays, expected 2 (inputs, targets)`,
      );
    }
    return data.length;
  }
  const n = data.x.shape[0];
  if (data.x.rank < 1 || data.y.rank < 1 || data.y.shape[0] !== n) {
    throw new Error(
      `${op}: x ${formatShape(data.x.shape)} and y ${formatShape(data.y.shape)} must have ` +
        "the same number of samples on axis 0",
    );
  }
  return n;
}

function checkPositiveInt(op: string, name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${op}: ${name} = ${value}, expected an integer ≥ 1`);
  }
  return value;
}

/** The rows named by `indices` of each tensor (one gather each). */
function rowsOf(tensors: readonly Tensor[], indices: Int32Array): Tensor[] {
  const idx = Tensor.from(indices, [indices.length], "i32");
  const rows = tensors.map((t) => gather(t, idx, 0));
  idx.dispose();
  return rows;
}

function batchOf(data: FitData, indices: Int32Array): Data {
  const [x, y] = data instanceof TensorDataset
    ? data.gather(indices)
    : rowsOf([data.x, data.y], indices);
  return { x, y };
}

function range(start: number, end: number): Int32Array {
  return Int32Array.from({ length: end - start }, (_, i) => start + i);
}

/** Epoch e's training order: a function of (seed, e) only, so a resumed run replays it. */
function epochOrder(count: number, seed: number, epoch: number): Int32Array {
  const rng = new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
  return shuffledIndices(count, rng);
}

/** [loss, ...metrics] of one batch, each a 0-d tensor. */
function batchValues(
  pred: Tensor,
  target: Tensor,
  loss: Tensor,
  metrics: readonly Metric[],
): Tensor {
  return stack([loss, ...metrics.map((m) => m.fn(pred, target))]);
}

/** Σ value·batchSize: the running totals, a new tensor (the old one is the caller's). */
function accumulate(totals: Tensor, values: Tensor, batchSize: number): Tensor {
  return add(totals, mul(values, batchSize));
}

function logsOf(
  totals: ArrayLike<number>,
  samples: number,
  metrics: readonly Metric[],
  prefix = "",
) {
  const logs: Logs = { [`${prefix}loss`]: totals[0] / samples };
  metrics.forEach((m, i) => logs[`${prefix}${m.name}`] = totals[i + 1] / samples);
  return logs;
}

/** Means of loss and metrics over `rows` of `data`, in inference mode; one readback. */
async function meanOver(
  model: Module,
  data: FitData,
  rows: Int32Array,
  batchSize: number,
  lossFn: LossFn,
  metrics: readonly Metric[],
  extraLoss: (() => Tensor) | undefined,
  prefix = "",
): Promise<Logs> {
  if (rows.length === 0) throw new Error("evaluate: no samples to evaluate");
  const wasTraining = model.training;
  model.eval();
  let totals = Tensor.zeros([metrics.length + 1]).keep();
  try {
    for (let start = 0; start < rows.length; start += batchSize) {
      const indices = rows.subarray(start, Math.min(start + batchSize, rows.length));
      const next = noGrad(() =>
        tidy(() => {
          const batch = batchOf(data, indices);
          const pred = model.forward(batch.x);
          let loss = lossFn(pred, batch.y);
          if (extraLoss) loss = add(loss, extraLoss());
          return accumulate(totals, batchValues(pred, batch.y, loss, metrics), indices.length);
        })
      ).keep();
      totals.dispose();
      totals = next;
    }
    return logsOf(await totals.data(), rows.length, metrics, prefix);
  } finally {
    totals.dispose();
    model.train(wasTraining);
  }
}

/** Keras `evaluate`: mean loss (penalties included) and metrics; batch size 32 by default. */
export function evaluate(
  model: Module,
  x: Tensor,
  y: Tensor,
  options: EvaluateOptions,
): Promise<Logs> {
  const n = checkData("evaluate", { x, y });
  const batchSize = checkPositiveInt("evaluate", "batchSize", options.batchSize ?? 32);
  const metrics = resolveMetrics(options.metrics ?? []);
  return meanOver(
    model,
    { x, y },
    range(0, n),
    batchSize,
    options.loss,
    metrics,
    options.extraLoss,
  );
}

/** Keras `predict`: the model's outputs for every sample of x, in inference mode. */
export function predict(model: Module, x: Tensor, { batchSize = 32 } = {}): Tensor {
  const n = x.shape[0];
  if (x.rank < 1 || n === 0) {
    throw new Error(`predict: x ${formatShape(x.shape)}, expected at least one sample on axis 0`);
  }
  checkPositiveInt("predict", "batchSize", batchSize);
  const wasTraining = model.training;
  model.eval();
  const rt = runtime();
  let out: Tensor | null = null;
  try {
    for (let start = 0; start < n; start += batchSize) {
      const rows = range(start, Math.min(start + batchSize, n));
      noGrad(() =>
        tidy(() => {
          const pred = model.forward(rowsOf([x], rows)[0]);
          out ??= Tensor.empty([n, ...pred.shape.slice(1)], pred.dtype).keep();
          const rowBytes = (pred.size / rows.length) * 4;
          if (pred.size > 0) rt.copy(pred.storage, 0, out.storage, start * rowBytes, pred.size * 4);
        })
      );
    }
  } finally {
    model.train(wasTraining);
  }
  return out!;
}

/**
 * Keras `fit`. Training metrics are batch-size-weighted running means over each epoch's
 * batches (dropout active, weights moving); `val_*` come from a full inference-mode pass at the
 * end of each epoch with the training batch size.
 */
export async function fit(
  model: Module,
  optimizer: Optimizer,
  data: FitData,
  options: FitOptions,
): Promise<History> {
  const n = checkData("fit", data);
  const epochs = options.epochs ?? 1;
  const initialEpoch = options.initialEpoch ?? 0;
  if (!Number.isInteger(epochs) || !Number.isInteger(initialEpoch) || initialEpoch < 0) {
    throw new Error(`fit: epochs ${epochs}, initialEpoch ${initialEpoch}: expected integers ≥ 0`);
  }
  const batchSize = checkPositiveInt("fit", "batchSize", options.batchSize ?? 32);
  const metrics = resolveMetrics(options.metrics ?? []);
  const callbacks = options.callbacks ?? [];
  const shuffle = options.shuffle ?? true;
  const seed = options.seed ?? 0;
  const { loss: lossFn, extraLoss } = options;

  let trainCount = n;
  let validation: { data: FitData; rows: Int32Array } | null = null;
  if (options.validationData) {
    const v = options.validationData;
    validation = { data: v, rows: range(0, checkData("fit (validationData)", v)) };
  } else if (options.validationSplit !== undefined) {
    const { train, validation: rows } = splitValidation(n, options.validationSplit);
    trainCount = train[1];
    validation = { data, rows: range(rows[0], rows[1]) };
  }

  // Default: about four progress updates per short epoch, every 16 steps on long ones.
  const readEvery = checkPositiveInt(
    "fit",
    "readEvery",
    options.readEvery ?? Math.min(16, Math.max(1, Math.ceil(trainCount / batchSize / 4))),
  );

  const ctx: TrainContext = {
    model,
    optimizer,
    metrics,
    epochs,
    initialEpoch,
    stepsPerEpoch: Math.ceil(trainCount / batchSize),
    batchSize,
    samples: trainCount,
    stopTraining: false,
  };
  const history: History = { epoch: [], history: {} };
  const wasTraining = model.training;
  let logs: Logs = {};
  for (const cb of callbacks) await cb.onTrainBegin?.(ctx);
  try {
    for (let epoch = initialEpoch; epoch < epochs && !ctx.stopTraining; epoch++) {
      for (const cb of callbacks) await cb.onEpochBegin?.(epoch, ctx);
      const order = shuffle ? epochOrder(trainCount, seed, epoch) : range(0, trainCount);
      logs = await trainEpoch(ctx, data, order, lossFn, extraLoss, callbacks, readEvery);
      if (validation) {
        Object.assign(
          logs,
          await meanOver(
            model,
            validation.data,
            validation.rows,
            batchSize,
            lossFn,
            metrics,
            extraLoss,
            "val_",
          ),
        );
      }
      for (const cb of callbacks) await cb.onEpochEnd?.(epoch, logs, ctx);
      history.epoch.push(epoch);
      for (const [key, value] of Object.entries(logs)) (history.history[key] ??= []).push(value);
    }
  } finally {
    model.train(wasTraining);
  }
  for (const cb of callbacks) await cb.onTrainEnd?.(logs, ctx);
  return history;
}

/** One epoch of training steps; returns the epoch's running means. */
async function trainEpoch(
  ctx: TrainContext,
  data: FitData,
  order: Int32Array,
  lossFn: LossFn,
  extraLoss: (() => Tensor) | undefined,
  callbacks: readonly Callback[],
  readEvery: number,
): Promise<Logs> {
  const { model, optimizer, metrics, batchSize } = ctx;
  const steps = Math.ceil(order.length / batchSize);
  model.train();
  let totals = Tensor.zeros([metrics.length + 1]).keep();
  // The totals tensor an asynchronous readback is reading; it is disposed when the read lands.
  let reading: Tensor | null = null;
  let pendingRead: Promise<void> | null = null;
  let running: Logs | null = null;
  let runningSeen = 0;
  let seen = 0;
  try {
    for (let step = 0; step < steps; step++) {
      const indices = order.subarray(
        step * batchSize,
        Math.min((step + 1) * batchSize, order.length),
      );
      const next = tidy(() => {
        const batch = batchOf(data, indices);
        const pred = model.forward(batch.x);
        let loss = lossFn(pred, batch.y);
        if (extraLoss) loss = add(loss, extraLoss());
        optimizer.zeroGrad();
        loss.backward();
        optimizer.step();
        return noGrad(() =>
          accumulate(totals, batchValues(pred, batch.y, loss, metrics), indices.length)
        );
      }).keep();
      if (totals !== reading) totals.dispose();
      totals = next;
      seen += indices.length;

      if ((step + 1) % readEvery === 0 && step + 1 < steps) {
        // Waits only for the read issued `readEvery` steps ago: it bounds how far the host runs
        // ahead of the GPU, and lets the event loop deliver readbacks to the display.
        await pendingRead;
        const target = reading = totals;
        const targetSeen = seen;
        pendingRead = target.data().then((values) => {
          running = logsOf(values, targetSeen, metrics);
          runningSeen = targetSeen;
        }).finally(() => {
          target.dispose();
          if (reading === target) reading = null;
        });
      }
      const batchLogs: BatchLogs = {
        step,
        steps,
        seen,
        size: indices.length,
        running,
        runningSeen,
      };
      for (const cb of callbacks) await cb.onBatchEnd?.(step, batchLogs, ctx);
    }
    await pendingRead;
    return logsOf(await totals.data(), seen, metrics);
  } finally {
    await pendingRead?.catch(() => {});
    if (totals !== reading) totals.dispose();
  }
}
