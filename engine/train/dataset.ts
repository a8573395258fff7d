// A dataset that lives on the GPU: arrays are uploaded once, and each batch is gathered there
// from a (shuffled) index list, so an epoch moves only the indices across the bus.
import { concat, gather } from "../ops/shape.ts";
import { runtime } from "../runtime.ts";
import type { Rng } from "../random.ts";
import { type DType, formatShape, sizeOf, Tensor } from "../tensor.ts";

/** Host data for one array of the dataset: `shape[0]` is the sample axis. */
export interface DataArray {
  data: Float32Array | Int32Array | Uint32Array;
  shape: readonly number[];
}

export interface DatasetOptions {
  /**
   * Largest upload per GPU buffer (default: the adapter's storage-binding limit). An array
   * bigger than this is stored as several chunks of whole samples.
   */
  maxChunkBytes?: number;
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle the order with this generator (it advances); sequential order when absent. */
  rng?: Rng;
  /** Skip the last batch when it is smaller than batchSize (default false: keep it). */
  dropRemainder?: boolean;
}

/** Keras `validation_split`: the last `fraction` of the samples, taken before any shuffle. */
export function splitValidation(
  n: number,
  fraction: number,
): { train: [number, number]; validation: [number, number] } {
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`splitValidation: ${n} samples, expected an integer ≥ 0`);
  }
  if (!(fraction > 0 && fraction < 1)) {
    throw new Error(`splitValidation: fraction ${fraction}, expected a number in (0, 1)`);
  }
  // Keras: split_at = floor(n · (1 − fraction)); both parts must be non-empty.
  const splitAt = Math.floor(n * (1 - fraction));
  if (splitAt === 0 || splitAt === n) {
    throw new Error(
      `splitValidation: ${n} samples cannot be split into non-empty training and validation ` +
        `sets with fraction ${fraction}`,
    );
  }
  return { train: [0, splitAt], validation: [splitAt, n] };
}

/** Samples [start, end) of every array, without copying. */
export function sliceArrays(arrays: readonly DataArray[], start: number, end: number): DataArray[] {
  return arrays.map(({ data, shape }) => {
    const row = sizeOf(shape.slice(1));
    return { data: data.subarray(start * row, end * row), shape: [end - start, ...shape.slice(1)] };
  });
}

/** Fisher–Yates permutation of 0..n−1 drawn from `rng`. */
export function shuffledIndices(n: number, rng: Rng): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return rng.shuffle(order);
}

/** Per chunk holding samples of a batch: their chunk-local row indices, on the GPU. */
type IndexPlan = { chunk: number; idx: Tensor }[];

interface Chunk {
  /** First sample of the chunk. */
  start: number;
  count: number;
  tensors: Tensor[];
}

function dtypeOf(data: DataArray["data"]): DType {
  return data instanceof Float32Array ? "f32" : data instanceof Int32Array ? "i32" : "u32";
}

/**
 * Arrays with a common sample count (e.g. images and labels), resident on the GPU. Batches come
 * from `batches()`: each is one tensor per array, [b, ...sample shape].
 */
export class TensorDataset {
  readonly length: number;
  /** Shape of one sample of each array. */
  readonly sampleShapes: readonly (readonly number[])[];
  readonly dtypes: readonly DType[];
  #chunks: Chunk[] = [];

  constructor(arrays: readonly DataArray[], options: DatasetOptions = {}) {
    if (arrays.length === 0) throw new Error("TensorDataset: received no arrays");
    const n = arrays[0].shape[0];
    for (const [i, { data, shape }] of arrays.entries()) {
      if (shape.length === 0 || shape[0] !== n) {
        throw new Error(
          `TensorDataset: array ${i} has shape ${formatShape(shape)}, expected a leading ` +
            `sample axis of ${n} (arrays: ${arrays.map((a) => formatShape(a.shape)).join(", ")})`,
        );
      }
      if (data.length !== sizeOf(shape)) {
        throw new Error(
          `TensorDataset: array ${i} has ${data.length} values for shape ${formatShape(shape)}`,
        );
      }
    }
    this.length = n;
    this.sampleShapes = arrays.map((a) => a.shape.slice(1));
    this.dtypes = arrays.map((a) => dtypeOf(a.data));
    const limit = options.maxChunkBytes ?? runtime().ctx.maxBinding;
    const widest = Math.max(...this.sampleShapes.map((s) => sizeOf(s) * 4), 1);
    const perChunk = Math.floor(limit / widest);
    if (perChunk < 1) {
      throw new Error(
        `TensorDataset: one sample of ${widest} bytes exceeds the ${limit}-byte chunk limit`,
      );
    }
    for (let start = 0; start < n; start += perChunk) {
      const count = Math.min(perChunk, n - start);
      const tensors = sliceArrays(arrays, start, start + count).map((a, i) =>
        Tensor.from(a.data, a.shape, this.dtypes[i]).keep()
      );
      this.#chunks.push({ start, count, tensors });
    }
  }

