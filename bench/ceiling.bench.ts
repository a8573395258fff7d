// The adapter's measured ceilings, which every other kernel's roofline share is relative to:
// memory bandwidth from a copy kernel (GB/s counting the read and the write) and arithmetic
// throughput from independent FMA chains (GFLOP/s). The runner takes the best case of each kind,
// over two passes: one with the kernels and one after them.
import { Tensor } from "../engine/tensor.ts";
import type { KernelSpec } from "../engine/runtime.ts";
import { grid1d, LINEAR_INDEX, WG } from "../engine/shaders/common.ts";
import { uniformBlock } from "../engine/uniforms.ts";
import { benchKernel, rt } from "./lib/kernel.ts";
import { copyWork, fmaWork } from "./lib/work.ts";
import { BENCH_ENV } from "./lib/report.ts";
import { readEnv } from "../host/env.ts";

/** bench/run.ts measures the ceilings twice: with the kernels, and again once they have run. */
const pass = readEnv(BENCH_ENV.ceilingPass) === "after" ? ", after the kernels" : "";

/** Each copy buffer: source and destination together (128 MiB) exceed the last-level cache of
 * mainstream GPUs (H100 50 MB, RTX 4090 72 MB), so there is nothing to rotate. */
const COPY_BYTES = 64 * 2 ** 20;

const COPY_UNIFORMS = uniformBlock({ vec4s: "u32", gx: "u32", threads: "u32" });

/** Copies `perThread` vec4s per invocation, strided by the grid so neighbours stay adjacent. */
function copyKernel(perThread: number): KernelSpec<typeof COPY_UNIFORMS.fields> {
  return {
    name: "ceiling_copy",
    key: `${perThread}`,
    bindings: ["read", "write"],
    uniforms: COPY_UNIFORMS,
    code: () => /* wgsl */ `
      ${LINEAR_INDEX}
      ${COPY_UNIFORMS.struct()}
      @group(0) @binding(0) var<storage, read> src: array<vec4f>;
      @group(0) @binding(1) var<storage, read_write> dst: array<vec4f>;
      @group(0) @binding(2) var<uniform> u: U;
      @compute @workgroup_size(${WG})
      fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
        let first = linear_index(wid, lid, u.gx);
        for (var j = 0u; j < ${perThread}u; j++) {
          let i = first + j * u.threads;
          if (i < u.vec4s) { dst[i] = src[i]; }
        }
      }`,
  };
}

for (const perThread of [1, 4]) {
  benchKernel({
    kernel: "ceiling copy",
    variant: `${perThread} vec4/thread${pass}`,
    shape: `${COPY_BYTES / 2 ** 20} MiB`,
    work: copyWork(COPY_BYTES),
    ceiling: "bandwidth",
    setup: () => {
      const vec4s = COPY_BYTES / 16;
      const threads = Math.ceil(vec4s / perThread);
      const groups = grid1d(threads);
      const params = { vec4s, gx: groups[0], threads };
      const kernel = copyKernel(perThread);
      const src = Tensor.uniform([COPY_BYTES / 4], -1, 1).keep();
      const buffers = [src.storage, Tensor.empty(src.shape).keep().storage];
      return () => rt.launch(kernel, { buffers, params, groups });
    },
  });
}

/** Enough threads to fill a large GPU (an H100 holds ~270k resident threads). */
const FMA_THREADS = 2 ** 20;
const FMA_ITERATIONS = 64;
const FMA_CHAINS = 8;

// The multiplier and addend come in as uniforms: unknown to the compiler, so it can neither
// fold the chains nor drop them.
const FMA_UNIFORMS = uniformBlock({ iterations: "u32", gx: "u32", m: "f32", c: "f32" });

const FMA_KERNEL: KernelSpec<typeof FMA_UNIFORMS.fields> = {
  name: "ceiling_fma",
  key: `${FMA_CHAINS}`,
  bindings: ["write"],
  uniforms: FMA_UNIFORMS,
  code: () => {
    const chains = Array.from({ length: FMA_CHAINS }, (_, c) => c);
    return /* wgsl */ `
      ${LINEAR_INDEX}
      ${FMA_UNIFORMS.struct()}
      @group(0) @binding(0) var<storage, read_write> out: array<f32>;
      @group(0) @binding(1) var<uniform> u: U;
      @compute @workgroup_size(${WG})
      fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
        let i = linear_index(wid, lid, u.gx);
        let m = vec4f(u.m);
        let c = vec4f(u.c);
        let s = f32(i) * 1e-7;
        ${
      chains.map((k) => `var a${k} = vec4f(s + ${k}.0, s - ${k}.5, s * ${k + 1}.0, 1.0 - s);`).join(
        "\n",
      )
    }
        for (var it = 0u; it < u.iterations; it++) {
          ${chains.map((k) => `a${k} = fma(a${k}, m, c);`).join("\n")}
        }
        let t = ${chains.map((k) => `a${k}`).join(" + ")};
        out[i] = t.x + t.y + t.z + t.w;
      }`;
  },
};

benchKernel({
  kernel: "ceiling fma",
  variant: `${FMA_CHAINS} vec4 chains × ${FMA_ITERATIONS}${pass}`,
  shape: `${FMA_THREADS / 2 ** 20}M threads`,
  work: fmaWork(FMA_THREADS, FMA_ITERATIONS, FMA_CHAINS),
  ceiling: "compute",
  setup: () => {
    const out = Tensor.empty([FMA_THREADS]).keep();
    const groups = grid1d(FMA_THREADS);
    const params = { iterations: FMA_ITERATIONS, gx: groups[0], m: 0.999, c: 1e-3 };
    return () => rt.launch(FMA_KERNEL, { buffers: [out.storage], params, groups });
  },
});
