// Matmul kernels: C = act(op(A)·op(B) + bias) over broadcast batches, transposed operands read
// in place, with an optional in-kernel sum over batch dimensions (gradients of broadcast
// operands). One register-blocked kernel in two layouts: on GPUs workgroup-shared tiles feed the
// registers; on CPU adapters each invocation loads its vec4 fragments straight from storage,
// because there a workgroup-memory read costs as much as a storage read (lavapipe runs one
// scalar loop per SIMD lane for both) and every barrier is a coroutine switch.
import type { KernelSpec } from "../runtime.ts";
import { tunable } from "../tuning.ts";
import { uniformBlock } from "../uniforms.ts";
import { grid1d, LINEAR_INDEX, range, WG } from "./common.ts";

export type MatmulActivation = "relu" | "leaky_relu" | "sigmoid" | "tanh" | "gelu";

/** What the tile picker needs of a tile: its lanes and its register block. */
export type BlockTile = Pick<MatmulTile, "wx" | "wy" | "tm" | "tn">;

export interface MatmulTile {
  /** Stage A/B tiles in workgroup memory (GPUs), or load fragments from storage (CPU adapters). */
  shared: boolean;
  /** Workgroup size: x along N, y along M. */
  wx: number;
  wy: number;
  /** Outputs per invocation: rows and columns, multiples of 4. */
  tm: number;
  tn: number;
  /** K depth of a shared tile, a multiple of 4 (ignored without `shared`). */
  bk: number;
  /**
   * The workgroup's x axis walks rows instead of columns. CPU adapters run the x axis as SIMD
   * lanes (lavapipe packs only x into a vector), so a product with few columns keeps every lane
   * busy by spreading rows across them.
   */
  rowsOnX?: boolean;
}

/** One entry of an adapter's tile table (the matmul's, or another family's tiles). */
export interface MatmulTileOption<T extends BlockTile = MatmulTile> {
  tile: T;
  /** Throughput relative to the table's fastest tile, on a product the tile covers exactly. */
  speed: number;
  /** Only for products of at least this many multiply-adds (big tiles compile for seconds). */
  minMacs?: number;
}

/**
 * Tile tables by adapter class; a product takes the option with the least padded work per unit
 * of speed, so narrow or short outputs do not run mostly on clamped rows and columns. Benchmarks
 * update these; tests run both tables on any adapter.
 */
export const MATMUL_TILES = tunable<MatmulTileOption[]>("matmul", {
  // Measured on lavapipe (2 cores, 1024³): a storage load costs ~10 FMAs per component (Mesa
  // 22.3 loads lane by lane, uniform address or not), so the largest register block that still
  // compiles in a few seconds wins. Lavapipe packs only the workgroup's x axis into SIMD lanes:
  // x must hold 8 invocations (x = 4, 2, 1 ran 1.7×, 2.9×, 4.7× slower).
  cpu: [
    { tile: { shared: false, wx: 8, wy: 1, tm: 32, tn: 32, bk: 4 }, speed: 1, minMacs: 1 << 22 },
    { tile: { shared: false, wx: 8, wy: 1, tm: 16, tn: 16, bk: 4 }, speed: 0.7 },
    { tile: { shared: false, wx: 8, wy: 1, tm: 4, tn: 32, bk: 4 }, speed: 0.4 },
    { tile: { shared: false, wx: 8, wy: 1, tm: 32, tn: 4, bk: 4 }, speed: 0.33 },
    // Outputs at most 16 wide: half the lanes of the tile above clamp fewer columns, ~1.5×
    // faster there; the speed keeps it off wider products.
    { tile: { shared: false, wx: 4, wy: 1, tm: 32, tn: 4, bk: 4 }, speed: 0.2 },
    // Rows on the SIMD axis, 32 columns in one lane's registers: the attention products (N = 32,
    // or 128 over K = 32) ran 1.15–1.5× faster than on the tiles above in same-sitting runs, and
    // N = 784 (the Dense dX, which the 32×32 block pads to 1,024) 1.0–1.3×; 0.75× the 32×32
    // block on 512³, but it pads N only to a multiple of 32.
    { tile: { shared: false, wx: 1, wy: 8, tm: 16, tn: 32, bk: 4, rowsOnX: true }, speed: 0.8 },
    // At most 12 wide (a 10-class head and its weight gradient): the same with 12 columns;
    // 1.2–1.6× faster than the 4-wide tiles there, 1.2–1.3× faster than 32 columns.
    { tile: { shared: false, wx: 1, wy: 8, tm: 16, tn: 12, bk: 4, rowsOnX: true }, speed: 0.32 },
  ],
  // Conventional GPU tiling, 256 invocations and ≤ 10 KiB of workgroup memory per tile. Not yet
  // measured on a GPU: the speeds are estimates.
  gpu: [
    { tile: { shared: true, wx: 16, wy: 16, tm: 8, tn: 8, bk: 8 }, speed: 1, minMacs: 1 << 22 },
    { tile: { shared: true, wx: 16, wy: 16, tm: 4, tn: 4, bk: 16 }, speed: 0.6 },
    { tile: { shared: true, wx: 32, wy: 8, tm: 4, tn: 4, bk: 16 }, speed: 0.5 },
    { tile: { shared: true, wx: 8, wy: 32, tm: 4, tn: 4, bk: 16 }, speed: 0.5 },
  ],
}, (options) => options.forEach((o) => checkTile(o.tile)));

