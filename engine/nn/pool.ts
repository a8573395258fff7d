// Pooling layers with Keras defaults (window 2, strides = window, "valid") on channels-last input:
// MaxPool2D / AvgPool2D (NHWC), MaxPool3D / AvgPool3D (NDHWC), and GlobalAvgPool2D, the mean
// over height and width ([N, H, W, C] → [N, C], Keras GlobalAveragePooling2D).
import { formatShape, type Tensor } from "../tensor.ts";
import {
  avgPool2d,
  avgPool3d,
  maxPool2d,
  maxPool3d,
  type PoolOptions,
  type PoolPadding,
} from "../ops/pool.ts";
import { mean } from "../ops/reduce.ts";
import { Module } from "./module.ts";
import { paddingOf, spatialTuple } from "./conv.ts";
import { choiceField, numberListField, registerLayer } from "../io/config.ts";

export interface PoolLayerOptions {
  /** Step between windows per spatial axis (default: the window). */
  strides?: number | readonly number[];
  /** Default "valid"; "same" keeps ceil(in / stride) outputs (TensorFlow's padding). */
  padding?: PoolPadding;
}

type PoolOp = (x: Tensor, options: PoolOptions) => Tensor;

/** A windowed pooling over 2 or 3 spatial axes; the window and strides as one number per axis. */
abstract class Pooling extends Module {
  readonly poolSize: number[];
  readonly strides: number[];
  readonly padding: PoolPadding;

  protected constructor(
    layerName: string,
    rank: 2 | 3,
    private readonly pool: PoolOp,
    poolSize: number | readonly number[],
    options: PoolLayerOptions,
  ) {
    super();
    this.poolSize = spatialTuple(layerName, "poolSize", poolSize, rank);
    this.strides = spatialTuple(layerName, "strides", options.strides ?? this.poolSize, rank);
    this.padding = paddingOf(layerName, options.padding);
  }

  forward(x: Tensor): Tensor {
    return this.pool(x, { poolSize: this.poolSize, strides: this.strides, padding: this.padding });
  }
}

/** Keras MaxPooling2D: the maximum of each window; the gradient goes to its first maximum. */
export class MaxPool2D extends Pooling {
  constructor(poolSize: number | readonly number[] = 2, options: PoolLayerOptions = {}) {
    super("MaxPool2D", 2, maxPool2d, poolSize, options);
  }
}

/** Keras AveragePooling2D: the mean of each window over its cells inside the input. */
export class AvgPool2D extends Pooling {
  constructor(poolSize: number | readonly number[] = 2, options: PoolLayerOptions = {}) {
    super("AvgPool2D", 2, avgPool2d, poolSize, options);
  }
}

/** Keras MaxPooling3D over (depth, height, width). */
export class MaxPool3D extends Pooling {
  constructor(poolSize: number | readonly number[] = 2, options: PoolLayerOptions = {}) {
    super("MaxPool3D", 3, maxPool3d, poolSize, options);
  }
}

/** Keras AveragePooling3D over (depth, height, width). */
export class AvgPool3D extends Pooling {
  constructor(poolSize: number | readonly number[] = 2, options: PoolLayerOptions = {}) {
    super("AvgPool3D", 3, avgPool3d, poolSize, options);
  }
}

/** Keras GlobalAveragePooling2D: [N, H, W, C] → [N, C], the mean over every position. */
export class GlobalAvgPool2D extends Module {
  forward(x: Tensor): Tensor {
    if (x.rank !== 4) {
      throw new Error(
        `GlobalAvgPool2D: input ${formatShape(x.shape)}, expected [batch, height, width, channels]`,
      );
    }
    return mean(x, [1, 2]);
  }
}

// ---- configs ------------------------------------------------------------------------------

for (
  const [name, Layer] of [
    ["MaxPool2D", MaxPool2D],
    ["AvgPool2D", AvgPool2D],
    ["MaxPool3D", MaxPool3D],
    ["AvgPool3D", AvgPool3D],
  ] as const
) {
  registerLayer<Pooling>(name, Layer, {
    config: (m) => ({ poolSize: m.poolSize, strides: m.strides, padding: m.padding }),
    build: (c) =>
      new Layer(numberListField(c, "poolSize"), {
        strides: numberListField(c, "strides"),
        padding: choiceField(c, "padding", ["valid", "same"] as const, "valid"),
      }),
  });
}

registerLayer("GlobalAvgPool2D", GlobalAvgPool2D, {
  config: () => ({}),
  build: () => new GlobalAvgPool2D(),
});
