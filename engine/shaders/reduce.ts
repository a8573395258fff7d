// Reductions over the middle axis of a tensor viewed as [outer, reduce, inner], softmax and
// log-softmax along such an axis, and their backward kernels.
//
// Every kernel launches 256-lane workgroups laid out as `cols` outputs × `splits` lanes that
// share one output's reduced axis (cols · splits = 256): many short rows run one lane per
// output, long rows spread over up to 256 lanes that combine in shared memory (the first lane
// folds in up to 16 others itself; more go through a tree).
// When inner = 1 the lanes of one output are adjacent (consecutive lanes read consecutive
// addresses of the row); otherwise lanes of neighbouring outputs are (consecutive columns).
//
// Loads are vec4 wherever the contiguous axis allows: a CPU adapter pays per load instruction
// (lavapipe: scalar loads reached a third of the copy bandwidth that vec4 loads reach), and a GPU
// moves 16 bytes per lane. `along`: rows of a multiple of 4 (inner = 1), each lane folds its
// four columns into one value; `across`: inner a multiple of 4, each lane reduces four adjacent
// outputs at once. The geometry then counts vec4s: reduce / 4 (along) or inner / 4 (across).
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, range, WG, wgsl } from "./common.ts";

/** How a reduction is spread over one workgroup. */
export interface LaneLayout {
  /** Outputs per workgroup. */
  cols: number;
  /** Lanes per output (a power of two); cols · splits = 256. */
  splits: number;
  /** inner = 1: lanes of one output are adjacent. */
  rowLanes: boolean;
  /** How elements are packed into vec4 loads (see the file's head). */
  vec4: Vec4Packing;
  /**
   * Lanes of one output that step through its axis together, `interleave` positions apart; each
   * group of them takes one contiguous block of the axis. `splits` interleaves all of them (a
   * GPU's lanes run in lockstep); a CPU adapter runs each SIMD vector of lanes through its whole
   * loop before the next, so its vectors get blocks of their own and stream through memory.
   */
  interleave: number;
}

export type Vec4Packing = "none" | "along" | "across";

/**
 * WGSL types and folds for a packing: E is what one load gives, O what one lane's share of an
 * output is (and what y holds per slot); fold_sum / fold_max turn an E into an O.
 */
export function packing(vec4: Vec4Packing): string {
  const [e, o] = vec4 === "none" ? ["f32", "f32"] : vec4 === "along" ? ["vec4f", "f32"] : [
    "vec4f",
    "vec4f",
  ];
  const along = vec4 === "along";
  return `alias E = ${e};
alias O = ${o};
fn fold_sum(e: E) -> O { return ${along ? "(e.x + e.y) + (e.z + e.w)" : "e"}; }
fn fold_max(e: E) -> O { return ${along ? "max(max(e.x, e.y), max(e.z, e.w))" : "e"}; }`;
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
 * axis), `start`/`end`, the positions along it this output covers, and `first`/`last`, the part
 * this lane visits (every `interleave`-th position from `first`).
 */
