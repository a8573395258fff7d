import {
  avgPool2d,
  avgPool3d,
  maxPool2d,
  maxPool3d,
  type PoolOptions,
} from "../../engine/ops/pool.ts";
import { sizeOf, Tensor } from "../../engine/tensor.ts";
import { checkOp, type Ref, testRng } from "../helpers.ts";
import { avgPoolRef, maxPoolRef, type PoolRefOptions } from "../reference/pool.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("pool");

// Odd sizes, batch 1, channels that are and are not a multiple of 4 (vec4 and scalar lanes),
// "valid" and "same", overlapping windows (stride < pool), gaps between windows (stride > pool).
const CASES_2D: [number[], PoolOptions][] = [
  [[1, 7, 5, 3], {}], // Keras defaults: pool 2, strides 2, "valid"
  [[1, 7, 5, 3], { padding: "same" }],
  [[1, 7, 5, 4], { poolSize: 3, strides: 2, padding: "same" }],
  [[2, 9, 11, 6], { poolSize: 3, strides: 2 }],
  [[2, 9, 11, 6], { poolSize: 3, strides: 2, padding: "same" }],
  [[2, 9, 11, 6], { poolSize: 2, strides: 1 }],
  [[2, 9, 11, 6], { poolSize: 2, strides: 1, padding: "same" }],
  [[2, 9, 11, 8], { poolSize: 3, strides: 1, padding: "same" }],
  [[2, 6, 6, 8], { poolSize: 3, strides: 2, padding: "same" }], // even: odd pad cell bottom/right
  [[1, 8, 7, 1], { poolSize: [3, 2], strides: [2, 3] }],
  [[1, 7, 8, 5], { poolSize: 2, strides: 3, padding: "same" }],
  [[3, 5, 5, 2], { poolSize: 5 }], // one window per image
];

// The same variety over (depth, height, width), per-axis windows and strides included.
const CASES_3D: [number[], PoolOptions][] = [
  [[1, 4, 5, 3, 3], {}], // Keras defaults: pool 2, strides 2, "valid"
  [[1, 5, 4, 3, 4], { padding: "same" }],
  [[2, 5, 6, 7, 2], { poolSize: 3, strides: 2, padding: "same" }],
  [[2, 5, 6, 7, 8], { poolSize: [2, 3, 2], strides: [1, 2, 3] }],
  [[1, 6, 6, 6, 4], { poolSize: 3, strides: 2, padding: "same" }], // even: odd pad cell last
  [[1, 5, 5, 5, 1], { poolSize: [3, 2, 2], strides: 1, padding: "same" }],
  [[2, 3, 3, 3, 5], { poolSize: 3 }], // one window per volume
];

/** Forward and gradient of `gpu` against `ref` on every case. */
function checkAgainstReference<O extends PoolRefOptions>(
  op: string,
  gpu: (x: Tensor, options: O) => Tensor,
  ref: (x: Ref, options: PoolRefOptions) => Ref,
  cases: [number[], O][],
): void {
  test(`${op}: forward and gradient against the float64 reference`, async () => {
    for (const [shape, options] of cases) {
      const { data, seed } = distinctData(sizeOf(shape));
      await checkOp({
        name: `${op}${JSON.stringify(shape)} ${JSON.stringify(options)} (data seed ${seed})`,
        inputs: [{ shape, data }],
        gpu: (x) => gpu(x, options),
        ref: (x) => ref(x, options),
      });
    }
  });
}

/**
 * Distinct values 2/n apart in random order: no two cells of a window are within the
 * finite-difference step of each other, so max-pool's gradient is well defined.
 */
function distinctData(n: number): { data: Float64Array; seed: number } {
  const { rng, seed } = testRng();
  const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  return { data: Float64Array.from(order, (k) => Math.fround((2 * k) / n - 1)), seed };
}

checkAgainstReference("maxPool2d", maxPool2d, maxPoolRef, CASES_2D);
checkAgainstReference("avgPool2d", avgPool2d, avgPoolRef, CASES_2D);
checkAgainstReference("maxPool3d", maxPool3d, maxPoolRef, CASES_3D);
checkAgainstReference("avgPool3d", avgPool3d, avgPoolRef, CASES_3D);

export const POOL_CHECKS: OpCheckTest[] = tests;
