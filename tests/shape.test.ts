import assert from "node:assert/strict";
import {
  cast,
  concat,
  gather,
  narrow,
  pad,
  permute,
  reshape,
  scatterAdd,
  slice,
  split,
  squeeze,
  stack,
  transpose,
  unsqueeze,
} from "../engine/ops/shape.ts";
import { runtime } from "../engine/runtime.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { assertClose, checkOp, randomData, ref, setup, testRng } from "./helpers.ts";
import {
  concatRef,
  gatherRef,
  padRef,
  permuteRef,
  reshapeRef,
  scatterAddRef,
  sliceRef,
  stackRef,
} from "./reference/shape.ts";

await setup();

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) =>
    Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)])
  );
}

function randomIndices(n: number, high: number, low = 0): number[] {
  const { rng } = testRng();
  return Array.from({ length: n }, () => Math.floor(rng.uniform(low, high)));
}

// ---- reshape -----------------------------------------------------------------------------

Deno.test("shape reshape: a view on the same storage, -1 inferred, gradient flows", async () => {
  const rt = runtime();
  const x = Tensor.from(randomData(105, testRng().rng), [3, 5, 7]);
  const before = rt.poolStats();
  const y = reshape(x, [7, -1]);
  assert.deepEqual(y.shape, [7, 15]);
  assert.equal(y.storage, x.storage);
  assert.equal(rt.poolStats().liveBytes, before.liveBytes);
  assert.equal(rt.poolStats().dispatches, before.dispatches);
  x.dispose();
  assertClose(await y.data(), await reshape(y, [105]).data());
  assert.deepEqual(reshape(y, [-1]).shape, [105]);

  await checkOp({
    name: "reshape then permute",
    inputs: [{ shape: [3, 5, 7] }],
    gpu: (t) => permute(reshape(t, [5, -1]), [1, 0]),
    ref: (t) => permuteRef(reshapeRef(t, [5, 21]), [1, 0]),
  });
});

Deno.test("shape reshape: 0-d and size-0 tensors", async () => {
  const s = Tensor.scalar(4.5);
  const r = reshape(s, [1, 1]);
  assert.deepEqual(r.shape, [1, 1]);
  assert.deepEqual(reshape(r, []).shape, []);
  assert.equal(await reshape(r, []).item(), 4.5);
  assert.deepEqual(reshape(Tensor.empty([0, 3]), [3, 0, 5]).shape, [3, 0, 5]);
  await checkOp({
    name: "reshape 0-d",
    inputs: [{ shape: [] }],
    gpu: (t) => reshape(t, [1, 1, 1]),
    ref: (t) => reshapeRef(t, [1, 1, 1]),
  });
});

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

// ---- permute -----------------------------------------------------------------------------

Deno.test("shape permute: every permutation, ranks 0 to 5, forward and gradient", async () => {
  const shapes = [[], [7], [3, 5], [3, 5, 7], [3, 2, 5, 4], [2, 3, 1, 5, 3]];
  for (const shape of shapes) {
    for (const perm of permutations(shape.length)) {
      await checkOp({
        name: `permute ${JSON.stringify(shape)} by ${JSON.stringify(perm)}`,
        inputs: [{ shape }],
        gpu: (t) => permute(t, perm),
        ref: (t) => permuteRef(t, perm),
      });
    }
  }
});

Deno.test("shape permute: vec4 rows, integer dtypes, negative axes, transpose", async () => {
  // The last axis kept: rows of four-word vectors, in chunks of four vectors per thread with
  // a partial last chunk; then rows of 37 scalars (chunks of eight, partial last chunk).
  for (const shape of [[2, 6, 8], [3, 4, 44], [3, 4, 37]]) {
    await checkOp({
      name: `permute ${JSON.stringify(shape)} by [1, 0, 2]`,
      inputs: [{ shape }],
      gpu: (t) => permute(t, [1, 0, -1]),
      ref: (t) => permuteRef(t, [1, 0, 2]),
    });
  }
  const ints = Array.from({ length: 24 }, (_, i) => i - 12);
  const xi = Tensor.from(ints, [2, 3, 4], "i32");
  const yi = permute(xi, [2, 0, 1]);
  assert.equal(yi.dtype, "i32");
  assert.deepEqual(
    Array.from(await yi.data()),
    Array.from(permuteRef(ref([2, 3, 4], ints), [2, 0, 1]).data),
  );
  await checkOp({
    name: "transpose default",
    inputs: [{ shape: [2, 3, 5] }],
    gpu: (t) => transpose(t),
    ref: (t) => permuteRef(t, [0, 2, 1]),
  });
  await checkOp({
    name: "transpose(0, 2)",
    inputs: [{ shape: [2, 3, 5] }],
    gpu: (t) => t.transpose(0, 2),
    ref: (t) => permuteRef(t, [2, 1, 0]),
  });
  // Moving only size-1 axes is a view.
  const x = Tensor.zeros([1, 4, 1]);
  assert.equal(permute(x, [2, 1, 0]).storage, x.storage);
});

