// Free-running decoder kernels: a GRU cell whose prediction is fed back as the next step's
// input, optionally reading an episodic memory of every past step (causal scaled dot-product
// attention over keys/values, the step's own key appended) through a gated read-out:
//   x_s = [content_{s-1}; flags_s],  h_s = GRU(x_s, h_{s-1})                  (Keras reset_after)
//   memory:  k_s = x_s·W_k + kb_s,  v_s = x_s·W_v + b_v,  q_s = [h_s; x_s]·W_q + b_q
//            p = softmax_j(q_s·k_j · scale) over the visible j ≤ M + s,  c_s = Σ_j p_j v_j
//            g = σ([h_s; c_s]·W_g + b_g),  u = tanh(c_s·W_c + b_c),  ŷ_s = [h_s; g ⊙ u]·W_o + b_o
//   no memory: ŷ_s = h_s·W_o + b_o;        content_s = ŷ_s.
// Every batch row is independent, so ONE dispatch runs all S steps: a workgroup owns `R` rows
// and loops over the steps with barriers between phases (forward), or over the steps in reverse
// (backward). The backward kernel writes each step's pre-activation gradients to planes
// [B·S, n] so that every weight gradient is one matmul over all rows and steps afterwards.
//
// Rows are unrolled into named registers (R accumulators per output): on CPU adapters a load
// costs far more than a multiply-add, so each weight load serves R rows.
import type { KernelSpec } from "../runtime.ts";
import { tunable } from "../tuning.ts";
import { uniformBlock } from "../uniforms.ts";
import {
  backwardShared,
  type DecodeDims,
  forwardShared,
  gradLayout,
  type Layout,
  savedLayout,
  type SharedArray,
  weightLayout,
} from "./decode_layout.ts";

/**
 * `rows`: batch rows per workgroup at most (each weight load serves this many rows; fewer where
 * their workgroup memory would not fit). `lanes`: invocations per workgroup, at least (more where
 * the kernels' loops would pass the adapter's loop budget, see decodeLoopIterations in
 * decode_layout.ts: a table whose loops passed llvmpipe's 65,535 iterations once computed
 * garbage, tests/loop_budget.test.ts). On lavapipe one SIMD row of 8 lanes and 8 rows ran the
 * LOP-120 shape's forward + backward in 36.9 ms (fastest of 8 interleaved rounds) against 39.2 at
 * 4 × 8, 40–43 at 8 × 16 and 8 × 32, and 44.9 at 4 × 64: a workgroup of one SIMD row needs no
 * switching between its rows at each barrier. GPUs keep many lanes.
 */
export const DECODE_TUNING = tunable("decode", {
  cpu: { rows: 8, lanes: 8 },
  gpu: { rows: 4, lanes: 64 },
});

/**
 * sizes[zero] = (batch, scale bits, H, I), sizes[zero + 1] = (K, C, 0, 0) and zero = 0: see the
 * shader for why the sizes are indexed dynamically.
 */
const DECODE_UNIFORMS = uniformBlock({ sizes: "array<vec4u, 2>", zero: "u32" });

function declareShared(arrays: SharedArray[]): string {
  return arrays.map(([name, type, n]) => `var<workgroup> ${name}: array<${type}, ${n}>;`).join(
    "\n",
  );
}

export function decodeKey(d: DecodeDims): string {
  return [d.hidden, d.content, d.flags, d.steps, d.keyDim, d.memory, d.window, d.rows, d.lanes]
    .join(",");
}

/**
 * Entry point and the sizes both kernels start from: the batch, the score scale, runtime copies of
 * the sizes for loop bounds (see the uniform block), the plane height B·S and the first row.
 */
function entry(d: DecodeDims): string {
  return `@compute @workgroup_size(${d.lanes})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) l: u32) {
  let sz = u.sizes[u.zero];
  let sz1 = u.sizes[u.zero + 1u];
  let B = sz.x;
  let scale = bitcast<f32>(sz.y);
  let nH = sz.z; let nI = sz.w; let nK = sz1.x; let nC = sz1.y;
  let nH4 = nH / 4u; let n3H4 = 3u * nH / 4u; let nK4 = nK / 4u; let nI4 = (nI + 3u) / 4u;
  let nC4 = (nC + 3u) / 4u;
  let NS = B * S;
  let b0 = wg.x * R;`;
}

/** Code repeated for each of the R rows (`r` replaced by the row number). */
function rows(d: DecodeDims, line: (r: number) => string): string {
  return Array.from({ length: d.rows }, (_, r) => line(r)).join("\n");
}

const XYZW = "xyzw";
const range4 = [0, 1, 2, 3];

/** The weight row of input k of I (rows past I, whose inputs are the zero padding, read row I − 1). */
function inputRow(d: DecodeDims, k: string): string {
  return (d.content + d.flags) % 4 ? `min(${k}, I - 1u)` : `(${k})`;
}

