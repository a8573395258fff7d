import assert from "node:assert/strict";
import * as ew from "../engine/ops/elementwise.ts";
import { Tensor } from "../engine/tensor.ts";
import { assertClose, ref, setup } from "./helpers.ts";
import { mapRef } from "./reference/elementwise.ts";
import { ELEMENTWISE_CHECKS } from "./op_checks/elementwise.ts";

await setup();

for (const check of ELEMENTWISE_CHECKS) Deno.test(check.name, check.run);

Deno.test("elementwise unary: 0-d and extreme values stay exact", async () => {
  const x = Tensor.from([-1e30, -100, -0, 0, 100, 1e30, 3.4e38], [7]);
  assertClose(await ew.sigmoid(x).data(), [0, 0, 0.5, 0.5, 1, 1, 1], { atol: 1e-7 });
  assertClose(await ew.tanh(x).data(), [-1, -1, 0, 0, 1, 1, 1], { atol: 1e-7 });
  assertClose(await ew.relu(x).data(), [0, 0, 0, 0, 100, 1e30, 3.4e38]);
  assertClose(await ew.exp(Tensor.from([-200, 0, 100], [3])).data(), [0, 1, Infinity]);
  assertClose(await ew.log(Tensor.from([0, 1], [2])).data(), [-Infinity, 0]);
  const scalar = ew.exp(Tensor.scalar(1));
  assert.deepEqual(scalar.shape, []);
  assertClose(await scalar.data(), [Math.E]);
});

Deno.test("elementwise pow: negative bases, zero, integer exponents", async () => {
  const a = Tensor.from([-2, -2, -2, 0, 0, 0, 3], [7]);
  const b = Tensor.from([2, 3, 0.5, 2, 0, -1, -2], [7]);
  const y = await ew.pow(a, b).data();
  assertClose(y, [4, -8, NaN, 0, 1, Infinity, 1 / 9]);
});

Deno.test("elementwise maximum/minimum: ties split the gradient", async () => {
  const a = Tensor.from([1, 2, 3], [3]).requireGrad();
  const b = Tensor.from([1, 1, 4], [3]).requireGrad();
  ew.maximum(a, b).backward(Tensor.ones([3]));
  assertClose(await a.grad!.data(), [0.5, 1, 0]);
  assertClose(await b.grad!.data(), [0.5, 0, 1]);
});

Deno.test("elementwise fill: every dtype, empty, large", async () => {
  assert.deepEqual(Array.from(await ew.fill([3], -7, "i32").data()), [-7, -7, -7]);
  assert.deepEqual(Array.from(await ew.fill([2], 4000000000, "u32").data()), [
    4000000000,
    4000000000,
  ]);
  assert.deepEqual((await ew.fill([0, 3], 1).data()).length, 0);
  const big = await ew.fill([17_000_001], 0.25).data();
  assert.deepEqual(big.length, 17_000_001);
  assert.deepEqual(big[17_000_000], 0.25);
  assert.deepEqual(big[0], 0.25);
});

Deno.test("elementwise: large broadcast beyond 65535 workgroups", async () => {
  const n = 300_007;
  const a = Tensor.from(Float32Array.from({ length: n }, (_, i) => i % 97), [n]);
  const y = await ew.mul(ew.add(a, Tensor.from([1], [1])), 2).data();
  assertClose([y[0], y[n - 1]], [2, ((n - 1) % 97 + 1) * 2]);
  const expect = mapRef((v) => (v + 1) * 2, ref([n], await a.data()));
  assertClose(y, expect.data);
});

Deno.test("elementwise errors name the op and shapes", async () => {
  const a = Tensor.zeros([3, 4]);
  assert.throws(
    () => ew.add(a, Tensor.zeros([5])),
    /add: shapes \[3, 4\] and \[5\] cannot be broadcast/,
  );
  assert.throws(
    () => ew.relu(Tensor.from([1], [1], "i32")),
    /relu: expected an f32 tensor, got i32/,
  );
  assert.throws(() => ew.clamp(a, 2, 1), /clamp: low 2 is above high 1/);
  const d = Tensor.zeros([2]);
  d.dispose();
  assert.throws(() => ew.exp(d), /exp: tensor of shape \[2\] was already disposed/);
  await assert.rejects(() => d.data(), /already disposed/);
});
