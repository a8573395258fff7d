// Batch normalisation (Keras semantics) for any rank: x is viewed as [outer, C, inner] around
// the channel axis. Training normalises with the batch mean and biased variance and updates the
// moving statistics in place: m ← momentum·m + (1 − momentum)·batch_mean, likewise the variance
// (Keras 3 `BatchNormalization.call` with `ops.moments`, which is biased). Inference uses the
// moving statistics. The node saves x, the (mean, variance) it normalised with, and γ.
import { formatShape, sizeOf, Tensor } from "../tensor.ts";
import { runtime } from "../runtime.ts";
import { type BackwardRule, needsGrad, recorder, type Rules } from "../autograd.ts";
import {
  batchNormApplyKernel,
  batchNormGradApplyKernel,
  batchNormGradStatsKernel,
  batchNormStatsKernel,
} from "../shaders/batchnorm.ts";
import { WG } from "../shaders/common.ts";

export interface BatchNormOptions {
  /** Channel axis (default −1: channels-last, as Keras). */
  axis?: number;
  /** Batch statistics and moving-stat update (true) or moving statistics (false, default). */
  training?: boolean;
  momentum?: number;
  epsilon?: number;
}

interface Geometry {
  channels: number;
  inner: number;
  rows: number;
}

interface BatchNormAttrs {
  batch_norm: Geometry & { training: boolean; epsilon: number };
}

/** Workgroup shape, row chunking and uniform values for a geometry; shared by forward and backward. */
function plan(geo: Geometry, momentum: number, epsilon: number) {
  const { channels, inner, rows } = geo;
  // Channels-last: a workgroup spans up to 64 adjacent channels so its lanes read contiguously.
  // Otherwise each channel's rows are contiguous runs of `inner`: one channel per workgroup.
  const tc = inner === 1 ? Math.min(64, 2 ** Math.ceil(Math.log2(channels))) : 1;
  const tr = WG / tc;
  const tiles = Math.ceil(channels / tc);
  // About 256 workgroups in all (lavapipe pays per workgroup barrier phase; GPUs want a few per
  // SM), ≤ 64 chunks per channel (each apply workgroup re-combines all chunks of its channels),
  // and at least 4 rows per thread.
  const targetChunks = Math.min(64, Math.ceil(256 / tiles));
  const rowsPerChunk = tr * Math.max(4, Math.ceil(rows / (tr * targetChunks)));
  const chunks = Math.ceil(rows / rowsPerChunk);
  const stepK = tr % inner;
  const params = {
    channels,
    inner,
    rows,
    rows_per_chunk: rowsPerChunk,
    chunks,
    momentum,
    eps: epsilon,
    step_k: stepK,
    step_index: Math.floor(tr / inner) * channels * inner + stepK,
    wrap: (channels - 1) * inner,
  };
  const groups: [number, number] = [tiles, chunks];
  return { tc, params, groups, chunks };
}

function checkChannelVector(t: Tensor, what: string, channels: number, x: Tensor): void {
  t.assertAlive("batchNorm");
  if (t.rank !== 1 || t.shape[0] !== channels || t.dtype !== "f32") {
    throw new Error(
      `batchNorm: ${what} has shape ${formatShape(t.shape)} (${t.dtype}), expected ` +
        `[${channels}] f32 for input ${formatShape(x.shape)}`,
    );
  }
}

/**
 * y = γ·(x − mean)/√(var + ε) + β per channel. In training mode `movingMean` and `movingVar`
 * are updated in place on the GPU; they are never differentiated.
 */