/**
 * Lanes that own four output columns o … o+3: for every row r, `acc{r} += Σ_k in_r[k] · W[k, o …
 * o+3]` for each term [acc, offset of W[k, o]], four depths a trip. `input(r)` is row r's inputs
 * 4·k4 … 4·k4+3 as a vec4. Each vec4 weight load serves R rows and each input load 4 depths: on
 * CPU adapters a load costs far more than a multiply-add.
 */
function columnProducts(
  d: DecodeDims,
  trips: string,
  input: (r: number) => string,
  terms: [acc: string, offset: (k: string) => string][],
): string {
  const loads = terms.flatMap(([, offset], t) =>
    range4.map((e) => `        let w${t}_${e} = w4(${offset(`(4u * k4 + ${e}u)`)});`)
  );
  const updates = rows(
    d,
    (r) =>
      `        { let x = ${input(r)}; ${
        terms.map(([acc], t) =>
          range4.map((e) => `${acc}${r} += x.${XYZW[e]} * w${t}_${e};`).join(" ")
        ).join(" ")
      } }`,
  );
  return `      for (var k4 = 0u; k4 < ${trips}; k4++) {
${loads.join("\n")}
${updates}
      }`;
}

/**
 * Lanes that own four weight rows i … i+3: `a{r}_{e} += g_r[4·c4 …] · W[i + e, 4·c4 …]` for each
 * term [offset of W[i + e, 4·c4], row r's gradient vec4 at c4], four columns a trip; the vec4
 * partial sums add up with dot(·, 1) afterwards.
 */
function rowProducts(
  d: DecodeDims,
  trips: string,
  terms: [offset: (e: number) => string, grad: (r: number) => string][],
): string {
  const loads = terms.flatMap(([offset], t) =>
    range4.map((e) => `        let w${t}_${e} = w4(${offset(e)});`)
  );
  const updates = rows(
    d,
    (r) =>
      terms.map(([, grad], t) =>
        `        { let g = ${grad(r)}; ${
          range4.map((e) => `a${r}_${e} += g * w${t}_${e};`).join(" ")
        } }`
      ).join("\n"),
  );
  return `      for (var c4 = 0u; c4 < ${trips}; c4++) {
${loads.join("\n")}
${updates}
      }`;
}

/** Declares the zeroed vec4 partial sums of rowProducts. */
function rowAccumulators(d: DecodeDims): string {
  return rows(d, (r) => `      ${range4.map((e) => `var a${r}_${e} = vec4f(0.0);`).join(" ")}`);
}

/** Row r's four sums of rowProducts as one vec4. */
function rowSums(r: number): string {
  return `vec4f(${range4.map((e) => `dot(a${r}_${e}, vec4f(1.0))`).join(", ")})`;
}

function common(d: DecodeDims, buffers: string[]): string {
  const { hidden: H, content: C, keyDim: K, steps: S } = d;
  const I = C + d.flags;
  const w = weightLayout(d).at;
  const consts = Object.entries(w).map(([n, [o]]) => `const W_${n} = ${o}u;`);
  return `
// sizes[zero] = (batch, scale bits, H, I), sizes[zero + 1] = (K, C): a dynamic index, so
// lavapipe cannot inline the values and recompile this large shader for them (see
// MATMUL_UNIFORMS). The inner loops run to these runtime bounds, not the constants: Mesa's GLSL
// front end (the GL backend) fully unrolls constant-trip loops, which made this shader take
// minutes to compile there.
${DECODE_UNIFORMS.struct()}
${buffers.map((b, i) => `@group(0) @binding(${i}) ${b};`).join("\n")}
@group(0) @binding(${buffers.length}) var<uniform> u: U;
const H = ${H}u; const C = ${C}u; const I = ${I}u; const K = ${K}u; const S = ${S}u;
const H4 = ${H >> 2}u; const I4 = ${Math.ceil(I / 4)}u; const K4 = ${K >> 2}u;
const C4 = ${Math.ceil(C / 4)}u; const CP = ${4 * Math.ceil(C / 4)}u;
const M = ${d.memory}u; const T = ${d.memory + S}u; const T4 = ${
    Math.ceil((d.memory + S) / 4)
  }u; const R = ${d.rows}u; const WGN = ${d.lanes}u;
${consts.join("\n")}
fn sigm(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn sigm4(x: vec4f) -> vec4f { return 1.0 / (1.0 + exp(-x)); }
fn tanh4(x: vec4f) -> vec4f { return tanh(clamp(x, vec4f(-15.0), vec4f(15.0))); }
// Weights: packed with every block at a multiple of 4 floats.
fn wf(i: u32) -> f32 { return w[i / 4u][i % 4u]; }
fn w4(i: u32) -> vec4f { return w[i / 4u]; }
fn tanh_s(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
// Where key j of batch row b starts in kv ([B, T, 2, K]: each key, then its value).
fn key_at(b: u32, j: u32) -> u32 { return (b * T + j) * 2u * K4; }
// Which of keys 4·jb … 4·jb+3 the query at t sees (keys j0 … t).
fn visible4(jb: u32, j0: u32, t: u32) -> vec4<bool> {
  let j = vec4u(4u * jb) + vec4u(0u, 1u, 2u, 3u);
  return (j >= vec4u(j0)) & (j <= vec4u(t));
}
// First visible key of the query at memory position t.
fn first_key(t: u32) -> u32 { ${
    d.window > 0 ? `return select(0u, t + 1u - ${d.window}u, t + 1u > ${d.window}u);` : "return 0u;"
  } }`;
}

