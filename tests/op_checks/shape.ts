import assert from "../assert.ts";
import {
  concat,
  gather,
  narrow,
  pad,
  permute,
  reshape,
  scatterAdd,
  slice,
  split,
  stack,
  transpose,
} from "../../engine/ops/shape.ts";
import { runtime } from "../../engine/runtime.ts";
import { Tensor } from "../../engine/tensor.ts";
import { assertClose, checkOp, randomData, ref, testRng } from "../helpers.ts";
import {
  concatRef,
  gatherRef,
  padRef,
  permuteRef,
  reshapeRef,
  scatterAddRef,
  sliceRef,
  stackRef,
} from "../reference/shape.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("shape");

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) =>
    Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)])
  );
}

// ---- reshape -----------------------------------------------------------------------------

test("shape reshape: a view on the same storage, -1 inferred, gradient flows", async () => {
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

test("shape reshape: 0-d and size-0 tensors", async () => {
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

// ---- permute -----------------------------------------------------------------------------

test("shape permute: every permutation, ranks 0 to 5, forward and gradient", async () => {
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

test("shape permute: vec4 rows, integer dtypes, negative axes, transpose", async () => {
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

test("shape permute: 1e6 elements against the reference", async () => {
  await checkOp({
    name: "permute [100, 100, 100] by [2, 0, 1]",
    inputs: [{ shape: [100, 100, 100] }],
    gpu: (t) => permute(t, [2, 0, 1]),
    ref: (t) => permuteRef(t, [2, 0, 1]),
    forwardOnly: true,
  });
});

// ---- concat / stack / split ----------------------------------------------------------------

test("shape concat: three inputs of different sizes along each axis", async () => {
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

test("shape stack: along every axis including the new last one", async () => {
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

test("shape split: pieces and their gradients", async () => {
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

test("shape slice: negative bounds, clamping, empty results, 0-d", async () => {
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

test("shape narrow and pad: forward, gradient, errors", async () => {
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

test("shape gather: embedding lookup with repeated indices accumulates gradient", async () => {
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

test("shape gather: inner axes, negative axis, u32 and 0-d indices", async () => {
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

test("shape gather: out-of-range indices read nothing, give zeros and no gradient", async () => {
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

test("shape scatterAdd: forward and gradient (which is gather)", async () => {
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

export const SHAPE_CHECKS: OpCheckTest[] = tests;
