import assert from "../assert.ts";
import { matmul, type MatmulOptions } from "../../engine/ops/matmul.ts";
import {
  MATMUL_SPLIT_K,
  MATMUL_TILES,
  type MatmulActivation,
} from "../../engine/shaders/matmul.ts";
import { runtime } from "../../engine/runtime.ts";
import { Tensor } from "../../engine/tensor.ts";
import { assertClose, checkOp, ref, underEachTable } from "../helpers.ts";
import { matmulRef } from "../reference/matmul.ts";
import { type OpCheckTest, opCheckTests } from "./suite.ts";

const { test, tests } = opCheckTests("matmul");

const ACTIVATIONS: MatmulActivation[] = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu"];
export const TRANSPOSES = [[false, false], [false, true], [true, false], [true, true]] as const;

/** Runs `body` with each layout's tiles: the storage-direct (CPU) and shared-memory (GPU) kernels. */
export function underEachLayout(body: (layout: string) => Promise<void>): Promise<void> {
  return underEachTable(MATMUL_TILES, body);
}

export function shapes(m: number, k: number, n: number, transA: boolean, transB: boolean) {
  return { a: transA ? [k, m] : [m, k], b: transB ? [n, k] : [k, n] };
}

/** Options with the bias given as its length N. */
type CheckOptions = Omit<MatmulOptions, "bias"> & { bias?: number };

/** Forward against the reference and gradients of a, b (and bias) by finite differences. */
function check(
  name: string,
  a: number[],
  b: number[],
  options: CheckOptions = {},
  tol: { atol?: number; gradAtol?: number; low?: number; high?: number } = {},
): Promise<void> {
  const { bias, ...rest } = options;
  const range = { low: tol.low, high: tol.high };
  // The kernel's specialisation: layout, transposes, vec4 lanes per operand, batch, epilogue.
  const [m, k] = options.transA ? [a.at(-1)!, a.at(-2)!] : [a.at(-2)!, a.at(-1)!];
  const n = options.transB ? b.at(-2)! : b.at(-1)!;
  const lanes = [m, k, n].map((d) => d % 4 === 0 ? 4 : 1).join(".");
  // Batched cases vary the batch strides, not the tile: one per layout and lanes.
  const batched = a.length > 2 || b.length > 2;
  const variant = [
    name.split(" ")[0],
    batched ? "batched" : `t${Number(options.transA ?? false)}${Number(options.transB ?? false)}`,
    lanes,
    options.activation ?? "",
    bias ? "bias" : "",
  ].join(" ");
  return checkOp({
    variant,
    name: `matmul ${name} a${JSON.stringify(a)} b${JSON.stringify(b)} ${JSON.stringify(options)}`,
    inputs: [{ shape: a, ...range }, { shape: b, ...range }, ...(bias ? [{ shape: [bias] }] : [])],
    gpu: (x, y, c) => matmul(x, y, { ...rest, bias: c }),
    ref: (x, y, c) => matmulRef(x, y, { ...rest, bias: c }),
    atol: tol.atol ?? 2e-5,
    gradAtol: tol.gradAtol,
  });
}

test("matmul: odd shapes, every transpose combination, forward and gradients", async () => {
  await underEachLayout(async (layout) => {
    // [M, K, N]: scalars, sizes off every tile, K = 1, multiples of 4 (vec4 paths), and narrow
    // outputs (the CPU table's tiles for N ≤ 16 and, rows on the SIMD axis, N ≤ 12).
    const sizes = [
      [1, 1, 1],
      [3, 5, 7],
      [33, 17, 65],
      [5, 1, 6],
      [8, 12, 16],
      [70, 9, 10],
      [70, 12, 8],
    ];
    for (const [m, k, n] of sizes) {
      for (const [transA, transB] of TRANSPOSES) {
        const s = shapes(m, k, n, transA, transB);
        await check(`${layout} ${m}×${k}×${n}`, s.a, s.b, { transA, transB });
      }
    }
  });
});

// Shapes below keep M, K and N odd where the point is not the vec4 paths, so the cases share
// compiled kernels (each new specialisation costs a compile on lavapipe).
test("matmul: batched, with and without broadcasting", async () => {
  await underEachLayout(async (layout) => {
    const cases: [number[], number[], CheckOptions][] = [
      // B shared by every batch (folded into M), and its gradient summed over the batch.
      [[3, 5, 7], [7, 9], {}],
      [[2, 3, 5, 7], [7, 3], {}],
      // Same batch on both sides.
      [[3, 5, 7], [3, 7, 9], {}],
      [[2, 3, 5, 7], [2, 3, 9, 7], { transB: true }],
      // A shared by every batch.
      [[5, 7], [3, 7, 9], {}],
      [[7, 5], [3, 9, 7], { transA: true, transB: true }],
      // Transposed batched A with a shared B: dB sums over the batch inside the kernel.
      [[3, 7, 5], [7, 9], { transA: true }],
      [[4, 8, 5], [7, 8], { transA: true, transB: true }],
      // Both sides broadcast against each other, with size-1 axes in between.
      [[2, 1, 5, 7], [3, 7, 9], {}],
      [[2, 1, 3, 5, 7], [1, 3, 1, 9, 7], { transB: true }],
      [[1, 3, 7, 5], [2, 1, 7, 9], { transA: true }],
      // Four batch dimensions that cannot be merged (the kernel's limit).
      [[2, 1, 2, 1, 5, 7], [1, 3, 1, 3, 7, 9], {}],
      // vec4 operands with batch strides.
      [[3, 8, 12], [3, 12, 16], {}],
    ];
    for (const [a, b, options] of cases) await check(`${layout} batched`, a, b, options);
  });
});

