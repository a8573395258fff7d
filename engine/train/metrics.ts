// Training metrics as GPU ops: each returns the batch mean as a 0-d tensor, so the loop can
// accumulate Keras's batch-size-weighted running means without reading anything back.
import { formatShape, type Tensor } from "../tensor.ts";
import { abs, equal, greater, mul, sub } from "../ops/elementwise.ts";
import { argmax, mean } from "../ops/reduce.ts";
import { reshape } from "../ops/shape.ts";

/** (prediction, target) → mean over the batch as a 0-d f32 tensor. */
export type MetricFn = (pred: Tensor, target: Tensor) => Tensor;

export interface Metric {
  /** Key in the logs and the history (`val_` + name for the validation pass). */
  name: string;
  fn: MetricFn;
  /** Which way is better; EarlyStopping/ModelCheckpoint "auto" mode read it. */
  direction: "up" | "down";
}

/** A built-in metric by its Keras name, or a user metric. */
export type MetricSpec =
  | "accuracy"
  | "acc"
  | "sparse_categorical_accuracy"
  | "categorical_accuracy"
  | "binary_accuracy"
  | "mse"
  | "mae"
  | Metric;

/** argmax(pred) == label for integer labels of shape [N] or [N, 1] (any dtype). */
export function sparseCategoricalAccuracy(pred: Tensor, target: Tensor): Tensor {
  const rows = pred.shape.slice(0, -1);
  const flat = target.size === rows.reduce((a, b) => a * b, 1) ? reshape(target, rows) : null;
  if (!flat || pred.rank < 2) {
    throw new Error(
      `sparseCategoricalAccuracy: predictions ${formatShape(pred.shape)} and labels ` +
        `${formatShape(target.shape)}: expected predictions [..., C] and one label per row`,
    );
  }
  return mean(equal(argmax(pred, -1), flat));
}

/** argmax(pred) == argmax(target) for one-hot (or probability) targets. */
export function categoricalAccuracy(pred: Tensor, target: Tensor): Tensor {
  sameShape("categoricalAccuracy", pred, target);
  return mean(equal(argmax(pred, -1), argmax(target, -1)));
}

/** (pred > threshold) == target, elementwise, for sigmoid outputs and 0/1 targets. */
export function binaryAccuracy(pred: Tensor, target: Tensor, threshold = 0.5): Tensor {
  sameSize("binaryAccuracy", pred, target);
  return mean(equal(greater(pred, threshold), reshape(target, pred.shape)));
}

/**
 * Keras "accuracy": integer labels → sparse categorical; a same-shaped target with more than
 * one class on the last axis → categorical (one-hot); otherwise binary at 0.5.
 */
export function accuracy(pred: Tensor, target: Tensor): Tensor {
  if (target.dtype !== "f32") return sparseCategoricalAccuracy(pred, target);
  const sameShaped = target.shape.join() === pred.shape.join();
  if (sameShaped && pred.rank >= 2 && pred.shape[pred.rank - 1] > 1) {
    return categoricalAccuracy(pred, target);
  }
  if (target.size === pred.size) return binaryAccuracy(pred, target);
  return sparseCategoricalAccuracy(pred, target);
}

export function meanSquaredError(pred: Tensor, target: Tensor): Tensor {
  sameSize("meanSquaredError", pred, target);
  const d = sub(pred, reshape(target, pred.shape));
  return mean(mul(d, d));
}

export function meanAbsoluteError(pred: Tensor, target: Tensor): Tensor {
  sameSize("meanAbsoluteError", pred, target);
  return mean(abs(sub(pred, reshape(target, pred.shape))));
}

function sameShape(op: string, pred: Tensor, target: Tensor): void {
  if (pred.shape.join() !== target.shape.join() || pred.rank < 1) {
    throw new Error(
      `${op}: predictions ${formatShape(pred.shape)} and targets ` +
        `${formatShape(target.shape)}: expected identical shapes [..., C]`,
    );
  }
}

function sameSize(op: string, pred: Tensor, target: Tensor): void {
  if (pred.size !== target.size) {
    throw new Error(
      `${op}: predictions ${formatShape(pred.shape)} and targets ` +
        `${formatShape(target.shape)}: expected the same number of elements`,
    );
  }
}

const BUILT_IN: Record<Exclude<MetricSpec, Metric>, Metric> = {
  accuracy: { name: "accuracy", fn: accuracy, direction: "up" },
  acc: { name: "accuracy", fn: accuracy, direction: "up" },
  sparse_categorical_accuracy: {
    name: "sparse_categorical_accuracy",
    fn: sparseCategoricalAccuracy,
    direction: "up",
  },
  categorical_accuracy: { name: "categorical_accuracy", fn: categoricalAccuracy, direction: "up" },
  binary_accuracy: { name: "binary_accuracy", fn: binaryAccuracy, direction: "up" },
  mse: { name: "mse", fn: meanSquaredError, direction: "down" },
  mae: { name: "mae", fn: meanAbsoluteError, direction: "down" },
};

/** Resolves specs to metrics; names must be unique and must not clash with "loss". */
export function resolveMetrics(specs: readonly MetricSpec[]): Metric[] {
  const metrics = specs.map((spec) => {
    if (typeof spec !== "string") return spec;
    const metric = BUILT_IN[spec];
    if (!metric) {
      throw new Error(
        `metrics: unknown metric '${spec}', expected one of ${
          Object.keys(BUILT_IN).join(", ")
        } or a {name, fn, direction} object`,
      );
    }
    return metric;
  });
  const names = new Set<string>(["loss"]);
  for (const m of metrics) {
    if (names.has(m.name) || m.name.startsWith("val_")) {
      throw new Error(`metrics: name '${m.name}' is used twice or reserved`);
    }
    names.add(m.name);
  }
  return metrics;
}
