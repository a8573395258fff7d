// Generated elementwise kernels: any number of broadcast inputs, one or more outputs, each an
// f32 expression over the inputs. Dimensions that are contiguous for every operand are merged
// before the kernel is specialised, so most broadcasts run with rank ≤ 2 index math.
import type { KernelSpec } from "../runtime.ts";
import { type UniformBlock, uniformBlock, type UniformFields } from "../uniforms.ts";
import { LINEAR_INDEX, WG } from "./common.ts";

/** Up to this many output dimensions after merging. */
export const MAX_RANK = 8;

/** WGSL helpers every elementwise kernel may call. */
const MATH = /* wgsl */ `
fn erf_approx(x: f32) -> f32 {
  // Abramowitz & Stegun 7.1.26, |error| < 1.5e-7.
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
    + 0.254829592) * t * exp(-x * x);
  return select(-y, y, x >= 0.0);
}
fn gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476)); }
fn gelu_grad(x: f32) -> f32 {
  return 0.5 * (1.0 + erf_approx(x * 0.7071067811865476)) + x * exp(-0.5 * x * x) * 0.3989422804014327;
}
fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}
fn tanh_safe(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
fn pow_real(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (a == 0.0) { return select(0.0, u.inf, b < 0.0); }
  // Exact forms for the common exponents (exp2·log2 is off by an ulp or two).
  if (b == 1.0) { return a; }
  if (b == 2.0) { return a * a; }
  if (b == 0.5 && a > 0.0) { return sqrt(a); }
  let p = exp2(b * log2(abs(a)));
  if (a > 0.0) { return p; }
  if (b != floor(b)) { return u.nan; }
  return select(p, -p, b * 0.5 != floor(b * 0.5));
}`;

export interface MapLayout {
  /** Merged output dimensions. */
  dims: number[];
  /** Per input: element strides over the merged dims (0 where broadcast); null = same as output. */
  strides: (number[] | null)[];
}

/** Merges dimensions contiguous for every operand; marks inputs that index like the output. */
export function mapLayout(
  outShape: readonly number[],
  inShapes: readonly (readonly number[])[],
): MapLayout {
  const rank = outShape.length;
  const inStrides = inShapes.map((shape) => {
    const strides = new Array(rank).fill(0);
    let s = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const od = d + rank - shape.length;
      strides[od] = shape[d] === 1 && outShape[od] !== 1 ? 0 : s;
      s *= shape[d];
    }
    return strides;
  });
  const dims: number[] = [];
  const merged: number[][] = inStrides.map(() => []);
  for (let d = 0; d < rank; d++) {
    if (outShape[d] === 1) continue; // size-1 dims carry no index
    const last = dims.length - 1;
    const canMerge = last >= 0 &&
      inStrides.every((st, k) => merged[k][last] === st[d] * outShape[d]);
    if (canMerge) {
      dims[last] *= outShape[d];
      inStrides.forEach((st, k) => merged[k][last] = st[d]);
    } else {
      dims.push(outShape[d]);
      inStrides.forEach((st, k) => merged[k].push(st[d]));
    }
  }
  const contiguous = (st: number[]) => {
    let s = 1;
    for (let d = dims.length - 1; d >= 0; d--) {
      if (st[d] !== s) return false;
      s *= dims[d];
    }
    return true;
  };
  return { dims, strides: merged.map((st) => contiguous(st) ? null : st) };
}

/** How a vec4 map kernel reads an input: four consecutive elements, or one for all four. */
export type VectorRead = "vec4" | "splat";

/**
 * Per input, how a kernel giving each lane four consecutive outputs reads it, or null when the
 * layout does not allow it: n and the innermost merged dimension must be multiples of 4, so the
 * four outputs share every coordinate but the innermost, along which an input is contiguous
 * (vec4) or broadcast (splat). Four elements per lane: vec4 loads and stores (a CPU adapter
 * pays per load instruction) and a quarter of the index math.
 */
export function vectorReads(layout: MapLayout, n: number): VectorRead[] | null {
  const innermost = layout.dims[layout.dims.length - 1] ?? 1;
  if (n % 4 !== 0 || innermost % 4 !== 0) return null;
  const reads = layout.strides.map((st): VectorRead | null => {
    const step = st === null ? 1 : st[st.length - 1];
    return step === 1 ? "vec4" : step === 0 ? "splat" : null;
  });
  return reads.every((r) => r !== null) ? reads as VectorRead[] : null;
}

export interface MapKernelArgs {
  /** Names the expressions use for the inputs, in binding order. */
  names: string[];
  /** WGSL element types of the inputs ("f32" | "i32" | "u32"); all are read as f32. */
  types: string[];
  /** One f32 (or output-typed) expression per output. */
  exprs: string[];
  outTypes: string[];
  layout: MapLayout;
  /** From `vectorReads`: four outputs per lane; null: one. */
  reads: VectorRead[] | null;
}

const mapBlocks = new Map<string, UniformBlock<UniformFields>>();

