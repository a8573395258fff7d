// Shape ops. Tensors are contiguous row-major, so reshape is a view and everything else copies:
// permute, slice and concat all become one strided-copy kernel once adjacent dimensions that stay
// adjacent are merged (a contiguous run becomes a plain buffer copy). Pad is slice's adjoint,
// scatter-add gather's; each backward rule is the other op of its pair.
import { adoptIntoScope, type DType, formatShape, type Shape, sizeOf, Tensor } from "../tensor.ts";
import { recorder, type Rules } from "../autograd.ts";
import { runtime, type Storage } from "../runtime.ts";
import { grid1d } from "../shaders/common.ts";
import {
  castKernel,
  chunkedThreads,
  gatherKernel,
  MAX_RANK,
  padKernel,
  SCATTER_PLAN,
  scatterSumKernel,
  stridedCopyKernel,
} from "../shaders/shape.ts";

interface ShapeAttrs {
  reshape: Record<string, never>;
  permute: { perm: number[] };
  concat: { axis: number };
  slice: { starts: number[] };
  pad: { before: number[] };
  gather: { axis: number };
  scatter_add: { axis: number };
}

const shapeRules: Rules<ShapeAttrs> = {
  reshape: (g, node) => [reshape(g, node.inputs[0].shape)],
  permute: (g, { attrs: { perm } }) => [permute(g, perm.map((_, i) => perm.indexOf(i)))],
  concat: (g, node) => {
    const { axis } = node.attrs;
    let offset = 0;
    return node.inputs.map((x) => {
      const start = offset;
      offset += x.shape[axis];
      return x.requiresGrad ? narrow(g, axis, start, x.shape[axis]) : null;
    });
  },
  slice: (g, node) => {
    const x = node.inputs[0];
    const before = node.attrs.starts;
    return [pad(g, before, x.shape.map((d, k) => d - before[k] - g.shape[k]))];
  },
  pad: (g, node) => {
    const x = node.inputs[0];
    const { before } = node.attrs;
    return [slice(g, before, before.map((b, k) => b + x.shape[k]))];
  },
  gather: (g, node) => {
    const { axis } = node.attrs;
    return [scatterAdd(g, node.saved[0], axis, node.inputs[0].shape[axis]), null];
  },
  scatter_add: (g, node) => [gather(g, node.saved[0], node.attrs.axis), null],
};
const record = recorder(shapeRules);

// ---- helpers ------------------------------------------------------------------------------

function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

/** Resolves a possibly negative axis of a rank-`rank` tensor, or throws naming the op. */
function axisOf(op: string, axis: number, rank: number, shape: Shape): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new Error(
      `${op}: axis ${axis} is out of range for shape ${formatShape(shape)} ` +
        `(expected an integer in [${-rank}, ${rank - 1}])`,
    );
  }
  return axis < 0 ? axis + rank : axis;
}

function alive(op: string, ...xs: Tensor[]): void {
  for (const x of xs) x.assertAlive(op);
}

/** A copy of `dims` elements between two strided layouts, after merging what can be merged. */
interface CopyPlan {
  dims: number[];
  src: number[];
  dst: number[];
  srcOffset: number;
  dstOffset: number;
}

function planCopy(
  op: string,
  dims: Shape,
  src: readonly number[],
  dst: readonly number[],
  srcOffset = 0,
  dstOffset = 0,
): CopyPlan {
  const plan: CopyPlan = { dims: [], src: [], dst: [], srcOffset, dstOffset };
  for (let d = 0; d < dims.length; d++) {
    if (dims[d] === 1) continue; // carries no index
    const last = plan.dims.length - 1;
    if (last >= 0 && plan.src[last] === src[d] * dims[d] && plan.dst[last] === dst[d] * dims[d]) {
      plan.dims[last] *= dims[d];
      plan.src[last] = src[d];
      plan.dst[last] = dst[d];
    } else {
      plan.dims.push(dims[d]);
      plan.src.push(src[d]);
      plan.dst.push(dst[d]);
    }
  }
  if (plan.dims.length > MAX_RANK) {
    throw new Error(
      `${op}: the copy still has ${plan.dims.length} dimensions after merging adjacent ones ` +
        `(shape ${formatShape(dims)}); at most ${MAX_RANK} are supported`,
    );
  }
  return plan;
}

