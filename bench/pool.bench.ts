// Pooling bandwidth (channels-last, pool 2, Keras defaults): inference forwards (no argmax saved)
// and training forward + backward, on a TP3-like layer, a larger U-Net-like map and the TP4
// Conv3D model's first 3-D pooling. GB/s counts the bytes each pass must move at least; inputs
// rotate through enough copies that no cache holds them.
import { sizeOf, Tensor } from "../engine/tensor.ts";
import { noGrad } from "../engine/autograd.ts";
import {
  avgPool2d,
  avgPool3d,
  maxPool2d,
  maxPool3d,
  poolFlops,
  type PoolGeometry,
  poolGeometry,
} from "../engine/ops/pool.ts";
import { benchKernel, inputSets } from "./lib/kernel.ts";
import type { Work } from "./lib/work.ts";

const F32 = 4;
const OPTIONS = { poolSize: 2 };
type Pool = (x: Tensor, options: typeof OPTIONS) => Tensor;
const POOLS_2D: Record<string, Pool> = { max_pool2d: maxPool2d, avg_pool2d: avgPool2d };
const POOLS_3D: Record<string, Pool> = { max_pool3d: maxPool3d, avg_pool3d: avgPool3d };

/**
 * The forward reads x and writes y (and, for max under autograd, an i32 argmax per output); the
 * backward reads g (and the argmax) and writes dx.
 */
function poolWork(g: PoolGeometry, kernel: string, training: boolean): Work {
  const inputs = g.batch * sizeOf(g.inSize) * g.channels;
  const outputs = g.batch * sizeOf(g.outSize) * g.channels;
  const argmax = kernel.startsWith("max") && training ? outputs : 0;
  const forward = inputs + outputs + argmax;
  const backward = training ? outputs + argmax + inputs : 0;
  return {
    flops: poolFlops(g) * (training ? 2 : 1),
    bytes: F32 * (forward + backward),
  };
}

const CASES: [number[], Record<string, Pool>][] = [
  [[64, 32, 32, 32], POOLS_2D],
  [[8, 128, 128, 32], POOLS_2D],
  [[8, 32, 32, 32, 16], POOLS_3D],
];

for (const [shape, pools] of CASES) {
  const geometry = poolGeometry("bench", shape, OPTIONS, shape.length === 5 ? 3 : 2);
  const outShape = [geometry.batch, ...geometry.outSize, geometry.channels];
  const bytesPerSet = F32 * (sizeOf(shape) + sizeOf(outShape));
  for (const [kernel, pool] of Object.entries(pools)) {
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
