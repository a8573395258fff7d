// Reductions (sum, mean, max, argmax) over any set of axes, softmax and log-softmax along one
// axis; their backward rules.
//
// A reduction views the tensor as [outer, reduce, inner] per pass: adjacent reduced axes merge
// into one pass (size-1 axes are ignored), so [B, N] over axis 0, rows over the last axis and
// NCHW over [2, 3] each take one dispatch. Axis sets that are not adjacent, e.g. [0, 2] of
// [N, C, H, W], take one pass per run of adjacent axes, largest first; each pass is its own node
// on the tape, so a backward rule only ever undoes one [outer, reduce, inner] pass. A long axis
// with few outputs (a full sum of a big tensor) is cut into chunks reduced in parallel, then a
// second pass reduces over the chunks.
import { type BackwardRule, needsGrad, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import { grid1d } from "../shaders/common.ts";
import {
  type LaneLayout,
  reduceBackwardKernel,
  reduceKernel,
  type ReduceKind,
  softmaxBackwardKernel,
  softmaxKernel,
  STRIP_WG,
  stripReduceKernel,
  type Vec4Packing,
} from "../shaders/reduce.ts";
import { formatShape, type Shape, sizeOf, Tensor } from "../tensor.ts";
import { tunable } from "../tuning.ts";

/**
 * One reduction pass over the middle axis of [outer, reduce, inner], in chunks of `chunk`
 * positions: the output is [outer, ceil(reduce / chunk), inner].
 */
interface Pass {
  outer: number;
  reduce: number;
  inner: number;
  chunk: number;
}

/** What each reduction node records: its pass and the scale applied to it (1/count for mean). */
interface PassAttrs extends Pass {
  scale: number;
}
type ReduceAttrs = { [K in "sum" | "mean" | "max" | "softmax" | "log_softmax"]: PassAttrs };

function chunksOf(pass: Pass): number {
  return Math.max(1, Math.ceil(pass.reduce / pass.chunk));
}

function outputsOf(pass: Pass): number {
  return pass.outer * chunksOf(pass) * pass.inner;
}

/** A pass over a whole axis. */
function wholeAxis(outer: number, reduce: number, inner: number): Pass {
  return { outer, reduce, inner, chunk: Math.max(reduce, 1) };
}

/** How reductions spread over lanes and workgroups; `reduceTuning` picks one per adapter. */
export interface ReduceTuning {
  /** Elements a lane reduces before more lanes per output are worth a shared-memory tree. */
  perLane: number;
  /** Fewer workgroups than this on a long axis: reduce it in chunks, then over the chunks. */
  minGroups: number;
  /** Shortest chunk worth a workgroup of its own. */
  minChunk: number;
  /** Lanes a CPU adapter runs as one SIMD vector (0: lanes run in lockstep, as on a GPU). */
  simd: number;
  /** Widest inner axis whose outputs are reduced four at a time with vec4 loads. */
  maxPackedInner: number;
  /**
   * Wider inner axes (a multiple of 4): vec4 accumulators per lane of the strip kernel
   * (stripReduceKernel), 0 for none; it reduces chunks of `stripRows` rows, then the chunks.
   */
  stripAccumulators: number;
  stripRows: number;
}

export const REDUCE_TUNING = tunable<ReduceTuning>("reduce", {
  // Software adapters (lavapipe, SwiftShader) run a workgroup's lanes in SIMD loops on few
  // cores and pay for every barrier: one lane per output up to rows of 1024, and a split only
  // when one workgroup would do all the work. Measured on lavapipe (2 cores, [4096, 1000]):
  // one lane per row runs softmax and cross-entropy 1.3–1.5× faster than 8 lanes per row, and
  // 16+ lanes per row are 2–3× slower.
  // Lavapipe packs 8 lanes per vector and runs each vector through the whole loop: a vector that
  // strides a long axis 256 lanes apart reads a new cache line per step (sum of all [4096, 1024]
  // at 24 % of the copy bandwidth); a block of its own it streams (96 %). Columns stream only
  // when a vector's lanes cover whole rows: packing [65536, 32] four outputs per lane took its
  // sum over the batch 35 % → 75 %; wider rows stay scalar and interleaved (vec4 loads measured
  // slower there, each vector then reading two lines per 4 KB row). Wider rows go to the strip
  // kernel: a vector reads 16 · 8 adjacent vec4 of each row of a 512-row chunk, and the sum over
  // the batch of [4096, 1024] ran 2.4× faster than interleaved scalar lanes (7.1 → 2.9 ms,
  // medians of 8 interleaved rounds); 32 accumulators or chunks of 128–256 rows were no faster.
  cpu: {
    perLane: 1024,
    minGroups: 4,
    minChunk: 8192,
    simd: 8,
    maxPackedInner: 32,
    stripAccumulators: 16,
    stripRows: 512,
  },
  // GPUs need thousands of lanes in flight (defaults, not yet measured on hardware).
  gpu: {
    perLane: 16,
    minGroups: 256,
    minChunk: 1024,
    simd: 0,
    maxPackedInner: 2 ** 31,
    stripAccumulators: 0,
    stripRows: 0,
  },
});

function reduceTuning(): ReduceTuning {
  return REDUCE_TUNING.get();
}

function nextPow2(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}

/** Spreads `outputs` reductions of length `reduce` over 256-lane workgroups. */
export function laneLayout(
  outputs: number,
  reduce: number,
  inner: number,
  vec4: Vec4Packing = "none",
): LaneLayout {
  const forWork = nextPow2(Math.ceil(reduce / reduceTuning().perLane));
  // Few outputs: give each more lanes (up to one per element) so the workgroup fills.
  const forFill = Math.min(256 / Math.min(nextPow2(outputs), 256), nextPow2(reduce));
  // Columns (inner > 1): neighbouring lanes read neighbouring columns, so keep up to 32 of them
  // side by side for coalesced loads.
  const minCols = inner === 1 ? 1 : Math.min(nextPow2(inner), 32);
  const splits = Math.min(256 / minCols, Math.max(forWork, forFill));
  const cols = 256 / splits;
  const rowLanes = inner === 1;
  // The lanes of one SIMD vector that share an output interleave; each vector gets a block
  // where that makes it stream: along rows, or down columns that its lanes cover whole.
  const { simd } = reduceTuning();
  const sharing = simd === 0 || (!rowLanes && cols < inner)
    ? splits
    : rowLanes
    ? simd
    : Math.max(1, simd / cols);
  return { cols, splits, rowLanes, vec4, interleave: Math.min(splits, sharing) };
}

/** Which vec4 packings a kernel takes: softmax only "along", the argmax-tracking max none. */
type Packings = "any" | "along" | "none";

/**
 * The pass as the kernels count it: in vec4s along rows whose length (and chunk) is a multiple
 * of 4, else in vec4s of four adjacent outputs when inner is; scalars otherwise.
 */
function packed(pass: Pass, allowed: Packings): { view: Pass; vec4: Vec4Packing } {
  if (allowed === "none") return { view: pass, vec4: "none" };
  if (pass.inner === 1 && pass.reduce % 4 === 0 && pass.chunk % 4 === 0) {
    return { view: { ...pass, reduce: pass.reduce / 4, chunk: pass.chunk / 4 }, vec4: "along" };
  }
  if (allowed === "any" && pass.inner % 4 === 0 && pass.inner <= reduceTuning().maxPackedInner) {
    return { view: { ...pass, inner: pass.inner / 4 }, vec4: "across" };
  }
  return { view: pass, vec4: "none" };
}

/** The launch of one pass's kernel: its layout, grid and uniforms, in the packed view. */
function passLaunch(pass: Pass, allowed: Packings, scale = 1) {
  const { view, vec4 } = packed(pass, allowed);
  const outputs = outputsOf(view);
  const layout = laneLayout(outputs, Math.min(view.reduce, view.chunk), view.inner, vec4);
  const groups = outputGrid(outputs, layout.cols);
  return { layout, groups, params: geometry(view, groups[0], scale) };
}

/** Values of the reduce shaders' uniform block `G`. */
function geometry(pass: Pass, gx: number, scale = 1) {
  return {
    outputs: outputsOf(pass),
    reduce: pass.reduce,
    inner: pass.inner,
    gx,
    chunk: pass.chunk,
    chunks: chunksOf(pass),
    scale,
    neg_inf: -Infinity,
  };
}

/** Workgroup grid for `outputs` outputs, `cols` per workgroup. */
function outputGrid(outputs: number, cols: number): [number, number] {
  const groups = Math.max(1, Math.ceil(outputs / cols));
  const gx = Math.min(groups, 65535);
  return [gx, Math.ceil(groups / gx)];
}

function requireF32(op: string, x: Tensor): void {
  x.assertAlive(op);
  if (x.dtype !== "f32") {
    throw new Error(
      `${op}: input of shape ${formatShape(x.shape)} has dtype ${x.dtype}, expected f32`,
    );
  }
}

function normalizeAxis(op: string, shape: Shape, axis: number): number {
  const rank = shape.length;
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new Error(
      `${op}: axis ${axis} is out of range for shape ${formatShape(shape)} ` +
        (rank === 0
          ? "(a 0-d tensor has no axes)"
          : `(expected an integer in [${-rank}, ${rank - 1}])`),
    );
  }
  return axis < 0 ? axis + rank : axis;
}

