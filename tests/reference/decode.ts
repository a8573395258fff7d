// Float64 free-running GRU decoder with an optional attention memory, written step by step from
// the equations in engine/shaders/decode.ts (the GRU cell is Keras reset_after, as in rnn.ts).
import type { Ref } from "../helpers.ts";

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** y[col] = Σ_i a[i] · W[i, col] + bias[col] for W [rows, cols] at row offset `row0`. */
function affine(a: number[], w: Ref, bias: ArrayLike<number> | null, row0 = 0): number[] {
  const cols = w.shape[1];
  return Array.from({ length: cols }, (_, col) => {
    let s = bias ? bias[col] : 0;
    for (let i = 0; i < a.length; i++) s += a[i] * w.data[(row0 + i) * cols + col];
    return s;
  });
}

export interface DecodeRefMemory {
  keys: Ref;
  values: Ref;
  queryWeight: Ref;
  queryBias: Ref;
  keyWeight: Ref;
  keyBias: Ref;
  valueWeight: Ref;
  valueBias: Ref;
  gateWeight: Ref;
  gateBias: Ref;
  contextWeight: Ref;
  contextBias: Ref;
  window: number;
}

/** Predictions [B, S, C]. */
export function decodeRef(
  h0: Ref,
  content0: Ref,
  flags: Ref,
  kernel: Ref,
  recurrentKernel: Ref,
  bias: Ref,
  outWeight: Ref,
  outBias: Ref,
  memory?: DecodeRefMemory,
): Ref {
  const [B, H] = h0.shape;
  const C = content0.shape[1];
  const [, S, F] = flags.shape;
  const out = new Float64Array(B * S * C);
  const row = (r: Ref, i: number, n: number) => Array.from(r.data.subarray(i * n, (i + 1) * n));
  for (let b = 0; b < B; b++) {
    let h = row(h0, b, H);
    let content = row(content0, b, C);
    const M = memory?.keys.shape[1] ?? 0;
    const K = memory?.keys.shape[2] ?? 0;
    const keys: number[][] = [], values: number[][] = [];
    for (let j = 0; j < M; j++) {
      keys.push(row(memory!.keys, b * M + j, K));
      values.push(row(memory!.values, b * M + j, K));
    }
    for (let s = 0; s < S; s++) {
      const x = [...content, ...row(flags, b * S + s, F)];
      const gx = affine(x, kernel, bias.data.subarray(0, 3 * H));
      const gh = affine(h, recurrentKernel, bias.data.subarray(3 * H));
      const next = h.map((hp, j) => {
        const z = sigmoid(gx[j] + gh[j]);
        const r = sigmoid(gx[H + j] + gh[H + j]);
        const n = Math.tanh(gx[2 * H + j] + r * gh[2 * H + j]);
        return z * hp + (1 - z) * n;
      });
      let y: number[];
      if (!memory) y = affine(next, outWeight, outBias.data);
      else {
        const m = memory;
        keys.push(affine(x, m.keyWeight, m.keyBias.data.subarray(s * K, (s + 1) * K)));
        values.push(affine(x, m.valueWeight, m.valueBias.data));
        const q = affine([...next, ...x], m.queryWeight, m.queryBias.data);
        const t = M + s;
        const first = m.window > 0 ? Math.max(0, t - m.window + 1) : 0;
        const scores = keys.slice(first).map((k) =>
          k.reduce((acc, kc, c) => acc + kc * q[c], 0) / Math.sqrt(K)
        );
        const top = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - top));
        const total = e.reduce((a, v) => a + v, 0);
        const c = Array.from(
          { length: K },
          (_, d) => e.reduce((acc, ej, j) => acc + ej / total * values[first + j][d], 0),
        );
        const g = affine([...next, ...c], m.gateWeight, m.gateBias.data).map(sigmoid);
        const u = affine(c, m.contextWeight, m.contextBias.data).map(Math.tanh);
        y = affine([...next, ...g.map((gj, j) => gj * u[j])], outWeight, outBias.data);
      }
      out.set(y, (b * S + s) * C);
      h = next;
      content = y;
    }
  }
  return { shape: [B, S, C], data: out };
}