type PlaneAt = (name: string, row: string, col: string) => string;

/**
 * WGSL reference to element (row, col) of plane `name` in a vec4 buffer (the planes start at
 * multiples of 4 floats).
 */
function plane(l: Layout, buffer: string, name: string, row: string, col: string): string {
  const [offset, width] = l[name];
  const at = `${offset}u * NS + (${row}) * ${width}u + (${col})`;
  return `${buffer}[(${at}) / 4u][(${at}) % 4u]`;
}

/** Columns 4·col4 … 4·col4+3 of plane `name` as one vec4 (planes a whole number of vec4 wide). */
function plane4(l: Layout, buffer: string, name: string, row: string, col4: string): string {
  const [offset, width] = l[name];
  if (offset % 4 || width % 4) throw new Error(`decode: plane ${name} is not whole vec4`);
  return `${buffer}[${offset / 4}u * NS + (${row}) * ${width / 4}u + (${col4})]`;
}

/** Element j of row r of a vec4 workgroup array whose rows are `width4` vec4 long. */
function at4(array: string, width4: string, r: string, j: string): string {
  return `${array}[(${r}) * ${width4} + (${j}) / 4u][(${j}) % 4u]`;
}

/**
 * Saves the input of a linear layer on [h_s; second] (or h_s alone) as plane `name`, a vec4 at a
 * time: `second` is its width in vec4 and the expression of vec4 j − H4 of row r.
 */
function saveAfterH(
  p4: PlaneAt,
  name: string,
  second: [width4: string, at: string] | null,
): string {
  const width = second ? `(H4 + ${second[0]})` : "H4";
  const at = p4(name, "b * S + s", "j");
  return `    for (var i = l; i < R * ${width}; i += WGN) {
      let r = i / ${width};
      let j = i % ${width};
      let b = b0 + r;
      if (b < B) {
        ${
    second
      ? `if (j < H4) { ${at} = hn[r * H4 + j]; } else { ${at} = ${second[1]}; }`
      : `${at} = hn[r * H4 + j];`
  }
      }
    }`;
}

