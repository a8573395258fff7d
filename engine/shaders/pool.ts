// Max and average pooling over channels-last tensors, forward and backward. Windows span
// (depth, height, width); 2-D pooling runs with depth 1, so one kernel pair serves NHWC and NDHWC.
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
  /** (depth, height, width) of one input volume; depth 1 for 2-D pooling. */
  in_size: "vec3u",
  out_size: "vec3u",
  /** (depth, height, width) of the window. */
  pool: "vec3u",
  stride: "vec3u",
  /** Padding before the first cell of each axis; "same" puts the odd cell after the last. */
  pad: "vec3u",
});
type PoolFields = typeof POOL_UNIFORMS.fields;

/** WGSL types of one lane: f32/i32, or vec4f/vec4i along four channels. */
function laneTypes(vec4: boolean): { T: string; I: string } {
  return vec4 ? { T: "vec4f", I: "vec4i" } : { T: "f32", I: "i32" };
}

/**
 * WGSL: the window of output cell `at` (od, oh, ow), clipped to the input: cells [lo, hi) per
 * axis; and `cell`, the row-major position of (d, h, w) inside one input volume.
 */
const WINDOW = /* wgsl */ `
fn window(at: vec3i) -> array<vec3i, 2> {
  let start = at * vec3i(u.stride) - vec3i(u.pad);
  let lo = max(start, vec3i(0));
  let hi = min(start + vec3i(u.pool), vec3i(u.in_size));
  return array<vec3i, 2>(lo, hi);
}

fn cell(d: u32, h: u32, w: u32) -> u32 {
  return (d * u.in_size.y + h) * u.in_size.z + w;
}`;

/**
 * y = max or mean of each window. With `withIndex` (max-pool under autograd) it also writes the
 * cell (d·H + h)·W + w of the first maximum in row-major window order, per channel, for backward.
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
    name: "pool_fwd",
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
  let ow = pixel % u.out_size.z;
  let row = pixel / u.out_size.z;
  let oh = row % u.out_size.y;
  let slice = row / u.out_size.y;
  let od = slice % u.out_size.x;
  let volume = (slice / u.out_size.x) * u.in_size.x * u.in_size.y * u.in_size.z;
  let bounds = window(vec3i(i32(od), i32(oh), i32(ow)));
  let lo = vec3u(bounds[0]);
  let hi = vec3u(bounds[1]);
#if ${isMax}
  // Every window holds at least one input cell (padding never covers a whole window).
  var best = x[(volume + cell(lo.x, lo.y, lo.z)) * u.channels + c];
  var at = ${I}(i32(cell(lo.x, lo.y, lo.z)));
  for (var d = lo.x; d < hi.x; d++) {
    for (var h = lo.y; h < hi.y; h++) {
      for (var w = lo.z; w < hi.z; w++) {
        let v = x[(volume + cell(d, h, w)) * u.channels + c];
        // Strict: a tie keeps the earlier cell, so the gradient goes to the first maximum.
        let better = v > best;
        best = select(best, v, better);
        at = select(at, ${I}(i32(cell(d, h, w))), better);
      }
    }
  }
  y[o] = best;
#if ${tracked}
  argmax[o] = at;
#endif
#else
  var total = ${T}(0.0);
  for (var d = lo.x; d < hi.x; d++) {
    for (var h = lo.y; h < hi.y; h++) {
      for (var w = lo.z; w < hi.z; w++) {
        total += x[(volume + cell(d, h, w)) * u.channels + c];
      }
    }
  }
  let cells = hi - lo;
  y[o] = total / f32(cells.x * cells.y * cells.z);
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
    name: "pool_bwd",
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
  let w = pixel % u.in_size.z;
  let row = pixel / u.in_size.z;
  let h = row % u.in_size.y;
  let slice = row / u.in_size.y;
  let d = slice % u.in_size.x;
  let n = slice / u.in_size.x;
  // Window (od, oh, ow) covers (d, h, w) when o·stride ≤ cell + pad < o·stride + pool per axis.
  let reach = vec3i(vec3u(d, h, w) + u.pad);
  let stride = vec3i(u.stride);
  // ceil((reach − pool + 1) / stride), clamped at 0 (truncating division is fine there).
  let first = max((reach - vec3i(u.pool) + stride) / stride, vec3i(0));
  let last = min(reach / stride, vec3i(u.out_size) - 1);
#if ${isMax}
  let me = ${I}(i32(cell(d, h, w)));
#endif
  var acc = ${T}(0.0);
  for (var od = first.x; od <= last.x; od++) {
    for (var oh = first.y; oh <= last.y; oh++) {
      for (var ow = first.z; ow <= last.z; ow++) {
        let out_cell = ((n * u.out_size.x + u32(od)) * u.out_size.y + u32(oh)) * u.out_size.z +
          u32(ow);
        let o = out_cell * u.channels + c;
#if ${isMax}
        acc += select(${T}(0.0), g[o], argmax[o] == me);
#else
        let bounds = window(vec3i(od, oh, ow));
        let cells = bounds[1] - bounds[0];
        acc += g[o] / f32(cells.x * cells.y * cells.z);
#endif
      }
    }
  }
  dx[i] = acc;
}`,
  };
}
