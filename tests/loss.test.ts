import assert from "node:assert/strict";
import {
  binaryCrossEntropy,
  binaryCrossEntropyWithLogits,
  mae,
  mse,
  type Reduction,
  softmaxCrossEntropy,
} from "../engine/ops/loss.ts";
import { REDUCE_TUNING } from "../engine/ops/reduce.ts";
import { Tensor } from "../engine/tensor.ts";
import { assertClose, checkOp, randomData, ref, setup, testRng } from "./helpers.ts";
import {
  crossEntropyGradRef,
  crossEntropyRef,
  pointwiseLossRef,
  pointwiseRef,
} from "./reference/loss.ts";

await setup();

const REDUCTIONS: Reduction[] = ["mean", "sum", "none"];

function classIds(n: number, classes: number, seedRng = testRng().rng): number[] {
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
const CE_SHAPES: [number, number][] = [[1, 1], [7, 3], [130, 10], [5, 1000], [200, 170]];

Deno.test("softmaxCrossEntropy with class ids (i32, u32): forward and gradient", async () => {
  // Both adapter tunings: they spread rows over lanes differently.
  for (const tuning of Object.values(REDUCE_TUNING.table)) {
    REDUCE_TUNING.set(tuning);
    for (const [n, c] of CE_SHAPES) {
      for (const reduction of REDUCTIONS) {
        for (const dtype of ["i32", "u32"] as const) {
          await checkOp({
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

Deno.test("softmaxCrossEntropy with probabilities and one-hot rows: forward and both gradients", async () => {
  for (const tuning of Object.values(REDUCE_TUNING.table)) {
    REDUCE_TUNING.set(tuning);
    for (const [n, c] of CE_SHAPES.filter(([n, c]) => n * c <= 1500)) {
      for (const reduction of REDUCTIONS) {
        await checkOp({
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

Deno.test("softmaxCrossEntropy: large batches and logits of magnitude 1e4 against float64", async () => {
  const { rng } = testRng();
  for (
    const [n, c, scale] of [
      [5, 1000, 5],
      [200, 170, 5],
      [1024, 100, 5],
      [64, 10, 1e4],
      [300, 500, 1e4],
    ]
  ) {
    const data = randomData(n * c, rng, -scale, scale);
    const ids = classIds(n, c, rng);
    const what = `CE [${n}, ${c}] at scale ${scale}`;
    const logits = Tensor.from(data, [n, c]).requireGrad();
    const loss = softmaxCrossEntropy(logits, Tensor.from(ids, [n], "i32"));
    const expected = crossEntropyRef(ref([n, c], data), ref([n], ids)).data;
    assertClose(await loss.data(), expected, { rtol: 1e-5, what: `${what} forward` });
    loss.backward();
    const grad = await logits.grad!.data();
    assert.ok(grad.every(Number.isFinite), `${what}: non-finite gradient`);
    assertClose(grad, crossEntropyGradRef(ref([n, c], data), ref([n], ids)), {
      atol: 1e-7,
      rtol: 1e-4,
      what: `${what} gradient`,
    });
  }
});

Deno.test("softmaxCrossEntropy: an out-of-range class id makes its row NaN, others unaffected", async () => {
  const logits = Tensor.from(randomData(12, testRng().rng), [4, 3]).requireGrad();
  for (const [dtype, bad] of [["i32", -1], ["i32", 3], ["u32", 7]] as const) {
    const labels = Tensor.from([0, bad, 2, 1], [4], dtype);
    const rows = await softmaxCrossEntropy(logits, labels, { reduction: "none" }).data();
    assert.ok(Number.isNaN(rows[1]), `${dtype} label ${bad}: row loss ${rows[1]}`);
    assert.ok([rows[0], rows[2], rows[3]].every(Number.isFinite));
    const loss = softmaxCrossEntropy(logits, labels);
    assert.ok(Number.isNaN(await loss.item()));
    logits.grad = null;
    loss.backward();
    const grad = await logits.grad!.data();
    assert.ok(grad.slice(3, 6).every(Number.isNaN));
    assert.ok([...grad.slice(0, 3), ...grad.slice(6)].every(Number.isFinite));
  }
});

Deno.test("softmaxCrossEntropy: DENOGRAD_CHECK_NAN names the op for an out-of-range class id", async () => {
  const rt = await setup();
  rt.checkNaN = true;
  try {
    const loss = softmaxCrossEntropy(Tensor.zeros([2, 3]), Tensor.from([1, 3], [2], "i32"));
    await assert.rejects(() => loss.data(), /op 'softmax_cross_entropy' produced NaN or Inf/);
  } finally {
    rt.checkNaN = false;
  }
});

Deno.test("softmaxCrossEntropy: DENOGRAD_CHECK_INDICES reports an out-of-range class id and its bound", async () => {
  const rt = await setup();
  rt.checkIndices = true;
  try {
    const ok = softmaxCrossEntropy(Tensor.zeros([2, 3]), Tensor.from([0, 2], [2], "i32"));
    assert.ok(Math.abs((await ok.item()) - Math.log(3)) < 1e-6);
    for (const labels of [Tensor.from([1, 3], [2], "i32"), Tensor.from([-1, 0], [2], "i32")]) {
      const loss = softmaxCrossEntropy(Tensor.zeros([2, 3]), labels, { reduction: "none" });
      await assert.rejects(
        () => loss.data(),
        /^Error: denograd: op 'softmax_cross_entropy' got a class id outside \[0, 3\) \(DENOGRAD_CHECK_INDICES\)$/,
      );
    }
  } finally {
    rt.checkIndices = false;
  }
});

Deno.test("softmaxCrossEntropy: clear errors for bad shapes, dtypes and reductions", () => {
  const logits = Tensor.zeros([4, 3]);
  assert.throws(
    () => softmaxCrossEntropy(Tensor.zeros([3]), Tensor.from([0], [1], "i32")),
    /softmaxCrossEntropy: logits of shape \[3\] and dtype f32, expected f32 \[N, C\]/,
  );
  assert.throws(
    () => softmaxCrossEntropy(logits, Tensor.zeros([4])),
    /softmaxCrossEntropy: labels of shape \[4\] and dtype f32 do not match logits \[4, 3\]: expected class ids \(i32 or u32\) of shape \[4\] or f32 probabilities of shape \[4, 3\]/,
  );
  assert.throws(
    () => softmaxCrossEntropy(logits, Tensor.from([0, 1, 2], [3], "i32")),
    /labels of shape \[3\] and dtype i32 do not match logits \[4, 3\]/,
  );
  assert.throws(
    () => softmaxCrossEntropy(logits, Tensor.zeros([4, 3], "i32")),
    /labels of shape \[4, 3\] and dtype i32 do not match/,
  );
  assert.throws(
    () => softmaxCrossEntropy(logits, Tensor.zeros([4, 2])),
    /labels of shape \[4, 2\] and dtype f32 do not match/,
  );
  assert.throws(
    () =>
      softmaxCrossEntropy(logits, Tensor.from([0, 0, 0, 0], [4], "i32"), {
        reduction: "avg" as Reduction,
      }),
    /softmaxCrossEntropy: reduction 'avg' is not one of "mean", "sum", "none"/,
  );
});

const POINTWISE = {
  mse: { fn: mse, low: -3, high: 3 },
  mae: { fn: mae, low: -3, high: 3 },
  // Away from the clip at 1e-7 so finite differences see the smooth part.
  bce: { fn: binaryCrossEntropy, low: 0.02, high: 0.98 },
  bce_logits: { fn: binaryCrossEntropyWithLogits, low: -6, high: 6 },
};

for (const [kind, { fn, low, high }] of Object.entries(POINTWISE)) {
  Deno.test(`${kind}: forward and gradients of both inputs, every reduction`, async () => {
    for (const shape of [[], [7], [3, 5, 7]]) {
      for (const reduction of REDUCTIONS) {
        await checkOp({
          name: `${kind}${JSON.stringify(shape)} ${reduction}`,
          inputs: [{ shape, low, high }, { shape, low: 0, high: 1 }],
          gpu: (p, t) => fn(p, t, { reduction }),
          ref: (p, t) => pointwiseLossRef(kind as keyof typeof pointwiseRef, p, t, reduction),
        });
      }
    }
  });
}

Deno.test("binaryCrossEntropy: probabilities at 0 and 1 are clipped to [1e-7, 1 − 1e-7] (Keras)", async () => {
  const p = Tensor.from([0, 0, 1, 1, 0.5], [5]).requireGrad();
  const t = Tensor.from([0, 1, 0, 1, 1], [5]);
  const losses = await binaryCrossEntropy(p, t, { reduction: "none" }).data();
  assert.ok(losses.every(Number.isFinite));
  // −log(1e-7) = 16.118; f32 rounds 1 − 1e-7 to 1 − 1.19e-7, hence the tolerance.
  assertClose(losses, [1e-7, 16.1181, 15.9424, 1.19e-7, Math.LN2], { atol: 1e-4, rtol: 1e-4 });
  binaryCrossEntropy(p, t).backward();
  // The clip passes no gradient at 0 and 1.
  assertClose(await p.grad!.data(), [0, 0, 0, 0, -0.4], { atol: 1e-6 });
});

Deno.test("binaryCrossEntropyWithLogits: stable for huge logits, exact gradient at 0", async () => {
  const x = Tensor.from([-200, -30, 0, 0, 30, 200], [6]).requireGrad();
  const t = Tensor.from([1, 0, 1, 0, 1, 0], [6]);
  const losses = await binaryCrossEntropyWithLogits(x, t, { reduction: "none" }).data();
  assertClose(losses, [200, 9.36e-14, Math.LN2, Math.LN2, 9.36e-14, 200], { atol: 1e-6 });
  binaryCrossEntropyWithLogits(x, t, { reduction: "sum" }).backward();
  assertClose(await x.grad!.data(), [-1, 0, -0.5, 0.5, 0, 1], { atol: 1e-6 });
});

Deno.test("pointwise losses: clear errors for shape and dtype mismatches", () => {
  assert.throws(
    () => mse(Tensor.zeros([4, 1]), Tensor.zeros([4])),
    /mse: pred of shape \[4, 1\] and target of shape \[4\] must have the same shape/,
  );
  assert.throws(
    () => binaryCrossEntropy(Tensor.zeros([2]), Tensor.from([0, 1], [2], "i32")),
    /binaryCrossEntropy: pred has dtype f32 and target i32, expected f32 for both/,
  );
  assert.throws(
    () => mae(Tensor.zeros([2]), Tensor.zeros([2]), { reduction: "max" as Reduction }),
    /mae: reduction 'max' is not one of/,
  );
});
