// Float64 GRU / LSTM written from the published equations (Keras GRU reset_after=True,
// Cho et al. 2014 with the reset gate applied after the recurrent matmul; Keras LSTM,
// Hochreiter & Schmidhuber 1997 with forget gate, gate order i, f, c, o).
import type { Ref } from "../helpers.ts";

export interface RnnRefOptions {
  h0?: Ref;
  c0?: Ref;
  goBackwards?: boolean;
  /** Order of the returned sequence when going backwards (see RnnSequenceOptions). */
  outputOrder?: "steps" | "time";
}

export interface RnnRefResult {
  /** [B, T, H] */
  sequence: Ref;
  /** [B, H] */
  h: Ref;
  /** [B, H] (LSTM) */
  c: Ref;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** Σ_i a[i] · w[i·cols + col] over i < rows, a read from `aOff`. */
function dot(
  a: Float64Array,
  aOff: number,
  w: Float64Array,
  rows: number,
  cols: number,
  col: number,
) {
  let s = 0;
  for (let i = 0; i < rows; i++) s += a[aOff + i] * w[i * cols + col];
  return s;
}

function run(
  cell: "gru" | "lstm",
  x: Ref,
  kernel: Ref,
  recurrentKernel: Ref,
  bias: Ref,
  options: RnnRefOptions,
): RnnRefResult {
  const [B, T, I] = x.shape;
  const H = recurrentKernel.shape[0];
  const G = cell === "gru" ? 3 : 4;
  const GH = G * H;
  const seq = new Float64Array(B * T * H);
  const hOut = new Float64Array(B * H);
  const cOut = new Float64Array(B * H);
  for (let b = 0; b < B; b++) {
    let h = options.h0 ? options.h0.data.slice(b * H, (b + 1) * H) : new Float64Array(H);
    let c = options.c0 ? options.c0.data.slice(b * H, (b + 1) * H) : new Float64Array(H);
    for (let s = 0; s < T; s++) {
      const t = options.goBackwards ? T - 1 - s : s;
      const xOff = (b * T + t) * I;
      const xp = new Float64Array(GH);
      const hp = new Float64Array(GH);
      for (let k = 0; k < GH; k++) {
        xp[k] = dot(x.data, xOff, kernel.data, I, GH, k);
        hp[k] = dot(h, 0, recurrentKernel.data, H, GH, k);
      }
      const hNew = new Float64Array(H);
      const cNew = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        if (cell === "gru") {
          // bias row 0 goes with the input projection, row 1 with the recurrent one.
          const bi = (k: number) => bias.data[k];
          const br = (k: number) => bias.data[GH + k];
          const z = sigmoid(xp[j] + bi(j) + hp[j] + br(j));
          const r = sigmoid(xp[H + j] + bi(H + j) + hp[H + j] + br(H + j));
          const n = Math.tanh(xp[2 * H + j] + bi(2 * H + j) + r * (hp[2 * H + j] + br(2 * H + j)));
          hNew[j] = z * h[j] + (1 - z) * n;
        } else {
          const pre = (g: number) => xp[g * H + j] + hp[g * H + j] + bias.data[g * H + j];
          const i = sigmoid(pre(0));
          const f = sigmoid(pre(1));
          const g = Math.tanh(pre(2));
          const o = sigmoid(pre(3));
          cNew[j] = f * c[j] + i * g;
          hNew[j] = o * Math.tanh(cNew[j]);
        }
      }
      h = hNew;
      c = cNew;
      const pos = options.goBackwards && (options.outputOrder ?? "steps") === "steps" ? s : t;
      seq.set(h, (b * T + pos) * H);
    }
    hOut.set(h, b * H);
    cOut.set(c, b * H);
  }
  return {
    sequence: { shape: [B, T, H], data: seq },
    h: { shape: [B, H], data: hOut },
    c: { shape: [B, H], data: cOut },
  };
}

/** GRU, Keras reset_after=True: kernel [in, 3H] (z, r, h), recurrentKernel [H, 3H], bias [2, 3H]. */
export function gruRef(
  x: Ref,
  kernel: Ref,
  recurrentKernel: Ref,
  bias: Ref,
  options: RnnRefOptions = {},
): RnnRefResult {
  return run("gru", x, kernel, recurrentKernel, bias, options);
}

/** LSTM, Keras gate order i, f, c, o: kernel [in, 4H], recurrentKernel [H, 4H], bias [4H]. */
export function lstmRef(
  x: Ref,
  kernel: Ref,
  recurrentKernel: Ref,
  bias: Ref,
  options: RnnRefOptions = {},
): RnnRefResult {
  return run("lstm", x, kernel, recurrentKernel, bias, options);
}
