import assert from "node:assert/strict";
import {
  cast,
  concat,
  gather,
  permute,
  reshape,
  scatterAdd,
  split,
  squeeze,
  stack,
  transpose,
  unsqueeze,
} from "../engine/ops/shape.ts";
import { runtime } from "../engine/runtime.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { assertClose, randomData, ref, settleGarbage, setup, testRng } from "./helpers.ts";
import { gatherRef, scatterAddRef } from "./reference/shape.ts";
import { SHAPE_CHECKS } from "./op_checks/shape.ts";

await setup();

for (const check of SHAPE_CHECKS) Deno.test(check.name, check.run);

function randomIndices(n: number, high: number, low = 0): number[] {
  const { rng } = testRng();
  return Array.from({ length: n }, () => Math.floor(rng.uniform(low, high)));
}

Deno.test("shape reshape: clear errors", () => {
  const x = Tensor.zeros([2, 3]);
  assert.throws(
    () => reshape(x, [4, 2]),
    /reshape: cannot view shape \[2, 3\] \(6 elements\) as \[4, 2\] \(8 elements\)/,
  );
  assert.throws(() => reshape(x, [-1, -1]), /reshape: invalid target shape \[-1, -1\]/);
  assert.throws(() => reshape(x, [4, -1]), /reshape: cannot infer the -1 in \[4, -1\]/);
  assert.throws(() => reshape(x, [2.5, 2]), /reshape: invalid target shape/);
  assert.throws(() => reshape(Tensor.empty([0]), [0, -1]), /cannot infer/);
});

Deno.test("shape squeeze/unsqueeze: views with checked axes", () => {
  const x = Tensor.zeros([1, 3, 1, 4]);
  assert.deepEqual(squeeze(x).shape, [3, 4]);
  assert.deepEqual(squeeze(x, -2).shape, [1, 3, 4]);
  assert.deepEqual(squeeze(x, [0, 2]).shape, [3, 4]);
  assert.equal(squeeze(x).storage, x.storage);
  assert.deepEqual(unsqueeze(x, 4).shape, [1, 3, 1, 4, 1]);
  assert.deepEqual(unsqueeze(x, -1).shape, [1, 3, 1, 4, 1]);
  assert.deepEqual(unsqueeze(Tensor.scalar(1), 0).shape, [1]);
  assert.throws(
    () => squeeze(x, 1),
    /squeeze: axis 1 of shape \[1, 3, 1, 4\] has size 3, expected 1/,
  );
  assert.throws(() => unsqueeze(x, 5), /unsqueeze: axis 5 is out of range/);
});

Deno.test("shape gather: a grid of more than 65535 workgroups", async () => {
  // 16.8M one-element rows: 65,626 workgroups of 256 threads, so the grid spills into y.
  const n = 16_800_001;
  const indices = new Int32Array(n);
  for (let p = 0; p < n; p++) indices[p] = p % 7; // 5 and 6 are out of range
  const table = Tensor.from([10, 11, 12, 13, 14], [5]);
  const idx = Tensor.from(indices, [n], "i32");
  const y = gather(table, idx);
  const out = await y.data();
  let mismatches = 0;
  for (let p = 0; p < n; p++) {
    const expected = indices[p] < 5 ? 10 + indices[p] : 0;
    if (out[p] !== expected) mismatches++;
  }
  assert.equal(mismatches, 0);
  for (const t of [table, idx, y]) t.dispose();
});

Deno.test("shape permute/transpose: clear errors", () => {
  const x = Tensor.zeros([2, 3, 4]);
  assert.throws(
    () => permute(x, [0, 1]),
    /permute: \[0, 1\] is not a permutation of the 3 axes of shape \[2, 3, 4\]/,
  );
  assert.throws(() => permute(x, [0, 1, 1]), /not a permutation/);
  assert.throws(() => permute(x, [0, 1, 3]), /not a permutation/);
  assert.throws(
    () => transpose(Tensor.zeros([3])),
    /transpose: axis -2 is out of range for shape \[3\]/,
  );
});

Deno.test("shape concat: inputs without gradient get none, the others do", async () => {
  const a = Tensor.from([1, 2, 3, 4], [2, 2]).requireGrad();
  const b = Tensor.from([5, 6], [2, 1]);
  const y = concat([a, b], 1);
  y.backward(Tensor.from([10, 20, 30, 40, 50, 60], [2, 3]));
  assert.deepEqual(Array.from(await a.grad!.data()), [10, 20, 40, 50]);
  assert.equal(b.grad, null);
});