/** Whether the plan is one contiguous run on both sides (a plain buffer copy). */
function isRun(plan: CopyPlan): boolean {
  const r = plan.dims.length;
  return r === 0 || (r === 1 && plan.src[0] === 1 && plan.dst[0] === 1);
}

function runCopy(plan: CopyPlan, from: Storage, to: Storage): void {
  const n = sizeOf(plan.dims);
  if (n === 0) return;
  const rt = runtime();
  if (isRun(plan)) {
    rt.copy(from, plan.srcOffset * 4, to, plan.dstOffset * 4, n * 4);
    return;
  }
  const r = plan.dims.length;
  // Four words per thread when the innermost run is contiguous on both sides and every other
  // number divides by four.
  const vec4 = plan.src[r - 1] === 1 && plan.dst[r - 1] === 1 &&
    [
      plan.dims[r - 1],
      plan.srcOffset,
      plan.dstOffset,
      ...plan.src.slice(0, -1),
      ...plan.dst.slice(0, -1),
    ]
      .every((v) => v % 4 === 0);
  // In vec4 units the innermost stride stays 1 and everything else is divided by four.
  const q = vec4 ? 4 : 1;
  const dims = plan.dims.map((d, k) => k === r - 1 ? d / q : d);
  const src = plan.src.map((s, k) => k === r - 1 ? s : s / q);
  const dst = plan.dst.map((s, k) => k === r - 1 ? s : s / q);
  const threads = chunkedThreads(n / plan.dims[r - 1], dims[r - 1], vec4);
  const groups = grid1d(threads);
  rt.launch(stridedCopyKernel(r, vec4), {
    buffers: [from, to],
    params: {
      n: threads,
      gx: groups[0],
      src_offset: plan.srcOffset / q,
      dst_offset: plan.dstOffset / q,
      dims,
      src_strides: src,
      dst_strides: dst,
    },
    groups,
  });
}

// ---- reshape and friends (views) ------------------------------------------------------------

function resolveShape(x: Tensor, shape: Shape): number[] {
  const bad = shape.some((d) => !Number.isInteger(d) || d < -1);
  const inferred = shape.filter((d) => d === -1).length;
  if (bad || inferred > 1) {
    throw new Error(
      `reshape: invalid target shape ${formatShape(shape)}: dimensions must be integers ≥ 0, ` +
        `with at most one -1`,
    );
  }
  const known = sizeOf(shape.filter((d) => d !== -1));
  const out = [...shape];
  if (inferred) {
    if (known === 0 || x.size % known !== 0) {
      throw new Error(
        `reshape: cannot infer the -1 in ${formatShape(shape)} for a tensor of shape ` +
          `${formatShape(x.shape)} (${x.size} elements)`,
      );
    }
    out[out.indexOf(-1)] = x.size / known;
  } else if (known !== x.size) {
    throw new Error(
      `reshape: cannot view shape ${formatShape(x.shape)} (${x.size} elements) as ` +
        `${formatShape(shape)} (${known} elements)`,
    );
  }
  return out;
}

/** Same storage under a new shape (no copy); one dimension may be -1 (inferred). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  alive("reshape", x);
  const y = adoptIntoScope(x.retainView(resolveShape(x, shape)));
  return record("reshape", y, [x], [], {});
}

/** Removes size-1 axes: the given ones (each must have size 1), or all of them. */
export function squeeze(x: Tensor, axes?: number | readonly number[]): Tensor {
  alive("squeeze", x);
  const drop = axes === undefined
    ? x.shape.map((d, k) => d === 1 ? k : -1).filter((k) => k >= 0)
    : (typeof axes === "number" ? [axes] : axes).map((a) => axisOf("squeeze", a, x.rank, x.shape));
  for (const k of drop) {
    if (x.shape[k] !== 1) {
      throw new Error(
        `squeeze: axis ${k} of shape ${formatShape(x.shape)} has size ${x.shape[k]}, expected 1`,
      );
    }
  }
  return reshape(x, x.shape.filter((_, k) => !drop.includes(k)));
}

