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
import { cpuThreads, tunable } from "../tuning.ts";

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

export interface BatchNormTuning {
  /** Each thread a run of rows (true) or every TR-th row. */
  blockedRows: boolean;
  /** Workgroups to aim for: rows are cut into chunks until the channel tiles × chunks reach it. */
  workgroups: number;
}

export const BATCHNORM_TUNING = tunable<BatchNormTuning>("batchnorm", {
  // Lavapipe runs each 8-lane vector through its whole loop: with every TR-th row a vector read
  // 128 B per row at a stride, with runs of rows it streams (see the shader file's head). Each
  // workgroup pays its barrier phases once: a few per core are enough (ResNet-BN step on 2 cores:
  // BatchNorm 149 ms with 256 workgroups per layer, 87 ms with 8).
  cpu: { blockedRows: true, workgroups: 4 * cpuThreads() },
  // A GPU's lockstep lanes read neighbouring rows together; it wants a few workgroups per SM
  // (not yet measured on hardware).
  gpu: { blockedRows: false, workgroups: 256 },
});

/** Workgroup shape, row chunking and uniform values for a geometry; shared by forward and backward. */
function plan(geo: Geometry, momentum: number, epsilon: number) {
  const { inner, rows } = geo;
  // Channels-last with C a multiple of 4: a lane owns four adjacent channels (vec4 loads), and
  // the kernels count channel vectors.
  const vec4 = inner === 1 && geo.channels % 4 === 0;
  const channels = vec4 ? geo.channels / 4 : geo.channels;
  // Channels-last: a workgroup spans up to 64 adjacent channels so its lanes read contiguously.
  // Otherwise each channel's rows are contiguous runs of `inner`: one channel per workgroup.
  const tc = inner === 1 ? Math.min(64, 2 ** Math.ceil(Math.log2(channels))) : 1;
  const tr = WG / tc;
  const tiles = Math.ceil(channels / tc);
  // The table's workgroup count in all, ≤ 64 chunks per channel (each apply workgroup
  // re-combines all chunks of its channels), and at least 4 rows per thread.
  const { blockedRows, workgroups } = BATCHNORM_TUNING.get();
  const targetChunks = Math.min(64, Math.ceil(workgroups / tiles));
  const rowsPerChunk = tr * Math.max(4, Math.ceil(rows / (tr * targetChunks)));
  const chunks = Math.ceil(rows / rowsPerChunk);
  const stepRows = blockedRows ? 1 : tr;
  const stepK = stepRows % inner;
  const params = {
    channels,
    inner,
    rows,
    rows_per_chunk: rowsPerChunk,
    chunks,
    momentum,
    eps: epsilon,
    step_rows: stepRows,
    step_k: stepK,
    step_index: Math.floor(stepRows / inner) * channels * inner + stepK,
    wrap: (channels - 1) * inner,
  };
  const groups: [number, number] = [tiles, chunks];
  return { layout: { tc, vec4, blocked: blockedRows }, params, groups, chunks };
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
  const { layout, params, groups, chunks } = plan(geo, momentum, epsilon);
  const rt = runtime();
  const y = Tensor.empty(x.shape);
  const attrs = { ...geo, training, epsilon };
  const inputs = [x, gamma, beta];

  if (training) {
    const partials = Tensor.empty([chunks, 3, channels]);
    const batchStats = Tensor.empty([2, channels]);
    rt.launch(batchNormStatsKernel(layout), {
      buffers: [x.storage, partials.storage],
      params,
      groups,
      flops: 3 * x.size,
    });
    rt.launch(batchNormApplyKernel(layout, true), {
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
    rt.launch(batchNormApplyKernel(layout, false), {
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
  const { layout, params, groups, chunks } = plan({ channels, inner, rows }, 0, epsilon);
  const rt = runtime();
  const partials = Tensor.empty([chunks, 2, channels]);
  rt.launch(batchNormGradStatsKernel(layout), {
    buffers: [x.storage, grad.storage, stats.storage, partials.storage],
    params,
    groups,
    flops: 4 * x.size,
  });
  const dx = Tensor.empty(x.shape);
  const dgamma = Tensor.empty([channels]);
  const dbeta = Tensor.empty([channels]);
  rt.launch(batchNormGradApplyKernel(layout, training), {
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
