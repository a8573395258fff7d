// The fused decoder's geometry (shaders/decode.ts and decode_backward.ts hold its kernels): the
// packed weight buffer, the planes the forward saves and the backward writes, each kernel's
// workgroup arrays, and what a layout costs in workgroup memory and in loop iterations.
/** The decode's geometry. */
export interface DecodeShape {
  hidden: number;
  /** Content channels (the fed-back prediction). */
  content: number;
  /** Flag channels appended to the content (given, not predicted). */
  flags: number;
  steps: number;
  /** Memory: key size and context length (keys before the first decoded step); 0 = none. */
  keyDim: number;
  memory: number;
  /** Visible keys per query for a sliding window; 0 = every past key (causal). */
  window: number;
}

/** Geometry and launch shape: what a kernel is specialised for. */
export interface DecodeDims extends DecodeShape {
  /** Batch rows per workgroup. */
  rows: number;
  /** Lanes per workgroup. */
  lanes: number;
}

export type Layout = Record<string, [offset: number, size: number]>;

/** Consecutive blocks, each starting at a multiple of `align` floats. */
function layout(parts: [string, number][], align = 1): { at: Layout; total: number } {
  const at: Layout = {};
  let total = 0;
  for (const [name, size] of parts) {
    at[name] = [total, size];
    total += Math.ceil(size / align) * align;
  }
  return { at, total };
}

/** Offsets (floats) of each weight in the packed weight buffer, in this order. */
export function weightLayout(d: DecodeDims): { at: Layout; total: number } {
  const { hidden: H, content: C, keyDim: K, steps: S } = d;
  const I = C + d.flags;
  const mem = K > 0;
  return layout([
    ["kernel", I * 3 * H],
    ["recurrent", H * 3 * H],
    ["gruBias", 2 * 3 * H],
    // Rows padded to whole vec4 (the read-out loads four outputs' weights at once).
    ["outWeight", (mem ? 2 * H : H) * 4 * Math.ceil(C / 4)],
    ["outBias", C],
    ...(mem
      ? [
        ["queryWeight", (H + I) * K],
        ["queryBias", K],
        ["keyWeight", I * K],
        ["keyBias", S * K],
        ["valueWeight", I * K],
        ["valueBias", K],
        ["gateWeight", (H + K) * H],
        ["gateBias", H],
        ["contextWeight", K * H],
        ["contextBias", H],
      ] as [string, number][]
      : []),
  ], 4);
}

/** Per (row, step) planes the forward pass saves: widths in floats. */
export function savedLayout(d: DecodeDims): { at: Layout; total: number } {
  const { hidden: H, content: C, keyDim: K } = d;
  const I = C + d.flags;
  const mem = K > 0;
  return layout([
    ["x", I],
    ["hprev", H],
    ["gates", 4 * H],
    ["outIn", mem ? 2 * H : H],
    ...(mem
      ? [
        ["queryIn", H + I],
        ["gateIn", H + K],
        ["context", K],
        ["gateAct", 2 * H],
        ["query", K],
        ["probs", d.memory + d.steps],
      ] as [string, number][]
      : []),
  ], 4);
}

/** Per (row, step) gradient planes of the backward pass. */
export function gradLayout(d: DecodeDims): { at: Layout; total: number } {
  const { hidden: H, content: C, keyDim: K } = d;
  return layout([
    ["dKernel", 3 * H],
    ["dRecurrent", 3 * H],
    ["dOut", C],
    ...(K > 0
      ? [
        ["dQuery", K],
        ["dKey", K],
        ["dValue", K],
        ["dGate", H],
        ["dContext", H],
        ["dScore", d.memory + d.steps],
        ["dRead", K],
      ] as [string, number][]
      : []),
  ], 4);
}

/** A workgroup array: name, element type and length. */
export type SharedArray = [name: string, type: "f32" | "vec4f", length: number];

/** The forward kernel's workgroup arrays, R rows each (the inputs padded to whole vec4). */
export function forwardShared(d: DecodeDims): SharedArray[] {
  const { rows: R, hidden: H, keyDim: K } = d;
  return [
    ["xs", "vec4f", R * Math.ceil((d.content + d.flags) / 4)],
    ["hs", "vec4f", R * H / 4],
    ["hn", "vec4f", R * H / 4],
    ...(K > 0
      ? [
        ["qs", "vec4f", R * K / 4],
        ["cs", "vec4f", R * K / 4],
        ["gs", "vec4f", R * H / 4],
        ["sc", "vec4f", R * Math.ceil((d.memory + d.steps) / 4)],
        ["stat", "f32", 2 * R],
      ] as SharedArray[]
      : []),
  ];
}