/**
 * Split-K for transposed-A products (Xᵀ·dY: every weight gradient over a long batch): when the
 * output's tiles give fewer workgroups than the adapter can keep busy, K is cut into chunks that
 * run side by side and a reduction sums their partial outputs.
 */
export interface SplitK {
  /** Workgroups to aim for; per adapter thread where `perThread` (CPU adapters). */
  workgroups: number;
  perThread: boolean;
  /** Fewest K rows per chunk, so the partial outputs stay a small share of the traffic. */
  minDepth: number;
}

export const MATMUL_SPLIT_K = tunable<SplitK>("matmul-split-k", {
  // Lavapipe runs one workgroup per thread at a time: a 6400-deep 18×192 weight gradient was one
  // workgroup on one of two cores. One per thread: 1.3–1.8× on the LOP-120 weight gradients
  // (18×32, 18×192, 128×14 over 6400 and 1216 rows); 2, 4 or 8 per thread were no faster.
  cpu: { workgroups: 1, perThread: true, minDepth: 128 },
  // Not yet measured on a GPU: enough workgroups for a large one's compute units.
  gpu: { workgroups: 256, perThread: false, minDepth: 256 },
}, (s) => {
  if (!(s.workgroups >= 1 && s.minDepth >= 1)) {
    throw new Error(`matmul: invalid split-K setting ${JSON.stringify(s)}`);
  }
});

/**
 * The option with the least padded work per unit of speed for M×N outputs; `depth` is K times the
 * number of output matrices and summed batches (it only decides which options are big enough).
 */
export function pickTile<T extends BlockTile>(
  options: MatmulTileOption<T>[],
  m: number,
  n: number,
  depth: number,
): T {
  let best: MatmulTileOption<T> | null = null;
  let bestCost = Infinity;
  for (const option of options) {
    const { wx, wy, tm, tn } = option.tile;
    if (m * n * depth < (option.minMacs ?? 0)) continue;
    const rows = Math.ceil(m / (wy * tm)) * wy * tm;
    const cols = Math.ceil(n / (wx * tn)) * wx * tn;
    const cost = rows * cols / option.speed;
    if (cost < bestCost) [best, bestCost] = [option, cost];
  }
  if (!best) throw new Error("matmul: no tile in the table fits this product");
  return best.tile;
}

/**
 * Which local id walks the rows and which the columns of a tile's block, and the workgroup size
 * that puts `rowsOnX` tiles' rows on x (the axis CPU adapters run as SIMD lanes).
 */
export function laneAxes(t: BlockTile & { rowsOnX?: boolean }) {
  return t.rowsOnX
    ? { rowLane: "lid.x", colLane: "lid.y", size: `${t.wy}, ${t.wx}` }
    : { rowLane: "lid.y", colLane: "lid.x", size: `${t.wx}, ${t.wy}` };
}

/** Workgroup memory a tile needs (bytes); must stay within 16 KiB. */
function tileSharedBytes(t: MatmulTile): number {
  return t.shared ? t.bk * (t.wy * t.tm + t.wx * t.tn) * 4 : 0;
}

