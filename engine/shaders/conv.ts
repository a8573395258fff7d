// Convolution kernels as implicit GEMM on channels-last tensors: no im2col buffer, the operand
// that a GEMM would read from the unfolded input is gathered in place. One generator, three
// passes, any spatial rank (2-D runs as 3-D with depth 1, its depth arithmetic compiled out):
//
//   forward      Y[n·o, co]   = Σ_(t, ci)  X[n, o·s − p + t·d, ci] · W[t, ci, co]
//   backward dX  dX[n·i, ci]  = Σ_(t, co)  dY[n, (i + p − t·d) / s, co] · W[t, ci, co]
//   backward dW  dW[t, ci, co] = Σ_(n·o)   X[n, o·s − p + t·d, ci] · dY[n·o, co]
//
// (t: kernel tap, o/i: output/input position). Each invocation owns TM rows × TN columns of the
// GEMM in registers, like the matmul's CPU layout: vec4 loads along the contiguous channel axis
// feed TM·TN FMAs per 4 channels. The forward and dX loop over taps outside the channels, so
// each row's address and padding test are computed once per tap. dX runs one grid slice per
// stride phase (i mod s): within a slice the taps that reach its rows are the same for every
// row, so a stride-2 transposed conv skips the 3 taps in 4 that contribute nothing. dW runs one
// grid slice per tap: its rows (input channels) share one input position per output pixel.
import type { KernelSpec } from "../runtime.ts";
import { tunable } from "../tuning.ts";
import { uniformBlock } from "../uniforms.ts";
import { range } from "./common.ts";
import {
  ACTIVATIONS,
  emitRowStores,
  laneAxes,
  type MatmulActivation,
  type MatmulTileOption,
} from "./matmul.ts";

export type ConvPass = "forward" | "data" | "weight";

/** Spatial sizes are always 3-D here ([depth, height, width]); 2-D convs have depth 1. */
export type Dims3 = [number, number, number];

/**
 * The uniforms. `g` holds every size a loop or branch reads, behind the dynamic index `zero`
 * (see MATMUL_UNIFORMS: lavapipe recompiles shaders whose loop bounds sit at constant offsets):
 * g[0] = (M, N, K, batch), g[1] = input dims, g[2] = output dims, g[3] = kernel dims,
 * g[4] = strides, g[5] = pads before, g[6] = dilations, g[7] = (Cin, Cout, taps, phase rows of
 * dX, or the depth splits of a split weight pass).
 */
const CONV_UNIFORMS = uniformBlock({ g: "array<vec4u, 8>", zero: "u32", alpha: "f32" });
export type ConvFields = typeof CONV_UNIFORMS.fields;

export interface ConvGeometry {
  batch: number;
  inDims: Dims3;
  outDims: Dims3;
  kernel: Dims3;
  strides: Dims3;
  pads: Dims3;
  dilations: Dims3;
  cin: number;
  cout: number;
}

export interface ConvTile {
  wx: number;
  wy: number;
  tm: number;
  tn: number;
  /** The workgroup's x axis walks rows (see MatmulTile). */
  rowsOnX?: boolean;
  /**
   * Weight pass only: this many invocations along x each sum one chunk of the depth (the output
   * pixels) for the whole wx·tn × wy·tm block (wx = wy = 1), into a partial result the op then
   * sums. The weight pass has few rows and columns (channels) and a deep K (pixels): splitting K
   * keeps every SIMD lane busy with a full register block.
   */
  splitK?: number;
  /**
   * Weight pass only: output pixels per step of the depth loop (default 1, at most 4). With n,
   * each accumulator is read and written once per n multiply-adds, which pays where the register
   * block spills.
   */
  pixelsPerStep?: number;
}

