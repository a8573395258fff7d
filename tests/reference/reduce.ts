// Float64 references for the reduce family: reductions over any axes, argmax, softmax.
import type { Ref } from "../helpers.ts";

function normalize(rank: number, axes?: number | number[]): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  return (typeof axes === "number" ? [axes] : axes).map((a) => (a < 0 ? a + rank : a));
}

/** Folds `step(acc, value, position)` over `axes`; `position` is the row-major index within them. */
function fold(
  x: Ref,
  axes: number | number[] | undefined,
  keepDims: boolean,
  initial: number,
  step: (acc: number, value: number, position: number) => number,
): Ref {
  const reduced = new Set(normalize(x.shape.length, axes));
  const outShape = keepDims
    ? x.shape.map((d, i) => (reduced.has(i) ? 1 : d))
    : x.shape.filter((_, i) => !reduced.has(i));
  const keptDims = x.shape.map((d, i) => (reduced.has(i) ? 1 : d));
  const outSize = keptDims.reduce((a, b) => a * b, 1);
  const data = new Float64Array(outSize).fill(initial);
  const index = new Array(x.shape.length).fill(0);
  for (let i = 0; i < x.data.length; i++) {
    let rem = i;
    for (let d = x.shape.length - 1; d >= 0; d--) {
      index[d] = rem % x.shape[d];
      rem = Math.floor(rem / x.shape[d]);
    }
    let out = 0;
    let position = 0;
    for (let d = 0; d < x.shape.length; d++) {
      if (reduced.has(d)) position = position * x.shape[d] + index[d];
      else out = out * x.shape[d] + index[d];
    }
    data[out] = step(data[out], x.data[i], position);
  }
  return { shape: outShape, data };
}

export function sumRef(x: Ref, axes?: number | number[], keepDims = false): Ref {
  return fold(x, axes, keepDims, 0, (acc, v) => acc + v);
}

export function meanRef(x: Ref, axes?: number | number[], keepDims = false): Ref {
  const count = normalize(x.shape.length, axes).reduce((n, a) => n * x.shape[a], 1);
  const s = sumRef(x, axes, keepDims);
  return { shape: s.shape, data: s.data.map((v) => v / count) };
}

export function maxRef(x: Ref, axes?: number | number[], keepDims = false): Ref {
  return fold(x, axes, keepDims, -Infinity, (acc, v) => Math.max(acc, v));
}

/** First position of the maximum along one axis. */
export function argmaxRef(x: Ref, axis: number): Ref {
  const best = maxRef(x, axis);
  const found = new Float64Array(best.data.length).fill(-1);
  const a = axis < 0 ? axis + x.shape.length : axis;
  const len = x.shape[a];
  const inner = x.shape.slice(a + 1).reduce((n, d) => n * d, 1);
  const outer = x.data.length / (len * inner);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < inner; c++) {
      const k = o * inner + c;
      for (let r = 0; r < len && found[k] < 0; r++) {
        if (x.data[(o * len + r) * inner + c] === best.data[k]) found[k] = r;
      }
    }
  }
  return { shape: best.shape, data: found };
}

/** Softmax (or log-softmax) along one axis, in float64 with the maximum subtracted. */
export function softmaxRef(x: Ref, axis = -1, log = false): Ref {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const len = x.shape[a];
  const inner = x.shape.slice(a + 1).reduce((n, d) => n * d, 1);
  const outer = x.data.length / (len * inner || 1);
  const data = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < inner; c++) {
      const at = (r: number) => (o * len + r) * inner + c;
      let m = -Infinity;
      for (let r = 0; r < len; r++) m = Math.max(m, x.data[at(r)]);
      let s = 0;
      for (let r = 0; r < len; r++) s += Math.exp(x.data[at(r)] - m);
      for (let r = 0; r < len; r++) {
        data[at(r)] = log ? x.data[at(r)] - m - Math.log(s) : Math.exp(x.data[at(r)] - m) / s;
      }
    }
  }
  return { shape: [...x.shape], data };
}
