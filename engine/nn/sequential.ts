// Sequential container: children named "0", "1", … (PyTorch), applied in order.
import type { Tensor } from "../tensor.ts";
import { Module } from "./module.ts";

export class Sequential extends Module {
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers.map((layer, i) => this.addModule(String(i), layer));
  }

  forward(x: Tensor): Tensor {
    return this.layers.reduce((h, layer) => layer.forward(h), x);
  }
}
