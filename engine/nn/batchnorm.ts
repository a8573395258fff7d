// BatchNormalization layer with Keras defaults (momentum 0.99, ε 1e-3, channels-last).
import { Tensor } from "../tensor.ts";
import { batchNorm } from "../ops/batchnorm.ts";
import { Module } from "./module.ts";
import { numberField, registerLayer } from "../io/config.ts";

export interface BatchNormLayerOptions {
  /** Channel axis of the input (default −1, channels-last). */
  axis?: number;
  momentum?: number;
  epsilon?: number;
}

/**
 * Names follow PyTorch: `weight` = Keras gamma (init 1), `bias` = beta (init 0), buffers
 * `running_mean` = moving_mean (init 0) and `running_var` = moving_variance (init 1). The
 * moving statistics are updated Keras' way (biased batch variance) on every training call.
 */
export class BatchNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly axis: number;
  readonly momentum: number;
  readonly epsilon: number;

  constructor(readonly numFeatures: number, options: BatchNormLayerOptions = {}) {
    super();
    if (!Number.isInteger(numFeatures) || numFeatures < 1) {
      throw new Error(`BatchNorm: numFeatures ${numFeatures}, expected an integer ≥ 1`);
    }
    this.axis = options.axis ?? -1;
    this.momentum = options.momentum ?? 0.99;
    this.epsilon = options.epsilon ?? 1e-3;
    this.weight = this.addParameter("weight", Tensor.ones([numFeatures]));
    this.bias = this.addParameter("bias", Tensor.zeros([numFeatures]));
    this.runningMean = this.addBuffer("running_mean", Tensor.zeros([numFeatures]));
    this.runningVar = this.addBuffer("running_var", Tensor.ones([numFeatures]));
  }

  forward(x: Tensor): Tensor {
    return batchNorm(x, this.weight, this.bias, this.runningMean, this.runningVar, {
      axis: this.axis,
      training: this.training,
      momentum: this.momentum,
      epsilon: this.epsilon,
    });
  }
}

registerLayer("BatchNorm", BatchNorm, {
  config: (m) => ({
    numFeatures: m.numFeatures,
    axis: m.axis,
    momentum: m.momentum,
    epsilon: m.epsilon,
  }),
  build: (c) =>
    new BatchNorm(numberField(c, "numFeatures"), {
      axis: numberField(c, "axis", -1),
      momentum: numberField(c, "momentum", 0.99),
      epsilon: numberField(c, "epsilon", 1e-3),
    }),
});
