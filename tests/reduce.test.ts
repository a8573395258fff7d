import assert from "node:assert/strict";
import { argmax, logSoftmax, max, mean, softmax, sum } from "../engine/ops/reduce.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { assertClose, randomData, ref, setup, testRng } from "./helpers.ts";
import { argmaxRef, maxRef, sumRef } from "./reference/reduce.ts";
import { CASES, REDUCE_CHECKS, REDUCTIONS, underEachTuning } from "./op_checks/reduce.ts";

const rt = await setup();

for (const check of REDUCE_CHECKS) Deno.test(check.name, check.run);

Deno.test("sum, mean, max: gradients of long rows and columns match the analytic gradient", async () => {
  const { rng } = testRng();
  await underEachTuning(async (tuning) => {
    for (const [shape, axes] of CASES) {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = randomData(n, rng);
      for (const [op, { gpu, ref: refFn }] of Object.entries(REDUCTIONS)) {
        const x = Tensor.from(data, shape).requireGrad();
        const y = gpu(x, axes, true);
        const w = randomData(y.size, rng);
        y.backward(Tensor.from(w, y.shape));
        // Broadcast w (and the reduced value) back over x: sum gives w, mean w / count, and max
        // w at the maximum (no ties in random data).
        const wBack = refFn(ref(shape, data), axes, true);
        const expected = new Float64Array(n);
        const keep = wBack.shape;
        const index = new Array(shape.length).fill(0);
        for (let i = 0; i < n; i++) {
          let rem = i;
          for (let d = shape.length - 1; d >= 0; d--) {
            index[d] = rem % shape[d];
            rem = Math.floor(rem / shape[d]);
          }
          const k = index.reduce((acc, v, d) => acc * keep[d] + (keep[d] === 1 ? 0 : v), 0);
          if (op === "sum") expected[i] = w[k];
          else if (op === "mean") expected[i] = w[k] * y.size / n;
          else expected[i] = data[i] === wBack.data[k] ? w[k] : 0;
        }
        assertClose(await x.grad!.data(), expected, {
          what: `${op}${JSON.stringify(shape)} axes ${JSON.stringify(axes)} gradient (${tuning})`,
        });
      }
    }
  });
});

Deno.test("sum: 0-d result of a 0-d input, and shapes with and without keepDims", async () => {
  const s = sum(Tensor.scalar(2.5));
  assert.deepEqual(s.shape, []);
  assert.equal(await s.item(), 2.5);
  const x = Tensor.ones([2, 3, 4]);
  assert.deepEqual(sum(x).shape, []);
  assert.deepEqual(sum(x, [0, 2]).shape, [3]);
  assert.deepEqual(sum(x, [0, 2], true).shape, [1, 3, 1]);
  assert.deepEqual(mean(x, -1, true).shape, [2, 3, 1]);
  assert.deepEqual(max(x, []).shape, [2, 3, 4]);
  assertClose(await sum(x, [-3, -1]).data(), [8, 8, 8]);
});

Deno.test("sum and mean over an empty axis give 0 and NaN; max refuses", async () => {
  const x = Tensor.from([], [0, 3]);
  assertClose(await sum(x, 0).data(), [0, 0, 0]);
  assert.ok((await mean(x, 0).data()).every(Number.isNaN));
  assert.equal(sum(x, 1).size, 0);
  assert.throws(() => max(x, 0), /max: cannot take the maximum over axes \[0\] of shape \[0, 3\]/);
  assert.throws(() => argmax(x, 0), /argmax: axis 0 of shape \[0, 3\] is empty/);
});

Deno.test("sum, max: long axes with few outputs (chunked) stay within float64 tolerance", async () => {
  const { rng } = testRng();
  await underEachTuning(async (tuning) => {
    for (
      const [shape, axis] of [
        [[3, 100003], 1],
        [[20011, 2], 0],
        [[50001], 0],
        [[3, 100004], 1],
        [[20011, 4], 0],
      ] as [
        number[],
        number,
      ][]
    ) {
      const data = randomData(shape.reduce((a, b) => a * b, 1), rng, 0, 1);
      const what = `${JSON.stringify(shape)} axis ${axis} (${tuning})`;
      const x = Tensor.from(data, shape);
      assertClose(await sum(x, axis).data(), sumRef(ref(shape, data), axis).data, {
        rtol: 1e-5,
        what: `sum ${what}`,
      });
      assertClose(await max(x, axis).data(), maxRef(ref(shape, data), axis).data, {
        what: `max ${what}`,
      });
      assert.deepEqual(
        Array.from(await argmax(x, axis).data()),
        Array.from(argmaxRef(ref(shape, data), axis).data),
        `argmax ${what}`,
      );
    }
  });
});

Deno.test("max: gradient goes to the first maximum along each pass", async () => {
  const x = Tensor.from([1, 3, 3, -2, -5, -5, -7, -9], [2, 4]).requireGrad();
  const m = max(x, 1);
  assertClose(await m.data(), [3, -5]);
  m.backward(Tensor.from([10, 20], [2]));
  assertClose(await x.grad!.data(), [0, 10, 0, 0, 20, 0, 0, 0]);
});

