// LOP-120 metrics (spec labs/TP5.md §3.6), computed on the host from a rollout's predictions of
// frames 1 … 119 and the re-entry query's attention weights.
import {
  APPEARANCE,
  codebook,
  CONTENT,
  CONTEXT,
  FRAMES,
  HORIZON,
  type Lop120,
  nearestPrototype,
} from "../data/lop120.ts";
import { attentionSpan, type SpanMetrics } from "./common.ts";

const PREDICTED = FRAMES - 1;

export interface LopMetrics {
  mse_app_h: number;
  mse_app_k1: number;
  id_acc: number;
  mse_bg_h: number;
  mse_bg_k1: number;
  mse_bg_k20: number;
  mse_bg_tf: number;
  mae_h: number;
}

export interface AttentionMetrics extends SpanMetrics {
  attn_key_mass: number;
  attn_lure_mass: number;
}

export interface Evaluation {
  metrics: LopMetrics;
  /** Per horizon frame 100 … 119: appearance and background MSE. */
  horizonApp: number[];
  horizonBg: number[];
  attention?: AttentionMetrics;
}

/**
 * `predictions` [n, 119, 14] (frame f at row f − 1) against `data`; `reentry` [n, 100] is the
 * attention of the query at t = 99 over memory frames 0 … 99 (memory models only).
 */
export function evaluateLop(
  data: Lop120,
  predictions: Float32Array,
  reentry?: Float32Array,
): Evaluation {
  const n = data.n;
  if (predictions.length !== n * PREDICTED * CONTENT) {
    throw new Error(
      `evaluateLop: ${predictions.length} predictions, expected ${n}×${PREDICTED}×${CONTENT}`,
    );
  }
  const book = codebook();
  const horizonApp = new Array(HORIZON).fill(0);
  const horizonBg = new Array(HORIZON).fill(0);
  let absH = 0, bgTf = 0, correct = 0;
  const mean = new Float64Array(APPEARANCE);
  for (let i = 0; i < n; i++) {
    mean.fill(0);
    for (let f = 1; f < FRAMES; f++) {
      const p = (i * PREDICTED + f - 1) * CONTENT;
      const y = data.targets.subarray(p, p + CONTENT);
      let app = 0, bg = 0, abs = 0;
      for (let c = 0; c < CONTENT; c++) {
        const e = predictions[p + c] - y[c];
        if (c < APPEARANCE) app += e * e;
        else bg += e * e;
        abs += Math.abs(e);
      }
      if (f >= CONTEXT) {
        horizonApp[f - CONTEXT] += app;
        horizonBg[f - CONTEXT] += bg;
        absH += abs;
        for (let c = 0; c < APPEARANCE; c++) mean[c] += predictions[p + c] / HORIZON;
      } else if (f >= 20 && f <= 98) bgTf += bg;
    }
    if (nearestPrototype(book, mean) === data.target[i]) correct++;
  }
  const bgChannels = CONTENT - APPEARANCE;
  for (let k = 0; k < HORIZON; k++) {
    horizonApp[k] /= n * APPEARANCE;
    horizonBg[k] /= n * bgChannels;
  }
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const metrics: LopMetrics = {
    mse_app_h: avg(horizonApp),
    mse_app_k1: horizonApp[0],
    id_acc: correct / n,
    mse_bg_h: avg(horizonBg),
    mse_bg_k1: horizonBg[0],
    mse_bg_k20: horizonBg[HORIZON - 1],
    mse_bg_tf: bgTf / (n * 79 * bgChannels),
    mae_h: absH / (n * HORIZON * CONTENT),
  };
  return {
    metrics,
    horizonApp,
    horizonBg,
    attention: reentry ? reentryAttention(data, reentry) : undefined,
  };
}

/** Key/lure mass and span metrics of the re-entry query (t = 99) over frames 0 … 99. */
export function reentryAttention(data: Lop120, weights: Float32Array): AttentionMetrics {
  if (weights.length !== data.n * CONTEXT) {
    throw new Error(`reentryAttention: ${weights.length} weights, expected ${data.n}×${CONTEXT}`);
  }
  let key = 0, lure = 0;
  const mass = (row: number, span: { start: number; length: number } | null) => {
    let s = 0;
    for (let t = span?.start ?? 0; span && t < span.start + span.length; t++) {
      s += weights[row * CONTEXT + t];
    }
    return s;
  };
  for (let i = 0; i < data.n; i++) {
    key += mass(i, data.sighting[i]);
    lure += mass(i, data.lure[i]);
  }
  return {
    attn_key_mass: key / data.n,
    attn_lure_mass: lure / data.n,
    ...attentionSpan(weights, data.n, CONTEXT, () => CONTEXT - 1),
  };
}
