// Fused softmax cross-entropy (forward: per-row log-sum-exp and loss; backward: one pass over
// the logits) and the pointwise losses (MSE, MAE, binary cross-entropy on probabilities or
// logits), forward and backward.
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, WG, wgsl } from "./common.ts";
import { combineLanes, type LaneLayout, onlineMaxSum, packing } from "./reduce.ts";

/** Class ids (i32/u32 [N]) or probabilities (f32 [N, C]). */
export type LabelKind = "ids" | "probs";

const CE_UNIFORMS = uniformBlock({
  rows: "u32",
  classes: "u32",
  gx: "u32",
  // Row blocks each workgroup walks (all of them when one workgroup sums the loss).
  blocks: "u32",
  scale: "f32",
  // -Infinity and NaN come in as data: WGSL constants cannot hold them.
  neg_inf: "f32",
  nan: "f32",
  per_row_grad: "u32",
});

/** Logits per row in the kernels' element type: four classes per vec4 when `vec4` (C % 4 == 0). */
const rowWidth = (vec4: boolean) => vec4 ? "u.classes / 4u" : "u.classes";

/**
 * Per row of logits [N, C]: m = max, log Σ exp(x − m), and the loss
 * log Σ exp(x − m) − (x[label] − m) (class ids) or Σ t · (log Σ − (x − m)) (probabilities).
 * Writes `stats` = (m, log Σ, Σ t) per row for the backward pass, and either each row's loss
 * times scale, or (`total`, one workgroup walking every row) scale · Σ rows in loss[0].
 * A class id outside [0, C) makes its row's loss NaN. With `vec4` (C % 4 == 0) every load is a
 * vec4 of four classes (a CPU adapter pays per load instruction).
 */
export function crossEntropyKernel(
  labels: LabelKind,
  layout: LaneLayout,
  total: boolean,
  vec4: boolean,
): KernelSpec<typeof CE_UNIFORMS.fields> {
  const { cols, splits } = layout;
  const probs = labels === "probs";
  // One lane per row: class ids need no per-position label term, so max and Σ exp take one pass.
  const online = splits === 1 && !probs;
  const head = `col * ${splits}u`;
  return {
    name: "cross_entropy",
    key: `${labels}|${cols}x${splits}|${total}|${vec4}`,
    bindings: ["read", "read", "write", "write"],
    uniforms: CE_UNIFORMS,
    code: () =>
      wgsl`${CE_UNIFORMS.struct()}
${packing(vec4 ? "along" : "none")}
@group(0) @binding(0) var<storage, read> logits: array<E>;
#if ${probs}
@group(0) @binding(1) var<storage, read> labels: array<E>;
#else
@group(0) @binding(1) var<storage, read> labels: array<i32>;
#endif
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
var<workgroup> row_max: array<f32, ${WG}>;
var<workgroup> acc: array<vec3f, ${WG}>;  // Σ exp(x − m), Σ t, Σ t · (x − m)
#if ${total}
var<workgroup> losses: array<f32, ${WG}>;
#endif

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let col = lid / ${splits}u;
  let split = lid % ${splits}u;
#if ${total}
  var mine = 0.0;  // losses of the rows this lane finished
  for (var block = 0u; block < u.blocks; block++) {
#else
  {
    let block = 0u;  // one row block per workgroup (a loop around barriers costs CPU adapters)
#endif
    let row = (wid.y * u.gx + wid.x + block) * ${cols}u + col;
    let live = row < u.rows;
    let width = ${rowWidth(vec4)};
    let base = row * width;
#if ${online}
    // One lane per row and class ids: max and Σ exp in one online pass over the logits.
    ${onlineMaxSum((c) => `logits[base + ${c}]`, "0u", "select(0u, width, live)", "u.neg_inf")}
    let m = fold_max(run_max);
    var sums = vec3f(fold_sum(run_sum * exp(run_max - m)), 0.0, 0.0);
#else
    var ms = E(u.neg_inf);
    if (live) {
      for (var c = split; c < width; c += ${splits}u) { ms = max(ms, logits[base + c]); }
    }
    row_max[lid] = fold_max(ms);
    ${combineLanes(layout, (a, b) => `row_max[${a}] = max(row_max[${a}], row_max[${b}]);`, true)}
    let m = row_max[${head}];
    var sums = vec3f(0.0);
    if (live) {
      for (var c = split; c < width; c += ${splits}u) {
        let d = logits[base + c] - m;
        sums.x += fold_sum(exp(d));
#if ${probs}
        let t = labels[base + c];
        sums.y += fold_sum(t);
        sums.z += fold_sum(t * d);
#endif
      }
    }
#endif
    acc[lid] = sums;
    ${combineLanes(layout, (a, b) => `acc[${a}] += acc[${b}];`, false)}
    if (live && split == 0u) {
      let row_sums = acc[${head}];
      let log_sum = log(row_sums.x);
#if ${probs}
      let mass = row_sums.y;
      let row_loss = mass * log_sum - row_sums.z;
#else
      let mass = 1.0;
      let label = labels[row];
      var row_loss = u.nan;
      if (label >= 0 && u32(label) < u.classes) {
        row_loss = log_sum - (${
        vec4 ? "logits[base + u32(label) / 4u][u32(label) % 4u]" : "logits[base + u32(label)]"
      } - m);
      }
#endif
      stats[3u * row] = m;
      stats[3u * row + 1u] = log_sum;
      stats[3u * row + 2u] = mass;
#if ${total}
      mine += row_loss;
#else
      loss[row] = row_loss * u.scale;
#endif
    }
  }
#if ${total}
  losses[lid] = mine;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { losses[lid] += losses[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { loss[0] = losses[0] * u.scale; }
#endif
}`,
  };
}

