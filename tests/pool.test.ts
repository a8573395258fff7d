import assert from "node:assert/strict";
import { noGrad } from "../engine/autograd.ts";
import {
  avgPool2d,
  avgPool3d,
  maxPool2d,
  maxPool3d,
  type PoolOptions,
} from "../engine/ops/pool.ts";
import { sizeOf, Tensor, tidy } from "../engine/tensor.ts";
import { assertClose, randomData, setup, testRng } from "./helpers.ts";
import { maxPoolGradRef } from "./reference/pool.ts";
import { POOL_CHECKS } from "./op_checks/pool.ts";

const rt = await setup();

for (const check of POOL_CHECKS) Deno.test(check.name, check.run);

Deno.test("pooling 'same' pins TensorFlow's padding: odd cell bottom/right, padding not counted", async () => {
  // 6×6 (value 6·row + col), pool 3, stride 2: 3 outputs per axis, 1 pad cell, after the last
  // row/column: the windows cover rows/cols [0, 2], [2, 4], [4, 5].
  const x = Tensor.from(Array.from({ length: 36 }, (_, i) => i), [1, 6, 6, 1]);
  const options: PoolOptions = { poolSize: 3, strides: 2, padding: "same" };
  assert.deepEqual(
    Array.from(await maxPool2d(x, options).data()),
    [[14, 16, 17], [26, 28, 29], [32, 34, 35]].flat(),
  );
  // The corner window holds {28, 29, 34, 35}: its mean is 31.5, not 126 / 9.
  assert.deepEqual(
    Array.from(await avgPool2d(x, options).data()),
    [[7, 9, 10.5], [19, 21, 22.5], [28, 30, 31.5]].flat(),
  );
  // 5×5, Keras default pool 2 / stride 2 with "same": 3 outputs, the last row/column alone.
  const y = Tensor.from(Array.from({ length: 25 }, (_, i) => i), [1, 5, 5, 1]);
  assert.deepEqual(
    Array.from(await maxPool2d(y, { padding: "same" }).data()),
    [[6, 8, 9], [16, 18, 19], [21, 23, 24]].flat(),
  );
  assert.deepEqual(
    Array.from(await avgPool2d(y, { padding: "same" }).data()),
    [[3, 5, 6.5], [13, 15, 16.5], [20.5, 22.5, 24]].flat(),
  );
  // 3×3×3 (value 9·d + 3·h + w), Keras default pool/stride 2 with "same": 2 outputs per axis,
  // windows [0, 1] and [2] on each; the back-bottom-right window is the corner cell alone.
  const v = Tensor.from(Array.from({ length: 27 }, (_, i) => i), [1, 3, 3, 3, 1]);
  assert.deepEqual(
    Array.from(await maxPool3d(v, { padding: "same" }).data()),
    [13, 14, 16, 17, 22, 23, 25, 26],
  );
  assert.deepEqual(
    Array.from(await avgPool3d(v, { padding: "same" }).data()),
    [6.5, 8, 11, 12.5, 20, 21.5, 24.5, 26],
  );
});

Deno.test("max pooling sends a tied window's gradient to its first maximum only", async () => {
  // Row-major window order: in [[1, 3], [3, 2]] the 3 at (0, 1) wins over the 3 at (1, 0).
  const x = Tensor.from([1, 3, 3, 2], [1, 2, 2, 1]).requireGrad();
  maxPool2d(x).backward(Tensor.from([5], [1, 1, 1, 1]));
  assert.deepEqual(Array.from(await x.grad!.data()), [0, 5, 0, 0]);

  // All-equal inputs, overlapping and padded windows, scalar and vec4 lanes: every window picks
  // its first cell inside the input; overlapping windows add up on the cells they share.
  const { rng } = testRng();
  for (const channels of [3, 4]) {
    for (const options of [{}, { poolSize: 3, strides: 1, padding: "same" as const }]) {
      const shape = [2, 5, 5, channels];
      const flat = new Float64Array(sizeOf(shape)).fill(0.5);
      const t = Tensor.from(flat, shape).requireGrad();
      const y = maxPool2d(t, options);
      const g = randomData(y.size, rng);
      y.backward(Tensor.from(g, y.shape));
      const expected = maxPoolGradRef({ shape, data: flat }, g, options);
      assertClose(await t.grad!.data(), expected.data, {
        what: `ties ${JSON.stringify(shape)} ${JSON.stringify(options)}`,
      });
    }
  }
  // 3-D: the window order is depth, then height, then width.
  const v = Tensor.from([1, 2, 3, 4, 4, 0, 4, 1], [1, 2, 2, 2, 1]).requireGrad();
  maxPool3d(v).backward(Tensor.from([7], [1, 1, 1, 1, 1]));
  assert.deepEqual(Array.from(await v.grad!.data()), [0, 0, 0, 7, 0, 0, 0, 0]);
});

Deno.test("pooling gradients add up over overlapping windows and are 0 where no window reaches", async () => {
  // Pool 2 stride 1 on a 1×3 row of ones: the middle cell is in both windows.
  const x = Tensor.ones([1, 1, 3, 1]).requireGrad();
  avgPool2d(x, { poolSize: [1, 2], strides: 1 }).backward(Tensor.from([2, 4], [1, 1, 2, 1]));
  assert.deepEqual(Array.from(await x.grad!.data()), [1, 3, 2]);
  // Stride 3 > pool 2 on 1×7, "valid": windows [0, 1] and [3, 4]; cells 2, 5, 6 get 0.
  const z = Tensor.from([1, 2, 3, 4, 5, 6, 7], [1, 1, 7, 1]).requireGrad();
  maxPool2d(z, { poolSize: [1, 2], strides: [1, 3] }).backward(Tensor.from([1, 1], [1, 1, 2, 1]));
  assert.deepEqual(Array.from(await z.grad!.data()), [0, 1, 0, 0, 1, 0, 0]);
});

