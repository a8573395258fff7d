// STUB: to be replaced by the op family's implementation.
import type { BackwardRule, Rules } from "../autograd.ts";

export type LayerNormOp = "layer_norm";

const notYet: BackwardRule = () => {
  throw new Error("not implemented");
};
export const layerNormRules: Rules<LayerNormOp> = {
  layer_norm: notYet,
};
