import {
  binaryCrossEntropy,
  binaryCrossEntropyWithLogits,
  mae,
  mse,
  type Reduction,
  softmaxCrossEntropy,
} from "../../engine/ops/loss.ts";
import { REDUCE_TUNING } from "../../engine/ops/reduce.ts";
import { checkOp, testRng } from "../helpers.ts";
import { crossEntropyRef, pointwiseLossRef, pointwiseRef } from "../reference/loss.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("loss");

const REDUCTIONS: Reduction[] = ["mean", "sum", "none"];

export function classIds(n: number, classes: number, seedRng = testRng().rng): number[] {
  return Array.from(
    { length: n },
    () => Math.min(classes - 1, Math.floor(seedRng.uniform(0, classes))),
  );
}

/** Rows of random probabilities (each sums to 1). */
function probabilities(n: number, classes: number): number[] {
  const { rng } = testRng();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: classes }, () => rng.uniform(0.01, 1));
    const total = row.reduce((a, b) => a + b, 0);
    out.push(...row.map((v) => Math.fround(v / total)));
  }
  return out;
}

// [130, 10] spans several row blocks of the one-workgroup path; [5, 1000] spreads rows over
// many lanes; [200, 170] is past the one-workgroup limit (rows in parallel, then a reduction).
// [9, 12] and [203, 164] read four classes per load (C % 4 == 0) on both paths.
const CE_SHAPES: [number, number][] = [
  [1, 1],
  [7, 3],
  [9, 12],
  [130, 10],
  [5, 1000],
  [200, 170],
  [203, 164],
];

test("softmaxCrossEntropy with class ids (i32, u32): forward and gradient", async () => {
  // Both adapter tunings: they spread rows over lanes differently.
  for (const tuning of Object.values(REDUCE_TUNING.table)) {
    REDUCE_TUNING.set(tuning);
    for (const [n, c] of CE_SHAPES) {
      for (const reduction of REDUCTIONS) {
        for (const dtype of ["i32", "u32"] as const) {
          await checkOp({
            variant: `ids ${dtype}`,
            name: `CE ids ${dtype} [${n}, ${c}] ${reduction}`,
            inputs: [{ shape: [n, c], low: -5, high: 5 }, {
              shape: [n],
              data: classIds(n, c),
              dtype,
            }],
            gpu: (logits, labels) => softmaxCrossEntropy(logits, labels, { reduction }),
            ref: (logits, labels) => crossEntropyRef(logits, labels, reduction),
            // Finite differences cost O(size²): the big case checks its gradient below.
            forwardOnly: n * c > 1500,
          });
        }
      }
    }
  }
  REDUCE_TUNING.set(null);
});

test("softmaxCrossEntropy with probabilities and one-hot rows: forward and both gradients", async () => {
  for (const tuning of Object.values(REDUCE_TUNING.table)) {
    REDUCE_TUNING.set(tuning);
    for (const [n, c] of CE_SHAPES.filter(([n, c]) => n * c <= 1500)) {
      for (const reduction of REDUCTIONS) {
        await checkOp({
          variant: "probs",
          name: `CE probs [${n}, ${c}] ${reduction}`,
          inputs: [{ shape: [n, c], low: -5, high: 5 }, {
            shape: [n, c],
            data: probabilities(n, c),
          }],
          gpu: (logits, labels) => softmaxCrossEntropy(logits, labels, { reduction }),
          ref: (logits, labels) => crossEntropyRef(logits, labels, reduction),
        });
        const ids = classIds(n, c);
        const oneHot = ids.flatMap((k) => Array.from({ length: c }, (_, j) => (j === k ? 1 : 0)));
        await checkOp({
          variant: "one-hot",
          name: `CE one-hot [${n}, ${c}] ${reduction}`,
          inputs: [{ shape: [n, c], low: -5, high: 5 }, {
            shape: [n, c],
            data: oneHot,
            grad: false,
          }],
          gpu: (logits, labels) => softmaxCrossEntropy(logits, labels, { reduction }),
          ref: (logits, labels) => crossEntropyRef(logits, labels, reduction),
        });
      }
    }
  }
  REDUCE_TUNING.set(null);
});

const POINTWISE = {
  mse: { fn: mse, low: -3, high: 3 },
  mae: { fn: mae, low: -3, high: 3 },
  // Away from the clip at 1e-7 so finite differences see the smooth part.
  bce: { fn: binaryCrossEntropy, low: 0.02, high: 0.98 },
  bce_logits: { fn: binaryCrossEntropyWithLogits, low: -6, high: 6 },
};

for (const [kind, { fn, low, high }] of Object.entries(POINTWISE)) {
  test(`${kind}: forward and gradients of both inputs, every reduction`, async () => {
    for (const shape of [[], [7], [3, 5, 7]]) {
      for (const reduction of REDUCTIONS) {
        await checkOp({
          variant: reduction,
          name: `${kind}${JSON.stringify(shape)} ${reduction}`,
          inputs: [{ shape, low, high }, { shape, low: 0, high: 1 }],
          gpu: (p, t) => fn(p, t, { reduction }),
          ref: (p, t) => pointwiseLossRef(kind as keyof typeof pointwiseRef, p, t, reduction),
        });
      }
    }
  });
}

export const LOSS_CHECKS: OpCheckTest[] = tests;
