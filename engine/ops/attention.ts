// Fused scaled dot-product attention: softmax(q·kᵀ·scale + mask)·v in one forward dispatch
// (online softmax over key tiles, the score matrix never exists in memory), a backward of two
// dispatches that recompute the scores from q, k and the saved per-row log-sum-exp
// (FlashAttention-2: dQ over key rows, then dK/dV over query rows), and an optional third
// forward dispatch that writes the attention weights for visualisation.
//
// Masks have −∞ semantics: a masked score takes no part in the softmax and gets weight exactly
// 0. A query row whose keys are all masked has no defined softmax: its output and weights are 0
// (and so are its gradients), instead of the NaN a plain softmax would give.
import { formatShape, Tensor } from "../tensor.ts";
import { recorder, type Rules } from "../autograd.ts";
import { runtime, type Storage } from "../runtime.ts";
import { grid1d } from "../shaders/common.ts";
import {
  attentionBackwardKeyKernel,
  attentionBackwardQueryKernel,
  attentionForwardKernel,
  type AttentionKernel,
  attentionWeightsKernel,
  type MaskKind,
} from "../shaders/attention.ts";

interface AttentionAttrs {
  attention: { kind: MaskKind; window: number; strides: number[]; scale: number };
}

/**
 * - `"causal"`: query i sees keys j ≤ i + (Sk − Sq) (aligned bottom-right, so the last query
 *   sees every key: with Sq = Sk it is the usual j ≤ i, and a single query against a memory
 *   of Sk steps sees all of it);
 * - `{ window: W }`: causal and at most W keys back: i + (Sk − Sq) − W < j ≤ i + (Sk − Sq);
 * - a tensor broadcastable to [B, H, Sq, Sk] added to the scores (e.g. padding [B, 1, 1, Sk]
 *   holding 0 or −Infinity); entries ≤ −3e38 (−∞) mask, finite ones (−1e9 …) just add.
 */
export type AttentionMask = "causal" | { window: number } | Tensor;

export interface AttentionOptions {
  mask?: AttentionMask;
  /** Multiplies q·k (default 1/√D). */
  scale?: number;
  /** Also return the [B, H, Sq, Sk] weights (one more dispatch; not differentiated). */
  returnWeights?: boolean;
}

export interface AttentionResult {
  output: Tensor;
  weights: Tensor;
}

/** Head dimensions live in registers of one invocation: keep them bounded. */
const MAX_HEAD_DIM = 256;

/** Workgroups covering `n` rows of each of `heads` heads. */
function groupsFor(kernel: AttentionKernel, n: number, heads: number): [number, number] {
  return [Math.ceil(n / (kernel.rows * kernel.lanes)), heads];
}

export interface AttentionGeometry {
  batch: number;
  heads: number;
  sq: number;
  sk: number;
  d: number;
  dv: number;
}

function checkOperands(q: Tensor, k: Tensor, v: Tensor): AttentionGeometry {
  const all = `q ${formatShape(q.shape)}, k ${formatShape(k.shape)}, v ${formatShape(v.shape)}`;
  for (const [name, t] of [["q", q], ["k", k], ["v", v]] as const) {
    t.assertAlive("attention");
    if (t.dtype !== "f32" || t.rank !== 4) {
      throw new Error(
        `attention: ${name} is ${t.dtype} of shape ${formatShape(t.shape)}; expected f32 ` +
          `[B, H, S, D] (got ${all})`,
      );
    }
  }
  const [batch, heads, sq, d] = q.shape;
  const [, , sk, dv] = v.shape;
  const fits = k.shape[0] === batch && k.shape[1] === heads && k.shape[3] === d &&
    v.shape[0] === batch && v.shape[1] === heads && v.shape[2] === k.shape[2];
  if (!fits) {
    throw new Error(
      `attention: ${all} do not fit; expected q [B, H, Sq, D], k [B, H, Sk, D], v [B, H, Sk, Dv]`,
    );
  }
  if (d < 1 || dv < 1 || d > MAX_HEAD_DIM || dv > MAX_HEAD_DIM) {
    throw new Error(
      `attention: head dimensions D = ${d}, Dv = ${dv}; expected 1 … ${MAX_HEAD_DIM}`,
    );
  }
  return { batch, heads, sq, sk, d, dv };
}