/** Inserts a size-1 axis at `axis` (in [-(rank + 1), rank]). */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  alive("unsqueeze", x);
  const a = axisOf("unsqueeze", axis, x.rank + 1, x.shape);
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

// ---- permute --------------------------------------------------------------------------------

/** Reorders axes: output axis i is input axis perm[i] (negative axes allowed). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  alive("permute", x);
  const p = perm.map((a) =>
    Number.isInteger(a) && a >= -x.rank && a < x.rank ? (a < 0 ? a + x.rank : a) : -1
  );
  if (p.length !== x.rank || p.includes(-1) || new Set(p).size !== p.length) {
    throw new Error(
      `permute: [${perm.join(", ")}] is not a permutation of the ${x.rank} axes of shape ` +
        `${formatShape(x.shape)}`,
    );
  }
  const shape = p.map((a) => x.shape[a]);
  const strides = stridesOf(x.shape);
  const plan = planCopy("permute", shape, p.map((a) => strides[a]), stridesOf(shape));
  // Moving only size-1 axes leaves the memory order unchanged.
  if (isRun(plan)) return reshape(x, shape);
  const y = Tensor.empty(shape, x.dtype);
  runCopy(plan, x.storage, y.storage);
  return record("permute", y, [x], [], { perm: p });
}

/** Swaps two axes (by default the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  alive("transpose", x);
  const i = axisOf("transpose", a, x.rank, x.shape);
  const j = axisOf("transpose", b, x.rank, x.shape);
  const perm = x.shape.map((_, k) => k === i ? j : k === j ? i : k);
  return permute(x, perm);
}

// ---- concat / stack / split -----------------------------------------------------------------

/** Joins tensors along an existing axis; all other dimensions and the dtype must match. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error("concat: received no tensors, expected at least one");
  alive("concat", ...xs);
  const first = xs[0];
  if (first.rank === 0) {
    throw new Error("concat: received 0-d tensors, which have no axis to join along");
  }
  const a = axisOf("concat", axis, first.rank, first.shape);
  for (const x of xs) {
    const fits = x.rank === first.rank && x.dtype === first.dtype &&
      x.shape.every((d, k) => k === a || d === first.shape[k]);
    if (!fits) {
      throw new Error(
        `concat: shapes ${xs.map((t) => `${formatShape(t.shape)} ${t.dtype}`).join(", ")} ` +
          `cannot be joined along axis ${a}: expected the same rank, dtype and sizes off that axis`,
      );
    }
  }
  const total = xs.reduce((s, x) => s + x.shape[a], 0);
  const shape = first.shape.map((d, k) => k === a ? total : d);
  if (xs.length === 1) return reshape(first, shape);
  const outer = sizeOf(shape.slice(0, a));
  const inner = sizeOf(shape.slice(a + 1));
  // One copy per input: inputs are separate bindings, and a single kernel over a variable
  // number of them would need one pipeline per count and hit the storage-binding limit; each
  // copy writes its block of rows, and an input whose rows are one run is a buffer copy.
  let offset = 0;
  const plans = xs.map((x) => {
    const rows = x.shape[a] * inner;
    const plan = planCopy("concat", [outer, rows], [rows, 1], [total * inner, 1], 0, offset);
    offset += rows;
    return plan;
  });
  const y = Tensor.empty(shape, first.dtype);
  plans.forEach((plan, i) => runCopy(plan, xs[i].storage, y.storage));
  return record("concat", y, [...xs], [], { axis: a });
}

/** Joins same-shaped tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error("stack: received no tensors, expected at least one");
  alive("stack", ...xs);
  const first = xs[0];
  if (xs.some((x) => x.shape.join() !== first.shape.join() || x.dtype !== first.dtype)) {
    throw new Error(
      `stack: shapes ${xs.map((t) => `${formatShape(t.shape)} ${t.dtype}`).join(", ")} ` +
        `differ: expected identical shapes and dtypes`,
    );
  }
  const a = axisOf("stack", axis, first.rank + 1, first.shape);
  return concat(xs.map((x) => unsqueeze(x, a)), a);
}

/** Splits along `axis` into pieces of the given sizes (which must add up to the axis size). */
export function split(x: Tensor, sizes: readonly number[], axis = 0): Tensor[] {
  alive("split", x);
  const a = axisOf("split", axis, x.rank, x.shape);
  const valid = sizes.every((s) => Number.isInteger(s) && s >= 0);
  if (!valid || sizes.reduce((s, v) => s + v, 0) !== x.shape[a]) {
    throw new Error(
      `split: sizes [${sizes.join(", ")}] do not add up to axis ${a} of shape ` +
        `${formatShape(x.shape)} (expected non-negative integers summing to ${x.shape[a]})`,
    );
  }
  let start = 0;
  return sizes.map((s) => {
    const piece = narrow(x, a, start, s);
    start += s;
    return piece;
  });
}

