// STUB: to be replaced by the op family's implementation.
import type { Tensor } from "../tensor.ts";
import type { BackwardRule, Rules } from "../autograd.ts";

export type DropoutOp = "dropout";

const notYet: BackwardRule = () => {
  throw new Error("not implemented");
};
export const dropoutRules: Rules<DropoutOp> = {
  dropout: notYet,
};