export function decodeForwardKernel(d: DecodeDims): KernelSpec<typeof DECODE_UNIFORMS.fields> {
  const mem = d.keyDim > 0;
  const sv = savedLayout(d).at;
  const p: PlaneAt = (name, row, col) => plane(sv, "saved", name, row, col);
  const p4: PlaneAt = (name, row, col4) => plane4(sv, "saved", name, row, col4);
  const xRow = (k: string) => inputRow(d, k);
  const code = () => `
${
    common(d, [
      "var<storage, read> w: array<vec4f>",
      "var<storage, read> state0: array<f32>", // h0 [B, H], then content0 [B, C]
      "var<storage, read> flags: array<f32>", // [B, S, F]
      "var<storage, read> keys: array<vec4f>", // [B, M, K]
      "var<storage, read> vals: array<vec4f>", // [B, M, K]
      "var<storage, read_write> pred: array<f32>", // [B, S, C]
      "var<storage, read_write> saved: array<vec4f>",
      // Every key and value, [B, M + S, 2, K]: the context's, then each decoded step's.
      "var<storage, read_write> kv: array<vec4f>",
    ])
  }
const F = ${d.flags}u;
${declareShared(forwardShared(d))}

${entry(d)}
  // The step input x = [content; flags] sits in xs zero-padded to I4 vec4 a row.
  for (var i = l; i < R * H; i += WGN) {
    let b = b0 + i / H;
    ${at4("hs", "H4", "i / H", "i % H")} = select(0.0, state0[min(b, B - 1u) * H + i % H], b < B);
  }
  for (var i = l; i < R * C; i += WGN) {
    let b = b0 + i / C;
    ${
    at4("xs", "I4", "i / C", "i % C")
  } = select(0.0, state0[B * H + min(b, B - 1u) * C + i % C], b < B);
  }
${
    mem
      ? `  // The context's keys and values into kv (the first step's scores read them after a barrier).
  for (var i = l; i < R * M * K4; i += WGN) {
    let b = b0 + i / (M * K4);
    let j = (i / K4) % M;
    let c = i % K4;
    if (b < B) {
      kv[key_at(b, j) + c] = keys[(b * M + j) * K4 + c];
      kv[key_at(b, j) + K4 + c] = vals[(b * M + j) * K4 + c];
    }
  }`
      : ""
  }
  for (var s = 0u; s < S; s++) {
    for (var i = l; i < R * F; i += WGN) {
      let b = b0 + i / F;
      ${
    at4("xs", "I4", "i / F", "C + i % F")
  } = select(0.0, flags[(min(b, B - 1u) * S + s) * F + i % F], b < B);
    }
    workgroupBarrier();
    for (var i = l; i < R * I; i += WGN) {
      let b = b0 + i / I;
      if (b < B) { ${p("x", "b * S + s", "i % I")} = ${at4("xs", "I4", "i / I", "i % I")}; }
    }
    for (var i = l; i < R * H4; i += WGN) {
      let b = b0 + i / H4;
      if (b < B) { ${p4("hprev", "b * S + s", "i % H4")} = hs[i]; }
    }
    // GRU cell: units o … o+3 of every row.
    for (var o4 = l; o4 < H4; o4 += WGN) {
      let o = 4u * o4;
${
    rows(
      d,
      (r) =>
        `      var xz${r} = w4(W_gruBias + o); var xr${r} = w4(W_gruBias + H + o); var xn${r} = w4(W_gruBias + 2u * H + o);
      var hz${r} = w4(W_gruBias + 3u * H + o); var hr${r} = w4(W_gruBias + 4u * H + o); var hh${r} = w4(W_gruBias + 5u * H + o);`,
    )
  }
${
    columnProducts(d, "nI4", (r) => `xs[${r}u * I4 + k4]`, [
      ["xz", (k) => `W_kernel + ${xRow(k)} * 3u * H + o`],
      ["xr", (k) => `W_kernel + ${xRow(k)} * 3u * H + H + o`],
      ["xn", (k) => `W_kernel + ${xRow(k)} * 3u * H + 2u * H + o`],
    ])
  }
${
    columnProducts(d, "nH4", (r) => `hs[${r}u * H4 + k4]`, [
      ["hz", (k) => `W_recurrent + ${k} * 3u * H + o`],
      ["hr", (k) => `W_recurrent + ${k} * 3u * H + H + o`],
      ["hh", (k) => `W_recurrent + ${k} * 3u * H + 2u * H + o`],
    ])
  }
${
    rows(d, (r) =>
      `      {
        let z = sigm4(xz${r} + hz${r});
        let rg = sigm4(xr${r} + hr${r});
        let n = tanh4(xn${r} + rg * hh${r});
        let h = z * hs[${r}u * H4 + o4] + (1.0 - z) * n;
        hn[${r}u * H4 + o4] = h;
        let b = b0 + ${r}u;
        if (b < B) {
          ${p4("gates", "b * S + s", "o4")} = z;
          ${p4("gates", "b * S + s", "H4 + o4")} = rg;
          ${p4("gates", "b * S + s", "2u * H4 + o4")} = n;
          ${p4("gates", "b * S + s", "3u * H4 + o4")} = hh${r};
        }
      }`)
  }
    }
    workgroupBarrier();
${mem ? forwardMemory(d, p, p4) : ""}
    // Read-out: ŷ = [h; g ⊙ u]·W_o + b_o (h·W_o + b_o without memory), fed back as content;
    // outputs o … o+3 a lane (W_o's rows are padded to CP columns).
    for (var o4 = l; o4 < C4; o4 += WGN) {
      let o = 4u * o4;
${rows(d, (r) => `      var y${r} = w4(W_outBias + o);`)}
${
    columnProducts(d, "nH4", (r) => `hn[${r}u * H4 + k4]`, [["y", (k) =>
      `W_outWeight + ${k} * CP + o`]])
  }
${
    mem
      ? columnProducts(d, "nH4", (r) => `gs[${r}u * H4 + k4]`, [
        ["y", (k) => `W_outWeight + (H + ${k}) * CP + o`],
      ])
      : ""
  }
${
    rows(d, (r) =>
      `      {
        let b = b0 + ${r}u;
${
        range4.map((e) =>
          `        if (o + ${e}u < C) {
          ${at4("xs", "I4", `${r}u`, `o + ${e}u`)} = y${r}.${XYZW[e]};
          if (b < B) { pred[(b * S + s) * C + o + ${e}u] = y${r}.${XYZW[e]}; }
        }`
        ).join("\n")
      }
      }`)
  }
    }
${saveAfterH(p4, "outIn", mem ? ["H4", "gs[r * H4 + j - H4]"] : null)}
    workgroupBarrier();
    for (var i = l; i < R * H4; i += WGN) { hs[i] = hn[i]; }
  }
}`;
  return {
    name: "decode_fwd",
    key: decodeKey(d),
    bindings: ["read", "read", "read", "read", "read", "write", "write", "write"],
    uniforms: DECODE_UNIFORMS,
    code,
  };
}

