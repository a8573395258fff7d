// Inverted dropout with a counter-based RNG (Philox-4x32-10): the mask is a pure function of
// (seed, offset, element index), so backward recomputes it instead of storing it.
import type { KernelSpec } from "../runtime.ts";
import { uniformBlock } from "../uniforms.ts";
import { LINEAR_INDEX, WG } from "./common.ts";

/**
 * WGSL Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011).
 * WGSL has no u64, so the 32×32→64 multiply is assembled from 16-bit halves.
 */
export const PHILOX = /* wgsl */ `
fn mul_hi(a: u32, b: u32) -> u32 {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = ((a0 * b0) >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

fn philox4x32(counter: vec4u, key: vec2u) -> vec4u {
  var c = counter;
  var k = key;
  for (var round = 0u; round < 10u; round++) {
    let hi0 = mul_hi(0xD2511F53u, c.x);
    let lo0 = 0xD2511F53u * c.x;
    let hi1 = mul_hi(0xCD9E8D57u, c.z);
    let lo1 = 0xCD9E8D57u * c.z;
    c = vec4u(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k += vec2u(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}`;

/**
 * y = x · keep · scale, four elements per invocation from one Philox block: element i is kept
 * when word i % 4 of philox((i / 4, offset_lo, offset_hi, 0), (seed_lo, seed_hi)) ≥ threshold.
 * The same kernel is the backward pass (applied to the incoming gradient).
 */
const DROPOUT_UNIFORMS = uniformBlock({
  blocks: "u32",
  gx: "u32",
  threshold: "u32",
  scale: "f32",
  seed: "vec2u",
  offset: "vec2u",
});

export const dropoutKernel: KernelSpec<typeof DROPOUT_UNIFORMS.fields> = {
  name: "dropout",
  key: "",
  bindings: ["read", "write"],
  uniforms: DROPOUT_UNIFORMS,
  code: () => /* wgsl */ `
${DROPOUT_UNIFORMS.struct()}
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(2) var<uniform> u: U;
${PHILOX}
${LINEAR_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let block = linear_index(wid, lid, u.gx);
  if (block >= u.blocks) { return; }
  let bits = philox4x32(vec4u(block, u.offset.x, u.offset.y, 0u), u.seed);
  // select, not a multiply by 0, so a dropped Inf gives 0 rather than NaN. The tail block may
  // touch up to 3 floats past the tensor: storage capacity is a multiple of 256 bytes.
  y[block] = select(vec4f(0.0), x[block] * u.scale, bits >= vec4u(u.threshold));
}`,
};