  /** Number of GPU chunks each array is stored in (1 when it fits one binding). */
  get chunkCount(): number {
    return this.#chunks.length;
  }

  batchCount(batchSize: number, dropRemainder = false): number {
    return dropRemainder ? Math.floor(this.length / batchSize) : Math.ceil(this.length / batchSize);
  }

  /**
   * Uploads the chunk-local indices of `indices`: one i32 tensor per chunk the samples fall in.
   * A batch spanning several chunks is grouped by chunk (index order kept within each).
   */
  #plan(indices: ArrayLike<number>): IndexPlan {
    for (let i = 0; i < indices.length; i++) {
      const k = indices[i];
      if (!Number.isInteger(k) || k < 0 || k >= this.length) {
        throw new Error(`TensorDataset: index ${k} outside [0, ${this.length})`);
      }
    }
    const perChunk = this.#chunks.map(() => [] as number[]);
    const chunkSize = this.#chunks[0]?.count ?? 1;
    for (let i = 0; i < indices.length; i++) {
      const c = Math.floor(indices[i] / chunkSize);
      perChunk[c].push(indices[i] - this.#chunks[c].start);
    }
    const plan: IndexPlan = [];
    perChunk.forEach((local, chunk) => {
      if (local.length === 0) return;
      const idx = Tensor.from(Int32Array.from(local), [local.length], "i32").keep();
      plan.push({ chunk, idx });
    });
    return plan;
  }

  /** Gathers a planned batch on the GPU and frees the plan's index tensors. */
  #gather(plan: IndexPlan): Tensor[] {
    const parts = plan.map(({ chunk, idx }) => {
      const rows = this.#chunks[chunk].tensors.map((t) => gather(t, idx, 0));
      idx.dispose();
      return rows;
    });
    if (parts.length === 0) {
      return this.sampleShapes.map((s, i) => Tensor.empty([0, ...s], this.dtypes[i]));
    }
    if (parts.length === 1) return parts[0];
    return this.sampleShapes.map((_, i) => {
      const joined = concat(parts.map((p) => p[i]), 0);
      for (const p of parts) p[i].dispose();
      return joined;
    });
  }

  /** The samples named by `indices`, one tensor per array (owned by the caller). */
  gather(indices: ArrayLike<number>): Tensor[] {
    return this.#gather(this.#plan(indices));
  }

  /**
   * One epoch of batches in sequential or `rng`-shuffled order; the last batch may be partial.
   * A batch is valid until the next one is requested (or the loop ends): it is disposed then,
   * so an epoch holds one batch at a time. Keep a copy if you need it longer.
   */
  *batches({ batchSize, rng, dropRemainder = false }: BatchOptions): Generator<Tensor[]> {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`TensorDataset.batches: batchSize ${batchSize}, expected an integer ≥ 1`);
    }
    const order = rng ? shuffledIndices(this.length, rng) : null;
    const count = this.batchCount(batchSize, dropRemainder);
    // The whole epoch's indices go up before the first gather: an upload into a pooled buffer
    // that the pending command batch used forces a submission, and per-batch uploads would
    // hit that every batch.
    const plans: IndexPlan[] = [];
    for (let b = 0; b < count; b++) {
      const start = b * batchSize;
      const end = Math.min(start + batchSize, this.length);
      plans.push(
        this.#plan(
          order
            ? order.subarray(start, end)
            : Int32Array.from({ length: end - start }, (_, i) => start + i),
        ),
      );
    }
    let batch: Tensor[] = [];
    try {
      for (let b = 0; b < count; b++) {
        batch = this.#gather(plans[b]);
        yield batch;
        for (const t of batch) t.dispose();
      }
    } finally {
      for (const t of batch) t.dispose();
      for (const plan of plans) for (const { idx } of plan) idx.dispose();
    }
  }

  /** Frees the GPU copies. */
  dispose(): void {
    for (const chunk of this.#chunks) for (const t of chunk.tensors) t.dispose();
    this.#chunks = [];
  }
}