function prelude(layout: LaneLayout): string {
  const { cols, splits, rowLanes, interleave } = layout;
  const groups = splits / interleave;
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
  let end = min(g.reduce, start + g.chunk);
  let block = ((end - start + ${groups - 1}u) / ${groups}u + ${
    interleave - 1
  }u) / ${interleave}u * ${interleave}u;
  let first = start + split / ${interleave}u * block + split % ${interleave}u;
  let last = min(end, start + (split / ${interleave}u + 1u) * block);`;
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
  const { cols, splits, rowLanes, vec4, interleave } = layout;
  return `${cols}x${splits}${rowLanes ? "r" : "c"}${vec4}/${interleave}`;
}

export type ReduceKind = "sum" | "max";

/**
 * y[p] = scale · Σ (or max) over the reduced axis. With `withIndex` the max kernel also writes
 * the first position of the maximum into `index` (i32), for argmax and max's backward; that
 * kernel loads scalars (positions are per element).
 */
export function reduceKernel(
  kind: ReduceKind,
  layout: LaneLayout,
  withIndex: boolean,
): KernelSpec<Geometry> {
  const isMax = kind === "max";
  const tracked = isMax && withIndex;
  if (tracked && layout.vec4 !== "none") {
    throw new Error("reduceKernel: the argmax-tracking max loads scalars (vec4 'none')");
  }
  const { head } = slots(layout);
  return {
    name: "reduce",
    key: `${kind}|${layoutKey(layout)}|${tracked}`,
    bindings: tracked ? ["read", "write", "write"] : ["read", "write"],
    uniforms: GEOMETRY,
    code: () =>
      wgsl`${GEOMETRY.struct("G")}
${packing(layout.vec4)}
@group(0) @binding(0) var<storage, read> x: array<E>;
@group(0) @binding(1) var<storage, read_write> y: array<O>;
#if ${tracked}
@group(0) @binding(2) var<storage, read_write> index: array<i32>;
@group(0) @binding(3) var<uniform> g: G;
var<workgroup> best_at: array<u32, ${WG}>;
#else
@group(0) @binding(2) var<uniform> g: G;
#endif
var<workgroup> acc: array<O, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${prelude(layout)}
#if ${tracked}
  var best = g.neg_inf;
  var at = 0xffffffffu;  // no element seen yet: the first one always wins
  if (live) {
    for (var r = first; r < last; r += ${layout.interleave}u) {
      let v = x[base + r * g.inner];
      if (v > best || at == 0xffffffffu) { best = v; at = r; }
    }
  }
  acc[lid] = best;
  best_at[lid] = at;
  ${
        combineLanes(
          layout,
          (a, b) =>
            `let va = acc[${a}]; let vb = acc[${b}]; let ia = best_at[${a}]; let ib = best_at[${b}];
      // Ties (and lanes that saw nothing) go to the lower position: argmax returns the first.
      if (ib != 0xffffffffu && (ia == 0xffffffffu || vb > va || (vb == va && ib < ia))) {
        acc[${a}] = vb; best_at[${a}] = ib;
      }`,
          false,
        )
      }
  if (live && split == 0u) {
    y[p] = acc[${head}];
    index[p] = i32(best_at[${head}]);
  }
#elif ${isMax}
  var best = E(g.neg_inf);
  if (live) {
    for (var r = first; r < last; r += ${layout.interleave}u) { best = max(best, x[base + r * g.inner]); }
  }
  acc[lid] = fold_max(best);
  ${combineLanes(layout, (a, b) => `acc[${a}] = max(acc[${a}], acc[${b}]);`, false)}
  if (live && split == 0u) { y[p] = acc[${head}]; }
#else
  var total = E(0.0);
  if (live) {
    for (var r = first; r < last; r += ${layout.interleave}u) { total += x[base + r * g.inner]; }
  }
  acc[lid] = fold_sum(total);
  ${combineLanes(layout, (a, b) => `acc[${a}] += acc[${b}];`, false)}
  if (live && split == 0u) { y[p] = acc[${head}] * g.scale; }
#endif
}`,
  };
}

/** Lanes per workgroup of the strip kernel (no shared memory: its lanes are independent). */
export const STRIP_WG = 64;

/**
 * Sum or max over the middle axis of a pass whose inner axis is wide (reductions over the batch
 * on a CPU adapter), in vec4s of four adjacent outputs. A lane owns `accumulators` vec4 of
 * outputs spaced `simd` apart, so one SIMD vector's lanes read `simd · accumulators` adjacent
 * vec4 of each row and walk the rows of one chunk in order: the vector streams through memory
 * instead of reading 32 bytes of each row a page apart. Lanes are laid out as
 * [outer, chunks, strips, simd] with strips = ⌈inner / (simd · accumulators)⌉.
 */
export function stripReduceKernel(
  kind: ReduceKind,
  accumulators: number,
  simd: number,
): KernelSpec<Geometry> {
  const isMax = kind === "max";
  const slots = range(accumulators);
  const width = simd * accumulators;
  return {
    name: "reduce_strips",
    key: `${kind}|${accumulators}|${simd}`,
    bindings: ["read", "write"],
    uniforms: GEOMETRY,
    code: () =>
      wgsl`${GEOMETRY.struct("G")}
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(2) var<uniform> g: G;

