// Activation layers: thin modules over the elementwise and softmax ops.
import type { Tensor } from "../tensor.ts";
import { gelu, leakyRelu, relu, sigmoid, tanh } from "../ops/elementwise.ts";
import { softmax } from "../ops/reduce.ts";
import { Module } from "./module.ts";
import { numberField, registerLayer } from "../io/config.ts";

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

/** max(x, αx); α defaults to Keras' 0.3 (PyTorch uses 0.01). */
export class LeakyReLU extends Module {
  constructor(readonly alpha = 0.3) {
    super();
  }
  forward(x: Tensor): Tensor {
    return leakyRelu(x, this.alpha);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return tanh(x);
  }
}

export class GELU extends Module {
  forward(x: Tensor): Tensor {
    return gelu(x);
  }
}

export class Softmax extends Module {
  constructor(readonly axis = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return softmax(x, this.axis);
  }
}

registerLayer("ReLU", ReLU, { config: () => ({}), build: () => new ReLU() });
registerLayer("LeakyReLU", LeakyReLU, {
  config: (m) => ({ alpha: m.alpha }),
  build: (c) => new LeakyReLU(numberField(c, "alpha", 0.3)),
});
registerLayer("Sigmoid", Sigmoid, { config: () => ({}), build: () => new Sigmoid() });
registerLayer("Tanh", Tanh, { config: () => ({}), build: () => new Tanh() });
registerLayer("GELU", GELU, { config: () => ({}), build: () => new GELU() });
registerLayer("Softmax", Softmax, {
  config: (m) => ({ axis: m.axis }),
  build: (c) => new Softmax(numberField(c, "axis", -1)),
});
