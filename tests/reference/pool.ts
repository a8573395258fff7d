// Float64 references for 2-D pooling on NHWC input, written window by window from the Keras /
// TensorFlow definitions (no code shared with the engine's geometry).
import type { Ref } from "../helpers.ts";

export interface PoolRefOptions {
  poolSize?: number | [number, number];
  strides?: number | [number, number];
  padding?: "valid" | "same";
}

const pairOf = (v: number | [number, number]): [number, number] =>
  typeof v === "number" ? [v, v] : v;

/**
 * Calls `visit(o, cells)` for each output element `o` (row-major NHWC index) with the flat input
 * indices of its window's cells inside the input, in row-major window order.
 */
function forEachWindow(
  x: Ref,
  options: PoolRefOptions,
  visit: (o: number, cells: number[]) => void,
): number[] {
  const [n, h, w, c] = x.shape;
  const pool = pairOf(options.poolSize ?? 2);
  const strides = pairOf(options.strides ?? pool);
  const same = options.padding === "same";
  const dims = [h, w].map((size, d) => {
    // TensorFlow: "valid" keeps whole windows; "same" gives ceil(size / stride) outputs and pads
    // max((out − 1)·stride + pool − size, 0) cells, the smaller half before.
    const out = same ? Math.ceil(size / strides[d]) : Math.floor((size - pool[d]) / strides[d]) + 1;
    const pad = same ? Math.max((out - 1) * strides[d] + pool[d] - size, 0) : 0;
    return { out, before: Math.floor(pad / 2) };
  });
  const outShape = [n, dims[0].out, dims[1].out, c];
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let oh = 0; oh < dims[0].out; oh++) {
      for (let ow = 0; ow < dims[1].out; ow++) {
        for (let ch = 0; ch < c; ch++, o++) {
          const cells: number[] = [];
          for (let i = 0; i < pool[0]; i++) {
            const row = oh * strides[0] - dims[0].before + i;
            if (row < 0 || row >= h) continue;
            for (let j = 0; j < pool[1]; j++) {
              const col = ow * strides[1] - dims[1].before + j;
              if (col < 0 || col >= w) continue;
              cells.push(((b * h + row) * w + col) * c + ch);
            }
          }
          visit(o, cells);
        }
      }
    }
  }
  return outShape;
}

/** The cell holding the first maximum of a window (strict >: ties keep the earlier cell). */
function firstMax(x: Ref, cells: number[]): number {
  let best = cells[0];
  for (const k of cells) if (x.data[k] > x.data[best]) best = k;
  return best;
}

export function maxPool2dRef(x: Ref, options: PoolRefOptions = {}): Ref {
  const values: number[] = [];
  const shape = forEachWindow(x, options, (o, cells) => values[o] = x.data[firstMax(x, cells)]);
  return { shape, data: Float64Array.from(values) };
}

/** The mean over the window's cells inside the input (padding not counted). */
export function avgPool2dRef(x: Ref, options: PoolRefOptions = {}): Ref {
  const values: number[] = [];
  const shape = forEachWindow(x, options, (o, cells) => {
    values[o] = cells.reduce((s, k) => s + x.data[k], 0) / cells.length;
  });
  return { shape, data: Float64Array.from(values) };
}

/** dL/dx of max-pooling for dL/dy = `g`: each g goes to its window's first maximum. */
export function maxPool2dGradRef(x: Ref, g: ArrayLike<number>, options: PoolRefOptions = {}): Ref {
  const dx = new Float64Array(x.data.length);
  forEachWindow(x, options, (o, cells) => dx[firstMax(x, cells)] += g[o]);
  return { shape: [...x.shape], data: dx };
}
