import assert from "node:assert/strict";
import {
  binaryCrossEntropy,
  binaryCrossEntropyWithLogits,
  mae,
  mse,
  type Reduction,
  softmaxCrossEntropy,
} from "../engine/ops/loss.ts";
import { Tensor } from "../engine/tensor.ts";
import { assertClose, randomData, ref, setup, testRng } from "./helpers.ts";
import { crossEntropyGradRef, crossEntropyRef } from "./reference/loss.ts";
import { classIds, LOSS_CHECKS } from "./op_checks/loss.ts";

await setup();

for (const check of LOSS_CHECKS) Deno.test(check.name, check.run);

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
  // 3 classes: scalar loads; 8: four classes per load.
  for (const c of [3, 8]) {
    const logits = Tensor.from(randomData(4 * c, testRng().rng), [4, c]).requireGrad();
    for (const [dtype, bad] of [["i32", -1], ["i32", c], ["u32", 7 + c]] as const) {
      const labels = Tensor.from([0, bad, 2, 1], [4], dtype);
      const rows = await softmaxCrossEntropy(logits, labels, { reduction: "none" }).data();
      assert.ok(Number.isNaN(rows[1]), `${dtype} label ${bad}: row loss ${rows[1]}`);
      assert.ok([rows[0], rows[2], rows[3]].every(Number.isFinite));
      const loss = softmaxCrossEntropy(logits, labels);
      assert.ok(Number.isNaN(await loss.item()));
      logits.grad = null;
      loss.backward();
      const grad = await logits.grad!.data();
      assert.ok(grad.slice(c, 2 * c).every(Number.isNaN));
      assert.ok([...grad.slice(0, c), ...grad.slice(2 * c)].every(Number.isFinite));
    }
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
