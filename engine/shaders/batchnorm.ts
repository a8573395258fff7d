// Batch normalisation over x viewed as [outer, C, inner]: one kernel family for every rank.
// A workgroup owns TC channels × a chunk of rows (row = (o, k), M = outer·inner rows); its
// TR = 256 / TC threads share the chunk's rows. With inner = 1 (Keras channels-last) the TC
// lanes of a row read consecutive addresses, and with C a multiple of 4 each lane owns four
// channels (vec4 loads; the uniforms then count channel vectors, C / 4). Chunk statistics are
// combined per channel by the second kernel of each pass, so every pass is two dispatches with
// no atomics.
//
// Rows are either interleaved over the TR threads (a GPU's lockstep lanes then read neighbouring
// rows together) or blocked, each thread a contiguous run of them: a CPU adapter runs each SIMD
// vector of lanes through its whole loop before the next, and a vector that owns whole rows
// (C ≤ 32 with vec4 loads) then streams through memory instead of striding over it.
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { WG, wgsl } from "./common.ts";

/** How a kernel of the family spreads its work (the ops side picks it, see the file's head). */
export interface BatchNormLayout {
  /** Channels (or channel vectors) per workgroup, a power of two dividing WG. */
  tc: number;
  /** Four channels per lane (channels-last, C a multiple of 4). */
  vec4: boolean;
  /** Each thread a contiguous run of rows, not every TR-th row. */
  blocked: boolean;
}

/** Uniform block shared by the family. */
const BN_UNIFORMS = uniformBlock({
  channels: "u32",
  inner: "u32",
  rows: "u32",
  rows_per_chunk: "u32",
  chunks: "u32",
  momentum: "f32",
  eps: "f32",
  // Advancing a thread by step_rows rows (TR, or 1 when blocked): k += step_k,
  // index += step_index, plus wrap if k ≥ inner.
  step_rows: "u32",
  step_k: "u32",
  step_index: "u32",
  wrap: "u32",
});

type BatchNormKernel = KernelSpec<typeof BN_UNIFORMS.fields>;

function layoutKey({ tc, vec4, blocked }: BatchNormLayout): string {
  return `${tc}${vec4 ? "v" : ""}${blocked ? "b" : ""}`;
}

/** Uniforms, the element type V, shared memory, row cursors and the workgroup's tile. */
function prelude({ tc, vec4, blocked }: BatchNormLayout): string {
  return `
${BN_UNIFORMS.struct()}
alias V = ${vec4 ? "vec4f" : "f32"};
const TC = ${tc}u;
const TR = ${WG / tc}u;
var<workgroup> shared_a: array<V, ${WG}>;
var<workgroup> shared_b: array<V, ${WG}>;

struct Pair { a: V, b: V }

// A thread's position: row = o·inner + k, element index = (o·C + c)·inner + k. Rows advance
// (by TR, or by 1 when blocked: the uniforms say) with adds and one compare, no division.
struct Cursor { row: u32, k: u32, index: u32 }

fn first_row(t: Tile) -> Cursor {
  let row = t.first;
  let k = row % u.inner;
  return Cursor(row, k, (row / u.inner * u.channels + t.c) * u.inner + k);
}

fn next_row(p: ptr<function, Cursor>) {
  (*p).row += u.step_rows;
  (*p).k += u.step_k;
  (*p).index += u.step_index;
  if ((*p).k >= u.inner) {
    (*p).k -= u.inner;
    (*p).index += u.wrap;
  }
}

// Sums a and b over the TR threads of each channel; every thread gets its channel's totals.
fn sum_over_rows(a: V, b: V, lid: u32) -> Pair {
  shared_a[lid] = a;
  shared_b[lid] = b;
  workgroupBarrier();
  for (var s = TR / 2u; s > 0u; s >>= 1u) {
    if (lid < s * TC) {
      shared_a[lid] += shared_a[lid + s * TC];
      shared_b[lid] += shared_b[lid + s * TC];
    }
    workgroupBarrier();
  }
  let total = Pair(shared_a[lid % TC], shared_b[lid % TC]);
  workgroupBarrier();
  return total;
}

// The chunk's rows are [start, end); this thread visits first, first + step, … below last.
struct Tile { c: u32, live: bool, tr: u32, start: u32, end: u32, first: u32, last: u32 }

fn tile(wid: vec3u, lid: u32) -> Tile {
  let c = wid.x * TC + lid % TC;
  let tr = lid / TC;
  let start = wid.y * u.rows_per_chunk;
  let end = min(start + u.rows_per_chunk, u.rows);
${
    blocked
      ? `let run = (end - start + TR - 1u) / TR;
  let first = min(end, start + tr * run);
  let last = min(end, first + run);`
      : `let first = start + tr;
  let last = end;`
  }
  return Tile(c, c < u.channels, tr, start, end, first, last);
}`;
}

