// Training metrics as GPU ops: each returns the batch mean as a 0-d tensor, so the loop can
// accumulate Keras's batch-size-weighted running means without reading anything back.
import { formatShape, type Tensor } from "../tensor.ts";
import { abs, add, div, equal, greater, mul, sub } from "../ops/elementwise.ts";
import { diceCoefficient, jaccardIndex } from "../ops/loss.ts";
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

// ---- segmentation overlap ---------------------------------------------------------------------

export interface OverlapMetricOptions {
  /** Key in the logs (default "dice_coef" / "iou"). */
  name?: string;
  /** Added to numerator and denominator (default 1.0, the handout's). */
  smooth?: number;
  /** Binarise predictions at this level first (default: none, soft as the students' metrics). */
  threshold?: number;
}

function binarised(pred: Tensor, threshold: number | undefined): Tensor {
  return threshold === undefined ? pred : greater(pred, threshold);
}

/**
 * The students' `dice_coef` as a Keras metric: Dice over each batch flattened, so the epoch value
 * is the batch-size-weighted mean of per-batch Dice (not the Dice of the whole set: see
 * overlapCounts).
 */
export function diceMetric(options: OverlapMetricOptions = {}): Metric {
  const { name = "dice_coef", smooth = 1, threshold } = options;
  return {
    name,
    fn: (pred, target) => diceCoefficient(binarised(pred, threshold), target, { smooth }),
    direction: "up",
  };
}

/** The students' `iou_metric`: IoU over each batch flattened, averaged over batches as Keras. */
export function iouMetric(options: OverlapMetricOptions = {}): Metric {
  const { name = "iou", smooth = 1, threshold } = options;
  return {
    name,
    fn: (pred, target) => jaccardIndex(binarised(pred, threshold), target, { smooth }),
    direction: "up",
  };
}

/**
 * The handout's sample IoU, kept for fidelity and not to train with: a ratio per pixel over the
 * last axis, (p·t + s)/(p + t − p·t + s), then the mean over all pixels. Every background pixel
 * scores 1 (0 + s over 0 + s), so on a small foreground the value stays near 1 whatever the
 * prediction.
 */
export function pixelwiseIou(pred: Tensor, target: Tensor, smooth = 1): Tensor {
  sameSize("pixelwiseIou", pred, target);
  const t = reshape(target, pred.shape);
  const intersection = mul(pred, t);
  const union = sub(add(pred, t), intersection);
  return mean(div(add(intersection, smooth), add(union, smooth)));
}

/** Sums behind a Dice or IoU: |A∩B|, |B| (predicted), |A| (actual). */
export interface OverlapCounts {
  intersection: number;
  predicted: number;
  actual: number;
}

/**
 * Counts of predictions binarised at `threshold` (pred > threshold) against 0/1 targets, over
 * elements [start, end) of host arrays. Summing the counts of every image (or batch) gives the
 * dataset-level Dice and IoU, which no average of per-batch ratios equals.
 */
export function overlapCounts(
  pred: ArrayLike<number>,
  target: ArrayLike<number>,
  { threshold = 0.5, start = 0, end = pred.length } = {},
): OverlapCounts {
  if (pred.length !== target.length) {
    throw new Error(
      `overlapCounts: ${pred.length} predictions and ${target.length} targets, expected the same`,
    );
  }
  const counts = { intersection: 0, predicted: 0, actual: 0 };
  for (let i = start; i < end; i++) {
    const p = pred[i] > threshold ? 1 : 0;
    const t = target[i] > 0.5 ? 1 : 0;
    counts.intersection += p & t;
    counts.predicted += p;
    counts.actual += t;
  }
  return counts;
}

/** Adds counts (per image → per dataset). */
export function sumCounts(counts: readonly OverlapCounts[]): OverlapCounts {
  const total = { intersection: 0, predicted: 0, actual: 0 };
  for (const c of counts) {
    total.intersection += c.intersection;
    total.predicted += c.predicted;
    total.actual += c.actual;
  }
  return total;
}

/** (2I + s)/(|A| + |B| + s); 1 when both masks are empty and s = 0 (nothing to miss). */
export function diceFromCounts(c: OverlapCounts, smooth = 0): number {
  const denominator = c.predicted + c.actual + smooth;
  return denominator === 0 ? 1 : (2 * c.intersection + smooth) / denominator;
}

/** (I + s)/(|A| + |B| − I + s); 1 when both masks are empty and s = 0. */
export function iouFromCounts(c: OverlapCounts, smooth = 0): number {
  const denominator = c.predicted + c.actual - c.intersection + smooth;
  return denominator === 0 ? 1 : (c.intersection + smooth) / denominator;
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
