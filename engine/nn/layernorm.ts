// LayerNormalization over the last axis with Keras defaults (ε 1e-3, γ = 1, β = 0).
import { Tensor } from "../tensor.ts";
import { layerNorm } from "../ops/layernorm.ts";
import { Module } from "./module.ts";
import { numberField, registerLayer } from "../io/config.ts";

export interface LayerNormLayerOptions {
  /** Keras' default 1e-3; pass 1e-5 to match PyTorch. */
  epsilon?: number;
}

/** Parameters named as PyTorch: `weight` = Keras gamma, `bias` = beta. */
export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly epsilon: number;

  constructor(readonly normalizedShape: number, options: LayerNormLayerOptions = {}) {
    super();
    if (!Number.isInteger(normalizedShape) || normalizedShape < 1) {
      throw new Error(`LayerNorm: normalizedShape ${normalizedShape}, expected an integer ≥ 1`);
    }
    this.epsilon = options.epsilon ?? 1e-3;
    this.weight = this.addParameter("weight", Tensor.ones([normalizedShape]));
    this.bias = this.addParameter("bias", Tensor.zeros([normalizedShape]));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, { epsilon: this.epsilon });
  }
}

registerLayer("LayerNorm", LayerNorm, {
  config: (m) => ({ normalizedShape: m.normalizedShape, epsilon: m.epsilon }),
  build: (c) =>
    new LayerNorm(numberField(c, "normalizedShape"), { epsilon: numberField(c, "epsilon", 1e-3) }),
});
