// Fused scaled dot-product attention: forward with an online (streaming) softmax over key
// tiles, FlashAttention-2 style backward that recomputes the scores from q, k and the saved
// per-row log-sum-exp, and a kernel that materialises the weights for visualisation.
//
// Register-blocked, generated code: one invocation owns ROWS query rows (forward, dQ) or key
// rows (dK/dV) and keeps them, their accumulators and the running softmax state in registers
// (vec4 chunks of the head dimensions, which are baked in as constants); the other side's rows
// stream through in a loop, and each vec4 it loads serves all ROWS rows. On a CPU adapter a
// storage load costs far more than the FMAs it feeds, so loads per FMA is what counts; no
// workgroup memory, no barriers. Each output element is written by exactly one invocation:
// deterministic, no atomics.
//
// Masking: a masked score is the sentinel MASKED (≈ −f32 max), never −∞ (WGSL lets compilers
// assume arithmetic stays finite). Additive-mask values ≤ −3e38 (−∞ included) count as masked.
// A row with every key masked gets output 0, weights 0 and lse = FULLY_MASKED; the backward
// kernels give such rows probability 0.
import type { KernelSpec } from "../runtime.ts";
import { tunable } from "../tuning.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, range } from "./common.ts";

/** How scores are masked: index rules (causal, sliding window) or an additive tensor. */
export type MaskKind = "none" | "causal" | "window" | "tensor";

/** The uniform block `U` of every attention kernel. */
const ATTENTION_UNIFORMS = uniformBlock({
  sq: "u32",
  sk: "u32",
  heads: "u32",
  window: "u32",
  scale: "f32",
  /** sk − sq: query i sits at key position i + shift (causal masks align bottom-right). */
  shift: "i32",
  /** Additive mask strides over [B, H, Sq, Sk] (0 where it broadcasts). */
  mask_b: "u32",
  mask_h: "u32",
  mask_q: "u32",
  mask_k: "u32",
  /** Weights kernel: workgroups along x, and the element count (0 elsewhere). */
  gx: "u32",
  total: "u32",
});

type AttentionSpec = KernelSpec<typeof ATTENTION_UNIFORMS.fields>;

/** Invocations per workgroup: one SIMD row of lanes on a CPU adapter. */
const LANES = 8;

/**
 * Rows each invocation owns, per kernel (more rows: fewer loads per FMA, more registers), and
 * the keys the forward kernel scores before it rescales its accumulators once. Measured on
 * lavapipe (b8 h4 s128 d32, shared 2 cores): forward 8 rows × 2-key tiles beat 4×4, 6×2, 8×4,
 * 12×2 and 16×2 (16 rows also compile for ~9 s); backward 8 query / 4 key rows beat 4/4 and 6/6.
 * GPUs take the same until measured.
 */
export const ATTENTION_TUNING = tunable("attention", {
  cpu: { forwardRows: 8, keyTile: 2, queryRows: 8, keyRows: 4 },
  gpu: { forwardRows: 8, keyTile: 2, queryRows: 8, keyRows: 4 },
});

/**
 * Rows per invocation for `count` rows in all: the tuned number, or the next power of two ≥
 * count when that is smaller — a decoding step (one query) would otherwise compute its row
 * ROWS times over in every lane.
 */
function rowsFor(tuned: number, count: number): number {
  let rows = 1;
  while (rows < Math.min(tuned, count)) rows *= 2;
  return Math.min(rows, tuned);
}

function header(kind: MaskKind): string {
  return /* wgsl */ `
${ATTENTION_UNIFORMS.struct()}
const MASKED = -3.4e38;
const MASK_LIMIT = -3.0e38;
const FULLY_MASKED = 3.0e38;

// Score of (query i, key j) given their scaled dot product, or MASKED.
fn masked_score(bh: u32, i: u32, j: u32, dot: f32) -> f32 {
  var s = dot;
  ${
    kind === "causal" || kind === "window"
      ? `let pos = i32(i) + u.shift;
  let jj = i32(j);
  if (jj > pos${kind === "window" ? " || jj <= pos - i32(u.window)" : ""}) { s = MASKED; }`
      : ""
  }${
    kind === "tensor"
      ? `let b = bh / u.heads;
  let h = bh - b * u.heads;
  let mv = mask[b * u.mask_b + h * u.mask_h + i * u.mask_q + j * u.mask_k];
  s = select(dot + mv, MASKED, mv <= MASK_LIMIT);`
      : ""
  }
  return s;
}

// Keys [start, end) that query i may see: index masks shorten the loop instead of testing.
fn key_range(i: u32) -> vec2u {
  ${
    kind === "causal" || kind === "window"
      ? `let pos = i32(i) + u.shift;
  let end = u32(clamp(pos + 1, 0, i32(u.sk)));
  ${
        kind === "window"
          ? "let start = u32(clamp(pos - i32(u.window) + 1, 0, i32(end)));"
          : "let start = 0u;"
      }
  return vec2u(start, end);`
      : "return vec2u(0u, u.sk);"
  }
}

// Queries [start, end) that may see key j (the same rules, solved for i).
fn query_range(j: u32) -> vec2u {
  ${
    kind === "causal" || kind === "window"
      ? `let first = i32(j) - u.shift;
  let start = u32(clamp(first, 0, i32(u.sq)));
  ${
        kind === "window"
          ? "let end = u32(clamp(first + i32(u.window), i32(start), i32(u.sq)));"
          : "let end = u.sq;"
      }
  return vec2u(start, end);`
      : "return vec2u(0u, u.sq);"
  }
}`;
}

