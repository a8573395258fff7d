// Float64 references for the loss family.
import type { Ref } from "../helpers.ts";

export type Reduction = "mean" | "sum" | "none";

function reduce(losses: Float64Array, shape: number[], reduction: Reduction, count: number): Ref {
  if (reduction === "none") return { shape, data: losses };
  const total = losses.reduce((a, b) => a + b, 0);
  return { shape: [], data: Float64Array.of(reduction === "mean" ? total / count : total) };
}

/**
 * Cross-entropy of softmax(logits [N, C]) against class ids [N] (NaN for an id outside
 * [0, C)) or probabilities [N, C]; "mean" divides by N.
 */
export function crossEntropyRef(logits: Ref, labels: Ref, reduction: Reduction = "mean"): Ref {
  const [n, c] = logits.shape;
  const probs = labels.shape.length === 2;
  const losses = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const row = logits.data.subarray(i * c, (i + 1) * c);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
    if (probs) {
      let loss = 0;
      for (let k = 0; k < c; k++) loss += labels.data[i * c + k] * (lse - row[k]);
      losses[i] = loss;
    } else {
      const label = labels.data[i];
      losses[i] = Number.isInteger(label) && label >= 0 && label < c ? lse - row[label] : NaN;
    }
  }
  return reduce(losses, [n], reduction, n);
}

/** d mean-CE / d logits for class ids: (softmax − one-hot) / N. */
export function crossEntropyGradRef(logits: Ref, labels: Ref): Float64Array {
  const [n, c] = logits.shape;
  const grad = new Float64Array(n * c);
  for (let i = 0; i < n; i++) {
    const row = logits.data.subarray(i * c, (i + 1) * c);
    const m = Math.max(...row);
    const s = row.reduce((acc, x) => acc + Math.exp(x - m), 0);
    for (let k = 0; k < c; k++) {
      grad[i * c + k] = (Math.exp(row[k] - m) / s - (labels.data[i] === k ? 1 : 0)) / n;
    }
  }
  return grad;
}

const EPS = 1e-7;
const clip = (p: number) => Math.min(Math.max(p, EPS), 1 - EPS);

export const pointwiseRef = {
  mse: (p: number, t: number) => (p - t) ** 2,
  mae: (p: number, t: number) => Math.abs(p - t),
  bce: (p: number, t: number) => -(t * Math.log(clip(p)) + (1 - t) * Math.log(1 - clip(p))),
  bce_logits: (x: number, t: number) => Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x))),
};

export function pointwiseLossRef(
  kind: keyof typeof pointwiseRef,
  pred: Ref,
  target: Ref,
  reduction: Reduction = "mean",
): Ref {
  const f = pointwiseRef[kind];
  const losses = pred.data.map((p, i) => f(p, target.data[i]));
  return reduce(losses, pred.shape, reduction, pred.data.length);
}
