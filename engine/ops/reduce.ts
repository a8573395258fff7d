// STUB: to be replaced by the op family's implementation.
import type { Tensor } from "../tensor.ts";
import type { BackwardRule, Rules } from "../autograd.ts";

export type ReduceOp = "sum" | "mean" | "max" | "softmax" | "log_softmax";

const notYet: BackwardRule = () => {
  throw new Error("not implemented");
};
export const reduceRules: Rules<ReduceOp> = {
  sum: notYet,
  mean: notYet,
  max: notYet,
  softmax: notYet,
  log_softmax: notYet,
};

export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  throw new Error(`todo ${x}${axes}${keepDims}`);
}
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  throw new Error(`todo ${x}${axes}${keepDims}`);
}
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  throw new Error(`todo ${x}${axes}${keepDims}`);
}
export function argmax(x: Tensor, axis = -1): Tensor {
  throw new Error(`todo ${x}${axis}`);
}
export function softmax(x: Tensor, axis = -1): Tensor {
  throw new Error(`todo ${x}${axis}`);
}
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  throw new Error(`todo ${x}${axis}`);
}