type Names = [string, "read" | "write"][];

/** Buffers holding rows of the head dimension D or Dv; the rest hold one f32 per row. */
const ROW_DIM: Record<string, "d" | "dv"> = {
  q: "d",
  k: "d",
  dq: "d",
  dk: "d",
  v: "dv",
  out: "dv",
  dout: "dv",
  dvalue: "dv",
};

interface Dims {
  d: number;
  dv: number;
  kind: MaskKind;
}

/** Rows of a width divisible by 4 are bound as vec4 arrays. */
function isVec(dims: Dims, name: string): boolean {
  const dim = ROW_DIM[name];
  return dim !== undefined && dims[dim] % 4 === 0;
}

function bindings(dims: Dims, names: Names): string {
  return names.map(([name, access], i) =>
    `@group(0) @binding(${i}) var<storage, ${access === "read" ? "read" : "read_write"}> ` +
    `${name}: array<${isVec(dims, name) ? "vec4f" : "f32"}>;`
  ).join("\n") + `\n@group(0) @binding(${names.length}) var<uniform> u: U;`;
}

const chunksOf = (n: number) => Math.ceil(n / 4);

/** WGSL for chunk c (a vec4f, zero-padded past the width) of row `row` of buffer `name`. */
function load(dims: Dims, name: string, row: string, c: number): string {
  const width = dims[ROW_DIM[name]];
  if (isVec(dims, name)) return `${name}[(${row}) * ${width / 4}u + ${c}u]`;
  const parts = range(4).map((e) =>
    4 * c + e < width ? `${name}[(${row}) * ${width}u + ${4 * c + e}u]` : "0.0"
  );
  return `vec4f(${parts.join(", ")})`;
}

/** WGSL storing vec4 `value` as chunk c of row `row` (only the elements inside the width). */
function store(dims: Dims, name: string, row: string, c: number, value: string): string {
  const width = dims[ROW_DIM[name]];
  if (isVec(dims, name)) return `${name}[(${row}) * ${width / 4}u + ${c}u] = ${value};`;
  return `{ let x = ${value};${
    range(4).filter((e) => 4 * c + e < width).map((e) =>
      ` ${name}[(${row}) * ${width}u + ${4 * c + e}u] = x[${e}];`
    ).join("")
  } }`;
}

/** Σ over chunks of dot(a{c}, b{c}): a row-by-row dot product of two chunked rows. */
function dotRows(a: (c: number) => string, b: (c: number) => string, width: number): string {
  return range(chunksOf(width)).map((c) => `dot(${a(c)}, ${b(c)})`).join(" + ");
}

/** The additive mask is one more read-only binding, first. */
function withMask(kind: MaskKind, names: Names): Names {
  return kind === "tensor" ? [["mask", "read"], ...names] : names;
}

/** A kernel and the buffer names its bindings take, in order. */
export interface AttentionKernel {
  kernel: AttentionSpec;
  order: string[];
  /** Rows one invocation owns, and invocations per workgroup. */
  rows: number;
  lanes: number;
}

function spec(
  name: string,
  dims: Dims,
  rows: number,
  names: Names,
  body: string[],
): AttentionKernel {
  const key = `${dims.d}|${dims.dv}|${dims.kind}|${rows}|${ATTENTION_TUNING.get().keyTile}`;
  return {
    kernel: {
      name,
      key,
      bindings: names.map(([, access]) => access),
      uniforms: ATTENTION_UNIFORMS,
      code: () =>
        `${header(dims.kind)}\n${bindings(dims, names)}\n` +
        `@compute @workgroup_size(${LANES})\n` +
        `fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {\n` +
        body.map((line) => `  ${line}`).join("\n") + "\n}",
    },
    order: names.map(([n]) => n),
    rows,
    lanes: LANES,
  };
}