function checkTile(t: MatmulTile): void {
  const ok = t.tm % 4 === 0 && t.tn % 4 === 0 && t.tm > 0 && t.tn > 0 && t.wx * t.wy <= 256 &&
    t.wx > 0 && t.wy > 0 && (!t.shared || (t.bk % 4 === 0 && t.bk > 0)) &&
    tileSharedBytes(t) <= 16384;
  if (!ok) throw new Error(`matmul: invalid tile ${JSON.stringify(t)}`);
}

export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  /** A read as vec4 along its contiguous dimension (K, or M when transposed): that size % 4 == 0. */
  vecA: boolean;
  /** B read as vec4 along N, or along K when transposed. */
  vecB: boolean;
  /** C and bias as vec4 (N % 4 == 0). */
  vecC: boolean;
  bias: boolean;
  activation: MatmulActivation | null;
  /** Also write the pre-activation (what the gelu gradient needs). */
  savePre: boolean;
  tile: MatmulTile;
}

/** Batch dimensions a kernel decomposes: four grid slots and four in-kernel summed slots. */
export const MATMUL_BATCH_SLOTS = 4 as const;

export interface BatchDim {
  size: number;
  strideA: number;
  strideB: number;
}

/**
 * The matmul kernels' uniforms: sizes[0] = (M, N, K, reduceCount), sizes[1] = zeros; the first
 * batch index of this launch; the leaky_relu slope; `zero`; the grid and summed batch slots
 * (size, strideA, strideB, -) as vec4u each.
 *
 * The kernel reads the sizes as `sizes[zero]`, an offset the driver cannot fold (two entries, so
 * even a bounds clamp keeps it dynamic). Mesa lavapipe (22.x) "inlines" uniforms that feed loop
 * and branch conditions when they sit at constant offsets: it recompiles the shader with their
 * values baked in, and for some sizes (e.g. M = 512 with transA) it did so on every dispatch —
 * a fresh LLVM compile each time, ~10 ms and ~1.4 MB of native memory never returned. Sizes
 * behind a dynamic offset are not inlinable, so every shape runs the pipeline compiled once.
 */
const MATMUL_UNIFORMS = uniformBlock({
  sizes: "array<vec4u, 2>",
  zBase: "u32",
  alpha: "f32",
  zero: "u32",
  grid: `array<vec4u, ${MATMUL_BATCH_SLOTS}>`,
  red: `array<vec4u, ${MATMUL_BATCH_SLOTS}>`,
});

export function matmulParams(
  m: number,
  n: number,
  k: number,
  zBase: number,
  grid: BatchDim[],
  reduce: BatchDim[],
  alpha: number,
) {
  const slots = (dims: BatchDim[]) => dims.flatMap((d) => [d.size, d.strideA, d.strideB, 0]);
  const reduceCount = reduce.reduce((p, d) => p * d.size, 1);
  return {
    sizes: [m, n, k, reduceCount],
    zBase,
    alpha,
    zero: 0,
    grid: slots(padSlots(grid)),
    red: slots(padSlots(reduce)),
  };
}

/** Unused slots are size-1 dimensions: the kernel decomposes batch indices by every slot. */
function padSlots(dims: BatchDim[]): BatchDim[] {
  const out = [...dims];
  while (out.length < MATMUL_BATCH_SLOTS) out.push({ size: 1, strideA: 0, strideB: 0 });
  return out;
}

/**
 * The fused epilogue's activations and their derivatives (they read `u.alpha`; conv uses them
 * too). erfc has fractional error < 1.2e-7 everywhere (Numerical Recipes' erfcc, Chebyshev fit),
 * so gelu(z) = 0.5·z·erfc(-z/√2) stays accurate in the far negative tail too.
 */
