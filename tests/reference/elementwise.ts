// Float64 references for the elementwise family, with NumPy broadcasting.
import type { Ref } from "../helpers.ts";

export function broadcastShape(...shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  return Array.from(
    { length: rank },
    (_, d) => Math.max(...shapes.map((s) => s[s.length - rank + d] ?? 1)),
  );
}

/** Applies `f` elementwise over broadcast operands. */
export function mapRef(f: (...v: number[]) => number, ...xs: Ref[]): Ref {
  const shape = broadcastShape(...xs.map((x) => x.shape));
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float64Array(n);
  const idx = new Array(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let rem = i;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
    }
    const vals = xs.map((x) => {
      let off = 0;
      let stride = 1;
      for (let d = x.shape.length - 1; d >= 0; d--) {
        const od = d + shape.length - x.shape.length;
        off += (x.shape[d] === 1 ? 0 : idx[od]) * stride;
        stride *= x.shape[d];
      }
      return x.data[off];
    });
    data[i] = f(...vals);
  }
  return { shape, data };
}

function erf(x: number): number {
  // Series / continued fraction accurate to ~1e-15 for the ranges tests use.
  const t = Math.abs(x);
  if (t < 3) {
    let sum = t, term = t;
    for (let n = 1; n < 100; n++) {
      term *= -t * t / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * 2 / Math.sqrt(Math.PI) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f));
}

export const unaryRef = {
  relu: (x: number) => Math.max(x, 0),
  leaky_relu: (x: number, alpha = 0.3) => x > 0 ? x : alpha * x,
  sigmoid: (x: number) => 1 / (1 + Math.exp(-x)),
  tanh: Math.tanh,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  abs: Math.abs,
  neg: (x: number) => -x,
  gelu: (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
};

export const binaryRef = {
  add: (a: number, b: number) => a + b,
  sub: (a: number, b: number) => a - b,
  mul: (a: number, b: number) => a * b,
  div: (a: number, b: number) => a / b,
  pow: (a: number, b: number) => Math.pow(a, b),
  maximum: Math.max,
  minimum: Math.min,
};