Deno.test("pooling: empty batch, and forward without a gradient saves no argmax", async () => {
  const empty = maxPool2d(Tensor.zeros([0, 4, 4, 3]).requireGrad());
  assert.deepEqual(empty.shape, [0, 2, 2, 3]);
  assert.equal((await empty.data()).length, 0);

  const x = Tensor.uniform([2, 6, 6, 4]);
  const before = rt.poolStats().liveBuffers;
  const y = noGrad(() => maxPool2d(x.requireGrad()));
  assert.equal(rt.poolStats().liveBuffers, before + 1); // y only
  assert.equal(y.node, null);
});

Deno.test("pooling: forward and backward are one dispatch each", () => {
  // Poisoning adds a dispatch per allocation, NaN checking one per output.
  const { poison, checkNaN } = rt;
  rt.poison = rt.checkNaN = false;
  try {
    const cases = [
      { pool: maxPool2d, x: [2, 9, 11, 6], y: [2, 4, 5, 6] },
      { pool: avgPool2d, x: [2, 9, 11, 6], y: [2, 4, 5, 6] },
      { pool: maxPool3d, x: [2, 5, 9, 11, 6], y: [2, 2, 4, 5, 6] },
      { pool: avgPool3d, x: [2, 5, 9, 11, 6], y: [2, 2, 4, 5, 6] },
    ];
    for (const { pool, x: xShape, y: yShape } of cases) {
      const x = Tensor.uniform(xShape).requireGrad();
      const g = Tensor.ones(yShape);
      const before = rt.poolStats().dispatches;
      const y = pool(x, { poolSize: 3, strides: 2 });
      const afterForward = rt.poolStats().dispatches;
      y.backward(g);
      assert.equal(afterForward - before, 1, pool.name);
      assert.equal(rt.poolStats().dispatches - afterForward, 1, pool.name);
    }
  } finally {
    rt.poison = poison;
    rt.checkNaN = checkNaN;
  }
});

Deno.test("pooling forward + backward steps in a tidy keep the pool's live bytes flat", () => {
  const x = Tensor.uniform([3, 9, 11, 6]).requireGrad();
  const live: number[] = [];
  for (let step = 0; step < 6; step++) {
    tidy(() => {
      const a = maxPool2d(x, { poolSize: 3, strides: 2, padding: "same" });
      const b = avgPool2d(a, { poolSize: 2, strides: 1 });
      b.backward(Tensor.ones(b.shape));
    });
    x.grad?.dispose();
    x.grad = null;
    live.push(rt.poolStats().liveBytes);
  }
  assert.ok(live.every((b) => b === live[0]), `live bytes per step: ${live}`);
});

Deno.test("DENOGRAD_CHECK_NAN names the pooling op that produced an Inf", async () => {
  const checkNaN = rt.checkNaN;
  rt.checkNaN = true;
  try {
    const y = avgPool2d(Tensor.full([1, 2, 2, 1], 3e38));
    await assert.rejects(() => y.data(), /op 'avg_pool2d' produced NaN or Inf/);
  } finally {
    rt.checkNaN = checkNaN;
  }
});

Deno.test("pooling rejects bad shapes and options before dispatching", () => {
  const x = Tensor.zeros([1, 4, 5, 3]);
  const rank3 = Tensor.zeros([4, 5, 3]);
  const ints = Tensor.zeros([1, 4, 4, 2], "i32");
  const flat = Tensor.zeros([1, 4, 1, 5, 3]);
  const cube = Tensor.zeros([1, 4, 4, 4, 3]);
  const cases: [() => unknown, RegExp][] = [
    [
      () => maxPool2d(rank3),
      /maxPool2d: input \[4, 5, 3\] has rank 3, expected a rank-4 NHWC tensor \[batch, height, width, channels\]/,
    ],
    [
      () => avgPool2d(x, { poolSize: 5 }),
      /avgPool2d: input \[1, 4, 5, 3\] is 4×5 \(height×width\), smaller than poolSize 5×5: padding 'valid' expects at least 5×5/,
    ],
    [() => maxPool2d(x, { poolSize: 0 }), /maxPool2d: poolSize 0 is not an integer ≥ 1/],
    [() => maxPool2d(x, { poolSize: [2, 2.5] }), /maxPool2d: poolSize \[2,2.5\] is not/],
    [() => avgPool2d(x, { strides: [1, 1, 1] }), /avgPool2d: strides \[1,1,1\] is not/],
    [
      () => maxPool2d(x, { padding: "full" as never }),
      /maxPool2d: padding 'full' is not 'valid' or 'same'/,
    ],
    [() => maxPool2d(ints), /maxPool2d: input \[1, 4, 4, 2\] has dtype i32, expected f32/],
    [
      () => maxPool3d(x),
      /maxPool3d: input \[1, 4, 5, 3\] has rank 4, expected a rank-5 NDHWC tensor \[batch, depth, height, width, channels\]/,
    ],
    [
      () => avgPool3d(flat, { poolSize: [2, 2, 3] }),
      /avgPool3d: input \[1, 4, 1, 5, 3\] is 4×1×5 \(depth×height×width\), smaller than poolSize 2×2×3: padding 'valid' expects at least 2×2×3/,
    ],
    [
      () => maxPool3d(cube, { strides: [2, 2] }),
      /maxPool3d: strides \[2,2\] is not an integer ≥ 1 or a triple of them/,
    ],
  ];
  const before = rt.poolStats();
  for (const [call, message] of cases) assert.throws(call, message);
  const after = rt.poolStats();
  assert.equal(after.dispatches, before.dispatches);
  assert.equal(after.liveBuffers, before.liveBuffers);
});
