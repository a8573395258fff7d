// Matmul: C = act(op(A)·op(B) + bias) with NumPy-broadcast batch dimensions, transposes read in
// place by the kernel, and a fused bias/activation epilogue. The backward rule reuses the same
// kernel with flipped transpose flags; gradients of broadcast operands are summed over the
// broadcast batch dimensions inside the kernel.
import { formatShape, type Shape, Tensor } from "../tensor.ts";
import { needsGrad, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import {
  activationGradKernel,
  activationGradLaunch,
  type BatchDim,
  MATMUL_BATCH_SLOTS,
  MATMUL_SPLIT_K,
  MATMUL_TILES,
  type MatmulActivation,
  matmulKernel,
  matmulParams,
  pickTile,
} from "../shaders/matmul.ts";
import { sum } from "./reduce.ts";
import { cpuThreads } from "../tuning.ts";

export type { MatmulActivation };

interface MatmulAttrs {
  matmul: {
    transA: boolean;
    transB: boolean;
    activation: MatmulActivation | null;
    alpha: number;
  };
}

export interface MatmulOptions {
  /** a is [..., K, M] and is read transposed. */
  transA?: boolean;
  /** b is [..., N, K] and is read transposed. */
  transB?: boolean;
  /** [N], added to every row before the activation. */
  bias?: Tensor;
  /** gelu is the exact (erf) form, Keras's default `approximate=False`. */
  activation?: MatmulActivation;
  /** leaky_relu negative slope (default 0.3, as elementwise `leakyRelu` and Keras LeakyReLU). */
  alpha?: number;
}

export const ACTIVATIONS: readonly MatmulActivation[] = [
  "relu",
  "leaky_relu",
  "sigmoid",
  "tanh",
  "gelu",
];
const DEFAULT_LEAKY_ALPHA = 0.3;
const MAX_GROUPS = 65535;

/** 2·M·N·K per output matrix: the FLOP count benchmarks divide by. */
export function matmulFlops(m: number, n: number, k: number, batch = 1): number {
  return 2 * m * n * k * batch;
}

// ---- geometry -----------------------------------------------------------------------------

interface Geometry {
  m: number;
  n: number;
  k: number;
  /** Broadcast batch shape, and each operand's batch shape left-padded with 1s to its rank. */
  batch: number[];
  aBatch: number[];
  bBatch: number[];
}

function describe(name: string, t: Tensor, trans: boolean, rows: string, cols: string): string {
  return `${name} ${formatShape(t.shape)}${trans ? ` (transposed: [..., ${cols}, ${rows}])` : ""}`;
}

function geometry(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Geometry {
  for (const [name, t, layout] of [["a", a, "[..., M, K]"], ["b", b, "[..., K, N]"]] as const) {
    t.assertAlive("matmul");
    if (t.dtype !== "f32") {
      throw new Error(
        `matmul: ${name} is ${t.dtype} of shape ${formatShape(t.shape)}; expected f32`,
      );
    }
    if (t.rank < 2) {
      throw new Error(
        `matmul: ${name} has shape ${formatShape(t.shape)}; expected at least 2 dimensions ` +
          `${layout}`,
      );
    }
  }
  const [m, ka] = transA ? [a.shape[a.rank - 1], a.shape[a.rank - 2]] : a.shape.slice(-2);
  const [kb, n] = transB ? [b.shape[b.rank - 1], b.shape[b.rank - 2]] : b.shape.slice(-2);
  if (ka !== kb) {
    throw new Error(
      `matmul: inner dimensions differ: ${describe("a", a, transA, "M", "K")} has K = ${ka} but ` +
        `${describe("b", b, transB, "K", "N")} has K = ${kb}`,
    );
  }
  const rank = Math.max(a.rank, b.rank) - 2;
  const pad = (t: Tensor) => [...new Array(rank + 2 - t.rank).fill(1), ...t.shape.slice(0, -2)];
  const aBatch = pad(a), bBatch = pad(b);
  const batch = aBatch.map((d, i) => {
    const e = bBatch[i];
    if (d !== e && d !== 1 && e !== 1) {
      throw new Error(
        `matmul: batch dimensions of a ${formatShape(a.shape)} and b ${formatShape(b.shape)} ` +
          `cannot be broadcast (${d} vs ${e} at batch axis ${i}; expected equal sizes or 1)`,
      );
    }
    return Math.max(d, e);
  });
  return { m, n, k: ka, batch, aBatch, bBatch };
}

/** The kernel's view of one product: batch dims to launch over and to sum inside the kernel. */
interface Plan {
  m: number;
  grid: BatchDim[];
  reduce: BatchDim[];
}

/**
 * Collapses batch dims for the kernel. `outBatch[d]` is the full size (a grid dim) or 1 (summed).
 * When A is not transposed and B is shared by every batch, the batches fold into M.
 */
function plan(
  m: number,
  n: number,
  k: number,
  aBatch: number[],
  bBatch: number[],
  outBatch: number[],
  transA: boolean,
): Plan {
  const dims: (BatchDim & { summed: boolean })[] = [];
  let strideA = m * k, strideB = k * n;
  for (let d = aBatch.length - 1; d >= 0; d--) {
    const size = Math.max(aBatch[d], bBatch[d]);
    if (size !== 1) {
      dims.unshift({
        size,
        strideA: aBatch[d] === 1 ? 0 : strideA,
        strideB: bBatch[d] === 1 ? 0 : strideB,
        summed: outBatch[d] === 1,
      });
    }
    strideA *= aBatch[d];
    strideB *= bBatch[d];
  }
  if (!transA && dims.every((d) => !d.summed && d.strideB === 0)) {
    return { m: dims.reduce((p, d) => p * d.size, m), grid: [], reduce: [] };
  }
  // Merge neighbours of the same kind that are contiguous for both operands.
  const merged: typeof dims = [];
  for (const d of dims) {
    const outer = merged[merged.length - 1];
    if (
      outer && outer.summed === d.summed && outer.strideA === d.strideA * d.size &&
      outer.strideB === d.strideB * d.size
    ) {
      merged[merged.length - 1] = { ...d, size: outer.size * d.size };
    } else {
      merged.push(d);
    }
  }
  // The kernel decomposes indices innermost first.
  const strip = ({ size, strideA, strideB }: BatchDim) => ({ size, strideA, strideB });
  return {
    m,
    grid: merged.filter((d) => !d.summed).reverse().map(strip),
    reduce: merged.filter((d) => d.summed).reverse().map(strip),
  };
}

// ---- dispatch -----------------------------------------------------------------------------

interface Gemm {
  a: Tensor;
  b: Tensor;
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  aBatch: number[];
  bBatch: number[];
  outBatch: number[];
  outShape: Shape;
  bias?: Tensor;
  activation: MatmulActivation | null;
  alpha: number;
  /** Also return the pre-activation (for the gelu gradient). */
  savePre: boolean;
}

/** Validates the launch, then encodes it: nothing is allocated or dispatched when it throws. */
function gemm(g: Gemm): { out: Tensor; pre: Tensor | null } {
  const p = plan(g.m, g.n, g.k, g.aBatch, g.bBatch, g.outBatch, g.transA);
  if (p.grid.length > MATMUL_BATCH_SLOTS || p.reduce.length > MATMUL_BATCH_SLOTS) {
    throw new Error(
      `matmul: broadcasting a ${formatShape(g.a.shape)} with b ${formatShape(g.b.shape)} leaves ` +
        `${p.grid.length + p.reduce.length} batch dimensions that cannot be merged ` +
        `(at most ${MATMUL_BATCH_SLOTS})`,
    );
  }
  const batches = p.grid.reduce((q, d) => q * d.size, 1);
  const summed = p.reduce.reduce((q, d) => q * d.size, 1);
  const tile = pickTile(MATMUL_TILES.get(), p.m, g.n, g.k * batches * summed);
  const gx = Math.ceil(g.n / (tile.wx * tile.tn));
  const gy = Math.ceil(p.m / (tile.wy * tile.tm));
  if (gx > MAX_GROUPS || gy > MAX_GROUPS) {
    throw new Error(
      `matmul: a ${p.m}×${g.n} output needs ${gy}×${gx} tiles, over the adapter's ` +
        `${MAX_GROUPS} workgroups per dimension`,
    );
  }
  const splits = splitCount(g, p, gx * gy * batches);
  // A split product writes one partial output per chunk of K (the outermost grid slot), summed
  // below; chunk s starts s·depth rows into both operands.
  const target = Tensor.empty(splits > 1 ? [splits, ...g.outShape] : g.outShape);
  const pre = g.savePre ? Tensor.empty(g.outShape) : null;
  if (target.size === 0) return { out: target, pre };
  const kernel = matmulKernel({
    transA: g.transA,
    transB: g.transB,
    vecA: (g.transA ? p.m : g.k) % 4 === 0,
    vecB: (g.transB ? g.k : g.n) % 4 === 0,
    vecC: g.n % 4 === 0,
    bias: !!g.bias,
    activation: g.activation,
    savePre: g.savePre,
    tile,
  });
  const depth = g.k / splits;
  const grid = splits > 1
    ? [...p.grid, { size: splits, strideA: depth * p.m, strideB: depth * g.n }]
    : p.grid;
  const buffers = [g.a.storage, g.b.storage];
  if (g.bias) buffers.push(g.bias.storage);
  buffers.push(target.storage);
  if (pre) buffers.push(pre.storage);
  const total = batches * splits;
  for (let z0 = 0; z0 < total; z0 += MAX_GROUPS) {
    const gz = Math.min(MAX_GROUPS, total - z0);
    const last = z0 + gz >= total;
    runtime().launch(kernel, {
      buffers,
      params: matmulParams(p.m, g.n, depth, z0, grid, p.reduce, g.alpha),
      groups: [gx, gy, gz],
      flops: matmulFlops(p.m, g.n, depth, gz * summed),
      outputs: last ? [target] : [],
      op: "matmul",
    });
  }
  if (splits === 1) return { out: target, pre };
  const out = sum(target, 0);
  target.dispose();
  return { out, pre };
}

/**
 * How many chunks of K a product runs as (1: not split). Only transposed-A, plain-B products
 * without an epilogue or summed batches split: chunk s of A [K, M] and B [K, N] is then rows
 * s·K/S onward of both, whatever K is. S divides K, is at most what fills the adapter's
 * workgroups, and leaves each chunk `minDepth` rows; a K with no such divisor does not split.
 */
function splitCount(g: Gemm, p: ReturnType<typeof plan>, workgroups: number): number {
  if (!g.transA || g.transB || g.bias || g.activation || p.reduce.length > 0) return 1;
  if (workgroups === 0) return 1;
  if (p.grid.length === MATMUL_BATCH_SLOTS) return 1;
  const s = MATMUL_SPLIT_K.get();
  const target = s.perThread ? s.workgroups * cpuThreads() : s.workgroups;
  const most = Math.min(Math.ceil(target / workgroups), Math.floor(g.k / s.minDepth));
  for (let splits = most; splits > 1; splits--) if (g.k % splits === 0) return splits;
  return 1;
}

// ---- the op -------------------------------------------------------------------------------

/**
 * act(op(a)·op(b) + bias) for a [..., M, K] (or [..., K, M] with transA) and b [..., K, N] (or
 * [..., N, K] with transB); leading batch dimensions broadcast. Returns [...batch, M, N].
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const { bias } = options;
  const activation = options.activation ?? null;
  const geo = geometry(a, b, transA, transB);
  if (activation !== null && !ACTIVATIONS.includes(activation)) {
    throw new Error(
      `matmul: unknown activation '${activation}' (expected ${ACTIVATIONS.join(", ")})`,
    );
  }
  if (options.alpha !== undefined && activation !== "leaky_relu") {
    throw new Error(`matmul: alpha is the leaky_relu slope, but the activation is ${activation}`);
  }
  const alpha = options.alpha ?? DEFAULT_LEAKY_ALPHA;
  if (activation === "leaky_relu" && !(alpha >= 0 && Number.isFinite(alpha))) {
    // The gradient reads the slope's side from the output's sign.
    throw new Error(`matmul: leaky_relu alpha is ${alpha}; expected a finite value ≥ 0`);
  }
  if (bias) {
    bias.assertAlive("matmul");
    if (bias.dtype !== "f32" || bias.rank !== 1 || bias.shape[0] !== geo.n) {
      throw new Error(
        `matmul: bias is ${bias.dtype} of shape ${formatShape(bias.shape)}; expected f32 of ` +
          `shape [${geo.n}] (N of b ${formatShape(b.shape)})`,
      );
    }
  }
  const inputs = bias ? [a, b, bias] : [a, b];
  const recording = needsGrad(inputs);
  const { out, pre } = gemm({
    a,
    b,
    transA,
    transB,
    m: geo.m,
    n: geo.n,
    k: geo.k,
    aBatch: geo.aBatch,
    bBatch: geo.bBatch,
    outBatch: geo.batch,
    outShape: [...geo.batch, geo.m, geo.n],
    bias,
    activation,
    alpha,
    savePre: recording && activation === "gelu",
  });
  const saved = [a, b];
  if (activation) saved.push(pre ?? out);
  record("matmul", out, inputs, saved, { transA, transB, activation, alpha });
  pre?.dispose();
  return out;
}

/**
 * dL/dZ from dL/dY and the saved output (or pre-activation for gelu) of a fused activation
 * epilogue (the conv family's too).
 */
export function activationGrad(
  grad: Tensor,
  saved: Tensor,
  activation: MatmulActivation,
  alpha: number,
): Tensor {
  const dz = Tensor.empty(grad.shape);
  if (dz.size === 0) return dz;
  const vec = dz.size % 4 === 0;
  const { params, groups } = activationGradLaunch(dz.size, vec, alpha);
  runtime().launch(activationGradKernel(activation, vec), {
    buffers: [grad.storage, saved.storage, dz.storage],
    params,
    groups,
    flops: dz.size * 4,
  });
  return dz;
}

const matmulRules: Rules<MatmulAttrs> = {
  matmul: (grad, node) => {
    const [a, b, savedAct] = node.saved;
    const { transA, transB, activation, alpha } = node.attrs;
    const [inA, inB, inBias] = node.inputs;
    const { m, n, k, batch, aBatch, bBatch } = geometry(a, b, transA, transB);
    const dz = activation ? activationGrad(grad, savedAct, activation, alpha) : grad;
    const common = { activation: null, alpha: 0, savePre: false };

    // d op(A) = dZ·op(B)ᵀ and d op(B) = op(A)ᵀ·dZ, written with transpose flags so that each
    // gradient comes out in its input's own layout, summed over the batches it was broadcast to.
    let dA: Tensor | null = null;
    if (inA.requiresGrad) {
      dA = gemm(
        transA
          ? {
            ...common,
            a: b,
            b: dz,
            transA: transB,
            transB: true,
            m: k,
            n: m,
            k: n,
            aBatch: bBatch,
            bBatch: batch,
            outBatch: aBatch,
            outShape: a.shape,
          }
          : {
            ...common,
            a: dz,
            b,
            transA: false,
            transB: !transB,
            m,
            n: k,
            k: n,
            aBatch: batch,
            bBatch,
            outBatch: aBatch,
            outShape: a.shape,
          },
      ).out;
    }
    let dB: Tensor | null = null;
    if (inB.requiresGrad) {
      dB = gemm(
        transB
          ? {
            ...common,
            a: dz,
            b: a,
            transA: true,
            transB: transA,
            m: n,
            n: k,
            k: m,
            aBatch: batch,
            bBatch: aBatch,
            outBatch: bBatch,
            outShape: b.shape,
          }
          : {
            ...common,
            a,
            b: dz,
            transA: !transA,
            transB: false,
            m: k,
            n,
            k: m,
            aBatch,
            bBatch: batch,
            outBatch: bBatch,
            outShape: b.shape,
          },
      ).out;
    }
    // Every row of every batch got the same bias.
    const dBias = inBias?.requiresGrad ? sum(dz, [...new Array(dz.rank - 1).keys()]) : null;
    if (dz !== grad) dz.dispose();
    return inBias ? [dA, dB, dBias] : [dA, dB];
  },
};
const record = recorder(matmulRules);
