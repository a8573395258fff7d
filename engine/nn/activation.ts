// Activation layers: thin modules over the elementwise and softmax ops.
import type { Tensor } from "../tensor.ts";
import { gelu, leakyRelu, relu, sigmoid, tanh } from "../ops/elementwise.ts";
import { softmax } from "../ops/reduce.ts";
import { Module } from "./module.ts";

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
