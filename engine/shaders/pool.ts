// 2-D max and average pooling over NHWC (channels-last) tensors, forward and backward.
//
// One lane per output element (forward) or per input element (backward), four channels per lane
// in vec4s when C % 4 == 0. A window's cells are clipped to the input, so padding is never read:
// max-pool ignores it and avg-pool divides by the cells inside (TensorFlow's "same" pooling).
// The backward is a gather: each input element visits the windows that cover it, so overlapping
// windows (stride < pool) sum without atomics and an element no window covers gets 0.
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, WG, wgsl } from "./common.ts";

export type PoolKind = "max" | "avg";

const POOL_UNIFORMS = uniformBlock({
  /** Lanes launched: output elements (forward) or input elements (backward), in vec units. */
  lanes: "u32",
  /** Workgroups along x (the grid is 2-D past 65535 groups). */
  gx: "u32",
  /** C, or C / 4 with vec4 lanes. */
  channels: "u32",
  in_h: "u32",
  in_w: "u32",
  out_h: "u32",
  out_w: "u32",
  /** (height, width) of the window. */
  pool: "vec2u",
  stride: "vec2u",
  /** Padding before the first row and column; "same" puts the odd cell after the last. */
  pad: "vec2u",
});
type PoolFields = typeof POOL_UNIFORMS.fields;

/** WGSL types of one lane: f32/i32, or vec4f/vec4i along four channels. */
function laneTypes(vec4: boolean): { T: string; I: string } {
  return vec4 ? { T: "vec4f", I: "vec4i" } : { T: "f32", I: "i32" };
}

/** WGSL: the window of output pixel `at` (oh, ow), clipped to the input: rows/cols [lo, hi). */
const WINDOW = /* wgsl */ `
fn window(at: vec2i) -> array<vec2i, 2> {
  let start = at * vec2i(u.stride) - vec2i(u.pad);
  let lo = max(start, vec2i(0));
  let hi = min(start + vec2i(u.pool), vec2i(i32(u.in_h), i32(u.in_w)));
  return array<vec2i, 2>(lo, hi);
}`;

/**
 * y = max or mean of each window. With `withIndex` (max-pool under autograd) it also writes the
 * position h·W + w of the first maximum in row-major window order, per channel, for backward.
 */
export function poolForwardKernel(
  kind: PoolKind,
  vec4: boolean,
  withIndex: boolean,
): KernelSpec<PoolFields> {
  const { T, I } = laneTypes(vec4);
  const isMax = kind === "max";
  const tracked = isMax && withIndex;
  return {
    name: "pool2d_fwd",
    key: `${kind}|${vec4 ? "v4" : "v1"}|${tracked}`,
    bindings: tracked ? ["read", "write", "write"] : ["read", "write"],
    uniforms: POOL_UNIFORMS,
    code: () =>
      wgsl`${POOL_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> x: array<${T}>;
@group(0) @binding(1) var<storage, read_write> y: array<${T}>;
#if ${tracked}
@group(0) @binding(2) var<storage, read_write> argmax: array<${I}>;
@group(0) @binding(3) var<uniform> u: U;
#else
@group(0) @binding(2) var<uniform> u: U;
#endif
${LINEAR_INDEX}
${WINDOW}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = linear_index(wid, lid, u.gx);
  if (o >= u.lanes) { return; }
  let c = o % u.channels;
  let pixel = o / u.channels;
  let ow = pixel % u.out_w;
  let row = pixel / u.out_w;
  let oh = row % u.out_h;
  let image = (row / u.out_h) * u.in_h;
  let bounds = window(vec2i(i32(oh), i32(ow)));
  let lo = vec2u(bounds[0]);
  let hi = vec2u(bounds[1]);
#if ${isMax}
  // Every window holds at least one input cell (padding never covers a whole window).
  var best = x[((image + lo.x) * u.in_w + lo.y) * u.channels + c];
  var at = ${I}(i32(lo.x * u.in_w + lo.y));
  for (var h = lo.x; h < hi.x; h++) {
    for (var w = lo.y; w < hi.y; w++) {
      let v = x[((image + h) * u.in_w + w) * u.channels + c];
      // Strict: a tie keeps the earlier cell, so the gradient goes to the first maximum.
      let better = v > best;
      best = select(best, v, better);
      at = select(at, ${I}(i32(h * u.in_w + w)), better);
    }
  }
  y[o] = best;
#if ${tracked}
  argmax[o] = at;
#endif
#else
  var total = ${T}(0.0);
  for (var h = lo.x; h < hi.x; h++) {
    for (var w = lo.y; w < hi.y; w++) {
      total += x[((image + h) * u.in_w + w) * u.channels + c];
    }
  }
  let cells = hi - lo;
  y[o] = total / f32(cells.x * cells.y);
#endif
}`,
  };
}

/**
 * dx of one input element: Σ over the windows covering it of g (max: only where the saved
 * argmax is this element; avg: g / the window's cell count).
 */
export function poolBackwardKernel(kind: PoolKind, vec4: boolean): KernelSpec<PoolFields> {
  const { T, I } = laneTypes(vec4);
  const isMax = kind === "max";
  return {
    name: "pool2d_bwd",
    key: `${kind}|${vec4 ? "v4" : "v1"}`,
    bindings: isMax ? ["read", "read", "write"] : ["read", "write"],
    uniforms: POOL_UNIFORMS,
    code: () =>
      wgsl`${POOL_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> g: array<${T}>;
#if ${isMax}
@group(0) @binding(1) var<storage, read> argmax: array<${I}>;
@group(0) @binding(2) var<storage, read_write> dx: array<${T}>;
@group(0) @binding(3) var<uniform> u: U;
#else
@group(0) @binding(1) var<storage, read_write> dx: array<${T}>;
@group(0) @binding(2) var<uniform> u: U;
#endif
${LINEAR_INDEX}
${WINDOW}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.lanes) { return; }
  let c = i % u.channels;
  let pixel = i / u.channels;
  let w = pixel % u.in_w;
  let row = pixel / u.in_w;
  let h = row % u.in_h;
  let n = row / u.in_h;
  // Window (oh, ow) covers (h, w) when oh·stride ≤ h + pad < oh·stride + pool.
  let reach = vec2i(vec2u(h, w) + u.pad);
  let stride = vec2i(u.stride);
  // ceil((reach − pool + 1) / stride), clamped at 0 (truncating division is fine there).
  let first = max((reach - vec2i(u.pool) + stride) / stride, vec2i(0));
  let last = min(reach / stride, vec2i(i32(u.out_h), i32(u.out_w)) - 1);
#if ${isMax}
  let me = ${I}(i32(h * u.in_w + w));
#endif
  var acc = ${T}(0.0);
  for (var oh = first.x; oh <= last.x; oh++) {
    for (var ow = first.y; ow <= last.y; ow++) {
      let o = ((n * u.out_h + u32(oh)) * u.out_w + u32(ow)) * u.channels + c;
#if ${isMax}
      acc += select(${T}(0.0), g[o], argmax[o] == me);
#else
      let bounds = window(vec2i(oh, ow));
      let cells = bounds[1] - bounds[0];
      acc += g[o] / f32(cells.x * cells.y);
#endif
    }
  }
  dx[i] = acc;
}`,
  };
}
