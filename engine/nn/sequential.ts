// Sequential container: children named "0", "1", … (PyTorch), applied in order — the Graph
// whose wiring is a chain.
import type { Tensor } from "../tensor.ts";
import { type AnyModule, Graph, type Module } from "./module.ts";
import { registerLayer } from "../io/config.ts";

export class Sequential extends Graph {
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers.map((layer, i) => this.addModule(String(i), layer));
  }

  forward(x: Tensor): Tensor {
    return this.layers.reduce((h, layer) => layer.forward(h), x);
  }
}

registerLayer("Sequential", Sequential, {
  config: () => ({}),
  children: (m) => m.layers as AnyModule[],
  build: (_config, children) => new Sequential(...(children as Module[])),
});
