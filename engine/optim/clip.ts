// Global-norm gradient clipping on the GPU without a readback: Σg² per workgroup, one workgroup
// for the norm, then every gradient scaled by a factor the kernel derives from the norm buffer.
// Gradients are bound several per dispatch, so a model costs 2·⌈P/group⌉ + 1 dispatches.
import { formatShape, Tensor } from "../tensor.ts";
import { runtime, type Storage } from "../runtime.ts";
import {
  CLIP_GROUP_MAX,
  clipScaleKernel,
  NORM_KERNEL,
  sumSquaresKernel,
} from "../shaders/optim.ts";
import { WG } from "../shaders/common.ts";

/** Each thread covers at least this many vec4s; at most MAX_CHUNKS workgroups per gradient. */
const VEC4S_PER_THREAD = 4;
const MAX_CHUNKS = 256;

interface GradRef {
  storage: Storage;
  size: number;
}

function chunksFor(size: number): number {
  const vec4s = Math.ceil(size / 4);
  return Math.max(1, Math.min(MAX_CHUNKS, Math.ceil(vec4s / (WG * VEC4S_PER_THREAD))));
}

function inGroups<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Scales the gradients of `params` (those that have one) in place so that their global L2 norm
 * is at most `maxNorm`: g ← g·min(1, maxNorm / (‖g‖ + 1e-6)). Returns ‖g‖ before clipping as a
 * 0-d tensor, computed on the GPU; read it asynchronously if you need the value.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): Tensor {
  if (!(Number.isFinite(maxNorm) && maxNorm > 0)) {
    throw new Error(`clipGradNorm: maxNorm = ${maxNorm}, expected a finite number > 0`);
  }
  const grads: GradRef[] = [];
  params.forEach((p, i) => {
    const g = p.grad;
    if (!g) return;
    g.assertAlive("clipGradNorm");
    if (g.dtype !== "f32") {
      throw new Error(
        `clipGradNorm: parameter ${i} ${
          formatShape(p.shape)
        } has a ${g.dtype} gradient, expected f32`,
      );
    }
    if (g.size > 0) grads.push({ storage: g.storage, size: g.size });
  });

  const rt = runtime();
  const groupSize = Math.max(
    1,
    Math.min(CLIP_GROUP_MAX, rt.maxStorageBuffers - 1),
  );
  const sumGroups = inGroups(grads, groupSize).map((group) => ({
    group,
    gx: Math.max(...group.map((g) => chunksFor(g.size))),
  }));
  const partialCount = sumGroups.reduce((n, { group, gx }) => n + group.length * gx, 0);
  const partials = Tensor.empty([Math.max(partialCount, 1)]);
  const norm = Tensor.empty([]);

  let base = 0;
  for (const { group, gx } of sumGroups) {
    rt.launch(sumSquaresKernel(group.length), {
      buffers: [...group.map((g) => g.storage), partials.storage],
      params: { gx, base, max_norm: maxNorm, sizes: group.map((g) => g.size) },
      groups: [gx, group.length],
      flops: 2 * group.reduce((n, g) => n + g.size, 0),
    });
    base += group.length * gx;
  }
  rt.launch(NORM_KERNEL, {
    buffers: [partials.storage, norm.storage],
    params: { count: partialCount },
    groups: [1],
  });

  // Gradients that share a buffer (a rule may hand one tensor to two inputs) are scaled once.
  const unique = [...new Map(grads.map((g) => [g.storage, g])).values()];
  for (const group of inGroups(unique, groupSize)) {
    const gx = Math.max(...group.map((g) => chunksFor(g.size)));
    rt.launch(clipScaleKernel(group.length), {
      buffers: [...group.map((g) => g.storage), norm.storage],
      params: { gx, base: 0, max_norm: maxNorm, sizes: group.map((g) => g.size) },
      groups: [gx, group.length],
    });
  }
  partials.dispose();
  return norm;
}