/**
 * Tiles per adapter class, picked per pass like the matmul's: the least padded work per unit of
 * speed, so a pass takes the tile whose columns cover its N (Cout, or Cin for dX) most tightly.
 * Measured on lavapipe (2 cores, AVX-512, the bench's layers, interleaved runs): lavapipe packs
 * only the workgroup's x axis into SIMD lanes, so x must hold 8 invocations; with the rows on x
 * (8 lanes of pixels, each owning 32 rows × all 32 columns) the forward and dX run 2–3× faster
 * than with the columns on x, which at 32–64 channels either pads columns or leaves lanes idle.
 * The weight pass (rows and columns are channels, the depth is pixels) splits the depth across
 * the lanes instead: 1.8× faster at 32 channels. GPUs take a conventional 16×8 grid of 4×4 blocks
 * until a GPU measures better (no shared-memory staging yet).
 */
export const CONV_TILES = tunable<MatmulTileOption<ConvTile>[]>("conv", {
  cpu: [
    // Register blocks of 1,024 accumulators compile for ~6 s (then the driver caches them).
    { tile: { wx: 1, wy: 8, tm: 32, tn: 32, rowsOnX: true }, speed: 1, minMacs: 1 << 22 },
    { tile: { wx: 1, wy: 8, tm: 64, tn: 16, rowsOnX: true }, speed: 0.6, minMacs: 1 << 22 },
    { tile: { wx: 1, wy: 8, tm: 32, tn: 8, rowsOnX: true }, speed: 0.45 },
    { tile: { wx: 1, wy: 8, tm: 32, tn: 4, rowsOnX: true }, speed: 0.29 },
    // The weight pass: few rows (input channels) and columns, many pixels to split. Just below
    // the rows-on-x block's speed: from ~256 channels, where there are blocks enough, the
    // partial sums would only cost memory. Two pixels per step: 1.15–1.3× at 32–64 channels
    // (same-sitting pairs); the 16-row block: 1.6× at 16 input channels, ~0.93× at 32.
    {
      tile: { wx: 1, wy: 1, tm: 32, tn: 32, splitK: 8, pixelsPerStep: 2 },
      speed: 0.95,
      minMacs: 1 << 22,
    },
    { tile: { wx: 1, wy: 1, tm: 16, tn: 32, splitK: 8 }, speed: 0.88, minMacs: 1 << 22 },
    { tile: { wx: 1, wy: 1, tm: 4, tn: 32, splitK: 8 }, speed: 0.28 },
    // Small products (the big blocks would compile longer than they run).
    { tile: { wx: 4, wy: 1, tm: 16, tn: 8 }, speed: 0.55 },
    { tile: { wx: 4, wy: 1, tm: 4, tn: 8 }, speed: 0.3 },
  ],
  gpu: [
    { tile: { wx: 16, wy: 8, tm: 4, tn: 4 }, speed: 1 },
    { tile: { wx: 8, wy: 8, tm: 4, tn: 4 }, speed: 0.8 },
  ],
}, (options) => {
  for (const { tile } of options) {
    const ok = tile.tm % 4 === 0 && tile.tn % 4 === 0 && tile.wx * tile.wy <= 256 &&
      (!tile.splitK || (tile.wx === 1 && tile.wy === 1 && tile.splitK <= 256)) &&
      [undefined, 1, 2, 3, 4].includes(tile.pixelsPerStep);
    if (!ok) throw new Error(`conv: invalid tile ${JSON.stringify(tile)}`);
  }
});

export interface ConvVariant {
  pass: ConvPass;
  /** 2 or 3 spatial dimensions. */
  rank: 2 | 3;
  /** Channel counts divisible by 4: vec4 loads along them. */
  vecIn: boolean;
  vecOut: boolean;
  bias: boolean;
  activation: MatmulActivation | null;
  savePre: boolean;
  tile: ConvTile;
}