// ---- slice / narrow / pad -------------------------------------------------------------------

function boundsOf(op: string, x: Tensor, values: readonly number[], what: string): void {
  if (
    values.length > x.rank || values.some((v) => !Number.isInteger(v) && Math.abs(v) !== Infinity)
  ) {
    throw new Error(
      `${op}: ${what} [${values.join(", ")}] do not fit shape ${formatShape(x.shape)} ` +
        `(expected at most ${x.rank} integers)`,
    );
  }
}

/**
 * x[starts[0]:ends[0], starts[1]:ends[1], …] with NumPy rules: negative bounds count from the
 * end, bounds are clamped to the axis, end ≤ start gives an empty axis, and axes past the end of
 * `starts`/`ends` are taken whole (±Infinity works as an open bound).
 */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor {
  alive("slice", x);
  boundsOf("slice", x, starts, "starts");
  boundsOf("slice", x, ends, "ends");
  const clampTo = (v: number, d: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
  const lo = x.shape.map((d, k) => clampTo(starts[k] ?? 0, d));
  const hi = x.shape.map((d, k) => Math.max(clampTo(ends[k] ?? d, d), lo[k]));
  const shape = lo.map((l, k) => hi[k] - l);
  if (shape.every((d, k) => d === x.shape[k])) return reshape(x, shape);
  const strides = stridesOf(x.shape);
  const offset = lo.reduce((s, l, k) => s + l * strides[k], 0);
  const plan = planCopy("slice", shape, strides, stridesOf(shape), offset, 0);
  const y = Tensor.empty(shape, x.dtype);
  runCopy(plan, x.storage, y.storage);
  return record("slice", y, [x], [], { starts: lo });
}

/** `length` entries of `axis` from `start` (negative start counts from the end); strict bounds. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  alive("narrow", x);
  const a = axisOf("narrow", axis, x.rank, x.shape);
  const d = x.shape[a];
  const s = start < 0 ? start + d : start;
  if (!Number.isInteger(s) || !Number.isInteger(length) || s < 0 || length < 0 || s + length > d) {
    throw new Error(
      `narrow: start ${start}, length ${length} do not fit axis ${a} of shape ` +
        `${formatShape(x.shape)} (expected 0 ≤ start and start + length ≤ ${d})`,
    );
  }
  const starts = x.shape.map((_, k) => k === a ? s : 0);
  const ends = x.shape.map((dk, k) => k === a ? s + length : dk);
  return slice(x, starts, ends);
}

/** The 32-bit pattern of `value` in `dtype`, as a u32 (an i32 in two's complement). */
function bitsOf(value: number, dtype: DType): number {
  if (dtype === "f32") return new Uint32Array(new Float32Array([value]).buffer)[0];
  return value >>> 0;
}

/**
 * Constant padding: `before[k]` and `after[k]` entries of `value` around axis k (missing trailing
 * entries are 0).
 */
export function pad(
  x: Tensor,
  before: readonly number[],
  after: readonly number[],
  value = 0,
): Tensor {
  alive("pad", x);
  const widths = [...before, ...after];
  const valid = before.length <= x.rank && after.length <= x.rank &&
    widths.every((w) => Number.isInteger(w) && w >= 0);
  if (!valid) {
    throw new Error(
      `pad: widths before [${before.join(", ")}], after [${after.join(", ")}] do not fit shape ` +
        `${formatShape(x.shape)} (expected at most ${x.rank} non-negative integers each)`,
    );
  }
  if (x.dtype !== "f32" && (!Number.isInteger(value) || (x.dtype === "u32" && value < 0))) {
    throw new Error(`pad: value ${value} is not representable in dtype ${x.dtype}`);
  }
  const lo = x.shape.map((_, k) => before[k] ?? 0);
  const shape = x.shape.map((d, k) => d + lo[k] + (after[k] ?? 0));
  if (shape.every((d, k) => d === x.shape[k])) return reshape(x, shape);
  // Merge an unpadded axis into the one before it: the box test on the merged coordinate is
  // the same as on the outer one, scaled.
  const dims: number[] = [];
  const starts: number[] = [];
  const srcDims: number[] = [];
  for (let k = 0; k < shape.length; k++) {
    const unpadded = shape[k] === x.shape[k];
    if (unpadded && shape[k] === 1) continue;
    const last = dims.length - 1;
    if (unpadded && last >= 0) {
      dims[last] *= shape[k];
      starts[last] *= shape[k];
      srcDims[last] *= shape[k];
    } else {
      dims.push(shape[k]);
      starts.push(lo[k]);
      srcDims.push(x.shape[k]);
    }
  }
  if (dims.length > MAX_RANK) {
    throw new Error(
      `pad: ${dims.length} padded dimensions remain after merging (shape ` +
        `${formatShape(x.shape)}); at most ${MAX_RANK} are supported`,
    );
  }
  const y = Tensor.empty(shape, x.dtype);
  if (y.size > 0) {
    const len = dims[dims.length - 1];
    const threads = chunkedThreads(y.size / len, len, false);
    const groups = grid1d(threads);
    runtime().launch(padKernel(dims.length), {
      buffers: [x.storage, y.storage],
      params: {
        n: threads,
        gx: groups[0],
        value: bitsOf(value, x.dtype),
        dims,
        before: starts,
        src_dims: srcDims,
        src_strides: stridesOf(srcDims),
      },
      groups,
    });
  }
  return record("pad", y, [x], [], { before: lo });
}

// ---- gather / scatter-add -------------------------------------------------------------------

function checkIndices(op: string, indices: Tensor): void {
  if (indices.dtype === "f32") {
    throw new Error(
      `${op}: indices of shape ${formatShape(indices.shape)} are f32, expected i32 or u32`,
    );
  }
}

/**
 * index_select: out = x.shape[:axis] + indices.shape + x.shape[axis+1:], taking the slices of
 * `axis` named by `indices` (an embedding lookup when x is [V, D] and axis is 0). An index
 * outside [0, x.shape[axis]) gives zeros there (and no gradient); nothing is read out of bounds.
 * The indices live on the GPU, so that is not an error unless `init({ checkIndices: true })`
 * (DENOGRAD_CHECK_INDICES=1): then the next readback throws, naming gather and the bound.
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  alive("gather", x, indices);
  checkIndices("gather", indices);
  if (x.rank === 0) throw new Error("gather: received a 0-d tensor, expected rank ≥ 1");
  const a = axisOf("gather", axis, x.rank, x.shape);
  const shape = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  const inner = sizeOf(x.shape.slice(a + 1));
  const y = Tensor.empty(shape, x.dtype);
  if (y.size > 0) {
    const vec4 = inner % 4 === 0;
    const len = vec4 ? inner / 4 : inner;
    const threads = chunkedThreads(y.size / inner, len, vec4);
    const groups = grid1d(threads);
    runtime().launch(gatherKernel(vec4), {
      buffers: [x.storage, indices.storage, y.storage],
      params: { n: threads, gx: groups[0], count: indices.size, rows: x.shape[a], inner: len },
      groups,
      indices: [{ storage: indices.storage, size: indices.size, bound: x.shape[a] }],
      op: "gather",
    });
  }
  return record("gather", y, [x, indices], [indices], { axis: a });
}

/**
 * The adjoint of gather: zeros of shape values.shape[:axis] + [size] + the rest, with each slice
 * of `values` added at the row its index names (repeated indices accumulate; out-of-range ones
 * are dropped, or reported under `checkIndices` as in gather). `axis` counts in the output's
 * axes, as in gather. Deterministic: a CSR plan
 * (rows → positions in increasing order) is built in one workgroup, then each thread sums a
 * chunk of one output row in that order; float atomics would make the rounding depend on
 * thread timing.
 */
export function scatterAdd(values: Tensor, indices: Tensor, axis: number, size: number): Tensor {
  alive("scatterAdd", values, indices);
  checkIndices("scatterAdd", indices);
  const outRank = values.rank - indices.rank + 1;
  const a = axis < 0 ? axis + outRank : axis;
  const fits = values.dtype === "f32" && Number.isInteger(a) && a >= 0 && a < outRank &&
    values.shape.slice(a, a + indices.rank).join() === indices.shape.join() &&
    Number.isInteger(size) && size >= 0;
  if (!fits) {
    throw new Error(
      `scatterAdd: values ${formatShape(values.shape)} ${values.dtype}, indices ` +
        `${formatShape(indices.shape)}, axis ${axis}, size ${size}: expected f32 values whose ` +
        `axes from ${axis} match the indices' shape, and an integer size ≥ 0`,
    );
  }
  const lead = values.shape.slice(0, a);
  const trail = values.shape.slice(a + indices.rank);
  const shape = [...lead, size, ...trail];
  const inner = sizeOf(trail);
  const y = Tensor.empty(shape, "f32");
  if (y.size > 0) {
    const rt = runtime();
    const plan = Tensor.empty([size + indices.size], "u32");
    rt.launch(SCATTER_PLAN, {
      buffers: [indices.storage, plan.storage],
      params: { count: indices.size, rows: size },
      groups: [1],
      indices: [{ storage: indices.storage, size: indices.size, bound: size }],
      op: "scatterAdd",
    });
    const vec4 = inner % 4 === 0;
    const len = vec4 ? inner / 4 : inner;
    const threads = chunkedThreads(y.size / inner, len, vec4);
    const groups = grid1d(threads);
    rt.launch(scatterSumKernel(vec4), {
      buffers: [plan.storage, values.storage, y.storage],
      params: { n: threads, gx: groups[0], rows: size, inner: len, count: indices.size },
      groups,
    });
    plan.dispose();
  }
  return record("scatter_add", y, [values, indices], [indices], { axis: a });
}

// ---- cast ---------------------------------------------------------------------------------

/**
 * Converts the dtype (no gradient): f32 → i32/u32 truncates toward zero and saturates,
 * i32 ↔ u32 keeps the bits. The same dtype gives a view.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  alive("cast", x);
  if (dtype !== "f32" && dtype !== "i32" && dtype !== "u32") {
    throw new Error(`cast: unknown dtype '${dtype}', expected f32, i32 or u32`);
  }
  if (dtype === x.dtype) return reshape(x, x.shape);
  const y = Tensor.empty(x.shape, dtype);
  const vectors = Math.ceil(x.size / 4);
  if (vectors > 0) {
    const groups = grid1d(vectors);
    runtime().launch(castKernel(x.dtype, dtype), {
      buffers: [x.storage, y.storage],
      params: { n: vectors, gx: groups[0] },
      groups,
    });
  }
  return y;
}
