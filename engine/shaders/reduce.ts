// Reductions over the middle axis of a tensor viewed as [outer, reduce, inner], softmax and
// log-softmax along such an axis, and their backward kernels.
//
// Every kernel launches 256-lane workgroups laid out as `cols` outputs × `splits` lanes that
// share one output's reduced axis (cols · splits = 256): many short rows run one lane per
// output, long rows spread over up to 256 lanes that combine in shared memory (the first lane
// folds in up to 16 others itself; more go through a tree).
// When inner = 1 the lanes of one output are adjacent (consecutive lanes read consecutive
// addresses of the row); otherwise lanes of neighbouring outputs are (consecutive columns).
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, WG, wgsl } from "./common.ts";

/** How a reduction is spread over one workgroup. */
export interface LaneLayout {
  /** Outputs per workgroup. */
  cols: number;
  /** Lanes per output (a power of two); cols · splits = 256. */
  splits: number;
  /** inner = 1: lanes of one output are adjacent. */
  rowLanes: boolean;
}

/** The uniform block `G` every kernel here reads. */
export const GEOMETRY = uniformBlock({
  /** outer · chunks · inner */
  outputs: "u32",
  reduce: "u32",
  inner: "u32",
  /** Workgroups along x (the grid is 2-D past 65535 groups). */
  gx: "u32",
  /** A long axis with few outputs is reduced in chunks, then over the chunks. */
  chunk: "u32",
  chunks: "u32",
  scale: "f32",
  /** -Infinity comes in as data: WGSL constants cannot hold it. */
  neg_inf: "f32",
});
type Geometry = typeof GEOMETRY.fields;

/**
 * WGSL declaring `col`, `split`, `p` (output index), `live`, `base` (element 0 of the reduced
 * axis) and `start`/`end`, the positions along it this output covers.
 */
function prelude(layout: LaneLayout): string {
  const { cols, splits, rowLanes } = layout;
  const lane = rowLanes
    ? `let col = lid / ${splits}u; let split = lid % ${splits}u;`
    : `let col = lid % ${cols}u; let split = lid / ${cols}u;`;
  return `${lane}
  let p = (wid.y * g.gx + wid.x) * ${cols}u + col;
  let live = p < g.outputs;
  let slice = p / g.inner;
  let o = slice / g.chunks;
  let base = o * g.reduce * g.inner + (p - slice * g.inner);
  let start = (slice - o * g.chunks) * g.chunk;
  let end = min(g.reduce, start + g.chunk);`;
}

// The step between tree partners in shared memory, and the slot holding an output's result
// (its split-0 lane).
function slots(layout: LaneLayout): { step: string; head: string } {
  return layout.rowLanes
    ? { step: "1u", head: `col * ${layout.splits}u` }
    : { step: `${layout.cols}u`, head: "col" };
}

// Up to this many lanes per output, the first lane folds in the others itself: one barrier
// instead of a log2(splits)-level tree (barriers are what a CPU adapter pays most for).
const SERIAL_SPLITS = 16;

/**
 * Combines slot `lid` of shared memory over the `splits` lanes of each output into the output's
 * head slot; `combine(a, b)` is WGSL folding slot b into slot a. With `broadcast` it ends with a
 * barrier so that every lane may read the head slot (otherwise only the head lane may).
 */
export function combineLanes(
  layout: LaneLayout,
  combine: (a: string, b: string) => string,
  broadcast: boolean,
): string {
  const { step } = slots(layout);
  const { splits } = layout;
  if (splits === 1) return ""; // each output's lane already holds its result
  if (splits <= SERIAL_SPLITS) {
    return `
  workgroupBarrier();
  if (split == 0u) {
    for (var k = 1u; k < ${splits}u; k++) { ${combine("lid", `lid + k * ${step}`)} }
  }${broadcast ? "\n  workgroupBarrier();" : ""}`;
  }
  return `
  workgroupBarrier();
  for (var s = ${splits / 2}u; s > 0u; s = s >> 1u) {
    if (split < s) { ${combine("lid", `lid + s * ${step}`)} }
    workgroupBarrier();
  }`;
}