Deno.test("shape concat/stack/split: clear errors", () => {
  const x = Tensor.zeros([2, 3]);
  assert.throws(() => concat([]), /concat: received no tensors/);
  assert.throws(
    () => concat([x, Tensor.zeros([2, 4])], 0),
    /concat: shapes \[2, 3\] f32, \[2, 4\] f32 cannot be joined along axis 0/,
  );
  assert.throws(() => concat([x, Tensor.zeros([2, 3], "i32")], 0), /cannot be joined/);
  assert.throws(() => concat([x, Tensor.zeros([2, 3, 1])], 0), /cannot be joined/);
  assert.throws(() => concat([Tensor.scalar(1), Tensor.scalar(2)]), /concat: received 0-d/);
  assert.throws(() => concat([x, x], 2), /concat: axis 2 is out of range/);
  assert.throws(
    () => stack([x, Tensor.zeros([3, 2])]),
    /stack: shapes \[2, 3\] f32, \[3, 2\] f32 differ/,
  );
  assert.throws(() => stack([x], 3), /stack: axis 3 is out of range/);
  assert.throws(() => split(x, [1, 1], 1), /split: sizes \[1, 1\] do not add up to axis 1/);
});

Deno.test("shape gather/scatterAdd: checkIndices reports an out-of-range index, naming the op and bound", async () => {
  const rt = runtime();
  rt.checkIndices = true;
  try {
    const x = Tensor.from([1, 2, 3], [3]);
    assert.deepEqual(Array.from(await gather(x, Tensor.from([2, 0], [2], "i32")).data()), [3, 1]);
    const past = gather(x, Tensor.from([0, 3], [2], "i32"));
    await assert.rejects(
      () => past.data(),
      /^Error: denograd: op 'gather' got an index outside \[0, 3\) \(DENOGRAD_CHECK_INDICES\)$/,
    );
    const negative = gather(x, Tensor.from([1, -1], [2], "i32"));
    await assert.rejects(() => negative.data(), /op 'gather' got an index outside \[0, 3\)/);
    const scattered = scatterAdd(Tensor.ones([2, 4]), Tensor.from([1, 6], [2], "u32"), 0, 5);
    await assert.rejects(() => scattered.data(), /op 'scatterAdd' got an index outside \[0, 5\)/);
    // A report clears: checking goes on.
    const fine = scatterAdd(Tensor.ones([2, 1]), Tensor.from([4, 4], [2], "i32"), 0, 5);
    assert.deepEqual(Array.from(await fine.data()), [0, 0, 0, 0, 2]);
  } finally {
    rt.checkIndices = false;
  }
});

Deno.test("shape scatterAdd: many chunks and rows, skewed repeats, deterministic", async () => {
  const { rng } = testRng();
  const rows = 700;
  const n = 3000;
  // A third of the positions hit row 0 (a padding token), the rest spread, a few out of range.
  const idx = randomIndices(n, rows + 20, -10).map((v, p) => p % 3 === 0 ? 0 : v);
  for (const d of [5, 16, 37, 44]) {
    const values = randomData(n * d, rng);
    const expected = scatterAddRef(ref([n, d], values), ref([n], idx), 0, rows);
    const v = Tensor.from(values, [n, d]);
    const i = Tensor.from(idx, [n], "i32");
    const first = await scatterAdd(v, i, 0, rows).data();
    assertClose(first, expected.data, { atol: 1e-4, what: `scatterAdd d=${d}` });
    const again = await scatterAdd(v, i, 0, rows).data();
    assert.deepEqual(Array.from(again), Array.from(first), "bitwise identical on a second run");
  }
});

