// Shared WGSL helpers: the typed preprocessor tag, the 2-D grid used for long 1-D launches and
// the index list the unrolling generators loop over.
import { wgsl as untypedWgsl } from "wgsl-preprocessor";

/** `wgsl` tag from wgsl-preprocessor: `#if ${cond}` … `#elif ${c}` … `#else` … `#endif`. */
export const wgsl: (strings: TemplateStringsArray, ...values: unknown[]) => string = untypedWgsl;

/** 0, 1, …, n − 1: what a generator unrolls over. */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Threads per workgroup of the 1-D kernels. */
export const WG = 256;

/**
 * Workgroup grid covering `n` invocations of WG threads each: x ≤ 65535, the rest in y.
 * Kernels recover the linear index with `linearIndex(wid, lid, gx)`.
 */
export function grid1d(n: number, perThread = 1): [number, number] {
  const groups = Math.max(1, Math.ceil(n / (WG * perThread)));
  const gx = Math.min(groups, 65535);
  return [gx, Math.ceil(groups / gx)];
}

/** WGSL: `fn linear_index(wid, lid, gx) -> u32` for kernels launched with grid1d. */
export const LINEAR_INDEX = /* wgsl */ `
fn linear_index(wid: vec3u, lid: u32, gx: u32) -> u32 {
  return (wid.y * gx + wid.x) * ${WG}u + lid;
}`;