interface MaskPlan {
  kind: MaskKind;
  window: number;
  tensor: Tensor | null;
  strides: number[];
}

function planMask(mask: AttentionMask | undefined, geo: AttentionGeometry): MaskPlan {
  const none = { window: 0, tensor: null, strides: [0, 0, 0, 0] };
  if (mask === undefined) return { kind: "none", ...none };
  if (mask === "causal") return { kind: "causal", ...none };
  if (mask instanceof Tensor) {
    mask.assertAlive("attention");
    const target = [geo.batch, geo.heads, geo.sq, geo.sk];
    const padded = [...new Array(Math.max(0, 4 - mask.rank)).fill(1), ...mask.shape];
    if (
      mask.dtype !== "f32" || mask.rank > 4 ||
      padded.some((n, i) => n !== 1 && n !== target[i])
    ) {
      throw new Error(
        `attention: mask is ${mask.dtype} of shape ${formatShape(mask.shape)}; expected f32 ` +
          `broadcastable to [B, H, Sq, Sk] = ${formatShape(target)}`,
      );
    }
    const strides = [0, 0, 0, 0];
    let s = 1;
    for (let i = 3; i >= 0; i--) {
      strides[i] = padded[i] === 1 ? 0 : s;
      s *= padded[i];
    }
    return { kind: "tensor", window: 0, tensor: mask, strides };
  }
  if (typeof mask === "object" && mask !== null && "window" in mask) {
    if (!Number.isInteger(mask.window) || mask.window < 1) {
      throw new Error(`attention: window ${mask.window}; expected an integer ≥ 1`);
    }
    return { kind: "window", ...none, window: mask.window };
  }
  throw new Error(
    `attention: unknown mask ${String(mask)}; expected "causal", { window: W } or a tensor`,
  );
}

/** Uniform values; `gx` and `total` only matter to the weights kernel. */
function params(geo: AttentionGeometry, plan: MaskPlan, scale: number, gx = 0, total = 0) {
  const [mask_b, mask_h, mask_q, mask_k] = plan.strides;
  const { sq, sk, heads } = geo;
  return {
    sq,
    sk,
    heads,
    window: plan.window,
    scale,
    shift: sk - sq,
    mask_b,
    mask_h,
    mask_q,
    mask_k,
    gx,
    total,
  };
}

function bind(kernel: AttentionKernel, named: Record<string, Storage>): Storage[] {
  return kernel.order.map((name) => named[name]);
}

/**
 * Work of each pass, masked scores included: the forward's q·kᵀ and p·v; the backward recomputes
 * the scores, its query pass doing as much as the forward and its key pass 1.5× that.
 */
export function attentionFlops(geo: AttentionGeometry): {
  forward: number;
  backwardQuery: number;
  backwardKey: number;
} {
  const forward = 2 * geo.batch * geo.heads * geo.sq * geo.sk * (geo.d + geo.dv);
  return { forward, backwardQuery: forward, backwardKey: 1.5 * forward };
}

