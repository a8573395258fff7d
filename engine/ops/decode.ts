// Free-running GRU decoding with an optional attention memory, all steps in one dispatch
// (equations and the forward kernel in shaders/decode.ts, the backward in decode_backward.ts,
// buffer layouts and loop counts in shaders/decode_layout.ts). Composed from primitives, every
// decoded step costs ~50 small dispatches forward and backward (cell, key/value/query, concat of
// the memory, attention, gate, read-out, their gradients and the weight-gradient sums); here the
// forward is ONE dispatch (after a pad of the read-out's weights to whole vec4 rows), the backward
// one dispatch plus one matmul and one column sum per weight over all B·S (row, step) pairs.
import { formatShape, Tensor } from "../tensor.ts";
import { type Node, noGrad, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import { DECODE_TUNING, decodeForwardKernel } from "../shaders/decode.ts";
import { decodeBackwardKernel } from "../shaders/decode_backward.ts";
import {
  type DecodeDims,
  decodeLoopIterations,
  type DecodeShape,
  decodeSharedBytes,
  gradLayout,
  rowsThatFit,
  savedLayout,
  weightLayout,
} from "../shaders/decode_layout.ts";
import { matmul } from "./matmul.ts";
import { sum } from "./reduce.ts";
import { narrow, pad, stack } from "./shape.ts";

interface DecodeAttrs {
  gru_decode: DecodeDims & { batch: number; scale: number };
}

/** The episodic memory read at every decoded step (shapes for key size K, context length M). */
export interface DecodeMemory {
  /** Keys and values of the M context steps, [B, M, K]. */
  keys: Tensor;
  values: Tensor;
  /** [H + I, K] and [K]: the query from [h_s; x_s]. */
  queryWeight: Tensor;
  queryBias: Tensor;
  /** [I, K]; keyBias [S, K] is the bias of each decoded step's key (e.g. positions). */
  keyWeight: Tensor;
  keyBias: Tensor;
  valueWeight: Tensor;
  valueBias: Tensor;
  /** [H + K, H], [H]: g = σ([h; c]·W_g + b_g). */
  gateWeight: Tensor;
  gateBias: Tensor;
  /** [K, H], [H]: tanh(c·W_c + b_c). */
  contextWeight: Tensor;
  contextBias: Tensor;
  /** Keys visible to each query: the last `window` (0 or omitted: all past keys). */
  window?: number;
  /** Score scale (default 1/√K). */
  scale?: number;
}

export interface DecodeArgs {
  /** Initial state [B, H] and the first step's content [B, C]. */
  h0: Tensor;
  content0: Tensor;
  /** Per-step flags appended to the content, [B, S, F]: the step input is [content; flags]. */
  flags: Tensor;
  /** GRU (Keras reset_after): kernel [I, 3H], recurrentKernel [H, 3H], bias [2, 3H]. */
  kernel: Tensor;
  recurrentKernel: Tensor;
  bias: Tensor;
  /** Read-out [H, C] (or [2H, C] with memory) and [C]. */
  outWeight: Tensor;
  outBias: Tensor;
  memory?: DecodeMemory;
  /** Also return each step's attention weights [B, S, M + S] (zero where not visible). */
  returnWeights?: boolean;
}

export interface DecodeResult {
  /** [B, S, C]: the prediction of each step, fed back as the next step's content. */
  predictions: Tensor;
  weights?: Tensor;
}

const WEIGHT_NAMES = [
  ["kernel", "kernel"],
  ["recurrentKernel", "recurrent"],
  ["bias", "gruBias"],
  ["outWeight", "outWeight"],
  ["outBias", "outBias"],
] as const;
const MEMORY_NAMES = [
  ["queryWeight", "queryWeight"],
  ["queryBias", "queryBias"],
  ["keyWeight", "keyWeight"],
  ["keyBias", "keyBias"],
  ["valueWeight", "valueWeight"],
  ["valueBias", "valueBias"],
  ["gateWeight", "gateWeight"],
  ["gateBias", "gateBias"],
  ["contextWeight", "contextWeight"],
  ["contextBias", "contextBias"],
] as const;
function dimsOf(args: DecodeArgs): DecodeDims {
  const op = "gruDecode";
  const { h0, content0, flags } = args;
  for (const t of [h0, content0, flags]) t.assertAlive(op);
  if (h0.rank !== 2 || content0.rank !== 2 || flags.rank !== 3) {
    throw new Error(
      `${op}: h0 ${formatShape(h0.shape)}, content0 ${formatShape(content0.shape)}, flags ` +
        `${formatShape(flags.shape)}; expected [B, H], [B, C] and [B, S, F]`,
    );
  }
  const [B, H] = h0.shape;
  const C = content0.shape[1];
  const [, S, F] = flags.shape;
  const K = args.memory?.keys.shape[2] ?? 0;
  const M = args.memory?.keys.shape[1] ?? 0;
  const I = C + F;
  const expect = (name: string, t: Tensor, shape: number[]) => {
    t.assertAlive(op);
    if (t.dtype !== "f32" || t.shape.join() !== shape.join()) {
      throw new Error(
        `${op}: ${name} is ${t.dtype} of shape ${formatShape(t.shape)}; expected f32 of shape ` +
          formatShape(shape),
      );
    }
  };
  expect("content0", content0, [B, C]);
  expect("flags", flags, [B, S, F]);
  expect("kernel", args.kernel, [I, 3 * H]);
  expect("recurrentKernel", args.recurrentKernel, [H, 3 * H]);
  expect("bias", args.bias, [2, 3 * H]);
  expect("outWeight", args.outWeight, [(K ? 2 : 1) * H, C]);
  expect("outBias", args.outBias, [C]);
  const m = args.memory;
  if (m) {
    expect("memory.keys", m.keys, [B, M, K]);
    expect("memory.values", m.values, [B, M, K]);
    expect("memory.queryWeight", m.queryWeight, [H + I, K]);
    expect("memory.queryBias", m.queryBias, [K]);
    expect("memory.keyWeight", m.keyWeight, [I, K]);
    expect("memory.keyBias", m.keyBias, [S, K]);
    expect("memory.valueWeight", m.valueWeight, [I, K]);
    expect("memory.valueBias", m.valueBias, [K]);
    expect("memory.gateWeight", m.gateWeight, [H + K, H]);
    expect("memory.gateBias", m.gateBias, [H]);
    expect("memory.contextWeight", m.contextWeight, [K, H]);
    expect("memory.contextBias", m.contextBias, [H]);
    const window = m.window ?? 0;
    if (!Number.isInteger(window) || window < 0) {
      throw new Error(`${op}: memory.window is ${window}; expected an integer ≥ 0 (0 = all)`);
    }
    if (K < 4 || K % 4 !== 0 || M < 1) {
      throw new Error(
        `${op}: memory.keys ${formatShape(m.keys.shape)}; expected [B, M ≥ 1, K] with K a ` +
          `multiple of 4 (keys and values are read as vec4)`,
      );
    }
  }
  if (B < 1 || S < 1 || H < 4 || H % 4 !== 0 || C < 1) {
    throw new Error(
      `${op}: batch ${B}, steps ${S}, units ${H}, content ${C}; expected batch, steps and ` +
        `content ≥ 1 and units a multiple of 4 (the cell reads its weights as vec4)`,
    );
  }
  const tuning = DECODE_TUNING.get();
  const shape: DecodeShape = {
    hidden: H,
    content: C,
    flags: F,
    steps: S,
    keyDim: K,
    memory: M,
    window: m?.window ?? 0,
  };
  const device = runtime().device.limits;
  // Each row of a workgroup keeps its state in workgroup memory: fewer rows where it would not
  // fit. Few lanes loop more times each: more lanes where the loops would pass the budget.
  const budget = runtime().loopBudget;
  const laneCounts = [tuning.lanes, 64, 128, 256].filter((n) =>
    n >= tuning.lanes && n <= device.maxComputeInvocationsPerWorkgroup
  );
  let tried: DecodeDims | undefined;
  for (const lanes of new Set(laneCounts)) {
    const dims: DecodeDims = { ...shape, rows: Math.min(tuning.rows, B), lanes };
    const rows = rowsThatFit(dims, device.maxComputeWorkgroupStorageSize);
    if (rows === 0) {
      throw new Error(
        `${op}: one batch row needs ${decodeSharedBytes({ ...dims, rows: 1 })} bytes of ` +
          `workgroup memory (units ${H}, context ${M} + ${S} steps), over the adapter's ` +
          `${device.maxComputeWorkgroupStorageSize}`,
      );
    }
    tried = { ...dims, rows };
    const { forward, backward } = decodeLoopIterations(tried);
    if (Math.max(forward, backward) <= budget) return tried;
  }
  // The launch refuses it and names the budget.
  return tried!;
}

/** Tensors in the node's input order (gradients come back in the same order). */
function inputsOf(args: DecodeArgs): Tensor[] {
  const list = [args.h0, args.content0, args.flags, ...WEIGHT_NAMES.map(([k]) => args[k])];
  const m = args.memory;
  if (m) list.push(m.keys, m.values, ...MEMORY_NAMES.map(([k]) => m[k]));
  return list;
}

/** sizes[0] = (batch, scale bits, H, I), sizes[1] = (K, C, 0, 0), zero = 0 (see the shader). */
function params(batch: number, scale: number, d: DecodeDims) {
  const scaleBits = new Uint32Array(Float32Array.of(scale).buffer)[0];
  return {
    sizes: [batch, scaleBits, d.hidden, d.content + d.flags, d.keyDim, d.content],
    zero: 0,
  };
}

/** Copies plane `name` ([B·S, width] at its offset in `buffer`) into a tensor of its own. */
function plane(
  buffer: Tensor,
  at: Record<string, [number, number]>,
  name: string,
  rowsTotal: number,
): Tensor {
  const [offset, width] = at[name];
  const out = Tensor.empty([rowsTotal, width]);
  runtime().copy(buffer.storage, offset * rowsTotal * 4, out.storage, 0, rowsTotal * width * 4);
  return out;
}

/**
 * Forward FLOPs of a decode: the GRU cell's products, the read-out and, with memory, the key,
 * value, query, gate and context products and the attention over on average M + S/2 keys.
 */
export function decodeFlops(d: DecodeShape, batch: number): number {
  const { hidden: H, content: C, keyDim: K, memory: M, steps: S } = d;
  const I = C + d.flags;
  const macs = 3 * H * (I + H) + C * (K ? 2 * H : H) +
    (K ? K * (3 * I + H) + 2 * K * (M + (S + 1) / 2) + H * (H + 2 * K) : 0);
  return 2 * macs * batch * S;
}

/**
 * Decodes S steps free-running: x_s = [content_{s-1}; flags_s], h_s = GRU(x_s, h_{s-1}), the
 * prediction ŷ_s from h_s (and, with `memory`, from attention over the context keys and every
 * decoded step's key so far) becomes content_s. Differentiable in everything but `flags`.
 */
export function gruDecode(args: DecodeArgs): DecodeResult {
  const d = dimsOf(args);
  const B = args.h0.shape[0];
  const { steps: S, hidden: H, content: C, keyDim: K, memory: M } = d;
  const rt = runtime();
  const inputs = inputsOf(args);
  const weights = weightLayout(d);
  const packed = Tensor.empty([weights.total]);
  const named: [string, Tensor][] = WEIGHT_NAMES.map(([k, n]) => [n, args[k]]);
  const m = args.memory;
  if (m) named.push(...MEMORY_NAMES.map(([k, n]) => [n, m[k]] as [string, Tensor]));
  // The read-out's rows padded to whole vec4 (zeros), as the kernels read them.
  const padding = 4 * Math.ceil(C / 4) - C;
  const outRows = padding ? noGrad(() => pad(args.outWeight, [], [0, padding])) : null;
  for (const [name, t] of named) {
    const source = name === "outWeight" && outRows ? outRows : t;
    rt.copy(source.storage, 0, packed.storage, weights.at[name][0] * 4, source.size * 4);
  }
  outRows?.dispose();
  const saved = Tensor.empty([savedLayout(d).total * B * S]);
  // Every key and value, [B, M + S, 2, K]: the kernel copies the context's in and appends each
  // decoded step's, so the attention reads one array without branches.
  const kv = m ? Tensor.empty([B, M + S, 2, K]) : null;
  const predictions = Tensor.empty([B, S, C]);
  const state0 = Tensor.empty([B * (H + C)]);
  rt.copy(args.h0.storage, 0, state0.storage, 0, B * H * 4);
  rt.copy(args.content0.storage, 0, state0.storage, B * H * 4, B * C * 4);
  const scale = m?.scale ?? 1 / Math.sqrt(Math.max(K, 1));
  const { read: spareRead, write: spareWrite } = runtime().spares();
  rt.launch(decodeForwardKernel(d), {
    buffers: [
      packed.storage,
      state0.storage,
      args.flags.storage,
      m?.keys.storage ?? spareRead,
      m?.values.storage ?? spareRead,
      predictions.storage,
      saved.storage,
      kv?.storage ?? spareWrite,
    ],
    params: params(B, scale, d),
    groups: [Math.ceil(B / d.rows)],
    flops: decodeFlops(d, B),
    loopIterations: decodeLoopIterations(d).forward,
    outputs: [predictions],
    op: "gru_decode",
  });
  let attention: Tensor | undefined;
  if (args.returnWeights && m) {
    attention = plane(saved, savedLayout(d).at, "probs", B * S);
    const shaped = attention.reshape([B, S, M + S]);
    attention.dispose();
    attention = shaped;
  }
  const keep = kv ? [packed, saved, kv] : [packed, saved];
  record("gru_decode", predictions, inputs, keep, { ...d, batch: B, scale });
  for (const t of [packed, saved, state0, kv]) t?.dispose();
  return attention ? { predictions, weights: attention } : { predictions };
}

function decodeGrad(grad: Tensor, node: Node<DecodeAttrs["gru_decode"]>): (Tensor | null)[] {
  const { batch: B, scale, ...d } = node.attrs;
  const { steps: S, hidden: H, content: C, keyDim: K, memory: M } = d;
  const NS = B * S;
  const [packed, saved, kv] = node.saved;
  const rt = runtime();
  const grads = Tensor.empty([gradLayout(d).total * NS]);
  const dstate = Tensor.empty([B * (H + C)]);
  const { read: spareRead } = runtime().spares();
  rt.launch(decodeBackwardKernel(d), {
    buffers: [
      packed.storage,
      grad.storage,
      saved.storage,
      kv?.storage ?? spareRead,
      grads.storage,
      dstate.storage,
    ],
    params: params(B, scale, d),
    groups: [Math.ceil(B / d.rows)],
    loopIterations: decodeLoopIterations(d).backward,
  });
  const wants = node.inputs.map((t) => t.requiresGrad);
  const sv = savedLayout(d).at, gl = gradLayout(d).at;
  const cache = new Map<string, Tensor>();
  const savedPlane = (n: string) => cache.get(n) ?? cache.set(n, plane(saved, sv, n, NS)).get(n)!;
  const gradPlane = (n: string) => cache.get(n) ?? cache.set(n, plane(grads, gl, n, NS)).get(n)!;
  const weight = (i: number, input: string, dy: string) =>
    wants[i] ? matmul(savedPlane(input), gradPlane(dy), { transA: true }) : null;
  const colSum = (i: number, dy: string) => wants[i] ? sum(gradPlane(dy), 0) : null;
  const slice = (t: Tensor, offset: number, shape: number[]) => {
    const out = Tensor.empty(shape);
    rt.copy(t.storage, offset * 4, out.storage, 0, out.size * 4);
    return out;
  };
  const out: (Tensor | null)[] = [
    wants[0] ? slice(dstate, 0, [B, H]) : null,
    wants[1] ? slice(dstate, B * H, [B, C]) : null,
    null,
    weight(3, "x", "dKernel"),
    weight(4, "hprev", "dRecurrent"),
    wants[5]
      ? noGrad(() => {
        const [bx, bh] = [sum(gradPlane("dKernel"), 0), sum(gradPlane("dRecurrent"), 0)];
        const both = stack([bx, bh], 0);
        bx.dispose();
        bh.dispose();
        return both;
      })
      : null,
    weight(6, "outIn", "dOut"),
    colSum(7, "dOut"),
  ];
  if (K) {
    let keyBias: Tensor | null = null;
    if (wants[13]) {
      const perRow = gradPlane("dKey").reshape([B, S, K]);
      keyBias = sum(perRow, 0);
      perRow.dispose();
    }
    // Context keys and values: dK = Σ_s ds_s ⊗ q_s and dV = Σ_s p_s ⊗ dc_s, batched over B.
    const context = (i: number, weights: Tensor, by: Tensor) => {
      if (!wants[i]) return null;
      const [w3, b3] = [weights.reshape([B, S, M + S]), by.reshape([B, S, K])];
      const full = matmul(w3, b3, { transA: true });
      const rows = narrow(full, 1, 0, M);
      for (const t of [w3, b3, full]) t.dispose();
      return rows;
    };
    out.push(
      context(8, gradPlane("dScore"), savedPlane("query")),
      context(9, savedPlane("probs"), gradPlane("dRead")),
      weight(10, "queryIn", "dQuery"),
      colSum(11, "dQuery"),
      weight(12, "x", "dKey"),
      keyBias,
      weight(14, "x", "dValue"),
      colSum(15, "dValue"),
      weight(16, "gateIn", "dGate"),
      colSum(17, "dGate"),
      weight(18, "context", "dContext"),
      colSum(19, "dContext"),
    );
  }
  for (const t of cache.values()) t.dispose();
  grads.dispose();
  dstate.dispose();
  return out;
}

const decodeRules: Rules<DecodeAttrs> = { gru_decode: decodeGrad };
const record = recorder(decodeRules);
