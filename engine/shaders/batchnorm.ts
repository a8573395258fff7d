// Batch normalisation over x viewed as [outer, C, inner]: one kernel family for every rank.
// A workgroup owns TC channels × a chunk of rows (row = (o, k), M = outer·inner rows); its
// TR = 256 / TC threads stride over the chunk's rows. With inner = 1 (Keras channels-last) the
// TC lanes of a row read consecutive addresses. Chunk statistics are combined per channel by the
// second kernel of each pass, so every pass is two dispatches with no atomics.
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { WG, wgsl } from "./common.ts";

/** Uniform block shared by the family. */
const BN_UNIFORMS = uniformBlock({
  channels: "u32",
  inner: "u32",
  rows: "u32",
  rows_per_chunk: "u32",
  chunks: "u32",
  momentum: "f32",
  eps: "f32",
  // Advancing a thread by TR rows: k += step_k, index += step_index, plus wrap if k ≥ inner.
  step_k: "u32",
  step_index: "u32",
  wrap: "u32",
});

type BatchNormKernel = KernelSpec<typeof BN_UNIFORMS.fields>;

/** `tc`: channels per workgroup, a power of two dividing WG. */
function prelude(tc: number): string {
  return `
${BN_UNIFORMS.struct()}
const TC = ${tc}u;
const TR = ${WG / tc}u;
var<workgroup> shared_sum: array<vec2f, ${WG}>;

// A thread's position: row = o·inner + k, element index = (o·C + c)·inner + k. Rows advance by
// TR with adds and one compare (no per-element division).
struct Cursor { row: u32, k: u32, index: u32 }

fn first_row(t: Tile) -> Cursor {
  let row = t.start + t.tr;
  let k = row % u.inner;
  return Cursor(row, k, (row / u.inner * u.channels + t.c) * u.inner + k);
}

fn next_row(p: ptr<function, Cursor>) {
  (*p).row += TR;
  (*p).k += u.step_k;
  (*p).index += u.step_index;
  if ((*p).k >= u.inner) {
    (*p).k -= u.inner;
    (*p).index += u.wrap;
  }
}

// Sums v over the TR threads of each channel; every thread gets its channel's total.
fn sum_over_rows(v: vec2f, lid: u32) -> vec2f {
  shared_sum[lid] = v;
  workgroupBarrier();
  for (var s = TR / 2u; s > 0u; s >>= 1u) {
    if (lid < s * TC) { shared_sum[lid] += shared_sum[lid + s * TC]; }
    workgroupBarrier();
  }
  let total = shared_sum[lid % TC];
  workgroupBarrier();
  return total;
}

struct Tile { c: u32, live: bool, tr: u32, start: u32, end: u32 }

fn tile(wid: vec3u, lid: u32) -> Tile {
  let c = wid.x * TC + lid % TC;
  let start = wid.y * u.rows_per_chunk;
  return Tile(c, c < u.channels, lid / TC, start, min(start + u.rows_per_chunk, u.rows));
}`;
}

const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = tile(wid, lid);`;

/** Pass 1 of training forward: two-pass (mean, then Σ(x − mean)²) statistics of each chunk. */
export function batchNormStatsKernel(tc: number): BatchNormKernel {
  return {
    name: "batchnorm_stats",
    key: String(tc),
    bindings: ["read", "write"],
    uniforms: BN_UNIFORMS,
    code: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<vec4f>;
@group(0) @binding(2) var<uniform> u: U;
${prelude(tc)}
${ENTRY}
  let n = f32(t.end - t.start);
  var s = 0.0;
  if (t.live) {
    for (var p = first_row(t); p.row < t.end; next_row(&p)) { s += x[p.index]; }
  }
  let mean = sum_over_rows(vec2f(s, 0.0), lid).x / n;
  var q = 0.0;
  if (t.live) {
    for (var p = first_row(t); p.row < t.end; next_row(&p)) {
      let d = x[p.index] - mean;
      q += d * d;
    }
  }
  let m2 = sum_over_rows(vec2f(q, 0.0), lid).x;
  if (t.live && t.tr == 0u) { partials[wid.y * u.channels + t.c] = vec4f(n, mean, m2, 0.0); }
}`,
  };
}

/**
 * Normalise, scale and shift. Training: combine the chunk statistics (Chan et al.'s parallel
 * variance), normalise with the batch mean and biased variance, and let the first chunk's
 * workgroups store them (for backward) and update the moving statistics in place as Keras does.
 * Inference: read the moving statistics.
 */
