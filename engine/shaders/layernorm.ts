// Layer normalisation over the last axis of x viewed as [rows, C]. One invocation per row (a
// CPU adapter vectorises over rows; a row of C ≲ 1024 stays in cache between its passes).
// Forward: mean, then the variance around it (two passes: no E[x²] − E[x]² cancellation), then
// y; saves mean and 1/σ per row. Backward: invocation t computes dx of row t and dy·x̂ of its
// elements; dγ and dβ are column sums over the rows after it (a lane looping over every row
// would pass a CPU adapter's loop budget, and runs serially).
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, WG } from "./common.ts";

const UNIFORMS = uniformBlock({ rows: "u32", c: "u32", gx: "u32", eps: "f32" });

/** y = (x − mean)·rstd·γ + β; writes stats[2·row] = mean, stats[2·row + 1] = rstd. */
export const LAYER_NORM_FORWARD: KernelSpec<typeof UNIFORMS.fields> = {
  name: "layer_norm_fwd",
  key: "",
  bindings: ["read", "read", "read", "write", "write"],
  uniforms: UNIFORMS,
  code: () =>
    `${UNIFORMS.struct()}
${LINEAR_INDEX}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<uniform> u: U;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = linear_index(wid, lid, u.gx);
  if (r >= u.rows) { return; }
  let base = r * u.c;
  var total = 0.0;
  for (var i = 0u; i < u.c; i++) { total += x[base + i]; }
  let mean = total / f32(u.c);
  var squares = 0.0;
  for (var i = 0u; i < u.c; i++) { let d = x[base + i] - mean; squares += d * d; }
  let rstd = inverseSqrt(squares / f32(u.c) + u.eps);
  for (var i = 0u; i < u.c; i++) {
    y[base + i] = (x[base + i] - mean) * rstd * gamma[i] + beta[i];
  }
  stats[2u * r] = mean;
  stats[2u * r + 1u] = rstd;
}`,
};

/**
 * dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = dy·γ, per row, and dy·x̂ per element
 * (its column sums are dγ). One invocation per row.
 */
export const LAYER_NORM_BACKWARD: KernelSpec<typeof UNIFORMS.fields> = {
  name: "layer_norm_bwd",
  key: "",
  bindings: ["read", "read", "read", "read", "write", "write"],
  uniforms: UNIFORMS,
  code: () =>
    `${UNIFORMS.struct()}
${LINEAR_INDEX}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> dyxhat: array<f32>;
@group(0) @binding(6) var<uniform> u: U;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = linear_index(wid, lid, u.gx);
  if (t >= u.rows) { return; }
  let base = t * u.c;
  let mean = stats[2u * t];
  let rstd = stats[2u * t + 1u];
  var sum_g = 0.0;
  var sum_gx = 0.0;
  for (var i = 0u; i < u.c; i++) {
    let g = dy[base + i] * gamma[i];
    sum_g += g;
    sum_gx += g * (x[base + i] - mean) * rstd;
  }
  let a = sum_g / f32(u.c);
  let b = sum_gx / f32(u.c);
  for (var i = 0u; i < u.c; i++) {
    let xhat = (x[base + i] - mean) * rstd;
    dx[base + i] = rstd * (dy[base + i] * gamma[i] - a - xhat * b);
    dyxhat[base + i] = dy[base + i] * xhat;
  }
}`,
};
