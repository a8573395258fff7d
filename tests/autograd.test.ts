import assert from "node:assert/strict";
import { noGrad } from "../engine/autograd.ts";
import * as ew from "../engine/ops/elementwise.ts";
import { sum } from "../engine/ops/reduce.ts";
import { Tensor, tidy } from "../engine/tensor.ts";
import { assertClose, setup } from "./helpers.ts";

const rt = await setup();

Deno.test("autograd: a tensor used twice accumulates both paths", async () => {
  const x = Tensor.from([1, -2, 3], [3]).requireGrad();
  const y = ew.add(ew.mul(x, x), ew.exp(x)); // dy/dx = 2x + e^x
  y.backward(Tensor.ones([3]));
  assertClose(await x.grad!.data(), [2 + Math.E, -4 + Math.exp(-2), 6 + Math.exp(3)]);
});

Deno.test("autograd: leaf gradients accumulate across backward calls until cleared", async () => {
  const x = Tensor.from([2], [1]).requireGrad();
  ew.mul(x, 3).backward(Tensor.ones([1]));
  ew.mul(x, x).backward(Tensor.ones([1]));
  assertClose(await x.grad!.data(), [3 + 4]);
  x.grad!.dispose();
  x.grad = null;
});

Deno.test("autograd: noGrad records nothing; inputs without grad get none", async () => {
  const x = Tensor.from([1, 2], [2]).requireGrad();
  const c = Tensor.from([5, 5], [2]);
  const y = noGrad(() => ew.mul(x, 2));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
  const z = ew.mul(x, c);
  z.backward(Tensor.ones([2]));
  assert.equal(c.grad, null);
  assertClose(await x.grad!.data(), [5, 5]);
});

Deno.test("autograd: a graph is freed after backward; a second backward says so", () => {
  const x = Tensor.from([1], [1]).requireGrad();
  const y = ew.exp(ew.mul(x, 2));
  y.backward();
  assert.throws(() => y.backward(), /already used by an earlier backward/);
});

Deno.test("autograd: errors for non-scalar seeds and tensors without grad", () => {
  const x = Tensor.from([1, 2], [2]).requireGrad();
  assert.throws(() => ew.exp(x).backward(), /output has shape \[2\]; pass a gradient/);
  assert.throws(() => Tensor.from([1], [1]).backward(), /does not require grad/);
});

Deno.test("autograd: backward inside tidy leaves only the leaf gradient alive", async () => {
  const x = Tensor.from([0.5, 1.5, -1], [3]).requireGrad().keep();
  const before = rt.poolStats().liveBuffers;
  tidy(() => {
    const y = ew.tanh(ew.mul(ew.sigmoid(x), x));
    y.backward(Tensor.ones([3]));
  });
  assert.equal(rt.poolStats().liveBuffers, before + 1); // x.grad
  const s = (v: number) => 1 / (1 + Math.exp(-v));
  const expected = [0.5, 1.5, -1].map((v) => {
    const inner = s(v) * v;
    return (1 - Math.tanh(inner) ** 2) * (s(v) * (1 - s(v)) * v + s(v));
  });
  assertClose(await x.grad!.data(), expected);
});

Deno.test("autograd: backward outside the tidy that built the forward still reaches the leaves", async () => {
  const x = Tensor.from([1, 2], [2]).requireGrad().keep();
  const y = tidy(() => ew.exp(ew.mul(ew.mul(x, 3), x))); // intermediates disposed, graph kept
  y.backward(Tensor.ones([2]));
  assertClose(await x.grad!.data(), [6 * Math.exp(3), 12 * Math.exp(12)], { rtol: 1e-5 });
});

Deno.test("autograd: graphs that are never backpropagated are freed with their scope", () => {
  const x = Tensor.from([1, 2, 3], [3]).requireGrad().keep();
  const before = rt.poolStats().liveBuffers;
  for (let i = 0; i < 20; i++) tidy(() => void sum(ew.mul(ew.tanh(x), x)));
  assert.equal(rt.poolStats().liveBuffers, before);
  const kept = tidy(() => ew.mul(ew.tanh(x), x).keep());
  assert.ok(kept.node && !kept.node.freed, "a kept tensor keeps its graph");
  assert.equal(kept.node.saved.length, 2);
});
