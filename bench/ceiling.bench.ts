// The adapter's measured ceilings, which every other kernel's roofline share is relative to:
// memory bandwidth from a copy kernel (GB/s counting the read and the write) and arithmetic
// throughput from independent FMA chains (GFLOP/s). The runner takes the best case of each kind.
import { Tensor } from "../engine/tensor.ts";
import type { KernelSpec } from "../engine/runtime.ts";
import { grid1d, LINEAR_INDEX, WG } from "../engine/shaders/common.ts";
import { benchKernel, rt } from "./lib/kernel.ts";
import { copyWork, fmaWork } from "./lib/work.ts";

/** Each copy buffer: source and destination together (128 MiB) exceed the last-level cache of
 * mainstream GPUs (H100 50 MB, RTX 4090 72 MB), so there is nothing to rotate. */
const COPY_BYTES = 64 * 2 ** 20;

/** Copies `perThread` vec4s per invocation, strided by the grid so neighbours stay adjacent. */
function copyKernel(perThread: number): KernelSpec {
  return {
    name: "ceiling_copy",
    key: `${perThread}`,
    bindings: ["read", "write"],
    uniform: true,
    code: () => /* wgsl */ `
      ${LINEAR_INDEX}
      @group(0) @binding(0) var<storage, read> src: array<vec4f>;
      @group(0) @binding(1) var<storage, read_write> dst: array<vec4f>;
      @group(0) @binding(2) var<uniform> u: vec4u; // vec4 count, grid x, threads
      @compute @workgroup_size(${WG})
      fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
        let first = linear_index(wid, lid, u.y);
        for (var j = 0u; j < ${perThread}u; j++) {
          let i = first + j * u.z;
          if (i < u.x) { dst[i] = src[i]; }
        }
      }`,
  };
}

for (const perThread of [1, 4]) {
  benchKernel({
    kernel: "ceiling copy",
    variant: `${perThread} vec4/thread`,
    shape: `${COPY_BYTES / 2 ** 20} MiB`,
    work: copyWork(COPY_BYTES),
    ceiling: "bandwidth",
    setup: () => {
      const vec4s = COPY_BYTES / 16;
      const threads = Math.ceil(vec4s / perThread);
      const groups = grid1d(threads);
      const uniforms = new Uint32Array([vec4s, groups[0], threads, 0]);
      const kernel = copyKernel(perThread);
      const src = Tensor.uniform([COPY_BYTES / 4], -1, 1).keep();
      const buffers = [src.storage, Tensor.empty(src.shape).keep().storage];
      return () => rt.dispatch({ kernel, buffers, uniforms, groups });
    },
  });
}

/** Enough threads to fill a large GPU (an H100 holds ~270k resident threads). */
const FMA_THREADS = 2 ** 20;
const FMA_ITERATIONS = 64;
const FMA_CHAINS = 8;

const FMA_KERNEL: KernelSpec = {
  name: "ceiling_fma",
  key: `${FMA_CHAINS}`,
  bindings: ["write"],
  uniform: true,
  code: () => {
    const chains = Array.from({ length: FMA_CHAINS }, (_, c) => c);
    return /* wgsl */ `
      ${LINEAR_INDEX}
      @group(0) @binding(0) var<storage, read_write> out: array<f32>;
      // iterations, grid x, and the multiplier and addend as f32 bits: unknown to the compiler,
      // so it can neither fold the chains nor drop them.
      @group(0) @binding(1) var<uniform> u: vec4u;
      @compute @workgroup_size(${WG})
      fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
        let i = linear_index(wid, lid, u.y);
        let m = vec4f(bitcast<f32>(u.z));
        let c = vec4f(bitcast<f32>(u.w));
        let s = f32(i) * 1e-7;
        ${
      chains.map((k) => `var a${k} = vec4f(s + ${k}.0, s - ${k}.5, s * ${k + 1}.0, 1.0 - s);`).join(
        "\n",
      )
    }
        for (var it = 0u; it < u.x; it++) {
          ${chains.map((k) => `a${k} = fma(a${k}, m, c);`).join("\n")}
        }
        let t = ${chains.map((k) => `a${k}`).join(" + ")};
        out[i] = t.x + t.y + t.z + t.w;
      }`;
  },
};

benchKernel({
  kernel: "ceiling fma",
  variant: `${FMA_CHAINS} vec4 chains × ${FMA_ITERATIONS}`,
  shape: `${FMA_THREADS / 2 ** 20}M threads`,
  work: fmaWork(FMA_THREADS, FMA_ITERATIONS, FMA_CHAINS),
  ceiling: "compute",
  setup: () => {
    const out = Tensor.empty([FMA_THREADS]).keep();
    const groups = grid1d(FMA_THREADS);
    const uniforms = new Uint32Array(4);
    const floats = new Float32Array(uniforms.buffer);
    uniforms[0] = FMA_ITERATIONS;
    uniforms[1] = groups[0];
    floats[2] = 0.999;
    floats[3] = 1e-3;
    return () => rt.dispatch({ kernel: FMA_KERNEL, buffers: [out.storage], uniforms, groups });
  },
});