export const ACTIVATIONS = /* wgsl */ `
fn erfc4(x: vec4f) -> vec4f {
  let ax = abs(x);
  let t = 1.0 / (1.0 + 0.5 * ax);
  let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277))))))));
  let y = t * exp(-ax * ax + p);
  return select(2.0 - y, y, x >= vec4f(0.0));
}
fn act_relu(z: vec4f) -> vec4f { return max(z, vec4f(0.0)); }
fn act_leaky_relu(z: vec4f) -> vec4f { return select(u.alpha * z, z, z > vec4f(0.0)); }
fn act_sigmoid(z: vec4f) -> vec4f {
  let e = exp(-abs(z));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= vec4f(0.0));
}
fn act_tanh(z: vec4f) -> vec4f {
  let e = exp(-2.0 * abs(z));
  let t = (1.0 - e) / (1.0 + e);
  return select(-t, t, z >= vec4f(0.0));
}
fn act_gelu(z: vec4f) -> vec4f { return 0.5 * z * erfc4(-0.7071067811865476 * z); }
// Derivatives from the saved output y (relu, leaky_relu, sigmoid, tanh) or pre-activation (gelu).
fn dact_relu(y: vec4f) -> vec4f { return select(vec4f(0.0), vec4f(1.0), y > vec4f(0.0)); }
fn dact_leaky_relu(y: vec4f) -> vec4f { return select(vec4f(u.alpha), vec4f(1.0), y > vec4f(0.0)); }
fn dact_sigmoid(y: vec4f) -> vec4f { return y * (1.0 - y); }
fn dact_tanh(y: vec4f) -> vec4f { return 1.0 - y * y; }
fn dact_gelu(z: vec4f) -> vec4f {
  return 0.5 * erfc4(-0.7071067811865476 * z) + z * exp(-0.5 * z * z) * 0.3989422804014327;
}`;

function variantKey(v: MatmulVariant): string {
  const t = v.tile;
  return [
    v.transA ? "tA" : "nA",
    v.transB ? "tB" : "nB",
    v.vecA ? 4 : 1,
    v.vecB ? 4 : 1,
    v.vecC ? 4 : 1,
    v.bias ? "bias" : "",
    v.activation ?? "",
    v.savePre ? "pre" : "",
    t.shared ? `s${t.bk}` : "d",
    `${t.wx}x${t.wy}`,
    `${t.tm}x${t.tn}`,
    t.rowsOnX ? "rx" : "",
  ].join(".");
}

/**
 * Generated source for one variant. Invocation (lx, ly) of workgroup (x, y) owns rows
 * (y·BM/4 + i4·WY + ly)·4 + e and columns (x·BN/4 + j4·WX + lx)·4 + e, so every fragment is a
 * vec4 and neighbouring invocations touch neighbouring memory.
 */
export function matmulKernel(v: MatmulVariant): KernelSpec<typeof MATMUL_UNIFORMS.fields> {
  const bindings: ("read" | "write")[] = ["read", "read"];
  if (v.bias) bindings.push("read");
  bindings.push("write");
  if (v.savePre) bindings.push("write");
  return {
    name: "matmul",
    key: variantKey(v),
    bindings,
    uniforms: MATMUL_UNIFORMS,
    code: () => matmulSource(v),
  };
}

