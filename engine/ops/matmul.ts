// STUB: to be replaced by the op family's implementation.
import type { Tensor } from "../tensor.ts";
import type { BackwardRule, Rules } from "../autograd.ts";

export type MatmulOp = "matmul";

const notYet: BackwardRule = () => {
  throw new Error("not implemented");
};
export const matmulRules: Rules<MatmulOp> = {
  matmul: notYet,
};

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor;
  activation?: "relu" | "sigmoid" | "tanh" | "gelu";
}
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  throw new Error(`todo ${a}${b}${options}`);
}
