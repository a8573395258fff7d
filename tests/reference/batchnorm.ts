// Float64 batch normalisation written from the Keras 3 definition (BatchNormalization.call +
// ops.moments): biased batch variance, moving stats m ← momentum·m + (1 − momentum)·batch.
import { type Ref, ref } from "../helpers.ts";

export interface BatchNormRefOptions {
  axis?: number;
  training: boolean;
  momentum?: number;
  epsilon?: number;
}

export interface BatchNormRefResult {
  y: Ref;
  /** Moving statistics after the call (unchanged in inference). */
  movingMean: Float64Array;
  movingVar: Float64Array;
}

export function batchNormRef(
  x: Ref,
  gamma: Ref,
  beta: Ref,
  movingMean: ArrayLike<number>,
  movingVar: ArrayLike<number>,
  { axis = -1, training, momentum = 0.99, epsilon = 1e-3 }: BatchNormRefOptions,
): BatchNormRefResult {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const channels = x.shape[a];
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const channelOf = (i: number) => Math.floor(i / inner) % channels;
  const count = x.data.length / channels;

  const mean = new Float64Array(channels);
  const variance = new Float64Array(channels);
  const newMean = Float64Array.from(movingMean);
  const newVar = Float64Array.from(movingVar);
  if (training) {
    x.data.forEach((v, i) => mean[channelOf(i)] += v / count);
    x.data.forEach((v, i) => variance[channelOf(i)] += (v - mean[channelOf(i)]) ** 2 / count);
    for (let c = 0; c < channels; c++) {
      newMean[c] = movingMean[c] * momentum + mean[c] * (1 - momentum);
      newVar[c] = movingVar[c] * momentum + variance[c] * (1 - momentum);
    }
  } else {
    mean.set(Float64Array.from(movingMean));
    variance.set(Float64Array.from(movingVar));
  }
  const y = x.data.map((v, i) => {
    const c = channelOf(i);
    return (v - mean[c]) / Math.sqrt(variance[c] + epsilon) * gamma.data[c] + beta.data[c];
  });
  return { y: ref(x.shape, y), movingMean: newMean, movingVar: newVar };
}