function matmulSource(v: MatmulVariant): string {
  const { wx: WX, wy: WY, tm: TM, tn: TN } = v.tile;
  const M4 = TM / 4, N4 = TN / 4;
  const BM4 = WY * M4, BN4 = WX * N4;
  const arr = (vec: boolean) => vec ? "array<vec4f>" : "array<f32>";
  let binding = 0;
  const decl = (name: string, access: string, vec: boolean) =>
    `@group(0) @binding(${binding++}) var<storage, ${access}> ${name}: ${arr(vec)};`;
  const header = [
    decl("A", "read", v.vecA),
    decl("B", "read", v.vecB),
    v.bias ? decl("bias", "read", v.vecC) : "",
    decl("C", "read_write", v.vecC),
    v.savePre ? decl("P", "read_write", v.vecC) : "",
    `@group(0) @binding(${binding}) var<uniform> u: U;`,
  ].join("\n");

  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);
  // Batch offsets of this output matrix (grid slots, innermost first).
  emit("let z = wid.z + u.zBase;");
  emit("var rest = z;");
  emit("var baseA = 0u;");
  emit("var baseB = 0u;");
  for (let s = 0; s < MATMUL_BATCH_SLOTS; s++) {
    emit(
      `{ let d = u.grid[${s}]; let i = rest % d.x; rest = rest / d.x; ` +
        `baseA += i * d.y; baseB += i * d.z; }`,
    );
  }
  // Never u.sizes[0]: see MATMUL_UNIFORMS.
  emit("let sizes = u.sizes[u.zero];");
  emit("let M = sizes.x; let N = sizes.y; let K = sizes.z; let reduceCount = sizes.w;");
  emit("let M4 = M / 4u; let N4 = N / 4u; let K4 = K / 4u;");
  const { rowLane, colLane, size } = laneAxes(v.tile);
  for (const i4 of range(M4)) emit(`let rg${i4} = wid.y * ${BM4}u + ${i4 * WY}u + ${rowLane};`);
  for (const j4 of range(N4)) emit(`let cg${j4} = wid.x * ${BN4}u + ${j4 * WX}u + ${colLane};`);
  for (const i of range(TM)) for (const j4 of range(N4)) emit(`var c${i}_${j4} = vec4f(0.0);`);

  const fma = (a: string, i: number, b: string, j4: number) =>
    `c${i}_${j4} = fma(vec4f(${a}), ${b}, c${i}_${j4});`;
  const row = (i: number) => `(rg${i >> 2} * 4u + ${i & 3}u)`;
  const col = (j: number) => `(cg${j >> 2} * 4u + ${j & 3}u)`;

  if (v.tile.shared) sharedMainLoop(v, emit, fma);
  else directMainLoop(v, emit, fma, row, col);

  // Epilogue: bias, pre-activation, activation, guarded stores.
  for (const j4 of v.bias ? range(N4) : []) {
    emit(
      v.vecC
        ? `let bias${j4} = bias[min(cg${j4}, N4 - 1u)];`
        : `let bias${j4} = vec4f(${
          range(4).map((e) => `bias[min(${col(j4 * 4 + e)}, N - 1u)]`).join(", ")
        });`,
    );
  }
  emit("let offC = z * M * N;");
  for (const i of range(TM)) {
    emit(`if (${row(i)} < M) {`);
    emit(`  let rowC = offC + ${row(i)} * N;`);
    emitRowStores(emit, i, { ...v, tn: TN, n4: "N4" }, col);
    emit(`}`);
  }

  return `${MATMUL_UNIFORMS.struct()}
${header}
${v.activation ? ACTIVATIONS : ""}
${v.tile.shared ? sharedDecls(v) : ""}
@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  ${lines.join("\n  ")}
}`;
}

type Emit = (s: string) => void;
type Fma = (a: string, i: number, b: string, j4: number) => string;
type Index = (i: number) => string;

export interface StoreOptions {
  tn: number;
  vecC: boolean;
  bias: boolean;
  activation: MatmulActivation | null;
  savePre: boolean;
  /** WGSL expression for N / 4. */
  n4: string;
}

/**
 * The epilogue of accumulator row i (`c{i}_{j4}`), whose first output element is `rowC`: bias,
 * pre-activation, activation and stores guarded by the column bound (matmul and conv share it).
 */
export function emitRowStores(emit: Emit, i: number, o: StoreOptions, col: Index): void {
  for (const j4 of range(o.tn / 4)) {
    emit(`  {`);
    emit(`    var val = c${i}_${j4}${o.bias ? ` + bias${j4}` : ""};`);
    const store = (target: string) =>
      o.vecC
        ? `    if (cg${j4} < ${o.n4}) { ${target}[rowC / 4u + cg${j4}] = val; }`
        : range(4).map((e) =>
          `    if (${col(j4 * 4 + e)} < N) { ${target}[rowC + ${col(j4 * 4 + e)}] = val[${e}]; }`
        ).join("\n");
    if (o.savePre) emit(store("P"));
    if (o.activation) emit(`    val = act_${o.activation}(val);`);
    emit(store("C"));
    emit(`  }`);
  }
}

/** Offsets inside the summed batch loop: oA/oB in elements, oA4/oB4 in vec4s. */
function reduceLoopHead(emit: Emit): void {
  emit("for (var r = 0u; r < reduceCount; r++) {");
  emit("var rr = r;");
  emit("var oA = baseA;");
  emit("var oB = baseB;");
  for (let s = 0; s < MATMUL_BATCH_SLOTS; s++) {
    emit(`{ let d = u.red[${s}]; let i = rr % d.x; rr = rr / d.x; oA += i * d.y; oB += i * d.z; }`);
  }
  emit("let oA4 = oA / 4u; let oB4 = oB / 4u;");
}

/**
 * CPU layout: per step of 4 k, TM + TN vec4 loads feed TM·TN·4 FMAs. Out-of-range rows and
 * columns are clamped to valid ones (their results are never stored); K has an exact tail.
 */
