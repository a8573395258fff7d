import assert from "node:assert/strict";
import * as ew from "../engine/ops/elementwise.ts";
import { Tensor } from "../engine/tensor.ts";
import { assertClose, checkOp, ref, setup } from "./helpers.ts";
import { binaryRef, mapRef, unaryRef } from "./reference/elementwise.ts";

await setup();

const UNARY_DOMAIN: Record<string, [number, number]> = {
  log: [0.1, 5],
  sqrt: [0.1, 5],
};

for (const op of Object.keys(unaryRef) as (keyof typeof unaryRef)[]) {
  Deno.test(`elementwise ${op}: forward and gradient, odd sizes`, async () => {
    const fn = op === "leaky_relu" ? (x: Tensor) => ew.leakyRelu(x, 0.2) : (
      {
        relu: ew.relu,
        sigmoid: ew.sigmoid,
        tanh: ew.tanh,
        exp: ew.exp,
        log: ew.log,
        sqrt: ew.sqrt,
        abs: ew.abs,
        neg: ew.neg,
        gelu: ew.gelu,
      } as Record<string, (x: Tensor) => Tensor>
    )[op];
    const f = op === "leaky_relu" ? (x: number) => unaryRef.leaky_relu(x, 0.2) : unaryRef[op];
    const [low, high] = UNARY_DOMAIN[op] ?? [-3, 3];
    for (const shape of [[1], [7], [3, 5, 7], [257, 3]]) {
      await checkOp({
        name: `${op}${JSON.stringify(shape)}`,
        inputs: [{ shape, low, high }],
        gpu: fn,
        ref: (x) => mapRef(f as (v: number) => number, x),
      });
    }
  });
}

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

for (const op of Object.keys(binaryRef) as (keyof typeof binaryRef)[]) {
  Deno.test(`elementwise ${op}: forward and gradient with broadcasting`, async () => {
    const fn = {
      add: ew.add,
      sub: ew.sub,
      mul: ew.mul,
      div: ew.div,
      pow: ew.pow,
      maximum: ew.maximum,
      minimum: ew.minimum,
    }[op];
    const [low, high] = op === "pow" ? [0.5, 2] : op === "div" ? [0.5, 2] : [-2, 2];
    const cases: [number[], number[]][] = [
      [[7], [7]],
      [[3, 5, 7], [3, 5, 7]],
      [[3, 5, 7], [7]],
      [[3, 1, 7], [5, 1]],
      [[1], [4, 3]],
      [[], [5, 3]],
      [[2, 3, 1, 5], [3, 4, 1]],
    ];
    for (const [sa, sb] of cases) {
      await checkOp({
        name: `${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
        inputs: [{ shape: sa, low, high }, { shape: sb, low, high }],
        gpu: fn,
        ref: (a, b) => mapRef(binaryRef[op], a, b),
        rtol: op === "pow" ? 1e-4 : 1e-5,
      });
    }
    // Scalar on either side.
    await checkOp({
      name: `${op} tensor∘scalar`,
      inputs: [{ shape: [4, 3], low, high }],
      gpu: (a) => fn(a, 1.5),
      ref: (a) => mapRef((x) => binaryRef[op](x, 1.5), a),
    });
    await checkOp({
      name: `${op} scalar∘tensor`,
      inputs: [{ shape: [5], low, high }],
      gpu: (b) => fn(1.5, b),
      ref: (b) => mapRef((x) => binaryRef[op](1.5, x), b),
    });
  });
}

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

Deno.test("elementwise comparisons, where, clamp", async () => {
  const a = Tensor.from([1, 2, 3, 4], [4]);
  const b = Tensor.from([4, 2, 1, 4], [4]);
  assertClose(await ew.equal(a, b).data(), [0, 1, 0, 1]);
  assertClose(await ew.notEqual(a, b).data(), [1, 0, 1, 0]);
  assertClose(await ew.less(a, b).data(), [1, 0, 0, 0]);
  assertClose(await ew.lessEqual(a, 2).data(), [1, 1, 0, 0]);
  assertClose(await ew.greater(a, b).data(), [0, 0, 1, 0]);
  assertClose(await ew.greaterEqual(a, 3).data(), [0, 0, 1, 1]);
  const labels = Tensor.from([3, 1, 0], [3], "i32");
  assertClose(await ew.equal(labels, Tensor.from([3, 2, 0], [3], "u32")).data(), [1, 0, 1]);

  await checkOp({
    name: "where broadcast",
    inputs: [
      { shape: [3, 1], data: [1, 0, 1], grad: false },
      { shape: [3, 4] },
      { shape: [4] },
    ],
    gpu: (c, x, y) => ew.where(c, x, y),
    ref: (c, x, y) => mapRef((cv, xv, yv) => cv !== 0 ? xv : yv, c, x, y),
  });
  await checkOp({
    name: "clamp",
    inputs: [{ shape: [5, 7], low: -3, high: 3 }],
    gpu: (x) => ew.clamp(x, -1, 1.5),
    ref: (x) => mapRef((v) => Math.min(Math.max(v, -1), 1.5), x),
  });
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
