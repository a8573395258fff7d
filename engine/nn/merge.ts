// Merge layers for graphs that are not a stack: Add (Keras Add, a residual connection's sum) and
// Concatenate (Keras Concatenate, a U-Net skip joined on the channel axis). As layers rather than
// bare ops they show in summary() with the layers they connect.
import { formatShape, type Tensor } from "../tensor.ts";
import { add } from "../ops/elementwise.ts";
import { concat } from "../ops/shape.ts";
import { Module } from "./module.ts";
import { numberField, registerLayer } from "../io/config.ts";

/**
 * The element-wise sum of two or more same-shaped tensors. Shapes must match exactly (no
 * broadcasting, as Keras): a residual branch whose channels or size drifted fails here, by name.
 */
export class Add extends Module<Tensor[]> {
  forward(...inputs: Tensor[]): Tensor {
    if (inputs.length < 2) {
      throw new Error(`Add: ${inputs.length} input(s), expected at least 2`);
    }
    const [first, ...rest] = inputs;
    if (rest.some((x) => x.shape.join() !== first.shape.join())) {
      throw new Error(
        `Add: input shapes ${inputs.map((x) => formatShape(x.shape)).join(", ")} differ; ` +
          "expected all the same",
      );
    }
    return rest.reduce((sum, x) => add(sum, x), first);
  }
}

/** Joins its inputs along `axis` (default −1, the channels), in the order given. */
export class Concatenate extends Module<Tensor[]> {
  constructor(readonly axis = -1) {
    super();
  }

  forward(...inputs: Tensor[]): Tensor {
    return concat(inputs, this.axis);
  }
}

registerLayer("Add", Add, { config: () => ({}), build: () => new Add() });
registerLayer("Concatenate", Concatenate, {
  config: (m) => ({ axis: m.axis }),
  build: (c) => new Concatenate(numberField(c, "axis", -1)),
});