/** The memory phases of a forward step: key/value/query, scores, softmax, context, gate. */
function forwardMemory(d: DecodeDims, p: PlaneAt, p4: PlaneAt): string {
  const xRow = (k: string) => inputRow(d, k);
  return `
    // The step's key, value and query.
    for (var o4 = l; o4 < K4; o4 += WGN) {
      let o = 4u * o4;
${
    rows(
      d,
      (r) =>
        `      var key${r} = w4(W_keyBias + s * K + o); var val${r} = w4(W_valueBias + o); var qry${r} = w4(W_queryBias + o);`,
    )
  }
${
    columnProducts(d, "nI4", (r) => `xs[${r}u * I4 + k4]`, [
      ["key", (k) => `W_keyWeight + ${xRow(k)} * K + o`],
      ["val", (k) => `W_valueWeight + ${xRow(k)} * K + o`],
      ["qry", (k) => `W_queryWeight + (H + ${xRow(k)}) * K + o`],
    ])
  }
${
    columnProducts(d, "nH4", (r) => `hn[${r}u * H4 + k4]`, [
      ["qry", (k) => `W_queryWeight + ${k} * K + o`],
    ])
  }
${
    rows(d, (r) =>
      `      {
        let b = b0 + ${r}u;
        qs[${r}u * K4 + o4] = qry${r};
        if (b < B) {
          kv[key_at(b, M + s) + o4] = key${r};
          kv[key_at(b, M + s) + K4 + o4] = val${r};
          ${p4("query", "b * S + s", "o4")} = qry${r};
        }
      }`)
  }
    }
    for (var i = l; i < R * (H + I); i += WGN) {
      let r = i / (H + I);
      let j = i % (H + I);
      let b = b0 + r;
      if (b < B) {
        ${p("queryIn", "b * S + s", "j")} = select(${at4("xs", "I4", "r", "max(j, H) - H")}, ${
    at4("hn", "H4", "r", "min(j, H - 1u)")
  }, j < H);
      }
    }
    storageBarrier();
    workgroupBarrier();
    let t = M + s;
    let j0 = first_key(t);
    let L = t + 1u;
    // Visible keys j0 … t, in the blocks of four jb0 … jb1 − 1. A lane scores four keys of a row
    // (a key outside j0 … t reads a visible one's row, its score is never used; a row past the
    // batch end reads row B − 1 and is never stored).
    let jb0 = j0 / 4u;
    let jb1 = (L + 3u) / 4u;
    let nb = jb1 - jb0;
    for (var i = l; i < R * nb; i += WGN) {
      let r = i / nb;
      let jb = jb0 + i % nb;
      let b = min(b0 + r, B - 1u);
${range4.map((e) => `      let a${e} = key_at(b, clamp(4u * jb + ${e}u, j0, t));`).join("\n")}
      var e = vec4f(0.0);
      for (var c = 0u; c < nK4; c++) {
        let q = qs[r * K4 + c];
        e += vec4f(${range4.map((e) => `dot(q, kv[a${e} + c])`).join(", ")});
      }
      sc[r * T4 + jb] = e * scale;
    }
    workgroupBarrier();
    for (var r = l; r < R; r += WGN) {
      var mx = vec4f(-3.0e38);
      for (var jb = jb0; jb < jb1; jb++) {
        mx = max(mx, select(vec4f(-3.0e38), sc[r * T4 + jb], visible4(jb, j0, t)));
      }
      let m = max(max(mx.x, mx.y), max(mx.z, mx.w));
      var total = vec4f(0.0);
      for (var jb = jb0; jb < jb1; jb++) {
        total += select(vec4f(0.0), exp(sc[r * T4 + jb] - m), visible4(jb, j0, t));
      }
      stat[2u * r] = m;
      stat[2u * r + 1u] = dot(total, vec4f(1.0));
    }
    workgroupBarrier();
    for (var i = l; i < R * T4; i += WGN) {
      let r = i / T4;
      let jb = i % T4;
      let pj = select(vec4f(0.0), exp(sc[i] - stat[2u * r]) / stat[2u * r + 1u], visible4(jb, j0, t));
      sc[i] = pj;
      let b = b0 + r;
      if (b < B) {
${
    range4.map((e) =>
      `        if (4u * jb + ${e}u < T) { ${p("probs", "b * S + s", `4u * jb + ${e}u`)} = pj.${
        XYZW[e]
      }; }`
    ).join("\n")
  }
      }
    }
    workgroupBarrier();
    // The context: four keys' values a trip (weights outside j0 … t are 0, their rows clamped).
    for (var i = l; i < R * K4; i += WGN) {
      let r = i / K4;
      let c = i % K4;
      let b = min(b0 + r, B - 1u);
      var acc = vec4f(0.0);
      for (var jb = jb0; jb < jb1; jb++) {
        let pj = sc[r * T4 + jb];
        acc += ${
    range4.map((e) => `pj.${XYZW[e]} * kv[key_at(b, min(4u * jb + ${e}u, t)) + K4 + c]`).join(
      " +\n          ",
    )
  };
      }
      cs[i] = acc;
      if (b0 + r < B) { ${p4("context", "b * S + s", "c")} = acc; }
    }
    workgroupBarrier();
    // Gate and transformed context: g = σ([h; c]·W_g + b_g), u = tanh(c·W_c + b_c).
    for (var o4 = l; o4 < H4; o4 += WGN) {
      let o = 4u * o4;
${rows(d, (r) => `      var g${r} = w4(W_gateBias + o); var a${r} = w4(W_contextBias + o);`)}
${
    columnProducts(d, "nH4", (r) => `hn[${r}u * H4 + k4]`, [
      ["g", (k) => `W_gateWeight + ${k} * H + o`],
    ])
  }
${
    columnProducts(d, "nK4", (r) => `cs[${r}u * K4 + k4]`, [
      ["g", (k) => `W_gateWeight + (H + ${k}) * H + o`],
      ["a", (k) => `W_contextWeight + ${k} * H + o`],
    ])
  }
${
    rows(d, (r) =>
      `      {
        let g = sigm4(g${r});
        let a = tanh4(a${r});
        gs[${r}u * H4 + o4] = g * a;
        let b = b0 + ${r}u;
        if (b < B) {
          ${p4("gateAct", "b * S + s", "o4")} = g;
          ${p4("gateAct", "b * S + s", "H4 + o4")} = a;
        }
      }`)
  }
    }
${saveAfterH(p4, "gateIn", ["K4", "cs[r * K4 + j - H4]"])}
    workgroupBarrier();`;
}

