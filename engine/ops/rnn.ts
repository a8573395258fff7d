// STUB: to be replaced by the op family's implementation.
import type { BackwardRule, Rules } from "../autograd.ts";

export type RnnOp = "gru_sequence" | "lstm_sequence";

const notYet: BackwardRule = () => {
  throw new Error("not implemented");
};
export const rnnRules: Rules<RnnOp> = {
  gru_sequence: notYet,
  lstm_sequence: notYet,
};
