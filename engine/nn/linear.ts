// Fully connected layer (Keras Dense): y = act(x·W + b) in one fused matmul dispatch.
import { formatShape, Tensor } from "../tensor.ts";
import { matmul, type MatmulActivation, type MatmulOptions } from "../ops/matmul.ts";
import { globalRng, type Rng } from "../random.ts";
import { Module } from "./module.ts";
import { glorotUniform } from "./init.ts";
import { booleanField, choiceField, numberField, registerLayer } from "../io/config.ts";

export interface LinearOptions {
  /** Add a bias vector (default true). */
  bias?: boolean;
  /** Activation fused into the matmul epilogue. */
  activation?: MatmulOptions["activation"];
  /** Generator for the initial weights (default: the global one). */
  rng?: Rng;
}

/**
 * `weight` is stored as [inFeatures, outFeatures] — Keras' kernel layout, so x·W needs no
 * transpose — under PyTorch's name `weight` (PyTorch itself stores the transpose, [out, in]).
 * Init as Keras: Glorot-uniform weight, zero bias.
 */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly activation: MatmulOptions["activation"];

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LinearOptions = {},
  ) {
    super();
    for (const [what, n] of [["inFeatures", inFeatures], ["outFeatures", outFeatures]] as const) {
      if (!Number.isInteger(n) || n < 1) {
        throw new Error(`Linear: ${what} ${n}, expected an integer ≥ 1`);
      }
    }
    const { bias = true, activation, rng = globalRng } = options;
    this.activation = activation;
    this.weight = this.addParameter(
      "weight",
      glorotUniform([inFeatures, outFeatures], inFeatures, outFeatures, rng),
    );
    this.bias = bias ? this.addParameter("bias", Tensor.zeros([outFeatures])) : null;
  }

  /** x: [..., inFeatures] → [..., outFeatures]. */
  forward(x: Tensor): Tensor {
    if (x.rank < 1 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new Error(
        `Linear: input ${formatShape(x.shape)} does not end in inFeatures = ${this.inFeatures}`,
      );
    }
    const options = { bias: this.bias ?? undefined, activation: this.activation };
    if (x.rank === 2) return matmul(x, this.weight, options);
    const lead = x.shape.slice(0, -1);
    const rows = lead.reduce((a, b) => a * b, 1);
    const y = matmul(x.reshape([rows, this.inFeatures]), this.weight, options);
    return y.reshape([...lead, this.outFeatures]);
  }
}

const ACTIVATIONS: readonly (MatmulActivation | null)[] = [
  null,
  "relu",
  "leaky_relu",
  "sigmoid",
  "tanh",
  "gelu",
];

registerLayer("Linear", Linear, {
  config: (m) => ({
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    bias: m.bias !== null,
    activation: m.activation ?? null,
  }),
  build: (c, _children, rng) =>
    new Linear(numberField(c, "inFeatures"), numberField(c, "outFeatures"), {
      bias: booleanField(c, "bias", true),
      activation: choiceField(c, "activation", ACTIVATIONS) ?? undefined,
      rng,
    }),
});