function directMainLoop(v: MatmulVariant, emit: Emit, fma: Fma, row: Index, col: Index): void {
  const { tm: TM, tn: TN } = v.tile;
  const M4 = TM / 4, N4 = TN / 4;
  // Loop-invariant per-row / per-column offsets.
  if (!v.transA) {
    for (const i of range(TM)) {
      emit(`let pa${i} = min(${row(i)}, M - 1u) * ${v.vecA ? "K4" : "K"};`);
    }
  } else if (v.vecA) {
    for (const i4 of range(M4)) emit(`let pa${i4} = min(rg${i4}, M4 - 1u);`);
  } else {
    for (const i of range(TM)) emit(`let pa${i} = min(${row(i)}, M - 1u);`);
  }
  if (!v.transB) {
    if (v.vecB) { for (const j4 of range(N4)) emit(`let pb${j4} = min(cg${j4}, N4 - 1u);`); }
    else for (const j of range(TN)) emit(`let pb${j} = min(${col(j)}, N - 1u);`);
  } else {
    for (const j of range(TN)) {
      emit(`let pb${j} = min(${col(j)}, N - 1u) * ${v.vecB ? "K4" : "K"};`);
    }
  }

  reduceLoopHead(emit);
  emit("for (var k4 = 0u; k4 < K4; k4++) {");
  emit("let k = k4 * 4u;");
  // B fragments first.
  for (const kk of range(4)) {
    if (!v.transB) {
      emit(`let rb${kk} = ${v.vecB ? `oB4 + (k + ${kk}u) * N4` : `oB + (k + ${kk}u) * N`};`);
      for (const j4 of range(N4)) {
        if (v.vecB) {
          emit(`let b${kk}_${j4} = B[rb${kk} + pb${j4}];`);
        } else {
          for (const e of range(4)) {
            emit(`let b${kk}_${j4 * 4 + e} = B[rb${kk} + pb${j4 * 4 + e}];`);
          }
        }
      }
    }
  }
  if (v.transB) {
    for (const j of range(TN)) {
      if (v.vecB) emit(`let b${j} = B[oB4 + pb${j} + k4];`);
      else for (const kk of range(4)) emit(`let b${j}_${kk} = B[oB + pb${j} + k + ${kk}u];`);
    }
  }
  // bvec[kk][j4]: the vec4 of B at depth k + kk over columns 4·j4 … 4·j4 + 3.
  const bvec = range(4).map((kk) =>
    range(N4).map((j4) => {
      if (!v.transB && v.vecB) return `b${kk}_${j4}`;
      const parts = range(4).map((e) => {
        const j = j4 * 4 + e;
        return v.transB ? (v.vecB ? `b${j}[${kk}]` : `b${j}_${kk}`) : `b${kk}_${j}`;
      });
      emit(`let v${kk}_${j4} = vec4f(${parts.join(", ")});`);
      return `v${kk}_${j4}`;
    })
  );
  // A fragments interleaved with the FMAs that consume them.
  if (!v.transA) {
    for (const i of range(TM)) {
      if (v.vecA) emit(`let a${i} = A[oA4 + pa${i} + k4];`);
      else for (const kk of range(4)) emit(`let a${i}_${kk} = A[oA + pa${i} + k + ${kk}u];`);
      for (const kk of range(4)) {
        for (const j4 of range(N4)) {
          emit(fma(v.vecA ? `a${i}[${kk}]` : `a${i}_${kk}`, i, bvec[kk][j4], j4));
        }
      }
    }
  } else {
    // All four depths' fragments first, then row by row as above: each accumulator is read and
    // written once per four k (a depth-outer order spills the register block four times).
    for (const kk of range(4)) {
      emit(`let ra${kk} = ${v.vecA ? `oA4 + (k + ${kk}u) * M4` : `oA + (k + ${kk}u) * M`};`);
      if (v.vecA) { for (const i4 of range(M4)) emit(`let a${kk}_${i4} = A[ra${kk} + pa${i4}];`); }
      else for (const i of range(TM)) emit(`let a${kk}_${i} = A[ra${kk} + pa${i}];`);
    }
    for (const i of range(TM)) {
      for (const kk of range(4)) {
        for (const j4 of range(N4)) {
          emit(fma(v.vecA ? `a${kk}_${i >> 2}[${i & 3}]` : `a${kk}_${i}`, i, bvec[kk][j4], j4));
        }
      }
    }
  }
  emit("}");

  // K % 4 tail, one k at a time (only variants that allow K % 4 != 0).
  if (!(v.vecA && !v.transA) && !(v.vecB && v.transB)) {
    emit("for (var k = K4 * 4u; k < K; k++) {");
    const a: string[] = [];
    if (!v.transA) {
      for (const i of range(TM)) a.push(`A[oA + pa${i} + k]`);
    } else if (v.vecA) {
      for (const i4 of range(M4)) emit(`let ta${i4} = A[oA4 + k * M4 + pa${i4}];`);
      for (const i of range(TM)) a.push(`ta${i >> 2}[${i & 3}]`);
    } else {
      for (const i of range(TM)) a.push(`A[oA + k * M + pa${i}]`);
    }
    const b: string[] = [];
    for (const j4 of range(N4)) {
      if (!v.transB && v.vecB) {
        emit(`let tb${j4} = B[oB4 + k * N4 + pb${j4}];`);
      } else {
        const parts = range(4).map((e) =>
          v.transB ? `B[oB + pb${j4 * 4 + e} + k]` : `B[oB + k * N + pb${j4 * 4 + e}]`
        );
        emit(`let tb${j4} = vec4f(${parts.join(", ")});`);
      }
      b.push(`tb${j4}`);
    }
    for (const i of range(TM)) {
      emit(`let ta_${i} = ${a[i]};`);
      for (const j4 of range(N4)) emit(fma(`ta_${i}`, i, b[j4], j4));
    }
    emit("}");
  }
  emit("}");
}

