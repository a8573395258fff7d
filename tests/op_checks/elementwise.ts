import * as ew from "../../engine/ops/elementwise.ts";
import { Tensor } from "../../engine/tensor.ts";
import { assertClose, checkOp } from "../helpers.ts";
import { binaryRef, mapRef, unaryRef } from "../reference/elementwise.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("elementwise");

const UNARY_DOMAIN: Record<string, [number, number]> = {
  log: [0.1, 5],
  sqrt: [0.1, 5],
};

for (const op of Object.keys(unaryRef) as (keyof typeof unaryRef)[]) {
  test(`elementwise ${op}: forward and gradient, odd sizes`, async () => {
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
    // Sizes that are multiples of 4 run four elements per lane (vec4 loads and stores).
    for (const shape of [[1], [7], [3, 5, 7], [257, 3], [3, 8]]) {
      await checkOp({
        name: `${op}${JSON.stringify(shape)}`,
        inputs: [{ shape, low, high }],
        gpu: fn,
        ref: (x) => mapRef(f as (v: number) => number, x),
      });
    }
  });
}

for (const op of Object.keys(binaryRef) as (keyof typeof binaryRef)[]) {
  test(`elementwise ${op}: forward and gradient with broadcasting`, async () => {
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
      // Four outputs per lane: contiguous, a bias along the innermost axis, one value per row.
      [[5, 12], [5, 12]],
      [[5, 12], [12]],
      [[5, 12], [5, 1]],
      [[2, 1, 4], [3, 4]],
    ];
    for (const [sa, sb] of cases) {
      await checkOp({
        // Equal shapes, or a broadcast whose gradient is reduced back to an operand's shape.
        variant: JSON.stringify(sa) === JSON.stringify(sb) ? "same shape" : "broadcast",
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

test("elementwise comparisons, where, clamp", async () => {
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
    variant: "where",
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
    variant: "clamp",
    name: "clamp",
    inputs: [{ shape: [5, 7], low: -3, high: 3 }],
    gpu: (x) => ew.clamp(x, -1, 1.5),
    ref: (x) => mapRef((v) => Math.min(Math.max(v, -1), 1.5), x),
  });
});

export const ELEMENTWISE_CHECKS: OpCheckTest[] = tests;
