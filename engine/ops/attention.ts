// STUB: to be replaced by the op family's implementation.
import type { BackwardRule, Rules } from "../autograd.ts";

export type AttentionOp = "attention";

const notYet: BackwardRule = () => {
  throw new Error("not implemented");
};
export const attentionRules: Rules<AttentionOp> = {
  attention: notYet,
};