/** Sorted, distinct, non-negative axes; `undefined` means all of them. */
function normalizeAxes(op: string, shape: Shape, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return shape.map((_, i) => i);
  const list = (typeof axes === "number" ? [axes] : [...axes]).map((a) =>
    normalizeAxis(op, shape, a)
  );
  const sorted = [...new Set(list)].sort((a, b) => a - b);
  if (sorted.length !== list.length) {
    throw new Error(`${op}: axes [${axes}] repeat an axis of shape ${formatShape(shape)}`);
  }
  return sorted;
}

/** The passes that reduce `axes` of `shape`: one per run of adjacent reduced axes. */
function planPasses(shape: Shape, axes: readonly number[]): Pass[] {
  const runs: { size: number; reduced: boolean }[] = [];
  shape.forEach((size, axis) => {
    if (size === 1) return; // either side of a run: never splits one
    const reduced = axes.includes(axis);
    const last = runs[runs.length - 1];
    if (last && last.reduced === reduced) last.size *= size;
    else runs.push({ size, reduced });
  });
  const product = (from: number, to: number) =>
    runs.slice(from, to).reduce((n, run) => n * run.size, 1);
  // Largest first: it shrinks the data the later passes read the most.
  const order = runs.map((_, i) => i).filter((i) => runs[i].reduced)
    .sort((a, b) => runs[b].size - runs[a].size);
  const passes = order.flatMap((i) => {
    const pass = wholeAxis(product(0, i), runs[i].size, product(i + 1, runs.length));
    runs[i].size = 1;
    return splitLongAxis(pass);
  });
  // Nothing to reduce (only size-1 axes): one copying pass keeps the op on the tape.
  return passes.length ? passes : [wholeAxis(sizeOf(shape), 1, 1)];
}