function sharedDecls(v: MatmulVariant): string {
  const { wx: WX, wy: WY, tm: TM, tn: TN, bk: BK } = v.tile;
  return `var<workgroup> As: array<vec4f, ${BK * WY * TM / 4}>;
var<workgroup> Bs: array<vec4f, ${BK * WX * TN / 4}>;`;
}

/**
 * GPU layout: the workgroup stages a BK-deep slice of A (as As[k][m]) and B (as Bs[k][n]) with
 * coalesced loads, zero beyond K and clamped beyond M/N; each invocation then reads vec4
 * fragments from workgroup memory.
 */
function sharedMainLoop(v: MatmulVariant, emit: Emit, fma: Fma): void {
  const { wx: WX, wy: WY, tm: TM, tn: TN, bk: BK } = v.tile;
  const M4 = TM / 4, N4 = TN / 4;
  const BM = WY * TM, BN = WX * TN, BM4 = BM / 4, BN4 = BN / 4, BKQ = BK / 4;
  const T = WX * WY;
  emit("let rowBase = wid.y * " + BM + "u;");
  emit("let colBase = wid.x * " + BN + "u;");
  reduceLoopHead(emit);
  emit(`for (var k0 = 0u; k0 < K; k0 += ${BK}u) {`);
  const tileLoop = (items: number, body: string[]) => {
    emit(`for (var idx = li; idx < ${items}u; idx += ${T}u) {`);
    body.forEach(emit);
    emit("}");
  };
  // A slice → As[k * BM4 + m / 4][m % 4].
  if (!v.transA && v.vecA) {
    tileLoop(BM * BKQ, [
      `let m = idx / ${BKQ}u; let q = idx % ${BKQ}u; let k = k0 + q * 4u;`,
      `let x = select(vec4f(0.0), A[oA4 + min(rowBase + m, M - 1u) * K4 + min(k / 4u, K4 - 1u)], k < K);`,
      ...range(4).map((e) => `As[(q * 4u + ${e}u) * ${BM4}u + m / 4u][m % 4u] = x[${e}];`),
    ]);
  } else if (!v.transA) {
    tileLoop(BM * BK, [
      `let m = idx / ${BK}u; let kk = idx % ${BK}u; let k = k0 + kk;`,
      `As[kk * ${BM4}u + m / 4u][m % 4u] = select(0.0, A[oA + min(rowBase + m, M - 1u) * K + min(k, K - 1u)], k < K);`,
    ]);
  } else if (v.vecA) {
    tileLoop(BK * BM4, [
      `let kk = idx / ${BM4}u; let m4 = idx % ${BM4}u; let k = k0 + kk;`,
      `As[idx] = select(vec4f(0.0), A[oA4 + min(k, K - 1u) * M4 + min(rowBase / 4u + m4, M4 - 1u)], k < K);`,
    ]);
  } else {
    tileLoop(BK * BM, [
      `let kk = idx / ${BM}u; let m = idx % ${BM}u; let k = k0 + kk;`,
      `As[kk * ${BM4}u + m / 4u][m % 4u] = select(0.0, A[oA + min(k, K - 1u) * M + min(rowBase + m, M - 1u)], k < K);`,
    ]);
  }
  // B slice → Bs[k * BN4 + n / 4][n % 4].
  if (!v.transB && v.vecB) {
    tileLoop(BK * BN4, [
      `let kk = idx / ${BN4}u; let n4 = idx % ${BN4}u; let k = k0 + kk;`,
      `Bs[idx] = select(vec4f(0.0), B[oB4 + min(k, K - 1u) * N4 + min(colBase / 4u + n4, N4 - 1u)], k < K);`,
    ]);
  } else if (!v.transB) {
    tileLoop(BK * BN, [
      `let kk = idx / ${BN}u; let n = idx % ${BN}u; let k = k0 + kk;`,
      `Bs[kk * ${BN4}u + n / 4u][n % 4u] = select(0.0, B[oB + min(k, K - 1u) * N + min(colBase + n, N - 1u)], k < K);`,
    ]);
  } else if (v.vecB) {
    tileLoop(BN * BKQ, [
      `let n = idx / ${BKQ}u; let q = idx % ${BKQ}u; let k = k0 + q * 4u;`,
      `let x = select(vec4f(0.0), B[oB4 + min(colBase + n, N - 1u) * K4 + min(k / 4u, K4 - 1u)], k < K);`,
      ...range(4).map((e) => `Bs[(q * 4u + ${e}u) * ${BN4}u + n / 4u][n % 4u] = x[${e}];`),
    ]);
  } else {
    tileLoop(BN * BK, [
      `let n = idx / ${BK}u; let kk = idx % ${BK}u; let k = k0 + kk;`,
      `Bs[kk * ${BN4}u + n / 4u][n % 4u] = select(0.0, B[oB + min(colBase + n, N - 1u) * K + min(k, K - 1u)], k < K);`,
    ]);
  }
  emit("workgroupBarrier();");
  emit(`for (var kk = 0u; kk < ${BK}u; kk++) {`);
  for (const j4 of range(N4)) emit(`let b${j4} = Bs[kk * ${BN4}u + ${j4 * WX}u + lid.x];`);
  for (const i4 of range(M4)) {
    emit(`let a${i4} = As[kk * ${BM4}u + ${i4 * WY}u + lid.y];`);
    for (const e of range(4)) {
      for (const j4 of range(N4)) emit(fma(`a${i4}[${e}]`, i4 * 4 + e, `b${j4}`, j4));
    }
  }
  emit("}");
  emit("workgroupBarrier();");
  emit("}");
  emit("}");
}