const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = tile(wid, lid);`;

/**
 * Pass 1 of training forward: two-pass (mean, then Σ(x − mean)²) statistics of each chunk,
 * written as partials [chunks, 3, C] (rows, mean, M2).
 */
export function batchNormStatsKernel(layout: BatchNormLayout): BatchNormKernel {
  return {
    name: "batchnorm_stats",
    key: layoutKey(layout),
    bindings: ["read", "write"],
    uniforms: BN_UNIFORMS,
    code: () => `
${prelude(layout)}
@group(0) @binding(0) var<storage, read> x: array<V>;
@group(0) @binding(1) var<storage, read_write> partials: array<V>;
@group(0) @binding(2) var<uniform> u: U;
${ENTRY}
  let n = f32(t.end - t.start);
  var s = V(0.0);
  if (t.live) {
    for (var p = first_row(t); p.row < t.last; next_row(&p)) { s += x[p.index]; }
  }
  let mean = sum_over_rows(s, V(0.0), lid).a / n;
  var q = V(0.0);
  if (t.live) {
    for (var p = first_row(t); p.row < t.last; next_row(&p)) {
      let d = x[p.index] - mean;
      q += d * d;
    }
  }
  let m2 = sum_over_rows(q, V(0.0), lid).a;
  if (t.live && t.tr == 0u) {
    let at = wid.y * 3u * u.channels + t.c;
    partials[at] = V(n);
    partials[at + u.channels] = mean;
    partials[at + 2u * u.channels] = m2;
  }
}`,
  };
}

/**
 * Normalise, scale and shift. Training: combine the chunk statistics (Chan et al.'s parallel
 * variance), normalise with the batch mean and biased variance, and let the first chunk's
 * workgroups store them (for backward) and update the moving statistics in place as Keras does.
 * Inference: read the moving statistics.
 */
export function batchNormApplyKernel(layout: BatchNormLayout, training: boolean): BatchNormKernel {
  const bindings: KernelSpec["bindings"] = training
    ? ["read", "read", "read", "read", "write", "write", "write", "write"]
    : ["read", "read", "read", "read", "read", "write"];
  return {
    name: training ? "batchnorm_apply_train" : "batchnorm_apply_eval",
    key: layoutKey(layout),
    bindings,
    uniforms: BN_UNIFORMS,
    code: () =>
      wgsl`
${prelude(layout)}
@group(0) @binding(0) var<storage, read> x: array<V>;
#if ${training}
@group(0) @binding(1) var<storage, read> partials: array<V>;
@group(0) @binding(2) var<storage, read> gamma: array<V>;
@group(0) @binding(3) var<storage, read> beta: array<V>;
@group(0) @binding(4) var<storage, read_write> y: array<V>;
@group(0) @binding(5) var<storage, read_write> batch_stats: array<V>;
@group(0) @binding(6) var<storage, read_write> moving_mean: array<V>;
@group(0) @binding(7) var<storage, read_write> moving_var: array<V>;
@group(0) @binding(8) var<uniform> u: U;

// Rows, mean and M2 of a set of rows; every channel of a chunk has the same row count.
struct Moments { n: f32, mean: V, m2: V }
var<workgroup> shared_n: array<f32, ${WG}>;

fn chan(a: Moments, b: Moments) -> Moments {
  if (a.n == 0.0) { return b; }
  if (b.n == 0.0) { return a; }
  let n = a.n + b.n;
  let d = b.mean - a.mean;
  let fb = b.n / n;
  return Moments(n, a.mean + d * fb, a.m2 + b.m2 + d * d * a.n * fb);
}
#else
@group(0) @binding(1) var<storage, read> mean_in: array<V>;
@group(0) @binding(2) var<storage, read> var_in: array<V>;
@group(0) @binding(3) var<storage, read> gamma: array<V>;
@group(0) @binding(4) var<storage, read> beta: array<V>;
@group(0) @binding(5) var<storage, read_write> y: array<V>;
@group(0) @binding(6) var<uniform> u: U;
#endif
${ENTRY}
#if ${training}
  var acc = Moments(0.0, V(0.0), V(0.0));
  if (t.live) {
    for (var j = t.tr; j < u.chunks; j += TR) {
      let at = j * 3u * u.channels + t.c;
      let n = partials[at];
      acc = chan(acc, Moments(${
        layout.vec4 ? "n.x" : "n"
      }, partials[at + u.channels], partials[at + 2u * u.channels]));
    }
  }
  shared_n[lid] = acc.n;
  shared_a[lid] = acc.mean;
  shared_b[lid] = acc.m2;
  workgroupBarrier();
  for (var s = TR / 2u; s > 0u; s >>= 1u) {
    if (lid < s * TC) {
      let o = lid + s * TC;
      let m = chan(Moments(shared_n[lid], shared_a[lid], shared_b[lid]), Moments(shared_n[o], shared_a[o], shared_b[o]));
      shared_n[lid] = m.n;
      shared_a[lid] = m.mean;
      shared_b[lid] = m.m2;
    }
    workgroupBarrier();
  }
  let head = lid % TC;
  let mean = shared_a[head];
  let variance = shared_b[head] / shared_n[head];