@compute @workgroup_size(${STRIP_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let lane = (wid.y * g.gx + wid.x) * ${STRIP_WG}u + lid;
  let strips = (g.inner + ${width - 1}u) / ${width}u;
  let slice = lane / (${simd}u * strips);  // (outer, chunk)
  if (slice >= g.outputs / g.inner) { return; }
  let o = slice / g.chunks;
  let start = (slice - o * g.chunks) * g.chunk;
  let end = min(g.reduce, start + g.chunk);
  let col = (lane / ${simd}u - slice * strips) * ${width}u + lane % ${simd}u;
  ${slots.map((i) => `let in${i} = col + ${i * simd}u < g.inner;`).join("\n  ")}
  ${slots.map((i) => `var a${i} = vec4f(${isMax ? "g.neg_inf" : "0.0"});`).join("\n  ")}
  for (var r = start; r < end; r++) {
    let at = (o * g.reduce + r) * g.inner + col;
    ${
        slots.map((i) =>
          `if (in${i}) { a${i} = ${
            isMax ? `max(a${i}, x[at + ${i * simd}u])` : `a${i} + x[at + ${i * simd}u]`
          }; }`
        ).join("\n    ")
      }
  }
  let out = slice * g.inner + col;
  ${
        slots.map((i) =>
          `if (in${i}) { y[out + ${i * simd}u] = a${i}${isMax ? "" : " * g.scale"}; }`
        )
          .join("\n  ")
      }
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

function requireRowPacking(kernel: string, layout: LaneLayout): void {
  if (layout.vec4 === "across") {
    throw new Error(
      `${kernel}: vec4 packing 'across' outputs is not supported (use 'along' or 'none')`,
    );
  }
}

/** Positions an online pass reads between two rescales of its running sum. */
const ONLINE_CHUNK = 4;

/**
 * WGSL: one lane's max and Σ exp over the positions start ≤ r < end of a row, in a single online
 * pass, per component of E. It declares `run_max` and `run_sum`: the row's max is
 * fold_max(run_max) and its Σ exp(x − max) is fold_sum(run_sum · exp(run_max − max)). It reads ONLINE_CHUNK positions per
 * rescale of the running sum, so a position costs one exp, not two (8–15 % faster on lavapipe;
 * rescaling only when a max moves, behind a branch, measured slower than the second exp). Until a
 * component has seen a finite value, its max is −∞ and its sum 0; the exponents then shift by 0,
 * not by −∞ (−∞ − −∞ would be NaN).
 */
export function onlineMaxSum(
  load: (position: string) => string,
  start: string,
  end: string,
  negInf: string,
): string {
  const v = range(ONLINE_CHUNK).map((c) => `v${c}`);
  return `var run_max = E(${negInf});
  var run_sum = E(0.0);
  var r = ${start};
  for (; r + ${ONLINE_CHUNK}u <= ${end}; r += ${ONLINE_CHUNK}u) {
    ${v.map((name, c) => `let ${name} = ${load(`r + ${c}u`)};`).join("\n    ")}
    let next = max(run_max, ${v.reduce((a, b) => `max(${a}, ${b})`)});
    let shift = select(next, E(0.0), next == E(${negInf}));
    run_sum = run_sum * exp(run_max - shift) + ${
    v.map((name) => `exp(${name} - shift)`).join(" + ")
  };
    run_max = next;
  }
  for (; r < ${end}; r += 1u) {
    let v = ${load("r")};
    let next = max(run_max, v);
    let shift = select(next, E(0.0), next == E(${negInf}));
    run_sum = run_sum * exp(run_max - shift) + exp(v - shift);
    run_max = next;
  }`;
}

/**
 * Softmax (or log-softmax) along the middle axis: max, then Σ exp(x − max), then the output,
 * each pass re-reading the row (it stays in cache). Recomputing exp in the last pass is cheaper
 * than storing it and reading it back. A row that is all −∞ gives NaN, as in PyTorch.
 */
export function softmaxKernel(log: boolean, layout: LaneLayout): KernelSpec<Geometry> {
  requireRowPacking("softmaxKernel", layout);
  const { head } = slots(layout);
  return {
    name: "softmax",
    key: `${log}|${layoutKey(layout)}`,
    bindings: ["read", "write"],
    uniforms: GEOMETRY,
    code: () =>
      wgsl`${GEOMETRY.struct("G")}
${packing(layout.vec4)}
@group(0) @binding(0) var<storage, read> x: array<E>;
@group(0) @binding(1) var<storage, read_write> y: array<E>;
@group(0) @binding(2) var<uniform> g: G;
var<workgroup> row_max: array<f32, ${WG}>;
var<workgroup> row_sum: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${prelude(layout)}
#if ${layout.splits === 1}
  // One lane per row: max and Σ exp in one online pass (one read of the row saved).
  if (!live) { return; }
  ${onlineMaxSum((r) => `x[base + (${r}) * g.inner]`, "start", "end", "g.neg_inf")}
  let m = fold_max(run_max);
  // Components merge at the row's max; an all −∞ row makes exp(−∞ − −∞) = NaN, as documented.
  row_sum[lid] = fold_sum(run_sum * exp(run_max - m));
  let head_slot = lid;
#else
  var ms = E(g.neg_inf);
  if (live) {
    for (var r = first; r < last; r += ${layout.interleave}u) { ms = max(ms, x[base + r * g.inner]); }
  }
  row_max[lid] = fold_max(ms);
  ${combineLanes(layout, (a, b) => `row_max[${a}] = max(row_max[${a}], row_max[${b}]);`, true)}
  let m = row_max[${head}];
  var sums = E(0.0);
  if (live) {
    for (var r = first; r < last; r += ${layout.interleave}u) {
      sums += exp(x[base + r * g.inner] - m);
    }
  }
  row_sum[lid] = fold_sum(sums);
  ${combineLanes(layout, (a, b) => `row_sum[${a}] += row_sum[${b}];`, true)}
  if (!live) { return; }
  let head_slot = ${head};
#endif
#if ${log}
  // (x − m) − log Σ: adding log Σ to m first would round it at the scale of m.
  let log_sum = log(row_sum[head_slot]);
  for (var r = first; r < last; r += ${layout.interleave}u) {
    let at = base + r * g.inner;
    y[at] = (x[at] - m) - log_sum;
  }
#else
  let inv = 1.0 / row_sum[head_slot];
  for (var r = first; r < last; r += ${layout.interleave}u) {
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
  requireRowPacking("softmaxBackwardKernel", layout);
  const { head } = slots(layout);
  return {
    name: "softmax_bwd",
    key: `${log}|${layoutKey(layout)}`,
    bindings: ["read", "read", "write"],
    uniforms: GEOMETRY,
    code: () =>
      wgsl`${GEOMETRY.struct("G")}
${packing(layout.vec4)}
@group(0) @binding(0) var<storage, read> y: array<E>;
@group(0) @binding(1) var<storage, read> dy: array<E>;
@group(0) @binding(2) var<storage, read_write> dx: array<E>;
@group(0) @binding(3) var<uniform> g: G;
var<workgroup> acc: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${prelude(layout)}
  var total = E(0.0);
  if (live) {
    for (var r = first; r < last; r += ${layout.interleave}u) {
      let at = base + r * g.inner;
#if ${log}
      total += dy[at];
#else
      total += dy[at] * y[at];
#endif
    }
  }
  acc[lid] = fold_sum(total);
  ${combineLanes(layout, (a, b) => `acc[${a}] += acc[${b}];`, true)}
  if (!live) { return; }
  let dot_gy = acc[${head}];
  for (var r = first; r < last; r += ${layout.interleave}u) {
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
