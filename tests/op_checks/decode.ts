import assert from "../assert.ts";
import { type DecodeArgs, gruDecode } from "../../engine/ops/decode.ts";
import { decodeSharedBytes, rowsThatFit } from "../../engine/shaders/decode_layout.ts";
import { runtime } from "../../engine/runtime.ts";
import { Tensor } from "../../engine/tensor.ts";
import { decodeRef } from "../reference/decode.ts";
import { checkOp, type InputSpec } from "../helpers.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("decode");

export interface Case {
  B: number;
  H: number;
  C: number;
  F: number;
  S: number;
  /** Key size and context length; K = 0: no memory. */
  K: number;
  M: number;
  window: number;
}

function inputs({ B, H, C, F, S, K, M }: Case): InputSpec[] {
  const I = C + F;
  const list: InputSpec[] = [
    { shape: [B, H] },
    { shape: [B, C] },
    { shape: [B, S, F], grad: false },
    { shape: [I, 3 * H] },
    { shape: [H, 3 * H] },
    { shape: [2, 3 * H] },
    { shape: [(K ? 2 : 1) * H, C] },
    { shape: [C] },
  ];
  if (K) {
    list.push(
      { shape: [B, M, K] },
      { shape: [B, M, K] },
      { shape: [H + I, K] },
      { shape: [K] },
      { shape: [I, K] },
      { shape: [S, K] },
      { shape: [I, K] },
      { shape: [K] },
      { shape: [H + K, H] },
      { shape: [H] },
      { shape: [K, H] },
      { shape: [H] },
    );
  }
  return list;
}

const MEMORY_KEYS = [
  "keys",
  "values",
  "queryWeight",
  "queryBias",
  "keyWeight",
  "keyBias",
  "valueWeight",
  "valueBias",
  "gateWeight",
  "gateBias",
  "contextWeight",
  "contextBias",
] as const;

/** The memory arguments, named in MEMORY_KEYS order, from the trailing inputs. */
function memoryOf<T>(m: T[], window: number) {
  return {
    ...Object.fromEntries(MEMORY_KEYS.map((k, i) => [k, m[i]])) as Record<
      typeof MEMORY_KEYS[number],
      T
    >,
    window,
  };
}

/** gruDecode's arguments from tensors in `inputs(c)` order. */
function argsOf(c: Case, tensors: Tensor[]): DecodeArgs {
  const [h0, content0, flags, kernel, recurrentKernel, bias, outWeight, outBias, ...m] = tensors;
  return {
    h0,
    content0,
    flags,
    kernel,
    recurrentKernel,
    bias,
    outWeight,
    outBias,
    memory: c.K ? memoryOf(m, c.window) : undefined,
  };
}

/** gruDecode's arguments for case `c`, every tensor made by `make` from its shape. */
export function decodeArgs(c: Case, make: (shape: number[]) => Tensor): DecodeArgs {
  return argsOf(c, inputs(c).map(({ shape }) => make([...shape])));
}

function decode(c: Case, tensors: Tensor[]): Tensor {
  return gruDecode(argsOf(c, tensors)).predictions;
}

function check(c: Case): Promise<void> {
  return checkOp({
    name: `gruDecode B${c.B} H${c.H} C${c.C} F${c.F} S${c.S} K${c.K} M${c.M} window ${c.window}`,
    inputs: inputs(c),
    gpu: (...tensors) => decode(c, tensors),
    ref: (h0, content0, flags, kernel, recurrentKernel, bias, outWeight, outBias, ...m) =>
      decodeRef(
        h0,
        content0,
        flags,
        kernel,
        recurrentKernel,
        bias,
        outWeight,
        outBias,
        c.K ? memoryOf(m, c.window) : undefined,
      ),
  });
}

test("gruDecode: no memory, against float64 and finite differences", async () => {
  // B 11: full workgroups and a ragged one.
  await check({ B: 11, H: 8, C: 3, F: 2, S: 5, K: 0, M: 0, window: 0 });
});

test("gruDecode: causal memory, against float64 and finite differences", async () => {
  await check({ B: 3, H: 4, C: 3, F: 2, S: 4, K: 4, M: 5, window: 0 });
  await check({ B: 10, H: 8, C: 5, F: 1, S: 3, K: 8, M: 3, window: 0 });
  // Whole vec4 of content and input (no padding), and an odd number of unit vec4 (H 12).
  await check({ B: 6, H: 12, C: 4, F: 4, S: 3, K: 8, M: 6, window: 0 });
});

test("gruDecode: sliding-window memory, against float64 and finite differences", async () => {
  // Window 3 over M 5 context keys: the first query already drops keys 0 … 2.
  await check({ B: 3, H: 4, C: 3, F: 2, S: 4, K: 4, M: 5, window: 3 });
});

test("gruDecode: a long memory runs fewer rows per workgroup, or is refused when one does not fit", () => {
  const limit = runtime().device.limits.maxComputeWorkgroupStorageSize;
  // Each row keeps its scores over every key in workgroup memory: 2,400 context keys take ~9.9 KB
  // a row, so 3 of 6 rows fit in 32 KiB; 32,768 / 4 keys leave no row that fits.
  const dims = { hidden: 4, content: 3, flags: 2, steps: 3, keyDim: 4, window: 0, lanes: 4 };
  const long = { ...dims, memory: 2400, rows: 6 };
  const fits = [1, 2, 3, 4, 5, 6].filter((rows) => decodeSharedBytes({ ...long, rows }) <= limit);
  assert.equal(rowsThatFit(long, limit), fits.at(-1));
  assert.ok(fits.length > 0 && fits.length < 6, `${fits.length} of 6 rows fit`);
  assert.equal(rowsThatFit({ ...long, rows: 2 }, limit), Math.min(2, fits.length));
  assert.equal(rowsThatFit({ ...dims, memory: limit / 4, rows: 8 }, limit), 0);
  // The op refuses such a memory before anything is dispatched.
  const huge = { B: 1, H: 4, C: 3, F: 2, S: 1, K: 4, M: limit / 4, window: 0 };
  const tensors = inputs(huge).map((s) => Tensor.zeros(s.shape));
  assert.throws(
    () => decode(huge, tensors),
    /one batch row needs \d+ bytes of workgroup memory .* over the adapter's/,
  );
  for (const t of tensors) t.dispose();
  return Promise.resolve();
});

export const DECODE_CHECKS: OpCheckTest[] = tests;