/** The GEMM a pass computes and the grid slices it runs in (z: phases for dX, taps for dW). */
export function convGemm(pass: ConvPass, g: ConvGeometry) {
  const taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  const outPixels = g.batch * g.outDims[0] * g.outDims[1] * g.outDims[2];
  if (pass === "forward") {
    return { m: outPixels, n: g.cout, k: taps * g.cin, slices: 1, phaseRows: 0 };
  }
  if (pass === "weight") return { m: g.cin, n: g.cout, k: outPixels, slices: taps, phaseRows: 0 };
  // dX: rows of one stride phase are the input positions i ≡ phase (mod s).
  const perPhase = g.inDims.map((d, a) => Math.ceil(d / g.strides[a]));
  const phaseRows = g.batch * perPhase[0] * perPhase[1] * perPhase[2];
  const phases = g.strides[0] * g.strides[1] * g.strides[2];
  return { m: phaseRows, n: g.cin, k: taps * g.cout, slices: phases, phaseRows };
}

export function convParams(pass: ConvPass, g: ConvGeometry, alpha: number, splits = 0) {
  const { m, n, k, phaseRows } = convGemm(pass, g);
  const taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  return {
    g: [
      ...[m, n, k, g.batch],
      ...g.inDims,
      0,
      ...g.outDims,
      0,
      ...g.kernel,
      0,
      ...g.strides,
      0,
      ...g.pads,
      0,
      ...g.dilations,
      0,
      ...[g.cin, g.cout, taps, pass === "weight" ? splits : phaseRows],
    ],
    zero: 0,
    alpha,
  };
}

export function convKernel(v: ConvVariant): KernelSpec<ConvFields> {
  const bindings: ("read" | "write")[] = ["read", "read"];
  if (v.bias) bindings.push("read");
  bindings.push("write");
  if (v.savePre) bindings.push("write");
  const t = v.tile;
  return {
    name: `conv_${v.pass}`,
    key: [
      v.rank,
      v.vecIn ? 4 : 1,
      v.vecOut ? 4 : 1,
      v.bias ? "bias" : "",
      v.activation ?? "",
      v.savePre ? "pre" : "",
      `${t.wx}x${t.wy}`,
      `${t.tm}x${t.tn}`,
      t.rowsOnX ? "rx" : "",
      t.splitK ? `k${t.splitK}` : "",
      t.pixelsPerStep ? `p${t.pixelsPerStep}` : "",
    ].join("."),
    bindings,
    uniforms: CONV_UNIFORMS,
    code: () => convSource(v),
  };
}

/**
 * Which operand is vec4 in each pass. A is the gathered operand (rows × depth), B the dense one
 * (depth × columns), C the result (rows × columns).
 */
function layout(v: ConvVariant) {
  if (v.pass === "forward") return { vecA: v.vecIn, vecB: v.vecOut, vecC: v.vecOut };
  if (v.pass === "data") return { vecA: v.vecOut, vecB: v.vecOut, vecC: v.vecIn };
  return { vecA: v.vecIn, vecB: v.vecOut, vecC: v.vecOut };
}

