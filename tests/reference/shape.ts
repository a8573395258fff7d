// Float64 references for the shape family, written index by index (no shared code with the
// engine's dimension merging).
import type { Ref } from "../helpers.ts";

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function coords(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return c;
}

function offset(c: readonly number[], shape: readonly number[]): number {
  let o = 0;
  for (let d = 0; d < shape.length; d++) o = o * shape[d] + c[d];
  return o;
}

/** Builds a tensor of `shape` from a function of each output coordinate. */
export function build(shape: number[], at: (c: number[]) => number): Ref {
  const data = new Float64Array(sizeOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = at(coords(i, shape));
  return { shape, data };
}

export function reshapeRef(x: Ref, shape: number[]): Ref {
  return { shape, data: x.data.slice() };
}

export function permuteRef(x: Ref, perm: number[]): Ref {
  const shape = perm.map((p) => x.shape[p]);
  return build(shape, (c) => {
    const src = new Array<number>(x.shape.length);
    perm.forEach((p, k) => src[p] = c[k]);
    return x.data[offset(src, x.shape)];
  });
}

export function concatRef(xs: Ref[], axis: number): Ref {
  const shape = [...xs[0].shape];
  shape[axis] = xs.reduce((s, x) => s + x.shape[axis], 0);
  return build(shape, (c) => {
    let k = c[axis];
    for (const x of xs) {
      if (k < x.shape[axis]) return x.data[offset(c.map((v, d) => d === axis ? k : v), x.shape)];
      k -= x.shape[axis];
    }
    throw new Error("unreachable");
  });
}

export function stackRef(xs: Ref[], axis: number): Ref {
  const shape = [...xs[0].shape];
  shape.splice(axis, 0, xs.length);
  return build(shape, (c) => {
    const x = xs[c[axis]];
    return x.data[offset(c.filter((_, d) => d !== axis), x.shape)];
  });
}

/** NumPy basic slicing with step 1. */
export function sliceRef(x: Ref, starts: number[], ends: number[]): Ref {
  const norm = (v: number, d: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
  const lo = x.shape.map((d, k) => norm(starts[k] ?? 0, d));
  const hi = x.shape.map((d, k) => Math.max(norm(ends[k] ?? d, d), lo[k]));
  const shape = lo.map((l, k) => hi[k] - l);
  return build(shape, (c) => x.data[offset(c.map((v, k) => v + lo[k]), x.shape)]);
}

export function padRef(x: Ref, before: number[], after: number[], value = 0): Ref {
  const lo = x.shape.map((_, k) => before[k] ?? 0);
  const shape = x.shape.map((d, k) => d + lo[k] + (after[k] ?? 0));
  return build(shape, (c) => {
    const src = c.map((v, k) => v - lo[k]);
    const inside = src.every((v, k) => v >= 0 && v < x.shape[k]);
    return inside ? x.data[offset(src, x.shape)] : value;
  });
}

/** index_select; indices outside [0, x.shape[axis]) give zeros. */
export function gatherRef(x: Ref, indices: Ref, axis: number): Ref {
  const r = indices.shape.length;
  const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
  return build(shape, (c) => {
    const row = indices.data[offset(c.slice(axis, axis + r), indices.shape)];
    if (row < 0 || row >= x.shape[axis]) return 0;
    return x.data[offset([...c.slice(0, axis), row, ...c.slice(axis + r)], x.shape)];
  });
}

/** Zeros of the output shape with each values slice added at its index's row. */
export function scatterAddRef(values: Ref, indices: Ref, axis: number, size: number): Ref {
  const r = indices.shape.length;
  const shape = [...values.shape.slice(0, axis), size, ...values.shape.slice(axis + r)];
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < values.data.length; i++) {
    const c = coords(i, values.shape);
    const row = indices.data[offset(c.slice(axis, axis + r), indices.shape)];
    if (row < 0 || row >= size) continue;
    out[offset([...c.slice(0, axis), row, ...c.slice(axis + r)], shape)] += values.data[i];
  }
  return { shape, data: out };
}