Deno.test("argmax: first index on ties, negative values, every axis", async () => {
  const x = Tensor.from([-3, -1, -1, -2, 5, 5, 5, 5, -9, -8, -9, -8], [3, 4]);
  assert.deepEqual(Array.from(await argmax(x).data()), [1, 0, 1]);
  assert.deepEqual(Array.from(await argmax(x, 0).data()), [1, 1, 1, 1]);
  assert.equal(argmax(x).dtype, "i32");
  const allNegInf = Tensor.from([-Infinity, -Infinity, -Infinity], [3]);
  assert.equal(await argmax(allNegInf).item(), 0);
  const { rng } = testRng();
  // Values from a handful of integers: ties everywhere, also across lanes of long rows.
  for (
    const [shape, axis] of [[[7], 0], [[3, 5, 7], 1], [[3, 5, 7], 0], [[5, 2000], -1], [
      [2000, 3],
      0,
    ]] as [number[], number][]
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Array.from({ length: n }, () => Math.floor(rng.uniform(-4, 0)));
    const got = await argmax(Tensor.from(data, shape), axis).data();
    assert.deepEqual(
      Array.from(got),
      Array.from(argmaxRef(ref(shape, data), axis).data),
      `argmax ${JSON.stringify(shape)} axis ${axis}`,
    );
  }
});

Deno.test("softmax: masked (−Infinity) entries get 0; a fully masked row is NaN as in PyTorch", async () => {
  // Rows of 3 load scalars, rows of 8 vec4s; leading masked entries come before any finite one.
  // Few rows share a workgroup's lanes, 300 rows take one lane each (the online pass).
  const cases = [[3, [1]], [3, [0]], [8, [0, 1, 2, 3, 6]], [8, [4, 5, 6, 7]]] as [
    number,
    number[],
  ][];
  for (const [row, masked] of cases) {
    for (const repeats of [1, 100]) {
      const rowOf = (fill: number) =>
        Array.from({ length: row }, (_, i) => (masked.includes(i) ? -Infinity : fill));
      const block = [...rowOf(0), ...rowOf(-Infinity), ...rowOf(1e4)];
      const x = Tensor.from(Array.from({ length: repeats }, () => block).flat(), [
        3 * repeats,
        row,
      ]);
      const what = `rows of ${row} masked at ${masked}, ${3 * repeats} rows`;
      const share = 1 / (row - masked.length);
      const expected = rowOf(share).map((v) => (v === -Infinity ? 0 : v));
      const [y, logY] = [await softmax(x).data(), await logSoftmax(x).data()];
      for (let b = 0; b < 3 * repeats * row; b += 3 * row) {
        assertClose(y.slice(b, b + row), expected, { what });
        assert.ok(y.slice(b + row, b + 2 * row).every(Number.isNaN), what);
        assertClose(y.slice(b + 2 * row, b + 3 * row), expected, { what });
        assertClose(logY.slice(b, b + row), expected.map(Math.log), { what });
        assert.ok(logY.slice(b + row, b + 2 * row).every(Number.isNaN), what);
      }
    }
  }
});

Deno.test("reduce ops: clear errors for bad axes and dtypes", () => {
  const x = Tensor.zeros([2, 3]);
  assert.throws(() => sum(x, 2), /sum: axis 2 is out of range for shape \[2, 3\]/);
  assert.throws(() => mean(x, [-3]), /mean: axis -3 is out of range for shape \[2, 3\]/);
  assert.throws(() => max(x, [0, -2]), /max: axes \[0,-2\] repeat an axis of shape \[2, 3\]/);
  assert.throws(() => sum(x, 0.5), /sum: axis 0.5 is out of range/);
  assert.throws(() => softmax(x, 2), /softmax: axis 2 is out of range for shape \[2, 3\]/);
  assert.throws(() => logSoftmax(Tensor.scalar(1)), /log_softmax: axis -1 .* 0-d tensor/);
  assert.throws(
    () => sum(Tensor.from([1, 2], [2], "i32")),
    /sum: input of shape \[2\] has dtype i32, expected f32/,
  );
  assert.throws(() => argmax(Tensor.from([1], [1], "u32")), /argmax: .* dtype u32/);
});

Deno.test("reductions over non-adjacent axes release their intermediate passes", async () => {
  const x = Tensor.uniform([4, 5, 6, 7]).requireGrad();
  const run = () =>
    tidy(() => {
      const y = sum(max(x, [0, 2]), [0, 1]);
      y.backward();
      return y.dispose();
    });
  run();
  x.grad!.dispose();
  x.grad = null;
  await rt.sync();
  const before = rt.poolStats().liveBytes;
  for (let i = 0; i < 3; i++) {
    run();
    x.grad!.dispose();
    x.grad = null;
  }
  await rt.sync();
  // ≤, not =: the garbage collector may meanwhile free tensors earlier test files dropped.
  const after = rt.poolStats().liveBytes;
  assert.ok(after <= before, `live bytes grew from ${before} to ${after}`);
});
