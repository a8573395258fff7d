import { layerNorm } from "../../engine/ops/layernorm.ts";
import { checkOp } from "../helpers.ts";
import { layerNormRef } from "../reference/attention.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("layernorm");

// Odd widths, more rows than columns and the reverse (the fused backward sums columns in the
// same dispatch), a 1-D input and a rank-4 one.
for (const shape of [[7, 5], [3, 2, 37], [3, 300], [11], [2, 3, 4, 6]]) {
  for (const epsilon of [1e-3, 1e-5]) {
    test(`layerNorm ${JSON.stringify(shape)} ε ${epsilon}: forward and gradients`, async () => {
      const c = shape[shape.length - 1];
      await checkOp({
        name: `layerNorm ${shape} ε ${epsilon}`,
        inputs: [{ shape, low: -2, high: 3 }, { shape: [c], low: 0.5, high: 1.5 }, { shape: [c] }],
        gpu: (x, g, b) => layerNorm(x, g, b, { epsilon }),
        ref: (x, g, b) => layerNormRef(x, g, b, epsilon),
        atol: 1e-5,
        gradAtol: 5e-4,
        gradRtol: 2e-3,
      });
    });
  }
}

export const LAYERNORM_CHECKS: OpCheckTest[] = tests;
