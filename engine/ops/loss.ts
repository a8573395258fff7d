// STUB: to be replaced by the op family's implementation.
import type { Tensor } from "../tensor.ts";
import type { BackwardRule, Rules } from "../autograd.ts";

export type LossOp = "softmax_cross_entropy";

const notYet: BackwardRule = () => {
  throw new Error("not implemented");
};
export const lossRules: Rules<LossOp> = {
  softmax_cross_entropy: notYet,
};
