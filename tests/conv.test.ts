import assert from "node:assert/strict";
import {
  conv2d,
  conv2dBackpropFilter,
  conv2dBackpropInput,
  conv2dTranspose,
  conv3d,
} from "../engine/ops/conv.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { assertClose, settleGarbage, setup } from "./helpers.ts";
import { CONV_CHECKS } from "./op_checks/conv.ts";

const rt = await setup();

for (const check of CONV_CHECKS) Deno.test(check.name, check.run);

Deno.test("conv2d 'same': TensorFlow puts the odd padding cell at the bottom/right (fixture)", async () => {
  // x = 0…15 on a 4×4 image, a 2×2 kernel of ones, stride 1 "same": total padding 1 per axis,
  // all of it after (TF). Each output sums x[i..i+1, j..j+1] clipped at the bottom/right edge.
  const x = Tensor.from(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]);
  const k = Tensor.ones([2, 2, 1, 1]);
  const y = conv2d(x, k, { padding: "same" });
  assert.deepEqual(Array.from(await y.data()), [
    10,
    14,
    18,
    10, //
    26,
    30,
    34,
    18,
    42,
    46,
    50,
    26,
    25,
    27,
    29,
    15,
  ]);
  // Stride 2, 3×3 kernel on 5×5: out 3, total padding (3−1)·2 + 3 − 5 = 2, one before.
  const x5 = Tensor.ones([1, 5, 5, 1]);
  const y5 = conv2d(x5, Tensor.ones([3, 3, 1, 1]), { strides: 2, padding: "same" });
  assert.deepEqual(Array.from(await y5.data()), [4, 6, 4, 6, 9, 6, 4, 6, 4]);
});

Deno.test("conv: shape errors name the op and the shapes, before any dispatch", () => {
  const x = Tensor.zeros([1, 5, 5, 3]);
  const [k3, k4, big] = [[3, 3, 3, 2], [3, 3, 4, 2], [7, 7, 3, 2]].map((s) => Tensor.zeros(s));
  const [x3, bias3, up] = [Tensor.zeros([5, 5, 3]), Tensor.zeros([3]), Tensor.zeros([2, 2, 4, 3])];
  const before = rt.poolStats();
  assert.throws(
    () => conv2d(x, k4),
    /conv2d: kernel \[3, 3, 4, 2\] takes 4 input channels but the input \[1, 5, 5, 3\] has 3/,
  );
  assert.throws(
    () => conv2d(x3, k3),
    /conv2d: input has shape \[5, 5, 3\]; expected \[N, H, W, C\]/,
  );
  assert.throws(() => conv2d(x, big), /smaller than the dilated kernel \(7\)/);
  assert.throws(() => conv2d(x, k3, { strides: 0 }), /strides 0 must be an integer ≥ 1/);
  assert.throws(() => conv2d(x, k3, { strides: 2, dilation: 2 }), /cannot be combined/);
  assert.throws(() => conv2d(x, k3, { bias: bias3 }), /bias has shape \[3\]; expected \[2\]/);
  assert.throws(() => conv3d(x, k3), /conv3d: input has shape \[1, 5, 5, 3\]/);
  assert.throws(
    () => conv2dTranspose(x, up, { strides: 2, outputPadding: 2 }),
    /outputPadding 2 must be smaller than its stride 2/,
  );
  const after = rt.poolStats();
  assert.equal(after.dispatches, before.dispatches);
  assert.equal(after.allocations, before.allocations);
});

Deno.test("conv: one dispatch per pass, and the pool stays flat over training steps", async () => {
  const x = Tensor.uniform([2, 9, 9, 4], -1, 1).keep();
  const k = Tensor.uniform([3, 3, 4, 8], -1, 1).keep().requireGrad();
  const b = Tensor.zeros([8]).keep().requireGrad();
  const clearGrads = () => {
    for (const p of [k, b]) {
      p.grad?.dispose();
      p.grad = null;
    }
  };
  const step = () =>
    tidy(() => conv2d(x, k, { padding: "same", bias: b, activation: "relu" }).sum().backward());
  rt.poison = false; // poisoning allocations would add dispatches
  try {
    const before = rt.poolStats().dispatches;
    tidy(() => void conv2d(x, k, { padding: "same" }));
    assert.equal(rt.poolStats().dispatches - before, 1);
  } finally {
    rt.poison = true;
  }
  step();
  clearGrads();
  await rt.sync();
  await settleGarbage(); // earlier tests' garbage goes now, not in the middle of the count
  const live = rt.poolStats().liveBytes;
  for (let i = 0; i < 5; i++) {
    step();
    clearGrads();
  }
  await rt.sync();
  assert.equal(rt.poolStats().liveBytes, live);
});

Deno.test("conv2dBackpropFilter: more pixels than a lane may loop over are split further", async () => {
  // 1 × 301 × 297 pixels, one channel: an unsplit weight pass (or too few splits) would loop
  // over more pixels per lane than lavapipe's loop budget allows.
  const [h, w] = [301, 297];
  const x = new Float64Array(h * w).map((_, i) => Math.fround(Math.sin(i * 0.37)));
  const dy = new Float64Array((h - 2) * (w - 2)).map((_, i) => Math.fround(Math.cos(i * 0.11)));
  const dk = conv2dBackpropFilter(
    Tensor.from(x, [1, h, w, 1]),
    Tensor.from(dy, [1, h - 2, w - 2, 1]),
    [3, 3, 1, 1],
  );
  const expected = new Float64Array(9);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      for (let p = 0; p < h - 2; p++) {
        for (let q = 0; q < w - 2; q++) {
          expected[i * 3 + j] += x[(p + i) * w + q + j] * dy[p * (w - 2) + q];
        }
      }
    }
  }
  assertClose(await dk.data(), expected, { atol: 0.05, rtol: 1e-3, what: "dW" });
});

Deno.test("conv2dBackpropInput / conv2dBackpropFilter equal the tape's gradients", async () => {
  const options = { strides: 2, padding: "same" as const };
  const x = Tensor.uniform([2, 9, 8, 4], -1, 1).requireGrad();
  const k = Tensor.uniform([3, 3, 4, 8], -1, 1).requireGrad();
  const y = conv2d(x, k, options);
  const dy = Tensor.uniform(y.shape, -1, 1);
  y.backward(dy);
  const dx = conv2dBackpropInput(dy, k, x.shape, options);
  const dk = conv2dBackpropFilter(x, dy, k.shape, options);
  assert.deepEqual(Array.from(await dx.data()), Array.from(await x.grad!.data()));
  assert.deepEqual(Array.from(await dk.data()), Array.from(await k.grad!.data()));
  assert.throws(
    () => conv2dBackpropInput(Tensor.zeros([2, 5, 5, 8]), k, x.shape, options),
    /conv2dBackpropInput: dy has shape \[2, 5, 5, 8\]; expected \[2, 5, 4, 8\]/,
  );
});
