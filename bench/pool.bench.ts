// 2-D pooling bandwidth (NHWC, pool 2, Keras defaults): inference forwards (no argmax saved) and
// training forward + backward, on a TP3-like layer and a larger U-Net-like map. GB/s counts the
// bytes each pass must move at least; inputs rotate through enough copies that no cache holds
// them.
import { Tensor } from "../engine/tensor.ts";
import { noGrad } from "../engine/autograd.ts";
import {
  avgPool2d,
  maxPool2d,
  poolFlops,
  type PoolGeometry,
  poolGeometry,
} from "../engine/ops/pool.ts";
import { benchKernel, inputSets } from "./lib/kernel.ts";
import type { Work } from "./lib/work.ts";

const F32 = 4;
const OPTIONS = { poolSize: 2 };
const POOLS = { max_pool2d: maxPool2d, avg_pool2d: avgPool2d };

/**
 * The forward reads x and writes y (and, for max under autograd, an i32 argmax per output); the
 * backward reads g (and the argmax) and writes dx.
 */
function poolWork(g: PoolGeometry, kernel: keyof typeof POOLS, training: boolean): Work {
  const inputs = g.batch * g.inH * g.inW * g.channels;
  const outputs = g.batch * g.outH * g.outW * g.channels;
  const argmax = kernel === "max_pool2d" && training ? outputs : 0;
  const forward = inputs + outputs + argmax;
  const backward = training ? outputs + argmax + inputs : 0;
  return {
    flops: poolFlops(g) * (training ? 2 : 1),
    bytes: F32 * (forward + backward),
  };
}

for (const shape of [[64, 32, 32, 32], [8, 128, 128, 32]]) {
  const geometry = poolGeometry("bench", shape, OPTIONS);
  const outShape = [geometry.batch, geometry.outH, geometry.outW, geometry.channels];
  const bytesPerSet = F32 * (shape.reduce((a, b) => a * b) + outShape.reduce((a, b) => a * b));
  for (const [kernel, pool] of Object.entries(POOLS) as [keyof typeof POOLS, typeof maxPool2d][]) {
    benchKernel({
      kernel,
      variant: "forward",
      shape: `[${shape}] pool 2`,
      work: poolWork(geometry, kernel, false),
      setup: () => {
        const sets = inputSets(bytesPerSet, () => Tensor.uniform(shape, -1, 1).keep());
        return (rep) => noGrad(() => pool(sets[rep % sets.length], OPTIONS)).dispose();
      },
    });
    benchKernel({
      kernel,
      variant: "fwd+bwd",
      shape: `[${shape}] pool 2`,
      work: poolWork(geometry, kernel, true),
      setup: () => {
        const sets = inputSets(2 * bytesPerSet, () => ({
          x: Tensor.uniform(shape, -1, 1).requireGrad().keep(),
          g: Tensor.uniform(outShape, -1, 1).keep(),
        }));
        return (rep) => {
          const { x, g } = sets[rep % sets.length];
          const y = pool(x, OPTIONS);
          y.backward(g);
          y.dispose();
          x.grad!.dispose();
          x.grad = null;
        };
      },
    });
  }
}