#else
  var mean = V(0.0);
  var variance = V(0.0);
  if (t.live) {
    mean = mean_in[t.c];
    variance = var_in[t.c];
  }
#endif
  if (!t.live) { return; }
  let scale = gamma[t.c] * inverseSqrt(variance + u.eps);
  let shift = beta[t.c];
  for (var p = first_row(t); p.row < t.last; next_row(&p)) {
    let i = p.index;
    y[i] = (x[i] - mean) * scale + shift;
  }
#if ${training}
  if (wid.y == 0u && t.tr == 0u) {
    batch_stats[t.c] = mean;
    batch_stats[u.channels + t.c] = variance;
    moving_mean[t.c] = moving_mean[t.c] * u.momentum + mean * (1.0 - u.momentum);
    moving_var[t.c] = moving_var[t.c] * u.momentum + variance * (1.0 - u.momentum);
  }
#endif
}`,
  };
}

/** Backward pass 1: per-chunk Σg and Σg·x̂, x̂ = (x − mean)/√(var + ε), as partials [chunks, 2, C]. */
export function batchNormGradStatsKernel(layout: BatchNormLayout): BatchNormKernel {
  return {
    name: "batchnorm_grad_stats",
    key: layoutKey(layout),
    bindings: ["read", "read", "read", "write"],
    uniforms: BN_UNIFORMS,
    code: () => `
${prelude(layout)}
@group(0) @binding(0) var<storage, read> x: array<V>;
@group(0) @binding(1) var<storage, read> g: array<V>;
@group(0) @binding(2) var<storage, read> stats: array<V>;
@group(0) @binding(3) var<storage, read_write> partials: array<V>;
@group(0) @binding(4) var<uniform> u: U;
${ENTRY}
  var sum_g = V(0.0);
  var sum_gx = V(0.0);
  if (t.live) {
    let mean = stats[t.c];
    let inv_std = inverseSqrt(stats[u.channels + t.c] + u.eps);
    for (var p = first_row(t); p.row < t.last; next_row(&p)) {
      let i = p.index;
      let gi = g[i];
      sum_g += gi;
      sum_gx += gi * (x[i] - mean) * inv_std;
    }
  }
  let total = sum_over_rows(sum_g, sum_gx, lid);
  if (t.live && t.tr == 0u) {
    let at = wid.y * 2u * u.channels + t.c;
    partials[at] = total.a;
    partials[at + u.channels] = total.b;
  }
}`,
  };
}

/**
 * Backward pass 2: dβ = Σg, dγ = Σg·x̂ (written by the first chunk's workgroups) and
 * dx = γ/σ · (g − (dβ + x̂·dγ)/M) in training, dx = γ/σ · g in inference (an affine map).
 */
export function batchNormGradApplyKernel(
  layout: BatchNormLayout,
  training: boolean,
): BatchNormKernel {
  return {
    name: training ? "batchnorm_grad_apply_train" : "batchnorm_grad_apply_eval",
    key: layoutKey(layout),
    bindings: ["read", "read", "read", "read", "read", "write", "write", "write"],
    uniforms: BN_UNIFORMS,
    code: () =>
      wgsl`
${prelude(layout)}
@group(0) @binding(0) var<storage, read> x: array<V>;
@group(0) @binding(1) var<storage, read> g: array<V>;
@group(0) @binding(2) var<storage, read> stats: array<V>;
@group(0) @binding(3) var<storage, read> gamma: array<V>;
@group(0) @binding(4) var<storage, read> partials: array<V>;
@group(0) @binding(5) var<storage, read_write> dx: array<V>;
@group(0) @binding(6) var<storage, read_write> dgamma: array<V>;
@group(0) @binding(7) var<storage, read_write> dbeta: array<V>;
@group(0) @binding(8) var<uniform> u: U;
${ENTRY}
  var sum_g = V(0.0);
  var sum_gx = V(0.0);
  if (t.live) {
    for (var j = t.tr; j < u.chunks; j += TR) {
      let at = j * 2u * u.channels + t.c;
      sum_g += partials[at];
      sum_gx += partials[at + u.channels];
    }
  }
  let sums = sum_over_rows(sum_g, sum_gx, lid);
  if (!t.live) { return; }
  let mean = stats[t.c];
  let inv_std = inverseSqrt(stats[u.channels + t.c] + u.eps);
  let k = gamma[t.c] * inv_std;
  let m = f32(u.rows);
  for (var p = first_row(t); p.row < t.last; next_row(&p)) {
    let i = p.index;
#if ${training}
    let x_hat = (x[i] - mean) * inv_std;
    dx[i] = k * (g[i] - (sums.a + x_hat * sums.b) / m);
#else
    dx[i] = k * g[i];
#endif
  }
  if (wid.y == 0u && t.tr == 0u) {
    dbeta[t.c] = sums.a;
    dgamma[t.c] = sums.b;
  }
}`,
  };
}
