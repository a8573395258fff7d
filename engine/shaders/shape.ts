// Kernels of the shape family. Data moves as raw 32-bit words (f32, i32 and u32 alike), so one
// pipeline serves every dtype; only scatter_sum (f32 sums) and cast look at the values.
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, WG } from "./common.ts";

/** Most dimensions a copy or pad may have after adjacent dimensions are merged. */
export const MAX_RANK = 8;

/** Threads of the single-workgroup scatter planner (its chunk size). */
const PLAN_WG = 256;

/**
 * Consecutive innermost entries each thread handles (scalar words, vec4s). One entry per thread
 * spends most of the time on per-invocation cost and u32 division, which every adapter emulates
 * (on lavapipe a 1024² transpose went from 19 ms to under 7 ms).
 */
export function perThread(vec4: boolean): number {
  return vec4 ? 4 : 8;
}

/** Threads covering `rows` rows of `len` entries, `perThread` entries each. */
export function chunkedThreads(rows: number, len: number, vec4: boolean): number {
  return rows * Math.ceil(len / perThread(vec4));
}

/** A per-dimension uniform array: MAX_RANK words as vec4s (uniform arrays need 16-byte strides). */
const DIMS = `array<vec4u, ${MAX_RANK / 4}>` as const;

const at = (field: string, d: number) => `u.${field}[${d >> 2}][${d & 3}]`;

/** WGSL that splits thread `i` into `row` and the first innermost entry `j0` of its chunk. */
function chunkOf(len: string, per: number): string {
  return `
  let chunks = (${len} + ${per - 1}u) / ${per}u;
  let j0 = (i % chunks) * ${per}u;
  let j1 = min(j0 + ${per}u, ${len});
  let row = i / chunks;`;
}

/** WGSL decomposing `row` over dims[0 .. rank-2] (the outermost needs no modulo: i < n). */
function outerCoords(rank: number, perDim: (d: number) => string[]): string {
  const lines = ["  var rest = row;"];
  for (let d = rank - 2; d >= 0; d--) {
    lines.push(d > 0 ? `  let c${d} = rest % ${at("dims", d)};` : `  let c${d} = rest;`);
    if (d > 0) lines.push(`  rest = rest / ${at("dims", d)};`);
    lines.push(...perDim(d));
  }
  return lines.join("\n");
}

/**
 * dst[dst_offset + Σ c·dst_strides] = src[src_offset + Σ c·src_strides] for every coordinate c of
 * `dims` (permute, slice and concat are all this), a chunk of the innermost dimension per
 * thread. With `vec4`, every number is in units of four words: the innermost dimension is
 * contiguous on both sides and all else divides by four.
 * n counts threads.
 */
const STRIDED_COPY_UNIFORMS = uniformBlock({
  n: "u32",
  gx: "u32",
  src_offset: "u32",
  dst_offset: "u32",
  dims: DIMS,
  src_strides: DIMS,
  dst_strides: DIMS,
});

export function stridedCopyKernel(
  rank: number,
  vec4: boolean,
): KernelSpec<typeof STRIDED_COPY_UNIFORMS.fields> {
  const word = vec4 ? "vec4u" : "u32";
  const inner = rank - 1;
  return {
    name: "strided_copy",
    key: `${rank}|${vec4}`,
    bindings: ["read", "write"],
    uniforms: STRIDED_COPY_UNIFORMS,
    code: () => `
${STRIDED_COPY_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> src: array<${word}>;
@group(0) @binding(1) var<storage, read_write> dst: array<${word}>;
@group(0) @binding(2) var<uniform> u: U;
${LINEAR_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.n) { return; }
${chunkOf(at("dims", inner), perThread(vec4))}
  var s = u.src_offset;
  var t = u.dst_offset;
${
      outerCoords(rank, (d) => [
        `  s += c${d} * ${at("src_strides", d)};`,
        `  t += c${d} * ${at("dst_strides", d)};`,
      ])
    }
  let ss = ${at("src_strides", inner)};
  let ts = ${at("dst_strides", inner)};
  for (var j = j0; j < j1; j++) { dst[t + j * ts] = src[s + j * ss]; }
}`,
  };
}

/**
 * Constant padding into a contiguous output: out[c] = src[c - before] inside the source box,
 * else `value` (a 32-bit pattern); a chunk of the innermost dimension per thread. Coordinates
 * left of the box wrap around in u32 and so fail the `< src_dims` test.
 * n counts threads.
 */
const PAD_UNIFORMS = uniformBlock({
  n: "u32",
  gx: "u32",
  value: "u32",
  dims: DIMS,
  before: DIMS,
  src_dims: DIMS,
  src_strides: DIMS,
});