/** Whether the strip kernel reduces this pass (wide columns on an adapter that takes it). */
function usesStrips(pass: Pass): boolean {
  const { stripAccumulators, maxPackedInner } = reduceTuning();
  return stripAccumulators > 0 && pass.inner % 4 === 0 && pass.inner > maxPackedInner;
}

/** A long axis with too few outputs to fill the device: chunks of it first, then the chunks. */
function splitLongAxis(pass: Pass): Pass[] {
  if (usesStrips(pass)) {
    const chunk = reduceTuning().stripRows;
    if (pass.reduce <= chunk) return [pass];
    const chunked = { ...pass, chunk };
    return [chunked, wholeAxis(pass.outer, chunksOf(chunked), pass.inner)];
  }
  const { minGroups, minChunk } = reduceTuning();
  const outputs = pass.outer * pass.inner;
  const groups = Math.ceil(outputs / laneLayout(outputs, pass.reduce, pass.inner).cols);
  const chunks = Math.min(
    256,
    Math.floor(pass.reduce / minChunk),
    Math.ceil(minGroups / Math.max(groups, 1)),
  );
  if (groups >= minGroups || chunks < 2) return [pass];
  // Chunks of a multiple of 4 keep rows of a multiple of 4 in vec4 loads.
  const chunked = { ...pass, chunk: 4 * Math.ceil(pass.reduce / chunks / 4) };
  return [chunked, wholeAxis(pass.outer, chunksOf(chunked), pass.inner)];
}