/**
 * Forward: out_i = Σ_j softmax_j(s_ij) v_j with s_ij = scale · q_i·k_j (+ mask), in one pass
 * over tiles of `keyTile` keys keeping each row's running max m and sum l; writes
 * lse_i = m + log l. Workgroups: [ceil(Sq / (ROWS · LANES)), B·H].
 */
export function attentionForwardKernel(
  d: number,
  dv: number,
  kind: MaskKind,
  queries: number,
): AttentionKernel {
  const dims = { d, dv, kind };
  const { forwardRows, keyTile: T } = ATTENTION_TUNING.get();
  const R = rowsFor(forwardRows, queries);
  const [cd, cv] = [chunksOf(d), chunksOf(dv)];
  const names = withMask(kind, [["q", "read"], ["k", "read"], ["v", "read"], ["out", "write"], [
    "lse",
    "write",
  ]]);
  const b: string[] = [
    "let bh = wid.y;",
    `let first = (wid.x * ${LANES}u + lid) * ${R}u;`,
    // Lanes past the last row have nothing to do (no barriers follow, so leaving is safe).
    `if (first >= u.sq) { return; }`,
    "let keys = bh * u.sk;",
  ];
  for (const r of range(R)) {
    b.push(`let i${r} = min(first + ${r}u, u.sq - 1u);`, `let row${r} = bh * u.sq + i${r};`);
    for (const c of range(cd)) {
      b.push(`let q${r}_${c} = ${load(dims, "q", `row${r}`, c)} * u.scale;`);
    }
    for (const c of range(cv)) b.push(`var a${r}_${c} = vec4f(0.0);`);
    b.push(`var m${r} = MASKED;`, `var l${r} = 0.0;`);
  }
  b.push(
    // Keys any of this invocation's rows may see (index masks: ranges grow with the row).
    "let lo = key_range(i0).x;",
    `let hi = key_range(i${R - 1}).y;`,
    `for (var j0 = lo; j0 < hi; j0 += ${T}u) {`,
  );
  for (const t of range(T)) {
    b.push(`  let j${t} = min(j0 + ${t}u, u.sk - 1u);`, `  let live${t} = j0 + ${t}u < hi;`);
    for (const c of range(cd)) b.push(`  let k${t}_${c} = ${load(dims, "k", `keys + j${t}`, c)};`);
  }
  for (const r of range(R)) {
    for (const t of range(T)) {
      const dot = dotRows((c) => `q${r}_${c}`, (c) => `k${t}_${c}`, d);
      b.push(
        `  let s${r}_${t} = select(MASKED, masked_score(bh, i${r}, j${t}, ${dot}), live${t});`,
      );
    }
    const tileMax = range(T).map((t) => `s${r}_${t}`).reduce((x, y) => `max(${x}, ${y})`);
    b.push(
      `  let mx${r} = max(m${r}, ${tileMax});`,
      // m starts at MASKED: the first rescale multiplies zeros by exp(0) or exp(−huge).
      `  let cr${r} = exp(m${r} - mx${r});`,
    );
    for (const t of range(T)) {
      b.push(`  let p${r}_${t} = select(0.0, exp(s${r}_${t} - mx${r}), s${r}_${t} > MASK_LIMIT);`);
    }
    b.push(
      `  l${r} = l${r} * cr${r} + ${range(T).map((t) => `p${r}_${t}`).join(" + ")};`,
      `  m${r} = mx${r};`,
    );
  }
  for (const t of range(T)) {
    for (const c of range(cv)) b.push(`  let v${t}_${c} = ${load(dims, "v", `keys + j${t}`, c)};`);
  }
  for (const r of range(R)) {
    for (const c of range(cv)) {
      const terms = range(T).map((t) => ` + p${r}_${t} * v${t}_${c}`).join("");
      b.push(`  a${r}_${c} = a${r}_${c} * cr${r}${terms};`);
    }
  }
  b.push("}");
  for (const r of range(R)) {
    b.push(
      `if (first + ${r}u < u.sq) {`,
      `  let inv = select(0.0, 1.0 / l${r}, l${r} > 0.0);`,
    );
    for (const c of range(cv)) b.push(`  ${store(dims, "out", `row${r}`, c, `a${r}_${c} * inv`)}`);
    b.push(`  lse[row${r}] = select(FULLY_MASKED, m${r} + log(l${r}), l${r} > 0.0);`, "}");
  }
  return spec("attention_fwd", dims, R, names, b);
}

