// Optimizer kernels: one fused in-place update per parameter (weight, gradient and every state
// slot in one pass), and the three passes of global-norm gradient clipping. Everything works on
// vec4s: pool buffers are 256-byte multiples, so a tensor's last vec4 always lies inside its
// buffer; lanes past the logical size are computed but never written back.
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, WG, wgsl } from "./common.ts";

const LIVE_LANES = /* wgsl */ `
fn live_lanes(i: u32, n: u32) -> vec4<bool> {
  return vec4u(i * 4u) + vec4u(0u, 1u, 2u, 3u) < vec4u(n);
}`;

/** An update kernel's uniform block: n, gx, decay, then the rule's own f32 fields. */
export type UpdateFields = { n: "u32"; gx: "u32"; decay: "f32" } & Record<string, "u32" | "f32">;

/** An update rule; `K` names its f32 uniform fields. */
export interface UpdateKernel<K extends string = string> {
  /** Kernel family, e.g. "adam_update". */
  name: string;
  key: string;
  /** State tensors, read and written in place, bound after the weight and the gradient. */
  slots: readonly string[];
  /** f32 uniform fields after n, gx and decay. */
  fields: readonly K[];
  /** Decoupled weight decay `w ← w − w·decay` before the update (Keras `weight_decay`). */
  decay: boolean;
  /**
   * WGSL statements over `wd` (the decayed weight), `g` and `<slot>0` (old state) that define
   * `w1` and `<slot>1` for every slot.
   */
  body: string;
}

/** Wraps an update rule in the load / mask / store frame shared by every optimizer. */
export function updateKernel(spec: UpdateKernel): KernelSpec<UpdateFields> {
  const { slots } = spec;
  const uniforms = uniformBlock<UpdateFields>({
    n: "u32",
    gx: "u32",
    decay: "f32",
    ...Object.fromEntries(spec.fields.map((f) => [f, "f32" as const])),
  });
  return {
    name: spec.name,
    key: `${spec.key}|decay=${spec.decay}`,
    bindings: ["write", "read", ...slots.map(() => "write" as const)],
    uniforms,
    code: () =>
      wgsl`
${uniforms.struct()}
@group(0) @binding(0) var<storage, read_write> w: array<vec4f>;
@group(0) @binding(1) var<storage, read> grad: array<vec4f>;
${
        slots.map((s, i) =>
          `@group(0) @binding(${i + 2}) var<storage, read_write> ${s}: array<vec4f>;`
        )
          .join("\n")
      }
@group(0) @binding(${slots.length + 2}) var<uniform> u: U;
${LINEAR_INDEX}
${LIVE_LANES}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= (u.n + 3u) / 4u) { return; }
  let live = live_lanes(i, u.n);
  let w0 = w[i];
  let g = grad[i];
  ${slots.map((s) => `let ${s}0 = ${s}[i];`).join("\n  ")}
#if ${spec.decay}
  let wd = w0 - w0 * u.decay;
#else
  let wd = w0;
#endif
  ${spec.body}
  w[i] = select(w0, w1, live);
  ${slots.map((s) => `${s}[i] = select(${s}0, ${s}1, live);`).join("\n  ")}
}`,
  };
}

// ---- global-norm clipping ---------------------------------------------------------------------

/** Gradients bound per clipping dispatch (their sizes fill the block's `sizes`). */
export const CLIP_GROUP_MAX = 15;

function gradBindings(count: number, access: "read" | "read_write"): string {
  return Array.from(
    { length: count },
    (_, j) => `@group(0) @binding(${j}) var<storage, ${access}> g${j}: array<vec4f>;`,
  ).join("\n");
}

/** The block shared by the sum-of-squares and scale passes. */
const CLIP_UNIFORMS = uniformBlock({
  gx: "u32",
  base: "u32",
  max_norm: "f32",
  sizes: "array<vec4u, 4>",
});

