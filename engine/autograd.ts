// The tape: every differentiable op records a node on its output; backward() walks them in
// reverse topological order using the rule table below, typed over every op name.
import type { Tensor } from "./tensor.ts";
import { add, type ElementwiseOp, elementwiseRules } from "./ops/elementwise.ts";
import { type ReduceOp, reduceRules } from "./ops/reduce.ts";
import { type LossOp, lossRules } from "./ops/loss.ts";
import { type ShapeOp, shapeRules } from "./ops/shape.ts";
import { type MatmulOp, matmulRules } from "./ops/matmul.ts";
import { type DropoutOp, dropoutRules } from "./ops/dropout.ts";
import { type BatchNormOp, batchNormRules } from "./ops/batchnorm.ts";
import { type RnnOp, rnnRules } from "./ops/rnn.ts";
import { type AttentionOp, attentionRules } from "./ops/attention.ts";
import { type LayerNormOp, layerNormRules } from "./ops/layernorm.ts";
import { type DecodeOp, decodeRules } from "./ops/decode.ts";

export type OpName =
  | ElementwiseOp
  | ReduceOp
  | LossOp
  | ShapeOp
  | MatmulOp
  | DropoutOp
  | BatchNormOp
  | RnnOp
  | AttentionOp
  | LayerNormOp
  | DecodeOp;

export type Attrs = Record<string, number | boolean | string | number[] | null | undefined>;

export interface Node {
  op: OpName;
  /** The op's tensor inputs, in call order (gradients come back in the same order). */
  inputs: Tensor[];
  /** Tensors the backward rule needs; held as private views and released after use. */
  saved: Tensor[];
  attrs: Attrs;
  freed: boolean;
}

/**
 * A backward rule: given dL/d(output) and the node, returns dL/d(input) for each input
 * (null where an input needs no gradient or is not differentiable).
 */
export type BackwardRule = (grad: Tensor, node: Node, output: Tensor) => (Tensor | null)[];
export type Rules<K extends string> = { [P in K]: BackwardRule };

let table: Rules<OpName> | null = null;
function rules(): Rules<OpName> {
  // Built lazily: op modules import this file, so their exports exist only after evaluation.
  return table ??= {
    ...elementwiseRules,
    ...reduceRules,
    ...lossRules,
    ...shapeRules,
    ...matmulRules,
    ...dropoutRules,
    ...batchNormRules,
    ...rnnRules,
    ...attentionRules,
    ...layerNormRules,
    ...decodeRules,
  };
}

let gradEnabled = true;

/** Runs `fn` without recording any node (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Whether an op on these inputs must be recorded. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad);
}

/**
 * Records `op` on `output` if any input requires a gradient. `saved` tensors are retained as
 * private views, so a scope may dispose the originals before backward runs.
 */
export function record(
  op: OpName,
  output: Tensor,
  inputs: Tensor[],
  saved: Tensor[] = [],
  attrs: Attrs = {},
): Tensor {
  if (!needsGrad(inputs)) return output;
  output.requiresGrad = true;
  output.node = { op, inputs, saved: saved.map((t) => t.retainView()), attrs, freed: false };
  return output;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i];
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order.reverse();
}

/**
 * Reverse-mode sweep from `root`. Leaf tensors (requiresGrad, no node) accumulate into `.grad`;
 * intermediate gradients and saved tensors are released as soon as they have been used.
 */
export function backward(root: Tensor, seed: Tensor): void {
  if (!root.requiresGrad) {
    throw new Error("backward: the tensor does not require grad (no parameter contributed to it)");
  }
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  const table = rules();
  for (const t of order) {
    const g = grads.get(t);
    grads.delete(t);
    if (!g) continue;
    const node = t.node;
    if (!node) {
      accumulateLeaf(t, g);
      continue;
    }
    if (node.freed) {
      throw new Error(
        `backward: the graph through op '${node.op}' was already used by an earlier backward()`,
      );
    }
    const inputGrads = noGrad(() => table[node.op](g, node, t));
    // Rules may hand back `g` itself or one tensor twice: give each input a handle of its own.
    const handed = new Set<Tensor>();
    for (let i = 0; i < inputGrads.length; i++) {
      const gi = inputGrads[i];
      if (!gi) continue;
      if (gi === g || handed.has(gi)) inputGrads[i] = gi.retainView();
      handed.add(inputGrads[i]!);
    }
    if (g !== seed) g.dispose();
    for (const s of node.saved) s.dispose();
    node.saved = [];
    node.freed = true;
    node.inputs.forEach((input, i) => {
      const gi = inputGrads[i];
      if (!gi) return;
      if (!input.requiresGrad) {
        gi.dispose();
        return;
      }
      const previous = grads.get(input);
      grads.set(input, previous ? sumAndDispose(previous, gi) : gi);
    });
  }
}

function sumAndDispose(a: Tensor, b: Tensor): Tensor {
  const sum = noGrad(() => add(a, b));
  a.dispose();
  b.dispose();
  return sum;
}

/** Leaf gradients belong to the leaf, not to the scope that computed them (they accumulate). */
function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  const grad = leaf.grad ? sumAndDispose(leaf.grad, g) : g;
  leaf.grad = grad.keep();
}
