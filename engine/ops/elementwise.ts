// STUB
import type { DType, Shape, Tensor } from "../tensor.ts";
import type { BackwardRule, Rules } from "../autograd.ts";
export type ElementwiseOp = "add";
const notYet: BackwardRule = () => {
  throw new Error("not implemented");
};
export const elementwiseRules: Rules<ElementwiseOp> = { add: notYet };
type T = Tensor | number;
const todo = (..._a: unknown[]): Tensor => {
  throw new Error("todo");
};
export const add = (a: T, b: T): Tensor => todo(a, b);
export const sub = (a: T, b: T): Tensor => todo(a, b);
export const mul = (a: T, b: T): Tensor => todo(a, b);
export const div = (a: T, b: T): Tensor => todo(a, b);
export const pow = (a: T, b: T): Tensor => todo(a, b);
export const neg = (a: Tensor): Tensor => todo(a);
export const exp = (a: Tensor): Tensor => todo(a);
export const log = (a: Tensor): Tensor => todo(a);
export const sqrt = (a: Tensor): Tensor => todo(a);
export const abs = (a: Tensor): Tensor => todo(a);
export const relu = (a: Tensor): Tensor => todo(a);
export const sigmoid = (a: Tensor): Tensor => todo(a);
export const tanh = (a: Tensor): Tensor => todo(a);
export const fill = (s: Shape, v: number, d: DType): Tensor => todo(s, v, d);