test("matmul: split-K transposed-A products, forward and gradients", async () => {
  const rt = runtime();
  // Many workgroups wanted and short chunks, so these small products split.
  const eager = { workgroups: 64, perThread: false, minDepth: 8 };
  const launches = async (a: number[], b: number[]) => {
    const x = Tensor.uniform(a, -1, 1), y = Tensor.uniform(b, -1, 1);
    await Promise.all([x.data(), y.data()]); // their fills are not counted below
    const before = rt.poolStats().dispatches;
    matmul(x, y, { transA: true }).dispose();
    x.dispose();
    y.dispose();
    return rt.poolStats().dispatches - before;
  };
  try {
    await underEachLayout(async (layout) => {
      const cases: [number[], number[], number][] = [
        // [K, M] · [K, N]: K = 105 runs as 7 chunks of 15; 96 as 12 chunks of 8 (vec4 lanes);
        // a batch beside the chunks; K = 101 (prime) has no divisor and runs whole.
        [[105, 7], [105, 9], 7],
        [[96, 8], [96, 12], 12],
        [[3, 40, 5], [3, 40, 9], 5],
        [[101, 7], [101, 9], 1],
      ];
      for (const [a, b, splits] of cases) {
        // Split, the product is two launches (partials, then their sum) where it was one; each
        // launch brings the same extra dispatches (poisoned outputs, NaN checks) in tests.
        MATMUL_SPLIT_K.set({ ...eager, minDepth: Infinity });
        const whole = await launches(a, b);
        MATMUL_SPLIT_K.set(eager);
        const split = await launches(a, b);
        assert.equal(split, splits > 1 ? 2 * whole : whole, `${JSON.stringify(a)}: dispatches`);
        await check(`${layout} split ${splits}`, a, b, { transA: true });
      }
      // A plain product's weight gradient (Xᵀ·dY over 210 rows) splits inside the backward.
      await check(`${layout} split dW`, [210, 7], [7, 5]);
    });
  } finally {
    MATMUL_SPLIT_K.set(null);
  }
});

test("matmul: bias and every activation, forward and gradients", async () => {
  await underEachLayout(async (layout) => {
    // The epilogue is shared by both layouts: every activation on one, two on the other.
    const activations = layout === "cpu" ? ACTIVATIONS : ["gelu"] as const;
    for (const activation of [undefined, ...activations]) {
      await check(`${layout}`, [7, 9], [9, 11], { activation, bias: 11 }, { low: -2, high: 2 });
    }
    // The vec4 epilogue with transposes and batches; no bias.
    for (const activation of [undefined, "gelu"] as const) {
      await check(`${layout}`, [2, 9, 8], [16, 9], {
        activation,
        bias: 16,
        transA: true,
        transB: true,
      }, { low: -2, high: 2 });
    }
    await check(`${layout} no bias`, [4, 5], [3, 4, 8], { activation: "gelu", transA: true });
  });
  await check("leaky slope", [6, 5], [5, 9], { activation: "leaky_relu", alpha: 0.05, bias: 9 });
  // A Dense layer: the input needs no gradient, the weight and bias do.
  await checkOp({
    name: "matmul with a frozen input",
    inputs: [{ shape: [2, 3, 7], grad: false }, { shape: [7, 5] }, { shape: [5] }],
    gpu: (x, w, c) => matmul(x, w, { bias: c, activation: "tanh" }),
    ref: (x, w, c) => matmulRef(x, w, { bias: c, activation: "tanh" }),
  });
});

test("matmul: large magnitudes stay finite and accurate, activations saturate", async () => {
  await underEachLayout(async (layout) => {
    await check(`${layout} large values`, [9, 63], [63, 13], {}, {
      low: -100,
      high: 100,
      atol: 1e-1,
      gradAtol: 1e-2,
    });
  });
  for (const activation of ACTIVATIONS) {
    const a = Tensor.from([1e4, -1e4, 30, -30, 0, 1e-3], [6, 1]);
    const b = Tensor.from([1, 4], [1, 2]);
    const bias = Tensor.zeros([2]);
    const got = await matmul(a, b, { activation, bias }).data();
    const exp = matmulRef(ref([6, 1], await a.data()), ref([1, 2], [1, 4]), { activation });
    assert.ok(got.every(Number.isFinite), `${activation}: ${got}`);
    assertClose(got, exp.data, { atol: 1e-6, rtol: 1e-5, what: activation });
  }
});

export const MATMUL_CHECKS: OpCheckTest[] = tests;