function convSource(v: ConvVariant): string {
  const { wx: WX, wy: WY, tm: TM, tn: TN } = v.tile;
  const N4 = TN / 4;
  const { vecA, vecB, vecC } = layout(v);
  const arr = (vec: boolean) => vec ? "array<vec4f>" : "array<f32>";
  let binding = 0;
  const decl = (name: string, access: string, vec: boolean) =>
    `@group(0) @binding(${binding++}) var<storage, ${access}> ${name}: ${arr(vec)};`;
  const header = [
    decl("A", "read", vecA),
    decl("B", "read", vecB),
    v.bias ? decl("bias", "read", vecC) : "",
    decl("C", "read_write", vecC),
    v.savePre ? decl("P", "read_write", vecC) : "",
    `@group(0) @binding(${binding}) var<uniform> u: U;`,
  ].join("\n");

  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);
  // A split weight pass's lanes split the depth: every lane owns the whole block.
  const lanes = v.tile.splitK
    ? { rowLane: "0u", colLane: "0u", size: `${v.tile.splitK}` }
    : laneAxes(v.tile);
  const { rowLane, colLane } = lanes;
  emit("let z = u.zero;");
  emit("let sizes = u.g[z]; let ch = u.g[z + 7u];");
  ["inD", "outD", "kD", "st", "pd", "dl"].forEach((name, i) =>
    emit(`let ${name} = u.g[z + ${i + 1}u].xyz;`)
  );
  emit("let M = sizes.x; let N = sizes.y; let K = sizes.z;");
  emit("let Cin = ch.x; let Cout = ch.y; let taps = ch.z;");
  // Rows in groups of 4 consecutive ones, groups interleaved across the WY lanes; columns the
  // same across the WX lanes (the matmul's assignment).
  for (const i of range(TM)) {
    emit(
      `let row${i} = (wid.y * ${(TM / 4) * WY}u + ${i >> 2}u * ${WY}u + ${rowLane}) * 4u + ${
        i & 3
      }u;`,
    );
  }
  for (const j4 of range(N4)) {
    emit(`let cg${j4} = (wid.x * ${N4}u + ${j4}u) * ${WX}u + ${colLane};`);
  }
  for (const i of range(TM)) for (const j4 of range(N4)) emit(`var c${i}_${j4} = vec4f(0.0);`);
  const col = (j: number) => `(cg${j >> 2} * 4u + ${j & 3}u)`;
  const fma = (a: string, i: number, b: string, j4: number) =>
    `c${i}_${j4} = fma(vec4f(${a}), ${b}, c${i}_${j4});`;
  // Loop-invariant column offsets into B / C, clamped (clamped columns are never stored).
  if (vecB && v.pass !== "data") {
    for (const j4 of range(N4)) emit(`let pb${j4} = min(cg${j4}, N / 4u - 1u);`);
  } else {
    for (const j of range(TN)) emit(`let pb${j} = min(${col(j)}, N - 1u);`);
  }

  if (v.pass === "weight") weightLoop(v, emit, fma, vecA, vecB);
  else tapLoop(v, emit, fma, vecA, vecB);

  // Epilogue: bias, pre-activation, activation, guarded stores; dW slices are stacked by tap and
  // dX rows map back from their phase grid to input positions.
  for (const j4 of v.bias ? range(N4) : []) {
    emit(
      vecC
        ? `let bias${j4} = bias[min(cg${j4}, N / 4u - 1u)];`
        : `let bias${j4} = vec4f(${
          range(4).map((e) => `bias[min(${col(j4 * 4 + e)}, N - 1u)]`).join(", ")
        });`,
    );
  }
  for (const i of range(TM)) {
    if (v.pass === "data") {
      emit(`if (live${i}) {`);
      emit(`  let rowC = out${i} * N;`);
    } else {
      emit(`if (row${i} < M) {`);
      const slice = v.pass === "weight" ? "(split * taps + t) * M + " : "";
      emit(`  let rowC = (${slice}row${i}) * N;`);
    }
    emitRowStores(emit, i, { ...v, tn: TN, vecC, n4: "(N / 4u)" }, col);
    emit(`}`);
  }

  return `${CONV_UNIFORMS.struct()}
${header}
${v.activation ? ACTIVATIONS : ""}
@compute @workgroup_size(${lanes.size})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  ${lines.join("\n  ")}
}`;
}

type Emit = (s: string) => void;
type Fma = (a: string, i: number, b: string, j4: number) => string;

/** The spatial axes a rank computes (depth is compiled out of 2-D convs). */
function axes(v: ConvVariant): number[] {
  return v.rank === 3 ? [0, 1, 2] : [1, 2];
}
const AXIS = ["x", "y", "z"];

/**
 * Forward and dX: K = taps × channels, taps outside. Per tap, each row's source pixel and its
 * padding test; inside, the channels of that pixel, 4 at a time when they are vec4.
 */
