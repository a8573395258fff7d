// Float64 references for the attention family: scaled dot-product attention with masks, the
// course's SimpleAttention, Luong/Bahdanau decoder attention, layer normalisation.
import type { Ref } from "../helpers.ts";

export type RefMask = "none" | "causal" | { window: number } | Ref;

/** Whether query i may see key j under an index mask (bottom-right aligned, as the engine). */
function visible(mask: RefMask, i: number, j: number, sq: number, sk: number): boolean {
  if (mask === "causal" || (typeof mask === "object" && "window" in mask)) {
    const pos = i + sk - sq;
    if (j > pos) return false;
    if (typeof mask === "object" && "window" in mask && j <= pos - mask.window) return false;
  }
  return true;
}

/** Additive-mask value at [b, h, i, j] with NumPy broadcasting from the right. */
function maskValue(mask: Ref, index: number[]): number {
  const shape = mask.shape;
  const offset = 4 - shape.length;
  let flat = 0;
  for (let d = 0; d < shape.length; d++) {
    flat = flat * shape[d] + (shape[d] === 1 ? 0 : index[d + offset]);
  }
  return mask.data[flat];
}

/**
 * softmax(q·kᵀ·scale + mask)·v, and the weights. Masked scores (−∞) get weight 0; a fully
 * masked row gives output 0 and weights 0.
 */
export function attentionRef(
  q: Ref,
  k: Ref,
  v: Ref,
  mask: RefMask = "none",
  scale = 1 / Math.sqrt(q.shape[3]),
): { output: Ref; weights: Ref } {
  const [batch, heads, sq, d] = q.shape;
  const [, , sk, dv] = v.shape;
  const output = new Float64Array(batch * heads * sq * dv);
  const weights = new Float64Array(batch * heads * sq * sk);
  const s = new Float64Array(sk);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const bh = b * heads + h;
      for (let i = 0; i < sq; i++) {
        let max = -Infinity;
        for (let j = 0; j < sk; j++) {
          let dot = 0;
          for (let e = 0; e < d; e++) {
            dot += q.data[(bh * sq + i) * d + e] * k.data[(bh * sk + j) * d + e];
          }
          let score = visible(mask, i, j, sq, sk) ? dot * scale : -Infinity;
          if (typeof mask === "object" && !("window" in mask)) {
            score += maskValue(mask, [b, h, i, j]);
          }
          s[j] = score;
          max = Math.max(max, score);
        }
        if (max === -Infinity) continue; // fully masked: zeros
        let total = 0;
        for (let j = 0; j < sk; j++) total += s[j] = Math.exp(s[j] - max);
        for (let j = 0; j < sk; j++) {
          const w = s[j] / total;
          weights[(bh * sq + i) * sk + j] = w;
          for (let e = 0; e < dv; e++) {
            output[(bh * sq + i) * dv + e] += w * v.data[(bh * sk + j) * dv + e];
          }
        }
      }
    }
  }
  return {
    output: { shape: [batch, heads, sq, dv], data: output },
    weights: { shape: [batch, heads, sq, sk], data: weights },
  };
}

/** Row-major [m, k]·[k, n] → [m, n] on flat arrays. */
function matmulFlat(a: Float64Array, b: Float64Array, m: number, k: number, n: number) {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p];
      for (let j = 0; j < n; j++) out[i * n + j] += x * b[p * n + j];
    }
  }
  return out;
}

/**
 * The course's SimpleAttention: e = tanh(h·W + b) with W [d, 1] and b [T, 1], α = softmax over
 * time, context = Σ_t α_t h_t. h [B, T, d] → context [B, d], α [B, T, 1].
 */
export function simpleAttentionRef(h: Ref, w: Ref, bias: Ref): { context: Ref; weights: Ref } {
  const [batch, steps, d] = h.shape;
  const context = new Float64Array(batch * d);
  const weights = new Float64Array(batch * steps);
  for (let b = 0; b < batch; b++) {
    const e = new Float64Array(steps);
    for (let t = 0; t < steps; t++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += h.data[(b * steps + t) * d + c] * w.data[c];
      e[t] = Math.tanh(dot + bias.data[bias.data.length === 1 ? 0 : t]);
    }
    const max = Math.max(...e);
    let total = 0;
    for (let t = 0; t < steps; t++) total += e[t] = Math.exp(e[t] - max);
    for (let t = 0; t < steps; t++) {
      const a = e[t] / total;
      weights[b * steps + t] = a;
      for (let c = 0; c < d; c++) context[b * d + c] += a * h.data[(b * steps + t) * d + c];
    }
  }
  return {
    context: { shape: [batch, d], data: context },
    weights: { shape: [batch, steps, 1], data: weights },
  };
}