function layoutKey(layout: LaneLayout): string {
  return `${layout.cols}x${layout.splits}${layout.rowLanes ? "r" : "c"}`;
}

export type ReduceKind = "sum" | "max";

/**
 * y[p] = scale · Σ (or max) over the reduced axis. With `withIndex` the max kernel also writes
 * the first position of the maximum into `index` (i32), for argmax and max's backward.
 */
export function reduceKernel(
  kind: ReduceKind,
  layout: LaneLayout,
  withIndex: boolean,
): KernelSpec<Geometry> {
  const isMax = kind === "max";
  const tracked = isMax && withIndex;
  const { head } = slots(layout);
  return {
    name: "reduce",
    key: `${kind}|${layoutKey(layout)}|${tracked}`,
    bindings: tracked ? ["read", "write", "write"] : ["read", "write"],
    uniforms: GEOMETRY,
    code: () =>
      wgsl`${GEOMETRY.struct("G")}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
#if ${tracked}
@group(0) @binding(2) var<storage, read_write> index: array<i32>;
@group(0) @binding(3) var<uniform> g: G;
var<workgroup> best_at: array<u32, ${WG}>;
#else
@group(0) @binding(2) var<uniform> g: G;
#endif
var<workgroup> acc: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${prelude(layout)}
#if ${isMax}
  var best = g.neg_inf;
  var at = 0xffffffffu;  // no element seen yet: the first one always wins
  if (live) {
    for (var r = start + split; r < end; r += ${layout.splits}u) {
      let v = x[base + r * g.inner];
      if (v > best || at == 0xffffffffu) { best = v; at = r; }
    }
  }
  acc[lid] = best;
#if ${tracked}
  best_at[lid] = at;
#endif
  ${
        combineLanes(
          layout,
          (a, b) =>
            tracked
              ? `let va = acc[${a}]; let vb = acc[${b}]; let ia = best_at[${a}]; let ib = best_at[${b}];
      // Ties (and lanes that saw nothing) go to the lower position: argmax returns the first.
      if (ib != 0xffffffffu && (ia == 0xffffffffu || vb > va || (vb == va && ib < ia))) {
        acc[${a}] = vb; best_at[${a}] = ib;
      }`
              : `acc[${a}] = max(acc[${a}], acc[${b}]);`,
          false,
        )
      }
  if (live && split == 0u) {
    y[p] = acc[${head}];
#if ${tracked}
    index[p] = i32(best_at[${head}]);
#endif
  }
#else
  var total = 0.0;
  if (live) {
    for (var r = start + split; r < end; r += ${layout.splits}u) { total += x[base + r * g.inner]; }
  }
  acc[lid] = total;
  ${combineLanes(layout, (a, b) => `acc[${a}] += acc[${b}];`, false)}
  if (live && split == 0u) { y[p] = acc[${head}] * g.scale; }
#endif
}`,
  };
}

/**
 * Backward of one reduction pass, one lane per input element: sum spreads scale · g over the
 * reduced axis; max sends g to the saved position of the maximum only.
 */
export function reduceBackwardKernel(kind: ReduceKind): KernelSpec<Geometry> {
  const isMax = kind === "max";
  return {
    name: "reduce_bwd",
    key: kind,
    bindings: isMax ? ["read", "read", "write"] : ["read", "write"],
    uniforms: GEOMETRY,
    code: () =>
      wgsl`${GEOMETRY.struct("G")}
${LINEAR_INDEX}
@group(0) @binding(0) var<storage, read> dy: array<f32>;
#if ${isMax}
@group(0) @binding(1) var<storage, read> index: array<i32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> g: G;
#else
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> g: G;
#endif

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, g.gx);
  if (i >= g.outputs / g.chunks * g.reduce) { return; }
  let c = i % g.inner;
  let row = i / g.inner;
  let o = row / g.reduce;
  let r = row - o * g.reduce;
  let q = (o * g.chunks + r / g.chunk) * g.inner + c;
#if ${isMax}
  dx[i] = select(0.0, dy[q], index[q] == i32(r));
#else
  dx[i] = dy[q] * g.scale;
#endif
}`,
  };
}