function tapLoop(v: ConvVariant, emit: Emit, fma: Fma, vecA: boolean, vecB: boolean): void {
  const { tm: TM, tn: TN } = v.tile;
  const N4 = TN / 4;
  const forward = v.pass === "forward";
  const ax = axes(v);
  // Per row: batch index and spatial position (output position for the forward, input
  // position for dX, from the phase grid of slice wid.z).
  if (!forward) {
    // Phase of this slice, innermost axis fastest: ph[a] = (wid.z / (s_after)) % s_a.
    emit("let phase = vec3u(wid.z / (st.y * st.z), (wid.z / st.z) % st.y, wid.z % st.z);");
    // Every phase's rows are laid out on the largest phase grid, ceil(I / s).
    emit("let grid = (inD + st - vec3u(1u)) / st;");
  }
  // The source tensor's spatial dims: the input for the forward, dY's for dX.
  const srcDims = forward ? "inD" : "outD";
  // A position's linear pixel index is affine in its coordinates, so a row's source pixel for
  // tap t is the row's pixel for tap 0 plus the tap's offset (coordinates may be negative).
  const linear = (p: string, n: string) =>
    `((${n} * i32(${srcDims}.x) + ${p}.x) * i32(${srcDims}.y) + ${p}.y) * i32(${srcDims}.z) + ${p}.z`;
  for (const i of range(TM)) {
    const dims = forward ? "outD" : "grid";
    emit(`let r${i} = min(row${i}, M - 1u);`);
    emit(`let w${i} = r${i} % ${dims}.z; let h${i} = (r${i} / ${dims}.z) % ${dims}.y;`);
    emit(`let dd${i} = (r${i} / (${dims}.z * ${dims}.y)) % ${dims}.x;`);
    emit(`let n${i} = i32(r${i} / (${dims}.z * ${dims}.y * ${dims}.x));`);
    emit(`let q${i} = vec3u(dd${i}, h${i}, w${i});`);
    // Source position of tap 0 (negative where the padding is).
    emit(`let base${i} = ${forward ? `vec3i(q${i} * st) - vec3i(pd)` : `vec3i(q${i})`};`);
    emit(`let pix${i} = ${linear(`base${i}`, `n${i}`)};`);
    if (!forward) {
      emit(`let pos${i} = phase + q${i} * st;`);
      emit(`let live${i} = row${i} < M && all(pos${i} < inD);`);
      emit(
        `let out${i} = ((u32(n${i}) * inD.x + pos${i}.x) * inD.y + pos${i}.y) * inD.z + pos${i}.z;`,
      );
    }
  }
  // Channels of the gathered operand: Cin for the forward, Cout for dX.
  emit(`let depthC = ${forward ? "Cin" : "Cout"};`);
  emit("for (var t = 0u; t < taps; t++) {");
  emit("let tap = vec3u(t / (kD.y * kD.z), (t / kD.z) % kD.y, t % kD.z);");
  emit("let reach = vec3i(tap * dl);");
  if (forward) {
    emit("let shift = reach;");
  } else {
    // (i + p − t·d) must be a multiple of s: the same for every row of this phase; the source
    // output position is then q + (phase + p − t·d) / s, the same shift for every row.
    emit("let shifted = vec3i(phase + pd) - reach;");
    emit("let rem = ((shifted % vec3i(st)) + vec3i(st)) % vec3i(st);");
    emit(`if (${ax.map((a) => `rem.${AXIS[a]} != 0`).join(" || ")}) { continue; }`);
    emit("let shift = shifted / vec3i(st);");
  }
  emit(`let tapPix = ${linear("shift", "0")};`);
  const swz = ax.map((a) => AXIS[a]).join("");
  for (const i of range(TM)) {
    // One unsigned compare per axis: a negative coordinate wraps past every size.
    emit(`let ok${i} = all(vec3u(base${i} + shift).${swz} < ${srcDims}.${swz});`);
    emit(
      `let pa${i} = select(0u, u32(pix${i} + tapPix)${vecA ? " * (depthC / 4u)" : " * depthC"}, ` +
        `ok${i});`,
    );
  }
  // B row of (tap, channel c): forward W[t, ci, :] = row t·Cin + c of [K, Cout];
  // dX W[t, col, c] read across: index (t·Cin + col)·Cout + c.
  const bLoads = (kk: string, c: string): string[] => {
    const out: string[] = [];
    if (forward) {
      out.push(`let rb${kk} = (t * Cin + ${c})${vecB ? " * (N / 4u)" : " * N"};`);
      for (const j4 of range(N4)) {
        if (vecB) out.push(`let b${kk}_${j4} = B[rb${kk} + pb${j4}];`);
        else {
          out.push(
            `let b${kk}_${j4} = vec4f(${
              range(4).map((e) => `B[rb${kk} + pb${j4 * 4 + e}]`).join(", ")
            });`,
          );
        }
      }
    }
    return out;
  };
  if (vecA) {
    emit("for (var c4 = 0u; c4 < depthC / 4u; c4++) {");
    if (forward) {
      for (const kk of range(4)) bLoads(`${kk}`, `c4 * 4u + ${kk}u`).forEach(emit);
    } else {
      // dX: B is W read across (contiguous along Cout = the depth), one vec4 per column.
      for (const j of range(TN)) emit(`let bt${j} = B[(t * Cin + pb${j}) * (Cout / 4u) + c4];`);
      for (const kk of range(4)) {
        for (const j4 of range(N4)) {
          emit(
            `let b${kk}_${j4} = vec4f(${
              range(4).map((e) => `bt${j4 * 4 + e}[${kk}]`).join(", ")
            });`,
          );
        }
      }
    }
    for (const i of range(TM)) {
      emit(`let a${i} = select(vec4f(0.0), A[pa${i} + c4], ok${i});`);
      for (const kk of range(4)) {
        for (const j4 of range(N4)) emit(fma(`a${i}[${kk}]`, i, `b${kk}_${j4}`, j4));
      }
    }
    emit("}");
  } else {
    emit("for (var c = 0u; c < depthC; c++) {");
    if (forward) bLoads("", "c").forEach(emit);
    else {
      for (const j4 of range(N4)) {
        emit(
          `let b_${j4} = vec4f(${
            range(4).map((e) => `B[(t * Cin + pb${j4 * 4 + e}) * Cout + c]`).join(", ")
          });`,
        );
      }
    }
    for (const i of range(TM)) {
      emit(`let a${i} = select(0.0, A[pa${i} + c], ok${i});`);
      for (const j4 of range(N4)) emit(fma(`a${i}`, i, `b_${j4}`, j4));
    }
    emit("}");
  }
  emit("}");
}