/**
 * Backward, query side: Δ_i = dO_i·O_i (written to `delta` for the key-side kernel) and
 * dQ_i = scale · Σ_j P_ij (dO_i·v_j − Δ_i) k_j with P_ij = exp(s_ij − lse_i).
 * Workgroups: [ceil(Sq / (ROWS · LANES)), B·H].
 */
export function attentionBackwardQueryKernel(
  d: number,
  dv: number,
  kind: MaskKind,
  queries: number,
): AttentionKernel {
  const dims = { d, dv, kind };
  const R = rowsFor(ATTENTION_TUNING.get().queryRows, queries);
  const [cd, cv] = [chunksOf(d), chunksOf(dv)];
  const names = withMask(kind, [
    ["q", "read"],
    ["k", "read"],
    ["v", "read"],
    ["out", "read"],
    ["dout", "read"],
    ["lse", "read"],
    ["dq", "write"],
    ["delta", "write"],
  ]);
  const b: string[] = [
    "let bh = wid.y;",
    `let first = (wid.x * ${LANES}u + lid) * ${R}u;`,
    // Lanes past the last row have nothing to do (no barriers follow, so leaving is safe).
    `if (first >= u.sq) { return; }`,
    "let keys = bh * u.sk;",
  ];
  for (const r of range(R)) {
    b.push(`let i${r} = min(first + ${r}u, u.sq - 1u);`, `let row${r} = bh * u.sq + i${r};`);
    for (const c of range(cd)) {
      b.push(
        `let q${r}_${c} = ${load(dims, "q", `row${r}`, c)} * u.scale;`,
        `var g${r}_${c} = vec4f(0.0);`,
      );
    }
    for (const c of range(cv)) b.push(`let o${r}_${c} = ${load(dims, "dout", `row${r}`, c)};`);
    const delta = dotRows((c) => `o${r}_${c}`, (c) => load(dims, "out", `row${r}`, c), dv);
    b.push(
      `let delta${r} = ${delta};`,
      `let lse${r} = lse[row${r}];`,
      `if (first + ${r}u < u.sq) { delta[row${r}] = delta${r}; }`,
    );
  }
  b.push("let lo = key_range(i0).x;", `let hi = key_range(i${R - 1}).y;`);
  b.push("for (var j = lo; j < hi; j++) {");
  for (const c of range(cd)) b.push(`  let k_${c} = ${load(dims, "k", "keys + j", c)};`);
  for (const c of range(cv)) b.push(`  let v_${c} = ${load(dims, "v", "keys + j", c)};`);
  for (const r of range(R)) {
    const dot = dotRows((c) => `q${r}_${c}`, (c) => `k_${c}`, d);
    b.push(
      `  let s${r} = masked_score(bh, i${r}, j, ${dot});`,
      `  let p${r} = select(0.0, exp(s${r} - lse${r}), s${r} > MASK_LIMIT && lse${r} < FULLY_MASKED);`,
      `  let ds${r} = p${r} * (${dotRows((c) => `o${r}_${c}`, (c) => `v_${c}`, dv)} - delta${r});`,
    );
    for (const c of range(cd)) b.push(`  g${r}_${c} += ds${r} * k_${c};`);
  }
  b.push("}");
  for (const r of range(R)) {
    b.push(`if (first + ${r}u < u.sq) {`);
    for (const c of range(cd)) {
      b.push(`  ${store(dims, "dq", `row${r}`, c, `g${r}_${c} * u.scale`)}`);
    }
    b.push("}");
  }
  return spec("attention_bwd_q", dims, R, names, b);
}

/**
 * Backward, key side: dV_j = Σ_i P_ij dO_i and dK_j = scale · Σ_i P_ij (dO_i·v_j − Δ_i) q_i.
 * Workgroups: [ceil(Sk / (ROWS · LANES)), B·H].
 */