Deno.test("shape permute: 1e6 elements against the reference", async () => {
  await checkOp({
    name: "permute [100, 100, 100] by [2, 0, 1]",
    inputs: [{ shape: [100, 100, 100] }],
    gpu: (t) => permute(t, [2, 0, 1]),
    ref: (t) => permuteRef(t, [2, 0, 1]),
    forwardOnly: true,
  });
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

// ---- concat / stack / split ----------------------------------------------------------------

Deno.test("shape concat: three inputs of different sizes along each axis", async () => {
  const base = [3, 5, 7];
  const sizes = [2, 5, 1];
  for (const axis of [0, 1, 2, -1]) {
    const a = axis < 0 ? axis + 3 : axis;
    const shapes = sizes.map((s) => base.map((d, k) => k === a ? s : d));
    await checkOp({
      name: `concat axis ${axis}`,
      inputs: shapes.map((shape) => ({ shape })),
      gpu: (...ts) => concat(ts, axis),
      ref: (...rs) => concatRef(rs, a),
    });
  }
  // Rows of four words (vec4 path) and a size-0 input.
  await checkOp({
    name: "concat vec4 rows with an empty input",
    inputs: [{ shape: [3, 4, 8] }, { shape: [3, 0, 8] }, { shape: [3, 2, 8] }],
    gpu: (...ts) => concat(ts, 1),
    ref: (...rs) => concatRef(rs, 1),
  });
  const xi = Tensor.from([1, -2, 3], [3], "i32");
  const yi = Tensor.from([-4], [1], "i32");
  assert.deepEqual(Array.from(await concat([xi, yi]).data()), [1, -2, 3, -4]);
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

Deno.test("shape stack: along every axis including the new last one", async () => {
  for (const axis of [0, 1, 2, -1]) {
    const a = axis < 0 ? axis + 3 : axis;
    await checkOp({
      name: `stack axis ${axis}`,
      inputs: [{ shape: [3, 5] }, { shape: [3, 5] }, { shape: [3, 5] }],
      gpu: (...ts) => stack(ts, axis),
      ref: (...rs) => stackRef(rs, a),
    });
  }
  const s = stack([Tensor.scalar(1), Tensor.scalar(2)]);
  assert.deepEqual(s.shape, [2]);
  assert.deepEqual(Array.from(await s.data()), [1, 2]);
});

Deno.test("shape split: pieces and their gradients", async () => {
  for (const piece of [0, 1, 2]) {
    await checkOp({
      name: `split piece ${piece}`,
      inputs: [{ shape: [3, 7, 2] }],
      gpu: (t) => split(t, [2, 0, 5], 1)[piece],
      ref: (t) => {
        const starts = [0, 2, 2][piece];
        return sliceRef(t, [0, starts], [3, starts + [2, 0, 5][piece]]);
      },
    });
  }
});

// ---- slice / narrow / pad ------------------------------------------------------------------

Deno.test("shape slice: negative bounds, clamping, empty results, 0-d", async () => {
  const cases: [number[], number[], number[]][] = [
    [[3, 5, 7], [1, -4, 2], [3, -1, -1]],
    [[3, 5, 7], [-10, 0], [10, 100]], // clamped to the whole tensor but the last axis
    [[3, 5, 7], [0, 0, -3], [3, 5, Infinity]],
    [[3, 5, 7], [2, 3], [1, 5]], // end before start: empty
    [[3, 5, 7], [0, 5], [3, 5]], // empty at the end
    [[9], [-3], [-1]],
    [[4, 6, 8], [1, 2, 0], [3, 5, 8]], // rows of four words
    [[10, 3], [2], [7]], // one contiguous run: a buffer copy
  ];
  for (const [shape, starts, ends] of cases) {
    await checkOp({
      name: `slice ${JSON.stringify(shape)} ${JSON.stringify(starts)}:${JSON.stringify(ends)}`,
      inputs: [{ shape }],
      gpu: (t) => slice(t, starts, ends),
      ref: (t) => sliceRef(t, starts, ends),
    });
  }
  const s = Tensor.scalar(3);
  assert.equal(await slice(s, [], []).item(), 3);
  const x = Tensor.zeros([2, 3]);
  assert.equal(slice(x, [0], [Infinity]).storage, x.storage); // whole tensor: a view
});

Deno.test("shape narrow and pad: forward, gradient, errors", async () => {
  await checkOp({
    name: "narrow axis 1",
    inputs: [{ shape: [3, 5, 7] }],
    gpu: (t) => narrow(t, -2, -4, 3),
    ref: (t) => sliceRef(t, [0, 1], [3, 4]),
  });
  const pads: [number[], number[], number[], number][] = [
    [[3, 5, 7], [1, 0, 2], [0, 3, 1], 0],
    [[3, 5, 7], [0, 2], [0, 1], -1.5], // inner axes unpadded: merged
    [[2, 1, 3], [0, 1, 0], [1, 0, 0], 7],
    [[4], [3], [0], 2],
    [[0, 2], [1, 1], [0, 0], 5], // only padding
    [[2, 30], [0, 3], [1, 4], 0.25], // rows of 37: several chunks per thread row
  ];
  for (const [shape, before, after, value] of pads) {
    await checkOp({
      name: `pad ${JSON.stringify(shape)} ${before}|${after} with ${value}`,
      inputs: [{ shape }],
      gpu: (t) => pad(t, before, after, value),
      ref: (t) => padRef(t, before, after, value),
    });
  }
  const xi = Tensor.from([1, 2], [2], "i32");
  assert.deepEqual(Array.from(await pad(xi, [1], [2], -3).data()), [-3, 1, 2, -3, -3]);
  const x = Tensor.zeros([3, 5]);
  assert.throws(
    () => narrow(x, 1, 3, 3),
    /narrow: start 3, length 3 do not fit axis 1 of shape \[3, 5\]/,
  );
  assert.throws(
    () => slice(x, [0, 0, 0], []),
    /slice: starts \[0, 0, 0\] do not fit shape \[3, 5\]/,
  );
  assert.throws(() => slice(x, [0.5], []), /slice: starts/);
  assert.throws(
    () => pad(x, [-1], []),
    /pad: widths before \[-1\], after \[\] do not fit shape \[3, 5\]/,
  );
  assert.throws(() => pad(xi, [1], [], 0.5), /pad: value 0.5 is not representable in dtype i32/);
});

// ---- gather / scatter-add ------------------------------------------------------------------

Deno.test("shape gather: embedding lookup with repeated indices accumulates gradient", async () => {
  // Rows of 6 and 37 scalars, of 8 and 44 words (vec4 path, one or several chunks).
  for (const d of [6, 37, 8, 44]) {
    await checkOp({
      name: `gather [11, ${d}] by [4, 3] with repeats`,
      inputs: [
        { shape: [11, d] },
        { shape: [4, 3], data: [3, 0, 3, 10, 3, 7, 0, 0, 5, 10, 3, 1], dtype: "i32" },
      ],
      gpu: (x, i) => gather(x, i),
      ref: (x, i) => gatherRef(x, i, 0),
    });
  }
});

Deno.test("shape gather: inner axes, negative axis, u32 and 0-d indices", async () => {
  await checkOp({
    name: "gather axis 1",
    inputs: [{ shape: [3, 5, 7] }, { shape: [6], data: [4, 4, 0, 2, 1, 4], dtype: "u32" }],
    gpu: (x, i) => gather(x, i, 1),
    ref: (x, i) => gatherRef(x, i, 1),
  });
  await checkOp({
    name: "gather axis -1 with 2-d indices",
    inputs: [{ shape: [3, 5, 7] }, { shape: [2, 2], data: [6, 0, 6, 3], dtype: "i32" }],
    gpu: (x, i) => gather(x, i, -1),
    ref: (x, i) => gatherRef(x, i, 2),
  });
  await checkOp({
    name: "gather 0-d index",
    inputs: [{ shape: [5, 3] }, { shape: [], data: [2], dtype: "i32" }],
    gpu: (x, i) => gather(x, i),
    ref: (x, i) => gatherRef(x, i, 0),
  });
  const empty = gather(Tensor.zeros([5, 3]), Tensor.from([], [0], "i32"));
  assert.deepEqual(empty.shape, [0, 3]);
});

Deno.test("shape gather: out-of-range indices read nothing, give zeros and no gradient", async () => {
  await checkOp({
    name: "gather with out-of-range indices",
    inputs: [
      { shape: [5, 4] },
      { shape: [6], data: [-1, 5, 2, 2147483647, -2147483648, 4], dtype: "i32" },
    ],
    gpu: (x, i) => gather(x, i),
    ref: (x, i) => gatherRef(x, i, 0),
  });
  const x = Tensor.from([1, 2, 3], [3]);
  const y = gather(x, Tensor.from([3, 0, 4294967295], [3], "u32"));
  assert.deepEqual(Array.from(await y.data()), [0, 1, 0]);
  // Integer tables are copied bit for bit.
  const table = Tensor.from([-7, 8, -9], [3], "i32");
  assert.deepEqual(Array.from(await gather(table, Tensor.from([2, 0], [2], "i32")).data()), [
    -9,
    -7,
  ]);
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

Deno.test("shape scatterAdd: forward and gradient (which is gather)", async () => {
  await checkOp({
    name: "scatterAdd axis 1",
    inputs: [{ shape: [2, 4, 3, 5] }, {
      shape: [4, 3],
      data: [0, 2, 2, 6, 1, 2, -1, 0, 2, 2, 5, 1],
      dtype: "i32",
    }],
    gpu: (v, i) => scatterAdd(v, i, 1, 6),
    ref: (v, i) => scatterAddRef(v, i, 1, 6),
  });
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
  const live = runtime().poolStats().liveBytes;
  for (let i = 0; i < 5; i++) step();
  await runtime().sync();
  // No view or saved tensor still holds the inputs, and nothing new stays allocated (the
  // garbage collector may release other tests' tensors meanwhile, hence ≤).
  assert.equal(table.storage.refs, 1);
  assert.equal(idx.storage.refs, 1);
  assert.ok(runtime().poolStats().liveBytes <= live);
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