export function batchNormApplyKernel(tc: number, training: boolean): BatchNormKernel {
  const bindings: KernelSpec["bindings"] = training
    ? ["read", "read", "read", "read", "write", "write", "write", "write"]
    : ["read", "read", "read", "read", "read", "write"];
  return {
    name: training ? "batchnorm_apply_train" : "batchnorm_apply_eval",
    key: String(tc),
    bindings,
    uniforms: BN_UNIFORMS,
    code: () =>
      wgsl`
@group(0) @binding(0) var<storage, read> x: array<f32>;
#if ${training}
@group(0) @binding(1) var<storage, read> partials: array<vec4f>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> batch_stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> moving_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> moving_var: array<f32>;
@group(0) @binding(8) var<uniform> u: U;
var<workgroup> shared_stats: array<vec4f, ${WG}>;

fn chan(a: vec3f, b: vec3f) -> vec3f {
  if (a.x == 0.0) { return b; }
  if (b.x == 0.0) { return a; }
  let n = a.x + b.x;
  let d = b.y - a.y;
  let fb = b.x / n;
  return vec3f(n, a.y + d * fb, a.z + b.z + d * d * a.x * fb);
}
#else
@group(0) @binding(1) var<storage, read> mean_in: array<f32>;
@group(0) @binding(2) var<storage, read> var_in: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> u: U;
#endif
${prelude(tc)}
${ENTRY}
#if ${training}
  var acc = vec3f(0.0);
  if (t.live) {
    for (var j = t.tr; j < u.chunks; j += TR) { acc = chan(acc, partials[j * u.channels + t.c].xyz); }
  }
  shared_stats[lid] = vec4f(acc, 0.0);
  workgroupBarrier();
  for (var s = TR / 2u; s > 0u; s >>= 1u) {
    if (lid < s * TC) {
      shared_stats[lid] = vec4f(chan(shared_stats[lid].xyz, shared_stats[lid + s * TC].xyz), 0.0);
    }
    workgroupBarrier();
  }
  let stats = shared_stats[lid % TC];
  let mean = stats.y;
  let variance = stats.z / stats.x;
#else
  var mean = 0.0;
  var variance = 0.0;
  if (t.live) {
    mean = mean_in[t.c];
    variance = var_in[t.c];
  }
#endif
  if (!t.live) { return; }
  let scale = gamma[t.c] * inverseSqrt(variance + u.eps);
  let shift = beta[t.c];
  for (var p = first_row(t); p.row < t.end; next_row(&p)) {
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

/** Backward pass 1: per-chunk Σg and Σg·x̂, x̂ = (x − mean)/√(var + ε). */
export function batchNormGradStatsKernel(tc: number): BatchNormKernel {
  return {
    name: "batchnorm_grad_stats",
    key: String(tc),
    bindings: ["read", "read", "read", "write"],
    uniforms: BN_UNIFORMS,
    code: () => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec2f>;
@group(0) @binding(4) var<uniform> u: U;
${prelude(tc)}
${ENTRY}
  var acc = vec2f(0.0);
  if (t.live) {
    let mean = stats[t.c];
    let inv_std = inverseSqrt(stats[u.channels + t.c] + u.eps);
    for (var p = first_row(t); p.row < t.end; next_row(&p)) {
      let i = p.index;
      acc += g[i] * vec2f(1.0, (x[i] - mean) * inv_std);
    }
  }
  let total = sum_over_rows(acc, lid);
  if (t.live && t.tr == 0u) { partials[wid.y * u.channels + t.c] = total; }
}`,
  };
}

/**
 * Backward pass 2: dβ = Σg, dγ = Σg·x̂ (written by the first chunk's workgroups) and
 * dx = γ/σ · (g − (dβ + x̂·dγ)/M) in training, dx = γ/σ · g in inference (an affine map).
 */
export function batchNormGradApplyKernel(tc: number, training: boolean): BatchNormKernel {
  return {
    name: training ? "batchnorm_grad_apply_train" : "batchnorm_grad_apply_eval",
    key: String(tc),
    bindings: ["read", "read", "read", "read", "read", "write", "write", "write"],
    uniforms: BN_UNIFORMS,
    code: () =>
      wgsl`
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> partials: array<vec2f>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(7) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(8) var<uniform> u: U;
${prelude(tc)}
${ENTRY}
  var acc = vec2f(0.0);
  if (t.live) {
    for (var j = t.tr; j < u.chunks; j += TR) { acc += partials[j * u.channels + t.c]; }
  }
  let sums = sum_over_rows(acc, lid);
  if (!t.live) { return; }
  let mean = stats[t.c];
  let inv_std = inverseSqrt(stats[u.channels + t.c] + u.eps);
  let k = gamma[t.c] * inv_std;
  let m = f32(u.rows);
  for (var p = first_row(t); p.row < t.end; next_row(&p)) {
    let i = p.index;
#if ${training}
    let x_hat = (x[i] - mean) * inv_std;
    dx[i] = k * (g[i] - (sums.x + x_hat * sums.y) / m);
#else
    dx[i] = k * g[i];
#endif
  }
  if (wid.y == 0u && t.tr == 0u) {
    dbeta[t.c] = sums.x;
    dgamma[t.c] = sums.y;
  }
}`,
  };
}
