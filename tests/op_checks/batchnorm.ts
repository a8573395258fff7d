import { Tensor } from "../../engine/tensor.ts";
import { batchNorm, BATCHNORM_TUNING } from "../../engine/ops/batchnorm.ts";
import { checkOp, randomData, testRng, underEachTable } from "../helpers.ts";
import { batchNormRef } from "../reference/batchnorm.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("batchnorm");

export interface Case {
  shape: number[];
  axis: number;
}

// Keras channels-last cases, a channels-first one, a 3-D volume, and cases with several
// channel tiles (C > 64) or several row chunks per channel (the chunk-combining path); C a
// multiple of 4 takes vec4 lanes (four channels each), also over several tiles and chunks.
export const CASES: Case[] = [
  { shape: [7, 5], axis: -1 },
  { shape: [3, 5, 4, 6], axis: -1 },
  { shape: [3, 5, 4, 6], axis: 1 },
  { shape: [2, 3, 4, 5, 6], axis: -1 },
  { shape: [2, 3, 4, 5, 6], axis: 1 },
  { shape: [33, 130], axis: -1 },
  { shape: [3001, 3], axis: -1 },
  { shape: [4, 3, 2003], axis: 1 },
  { shape: [11], axis: 0 },
  { shape: [5, 7, 8], axis: -1 },
  { shape: [3001, 12], axis: -1 },
  { shape: [9, 264], axis: -1 },
];

/** Runs `body` with each adapter class's row layout (interleaved on GPUs, blocked on CPUs). */
export function underEachRowLayout(body: (table: string) => Promise<void>): Promise<void> {
  return underEachTable(BATCHNORM_TUNING, body);
}

export function channelsOf({ shape, axis }: Case): number {
  return shape[axis < 0 ? axis + shape.length : axis];
}

export function hostVectors(c: number, rng: ReturnType<typeof testRng>["rng"]) {
  return {
    gamma: randomData(c, rng, 0.5, 1.5),
    beta: randomData(c, rng, -0.5, 0.5),
    mean: randomData(c, rng, -0.3, 0.3),
    variance: randomData(c, rng, 0.5, 2),
  };
}

for (const training of [true, false]) {
  const gradCases = [CASES[0], CASES[2], CASES[3], { shape: [300, 3], axis: -1 }, {
    shape: [6, 5, 8],
    axis: -1,
  }];
  for (const kase of gradCases) {
    const mode = training ? "training" : "inference";
    test(`batchNorm ${mode} gradients of x, γ, β ${JSON.stringify(kase.shape)} axis ${kase.axis}`, async () => {
      const c = channelsOf(kase);
      const { rng } = testRng();
      const v = hostVectors(c, rng);
      await underEachRowLayout((table) =>
        checkOp({
          name: `batchNorm ${mode} (${table} rows)`,
          inputs: [
            { shape: kase.shape, low: -2, high: 2 },
            { shape: [c], low: 0.5, high: 1.5 },
            { shape: [c] },
          ],
          gpu: (x, gamma, beta) =>
            batchNorm(x, gamma, beta, Tensor.from(v.mean, [c]), Tensor.from(v.variance, [c]), {
              axis: kase.axis,
              training,
            }),
          ref: (x, gamma, beta) =>
            batchNormRef(x, gamma, beta, v.mean, v.variance, { axis: kase.axis, training }).y,
          atol: 1e-4,
          gradAtol: 1e-3,
          gradRtol: 1e-3,
        })
      );
    });
  }
}

export const BATCHNORM_CHECKS: OpCheckTest[] = tests;