export type RefScore =
  | { kind: "dot"; scale: number }
  | { kind: "general"; w: Ref }
  | { kind: "additive"; wq: Ref; wk: Ref; v: Ref };

/**
 * Decoder (cross) attention of query [B, Tq, dq] over values [B, Tk, dv] (keys = values):
 * dot: scale·q·h; general (Luong): q·W·h; additive (Bahdanau): vᵀ tanh(Wq q + Wk h).
 * Returns context [B, Tq, dv] and weights [B, Tq, Tk].
 */
export function decoderAttentionRef(
  query: Ref,
  values: Ref,
  score: RefScore,
): { context: Ref; weights: Ref } {
  const [batch, tq, dq] = query.shape;
  const [, tk, dv] = values.shape;
  const context = new Float64Array(batch * tq * dv);
  const weights = new Float64Array(batch * tq * tk);
  for (let b = 0; b < batch; b++) {
    const qb = query.data.subarray(b * tq * dq, (b + 1) * tq * dq);
    const hb = values.data.subarray(b * tk * dv, (b + 1) * tk * dv);
    let scores: Float64Array;
    if (score.kind === "additive") {
      const units = score.v.data.length;
      const pq = matmulFlat(qb, score.wq.data, tq, dq, units);
      const pk = matmulFlat(hb, score.wk.data, tk, dv, units);
      scores = new Float64Array(tq * tk);
      for (let i = 0; i < tq; i++) {
        for (let j = 0; j < tk; j++) {
          let s = 0;
          for (let u = 0; u < units; u++) {
            s += score.v.data[u] * Math.tanh(pq[i * units + u] + pk[j * units + u]);
          }
          scores[i * tk + j] = s;
        }
      }
    } else {
      const projected = score.kind === "general"
        ? matmulFlat(qb, score.w.data, tq, dq, dv)
        : qb.map((x) => x * score.scale);
      scores = new Float64Array(tq * tk);
      for (let i = 0; i < tq; i++) {
        for (let j = 0; j < tk; j++) {
          let s = 0;
          for (let c = 0; c < dv; c++) s += projected[i * dv + c] * hb[j * dv + c];
          scores[i * tk + j] = s;
        }
      }
    }
    for (let i = 0; i < tq; i++) {
      const row = scores.subarray(i * tk, (i + 1) * tk);
      const max = Math.max(...row);
      let total = 0;
      for (let j = 0; j < tk; j++) total += Math.exp(row[j] - max);
      for (let j = 0; j < tk; j++) {
        const a = Math.exp(row[j] - max) / total;
        weights[(b * tq + i) * tk + j] = a;
        for (let c = 0; c < dv; c++) context[(b * tq + i) * dv + c] += a * hb[j * dv + c];
      }
    }
  }
  return {
    context: { shape: [batch, tq, dv], data: context },
    weights: { shape: [batch, tq, tk], data: weights },
  };
}

/** (x − mean)/√(var + ε)·γ + β over the last axis (biased variance). */
export function layerNormRef(x: Ref, gamma: Ref, beta: Ref, epsilon: number): Ref {
  const c = x.shape[x.shape.length - 1];
  const data = new Float64Array(x.data.length);
  for (let r = 0; r < x.data.length / c; r++) {
    const row = x.data.subarray(r * c, (r + 1) * c);
    const mean = row.reduce((a, b) => a + b, 0) / c;
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / c;
    const rstd = 1 / Math.sqrt(variance + epsilon);
    for (let i = 0; i < c; i++) {
      data[r * c + i] = (row[i] - mean) * rstd * gamma.data[i] + beta.data[i];
    }
  }
  return { shape: [...x.shape], data };
}