/** The strip kernel's launch for a pass that usesStrips: its kernel, grid and uniforms. */
function stripLaunch(kind: ReduceKind, pass: Pass, scale: number) {
  const { stripAccumulators, simd } = reduceTuning();
  const view = { ...pass, inner: pass.inner / 4 };
  const accumulators = Math.min(stripAccumulators, Math.ceil(view.inner / simd));
  const strips = Math.ceil(view.inner / (simd * accumulators));
  const groups = outputGrid(pass.outer * chunksOf(pass) * strips * simd, STRIP_WG);
  return {
    kernel: stripReduceKernel(kind, accumulators, simd),
    groups,
    params: geometry(view, groups[0], scale),
  };
}

/** Encodes one reduction pass; `index` receives the argmax when given (max only). */
function dispatchReduce(
  kind: ReduceKind,
  x: Tensor,
  pass: Pass,
  out: Tensor,
  scale: number,
  index?: Tensor,
  op?: string,
): void {
  const outputs = outputsOf(pass);
  if (outputs === 0) return;
  let launch;
  if (!index && usesStrips(pass)) launch = stripLaunch(kind, pass, scale);
  else {
    // The argmax-tracking kernel loads scalars: positions are per element.
    const { layout, groups, params } = passLaunch(pass, index ? "none" : "any", scale);
    launch = { kernel: reduceKernel(kind, layout, index !== undefined), groups, params };
  }
  runtime().launch(launch.kernel, {
    buffers: index ? [x.storage, out.storage, index.storage] : [x.storage, out.storage],
    params: launch.params,
    groups: launch.groups,
    flops: outputs * pass.reduce,
    outputs: op ? [out] : [],
    op,
  });
}

function reduceAxes(
  op: "sum" | "mean" | "max",
  x: Tensor,
  axes: number | readonly number[] | undefined,
  keepDims: boolean,
): Tensor {
  requireF32(op, x);
  const axisList = normalizeAxes(op, x.shape, axes);
  const count = axisList.reduce((n, a) => n * x.shape[a], 1);
  if (op === "max" && count === 0) {
    throw new Error(
      `max: cannot take the maximum over axes [${axisList}] of shape ${formatShape(x.shape)}: ` +
        "they hold no elements",
    );
  }
  const outShape = keepDims
    ? x.shape.map((d, i) => (axisList.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !axisList.includes(i));
  const passes = planPasses(x.shape, axisList);
  const recording = needsGrad([x]);
  const kind: ReduceKind = op === "max" ? "max" : "sum";
  let current = x;
  passes.forEach((pass, k) => {
    const last = k === passes.length - 1;
    const scale = op === "mean" && last ? 1 / count : 1;
    const out = Tensor.empty(last ? outShape : [outputsOf(pass)]);
    const index = kind === "max" && recording ? Tensor.empty(out.shape, "i32") : undefined;
    dispatchReduce(kind, current, pass, out, scale, index, last ? op : undefined);
    if (recording) {
      record(op, out, [current], index ? [index] : [], { ...pass, scale });
      index?.dispose(); // the node holds its own view
    }
    // An intermediate's values are used up; its node (if any) stays for backward, which needs
    // only its shape.
    if (current !== x) current.dispose();
    current = out;
  });
  return current;
}

/**
 * Σ over `axes` (all axes when undefined, giving a 0-d tensor); negative axes count from the
 * end. Over no elements the sum is 0.
 */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceAxes("sum", x, axes, keepDims);
}