/**
 * d logits = (softmax · Σt − t) · g · scale, one lane per logit, from the saved row stats;
 * g is per row ("none") or one value. With `targetGrad` (probabilities that require a
 * gradient) also d labels = −log softmax · g · scale. Rows with an invalid class id get NaN.
 * With `vec4` (C % 4 == 0) a lane takes four classes of one row.
 */
export function crossEntropyBackwardKernel(
  labels: LabelKind,
  targetGrad: boolean,
  vec4: boolean,
): KernelSpec<typeof CE_UNIFORMS.fields> {
  const probs = labels === "probs";
  const E = vec4 ? "vec4f" : "f32";
  return {
    name: "cross_entropy_bwd",
    key: `${labels}|${targetGrad}|${vec4}`,
    bindings: targetGrad
      ? ["read", "read", "read", "read", "write", "write"]
      : ["read", "read", "read", "read", "write"],
    uniforms: CE_UNIFORMS,
    code: () =>
      wgsl`${CE_UNIFORMS.struct()}
${LINEAR_INDEX}
alias E = ${E};
@group(0) @binding(0) var<storage, read> logits: array<E>;
#if ${probs}
@group(0) @binding(1) var<storage, read> labels: array<E>;
#else
@group(0) @binding(1) var<storage, read> labels: array<i32>;
#endif
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<E>;
#if ${targetGrad}
@group(0) @binding(5) var<storage, read_write> dlabels: array<E>;
@group(0) @binding(6) var<uniform> u: U;
#else
@group(0) @binding(5) var<uniform> u: U;
#endif

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  let width = ${rowWidth(vec4)};
  if (i >= u.rows * width) { return; }
  let row = i / width;
  // The class of element 0 of this lane's E.
  let c = (i - row * width) * ${vec4 ? 4 : 1}u;
  // (x − m) − log Σ: exact at any magnitude of x, unlike x − (m + log Σ).
  let log_p = (logits[i] - stats[3u * row]) - stats[3u * row + 1u];
  let g = dy[select(0u, row, u.per_row_grad != 0u)] * u.scale;
#if ${probs}
  dlogits[i] = (exp(log_p) * stats[3u * row + 2u] - labels[i]) * g;
#if ${targetGrad}
  dlabels[i] = -log_p * g;
#endif
#else
  let label = labels[row];
  if (label < 0 || u32(label) >= u.classes) {
    dlogits[i] = E(u.nan);
  } else {
    let hit = ${vec4 ? "vec4u(c, c + 1u, c + 2u, c + 3u) == vec4u(u32(label))" : "u32(label) == c"};
    dlogits[i] = (exp(log_p) - select(E(0.0), E(1.0), hit)) * g;
  }
#endif
}`,
  };
}