/** The map kernels' uniforms: sizes, two scalars, Inf/NaN as data, dims, strides per strided input. */
function mapBlock(strided: boolean[]): UniformBlock<UniformFields> {
  const key = strided.map(Number).join("");
  let block = mapBlocks.get(key);
  if (!block) {
    const fields: UniformFields = {
      n: "u32",
      gx: "u32",
      alpha: "f32",
      beta: "f32",
      inf: "f32",
      nan: "f32",
      dims: "array<vec4u, 2>",
    };
    strided.forEach((s, k) => {
      if (s) fields[`st${k}`] = "array<vec4u, 2>";
    });
    mapBlocks.set(key, block = uniformBlock(fields));
  }
  return block;
}

/** Uniform values for a map kernel over `n` outputs (`layout` from `mapLayout`). */
export function mapParams(
  n: number,
  gx: number,
  layout: MapLayout,
  alpha: number,
  beta: number,
): Record<string, number | readonly number[]> {
  const params: Record<string, number | readonly number[]> = {
    n,
    gx,
    alpha,
    beta,
    inf: Infinity,
    nan: NaN,
    dims: layout.dims,
  };
  layout.strides.forEach((st, k) => {
    if (st) params[`st${k}`] = st;
  });
  return params;
}

export function mapKernel(label: string, args: MapKernelArgs): KernelSpec {
  const { names, types, exprs, outTypes, layout, reads } = args;
  const rank = layout.dims.length;
  const strided = layout.strides.map((s) => s !== null);
  const key = [
    names.join(","),
    types.join(","),
    exprs.join(";"),
    outTypes.join(","),
    rank,
    strided.map(Number).join(""),
    reads?.join(",") ?? "",
  ].join("|");
  return {
    name: label,
    key,
    bindings: [...names.map(() => "read" as const), ...exprs.map(() => "write" as const)],
    uniforms: mapBlock(strided),
    code: () => {
      const nIn = names.length;
      const stridedInputs = strided.map((s, k) => s ? k : -1).filter((k) => k >= 0);
      const inType = (k: number) => reads?.[k] === "vec4" ? `vec4<${types[k]}>` : types[k];
      const outType = (j: number) => reads ? `vec4<${outTypes[j]}>` : outTypes[j];
      const decls = [
        ...names.map((_, k) =>
          `@group(0) @binding(${k}) var<storage, read> in${k}: array<${inType(k)}>;`
        ),
        ...exprs.map((_, j) =>
          `@group(0) @binding(${nIn + j}) var<storage, read_write> out${j}: array<${outType(j)}>;`
        ),
        `@group(0) @binding(${nIn + exprs.length}) var<uniform> u: U;`,
      ].join("\n");
      // Element offsets of the strided inputs for element i (the first of a lane's four).
      const index: string[] = [];
      if (stridedInputs.length) {
        index.push("  var rem = i;");
        for (const k of stridedInputs) index.push(`  var o${k} = 0u;`);
        for (let d = rank - 1; d >= 0; d--) {
          const dim = `u.dims[${d >> 2}][${d & 3}]`;
          index.push(`  let c${d} = rem % ${dim};`);
          if (d > 0) index.push(`  rem = rem / ${dim};`);
          for (const k of stridedInputs) {
            index.push(`  o${k} += c${d} * u.st${k}[${d >> 2}][${d & 3}];`);
          }
        }
      }
      const at = (k: number) => strided[k] ? `o${k}` : "i";
      let body: string[];
      if (!reads) {
        body = [
          ...names.map((name, k) => `  let ${name} = f32(in${k}[${at(k)}]);`),
          ...exprs.map((e, j) => `  out${j}[i] = ${outTypes[j]}(${e});`),
        ];
      } else {
        const loaded = names.map((_, k) =>
          reads[k] === "vec4"
            ? `  let v${k} = in${k}[${at(k)} / 4u];`
            : `  let v${k} = in${k}[${at(k)}];`
        );
        const lanes = [0, 1, 2, 3].map((c) =>
          [
            "  {",
            ...names.map((name, k) =>
              `    let ${name} = f32(v${k}${reads[k] === "vec4" ? `[${c}]` : ""});`
            ),
            ...exprs.map((e, j) => `    r${j}[${c}] = ${outTypes[j]}(${e});`),
            "  }",
          ].join("\n")
        );
        body = [
          ...loaded,
          ...exprs.map((_, j) => `  var r${j} = ${outType(j)}();`),
          ...lanes,
          ...exprs.map((_, j) => `  out${j}[i / 4u] = r${j};`),
        ];
      }
      const perLane = reads ? 4 : 1;
      return `
${mapBlock(strided).struct()}
${decls}
${LINEAR_INDEX}
${MATH}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx) * ${perLane}u;
  if (i >= u.n) { return; }
  let alpha = u.alpha;
  let beta = u.beta;
${index.join("\n")}
${body.join("\n")}
}`;
    },
  };
}

/** Writes one 32-bit pattern to every element. */
const FILL_UNIFORMS = uniformBlock({ n: "u32", gx: "u32", bits: "u32" });
export const FILL: KernelSpec<typeof FILL_UNIFORMS.fields> = {
  name: "fill",
  key: "",
  bindings: ["write"],
  uniforms: FILL_UNIFORMS,
  code: () => `
${FILL_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> u: U;
${LINEAR_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = linear_index(wid, lid, u.gx);
  if (i < u.n) { out[i] = u.bits; }
}`,
};
