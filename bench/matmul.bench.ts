// Matmul throughput: squares, the TP1 Dense layer (128×784 · 784×512) and its 10-class head
// (128×512 · 512×10), each with its two backward products, and the batched products of
// attention (b8 h4 s128 d32) on random inputs. The shape column is [batch×]M×N×K; GFLOP/s counts
// 2·M·N·K per product (plus the bias adds).
import { Tensor } from "../engine/tensor.ts";
import { matmul, type MatmulOptions } from "../engine/ops/matmul.ts";
import { benchKernel } from "./lib/kernel.ts";
import { matmulWork } from "./lib/work.ts";

interface Case {
  /** What the shape alone does not say (M×N×K is the shape column). */
  variant?: string;
  batch?: number;
  m: number;
  n: number;
  k: number;
  options?: Omit<MatmulOptions, "bias"> & { bias?: boolean };
}

const CASES: Case[] = [
  ...[256, 512, 1024, 2048].map((s): Case => ({ m: s, n: s, k: s })),
  {
    variant: "Dense forward + bias, relu",
    m: 128,
    n: 512,
    k: 784,
    options: { bias: true, activation: "relu" },
  },
  {
    variant: "Dense dX = dY·Wᵀ",
    m: 128,
    n: 784,
    k: 512,
    options: { transB: true },
  },
  {
    variant: "Dense dW = Xᵀ·dY",
    m: 784,
    n: 512,
    k: 128,
    options: { transA: true },
  },
  {
    variant: "10-class head forward + bias",
    m: 128,
    n: 10,
    k: 512,
    options: { bias: true },
  },
  { variant: "10-class head dX = dY·Wᵀ", m: 128, n: 512, k: 10, options: { transB: true } },
  { variant: "10-class head dW = Xᵀ·dY", m: 512, n: 10, k: 128, options: { transA: true } },
  { variant: "attention scores Q·Kᵀ", batch: 32, m: 128, n: 128, k: 32, options: { transB: true } },
  { variant: "attention P·V", batch: 32, m: 128, n: 32, k: 128 },
];

for (const c of CASES) {
  const { transA = false, transB = false, bias = false, ...rest } = c.options ?? {};
  const batch = c.batch ? [c.batch] : [];
  benchKernel({
    kernel: "matmul",
    variant: c.variant,
    shape: [...batch, c.m, c.n, c.k].join("×"),
    work: matmulWork(c.m, c.n, c.k, { bias, batch: c.batch }),
    setup: () => {
      const a = Tensor.uniform([...batch, ...(transA ? [c.k, c.m] : [c.m, c.k])], -1, 1).keep();
      const b = Tensor.uniform([...batch, ...(transB ? [c.n, c.k] : [c.k, c.n])], -1, 1).keep();
      const options: MatmulOptions = {
        ...rest,
        transA,
        transB,
        bias: bias ? Tensor.uniform([c.n], -1, 1).keep() : undefined,
      };
      return () => matmul(a, b, options).dispose();
    },
  });
}