export function decodeBackwardKernel(d: DecodeDims): KernelSpec<typeof DECODE_UNIFORMS.fields> {
  const mem = d.keyDim > 0;
  const sv = savedLayout(d).at;
  const gl = gradLayout(d).at;
  const p: PlaneAt = (name, row, col) => plane(sv, "saved", name, row, col);
  const p4: PlaneAt = (name, row, col4) => plane4(sv, "saved", name, row, col4);
  const g: PlaneAt = (name, row, col) => plane(gl, "grads", name, row, col);
  const g4: PlaneAt = (name, row, col4) => plane4(gl, "grads", name, row, col4);
  const xRow = (k: string) => inputRow(d, k);
  const code = () => `
${
    common(d, [
      "var<storage, read> w: array<vec4f>",
      "var<storage, read> dpred: array<f32>", // [B, S, C]
      "var<storage, read> saved: array<vec4f>",
      "var<storage, read> kv: array<vec4f>", // [B, M + S, 2, K], as the forward left it
      "var<storage, read_write> grads: array<vec4f>",
      "var<storage, read_write> dstate: array<f32>", // dh0 [B, H], then dcontent0 [B, C]
    ])
  }
${declareShared(backwardShared(d))}

${entry(d)}
  for (var step = 0u; step < S; step++) {
    let s = S - 1u - step;
    // dŷ_s: the loss gradient plus what step s + 1 sent back through its input content.
    for (var i = l; i < R * C; i += WGN) {
      let b = b0 + i / C;
      var dy = dxc[i];
      if (b < B) {
        dy += dpred[(b * S + s) * C + i % C];
        ${g("dOut", "b * S + s", "i % C")} = dy;
      }
      ${at4("dos", "C4", "i / C", "i % C")} = dy;
    }
    workgroupBarrier();
    // Through W_o, four of its rows a lane: dh_s += dŷ·W_oᵀ[:H]; the gated half feeds the gate
    // and context gradients.
    for (var i4 = l; i4 < ${mem ? "2u * H4" : "H4"}; i4 += WGN) {
      let i = 4u * i4;
${rowAccumulators(d)}
${
    rowProducts(d, "nC4", [[
      (e) => `W_outWeight + (i + ${e}u) * CP + 4u * c4`,
      (r) => `dos[${r}u * C4 + c4]`,
    ]])
  }
${
    rows(d, (r) =>
      `      {
        let a = ${rowSums(r)};
        if (i4 < H4) {
          dhn[${r}u * H4 + i4] = dh[${r}u * H4 + i4] + a;
        }${
        mem
          ? ` else {
          let b = min(b0 + ${r}u, B - 1u);
          let gt = ${p4("gateAct", "b * S + s", "i4 - H4")};
          let ct = ${p4("gateAct", "b * S + s", "i4")};
          let dg = a * ct * gt * (1.0 - gt);
          let dc = a * gt * (1.0 - ct * ct);
          dgp[${r}u * H4 + i4 - H4] = dg;
          dup[${r}u * H4 + i4 - H4] = dc;
          if (b0 + ${r}u < B) {
            ${g4("dGate", "b * S + s", "i4 - H4")} = dg;
            ${g4("dContext", "b * S + s", "i4 - H4")} = dc;
          }
        }`
          : ""
      }
      }`)
  }
    }
    workgroupBarrier();
${mem ? backwardMemory(d, p, g, p4, g4) : ""}
    // GRU cell: pre-activation gradients of the input and recurrent projections, units o … o+3.
    for (var o4 = l; o4 < H4; o4 += WGN) {
${
    rows(d, (r) =>
      `      {
        let b = min(b0 + ${r}u, B - 1u);
        let d = dhn[${r}u * H4 + o4];
        let z = ${p4("gates", "b * S + s", "o4")};
        let rg = ${p4("gates", "b * S + s", "H4 + o4")};
        let n = ${p4("gates", "b * S + s", "2u * H4 + o4")};
        let hh = ${p4("gates", "b * S + s", "3u * H4 + o4")};
        let hp = ${p4("hprev", "b * S + s", "o4")};
        let dn = d * (1.0 - z) * (1.0 - n * n);
        let dz = d * (hp - n) * z * (1.0 - z);
        let dr = dn * hh * rg * (1.0 - rg);
        let q = ${r}u * 3u * H4 + o4;
        dgx[q] = dz;
        dgx[q + H4] = dr;
        dgx[q + 2u * H4] = dn;
        dgh[q] = dz;
        dgh[q + H4] = dr;
        dgh[q + 2u * H4] = dn * rg;
        dh[${r}u * H4 + o4] = d * z;
        if (b0 + ${r}u < B) {
          ${g4("dKernel", "b * S + s", "o4")} = dz;
          ${g4("dKernel", "b * S + s", "H4 + o4")} = dr;
          ${g4("dKernel", "b * S + s", "2u * H4 + o4")} = dn;
          ${g4("dRecurrent", "b * S + s", "o4")} = dz;
          ${g4("dRecurrent", "b * S + s", "H4 + o4")} = dr;
          ${g4("dRecurrent", "b * S + s", "2u * H4 + o4")} = dn * rg;
        }
      }`)
  }
    }
    workgroupBarrier();
    // dh_{s-1} = dh·z + dĝ_h·Uᵀ; dx_s += dĝ_x·W_xᵀ: four rows of U or W_x a lane.
    for (var i4 = l; i4 < H4 + I4; i4 += WGN) {
${rowAccumulators(d)}
      if (i4 < H4) {
        let i = 4u * i4;
${
    rowProducts(d, "n3H4", [[
      (e) => `W_recurrent + (i + ${e}u) * 3u * H + 4u * c4`,
      (r) => `dgh[${r}u * 3u * H4 + c4]`,
    ]])
  }
${rows(d, (r) => `        dh[${r}u * H4 + i4] += ${rowSums(r)};`)}
      } else {
        let k = 4u * (i4 - H4);
${
    rowProducts(d, "n3H4", [[
      (e) => `W_kernel + ${xRow(`k + ${e}u`)} * 3u * H + 4u * c4`,
      (r) => `dgx[${r}u * 3u * H4 + c4]`,
    ]])
  }
${
    rows(d, (r) =>
      `        { let v = ${rowSums(r)}; ${
        range4.map((e) =>
          `if (k + ${e}u < I) { dxs[${r}u * I + k + ${e}u] ${mem ? "+=" : "="} v.${XYZW[e]}; }`
        ).join(" ")
      } }`)
  }
      }
    }
    workgroupBarrier();
    for (var i = l; i < R * C; i += WGN) { dxc[i] = dxs[(i / C) * I + i % C]; }
    workgroupBarrier();
  }
  for (var i = l; i < R * (H + C); i += WGN) {
    let r = i / (H + C);
    let j = i % (H + C);
    let b = b0 + r;
    if (b < B) {
      if (j < H) { dstate[b * H + j] = ${
    at4("dh", "H4", "r", "j")
  }; } else { dstate[B * H + b * C + j - H] = dxc[r * C + j - H]; }
    }
  }
}`;
  return {
    name: "decode_bwd",
    key: decodeKey(d),
    bindings: ["read", "read", "read", "read", "write", "write"],
    uniforms: DECODE_UNIFORMS,
    code,
  };
}

