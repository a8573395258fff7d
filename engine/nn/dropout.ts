// Dropout layer: inverted dropout in training mode, identity in inference.
import type { Tensor } from "../tensor.ts";
import { dropout } from "../ops/dropout.ts";
import { globalRng, type Rng } from "../random.ts";
import { Module } from "./module.ts";
import { numberField, registerLayer } from "../io/config.ts";

export interface DropoutLayerOptions {
  /** Mask key; drawn from `rng` when omitted. */
  seed?: number;
  rng?: Rng;
}

/**
 * Each training call uses the next offset of its (seed, offset) stream, so masks differ from
 * step to step yet the whole sequence replays from the seed. Save `offset` with a checkpoint
 * to resume the stream where it stopped.
 */
export class Dropout extends Module {
  readonly seed: number;
  offset = 0;

  constructor(readonly rate: number, options: DropoutLayerOptions = {}) {
    super();
    if (!(rate >= 0 && rate < 1)) throw new Error(`Dropout: rate ${rate} is outside [0, 1)`);
    this.seed = options.seed ?? (options.rng ?? globalRng).nextU32();
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.rate === 0) return x;
    return dropout(x, this.rate, { seed: this.seed, offset: this.offset++ });
  }
}

registerLayer("Dropout", Dropout, {
  config: (m) => ({ rate: m.rate, seed: m.seed }),
  build: (c) => new Dropout(numberField(c, "rate"), { seed: numberField(c, "seed") }),
  // The mask stream is (seed, offset): both are needed to continue it exactly.
  state: (m) => ({ seed: m.seed, offset: m.offset }),
  loadState: (m, state) => {
    const { seed, offset } = (state ?? {}) as { seed?: unknown; offset?: unknown };
    const valid = (v: unknown, max: number) =>
      typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= max;
    if (!valid(seed, 0xffffffff) || !valid(offset, Number.MAX_SAFE_INTEGER)) {
      throw new Error(
        `Dropout state ${JSON.stringify(state)}, expected {seed: u32, offset: integer ≥ 0}`,
      );
    }
    // `seed` is read-only for users; a checkpoint is the one place that may rewind it.
    (m as { seed: number }).seed = seed as number;
    m.offset = offset as number;
  },
});