/** The backward kernel's workgroup arrays, R rows each. */
export function backwardShared(d: DecodeDims): SharedArray[] {
  const { rows: R, hidden: H, keyDim: K, content: C } = d;
  return [
    ["dh", "vec4f", R * H / 4],
    ["dhn", "vec4f", R * H / 4],
    ["dxs", "f32", R * (C + d.flags)],
    ["dxc", "f32", R * C],
    ["dos", "vec4f", R * Math.ceil(C / 4)],
    ["dgx", "vec4f", R * 3 * H / 4],
    ["dgh", "vec4f", R * 3 * H / 4],
    ...(K > 0
      ? [
        ["dgp", "vec4f", R * H / 4],
        ["dup", "vec4f", R * H / 4],
        ["dcs", "vec4f", R * K / 4],
        ["dqs", "vec4f", R * K / 4],
        ["dks", "vec4f", R * K / 4],
        ["dvs", "vec4f", R * K / 4],
        ["ds", "vec4f", R * Math.ceil((d.memory + d.steps) / 4)],
        ["stat", "f32", R],
      ] as SharedArray[]
      : []),
  ];
}

/**
 * The most batch rows, up to `d.rows`, whose workgroup memory fits `limit` bytes (0: not one).
 * Every workgroup array holds a fixed number of floats per row, so the bytes grow by one row's.
 */
export function rowsThatFit(d: DecodeDims, limit: number): number {
  return Math.min(d.rows, Math.floor(limit / decodeSharedBytes({ ...d, rows: 1 })));
}

/** Workgroup memory (bytes) the larger of the two kernels declares for these dims. */
export function decodeSharedBytes(d: DecodeDims): number {
  const bytes = (arrays: SharedArray[]) =>
    arrays.reduce((sum, [, type, n]) => sum + n * (type === "vec4f" ? 16 : 4), 0);
  return Math.max(bytes(forwardShared(d)), bytes(backwardShared(d)));
}

/**
 * Loop iterations (trips + 1 per loop entered) the busiest invocation of each kernel runs: an
 * upper bound, phase by phase as the kernels loop, for the adapter's loop budget. A strided loop
 * `for (i = l; i < n; i += WGN)` runs ceil(n / WGN) trips on lane 0, and zeroing the workgroup
 * memory at the start (WGSL zero-initialises it) is one more strided loop over its 16-byte words.
 */
export function decodeLoopIterations(d: DecodeDims): { forward: number; backward: number } {
  const { rows: R, lanes, hidden: H, content: C, keyDim: K, steps: S, memory: M } = d;
  const I = C + d.flags, H4 = H / 4, I4 = Math.ceil(I / 4), K4 = K / 4, C4 = Math.ceil(C / 4);
  const mem = K > 0;
  const T4 = Math.ceil((M + S) / 4);
  /** A strided loop over n items whose each trip runs `inner` iterations of nested loops. */
  const strided = (n: number, inner = 0) => Math.ceil(n / lanes) * (1 + inner) + 1;
  const loop = (trips: number) => trips + 1;
  const zeroing = (arrays: SharedArray[]) =>
    strided(arrays.reduce((sum, [, type, n]) => sum + (type === "vec4f" ? n : n / 4), 0));
  let forward = zeroing(forwardShared(d)) + strided(R * H) + strided(R * C) +
    strided(R * M * K4) + loop(S);
  let backward = zeroing(backwardShared(d)) + strided(R * (H + C)) + loop(S);
  for (let s = 0; s < S; s++) {
    const L = M + s + 1;
    const j0 = d.window > 0 ? Math.max(0, L - d.window) : 0;
    /** Blocks of four keys that hold the visible ones. */
    const nb = Math.ceil(L / 4) - Math.floor(j0 / 4);
    forward += strided(R * d.flags) + strided(R * I) + strided(R * H4) +
      strided(H4, loop(I4) + loop(H4)) + strided(C4, (mem ? 2 : 1) * loop(H4)) +
      strided(R * (mem ? 2 * H4 : H4)) + strided(R * H4);
    backward += 2 * strided(R * C) + strided(mem ? 2 * H4 : H4, loop(C4)) + strided(H4) +
      strided(H4 + I4, loop(3 * H4));
    if (!mem) continue;
    forward += strided(K4, loop(I4) + loop(H4)) + strided(R * (H + I)) +
      strided(R * nb, loop(K4)) + strided(R, 2 * loop(nb)) + strided(R * T4) +
      strided(R * K4, loop(nb)) + strided(H4, loop(H4) + loop(K4)) + strided(R * (H4 + K4));
    backward += strided(H4 + K4, 2 * loop(H4)) + strided(R * nb, loop(K4)) +
      strided(R, loop(nb)) + strided(R * T4) + strided(R * K4) +
      strided(R * K4, loop(nb) + loop(S - s)) + strided(H4 + I4, loop(K4));
  }
  // Counted against the driver (tests/loop_budget.test.ts) the sum above misses up to ~10 % on
  // small shapes, a few iterations a step; the margin covers that.
  const margin = (n: number) => Math.ceil(n * 1.125) + 256;
  return { forward: margin(forward), backward: margin(backward) };
}