/** The memory phases of a backward step: gate and context, attention, key/value/query. */
function backwardMemory(d: DecodeDims, p: PlaneAt, g: PlaneAt, p4: PlaneAt, g4: PlaneAt): string {
  const xRow = (k: string) => inputRow(d, k);
  return `
    // Through the gate and the context transform, four rows of W_g (and W_c) a lane: dh_s, dc_s.
    for (var i4 = l; i4 < H4 + K4; i4 += WGN) {
      let i = 4u * i4;
${rowAccumulators(d)}
${
    rowProducts(d, "nH4", [[
      (e) => `W_gateWeight + (i + ${e}u) * H + 4u * c4`,
      (r) => `dgp[${r}u * H4 + c4]`,
    ]])
  }
      if (i4 < H4) {
${rows(d, (r) => `        dhn[${r}u * H4 + i4] += ${rowSums(r)};`)}
      } else {
        let c = i - H;
${
    rowProducts(d, "nH4", [[
      (e) => `W_contextWeight + (c + ${e}u) * H + 4u * c4`,
      (r) => `dup[${r}u * H4 + c4]`,
    ]])
  }
${rows(d, (r) => `        dcs[${r}u * K4 + i4 - H4] = ${rowSums(r)};`)}
      }
    }
    workgroupBarrier();
    let t = M + s;
    let j0 = first_key(t);
    let L = t + 1u;
    // Attention: dp_j = dc·v_j, ds_j = p_j (dp_j − Σ p·dp), four keys a lane or trip as in the
    // forward (weights outside j0 … t are 0).
    let jb0 = j0 / 4u;
    let jb1 = (L + 3u) / 4u;
    let nb = jb1 - jb0;
    for (var i = l; i < R * nb; i += WGN) {
      let r = i / nb;
      let jb = jb0 + i % nb;
      let b = min(b0 + r, B - 1u);
${range4.map((e) => `      let a${e} = key_at(b, clamp(4u * jb + ${e}u, j0, t)) + K4;`).join("\n")}
      var e = vec4f(0.0);
      for (var c = 0u; c < nK4; c++) {
        let dc = dcs[r * K4 + c];
        e += vec4f(${range4.map((e) => `dot(dc, kv[a${e} + c])`).join(", ")});
      }
      ds[r * T4 + jb] = e;
    }
    workgroupBarrier();
    for (var r = l; r < R; r += WGN) {
      let b = min(b0 + r, B - 1u);
      var total = vec4f(0.0);
      for (var jb = jb0; jb < jb1; jb++) {
        let pj = vec4f(${
    range4.map((e) => p("probs", "b * S + s", `min(4u * jb + ${e}u, T - 1u)`)).join(", ")
  });
        total += select(vec4f(0.0), pj * ds[r * T4 + jb], visible4(jb, j0, t));
      }
      stat[r] = dot(total, vec4f(1.0));
    }
    workgroupBarrier();
    // Scaled score gradients and dc are saved: the context keys' and values' gradients are
    // batched matmuls after the kernel; the decoded steps' own ones are summed here.
    for (var i = l; i < R * T4; i += WGN) {
      let r = i / T4;
      let jb = i % T4;
      let b = b0 + r;
      let pj = vec4f(${
    range4.map((e) => p("probs", "min(b, B - 1u) * S + s", `min(4u * jb + ${e}u, T - 1u)`)).join(
      ", ",
    )
  });
      let e = select(vec4f(0.0), pj * (ds[i] - stat[r]) * scale, visible4(jb, j0, t));
      ds[i] = e;
      if (b < B) {
${
    range4.map((e) =>
      `        if (4u * jb + ${e}u < T) { ${g("dScore", "b * S + s", `4u * jb + ${e}u`)} = e.${
        XYZW[e]
      }; }`
    ).join("\n")
  }
      }
    }
    for (var i = l; i < R * K4; i += WGN) {
      let b = b0 + i / K4;
      if (b < B) { ${g4("dRead", "b * S + s", "i % K4")} = dcs[i]; }
    }
    storageBarrier();
    workgroupBarrier();
    // dq = Σ ds_j k_j; the step's own key and value: dk_s = Σ_{s' ≥ s} ds_{s', t} q_{s'},
    // dv_s = Σ_{s' ≥ s} p_{s', t} dc_{s'} (later queries are done: the loop runs backwards).
    for (var i = l; i < R * K4; i += WGN) {
      let r = i / K4;
      let c = i % K4;
      let b = b0 + r;
      var dq = vec4f(0.0);
      var dk = vec4f(0.0);
      var dv = vec4f(0.0);
      if (b < B) {
        for (var jb = jb0; jb < jb1; jb++) {
          let e = ds[r * T4 + jb];
          dq += ${
    range4.map((e) => `e.${XYZW[e]} * kv[key_at(b, min(4u * jb + ${e}u, t)) + c]`).join(
      " +\n            ",
    )
  };
        }
        for (var s2 = s; s2 < S; s2++) {
          dk += ${g("dScore", "b * S + s2", "t")} * ${p4("query", "b * S + s2", "c")};
          dv += ${p("probs", "b * S + s2", "t")} * ${g4("dRead", "b * S + s2", "c")};
        }
        ${g4("dQuery", "b * S + s", "c")} = dq;
        ${g4("dKey", "b * S + s", "c")} = dk;
        ${g4("dValue", "b * S + s", "c")} = dv;
      }
      dqs[i] = dq;
      dks[i] = dk;
      dvs[i] = dv;
    }
    storageBarrier();
    workgroupBarrier();
    // Through W_q (h and x), and the step's own key and value projections (x): four rows a lane.
    for (var i4 = l; i4 < H4 + I4; i4 += WGN) {
${rowAccumulators(d)}
      if (i4 < H4) {
        let i = 4u * i4;
${
    rowProducts(d, "nK4", [[
      (e) => `W_queryWeight + (i + ${e}u) * K + 4u * c4`,
      (r) => `dqs[${r}u * K4 + c4]`,
    ]])
  }
${rows(d, (r) => `        dhn[${r}u * H4 + i4] += ${rowSums(r)};`)}
      } else {
        let k = 4u * (i4 - H4);
${
    rowProducts(d, "nK4", [
      [(e) => `W_queryWeight + (H + ${xRow(`k + ${e}u`)}) * K + 4u * c4`, (r) =>
        `dqs[${r}u * K4 + c4]`],
      [(e) =>
        `W_keyWeight + ${xRow(`k + ${e}u`)} * K + 4u * c4`, (r) => `dks[${r}u * K4 + c4]`],
      [(e) => `W_valueWeight + ${xRow(`k + ${e}u`)} * K + 4u * c4`, (r) => `dvs[${r}u * K4 + c4]`],
    ])
  }
${
    rows(d, (r) =>
      `        { let v = ${rowSums(r)}; ${
        range4.map((e) =>
          `if (k + ${e}u < I) { dxs[${r}u * I + k + ${e}u] = v.${XYZW[e]}; }`
        )
          .join(" ")
      } }`)
  }
      }
    }
    workgroupBarrier();`;
}