/**
 * softmax(q·kᵀ·scale + mask)·v for q [B, H, Sq, D], k [B, H, Sk, D], v [B, H, Sk, Dv] →
 * [B, H, Sq, Dv]; Sq ≠ Sk is cross-attention. With `returnWeights` it returns
 * `{ output, weights }`. Gradients flow to q, k and v (not to a mask tensor).
 */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions & { returnWeights: true },
): AttentionResult;
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options?: AttentionOptions & { returnWeights?: false },
): Tensor;
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions = {},
): Tensor | AttentionResult {
  const geo = checkOperands(q, k, v);
  const plan = planMask(options.mask, geo);
  const scale = options.scale ?? 1 / Math.sqrt(geo.d);
  if (!Number.isFinite(scale)) {
    throw new Error(`attention: scale ${scale}; expected a finite number`);
  }
  const rt = runtime();
  const out = Tensor.empty([geo.batch, geo.heads, geo.sq, geo.dv]);
  const lse = Tensor.empty([geo.batch, geo.heads, geo.sq]);
  const heads = geo.batch * geo.heads;
  const named: Record<string, Storage> = {
    q: q.storage,
    k: k.storage,
    v: v.storage,
    out: out.storage,
    lse: lse.storage,
  };
  if (plan.tensor) named.mask = plan.tensor.storage;
  if (out.size > 0) {
    const forward = attentionForwardKernel(geo.d, geo.dv, plan.kind, geo.sq);
    rt.launch(forward.kernel, {
      buffers: bind(forward, named),
      params: params(geo, plan, scale),
      groups: groupsFor(forward, geo.sq, heads),
      flops: attentionFlops(geo).forward,
      outputs: [out],
      op: "attention",
    });
  }
  let weights: Tensor | null = null;
  if (options.returnWeights) {
    weights = Tensor.empty([geo.batch, geo.heads, geo.sq, geo.sk]);
    if (weights.size > 0) {
      const [gx, gy] = grid1d(weights.size);
      const kernel = attentionWeightsKernel(geo.d, plan.kind);
      rt.launch(kernel.kernel, {
        buffers: bind(kernel, { ...named, weights: weights.storage }),
        params: params(geo, plan, scale, gx, weights.size),
        groups: [gx, gy],
        flops: 2 * weights.size * geo.d,
      });
    }
  }
  const inputs = plan.tensor ? [q, k, v, plan.tensor] : [q, k, v];
  const saved = [q, k, v, out, lse];
  if (plan.tensor) saved.push(plan.tensor);
  const attrs = { kind: plan.kind, window: plan.window, strides: plan.strides, scale };
  record("attention", out, inputs, saved, attrs);
  lse.dispose();
  return weights ? { output: out, weights } : out;
}

const attentionRules: Rules<AttentionAttrs> = {
  attention: (grad, node) => {
    const [q, k, v, out, lse, mask] = node.saved;
    const geo = checkOperands(q, k, v);
    const { kind, window, strides, scale } = node.attrs;
    const plan: MaskPlan = { kind, window, tensor: mask ?? null, strides };
    const block = params(geo, plan, scale);
    const heads = geo.batch * geo.heads;
    const rt = runtime();
    const dq = Tensor.empty(q.shape);
    const delta = Tensor.empty([geo.batch, geo.heads, geo.sq]);
    const named: Record<string, Storage> = {
      q: q.storage,
      k: k.storage,
      v: v.storage,
      out: out.storage,
      dout: grad.storage,
      lse: lse.storage,
      dq: dq.storage,
      delta: delta.storage,
    };
    if (mask) named.mask = mask.storage;
    const work = attentionFlops(geo);
    if (dq.size > 0) {
      const queries = attentionBackwardQueryKernel(geo.d, geo.dv, plan.kind, geo.sq);
      rt.launch(queries.kernel, {
        buffers: bind(queries, named),
        params: block,
        groups: groupsFor(queries, geo.sq, heads),
        flops: work.backwardQuery,
      });
    }
    const [, inK, inV] = node.inputs;
    let dk: Tensor | null = null;
    let dv: Tensor | null = null;
    if (inK.requiresGrad || inV.requiresGrad) {
      dk = Tensor.empty(k.shape);
      dv = Tensor.empty(v.shape);
      if (dk.size > 0) {
        const keys = attentionBackwardKeyKernel(geo.d, geo.dv, plan.kind, geo.sk);
        rt.launch(keys.kernel, {
          buffers: bind(keys, { ...named, dk: dk.storage, dvalue: dv.storage }),
          params: block,
          groups: groupsFor(keys, geo.sk, heads),
          flops: work.backwardKey,
        });
      }
    }
    delta.dispose();
    const grads: (Tensor | null)[] = [dq, dk, dv];
    if (mask) grads.push(null);
    return grads;
  },
};
const record = recorder(attentionRules);
