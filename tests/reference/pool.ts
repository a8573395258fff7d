// Float64 references for 2-D (NHWC) and 3-D (NDHWC) pooling, written window by window from the
// Keras / TensorFlow definitions (no code shared with the engine's geometry). The spatial rank is
// the input's rank − 2.
import type { Ref } from "../helpers.ts";

export interface PoolRefOptions {
  poolSize?: number | readonly number[];
  strides?: number | readonly number[];
  padding?: "valid" | "same";
}

const perAxis = (v: number | readonly number[], rank: number): number[] =>
  typeof v === "number" ? Array(rank).fill(v) : [...v];

/**
 * Calls `visit(o, cells)` for each output element `o` (row-major channels-last index) with the
 * flat input indices of its window's cells inside the input, in row-major window order.
 */
function forEachWindow(
  x: Ref,
  options: PoolRefOptions,
  visit: (o: number, cells: number[]) => void,
): number[] {
  const [n, ...spatial] = x.shape.slice(0, -1);
  const c = x.shape[x.shape.length - 1];
  const pool = perAxis(options.poolSize ?? 2, spatial.length);
  const strides = perAxis(options.strides ?? pool, spatial.length);
  const same = options.padding === "same";
  const dims = spatial.map((size, d) => {
    // TensorFlow: "valid" keeps whole windows; "same" gives ceil(size / stride) outputs and pads
    // max((out − 1)·stride + pool − size, 0) cells, the smaller half before.
    const out = same ? Math.ceil(size / strides[d]) : Math.floor((size - pool[d]) / strides[d]) + 1;
    const pad = same ? Math.max((out - 1) * strides[d] + pool[d] - size, 0) : 0;
    return { out, before: Math.floor(pad / 2) };
  });
  /** Every index tuple of `extents`, row-major. */
  const tuples = (extents: number[]): number[][] =>
    extents.reduce<number[][]>(
      (acc, e) => acc.flatMap((t) => Array.from({ length: e }, (_, i) => [...t, i])),
      [[]],
    );
  const windowOffsets = tuples(pool);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (const at of tuples(dims.map((d) => d.out))) {
      for (let ch = 0; ch < c; ch++, o++) {
        const cells: number[] = [];
        for (const offset of windowOffsets) {
          const position = at.map((a, d) => a * strides[d] - dims[d].before + offset[d]);
          if (position.some((p, d) => p < 0 || p >= spatial[d])) continue;
          const flat = position.reduce((acc, p, d) => acc * spatial[d] + p, b);
          cells.push(flat * c + ch);
        }
        visit(o, cells);
      }
    }
  }
  return [n, ...dims.map((d) => d.out), c];
}

/** The cell holding the first maximum of a window (strict >: ties keep the earlier cell). */
function firstMax(x: Ref, cells: number[]): number {
  let best = cells[0];
  for (const k of cells) if (x.data[k] > x.data[best]) best = k;
  return best;
}

export function maxPoolRef(x: Ref, options: PoolRefOptions = {}): Ref {
  const values: number[] = [];
  const shape = forEachWindow(x, options, (o, cells) => values[o] = x.data[firstMax(x, cells)]);
  return { shape, data: Float64Array.from(values) };
}

/** The mean over the window's cells inside the input (padding not counted). */
export function avgPoolRef(x: Ref, options: PoolRefOptions = {}): Ref {
  const values: number[] = [];
  const shape = forEachWindow(x, options, (o, cells) => {
    values[o] = cells.reduce((s, k) => s + x.data[k], 0) / cells.length;
  });
  return { shape, data: Float64Array.from(values) };
}

/** dL/dx of max-pooling for dL/dy = `g`: each g goes to its window's first maximum. */
export function maxPoolGradRef(x: Ref, g: ArrayLike<number>, options: PoolRefOptions = {}): Ref {
  const dx = new Float64Array(x.data.length);
  forEachWindow(x, options, (o, cells) => dx[firstMax(x, cells)] += g[o]);
  return { shape: [...x.shape], data: dx };
}
