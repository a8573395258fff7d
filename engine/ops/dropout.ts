// Inverted dropout: keep each element with probability 1 − rate and scale it by 1 / (1 − rate).
// The mask comes from a counter-based RNG keyed by (seed, offset), so backward regenerates it
// from the node's attributes: no mask buffer is saved.
import { formatShape, Tensor } from "../tensor.ts";
import { runtime } from "../runtime.ts";
import { recorder, type Rules } from "../autograd.ts";
import { globalRng } from "../random.ts";
import { dropoutKernel } from "../shaders/dropout.ts";
import { grid1d } from "../shaders/common.ts";

interface DropoutAttrs {
  dropout: { rate: number; seed: number; offset: number };
}

export interface DropoutOptions {
  /** RNG key (integer in [0, 2^53)); drawn from the global generator when omitted. */
  seed?: number;
  /** Stream position (integer in [0, 2^53)): each offset gives an independent mask. */
  offset?: number;
}

const TWO_32 = 2 ** 32;

function checkCounter(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`dropout: ${what} ${value} is not an integer in [0, 2^53)`);
  }
}

/**
 * Zeroes each element of `x` with probability `rate` and scales the survivors by 1/(1 − rate).
 * The same (seed, offset) gives the same mask on every call; rate 0 returns `x` itself.
 */
export function dropout(x: Tensor, rate: number, options: DropoutOptions = {}): Tensor {
  x.assertAlive("dropout");
  if (!(rate >= 0 && rate < 1)) {
    throw new Error(`dropout: rate ${rate} is outside [0, 1)`);
  }
  if (x.dtype !== "f32") {
    throw new Error(`dropout: input ${formatShape(x.shape)} has dtype ${x.dtype}, expected f32`);
  }
  const seed = options.seed ?? globalRng.nextU32();
  const offset = options.offset ?? 0;
  checkCounter(seed, "seed");
  checkCounter(offset, "offset");
  if (rate === 0) return x;
  const out = applyMask(x, rate, seed, offset);
  return record("dropout", out, [x], [], { rate, seed, offset });
}

function applyMask(x: Tensor, rate: number, seed: number, offset: number): Tensor {
  const out = Tensor.empty(x.shape);
  const blocks = Math.ceil(x.size / 4);
  const groups = grid1d(blocks);
  runtime().launch(dropoutKernel, {
    buffers: [x.storage, out.storage],
    params: {
      blocks,
      gx: groups[0],
      // P(bits ≥ threshold) = 1 − threshold / 2^32 ≈ 1 − rate (within 2^-32).
      threshold: Math.min(Math.round(rate * TWO_32), TWO_32 - 1),
      scale: 1 / (1 - rate),
      seed: [seed % TWO_32, Math.floor(seed / TWO_32)],
      offset: [offset % TWO_32, Math.floor(offset / TWO_32)],
    },
    groups,
    flops: x.size,
    outputs: [out],
    op: "dropout",
  });
  return out;
}

const dropoutRules: Rules<DropoutAttrs> = {
  dropout: (grad, { attrs }) => [applyMask(grad, attrs.rate, attrs.seed, attrs.offset)],
};
const record = recorder(dropoutRules);
