// Float64 reference for matmul: broadcast batches, transposes, bias and activation.
import type { Ref } from "../helpers.ts";

export type RefActivation = "relu" | "leaky_relu" | "sigmoid" | "tanh" | "gelu";

export interface MatmulRefOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Ref;
  activation?: RefActivation;
  alpha?: number;
}

/** erf to ~1e-15: Maclaurin series below 3, continued fraction for erfc above. */
export function erf(x: number): number {
  const t = Math.abs(x);
  if (t < 3) {
    let sum = t, term = t;
    for (let n = 1; n < 120; n++) {
      term *= -t * t / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * 2 / Math.sqrt(Math.PI) * sum;
  }
  return Math.sign(x) * (1 - erfcLarge(t));
}

function erfcLarge(t: number): number {
  let f = 0;
  for (let n = 80; n >= 1; n--) f = n / 2 / (t + f);
  return Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
}

/** Φ(z) without cancellation in the negative tail. */
function normalCdf(z: number): number {
  const x = z / Math.SQRT2;
  return x < -3 ? 0.5 * erfcLarge(-x) : 0.5 * (1 + erf(x));
}

export function activationRef(kind: RefActivation, z: number, alpha = 0.3): number {
  switch (kind) {
    case "relu":
      return Math.max(z, 0);
    case "leaky_relu":
      return z > 0 ? z : alpha * z;
    case "sigmoid":
      return 1 / (1 + Math.exp(-z));
    case "tanh":
      return Math.tanh(z);
    case "gelu":
      return z * normalCdf(z);
  }
}

export function matmulRef(a: Ref, b: Ref, o: MatmulRefOptions = {}): Ref {
  const ra = a.shape.length, rb = b.shape.length;
  const [m, k] = o.transA ? [a.shape[ra - 1], a.shape[ra - 2]] : [a.shape[ra - 2], a.shape[ra - 1]];
  const n = o.transB ? b.shape[rb - 2] : b.shape[rb - 1];
  const rank = Math.max(ra, rb) - 2;
  const pad = (s: number[]) => [...new Array(rank + 2 - s.length).fill(1), ...s.slice(0, -2)];
  const ab = pad(a.shape), bb = pad(b.shape);
  const batch = ab.map((d, i) => Math.max(d, bb[i]));
  const count = batch.reduce((p, d) => p * d, 1);
  const out = new Float64Array(count * m * n);
  const idx = new Array(rank).fill(0);
  for (let z = 0; z < count; z++) {
    let rest = z;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d] = rest % batch[d];
      rest = Math.floor(rest / batch[d]);
    }
    let offA = 0, offB = 0;
    for (let d = 0; d < rank; d++) {
      offA = offA * ab[d] + (ab[d] === 1 ? 0 : idx[d]);
      offB = offB * bb[d] + (bb[d] === 1 ? 0 : idx[d]);
    }
    offA *= m * k;
    offB *= k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = o.bias ? o.bias.data[j] : 0;
        for (let p = 0; p < k; p++) {
          const x = a.data[offA + (o.transA ? p * m + i : i * k + p)];
          const y = b.data[offB + (o.transB ? j * k + p : p * n + j)];
          s += x * y;
        }
        out[(z * m + i) * n + j] = o.activation ? activationRef(o.activation, s, o.alpha) : s;
      }
    }
  }
  return { shape: [...batch, m, n], data: out };
}
