// Lookup tables: token embeddings and learned position embeddings (gather forward; the
// gradient is gather's deterministic scatter-add, so repeated indices accumulate).
import { formatShape, Tensor } from "../tensor.ts";
import { gather, narrow } from "../ops/shape.ts";
import { globalRng, type Rng } from "../random.ts";
import { Module } from "./module.ts";
import { numberField, registerLayer } from "../io/config.ts";

export interface EmbeddingOptions {
  /** Generator for the initial table (default: the global one). */
  rng?: Rng;
}

function checkSizes(layer: string, sizes: [string, number][]): void {
  for (const [what, n] of sizes) {
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`${layer}: ${what} ${n}, expected an integer ≥ 1`);
    }
  }
}

/**
 * Keras Embedding: `weight` [numEmbeddings, dim] initialised uniform(−0.05, 0.05); maps
 * integer ids [...] (i32/u32) to [..., dim]. An id outside [0, numEmbeddings) gives zeros.
 */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    options: EmbeddingOptions = {},
  ) {
    super();
    checkSizes("Embedding", [["numEmbeddings", numEmbeddings], ["dim", dim]]);
    this.weight = this.addParameter(
      "weight",
      Tensor.uniform([numEmbeddings, dim], -0.05, 0.05, options.rng ?? globalRng),
    );
  }

  forward(ids: Tensor): Tensor {
    if (ids.dtype === "f32") {
      throw new Error(
        `Embedding: ids of shape ${formatShape(ids.shape)} are f32, expected i32 or u32`,
      );
    }
    return gather(this.weight, ids, 0);
  }
}

/**
 * A learned position table `weight` [maxLen, dim] (uniform(−0.05, 0.05), as Embedding).
 * `forward(length, start)` returns rows start … start + length − 1 as [length, dim], to add to
 * a [B, length, dim] sequence (broadcast over the batch).
 */
export class PositionEmbedding extends Module<[number, number?]> {
  readonly weight: Tensor;

  constructor(readonly maxLen: number, readonly dim: number, options: EmbeddingOptions = {}) {
    super();
    checkSizes("PositionEmbedding", [["maxLen", maxLen], ["dim", dim]]);
    this.weight = this.addParameter(
      "weight",
      Tensor.uniform([maxLen, dim], -0.05, 0.05, options.rng ?? globalRng),
    );
  }

  forward(length: number, start = 0): Tensor {
    if (
      !Number.isInteger(length) || !Number.isInteger(start) || length < 1 || start < 0 ||
      start + length > this.maxLen
    ) {
      throw new Error(
        `PositionEmbedding: positions ${start} … ${start + length - 1} requested, expected ` +
          `integers within [0, ${this.maxLen - 1}] (maxLen ${this.maxLen})`,
      );
    }
    return narrow(this.weight, 0, start, length);
  }
}

registerLayer("Embedding", Embedding, {
  config: (m) => ({ numEmbeddings: m.numEmbeddings, dim: m.dim }),
  build: (c, _children, rng) =>
    new Embedding(numberField(c, "numEmbeddings"), numberField(c, "dim"), { rng }),
});

registerLayer("PositionEmbedding", PositionEmbedding, {
  config: (m) => ({ maxLen: m.maxLen, dim: m.dim }),
  build: (c, _children, rng) =>
    new PositionEmbedding(numberField(c, "maxLen"), numberField(c, "dim"), { rng }),
});
