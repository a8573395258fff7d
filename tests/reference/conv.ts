// Float64 references for channels-last convolutions, written output by output from the
// TensorFlow definitions (no code shared with the engine's geometry or kernels).
import type { Ref } from "../helpers.ts";
import { activationRef, type RefActivation } from "./matmul.ts";

export interface ConvRefOptions {
  strides?: number | number[];
  padding?: "valid" | "same";
  dilation?: number | number[];
  activation?: RefActivation;
  alpha?: number;
}

const list = (v: number | number[] | undefined, rank: number, fill: number): number[] =>
  v === undefined
    ? new Array(rank).fill(fill)
    : typeof v === "number"
    ? new Array(rank).fill(v)
    : v;

/** Size and padding-before of one spatial axis (TensorFlow "valid" / "same"). */
function axis(size: number, k: number, s: number, d: number, same: boolean) {
  const span = (k - 1) * d + 1;
  const out = same ? Math.ceil(size / s) : Math.floor((size - span) / s) + 1;
  const before = same ? Math.floor(Math.max((out - 1) * s + span - size, 0) / 2) : 0;
  return { out, before };
}

/** Row-major strides of a shape. */
function stridesOf(shape: number[]): number[] {
  const out = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) out[i] = out[i + 1] * shape[i + 1];
  return out;
}

/** Every index tuple of `shape`, row-major. */
function* indices(shape: number[]): Generator<number[]> {
  const idx = new Array(shape.length).fill(0);
  const total = shape.reduce((a, b) => a * b, 1);
  for (let n = 0; n < total; n++) {
    yield idx.slice();
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

/**
 * N-d convolution: x [N, ...spatial, Cin], kernel [...k, Cin, Cout], optional bias [Cout]:
 * y[n, o, co] = act(Σ_(t, ci) x[n, o·s − p + t·d, ci] · w[t, ci, co] + b[co]).
 */
export function convRef(x: Ref, kernel: Ref, bias: Ref | null, options: ConvRefOptions): Ref {
  const rank = x.shape.length - 2;
  const [batch, cin] = [x.shape[0], x.shape[rank + 1]];
  const cout = kernel.shape[rank + 1];
  const ks = kernel.shape.slice(0, rank);
  const s = list(options.strides, rank, 1);
  const d = list(options.dilation, rank, 1);
  const axes = x.shape.slice(1, rank + 1).map((size, a) =>
    axis(size, ks[a], s[a], d[a], options.padding === "same")
  );
  const outShape = [batch, ...axes.map((a) => a.out), cout];
  const xs = stridesOf(x.shape), ws = stridesOf(kernel.shape);
  const y = new Float64Array(outShape.reduce((a, b) => a * b, 1));
  let o = 0;
  for (const [n, ...rest] of indices(outShape)) {
    const pos = rest.slice(0, rank), co = rest[rank];
    let acc = bias ? bias.data[co] : 0;
    for (const tap of indices(ks)) {
      const src = pos.map((p, a) => p * s[a] - axes[a].before + tap[a] * d[a]);
      if (src.some((v, a) => v < 0 || v >= x.shape[a + 1])) continue;
      let xi = n * xs[0];
      src.forEach((v, a) => xi += v * xs[a + 1]);
      let wi = 0;
      tap.forEach((v, a) => wi += v * ws[a]);
      for (let ci = 0; ci < cin; ci++) acc += x.data[xi + ci] * kernel.data[wi + ci * cout + co];
    }
    y[o++] = options.activation ? activationRef(options.activation, acc, options.alpha) : acc;
  }
  return { shape: outShape, data: y };
}

export interface ConvTransposeRefOptions extends Omit<ConvRefOptions, "dilation"> {
  outputPadding?: number[];
}

/**
 * Keras Conv2DTranspose: x [N, H, W, Cin], kernel [kh, kw, Cout, Cin]; every input pixel adds
 * x·w to the output window that starts at i·s − p (the gradient of a conv, written as a
 * scatter). Output sizes follow Keras's deconv_output_length.
 */
export function convTransposeRef(
  x: Ref,
  kernel: Ref,
  bias: Ref | null,
  options: ConvTransposeRefOptions,
): Ref {
  const [batch, h, w, cin] = x.shape;
  const [kh, kw, cout] = kernel.shape;
  const s = list(options.strides, 2, 1);
  const same = options.padding === "same";
  const sizes = [h, w].map((size, a) => {
    const k = [kh, kw][a];
    const extra = options.outputPadding?.[a];
    const out = extra === undefined
      ? (same ? size * s[a] : size * s[a] + Math.max(k - s[a], 0))
      : (size - 1) * s[a] + k - 2 * (same ? Math.floor(k / 2) : 0) + extra;
    const before = same ? Math.floor(Math.max((size - 1) * s[a] + k - out, 0) / 2) : 0;
    return { out, before };
  });
  const [oh, ow] = [sizes[0].out, sizes[1].out];
  const y = new Float64Array(batch * oh * ow * cout);
  for (let n = 0; n < batch; n++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        for (let a = 0; a < kh; a++) {
          for (let b = 0; b < kw; b++) {
            const r = i * s[0] - sizes[0].before + a, c = j * s[1] - sizes[1].before + b;
            if (r < 0 || r >= oh || c < 0 || c >= ow) continue;
            for (let co = 0; co < cout; co++) {
              let acc = 0;
              for (let ci = 0; ci < cin; ci++) {
                acc += x.data[((n * h + i) * w + j) * cin + ci] *
                  kernel.data[((a * kw + b) * cout + co) * cin + ci];
              }
              y[((n * oh + r) * ow + c) * cout + co] += acc;
            }
          }
        }
      }
    }
  }
  for (let k = 0; k < y.length; k++) {
    const z = y[k] + (bias ? bias.data[k % cout] : 0);
    y[k] = options.activation ? activationRef(options.activation, z, options.alpha) : z;
  }
  return { shape: [batch, oh, ow, cout], data: y };
}