const CLIP_PRELUDE = /* wgsl */ `
${CLIP_UNIFORMS.struct()}
fn size_of(j: u32) -> u32 { return u.sizes[j / 4u][j % 4u]; }`;

const TREE_SUM = /* wgsl */ `
var<workgroup> scratch: array<f32, ${WG}>;
fn tree_sum(lid: u32, value: f32) -> f32 {
  scratch[lid] = value;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { scratch[lid] += scratch[lid + s]; }
    workgroupBarrier();
  }
  return scratch[0];
}`;

/**
 * Σg² of `count` gradients: workgroup (x, j) strides over gradient j and writes its partial sum
 * to `partials[base + j·gx + x]`.
 */
export function sumSquaresKernel(count: number): KernelSpec<typeof CLIP_UNIFORMS.fields> {
  const cases = Array.from({ length: count }, (_, j) => `case ${j}u: { return g${j}[i]; }`);
  return {
    name: "clip_sum_squares",
    key: `${count}`,
    bindings: [...Array.from({ length: count }, () => "read" as const), "write"],
    uniforms: CLIP_UNIFORMS,
    code: () => `
${gradBindings(count, "read")}
@group(0) @binding(${count}) var<storage, read_write> partials: array<f32>;
@group(0) @binding(${count + 1}) var<uniform> u: U;
${CLIP_PRELUDE}
${LIVE_LANES}
${TREE_SUM}
fn load(j: u32, i: u32) -> vec4f {
  switch j {
    ${cases.join("\n    ")}
    default: { return vec4f(0.0); }
  }
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let j = wid.y;
  let n = size_of(j);
  var acc = 0.0;
  for (var i = wid.x * ${WG}u + lid; i < (n + 3u) / 4u; i += u.gx * ${WG}u) {
    let x = select(vec4f(0.0), load(j, i), live_lanes(i, n));
    acc += dot(x, x);
  }
  let total = tree_sum(lid, acc);
  if (lid == 0u) { partials[u.base + j * u.gx + wid.x] = total; }
}`,
  };
}

const NORM_UNIFORMS = uniformBlock({ count: "u32" });

/** One workgroup: norm[0] = √(Σ partials). */
export const NORM_KERNEL: KernelSpec<typeof NORM_UNIFORMS.fields> = {
  name: "clip_norm",
  key: "",
  bindings: ["read", "write"],
  uniforms: NORM_UNIFORMS,
  code: () => `
${NORM_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> norm: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${TREE_SUM}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < u.count; i += ${WG}u) { acc += partials[i]; }
  let total = tree_sum(lid, acc);
  if (lid == 0u) { norm[0] = sqrt(total); }
}`,
};

/** Scales `count` gradients in place by min(1, max_norm / (norm + 1e-6)); no traffic when 1. */
export function clipScaleKernel(count: number): KernelSpec<typeof CLIP_UNIFORMS.fields> {
  const cases = Array.from(
    { length: count },
    (_, j) => `case ${j}u: { g${j}[i] = select(g${j}[i], g${j}[i] * s, live); }`,
  );
  return {
    name: "clip_scale",
    key: `${count}`,
    bindings: [...Array.from({ length: count }, () => "write" as const), "read"],
    uniforms: CLIP_UNIFORMS,
    code: () => `
${gradBindings(count, "read_write")}
@group(0) @binding(${count}) var<storage, read> norm: array<f32>;
@group(0) @binding(${count + 1}) var<uniform> u: U;
${CLIP_PRELUDE}
${LIVE_LANES}
fn scale(j: u32, i: u32, s: f32, live: vec4<bool>) {
  switch j {
    ${cases.join("\n    ")}
    default: {}
  }
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = min(1.0, u.max_norm / (norm[0] + 1e-6));
  if (s >= 1.0) { return; }
  let j = wid.y;
  let n = size_of(j);
  for (var i = wid.x * ${WG}u + lid; i < (n + 3u) / 4u; i += u.gx * ${WG}u) {
    scale(j, i, s, live_lanes(i, n));
  }
}`,
  };
}
