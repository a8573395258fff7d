// Flatten layer: [batch, ...] → [batch, product] in row-major (channels-last) order, as Keras.
import type { Tensor } from "../tensor.ts";
import { Module } from "./module.ts";
import { registerLayer } from "../io/config.ts";

export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    if (x.rank < 1) throw new Error("Flatten: input is 0-d, expected a leading batch dimension");
    return x.flatten(1);
  }
}

registerLayer("Flatten", Flatten, { config: () => ({}), build: () => new Flatten() });