export function batchNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  movingMean: Tensor,
  movingVar: Tensor,
  options: BatchNormOptions = {},
): Tensor {
  const { axis = -1, training = false, momentum = 0.99, epsilon = 1e-3 } = options;
  x.assertAlive("batchNorm");
  if (x.dtype !== "f32") {
    throw new Error(`batchNorm: input ${formatShape(x.shape)} has dtype ${x.dtype}, expected f32`);
  }
  if (!Number.isInteger(axis) || axis < -x.rank || axis >= x.rank) {
    throw new Error(
      `batchNorm: axis ${axis} is out of range for input ${formatShape(x.shape)} ` +
        `(expected an integer in [${-x.rank}, ${x.rank - 1}])`,
    );
  }
  if (x.size === 0) {
    throw new Error(`batchNorm: input ${formatShape(x.shape)} is empty`);
  }
  if (!(momentum >= 0 && momentum <= 1)) {
    throw new Error(`batchNorm: momentum ${momentum} is outside [0, 1]`);
  }
  if (!(epsilon > 0)) throw new Error(`batchNorm: epsilon ${epsilon}, expected > 0`);
  const a = axis < 0 ? axis + x.rank : axis;
  const channels = x.shape[a];
  checkChannelVector(gamma, "gamma", channels, x);
  checkChannelVector(beta, "beta", channels, x);
  checkChannelVector(movingMean, "movingMean", channels, x);
  checkChannelVector(movingVar, "movingVar", channels, x);

  if (training) {
    const written = [movingMean.storage, movingVar.storage];
    const others = [x.storage, gamma.storage, beta.storage];
    if (written[0] === written[1] || others.some((s) => written.includes(s))) {
      throw new Error(
        "batchNorm: movingMean and movingVar are updated in place in training mode and must " +
          "not share storage with each other or with x, gamma, beta",
      );
    }
  }

  const inner = sizeOf(x.shape.slice(a + 1));
  const geo: Geometry = { channels, inner, rows: x.size / channels };
  const { tc, params, groups, chunks } = plan(geo, momentum, epsilon);
  const rt = runtime();
  const y = Tensor.empty(x.shape);
  const attrs = { ...geo, training, epsilon };
  const inputs = [x, gamma, beta];

  if (training) {
    const partials = Tensor.empty([chunks, channels, 4]);
    const batchStats = Tensor.empty([2, channels]);
    rt.launch(batchNormStatsKernel(tc), {
      buffers: [x.storage, partials.storage],
      params,
      groups,
      flops: 3 * x.size,
    });
    rt.launch(batchNormApplyKernel(tc, true), {
      buffers: [
        x.storage,
        partials.storage,
        gamma.storage,
        beta.storage,
        y.storage,
        batchStats.storage,
        movingMean.storage,
        movingVar.storage,
      ],
      params,
      groups,
      flops: 3 * x.size,
      outputs: [y],
      op: "batch_norm",
    });
    partials.dispose();
    record("batch_norm", y, inputs, [x, batchStats, gamma], attrs);
    batchStats.dispose();
  } else {
    rt.launch(batchNormApplyKernel(tc, false), {
      buffers: [
        x.storage,
        movingMean.storage,
        movingVar.storage,
        gamma.storage,
        beta.storage,
        y.storage,
      ],
      params,
      groups,
      flops: 3 * x.size,
      outputs: [y],
      op: "batch_norm",
    });
    if (needsGrad(inputs)) {
      // Snapshot: a later training step updates the moving statistics in place.
      const stats = Tensor.empty([2, channels]);
      rt.copy(movingMean.storage, 0, stats.storage, 0, channels * 4);
      rt.copy(movingVar.storage, 0, stats.storage, channels * 4, channels * 4);
      record("batch_norm", y, inputs, [x, stats, gamma], attrs);
      stats.dispose();
    }
  }
  return y;
}

const batchNormBackward: BackwardRule<BatchNormAttrs["batch_norm"]> = (grad, node) => {
  const [x, stats, gamma] = node.saved;
  const { channels, inner, rows, training, epsilon } = node.attrs;
  const { tc, params, groups, chunks } = plan({ channels, inner, rows }, 0, epsilon);
  const rt = runtime();
  const partials = Tensor.empty([chunks, channels, 2]);
  rt.launch(batchNormGradStatsKernel(tc), {
    buffers: [x.storage, grad.storage, stats.storage, partials.storage],
    params,
    groups,
    flops: 4 * x.size,
  });
  const dx = Tensor.empty(x.shape);
  const dgamma = Tensor.empty([channels]);
  const dbeta = Tensor.empty([channels]);
  rt.launch(batchNormGradApplyKernel(tc, training), {
    buffers: [
      x.storage,
      grad.storage,
      stats.storage,
      gamma.storage,
      partials.storage,
      dx.storage,
      dgamma.storage,
      dbeta.storage,
    ],
    params,
    groups,
    flops: 6 * x.size,
  });
  partials.dispose();
  return [dx, dgamma, dbeta];
};

const batchNormRules: Rules<BatchNormAttrs> = {
  batch_norm: batchNormBackward,
};
const record = recorder(batchNormRules);