/**
 * dW: slice wid.z is tap t; rows are input channels, columns output channels, the depth the
 * output pixels. Each pixel's input position is shared by all rows; the pixel counter advances
 * with adds and compares instead of divisions.
 */
function weightLoop(v: ConvVariant, emit: Emit, fma: Fma, vecA: boolean, vecB: boolean): void {
  const { tm: TM, tn: TN } = v.tile;
  const N4 = TN / 4;
  const ax = axes(v);
  // Slice wid.z = group · taps + tap; a split pass's invocation x of the group sums chunk
  // `split` of the depth, an unsplit one (one group, split 0) all of it.
  emit("let t = wid.z % taps;");
  if (v.tile.splitK) {
    emit(`let split = (wid.z / taps) * ${v.tile.splitK}u + lid.x;`);
    emit("let chunk = (K + ch.w - 1u) / ch.w;");
    emit("let pStart = min(K, split * chunk); let pEnd = min(K, pStart + chunk);");
  } else {
    emit("let split = 0u; let pStart = 0u; let pEnd = K;");
  }
  emit("let tap = vec3u(t / (kD.y * kD.z), (t / kD.z) % kD.y, t % kD.z);");
  emit("let first = vec3i(tap * dl) - vec3i(pd);");
  // Rows (input channels), clamped; as vec4 groups when Cin % 4 == 0 (a group's 4 rows are the
  // 4 consecutive channels of one vec4).
  if (vecA) {
    for (const i4 of range(TM / 4)) emit(`let ra${i4} = min(row${i4 * 4} / 4u, Cin / 4u - 1u);`);
  } else {
    for (const i of range(TM)) emit(`let ra${i} = min(row${i}, Cin - 1u);`);
  }
  // The first pixel's position, once; then the counter advances with adds and compares.
  emit("let plane = outD.y * outD.z;");
  emit("var o = vec3u((pStart / plane) % outD.x, (pStart / outD.z) % outD.y, pStart % outD.z);");
  emit("var n = pStart / (plane * outD.x);");
  // `pixelsPerStep` pixels per step, then a pixel at a time.
  const inside = ax.map((a) => `src.${AXIS[a]} >= 0 && src.${AXIS[a]} < i32(inD.${AXIS[a]})`)
    .join(" && ");
  const step = (pixels: number) => {
    for (const q of range(pixels)) {
      emit("{");
      emit("let src = vec3i(o * st) + first;");
      emit(`let ok = ${inside};`);
      emit("let sp = vec3u(select(vec3i(0), src, ok));");
      emit(
        `let px = select(0u, ((n * inD.x + sp.x) * inD.y + sp.y) * inD.z + sp.z, ok)` +
          `${vecA ? " * (Cin / 4u)" : " * Cin"};`,
      );
      const pq = `(p + ${q}u)`;
      for (const j4 of range(N4)) {
        if (vecB) emit(`b${q}_${j4} = B[${pq} * (N / 4u) + pb${j4}];`);
        else {
          emit(
            `b${q}_${j4} = vec4f(${
              range(4).map((e) => `B[${pq} * N + pb${j4 * 4 + e}]`).join(", ")
            });`,
          );
        }
      }
      if (vecA) {
        for (const i4 of range(TM / 4)) {
          emit(`a${q}_${i4} = select(vec4f(0.0), A[px + ra${i4}], ok);`);
        }
      } else {
        for (const i of range(TM)) emit(`a${q}_${i} = select(0.0, A[px + ra${i}], ok);`);
      }
      // Next output pixel: w, then h, then d, then the batch.
      emit("o.z += 1u;");
      emit("if (o.z == outD.z) { o.z = 0u; o.y += 1u;");
      emit("  if (o.y == outD.y) { o.y = 0u; o.x += 1u;");
      emit("    if (o.x == outD.x) { o.x = 0u; n += 1u; } } }");
      emit("}");
    }
    for (const i of range(TM)) {
      for (const q of range(pixels)) {
        const a = vecA ? `a${q}_${i >> 2}[${i & 3}]` : `a${q}_${i}`;
        for (const j4 of range(N4)) emit(fma(a, i, `b${q}_${j4}`, j4));
      }
    }
    emit(`p += ${pixels}u;`);
  };
  const unroll = v.tile.pixelsPerStep ?? 1;
  for (const q of range(unroll)) {
    for (const j4 of range(N4)) emit(`var b${q}_${j4}: vec4f;`);
    if (vecA) { for (const i4 of range(TM / 4)) emit(`var a${q}_${i4}: vec4f;`); }
    else for (const i of range(TM)) emit(`var a${q}_${i}: f32;`);
  }
  emit("var p = pStart;");
  if (unroll > 1) {
    emit(`while (p + ${unroll}u <= pEnd) {`);
    step(unroll);
    emit("}");
  }
  emit("while (p < pEnd) {");
  step(1);
  emit("}");
}