const ACT_GRAD_UNIFORMS = uniformBlock({ n: "u32", gx: "u32", alpha: "f32" });

/** dZ = G ⊙ act'(S), elementwise; vec4 when the element count is a multiple of 4. */
export function activationGradKernel(
  activation: MatmulActivation,
  vec: boolean,
): KernelSpec<typeof ACT_GRAD_UNIFORMS.fields> {
  const t = vec ? "vec4f" : "f32";
  return {
    name: "matmul_act_grad",
    key: `${activation}.${vec ? 4 : 1}`,
    bindings: ["read", "read", "write"],
    uniforms: ACT_GRAD_UNIFORMS,
    code: () => `
${ACT_GRAD_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> g: array<${t}>;
@group(0) @binding(1) var<storage, read> s: array<${t}>;
@group(0) @binding(2) var<storage, read_write> dz: array<${t}>;
@group(0) @binding(3) var<uniform> u: U;
${ACTIVATIONS}
${LINEAR_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.n) { return; }
  ${
      vec
        ? `dz[i] = g[i] * dact_${activation}(s[i]);`
        : `dz[i] = g[i] * dact_${activation}(vec4f(s[i])).x; // the vec4 helpers, one lane used`
    }
}`,
  };
}

/** Uniform values and grid for activationGradKernel over `n` elements. */
export function activationGradLaunch(n: number, vec: boolean, alpha: number) {
  const items = vec ? n / 4 : n;
  const [gx, gy] = grid1d(items);
  return { params: { n: items, gx, alpha }, groups: [gx, gy] as [number, number] };
}