/** Arithmetic mean over `axes` (all when undefined); NaN over no elements. */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceAxes("mean", x, axes, keepDims);
}

/**
 * Maximum over `axes` (all when undefined). The gradient goes to one position per output: the
 * first maximum along each pass (ties are not split). NaN inputs give unspecified results.
 */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return reduceAxes("max", x, axes, keepDims);
}

/** Position (i32) of the largest value along `axis`, the first one on ties; no gradient. */
export function argmax(x: Tensor, axis = -1): Tensor {
  requireF32("argmax", x);
  const a = normalizeAxis("argmax", x.shape, axis);
  if (x.shape[a] === 0) {
    throw new Error(`argmax: axis ${axis} of shape ${formatShape(x.shape)} is empty`);
  }
  const pass = wholeAxis(sizeOf(x.shape.slice(0, a)), x.shape[a], sizeOf(x.shape.slice(a + 1)));
  const outShape = x.shape.filter((_, i) => i !== a);
  const values = Tensor.empty(outShape);
  const index = Tensor.empty(outShape, "i32");
  dispatchReduce("max", x, pass, values, 1, index);
  values.dispose();
  return index;
}

function softmaxAlong(op: "softmax" | "log_softmax", x: Tensor, axis: number): Tensor {
  requireF32(op, x);
  const a = normalizeAxis(op, x.shape, axis);
  const pass = wholeAxis(sizeOf(x.shape.slice(0, a)), x.shape[a], sizeOf(x.shape.slice(a + 1)));
  const y = Tensor.empty(x.shape);
  if (x.size > 0) {
    const { layout, groups, params } = passLaunch(pass, "along");
    runtime().launch(softmaxKernel(op === "log_softmax", layout), {
      buffers: [x.storage, y.storage],
      params,
      groups,
      flops: 5 * x.size,
      outputs: [y],
      op,
    });
  }
  return record(op, y, [x], [y], { ...pass, scale: 1 });
}

/**
 * exp(x − max) / Σ exp(x − max) along `axis`: stable for any finite input. A slice that is all
 * −Infinity has no defined softmax and comes out NaN (as in PyTorch).
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxAlong("softmax", x, axis);
}

/** x − max − log Σ exp(x − max) along `axis`; an all −Infinity slice gives NaN. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxAlong("log_softmax", x, axis);
}

// ---- backward ----------------------------------------------------------------------------

/** dx for one pass: g spread over the reduced axis (sum) or sent to the saved argmax (max). */
function reduceBackward(kind: ReduceKind): BackwardRule<PassAttrs> {
  return (grad, node) => {
    const x = node.inputs[0];
    const dx = Tensor.empty(x.shape);
    if (x.size === 0) return [dx];
    const [gx, gy] = grid1d(x.size);
    runtime().launch(reduceBackwardKernel(kind), {
      buffers: kind === "max"
        ? [grad.storage, node.saved[0].storage, dx.storage]
        : [grad.storage, dx.storage],
      params: geometry(node.attrs, gx, node.attrs.scale),
      groups: [gx, gy],
    });
    return [dx];
  };
}

function softmaxBackward(log: boolean): BackwardRule<PassAttrs> {
  return (grad, node) => {
    const y = node.saved[0];
    const dx = Tensor.empty(y.shape);
    if (y.size === 0) return [dx];
    const { layout, groups, params } = passLaunch(node.attrs, "along");
    runtime().launch(softmaxBackwardKernel(log, layout), {
      buffers: [y.storage, grad.storage, dx.storage],
      params,
      groups,
    });
    return [dx];
  };
}

const reduceRules: Rules<ReduceAttrs> = {
  sum: reduceBackward("sum"),
  mean: reduceBackward("sum"),
  max: reduceBackward("max"),
  softmax: softmaxBackward(false),
  log_softmax: softmaxBackward(true),
};
const record = recorder(reduceRules);