export function padKernel(rank: number): KernelSpec<typeof PAD_UNIFORMS.fields> {
  const inner = rank - 1;
  return {
    name: "pad",
    key: `${rank}`,
    bindings: ["read", "write"],
    uniforms: PAD_UNIFORMS,
    code: () => `
${PAD_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> u: U;
${LINEAR_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.n) { return; }
${chunkOf(at("dims", inner), perThread(false))}
  var s = 0u;
  var inside = true;
${
      outerCoords(rank, (d) => [
        `  let x${d} = c${d} - ${at("before", d)};`,
        `  inside = inside && x${d} < ${at("src_dims", d)};`,
        `  s += x${d} * ${at("src_strides", d)};`,
      ])
    }
  let t = row * ${at("dims", inner)};
  for (var j = j0; j < j1; j++) {
    let x = j - ${at("before", inner)};
    if (inside && x < ${at("src_dims", inner)}) {
      dst[t + j] = src[s + x * ${at("src_strides", inner)}];
    } else {
      dst[t + j] = u.value;
    }
  }
}`,
  };
}

/**
 * out[o, p, j] = x[o, idx[p], j] over x viewed as [outer, rows, inner], a chunk of j per
 * thread; an index ≥ rows (a negative i32 reads as a huge u32) writes zeros and reads nothing.
 * count is the number of indices, inner is in vec4 units when `vec4`.
 */
const GATHER_UNIFORMS = uniformBlock({
  n: "u32",
  gx: "u32",
  count: "u32",
  rows: "u32",
  inner: "u32",
});

export function gatherKernel(vec4: boolean): KernelSpec<typeof GATHER_UNIFORMS.fields> {
  const word = vec4 ? "vec4u" : "u32";
  return {
    name: "gather",
    key: `${vec4}`,
    bindings: ["read", "read", "write"],
    uniforms: GATHER_UNIFORMS,
    code: () => `
${GATHER_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> x: array<${word}>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<${word}>;
@group(0) @binding(3) var<uniform> u: U;
${LINEAR_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.n) { return; }
${chunkOf("u.inner", perThread(vec4))}
  let r = idx[row % u.count];
  let t = row * u.inner;
  if (r < u.rows) {
    let s = ((row / u.count) * u.rows + r) * u.inner;
    for (var j = j0; j < j1; j++) { out[t + j] = x[s + j]; }
  } else {
    for (var j = j0; j < j1; j++) { out[t + j] = ${word}(); }
  }
}`,
  };
}

/**
 * Builds the plan of a deterministic scatter-add in one workgroup: for every row r the positions
 * p with idx[p] == r, in increasing p, as a CSR list. plan[0..rows) ends up holding each row's
 * end offset (its start is the previous row's end), plan[rows + k] the k-th position.
 * Counting uses integer atomics (the totals do not depend on timing); placement walks chunks of
 * PLAN_WG indices in order, and a thread's slot inside its row is the row's cursor plus the
 * number of equal keys before it in the chunk, so the order never varies.
 * Out-of-range indices are left out. count is the number of indices.
 */
const SCATTER_PLAN_UNIFORMS = uniformBlock({ count: "u32", rows: "u32" });