export type PointwiseLoss = "mse" | "mae" | "bce" | "bce_logits";

/** Per element: the loss of (p, t), and its derivatives in p and t (times g in the backward). */
const POINTWISE: Record<PointwiseLoss, { loss: string; dp: string; dt: string }> = {
  mse: { loss: "(p - t) * (p - t)", dp: "2.0 * (p - t)", dt: "-2.0 * (p - t)" },
  mae: { loss: "abs(p - t)", dp: "sign(p - t)", dt: "-sign(p - t)" },
  // Keras: p clipped to [ε, 1 − ε]; the clip passes no gradient outside that range.
  bce: {
    loss: "-(t * log(clip(p)) + (1.0 - t) * log(1.0 - clip(p)))",
    dp: "select(0.0, (clip(p) - t) / (clip(p) * (1.0 - clip(p))), p >= EPS && p <= 1.0 - EPS)",
    dt: "log(1.0 - clip(p)) - log(clip(p))",
  },
  // max(p, 0) − p·t + log(1 + exp(−|p|)): no overflow for any logit p.
  bce_logits: {
    loss: "max(p, 0.0) - p * t + log(1.0 + exp(-abs(p)))",
    dp: "stable_sigmoid(p) - t",
    dt: "-p",
  },
};

const POINTWISE_HELPERS = /* wgsl */ `
const EPS = 1e-7;
fn clip(p: f32) -> f32 { return clamp(p, EPS, 1.0 - EPS); }
fn stable_sigmoid(p: f32) -> f32 {
  let e = exp(-abs(p));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), p >= 0.0);
}`;

const POINTWISE_UNIFORMS = uniformBlock({ n: "u32", gx: "u32" });

/** loss[i] = f(p[i], t[i]), one lane per element. */
export function pointwiseLossKernel(
  kind: PointwiseLoss,
): KernelSpec<typeof POINTWISE_UNIFORMS.fields> {
  return {
    name: "pointwise_loss",
    key: kind,
    bindings: ["read", "read", "write"],
    uniforms: POINTWISE_UNIFORMS,
    code: () =>
      `${POINTWISE_UNIFORMS.struct()}
${POINTWISE_HELPERS}
${LINEAR_INDEX}
@group(0) @binding(0) var<storage, read> pred: array<f32>;
@group(0) @binding(1) var<storage, read> truth: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<uniform> u: U;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.n) { return; }
  let p = pred[i];
  let t = truth[i];
  loss[i] = ${POINTWISE[kind].loss};
}`,
  };
}

/** d pred = g · ∂f/∂p and, with `targetGrad`, d target = g · ∂f/∂t, one lane per element. */
export function pointwiseLossBackwardKernel(
  kind: PointwiseLoss,
  targetGrad: boolean,
): KernelSpec<typeof POINTWISE_UNIFORMS.fields> {
  return {
    name: "pointwise_loss_bwd",
    key: `${kind}|${targetGrad}`,
    bindings: targetGrad ? ["read", "read", "read", "write", "write"] : [
      "read",
      "read",
      "read",
      "write",
    ],
    uniforms: POINTWISE_UNIFORMS,
    code: () =>
      wgsl`${POINTWISE_UNIFORMS.struct()}
${POINTWISE_HELPERS}
${LINEAR_INDEX}
@group(0) @binding(0) var<storage, read> pred: array<f32>;
@group(0) @binding(1) var<storage, read> truth: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dpred: array<f32>;
#if ${targetGrad}
@group(0) @binding(4) var<storage, read_write> dtruth: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
#else
@group(0) @binding(4) var<uniform> u: U;
#endif

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.n) { return; }
  let p = pred[i];
  let t = truth[i];
  let g = dy[i];
  dpred[i] = g * (${POINTWISE[kind].dp});
#if ${targetGrad}
  dtruth[i] = g * (${POINTWISE[kind].dt});
#endif
}`,
  };
}
