import assert from "../assert.ts";
import { logSoftmax, max, mean, REDUCE_TUNING, softmax, sum } from "../../engine/ops/reduce.ts";
import { Tensor } from "../../engine/tensor.ts";
import {
  assertClose,
  checkOp,
  randomData,
  type Ref,
  ref,
  testRng,
  underEachTable,
} from "../helpers.ts";
import { maxRef, meanRef, softmaxRef, sumRef } from "../reference/reduce.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("reduce");

export type Axes = number | number[] | undefined;
export const REDUCTIONS = {
  sum: { gpu: sum, ref: sumRef },
  mean: { gpu: mean, ref: meanRef },
  max: { gpu: max, ref: maxRef },
};

// Shapes and axis sets: odd sizes, negative axes, adjacent and non-adjacent axis sets, size-1
// axes, rows long enough to spread over many lanes, columns (reductions over the batch), and
// long axes with few outputs (reduced in chunks, then over the chunks); rows and inner sizes of
// a multiple of 4 (vec4 loads along a row, or across four outputs, inner = 4 included).
export const CASES: [number[], Axes][] = [
  [[7], undefined],
  [[7], 0],
  [[7], -1],
  [[], undefined],
  [[1, 1], undefined],
  [[1, 1], 1],
  [[3, 5, 7], 0],
  [[3, 5, 7], 1],
  [[3, 5, 7], 2],
  [[3, 5, 7], -1],
  [[3, 5, 7], [0, 1]],
  [[3, 5, 7], [0, 2]],
  [[3, 5, 7], [1, 2]],
  [[3, 5, 7], [-1, 0]],
  [[3, 5, 7], undefined],
  [[3, 5, 7], []],
  [[2, 3, 4, 5], [0, 2, 3]],
  [[2, 3, 1, 5], [0, 2]],
  [[5, 1, 3], [1]],
  [[3, 1037], -1],
  [[1037, 3], 0],
  [[301, 67], 0],
  [[2, 300, 5], 1],
  [[2, 4099], undefined],
  [[2, 9001], -1],
  [[8500, 3], 0],
  [[3, 44], -1],
  [[6, 5, 8], 1],
  [[9, 12], 0],
  [[5, 4], 0],
  [[3, 4004], undefined],
  // Wide columns (inner a multiple of 4 past 32): the CPU table's strip kernel, with part of a
  // strip past the last column, chunks of rows and an outer axis.
  [[5, 6, 40], 1],
  [[1300, 44], 0],
  [[37, 1032], 0],
  [[3, 700, 136], 1],
  [[2, 1100, 3, 16], 1],
];

/** Runs `body` under each adapter tuning: the layouts and chunked passes differ between them. */
export function underEachTuning(body: (tuning: string) => Promise<void>): Promise<void> {
  return underEachTable(REDUCE_TUNING, body);
}

/** The reduced axes as indices in [0, rank) (every axis when none are given). */
function axisList(shape: number[], axes: Axes): number[] {
  if (axes === undefined) return shape.map((_, i) => i);
  return (typeof axes === "number" ? [axes] : axes).map((a) => a < 0 ? a + shape.length : a);
}

/** Elements folded into each output. */
function reducedCount(shape: number[], axes: Axes): number {
  return axisList(shape, axes).reduce((p, a) => p * shape[a], 1);
}

function reducesLastAxis(shape: number[], axes: Axes): boolean {
  return axisList(shape, axes).includes(shape.length - 1);
}

for (const [op, { gpu, ref: refFn }] of Object.entries(REDUCTIONS)) {
  test(`${op}: forward and gradient over every kind of axis set`, async () => {
    await underEachTuning(async (tuning) => {
      for (const [shape, axes] of CASES) {
        for (const keepDims of [false, true]) {
          await checkOp({
            // Tile table, and whether the reduced elements are contiguous (rows) or strided.
            variant: `${tuning} ${reducesLastAxis(shape, axes) ? "rows" : "columns"}`,
            name:
              `${op}${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keepDims ${keepDims} ` +
              `(${tuning} tuning)`,
            inputs: [{ shape }],
            gpu: (x) => gpu(x, axes, keepDims),
            ref: (x) => refFn(x, axes, keepDims),
            // Finite differences cost O(size²): the long cases check their gradient below.
            forwardOnly: keepDims || shape.reduce((a, b) => a * b, 1) > 1500,
            // A sum that cancels to near 0 keeps the f32 rounding of its partial sums (which
            // grows like √n): 1.3e-5 off at n = 8500 was seen, honest f32 and not a bug.
            atol: 1e-5 * Math.max(1, Math.sqrt(reducedCount(shape, axes) / 100)),
          });
        }
      }
    });
  });
}

const SOFTMAXES = {
  softmax: { gpu: softmax, ref: (x: Ref, axis: number) => softmaxRef(x, axis) },
  log_softmax: { gpu: logSoftmax, ref: (x: Ref, axis: number) => softmaxRef(x, axis, true) },
};

for (const [op, { gpu, ref: refFn }] of Object.entries(SOFTMAXES)) {
  test(`${op}: forward and gradient along every axis`, async () => {
    const cases: [number[], number][] = [
      [[7], 0],
      [[1, 1], -1],
      [[3, 5, 7], 0],
      [[3, 5, 7], 1],
      [[3, 5, 7], 2],
      [[3, 5, 7], -2],
      [[4, 1000], -1],
      [[600, 3], 0],
      [[130, 10], -1],
      [[5, 12], -1],
      [[2, 516], -1],
      [[2, 7, 4], 1],
    ];
    await underEachTuning(async (tuning) => {
      for (const [shape, axis] of cases) {
        await checkOp({
          variant: `${tuning} ${axis === -1 || axis === shape.length - 1 ? "rows" : "columns"}`,
          name: `${op}${JSON.stringify(shape)} axis ${axis} (${tuning} tuning)`,
          inputs: [{ shape, low: -4, high: 4 }],
          gpu: (x) => gpu(x, axis),
          ref: (x) => refFn(x, axis),
        });
      }
    });
  });

  test(`${op}: large magnitudes stay finite and normalised`, async () => {
    const { rng } = testRng();
    for (const [shape, scale] of [[[5, 9], 1e3], [[3, 1000], 1e4], [[64, 33], 1e4]] as const) {
      const n = shape[0] * shape[1];
      const data = randomData(n, rng, -scale, scale);
      const y = await gpu(Tensor.from(data, shape)).data();
      assert.ok(y.every(Number.isFinite), `${op}: non-finite output at scale ${scale}`);
      const expected = refFn(ref(shape, data), -1).data;
      assertClose(y, expected, { atol: 1e-6, rtol: 1e-5, what: `${op} at scale ${scale}` });
      for (let row = 0; row < shape[0]; row++) {
        let total = 0;
        for (let c = 0; c < shape[1]; c++) {
          const v = y[row * shape[1] + c];
          total += op === "softmax" ? v : Math.exp(v);
        }
        assert.ok(Math.abs(total - 1) <= 1e-6, `${op}: row ${row} sums to ${total}`);
      }
    }
  });
}

export const REDUCE_CHECKS: OpCheckTest[] = tests;