Deno.test("shape gather/scatterAdd: clear errors", () => {
  const x = Tensor.zeros([4, 3]);
  const idx = Tensor.from([0, 1], [2], "i32");
  assert.throws(
    () => gather(x, Tensor.from([0, 1], [2])),
    /gather: indices of shape \[2\] are f32, expected i32 or u32/,
  );
  assert.throws(() => gather(Tensor.scalar(1), idx), /gather: received a 0-d tensor/);
  assert.throws(() => gather(x, idx, 2), /gather: axis 2 is out of range for shape \[4, 3\]/);
  assert.throws(
    () => scatterAdd(Tensor.zeros([3, 5]), idx, 0, 4),
    /scatterAdd: values \[3, 5\] f32, indices \[2\], axis 0, size 4/,
  );
  assert.throws(
    () => scatterAdd(Tensor.zeros([2, 5], "i32"), idx, 0, 4),
    /scatterAdd: values \[2, 5\] i32/,
  );
  assert.throws(() => scatterAdd(Tensor.zeros([2, 5]), idx, 0, -1), /scatterAdd: .*size -1/);
  assert.throws(() => scatterAdd(Tensor.zeros([2, 5]), idx, 2, 4), /scatterAdd: .*axis 2/);
  assert.throws(
    () => scatterAdd(Tensor.zeros([2]), Tensor.zeros([2, 1], "i32"), 0, 4),
    /scatterAdd/,
  );
});

Deno.test("shape gather/scatterAdd: intermediates are released (pool flat)", async () => {
  const table = Tensor.from(randomData(50 * 8, testRng().rng), [50, 8]).requireGrad();
  const idx = Tensor.from(randomIndices(64, 50), [64], "i32");
  const step = () =>
    tidy(() => {
      const y = gather(table, idx);
      y.backward(Tensor.ones(y.shape));
      table.grad?.dispose();
      table.grad = null;
    });
  step();
  await runtime().sync();
  await settleGarbage(); // earlier tests' garbage goes now, not in the middle of the count
  const live = runtime().poolStats().liveBytes;
  for (let i = 0; i < 5; i++) step();
  await runtime().sync();
  // No view or saved tensor still holds the inputs, and nothing new stays allocated.
  assert.equal(table.storage.refs, 1);
  assert.equal(idx.storage.refs, 1);
  assert.equal(runtime().poolStats().liveBytes, live);
});

// ---- cast -----------------------------------------------------------------------------------

Deno.test("shape cast: conversions between f32, i32 and u32", async () => {
  const f = Tensor.from([-2.7, -0.5, 0, 0.9, 3.99, 1e6, 1e10, -1e10], [8]);
  assert.deepEqual(Array.from(await cast(f, "i32").data()), [
    -2,
    0,
    0,
    0,
    3,
    1e6,
    // WGSL saturates to the nearest f32 in range: 2^31 - 128.
    2147483520,
    -2147483648,
  ]);
  assert.deepEqual(Array.from(await cast(Tensor.from([-3.5, 2.5, 1e10], [3]), "u32").data()), [
    0,
    2,
    4294967040, // 2^32 - 256
  ]);
  const i = Tensor.from([-1, 5, -2147483648], [3], "i32");
  assert.deepEqual(Array.from(await cast(i, "f32").data()), [-1, 5, -2147483648]);
  assert.deepEqual(Array.from(await cast(i, "u32").data()), [4294967295, 5, 2147483648]);
  const u = Tensor.from([4294967295, 7], [2], "u32");
  assert.deepEqual(Array.from(await cast(u, "i32").data()), [-1, 7]);
  assert.deepEqual(Array.from(await cast(u, "f32").data()), [4294967296, 7]);
  const s = cast(Tensor.scalar(2.5), "i32");
  assert.deepEqual(s.shape, []);
  assert.equal(await s.item(), 2);
  const same = Tensor.zeros([3]);
  assert.equal(cast(same, "f32").storage, same.storage);
  assert.throws(() => cast(same, "f16" as "f32"), /cast: unknown dtype 'f16'/);
});

Deno.test("shape cast and gather: 300000 elements", async () => {
  const n = 300_001;
  const { rng } = testRng();
  const values = Array.from({ length: n }, () => Math.floor(rng.uniform(-1e6, 1e6)));
  const x = Tensor.from(values, [n], "i32");
  assert.deepEqual(Array.from(await cast(x, "f32").data()), values);
  const table = Tensor.from(randomData(97, rng), [97]);
  const idx = randomIndices(n, 97);
  const expected = gatherRef(ref([97], await table.data()), ref([n], idx), 0);
  assertClose(await gather(table, Tensor.from(idx, [n], "i32")).data(), expected.data);
});
