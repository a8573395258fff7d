// WGSL building blocks of the fused decoder's kernels (shaders/decode.ts forward,
// shaders/decode_backward.ts backward): the shared header and entry point, the register-blocked
// products (four depths or four weight rows a trip, R rows unrolled), the plane accessors, and
// the attention's blocks of four keys.
import { uniformBlock } from "../uniforms.ts";
import { type DecodeDims, type Layout, type SharedArray, weightLayout } from "./decode_layout.ts";

/**
 * sizes[zero] = (batch, scale bits, H, I), sizes[zero + 1] = (K, C, 0, 0) and zero = 0: see the
 * shader for why the sizes are indexed dynamically.
 */
export const DECODE_UNIFORMS = uniformBlock({ sizes: "array<vec4u, 2>", zero: "u32" });

export function declareShared(arrays: SharedArray[]): string {
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
export function entry(d: DecodeDims): string {
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
export function rows(d: DecodeDims, line: (r: number) => string): string {
  return Array.from({ length: d.rows }, (_, r) => line(r)).join("\n");
}

export const XYZW = "xyzw";
export const range4 = [0, 1, 2, 3];

/** The weight row of input k of I (rows past I, whose inputs are the zero padding, read row I − 1). */
export function inputRow(d: DecodeDims, k: string): string {
  return (d.content + d.flags) % 4 ? `min(${k}, I - 1u)` : `(${k})`;
}

/**
 * Lanes that own four output columns o … o+3: for every row r, `acc{r} += Σ_k in_r[k] · W[k, o …
 * o+3]` for each term [acc, offset of W[k, o]], four depths a trip. `input(r)` is row r's inputs
 * 4·k4 … 4·k4+3 as a vec4. Each vec4 weight load serves R rows and each input load 4 depths: on
 * CPU adapters a load costs far more than a multiply-add.
 */
export function columnProducts(
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
export function rowProducts(
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
export function rowAccumulators(d: DecodeDims): string {
  return rows(d, (r) => `      ${range4.map((e) => `var a${r}_${e} = vec4f(0.0);`).join(" ")}`);
}

/** Row r's four sums of rowProducts as one vec4. */
export function rowSums(r: number): string {
  return `vec4f(${range4.map((e) => `dot(a${r}_${e}, vec4f(1.0))`).join(", ")})`;
}

export function common(d: DecodeDims, buffers: string[]): string {
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

export type PlaneAt = (name: string, row: string, col: string) => string;

/**
 * Accessors of the planes of `buffer` (a vec4 array; the planes start at multiples of 4 floats):
 * `at` is the reference to element (row, col) of plane `name`, `vec` the vec4 of its columns
 * 4·col4 … 4·col4+3 (for planes a whole number of vec4 wide).
 */
export function planes(l: Layout, buffer: string): { at: PlaneAt; vec: PlaneAt } {
  return {
    at: (name, row, col) => {
      const [offset, width] = l[name];
      const at = `${offset}u * NS + (${row}) * ${width}u + (${col})`;
      return `${buffer}[(${at}) / 4u][(${at}) % 4u]`;
    },
    vec: (name, row, col4) => {
      const [offset, width] = l[name];
      if (offset % 4 || width % 4) throw new Error(`decode: plane ${name} is not whole vec4`);
      return `${buffer}[${offset / 4}u * NS + (${row}) * ${width / 4}u + (${col4})]`;
    },
  };
}

/**
 * The step's query sees keys j0 … t, in the blocks of four jb0 … jb1 − 1. A lane per block of a
 * row dots `vector` (the row's K4 vec4 in workgroup memory) with the block's key rows (`offset`
 * " + K4": their values) into `e`, which `store` consumes. A key outside j0 … t reads a visible
 * one's row (that dot is never used); a row past the batch end reads row B − 1 and is never
 * stored.
 */
export function keyBlockDots(vector: string, offset: string, store: string): string {
  return `    let t = M + s;
    let j0 = first_key(t);
    let L = t + 1u;
    let jb0 = j0 / 4u;
    let jb1 = (L + 3u) / 4u;
    let nb = jb1 - jb0;
    for (var i = l; i < R * nb; i += WGN) {
      let r = i / nb;
      let jb = jb0 + i % nb;
      let b = min(b0 + r, B - 1u);
${
    range4.map((e) => `      let a${e} = key_at(b, clamp(4u * jb + ${e}u, j0, t))${offset};`).join(
      "\n",
    )
  }
      var e = vec4f(0.0);
      for (var c = 0u; c < nK4; c++) {
        let v = ${vector}[r * K4 + c];
        e += vec4f(${range4.map((e) => `dot(v, kv[a${e} + c])`).join(", ")});
      }
      ${store}
    }`;
}

/** Stores vec4 `value` as keys 4·jb … 4·jb+3 of row b·S + s of the T-wide plane `name`. */
export function storeKeys(at: PlaneAt, name: string, value: string): string {
  return range4.map((e) =>
    `        if (4u * jb + ${e}u < T) { ${at(name, "b * S + s", `4u * jb + ${e}u`)} = ${value}.${
      XYZW[e]
    }; }`
  ).join("\n");
}

/** Keys 4·jb … 4·jb+3 of `row` of the T-wide plane `name` as a vec4 (past T: key T − 1's). */
export function loadKeys(at: PlaneAt, name: string, row: string): string {
  return `vec4f(${range4.map((e) => at(name, row, `min(4u * jb + ${e}u, T - 1u)`)).join(", ")})`;
}

/** Element j of row r of a vec4 workgroup array whose rows are `width4` vec4 long. */
export function at4(array: string, width4: string, r: string, j: string): string {
  return `${array}[(${r}) * ${width4} + (${j}) / 4u][(${j}) % 4u]`;
}