export const SCATTER_PLAN: KernelSpec<typeof SCATTER_PLAN_UNIFORMS.fields> = {
  name: "scatter_plan",
  key: "",
  bindings: ["read", "write"],
  uniforms: SCATTER_PLAN_UNIFORMS,
  code: () => `
${SCATTER_PLAN_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> idx: array<u32>;
@group(0) @binding(1) var<storage, read_write> plan: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> u: U;
const NONE = 0xffffffffu;
var<workgroup> keys: array<u32, ${PLAN_WG}>;
var<workgroup> sums: array<u32, ${PLAN_WG}>;

fn key_at(p: u32) -> u32 {
  if (p >= u.count) { return NONE; }
  let k = idx[p];
  return select(NONE, k, k < u.rows);
}

// Equal keys at positions before lid in the chunk, compared four at a time.
fn rank_in_chunk(lid: u32, key: u32) -> u32 {
  let k4 = vec4u(key);
  var same = vec4u(0u);
  for (var t = 0u; t < lid; t += 4u) {
    let four = vec4u(keys[t], keys[t + 1u], keys[t + 2u], keys[t + 3u]);
    let before = vec4u(t, t + 1u, t + 2u, t + 3u) < vec4u(lid);
    same += select(vec4u(0u), vec4u(1u), (four == k4) & before);
  }
  return same.x + same.y + same.z + same.w;
}

@compute @workgroup_size(${PLAN_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  for (var r = lid; r < u.rows; r += ${PLAN_WG}u) { atomicStore(&plan[r], 0u); }
  storageBarrier();
  for (var p = lid; p < u.count; p += ${PLAN_WG}u) {
    let key = key_at(p);
    if (key != NONE) { atomicAdd(&plan[key], 1u); }
  }
  storageBarrier();
  // Exclusive prefix sum of the counts: each row's start.
  var carry = 0u;
  for (var base = 0u; base < u.rows; base += ${PLAN_WG}u) {
    let r = base + lid;
    var count = 0u;
    if (r < u.rows) { count = atomicLoad(&plan[r]); }
    sums[lid] = count;
    workgroupBarrier();
    for (var offset = 1u; offset < ${PLAN_WG}u; offset = offset * 2u) {
      var left = 0u;
      if (lid >= offset) { left = sums[lid - offset]; }
      workgroupBarrier();
      sums[lid] += left;
      workgroupBarrier();
    }
    if (r < u.rows) { atomicStore(&plan[r], carry + sums[lid] - count); }
    carry += sums[${PLAN_WG - 1}];
    workgroupBarrier();
  }
  storageBarrier();
  // Placement in index order; each row's start advances to its end.
  for (var base = 0u; base < u.count; base += ${PLAN_WG}u) {
    let key = key_at(base + lid);
    keys[lid] = key;
    workgroupBarrier();
    if (key != NONE) {
      let slot = atomicLoad(&plan[key]) + rank_in_chunk(lid, key);
      atomicStore(&plan[u.rows + slot], base + lid);
    }
    storageBarrier();
    if (key != NONE) { atomicAdd(&plan[key], 1u); }
    storageBarrier();
  }
}`,
};

/**
 * out[o, r, j] = Σ src[o, p, j] over the plan's positions p of row r, in increasing p (so the
 * float sum is the same on every run); a chunk of j per thread shares the walk over the plan.
 * n counts threads, count the indices.
 */
const SCATTER_SUM_UNIFORMS = uniformBlock({
  n: "u32",
  gx: "u32",
  rows: "u32",
  inner: "u32",
  count: "u32",
});

export function scatterSumKernel(vec4: boolean): KernelSpec<typeof SCATTER_SUM_UNIFORMS.fields> {
  const word = vec4 ? "vec4f" : "f32";
  const per = perThread(vec4);
  return {
    name: "scatter_sum",
    key: `${vec4}`,
    bindings: ["read", "read", "write"],
    uniforms: SCATTER_SUM_UNIFORMS,
    code: () => `
${SCATTER_SUM_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> plan: array<u32>;
@group(0) @binding(1) var<storage, read> src: array<${word}>;
@group(0) @binding(2) var<storage, read_write> out: array<${word}>;
@group(0) @binding(3) var<uniform> u: U;
${LINEAR_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.n) { return; }
${chunkOf("u.inner", per)}
  let r = row % u.rows;
  let base = (row / u.rows) * u.count;
  var start = 0u;
  if (r > 0u) { start = plan[r - 1u]; }
  let end = plan[r];
  var acc: array<${word}, ${per}>;
  for (var k = start; k < end; k++) {
    let s = (base + plan[u.rows + k]) * u.inner;
    for (var j = j0; j < j1; j++) { acc[j - j0] += src[s + j]; }
  }
  let t = row * u.inner;
  for (var j = j0; j < j1; j++) { out[t + j] = acc[j - j0]; }
}`,
  };
}

/**
 * Elementwise dtype conversion, four elements per thread (buffer capacities are multiples of 16
 * bytes, so the tail vector stays inside the binding). f32 → int truncates toward zero and
 * saturates to the nearest f32 in range, as WGSL specifies; the clamp is explicit because
 * naga's GL backend leaves out-of-range values undefined. i32 ↔ u32 keeps the bits (two's
 * complement), like NumPy's astype. n counts vectors.
 */
const CAST_UNIFORMS = uniformBlock({ n: "u32", gx: "u32" });

export function castKernel(from: string, to: string): KernelSpec<typeof CAST_UNIFORMS.fields> {
  const value = from !== "f32" || to === "f32"
    ? "x[i]"
    : to === "i32"
    ? "clamp(x[i], vec4f(-2147483648.0), vec4f(2147483520.0))"
    : "clamp(x[i], vec4f(0.0), vec4f(4294967040.0))";
  return {
    name: "cast",
    key: `${from}>${to}`,
    bindings: ["read", "write"],
    uniforms: CAST_UNIFORMS,
    code: () => `
${CAST_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> x: array<vec4<${from}>>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<${to}>>;
@group(0) @binding(2) var<uniform> u: U;
${LINEAR_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i >= u.n) { return; }
  y[i] = vec4<${to}>(${value});
}`,
  };
}