/**
 * Softmax (or log-softmax) along the middle axis: max, then Σ exp(x − max), then the output,
 * each pass re-reading the row (it stays in cache). Recomputing exp in the last pass is cheaper
 * than storing it and reading it back. A row that is all −∞ gives NaN, as in PyTorch.
 */
export function softmaxKernel(log: boolean, layout: LaneLayout): KernelSpec<Geometry> {
  const { head } = slots(layout);
  return {
    name: "softmax",
    key: `${log}|${layoutKey(layout)}`,
    bindings: ["read", "write"],
    uniforms: GEOMETRY,
    code: () =>
      wgsl`${GEOMETRY.struct("G")}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> g: G;
var<workgroup> row_max: array<f32, ${WG}>;
var<workgroup> row_sum: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${prelude(layout)}
  var m = g.neg_inf;
  var total = 0.0;
#if ${layout.splits === 1}
  // One lane per row: max and Σ exp in a single online pass (one read of the row saved).
  if (!live) { return; }
  for (var r = start; r < end; r += 1u) {
    let v = x[base + r * g.inner];
    if (v > m) {
      total = total * exp(m - v) + 1.0;
      m = v;
    } else {
      total += exp(v - m);
    }
  }
  row_sum[lid] = total;
  let head_slot = lid;
#else
  if (live) {
    for (var r = start + split; r < end; r += ${layout.splits}u) { m = max(m, x[base + r * g.inner]); }
  }
  row_max[lid] = m;
  ${combineLanes(layout, (a, b) => `row_max[${a}] = max(row_max[${a}], row_max[${b}]);`, true)}
  m = row_max[${head}];
  if (live) {
    for (var r = start + split; r < end; r += ${layout.splits}u) {
      let at = base + r * g.inner;
      total += exp(x[at] - m);
    }
  }
  row_sum[lid] = total;
  ${combineLanes(layout, (a, b) => `row_sum[${a}] += row_sum[${b}];`, true)}
  if (!live) { return; }
  let head_slot = ${head};
#endif
#if ${log}
  // (x − m) − log Σ: adding log Σ to m first would round it at the scale of m.
  let log_sum = log(row_sum[head_slot]);
  for (var r = start + split; r < end; r += ${layout.splits}u) {
    let at = base + r * g.inner;
    y[at] = (x[at] - m) - log_sum;
  }
#else
  let inv = 1.0 / row_sum[head_slot];
  for (var r = start + split; r < end; r += ${layout.splits}u) {
    let at = base + r * g.inner;
    y[at] = exp(x[at] - m) * inv;
  }
#endif
}`,
  };
}

/**
 * Backward of softmax, dx = y · (g − Σ g·y), or of log-softmax, dx = g − exp(y) · Σ g, from the
 * saved output y: one reduction and one write pass per row.
 */
export function softmaxBackwardKernel(log: boolean, layout: LaneLayout): KernelSpec<Geometry> {
  const { head } = slots(layout);
  return {
    name: "softmax_bwd",
    key: `${log}|${layoutKey(layout)}`,
    bindings: ["read", "read", "write"],
    uniforms: GEOMETRY,
    code: () =>
      wgsl`${GEOMETRY.struct("G")}
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> g: G;
var<workgroup> acc: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${prelude(layout)}
  var total = 0.0;
  if (live) {
    for (var r = start + split; r < end; r += ${layout.splits}u) {
      let at = base + r * g.inner;
#if ${log}
      total += dy[at];
#else
      total += dy[at] * y[at];
#endif
    }
  }
  acc[lid] = total;
  ${combineLanes(layout, (a, b) => `acc[${a}] += acc[${b}];`, true)}
  if (!live) { return; }
  let dot_gy = acc[${head}];
  for (var r = start + split; r < end; r += ${layout.splits}u) {
    let at = base + r * g.inner;
#if ${log}
    dx[at] = dy[at] - exp(y[at]) * dot_gy;
#else
    dx[at] = y[at] * (dy[at] - dot_gy);
#endif
  }
}`,
  };
}