export function attentionBackwardKeyKernel(
  d: number,
  dv: number,
  kind: MaskKind,
  keys: number,
): AttentionKernel {
  const dims = { d, dv, kind };
  const R = rowsFor(ATTENTION_TUNING.get().keyRows, keys);
  const [cd, cv] = [chunksOf(d), chunksOf(dv)];
  const names = withMask(kind, [
    ["q", "read"],
    ["k", "read"],
    ["v", "read"],
    ["dout", "read"],
    ["lse", "read"],
    ["delta", "read"],
    ["dk", "write"],
    ["dvalue", "write"],
  ]);
  const b: string[] = [
    "let bh = wid.y;",
    `let first = (wid.x * ${LANES}u + lid) * ${R}u;`,
    // Lanes past the last row have nothing to do (no barriers follow, so leaving is safe).
    `if (first >= u.sk) { return; }`,
  ];
  for (const r of range(R)) {
    b.push(`let j${r} = min(first + ${r}u, u.sk - 1u);`, `let krow${r} = bh * u.sk + j${r};`);
    for (const c of range(cd)) {
      b.push(
        `let k${r}_${c} = ${load(dims, "k", `krow${r}`, c)} * u.scale;`,
        `var gk${r}_${c} = vec4f(0.0);`,
      );
    }
    for (const c of range(cv)) {
      b.push(
        `let v${r}_${c} = ${load(dims, "v", `krow${r}`, c)};`,
        `var gv${r}_${c} = vec4f(0.0);`,
      );
    }
  }
  b.push(
    "let lo = query_range(j0).x;",
    `let hi = query_range(j${R - 1}).y;`,
    "for (var i = lo; i < hi; i++) {",
    "  let row = bh * u.sq + i;",
    "  let lse_i = lse[row];",
    "  let delta_i = delta[row];",
  );
  for (const c of range(cd)) b.push(`  let q_${c} = ${load(dims, "q", "row", c)};`);
  for (const c of range(cv)) b.push(`  let o_${c} = ${load(dims, "dout", "row", c)};`);
  for (const r of range(R)) {
    const dot = dotRows((c) => `q_${c}`, (c) => `k${r}_${c}`, d);
    b.push(
      `  let s${r} = masked_score(bh, i, j${r}, ${dot});`,
      `  let p${r} = select(0.0, exp(s${r} - lse_i), s${r} > MASK_LIMIT && lse_i < FULLY_MASKED);`,
      `  let ds${r} = p${r} * (${dotRows((c) => `o_${c}`, (c) => `v${r}_${c}`, dv)} - delta_i);`,
    );
    for (const c of range(cv)) b.push(`  gv${r}_${c} += p${r} * o_${c};`);
    for (const c of range(cd)) b.push(`  gk${r}_${c} += ds${r} * q_${c};`);
  }
  b.push("}");
  for (const r of range(R)) {
    b.push(`if (first + ${r}u < u.sk) {`);
    for (const c of range(cd)) {
      b.push(`  ${store(dims, "dk", `krow${r}`, c, `gk${r}_${c} * u.scale`)}`);
    }
    for (const c of range(cv)) b.push(`  ${store(dims, "dvalue", `krow${r}`, c, `gv${r}_${c}`)}`);
    b.push("}");
  }
  return spec("attention_bwd_kv", dims, R, names, b);
}

/**
 * weights[bh, i, j] = exp(s_ij − lse_i), exactly 0 where masked; one invocation per element,
 * launched with grid1d (a visualisation aid, not a hot path).
 */
export function attentionWeightsKernel(d: number, kind: MaskKind): AttentionKernel {
  const dims = { d, dv: 1, kind };
  const names = withMask(kind, [["q", "read"], ["k", "read"], ["lse", "read"], [
    "weights",
    "write",
  ]]);
  const dot = dotRows((c) => load(dims, "q", "row", c), (c) => load(dims, "k", "krow", c), d);
  const body = `${header(kind)}
${bindings(dims, names)}
${LINEAR_INDEX}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let index = linear_index(wid, lid, u.gx);
  if (index >= u.total) { return; }
  let per_head = u.sq * u.sk;
  let bh = index / per_head;
  let rest = index - bh * per_head;
  let i = rest / u.sk;
  let j = rest - i * u.sk;
  let row = bh * u.sq + i;
  let krow = bh * u.sk + j;
  let lse_i = lse[row];
  let score = masked_score(bh, i, j, (${dot}) * u.scale);
  weights[index] = select(0.0, exp(score - lse_i), score > MASK_LIMIT && lse_i < FULLY_MASKED);
}`;
  return {
    kernel: {
      name: "attention_weights",
      key: `${d}|${kind}`,
      bindings: names.map(([, access]) => access),
      uniforms: ATTENTION_UNIFORMS,
      code: () => body,
    },
    order: names.map(([n]) => n),
    rows: 1,
    lanes: 256,
  };
}
