// STUB: to be replaced by the op family's implementation.
import type { Tensor } from "../tensor.ts";
import type { BackwardRule, Rules } from "../autograd.ts";

export type ShapeOp = "reshape" | "permute" | "concat" | "slice" | "gather";

const notYet: BackwardRule = () => {
  throw new Error("not implemented");
};
export const shapeRules: Rules<ShapeOp> = {
  reshape: notYet,
  permute: notYet,
  concat: notYet,
  slice: notYet,
  gather: notYet,
};

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  throw new Error(`todo ${x}${shape}`);
}
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  throw new Error(`todo ${x}${perm}`);
}
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  throw new Error(`todo ${x}${a}${b}`);
}
